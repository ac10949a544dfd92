//go:build unix

package sqlite_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsertUsageEvents stores batches of new events in a file that
// grows as the benchmark runs: 500 is the worker's default batch, 60 and 7
// batches the flush interval cuts short. cpu-ns/event is the process's CPU time
// during the inserts, which other load on the machine disturbs less than
// ns/event.
func BenchmarkInsertUsageEvents(b *testing.B) {
	for _, size := range []int{500, 60, 7} {
		b.Run(fmt.Sprint(size), func(b *testing.B) { benchInsertUsage(b, size) })
	}
}

func benchInsertUsage(b *testing.B, size int) {
	db := openTemp(b)
	b.Cleanup(func() { db.Close() })
	w := &store.Workspace{ID: store.NewID(), Name: "w", CreatedAt: t0}
	ctx := context.Background()
	must(b, db.CreateWorkspace(ctx, w))
	keys := []string{store.NewID(), store.NewID(), store.NewID()}
	events := make([]store.UsageEvent, size)
	var cpu time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range events {
			events[j] = store.UsageEvent{ID: store.NewID(), WorkspaceID: w.ID, KeyID: keys[j%len(keys)], Method: "GET",
				Route: "/api/v1/accounts/:id", Status: 200, DurationMS: 0.8,
				Time:      t0.Add(time.Duration(i*len(events)+j) * time.Millisecond),
				RequestID: store.NewID(), Transport: store.TransportREST, UserAgent: "Mozilla/5.0 (bench)"}
		}
		start := processCPU(b)
		b.StartTimer()
		must(b, db.InsertUsageEvents(ctx, events))
		b.StopTimer()
		cpu += processCPU(b) - start
		b.StartTimer()
	}
	n := float64(b.N * len(events))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/event")
}
