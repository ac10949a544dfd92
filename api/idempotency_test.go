package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// idem returns rq with an Idempotency-Key header.
func idem(rq request, key string) request {
	h := map[string]string{api.IdempotencyKeyHeader: key}
	for k, v := range rq.header {
		h[k] = v
	}
	rq.header = h
	return rq
}

// replayOf checks that r replays first: same status and body, marked as
// replayed, under a request id of its own.
func replayOf(t *testing.T, first, r response) {
	t.Helper()
	if r.status != first.status || string(r.body) != string(first.body) {
		t.Errorf("replay: %d %s\nfirst: %d %s", r.status, clip(r.body), first.status, clip(first.body))
	}
	if r.header.Get(api.IdempotentReplayedHeader) != "true" {
		t.Errorf("replay without %s: true", api.IdempotentReplayedHeader)
	}
	if first.header.Get(api.IdempotentReplayedHeader) != "" {
		t.Errorf("first response marked %s", api.IdempotentReplayedHeader)
	}
	if id := r.header.Get("X-Request-Id"); id == "" || id == first.header.Get("X-Request-Id") {
		t.Errorf("replay request id %q, first %q", id, first.header.Get("X-Request-Id"))
	}
	for _, h := range []string{"Location", "Content-Type"} {
		if r.header.Get(h) != first.header.Get(h) {
			t.Errorf("replay %s %q, first %q", h, r.header.Get(h), first.header.Get(h))
		}
	}
}

