package worker

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/api/ratelimit"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker/redistest"
)

// TestAPIThroughRedisOutage serves requests through the API with the usage
// Batcher and the rate limiter, both reaching the real Redis through a proxy
// that is stopped in the middle of the traffic: no request fails, and the
// usage rows equal the requests made.
func TestAPIThroughRedisOutage(t *testing.T) {
	e := newEnv(t)
	srv := e.server(t, Config{}, nil)
	proxy := redistest.NewProxy(t, e.opts.Addr)
	viaProxy := *e.opts
	viaProxy.Addr = proxy.Addr()
	viaProxy.ContextTimeoutEnabled = true
	brdb := redis.NewClient(&viaProxy)
	t.Cleanup(func() { brdb.Close() })

	b := NewBatcher(brdb, e.batcherConfig(), nil)
	prefix := redistest.Name(t) + ":"
	lim := ratelimit.New(ratelimit.Config{Redis: &viaProxy, Prefix: prefix, ProbeInterval: 20 * time.Millisecond}, nil)
	t.Cleanup(func() { lim.Close(); redistest.DeleteKeys(t, e.opts, "rate:"+prefix+"*") })
	h := api.New(api.Config{Service: e.svc, Usage: b, Limiter: lim})

	requests := 0
	serve := func(n int) {
		t.Helper()
		for i := range n {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+e.raw[i%len(e.raw)])
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			requests++
			if rec.Code != http.StatusOK {
				t.Fatalf("request %d: status %d, body %s", requests, rec.Code, rec.Body)
			}
			if rec.Header().Get("X-RateLimit-Limit") != "1000000" {
				t.Fatalf("request %d: X-RateLimit-Limit %q", requests, rec.Header().Get("X-RateLimit-Limit"))
			}
		}
	}

	serve(200)
	proxy.Stop()
	serve(300)
	waitFor(t, "the batcher to meet the outage", func() bool { return b.Stats().Failures > 0 })
	if !lim.Degraded() {
		t.Fatal("rate limiter not degraded during the outage")
	}
	serve(100)
	proxy.Start(t)
	serve(200)
	closeAndDrain(t, b, srv)

	if got := len(e.storedIDs(t)); got != requests {
		t.Fatalf("%d usage rows for %d requests", got, requests)
	}
	checkStats(t, b.Stats(), uint64(requests), uint64(requests), 0)
	rows, err := e.db.FindUsageEvents(t.Context(), e.ws.ID, store.UsageQuery{Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatalf("newest usage row: %v %v", rows, err)
	}
	if got := e.lastUsed(t, rows[0].KeyID); !got.Equal(rows[0].Time) {
		t.Fatalf("last_used_at %v, newest request %v", got, rows[0].Time)
	}
}
