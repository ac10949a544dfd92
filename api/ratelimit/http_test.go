package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
	"github.com/hustack/hustack/worker/redistest"
)

// TestHTTPHeaders serves a key limited to 5/m through two API instances
// sharing one Redis: five requests in total pass, with the X-RateLimit-*
// headers counting down, and then both answer 429 with Retry-After.
func TestHTTPHeaders(t *testing.T) {
	opts := redistest.Options(t)
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hustack.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := store.NewService(db)
	ws, err := svc.CreateWorkspace(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	_, raw, err := svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: ws.ID, Name: "limited", Scopes: []store.Scope{store.ScopeUsage},
		RateLimit: &store.RateLimit{Count: 5, Period: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	prefix := redistest.Name(t) + ":"
	instances := []http.Handler{
		api.New(api.Config{Service: svc, Limiter: newShared(t, opts, prefix)}),
		api.New(api.Config{Service: svc, Limiter: newShared(t, opts, prefix)}),
	}

	header := func(rec *httptest.ResponseRecorder, name string) int {
		t.Helper()
		n, err := strconv.Atoi(rec.Header().Get(name))
		if err != nil {
			t.Fatalf("header %s: %q", name, rec.Header().Get(name))
		}
		return n
	}
	for i := range 8 {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+raw)
		rec := httptest.NewRecorder()
		instances[i%2].ServeHTTP(rec, req)

		limit, remaining, reset := header(rec, "X-RateLimit-Limit"), header(rec, "X-RateLimit-Remaining"), header(rec, "X-RateLimit-Reset")
		if limit != 5 || reset < 1 || reset > 60 {
			t.Fatalf("request %d: limit %d reset %d, want 5 and 1..60 s", i+1, limit, reset)
		}
		if i < 5 {
			if rec.Code != http.StatusOK || remaining != 4-i {
				t.Fatalf("request %d: status %d remaining %d, want 200 and %d", i+1, rec.Code, remaining, 4-i)
			}
			continue
		}
		if rec.Code != http.StatusTooManyRequests || remaining != 0 {
			t.Fatalf("request %d: status %d remaining %d, want 429 and 0", i+1, rec.Code, remaining)
		}
		// One request is allowed every 12 s after the burst.
		if retry := header(rec, "Retry-After"); retry < 1 || retry > 12 {
			t.Fatalf("request %d: Retry-After %d, want 1..12", i+1, retry)
		}
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if body["error"] != "rate_limit_exceeded" || body["message"] != "Too many requests. Please try again later." {
			t.Fatalf("request %d: body %v", i+1, body)
		}
	}
}