// count returns how many live records of r workspace A has whose field
// equals value.
func (e *env) count(t *testing.T, r *store.Resource, field, value string) int {
	t.Helper()
	rows, err := e.scoped(e.keyA).FindRecords(t.Context(), r, store.ListParams{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rec := range rows.Data {
		if rec.Fields[field] == value {
			n++
		}
	}
	return n
}

// TestIdempotency checks Idempotency-Key on every kind of write, on each
// backend: replays, reuse with another request, and what is not remembered.
func TestIdempotency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		g := gate(open(t))
		e := newEnv(t, g)
		post := func(path, body, key string) request {
			return idem(request{method: http.MethodPost, path: path, key: e.keyA, body: jsonBody(body)}, key)
		}
		// twice sends rq twice and checks the second is a replay of the first.
		twice := func(t *testing.T, rq request, wantStatus int) response {
			t.Helper()
			first := e.do(t, rq)
			if first.status != wantStatus {
				t.Fatalf("first: status %d, want %d: %s", first.status, wantStatus, clip(first.body))
			}
			rq.body = jsonBody(bodyOf(t, rq))
			replayOf(t, first, e.do(t, rq))
			return first
		}

		t.Run("create replayed once", func(t *testing.T) {
			rq := post("/api/v1/accounts", `{"name":"Idem Co"}`, "create-1")
			first := twice(t, rq, http.StatusCreated)
			rq.body = jsonBody(`{"name":"Idem Co"}`)
			replayOf(t, first, e.do(t, rq))
			if n := e.count(t, store.Accounts, "name", "Idem Co"); n != 1 {
				t.Errorf("%d accounts created, want 1", n)
			}
			if !strings.HasSuffix(first.header.Get("Location"), "/"+first.json(t)["id"].(string)) {
				t.Errorf("Location %q", first.header.Get("Location"))
			}
		})
		t.Run("same request without the key is not a replay", func(t *testing.T) {
			r := e.do(t, request{method: http.MethodPost, path: "/api/v1/accounts", key: e.keyA, body: jsonBody(`{"name":"Idem Co"}`)})
			if r.status != http.StatusCreated || r.header.Get(api.IdempotentReplayedHeader) != "" {
				t.Errorf("status %d, replayed %q", r.status, r.header.Get(api.IdempotentReplayedHeader))
			}
		})
		acc := e.create(e.keyA, store.Accounts, map[string]any{"name": "Patch me"})
		t.Run("update replayed, not applied twice", func(t *testing.T) {
			rq := idem(request{method: http.MethodPatch, path: "/api/v1/accounts/" + acc.ID, key: e.keyA, body: jsonBody(`{"industry":"Idem"}`)}, "patch-1")
			first := twice(t, rq, http.StatusOK)
			if got := e.get(t, e.keyA, store.Accounts, acc.ID); got["updated_at"] != first.json(t)["updated_at"] {
				t.Errorf("record updated again: %v, first answer %s", got["updated_at"], first.body)
			}
		})
		t.Run("delete replayed", func(t *testing.T) {
			victim := e.create(e.keyA, store.Leads, map[string]any{"name": "Victim"})
			twice(t, idem(request{method: http.MethodDelete, path: "/api/v1/leads/" + victim.ID, key: e.keyA}, "delete-1"), http.StatusNoContent)
		})
		t.Run("upsert replays its 201", func(t *testing.T) {
			twice(t, idem(request{method: http.MethodPut, path: "/api/v1/leads/by-external-id/idem-1", key: e.keyA, body: jsonBody(`{"name":"Up"}`)}, "put-1"),
				http.StatusCreated)
		})
		t.Run("batch replayed", func(t *testing.T) {
			twice(t, post("/api/v1/notes/batch", `{"records":[{"content":"idem batch"},{"title":"no content"}]}`, "batch-1"), http.StatusOK)
			if n := e.count(t, store.Notes, "content", "idem batch"); n != 1 {
				t.Errorf("%d notes created, want 1", n)
			}
			twice(t, post("/api/v1/leads/batch/upsert", `{"records":[{"external_id":"idem-b","name":"B"}]}`, "batch-2"), http.StatusOK)
		})
		t.Run("client errors are remembered", func(t *testing.T) {
			twice(t, post("/api/v1/accounts", `{"industry":"no name"}`, "bad-1"), http.StatusBadRequest)
			twice(t, idem(request{method: http.MethodPatch, path: "/api/v1/accounts/" + store.NewID(), key: e.keyA, body: jsonBody(`{}`)}, "nf-1"),
				http.StatusNotFound)
		})
		t.Run("keys are per workspace", func(t *testing.T) {
			rq := post("/api/v1/accounts", `{"name":"Per workspace"}`, "create-1") // used by A above
			rq.key = e.keyB
			r := e.do(t, rq)
			if r.status != http.StatusCreated || r.header.Get(api.IdempotentReplayedHeader) != "" {
				t.Errorf("B with A's key: status %d replayed %q: %s", r.status, r.header.Get(api.IdempotentReplayedHeader), clip(r.body))
			}
		})
		t.Run("a GET ignores the header", func(t *testing.T) {
			r := e.do(t, idem(request{method: http.MethodGet, path: "/api/v1/accounts/" + acc.ID, key: e.keyA}, "create-1"))
			if r.status != http.StatusOK || r.header.Get(api.IdempotentReplayedHeader) != "" {
				t.Errorf("status %d, replayed %q", r.status, r.header.Get(api.IdempotentReplayedHeader))
			}
		})

		run(t, e, []group{
			{http.StatusUnprocessableEntity, []scenario{
				{name: "same key, other body", req: post("/api/v1/accounts", `{"name":"Other Co"}`, "create-1"),
					msg: []string{"different request"}},
				{name: "same key, same body respaced", req: post("/api/v1/accounts", `{"name": "Idem Co"}`, "create-1")},
				{name: "same key, other path", req: post("/api/v1/leads", `{"name":"Idem Co"}`, "create-1")},
				{name: "same key, other method", req: idem(request{method: http.MethodPatch, path: "/api/v1/accounts/" + acc.ID, key: e.keyA,
					body: jsonBody(`{"name":"Idem Co"}`)}, "create-1")},
				{name: "same key, other query", req: post("/api/v1/accounts?x=1", `{"name":"Idem Co"}`, "create-1")},
				{name: "same key, other API key of the workspace", req: func() request {
					_, raw := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ReadScope("accounts")}, nil)
					rq := post("/api/v1/accounts", `{"name":"Idem Co"}`, "create-1")
					rq.key = raw
					return rq
				}()},
			}},
			{http.StatusBadRequest, []scenario{
				{name: "empty key", req: post("/api/v1/accounts", `{"name":"x"}`, ""), msg: []string{"Idempotency-Key"}},
				{name: "key too long", req: post("/api/v1/accounts", `{"name":"x"}`, strings.Repeat("k", 256)), msg: []string{"Idempotency-Key", "255"}},
				{name: "non-ASCII key", req: post("/api/v1/accounts", `{"name":"x"}`, "schlüssel"), msg: []string{"Idempotency-Key"}},
				{name: "two keys", req: func() request {
					rq := post("/api/v1/accounts", `{"name":"x"}`, "k-1")
					rq.multi = http.Header{api.IdempotencyKeyHeader: {"k-2"}}
					return rq
				}(), msg: []string{"Idempotency-Key", "once"}},
			}},
			{http.StatusRequestEntityTooLarge, []scenario{
				{name: "large body with a key", req: post("/api/v1/notes", `{"content":"`+strings.Repeat("x", 2<<20)+`"}`, "big-1")},
			}},
		})
		t.Run("longest key", func(t *testing.T) {
			twice(t, post("/api/v1/notes", `{"content":"long key"}`, strings.Repeat("~", 255)), http.StatusCreated)
		})

		t.Run("server errors are not remembered", func(t *testing.T) {
			g.failNext(errors.New("connection reset: secret detail"))
			rq := post("/api/v1/notes", `{"content":"retry me"}`, "fail-1")
			r := e.do(t, rq)
			if r.status != http.StatusInternalServerError {
				t.Fatalf("status %d: %s", r.status, clip(r.body))
			}
			checkError(t, r, "internal_server_error", store.InternalMessage)
			rq.body = jsonBody(`{"content":"retry me"}`)
			r2 := e.do(t, rq)
			if r2.status != http.StatusCreated || r2.header.Get(api.IdempotentReplayedHeader) != "" {
				t.Fatalf("retry: status %d replayed %q: %s", r2.status, r2.header.Get(api.IdempotentReplayedHeader), clip(r2.body))
			}
			rq.body = jsonBody(`{"content":"retry me"}`)
			replayOf(t, r2, e.do(t, rq))
			if n := e.count(t, store.Notes, "content", "retry me"); n != 1 {
				t.Errorf("%d notes, want 1", n)
			}
		})
		t.Run("panics are not remembered", func(t *testing.T) {
			g.panicNext()
			rq := post("/api/v1/notes", `{"content":"panic"}`, "panic-1")
			r := e.do(t, rq)
			if r.status != http.StatusInternalServerError {
				t.Fatalf("status %d: %s", r.status, clip(r.body))
			}
			checkError(t, r, "internal_server_error", store.InternalMessage)
			if n := len(e.logs.lines(t, "panic serving request")); n != 1 {
				t.Errorf("panic logged %d times", n)
			}
			rq.body = jsonBody(`{"content":"panic"}`)
			if r2 := e.do(t, rq); r2.status != http.StatusCreated {
				t.Fatalf("retry: status %d: %s", r2.status, clip(r2.body))
			}
		})

		t.Run("in use while the first request runs", func(t *testing.T) {
			entered, release := g.close()
			defer release()
			rq := post("/api/v1/deals", `{"name":"Slow deal"}`, "slow-1")
			done := make(chan response, 1)
			go func() {
				r, err := e.try(t.Context(), post("/api/v1/deals", `{"name":"Slow deal"}`, "slow-1"))
				if err != nil {
					r.body = []byte(err.Error())
				}
				done <- r
			}()
			waitFor(t, entered, "the first request to reach the insert")

			r := e.do(t, rq)
			if r.status != http.StatusConflict {
				t.Fatalf("second request: status %d: %s", r.status, clip(r.body))
			}
			checkError(t, r, "idempotency_key_in_use", "still being processed")
			other := post("/api/v1/deals", `{"name":"Other deal"}`, "slow-1")
			if r := e.do(t, other); r.status != http.StatusUnprocessableEntity {
				t.Errorf("other request with the key: status %d: %s", r.status, clip(r.body))
			}

			release()
			var first response
			select {
			case first = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("first request did not finish")
			}
			if first.status != http.StatusCreated {
				t.Fatalf("first request: status %d: %s", first.status, clip(first.body))
			}
			rq.body = jsonBody(`{"name":"Slow deal"}`)
			if r := e.do(t, rq); r.status != http.StatusCreated || r.header.Get(api.IdempotentReplayedHeader) != "true" {
				t.Errorf("after the first finished: status %d replayed %q", r.status, r.header.Get(api.IdempotentReplayedHeader))
			}
			if n := e.count(t, store.Deals, "name", "Slow deal"); n != 1 {
				t.Errorf("%d deals, want 1", n)
			}
		})
	})
}

