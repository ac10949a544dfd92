package ratelimit

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker/redistest"
)

// newShared returns a limiter on the test Redis under a prefix of its own;
// its keys are deleted at the end of the test.
func newShared(t *testing.T, opts *redis.Options, prefix string) *Limiter {
	t.Helper()
	l := New(Config{Redis: opts, Prefix: prefix}, nil)
	t.Cleanup(func() {
		l.Close()
		redistest.DeleteKeys(t, opts, "rate:"+prefix+"*")
	})
	return l
}

func principal(count int, period time.Duration) store.Principal {
	return store.Principal{WorkspaceID: store.NewID(), KeyID: store.NewID(),
		RateLimit: store.RateLimit{Count: count, Period: period}}
}

func allow(t *testing.T, l *Limiter, p store.Principal) api.RateDecision {
	t.Helper()
	d, err := l.Allow(context.Background(), p)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	return d
}

// checkLimit makes count+1 requests and checks that exactly count are
// allowed, with sane numbers for the headers.
func checkLimit(t *testing.T, l *Limiter, p store.Principal) {
	t.Helper()
	count, period := p.RateLimit.Count, p.RateLimit.Period
	for i := range count {
		d := allow(t, l, p)
		if !d.Allowed {
			t.Fatalf("request %d of %d refused: %+v", i+1, count, d)
		}
		if d.Limit != count || d.Remaining != count-i-1 {
			t.Fatalf("request %d: limit %d remaining %d, want %d and %d", i+1, d.Limit, d.Remaining, count, count-i-1)
		}
		if d.Reset <= 0 || d.Reset > period || d.RetryAfter != 0 {
			t.Fatalf("request %d: reset %v retry-after %v, want reset in (0, %v] and no retry-after", i+1, d.Reset, d.RetryAfter, period)
		}
	}
	d := allow(t, l, p)
	if d.Allowed {
		t.Fatalf("request %d of a %d/%v limit allowed: %+v", count+1, count, period, d)
	}
	if d.Limit != count || d.Remaining != 0 {
		t.Fatalf("refused: limit %d remaining %d, want %d and 0", d.Limit, d.Remaining, count)
	}
	// The next request is allowed one emission interval after the first.
	if interval := period / time.Duration(count); d.RetryAfter <= 0 || d.RetryAfter > interval {
		t.Fatalf("refused: retry-after %v, want in (0, %v]", d.RetryAfter, interval)
	}
	if d.Reset <= 0 || d.Reset > period {
		t.Fatalf("refused: reset %v, want in (0, %v]", d.Reset, period)
	}
}

