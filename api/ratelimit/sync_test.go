package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker/redistest"
)

// newSynced returns a synced-mode limiter whose background sync never fires
// during the test (the tests call sync themselves, so that they are
// deterministic).
func newSynced(t *testing.T, opts *redis.Options, prefix string) *Limiter {
	t.Helper()
	l := New(Config{Redis: opts, Prefix: prefix, SyncInterval: time.Hour}, nil)
	t.Cleanup(func() {
		l.Close()
		redistest.DeleteKeys(t, opts, "rate:"+prefix+"*")
	})
	return l
}

func syncNow(t *testing.T, l *Limiter) {
	t.Helper()
	before := l.Stats().Syncs
	l.sync(nil)
	if l.Stats().Syncs != before+1 {
		t.Fatalf("sync failed: %+v", l.Stats())
	}
}

func TestSynced(t *testing.T) {
	opts := redistest.Options(t)

	t.Run("one instance is exact and shares its state", func(t *testing.T) {
		prefix := redistest.Name(t) + ":"
		s := newSynced(t, opts, prefix)
		exact := newShared(t, opts, prefix)
		p := principal(5, time.Hour)
		checkLimit(t, s, p)
		if st := s.Stats(); st.Local != 6 || st.Shared != 0 {
			t.Fatalf("stats %+v: want every decision made in memory", st)
		}
		syncNow(t, s)
		// An exact-mode instance sees the five requests.
		d := allow(t, exact, p)
		if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 12*time.Minute {
			t.Fatalf("exact instance after the sync: %+v, want refused within 12 min", d)
		}
	})

	t.Run("two instances: one burst of excess each, then paid back", func(t *testing.T) {
		prefix := redistest.Name(t) + ":"
		a, b := newSynced(t, opts, prefix), newSynced(t, opts, prefix)
		p := principal(5, time.Hour)
		for range 5 {
			if d := allow(t, a, p); !d.Allowed {
				t.Fatalf("instance a refused within the limit: %+v", d)
			}
		}
		syncNow(t, a)

		// b has not synced this key: it sees a fresh key and allows a burst.
		k := 0
		for range 10 {
			if allow(t, b, p).Allowed {
				k++
			}
		}
		if k != 5 {
			t.Fatalf("instance b allowed %d before its sync, want its own burst of 5", k)
		}
		syncNow(t, b)

		// Now b knows about all ten: it refuses until the excess is paid
		// back, one emission interval (12 min) per request beyond the limit.
		d := allow(t, b, p)
		want := time.Duration(k+1) * 12 * time.Minute
		if d.Allowed || d.RetryAfter > want || d.RetryAfter < want-time.Minute {
			t.Fatalf("instance b after its sync: %+v, want refused for about %v", d, want)
		}
	})

	t.Run("unreachable redis", func(t *testing.T) {
		l := New(Config{Redis: &redis.Options{Addr: deadAddr(t)}, SyncInterval: time.Hour}, nil)
		defer l.Close()
		checkLimit(t, l, principal(3, time.Minute))
		l.sync(nil)
		if !l.Degraded() || l.Stats().Syncs != 0 {
			t.Fatalf("after a failed sync: degraded=%v stats %+v", l.Degraded(), l.Stats())
		}
	})

	t.Run("outage and recovery", func(t *testing.T) {
		proxy := redistest.NewProxy(t, opts.Addr)
		viaProxy := *opts
		viaProxy.Addr = proxy.Addr()
		l := newSynced(t, &viaProxy, redistest.Name(t)+":")
		p := principal(5, time.Hour)
		allow(t, l, p)
		syncNow(t, l)
		proxy.Stop()
		allow(t, l, p)
		l.sync(nil)
		if !l.Degraded() {
			t.Fatal("not degraded after a failed sync")
		}
		proxy.Start(t)
		allow(t, l, p)
		syncNow(t, l)
		if l.Degraded() {
			t.Fatal("still degraded after a successful sync")
		}
	})

	t.Run("background sync and close", func(t *testing.T) {
		prefix := redistest.Name(t) + ":"
		l := New(Config{Redis: opts, Prefix: prefix, SyncInterval: 5 * time.Millisecond}, nil)
		t.Cleanup(func() { redistest.DeleteKeys(t, opts, "rate:"+prefix+"*") })
		p := principal(5, time.Hour)
		allow(t, l, p)
		deadline := time.Now().Add(10 * time.Second)
		for l.Stats().Syncs == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no background sync within 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		allow(t, l, p)
		if err := l.Close(); err != nil { // pushes the second request
			t.Fatal(err)
		}
		exact := newShared(t, opts, prefix)
		for i := range 3 {
			if d := allow(t, exact, p); !d.Allowed || d.Remaining != 2-i {
				t.Fatalf("after close, request %d: %+v, want allowed with %d remaining", i+1, d, 2-i)
			}
		}
		if d := allow(t, exact, p); d.Allowed {
			t.Fatalf("the synced requests were not all counted: %+v", d)
		}
	})
}

func BenchmarkAllowSynced(b *testing.B) {
	opts := redistest.Options(b)
	prefix := redistest.Name(b) + ":"
	l := New(Config{Redis: opts, Prefix: prefix, SyncInterval: 100 * time.Millisecond}, nil)
	b.Cleanup(func() { l.Close(); redistest.DeleteKeys(b, opts, "rate:"+prefix+"*") })
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		// 1000 keys, as many active API keys would be.
		keys := make([]store.Principal, 1000)
		for i := range keys {
			keys[i] = principal(1_000_000_000, time.Second)
		}
		i := 0
		for pb.Next() {
			if _, err := l.Allow(ctx, keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if l.Degraded() {
		b.Fatal("sync failed during the benchmark")
	}
	b.ReportMetric(float64(l.Stats().Syncs)/b.Elapsed().Seconds(), "syncs/s")
}