// bodyOf returns the body rq was built with, for sending it again.
func bodyOf(t *testing.T, rq request) string {
	t.Helper()
	if rq.body == nil {
		return ""
	}
	sr, ok := rq.body.(*strings.Reader)
	if !ok {
		t.Fatalf("request body %T cannot be resent", rq.body)
	}
	if _, err := sr.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := sr.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestIdempotencyReplayHeaders checks that a replay carries the current
// request's rate limit headers, not the first one's.
func TestIdempotencyReplayHeaders(t *testing.T) {
	lim := &fakeLimiter{}
	e := newEnv(t, sqliteBackend(t), withLimiter(lim))
	rq := idem(request{method: http.MethodPost, path: "/api/v1/notes", key: e.keyA, body: jsonBody(`{"content":"x"}`)}, "rl-1")
	lim.set(api.RateDecision{Allowed: true, Limit: 10, Remaining: 9, Reset: time.Second}, nil)
	first := e.do(t, rq)
	lim.set(api.RateDecision{Allowed: true, Limit: 10, Remaining: 3, Reset: 4 * time.Second}, nil)
	rq.body = jsonBody(`{"content":"x"}`)
	r := e.do(t, rq)
	replayOf(t, first, r)
	if r.header.Get("X-RateLimit-Remaining") != "3" || r.header.Get("X-RateLimit-Reset") != "4" || first.header.Get("X-RateLimit-Remaining") != "9" {
		t.Errorf("rate limit headers: first %q, replay %q/%q", first.header.Get("X-RateLimit-Remaining"),
			r.header.Get("X-RateLimit-Remaining"), r.header.Get("X-RateLimit-Reset"))
	}
	checkCommon(t, r)
	// A rate-limited retry is refused before the key is looked at.
	lim.set(api.RateDecision{Allowed: false, Limit: 10, RetryAfter: time.Second}, nil)
	rq.body = jsonBody(`{"content":"x"}`)
	if r := e.do(t, rq); r.status != http.StatusTooManyRequests || r.header.Get(api.IdempotentReplayedHeader) != "" {
		t.Errorf("rate limited retry: status %d replayed %q", r.status, r.header.Get(api.IdempotentReplayedHeader))
	}
}

// TestIdempotencyConcurrent sends fifty identical POSTs with one key at
// once, on each backend: exactly one record is created; the other answers
// are the replayed 201 or idempotency_key_in_use. In the second round the
// first request is held inside its insert until all the others have been
// answered, so all of those must be idempotency_key_in_use.
func TestIdempotencyConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		g := gate(open(t))
		e := newEnv(t, g)
		const n = 50
		for _, held := range []bool{false, true} {
			t.Run(map[bool]string{false: "racing", true: "first held"}[held], func(t *testing.T) {
				name := fmt.Sprintf("Fifty %v", held)
				var entered <-chan struct{}
				release := func() {}
				if held {
					entered, release = g.close()
					defer release()
				}
				type result struct {
					status   int
					replayed bool
					code     string
					body     string
				}
				results := make(chan result, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						<-start
						r, err := e.try(t.Context(), idem(request{method: http.MethodPost, path: "/api/v1/accounts", key: e.keyA,
							body: jsonBody(`{"name":"` + name + `"}`)}, name))
						if err != nil {
							results <- result{body: err.Error()}
							return
						}
						res := result{status: r.status, replayed: r.header.Get(api.IdempotentReplayedHeader) == "true", body: string(r.body)}
						var eb api.ErrorBody
						if r.status >= 400 && json.Unmarshal(r.body, &eb) == nil {
							res.code = eb.Error
						}
						results <- res
					})
				}
				close(start)
				var got []result
				if held {
					waitFor(t, entered, "a request to reach the insert")
					for range n - 1 {
						select {
						case r := <-results:
							got = append(got, r)
						case <-time.After(10 * time.Second):
							t.Fatalf("%d of %d other requests answered", len(got), n-1)
						}
					}
					release()
				}
				wg.Wait()
				close(results)
				for r := range results {
					got = append(got, r)
				}
				var fresh, replays, inUse int
				var created string
				for i, r := range got {
					switch {
					case r.status == http.StatusCreated && !r.replayed:
						fresh++
						created = r.body
					case r.status == http.StatusCreated && !held:
						replays++
					case r.status == http.StatusConflict && r.code == store.EIDEMPOTENCYINUSE:
						inUse++
					default:
						t.Errorf("answer %d: status %d replayed %v: %s", i, r.status, r.replayed, r.body)
					}
				}
				if fresh != 1 {
					t.Fatalf("%d requests created, want 1 (replays %d, in use %d)", fresh, replays, inUse)
				}
				if held && inUse != n-1 {
					t.Errorf("%d in use, want %d", inUse, n-1)
				}
				for i, r := range got {
					if r.replayed && r.body != created {
						t.Errorf("answer %d replayed %s, created %s", i, r.body, created)
					}
				}
				if c := e.count(t, store.Accounts, "name", name); c != 1 {
					t.Errorf("%d records, want 1", c)
				}
				t.Logf("1 created, %d replayed, %d in use", replays, inUse)
			})
		}
	})
}