func TestSharedLimit(t *testing.T) {
	opts := redistest.Options(t)

	t.Run("exactly the limit, then refused", func(t *testing.T) {
		l := newShared(t, opts, redistest.Name(t)+":")
		checkLimit(t, l, principal(5, time.Minute))
		if l.Degraded() {
			t.Fatal("degraded on a healthy Redis")
		}
	})

	t.Run("limits are per key", func(t *testing.T) {
		l := newShared(t, opts, redistest.Name(t)+":")
		a, b := principal(2, time.Hour), principal(2, time.Hour)
		checkLimit(t, l, a)
		checkLimit(t, l, b)
	})

	t.Run("principal without a limit gets the default", func(t *testing.T) {
		prefix := redistest.Name(t) + ":"
		l := New(Config{Redis: opts, Prefix: prefix, Default: store.RateLimit{Count: 3, Period: time.Hour}}, nil)
		t.Cleanup(func() { l.Close(); redistest.DeleteKeys(t, opts, "rate:"+prefix+"*") })
		p := principal(0, 0)
		for range 3 {
			if d := allow(t, l, p); !d.Allowed || d.Limit != 3 {
				t.Fatalf("want allowed with limit 3, got %+v", d)
			}
		}
		if d := allow(t, l, p); d.Allowed {
			t.Fatalf("fourth request allowed: %+v", d)
		}
	})

	t.Run("two instances share one limit", func(t *testing.T) {
		prefix := redistest.Name(t) + ":"
		a, b := newShared(t, opts, prefix), newShared(t, opts, prefix)
		p := principal(10, time.Hour)
		allowed := 0
		for i := range 30 {
			l := a
			if i%2 == 1 {
				l = b
			}
			if allow(t, l, p).Allowed {
				allowed++
			}
		}
		if allowed != 10 {
			t.Fatalf("two instances allowed %d requests in total, want 10", allowed)
		}
	})

	t.Run("state is kept in redis under the prefix", func(t *testing.T) {
		prefix := redistest.Name(t) + ":"
		l := newShared(t, opts, prefix)
		p := principal(5, time.Minute)
		allow(t, l, p)
		c := redis.NewClient(opts)
		defer c.Close()
		n, err := c.Exists(context.Background(), "rate:"+prefix+p.KeyID).Result()
		if err != nil || n != 1 {
			t.Fatalf("key rate:%s%s: exists=%d err=%v", prefix, p.KeyID, n, err)
		}
	})
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDegraded(t *testing.T) {
	t.Run("unreachable redis still limits per instance", func(t *testing.T) {
		l := New(Config{Redis: &redis.Options{Addr: deadAddr(t)}, Prefix: "unused:"}, nil)
		defer l.Close()
		checkLimit(t, l, principal(4, time.Minute))
		if !l.Degraded() {
			t.Fatal("not degraded with no Redis")
		}
	})

	t.Run("redis that does not answer in time", func(t *testing.T) {
		// A server that accepts connections and never replies.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		held := make(chan net.Conn, 64)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					close(held)
					return
				}
				held <- c
			}
		}()
		defer func() {
			ln.Close()
			for c := range held {
				c.Close()
			}
		}()
		l := New(Config{Redis: &redis.Options{Addr: ln.Addr().String()}, Prefix: "unused:", Timeout: 20 * time.Millisecond}, nil)
		defer l.Close()
		checkLimit(t, l, principal(3, time.Minute))
		if !l.Degraded() {
			t.Fatal("not degraded with a Redis that never answers")
		}
	})

	t.Run("no redis configured", func(t *testing.T) {
		l := New(Config{}, nil)
		defer l.Close()
		checkLimit(t, l, principal(3, time.Minute))
	})

	t.Run("outage continues from the shared state and recovers", func(t *testing.T) {
		opts := redistest.Options(t)
		proxy := redistest.NewProxy(t, opts.Addr)
		viaProxy := *opts
		viaProxy.Addr = proxy.Addr()
		prefix := redistest.Name(t) + ":"
		l := New(Config{Redis: &viaProxy, Prefix: prefix, ProbeInterval: 20 * time.Millisecond}, nil)
		direct := newShared(t, opts, prefix)
		defer l.Close()

		p := principal(5, time.Hour)
		for range 3 {
			if d := allow(t, l, p); !d.Allowed {
				t.Fatalf("refused before the limit: %+v", d)
			}
		}

		proxy.Stop()
		// Two left from the shared state, then refused; no error meanwhile.
		for i := range 2 {
			if d := allow(t, l, p); !d.Allowed || d.Remaining != 1-i {
				t.Fatalf("during the outage, request %d: %+v, want allowed with %d remaining", i+1, d, 1-i)
			}
		}
		if d := allow(t, l, p); d.Allowed || d.RetryAfter <= 0 {
			t.Fatalf("during the outage, over the limit: %+v, want refused with a retry-after", d)
		}
		if !l.Degraded() {
			t.Fatal("not degraded during the outage")
		}

		proxy.Start(t)
		q := principal(2, time.Hour)
		deadline := time.Now().Add(10 * time.Second)
		for l.Degraded() {
			if time.Now().After(deadline) {
				t.Fatal("still degraded 10 s after Redis came back")
			}
			allow(t, l, q) // in degraded mode, a request may start a probe
			time.Sleep(10 * time.Millisecond)
		}
		// Shared again: what l allows now counts against the other instance.
		r := principal(2, time.Hour)
		if d := allow(t, l, r); !d.Allowed {
			t.Fatalf("after recovery: %+v", d)
		}
		if d := allow(t, direct, r); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("other instance after recovery: %+v, want allowed with 0 remaining", d)
		}
		if d := allow(t, direct, r); d.Allowed {
			t.Fatalf("other instance went over the shared limit: %+v", d)
		}
	})

	t.Run("a cancelled request does not degrade", func(t *testing.T) {
		opts := redistest.Options(t)
		l := newShared(t, opts, redistest.Name(t)+":")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d, err := l.Allow(ctx, principal(5, time.Minute))
		if err != nil || !d.Allowed {
			t.Fatalf("Allow with a cancelled context: %+v, %v", d, err)
		}
		if l.Degraded() {
			t.Fatal("a cancelled request degraded the limiter")
		}
	})
}

