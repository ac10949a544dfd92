package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestRawKeyNeverKept sends a raw key everywhere a client might misplace it
// (the request id, the user agent, the path, the query, the body, the
// Idempotency-Key) and checks that it never reaches the log, a usage event
// or the idempotency table.
func TestRawKeyNeverKept(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	raw := e.keyA
	auth := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	reqs := []struct {
		rq   request
		want int
	}{
		{request{method: http.MethodGet, path: "/api/v1/me", key: raw, header: auth(map[string]string{"X-Request-Id": raw})}, http.StatusOK},
		{request{method: http.MethodGet, path: "/api/v1/me", key: raw, header: auth(map[string]string{"User-Agent": "zap/1.0 (" + raw + ")"})}, http.StatusOK},
		{request{method: http.MethodGet, path: "/api/v1/accounts/" + raw, key: raw}, http.StatusNotFound},
		{request{method: http.MethodGet, path: "/api/v1/accounts/by-external-id/" + raw, key: raw}, http.StatusMethodNotAllowed},
		{request{method: http.MethodPut, path: "/api/v1/accounts/by-external-id/" + raw, key: raw,
			body: jsonBody(`{"name": "x"}`)}, http.StatusCreated},
		{request{method: http.MethodGet, path: "/api/v1/accounts?q=" + url.QueryEscape(raw), key: raw}, http.StatusUnauthorized},
		{request{method: http.MethodGet, path: "/api/v1/accounts?cursor=" + raw, key: raw}, http.StatusUnauthorized},
		{request{method: http.MethodPost, path: "/api/v1/accounts", key: raw, body: jsonBody(`{"name": 1, "note": "` + raw + `"}`)}, http.StatusBadRequest},
		{request{method: http.MethodPost, path: "/api/v1/accounts", key: raw, body: jsonBody(`{"name": "k", "website": "` + raw + `"}`)}, http.StatusCreated},
		{request{method: http.MethodPost, path: "/api/v1/accounts", key: raw, body: jsonBody(`{"name": "i"}`),
			header: map[string]string{"Idempotency-Key": raw}}, http.StatusBadRequest},
		{request{method: http.MethodPost, path: "/api/v1/accounts", key: raw, body: jsonBody(`{"name": "i"}`),
			header: map[string]string{"Idempotency-Key": "retry " + raw}}, http.StatusBadRequest},
		{request{method: http.MethodGet, path: "/api/v1/me", header: map[string]string{"Authorization": "Bearer " + raw + "x!"}}, http.StatusUnauthorized},
		{request{method: http.MethodGet, path: "/api/v1/me", header: map[string]string{"Authorization": "Basic " + raw}}, http.StatusUnauthorized},
		{request{method: http.MethodGet, path: "/nowhere/" + raw, key: raw}, http.StatusNotFound},
	}
	for _, c := range reqs {
		r := e.do(t, c.rq)
		if r.status != c.want {
			t.Errorf("%s %s: status %d, want %d: %s", c.rq.method, clipPath(c.rq.path), r.status, c.want, clip(r.body))
		}
		if got := r.header.Get("X-Request-Id"); strings.Contains(got, store.KeyPrefix) {
			t.Errorf("%s %s: a raw key became the request id %q", c.rq.method, clipPath(c.rq.path), got)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, store.KeyPrefix) {
		t.Errorf("a raw key reached the log:\n%s", logs)
	}
	for _, ev := range e.usage.wait(t, 8) {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), store.KeyPrefix) {
			t.Errorf("a raw key reached a usage event: %s", b)
		}
	}
	if _, err := e.backend.FindIdempotencyKey(t.Context(), e.wsA.ID, raw); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("idempotency table holds the raw key: %v", err)
	}
}

func clipPath(p string) string {
	return strings.ReplaceAll(p, store.KeyPrefix, "<key>")
}

