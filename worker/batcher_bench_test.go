package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker/redistest"
)

func benchEvent() store.UsageEvent {
	return store.UsageEvent{
		ID: store.NewID(), WorkspaceID: store.NewID(), KeyID: store.NewID(), Method: "GET",
		Route: "/api/v1/accounts/:id", Status: 200, DurationMS: 0.8, Time: time.Now(),
		RequestID: store.NewID(), Transport: store.TransportREST, UserAgent: "Mozilla/5.0 (bench)",
	}
}

// BenchmarkRecord measures the in-process cost of usage logging. Batches go
// to a sink instead of Redis (BenchmarkBatcherToRedis covers that side), so
// that millions of events do not pile up there.
//
//   - accept: Record alone, as the request goroutine pays it (the flusher is
//     held up and the buffer emptied while the timer is stopped).
//   - with-flusher: Record with the flusher encoding every batch as for asynq
//     beside it; the loop waits, timer stopped, for the flusher to catch up
//     every 50,000 events: Record as it runs beside the flusher's encoding
//     and garbage (BenchmarkNewUsageBatchTask is the flusher's own cost).
//   - accept-parallel: accept from eight goroutines on two cores.
//   - full: the drop path, when the buffer is full.
//
// dropped/op tells which path was measured.
func BenchmarkRecord(b *testing.B) {
	const chunk = 50_000
	sink := func(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
		return &asynq.TaskInfo{}, nil
	}
	stuck := func(ctx context.Context, _ *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	report := func(b *testing.B, bt *Batcher) {
		b.StopTimer()
		st := bt.Stats() // before Close, which counts what it cannot enqueue as dropped
		b.ReportMetric(float64(st.Dropped)/float64(max(st.Recorded, 1)), "dropped/op")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_ = bt.Close(ctx) // with the stuck sink nothing can be enqueued
	}
	e := benchEvent()

	b.Run("accept", func(b *testing.B) {
		bt := newBatcher(stuck, BatcherConfig{BufferSize: 4 * chunk, FlushInterval: time.Hour, EnqueueTimeout: time.Hour}, nil)
		var dropped uint64
		b.ReportAllocs()
		for i := range b.N {
			bt.Record(e)
			if i%chunk == chunk-1 {
				b.StopTimer()
				bt.mu.Lock()
				bt.buf = bt.buf[:0]
				dropped += bt.st.Dropped
				bt.st.Dropped = 0
				bt.mu.Unlock()
				b.StartTimer()
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(dropped+bt.Dropped())/float64(b.N), "dropped/op")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = bt.Close(ctx) // the stuck sink takes nothing
	})
	b.Run("with-flusher", func(b *testing.B) {
		bt := newBatcher(sink, BatcherConfig{}, nil)
		b.ReportAllocs()
		for i := range b.N {
			bt.Record(e)
			if i%chunk == chunk-1 {
				b.StopTimer()
				for deadline := time.Now().Add(10 * time.Second); bt.Stats().Buffered > 0; {
					if time.Now().After(deadline) {
						b.Fatalf("flusher did not catch up: %+v", bt.Stats())
					}
					time.Sleep(time.Millisecond)
				}
				b.StartTimer()
			}
		}
		report(b, bt)
	})
	b.Run("accept-parallel", func(b *testing.B) {
		bt := newBatcher(stuck, BatcherConfig{BufferSize: 4 * chunk, FlushInterval: time.Hour, EnqueueTimeout: time.Hour}, nil)
		var n atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bt.Record(e)
				if n.Add(1)%chunk == 0 { // empty the buffer now and then
					bt.mu.Lock()
					bt.buf = bt.buf[:0]
					bt.mu.Unlock()
				}
			}
		})
		report(b, bt)
	})
	b.Run("full", func(b *testing.B) {
		bt := newBatcher(stuck, BatcherConfig{BufferSize: 1000}, nil)
		for range 1000 {
			bt.Record(e)
		}
		b.ReportAllocs()
		for b.Loop() {
			bt.Record(e)
		}
		report(b, bt)
	})
}

// BenchmarkBatcherToRedis measures the whole in-process path into the real
// Redis: one op records 10,000 events and closes the Batcher, which enqueues
// them in batches of the default size.
func BenchmarkBatcherToRedis(b *testing.B) {
	rdb := redistest.Client(b)
	opts := redistest.Options(b)
	queue := redistest.Name(b)
	b.Cleanup(func() { redistest.DeleteQueues(b, opts, queue) })
	const n = 10_000
	e := benchEvent()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		bt := NewBatcher(rdb, BatcherConfig{Queue: queue}, nil)
		for range n {
			bt.Record(e)
		}
		if err := bt.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if st := bt.Stats(); st.Enqueued != n {
			b.Fatalf("enqueued %d of %d", st.Enqueued, n)
		}
		b.StopTimer()
		redistest.DeleteQueues(b, opts, queue)
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkNewUsageBatchTask measures the flusher's main cost per event:
// encoding a batch of the default size.
func BenchmarkNewUsageBatchTask(b *testing.B) {
	events := make([]store.UsageEvent, DefaultBatchSize)
	for i := range events {
		events[i] = benchEvent()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewUsageBatchTask(events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}