func TestMemoryGCRA(t *testing.T) {
	m := newMemory()
	lim := store.RateLimit{Count: 2, Period: time.Second}
	t0 := m.base.Add(time.Hour)
	steps := []struct {
		at         time.Duration
		allowed    bool
		remaining  int
		retryAfter time.Duration
	}{
		{0, true, 1, 0},
		{0, true, 0, 0},
		{0, false, 0, 500 * time.Millisecond},
		{499 * time.Millisecond, false, 0, time.Millisecond},
		{500 * time.Millisecond, true, 0, 0},
		{500 * time.Millisecond, false, 0, 500 * time.Millisecond},
		{3 * time.Second, true, 1, 0}, // idle for long enough: the full burst again
	}
	for i, s := range steps {
		d := m.allow("k", lim, t0.Add(s.at), false)
		if d.Allowed != s.allowed || d.Remaining != s.remaining || d.RetryAfter != s.retryAfter {
			t.Fatalf("step %d at +%v: got %+v, want allowed=%v remaining=%d retry-after=%v",
				i, s.at, d, s.allowed, s.remaining, s.retryAfter)
		}
	}
}

func TestMemorySweep(t *testing.T) {
	m := newMemory()
	lim := store.RateLimit{Count: 10, Period: time.Millisecond}
	t0 := time.Now()
	for i := range 20 * minSweep {
		m.allow(fmt.Sprint("key-", i), lim, t0, false)
	}
	// All those entries expire a millisecond after t0; new keys sweep them.
	later := t0.Add(time.Second)
	for i := range 16 * minSweep {
		m.allow(fmt.Sprint("other-", i), lim, later, false)
	}
	if n := m.size(); n > 16*minSweep+16*minSweep/2 {
		t.Fatalf("%d keys held after expiry, want expired ones swept", n)
	}
}

// BenchmarkAllow measures a decision on the real Redis, serial and from 16
// goroutines, and in memory. local/op is the share of decisions that fell
// back to memory (a call slower than Config.Timeout on a busy machine):
// near 0 for the Redis figures to be Redis's.
func BenchmarkAllow(b *testing.B) {
	shared := func(b *testing.B) *Limiter {
		opts := redistest.Options(b)
		prefix := redistest.Name(b) + ":"
		l := New(Config{Redis: opts, Prefix: prefix}, nil)
		b.Cleanup(func() { l.Close(); redistest.DeleteKeys(b, opts, "rate:"+prefix+"*") })
		// Open the pool's connections before timing.
		for range 16 {
			l.rdb.Ping(context.Background())
		}
		return l
	}
	report := func(b *testing.B, l *Limiter) {
		st := l.Stats()
		b.ReportMetric(float64(st.Local)/float64(max(st.Local+st.Shared, 1)), "local/op")
	}
	b.Run("redis", func(b *testing.B) {
		l := shared(b)
		p := principal(1_000_000, time.Second)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
		report(b, l)
	})
	b.Run("redis-parallel", func(b *testing.B) {
		l := shared(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			p := principal(1_000_000, time.Second)
			for pb.Next() {
				if _, err := l.Allow(ctx, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b, l)
	})
	b.Run("memory", func(b *testing.B) {
		l := New(Config{}, nil)
		p := principal(1_000_000_000, time.Second)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
		report(b, l)
	})
}
