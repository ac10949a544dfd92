// Package storetest is the conformance suite every store.Backend must pass.
//
// A backend's tests call Run with a function that opens a new, empty backend:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend {
//			db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hustack.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return db
//		})
//	}
//
// The suite speaks only store.Backend, directly and through store.Service and
// store.Scoped, so it checks both the storage contract and the behaviour the
// transports rely on (authentication, scopes, workspace isolation).
package storetest

import (
	"flag"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hustack/hustack/store"
)

// Open returns a new, empty backend for one test; the suite closes it.
type Open func(t *testing.T) store.Backend

// Option changes how Run runs the suite.
type Option func(*suite)

// Skip skips the subtest called name, or every subtest below it: a path
// relative to the test that calls Run, such as "APIKeys/TouchConcurrent" or
// "Usage". reason goes into the skip message. Use it only for what a
// backend's server cannot do. A name that matches no subtest fails the run,
// so that a renamed subtest does not silently start running or a typo go
// unnoticed.
func Skip(name, reason string) Option {
	return func(s *suite) { s.skips[name] = reason }
}

// Run runs the whole suite against backends made by open. Every subtest gets
// its own backend.
func Run(t *testing.T, open Open, opts ...Option) {
	t.Helper()
	s := &suite{open: open, root: t.Name(), skips: map[string]string{}, used: map[string]bool{}}
	for _, o := range opts {
		o(s)
	}
	t.Run("Workspaces", s.workspaces)
	t.Run("APIKeys", s.apiKeys)
	t.Run("Records", s.records)
	t.Run("Idempotency", s.idempotency)
	t.Run("Usage", s.usage)
	t.Run("Service", s.service)
	t.Run("KeyAdmin", s.keyAdmin)
	t.Run("VendorKeys", s.vendorKeys)
	t.Run("Webhooks", s.webhooks)

	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		return // a filtered run need not reach every skipped subtest
	}
	for name := range s.skips {
		if !s.used[name] {
			t.Errorf("storetest.Skip(%q): no subtest has that name", name)
		}
	}
}

type suite struct {
	open  Open
	root  string
	skips map[string]string

	mu   sync.Mutex
	used map[string]bool
}

// test runs fn as subtest name with a fresh backend, unless it is skipped.
func (s *suite) test(t *testing.T, name string, fn func(t *testing.T, b store.Backend)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		rel := strings.TrimPrefix(t.Name(), s.root+"/")
		if skip, reason := s.skipped(rel); skip {
			t.Skipf("not supported by this backend: %s", reason)
		}
		b := s.open(t)
		if b == nil {
			t.Fatal("open returned a nil backend")
		}
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		fn(t, b)
	})
}

func (s *suite) skipped(rel string) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The longest matching name wins, so the reason is the most specific one.
	names := make([]string, 0, len(s.skips))
	for name := range s.skips {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, name := range names {
		if rel == name || strings.HasPrefix(rel, name+"/") {
			s.used[name] = true
			return true, s.skips[name]
		}
	}
	return false, ""
}
