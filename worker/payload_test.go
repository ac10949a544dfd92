package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
)

// TestEncodeUsageBatch checks that the hand-written encoder reads back, with
// encoding/json, exactly as json.Marshal's output does.
func TestEncodeUsageBatch(t *testing.T) {
	odd := []string{
		"", "plain", `quote " and backslash \`, "new\nline\r\ttab", "\x00\x01\x1f\x7f",
		"ünïcødé ✓ 🚀", "bad utf8 \xff\xfe end", "\xc3", "<script>&amp;</script>", "\u2028\u2029",
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999, time.UTC),
		time.Date(2026, 7, 1, 12, 0, 0, 5_000_000, paris),
		time.Now(),
	}
	durations := []float64{0, 1, 0.5, 1.5e-7, 123456.789, 1e21, 3e300, math.SmallestNonzeroFloat64, -2}
	var events []store.UsageEvent
	for i, s := range odd {
		events = append(events, store.UsageEvent{
			ID: s, WorkspaceID: odd[(i+1)%len(odd)], KeyID: odd[(i+2)%len(odd)], Method: s, Route: s,
			Status: 100 + i, DurationMS: durations[i%len(durations)], Time: times[i%len(times)],
			RequestID: s, Transport: s, UserAgent: s,
		})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		raw := make([]byte, r.IntN(40))
		for j := range raw {
			raw[j] = byte(r.IntN(256))
		}
		events = append(events, store.UsageEvent{ID: string(raw), UserAgent: string(raw[:len(raw)/2]),
			Status: r.IntN(600), DurationMS: r.NormFloat64() * 1e3, Time: time.Unix(r.Int64N(1e10), r.Int64N(1e9))})
	}

	got, err := encodeUsageBatch(events)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(UsageBatchPayload{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	var a, b UsageBatchPayload
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("encoded batch is not JSON: %v", err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if len(a.Events) != len(events) {
		t.Fatalf("%d events read back, want %d", len(a.Events), len(events))
	}
	for i := range a.Events {
		if !reflect.DeepEqual(a.Events[i], b.Events[i]) {
			t.Fatalf("event %d reads back as\n%#v\nwith encoding/json as\n%#v", i, a.Events[i], b.Events[i])
		}
	}

	for name, e := range map[string]store.UsageEvent{
		"NaN duration":   {ID: "x", DurationMS: math.NaN()},
		"infinite":       {ID: "x", DurationMS: math.Inf(1)},
		"year 10000":     {ID: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"negative years": {ID: "x", Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := encodeUsageBatch([]store.UsageEvent{e}); err == nil {
			t.Errorf("%s: encoded, want an error as encoding/json gives", name)
		}
	}
}

// TestBatcherDeliversEachEventOnce records in bursts from several
// goroutines through a Batcher whose batches are decoded as the worker
// would, and checks that every event arrives exactly once, unchanged. The
// pauses between bursts let the flusher find the buffer empty, then full
// again while it is still sending, which is when buffers are swapped.
func TestBatcherDeliversEachEventOnce(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]store.UsageEvent{}
	dup := 0
	sink := func(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
		var p UsageBatchPayload
		if err := json.Unmarshal(task.Payload(), &p); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range p.Events {
			if _, ok := seen[e.ID]; ok {
				dup++
			}
			seen[e.ID] = e
		}
		return &asynq.TaskInfo{}, nil
	}
	b := newBatcher(sink, BatcherConfig{BatchSize: 50, FlushInterval: time.Millisecond}, nil)
	const workers, rounds, burst = 4, 30, 200
	sent := make([][]store.UsageEvent, workers)
	for r := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range burst {
					e := store.UsageEvent{ID: store.NewID(), WorkspaceID: "w", KeyID: fmt.Sprint("k", w),
						Status: r*burst + i, Time: time.Now().UTC().Truncate(time.Millisecond)}
					sent[w] = append(sent[w], e)
					b.Record(e)
				}
			})
		}
		wg.Wait()
		time.Sleep(3 * time.Millisecond)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	const total = workers * rounds * burst
	if dup != 0 || len(seen) != total {
		t.Fatalf("%d distinct events delivered, %d duplicates; want %d and none", len(seen), dup, total)
	}
	for _, events := range sent {
		for _, e := range events {
			if got, ok := seen[e.ID]; !ok || !reflect.DeepEqual(got, e) {
				t.Fatalf("event %s delivered as %+v, want %+v", e.ID, got, e)
			}
		}
	}
	if st := b.Stats(); st.Enqueued != total || st.Dropped != 0 || st.Buffered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// batchSizes is an enqueue sink that keeps the size of every batch.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (s *batchSizes) enqueue(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	var p UsageBatchPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, len(p.Events))
	s.mu.Unlock()
	return &asynq.TaskInfo{}, nil
}

func (s *batchSizes) get() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

func TestBatchTriggers(t *testing.T) {
	event := func() store.UsageEvent {
		return store.UsageEvent{ID: store.NewID(), WorkspaceID: "w", KeyID: "k", Time: time.Now()}
	}

	t.Run("every N events", func(t *testing.T) {
		sink := &batchSizes{}
		b := newBatcher(sink.enqueue, BatcherConfig{BatchSize: 50, FlushInterval: time.Hour}, nil)
		for i := range 1003 {
			b.Record(event())
			if i%37 == 0 {
				time.Sleep(100 * time.Microsecond) // traffic, not one burst
			}
		}
		waitFor(t, "20 full batches", func() bool { return len(sink.get()) == 20 })
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := append(slices.Repeat([]int{50}, 20), 3)
		if got := sink.get(); !slices.Equal(got, want) {
			t.Fatalf("batch sizes %v, want twenty of 50 and the 3 left at Close", got)
		}
	})

	t.Run("every T", func(t *testing.T) {
		sink := &batchSizes{}
		b := newBatcher(sink.enqueue, BatcherConfig{BatchSize: 1000, FlushInterval: 5 * time.Millisecond}, nil)
		defer b.Close(context.Background())
		for range 3 {
			b.Record(event())
		}
		waitFor(t, "the interval to send a partial batch", func() bool { return b.Stats().Enqueued == 3 })
		if got := sink.get(); !slices.Equal(got, []int{3}) {
			t.Fatalf("batch sizes %v, want one of 3", got)
		}
	})
}
