package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// runHandleSignals feeds sigs to handleSignals, the i-th received at
// offsets[i] after a fixed start, and reports how often it cancelled and
// which signal it aborted on (nil if none).
func runHandleSignals(t *testing.T, sigs []os.Signal, offsets []time.Duration) (cancels int, aborted os.Signal) {
	t.Helper()
	sigc := make(chan os.Signal, len(sigs))
	for _, s := range sigs {
		sigc <- s
	}
	close(sigc)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	calls := 0
	now := func() time.Time {
		if calls >= len(offsets) {
			t.Fatalf("clock read %d times for %d signals", calls+1, len(sigs))
		}
		at := start.Add(offsets[calls])
		calls++
		return at
	}
	handleSignals(sigc, func() { cancels++ }, now, func(s os.Signal) { aborted = s })
	return cancels, aborted
}

func TestHandleSignalsFirstSignalCancels(t *testing.T) {
	cancels, aborted := runHandleSignals(t, []os.Signal{syscall.SIGTERM}, []time.Duration{0})
	if cancels != 1 || aborted != nil {
		t.Fatalf("cancels = %d, aborted = %v; want 1 cancel and no abort", cancels, aborted)
	}
}

func TestHandleSignalsIgnoresDuplicateDelivery(t *testing.T) {
	// GNU timeout sends SIGTERM to the process and then to its group: the
	// same stop request arrives twice in a row.
	cancels, aborted := runHandleSignals(t,
		[]os.Signal{syscall.SIGTERM, syscall.SIGTERM, os.Interrupt},
		[]time.Duration{0, 0, repeatSignalGrace - time.Millisecond})
	if cancels != 1 || aborted != nil {
		t.Fatalf("cancels = %d, aborted = %v; want 1 cancel and no abort", cancels, aborted)
	}
}

func TestHandleSignalsLaterSignalAborts(t *testing.T) {
	cancels, aborted := runHandleSignals(t,
		[]os.Signal{os.Interrupt, os.Interrupt, syscall.SIGTERM, os.Interrupt},
		[]time.Duration{0, time.Millisecond, repeatSignalGrace, repeatSignalGrace + time.Second})
	if cancels != 1 {
		t.Fatalf("cancels = %d, want 1", cancels)
	}
	if aborted != syscall.SIGTERM {
		t.Fatalf("aborted on %v, want %v (the first signal past the grace period)", aborted, syscall.SIGTERM)
	}
}

func TestHandleSignalsClosedChannel(t *testing.T) {
	cancels, aborted := runHandleSignals(t, nil, nil)
	if cancels != 0 || aborted != nil {
		t.Fatalf("cancels = %d, aborted = %v; want neither", cancels, aborted)
	}
}