// TestRateLimitEscalation checks that an admin key cannot create or rotate
// a key allowed more than itself: neither a higher rate nor a larger burst.
func TestRateLimitEscalation(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	admin := e.keyA // the default limit, 100/10s
	for _, limit := range []string{"11/s", "864000/24h", "101/10s", "200/20s"} {
		r := e.do(t, request{method: http.MethodPost, path: adminKeysPath, key: admin,
			body: jsonBody(`{"name": "n", "scopes": ["read:leads"], "rate_limit": "` + limit + `"}`)})
		if r.status != http.StatusBadRequest {
			t.Errorf("rate_limit %s: status %d, want 400: %s", limit, r.status, clip(r.body))
		}
	}
	for _, limit := range []string{"100/10s", "10/s", "50/10s", "100/h"} {
		r := e.do(t, request{method: http.MethodPost, path: adminKeysPath, key: admin,
			body: jsonBody(`{"name": "n", "scopes": ["read:leads"], "rate_limit": "` + limit + `"}`)})
		if r.status != http.StatusCreated {
			t.Errorf("rate_limit %s: status %d, want 201: %s", limit, r.status, clip(r.body))
		}
	}

	// A key made by the operator with a larger limit is visible to the admin
	// key and can be revoked by it, but not rotated: that would hand out a
	// raw key with more than the admin key's own limit.
	big := store.RateLimit{Count: 10_000, Period: 10 * time.Second}
	k, _, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wsA.ID, Name: "bulk import",
		Scopes: []store.Scope{store.ReadScope("leads")}, RateLimit: &big})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, request{method: http.MethodGet, path: adminKeysPath, key: admin}); !strings.Contains(string(r.body), k.ID) {
		t.Errorf("the key list lacks a key of the workspace with a larger limit: %s", clip(r.body))
	}
	if r := e.do(t, request{method: http.MethodGet, path: adminKeysPath + "/" + k.ID, key: admin}); r.status != http.StatusOK {
		t.Errorf("get a key with a larger limit: %d, want 200", r.status)
	}
	r := e.do(t, request{method: http.MethodPost, path: adminKeysPath + "/" + k.ID + "/rotate", key: admin})
	checkError(t, r, store.EFORBIDDEN)
	if r := e.do(t, request{method: http.MethodPost, path: adminKeysPath + "/" + k.ID + "/revoke", key: admin}); r.status != http.StatusOK {
		t.Errorf("revoke a key with a larger limit: %d, want 200", r.status)
	}
}

const adminKeysPath = "/api/v1/keys"

// TestForgedCursor pages workspace A with cursors built from workspace B's
// records and with forged positions: a cursor is only a position, so the
// answer only ever holds A's records, and malformed cursors are 400.
func TestForgedCursor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t))
		var mine []string
		for i := range 3 {
			mine = append(mine, e.create(e.keyA, store.Accounts, map[string]any{"name": fmt.Sprint("A", i)}).ID)
		}
		theirs := e.create(e.keyB, store.Accounts, map[string]any{"name": "B"})
		enc := func(v any) string {
			b, _ := json.Marshal(v)
			return base64.RawURLEncoding.EncodeToString(b)
		}
		for _, c := range []string{
			enc(map[string]any{"s": "-created_at", "t": theirs.CreatedAt.UnixMilli() + 1000, "i": theirs.ID}),
			enc(map[string]any{"s": "created_at", "t": 1, "i": theirs.ID}),
			enc(map[string]any{"s": "-updated_at", "t": int64(1) << 62, "i": "ffffffff-ffff-7fff-bfff-ffffffffffff"}),
		} {
			r := e.do(t, request{method: http.MethodGet, path: "/api/v1/accounts?cursor=" + c, key: e.keyA})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, clip(r.body))
			}
			for _, id := range decodePage(t, r).ids() {
				if id == theirs.ID || !contains(mine, id) {
					t.Errorf("cursor %s: got record %s that is not workspace A's", c, id)
				}
			}
		}
		for _, c := range []string{
			enc(map[string]any{"s": "-created_at", "t": 1, "i": "x' OR 1=1 --"}),
			enc(map[string]any{"s": "name", "t": 1, "i": theirs.ID}),
			enc(map[string]any{"s": "-created_at", "t": map[string]any{"$gt": 0}, "i": theirs.ID}),
			enc(map[string]any{"s": "-created_at", "t": -5, "i": theirs.ID}),
			enc([]any{1, 2}), "%00", "!!!", strings.Repeat("A", 600),
		} {
			r := e.do(t, request{method: http.MethodGet, path: "/api/v1/accounts?cursor=" + url.QueryEscape(c), key: e.keyA})
			checkError(t, r, store.EBADREQUEST, "cursor")
		}
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
