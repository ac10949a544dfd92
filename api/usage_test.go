package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hustack/hustack/store"
)

// TestUsageEvents checks that every authenticated request, and only those,
// produces one usage event with the route template and no key material.
func TestUsageEvents(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	acc := e.create(e.keyA, store.Accounts, map[string]any{"name": "Usage Co"})
	longUA := strings.Repeat("é", 600) // 1200 bytes
	calls := []struct {
		req    request
		route  string
		status int
	}{
		{request{method: "GET", path: "/api/v1/accounts?limit=5", key: e.keyA}, "/api/v1/accounts", 200},
		{request{method: "GET", path: "/api/v1/accounts/" + acc.ID, key: e.keyA, header: map[string]string{"User-Agent": longUA}}, "/api/v1/accounts/:id", 200},
		{request{method: "GET", path: "/api/v1/accounts/" + store.NewID(), key: e.keyA}, "/api/v1/accounts/:id", 404},
		{request{method: "POST", path: "/api/v1/notes", key: e.keyA, body: jsonBody(`{"content":"secret body text"}`)}, "/api/v1/notes", 201},
		{request{method: "POST", path: "/api/v1/notes", key: e.keyA, body: jsonBody(`{"content":`)}, "/api/v1/notes", 400},
		{request{method: "GET", path: "/api/v1/me", key: e.keyB}, "/api/v1/me", 200},
		{request{method: "GET", path: "/api/v1/usage/logs", key: e.keyWithout(store.ScopeUsage)}, "/api/v1/usage/logs", 403},
	}
	// Requests that were not authenticated produce no event.
	unauthenticated := []request{
		{method: "GET", path: "/api/v1/accounts"},
		{method: "GET", path: "/api/v1/accounts", key: e.revoked},
		{method: "GET", path: "/api/v1/accounts", key: "hs_live_" + strings.Repeat("x", 40)},
		{method: "GET", path: "/api/v1/accounts?api_key=" + e.keyA},
		{method: "GET", path: "/api/v1/health", key: e.keyA},
		{method: "GET", path: "/api/v1/nothing-here", key: e.keyA},
		{method: "DELETE", path: "/api/v1/accounts", key: e.keyA},
	}
	e.usage.reset()
	start := time.Now().UTC().Truncate(time.Millisecond)
	var reqIDs []string
	for _, c := range calls {
		r := e.do(t, c.req)
		if r.status != c.status {
			t.Fatalf("%s %s: status %d, want %d: %s", c.req.method, c.req.path, r.status, c.status, r.body)
		}
		reqIDs = append(reqIDs, r.header.Get("X-Request-Id"))
	}
	for _, rq := range unauthenticated {
		e.do(t, rq)
	}
	// One more authenticated request marks the end: once its event is in,
	// every earlier one is too.
	if r := e.do(t, request{method: "GET", path: "/api/v1/me", key: e.keyA}); r.status != 200 {
		t.Fatalf("me: %d", r.status)
	}
	events := e.usage.wait(t, len(calls)+1)
	end := time.Now().UTC()
	if len(events) != len(calls)+1 {
		t.Fatalf("%d events, want %d: %+v", len(events), len(calls)+1, events)
	}
	seen := map[string]bool{}
	for i, c := range calls {
		ev := events[i]
		wantKey, wantWS := e.keyAID, e.wsA.ID
		if c.req.key == e.keyB {
			wantKey, wantWS = e.keyBID, e.wsB.ID
		} else if c.req.key != e.keyA {
			wantKey = "" // the scope-less key: checked below by workspace only
		}
		if !store.ValidID(ev.ID) || seen[ev.ID] {
			t.Errorf("event %d: id %q not a new UUID", i, ev.ID)
		}
		seen[ev.ID] = true
		if ev.WorkspaceID != wantWS || (wantKey != "" && ev.KeyID != wantKey) || !store.ValidID(ev.KeyID) {
			t.Errorf("event %d: workspace %s key %s, want %s %s", i, ev.WorkspaceID, ev.KeyID, wantWS, wantKey)
		}
		if ev.Method != c.req.method || ev.Route != c.route || ev.Status != c.status || ev.Transport != store.TransportREST {
			t.Errorf("event %d: %s %s %d %s, want %s %s %d rest", i, ev.Method, ev.Route, ev.Status, ev.Transport, c.req.method, c.route, c.status)
		}
		if ev.RequestID != reqIDs[i] {
			t.Errorf("event %d: request id %q, response said %q", i, ev.RequestID, reqIDs[i])
		}
		if ev.Time.Before(start) || ev.Time.After(end) || ev.Time.Location() != time.UTC || ev.DurationMS < 0 {
			t.Errorf("event %d: time %v duration %v outside the test", i, ev.Time, ev.DurationMS)
		}
		if len(ev.UserAgent) > 256 || !utf8.ValidString(ev.UserAgent) || ev.UserAgent == "" {
			t.Errorf("event %d: user agent %q (%d bytes)", i, ev.UserAgent, len(ev.UserAgent))
		}
	}
	if ua := events[1].UserAgent; !strings.HasPrefix(longUA, ua) || len(ua) < 250 {
		t.Errorf("long user agent kept as %d bytes %q", len(ua), ua)
	}
	raw, _ := json.Marshal(events)
	for _, secret := range []string{e.keyA, e.keyB, e.revoked, store.KeyPrefix, "secret body text", "Usage Co"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("usage events contain %q", secret)
		}
	}
}

// TestUsageEndpoints stores the events the API recorded and reads them back
// through GET /usage and /usage/logs, on each backend.
func TestUsageEndpoints(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t))
		_, keyA2 := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ReadScope("accounts")}, nil)
		e.usage.reset()
		before := time.Now().UTC().Add(-time.Second)
		n := 0
		for range 3 {
			e.do(t, request{method: "GET", path: "/api/v1/accounts", key: e.keyA})
			n++
		}
		e.do(t, request{method: "GET", path: "/api/v1/accounts/" + store.NewID(), key: e.keyA}) // 404
		e.do(t, request{method: "GET", path: "/api/v1/accounts", key: keyA2})
		e.do(t, request{method: "GET", path: "/api/v1/leads", key: keyA2}) // 403
		e.do(t, request{method: "GET", path: "/api/v1/me", key: e.keyB})
		n += 4
		events := e.usage.wait(t, n)
		if err := e.svc.RecordUsage(t.Context(), events); err != nil {
			t.Fatalf("RecordUsage: %v", err)
		}
		keyA2ID := events[4].KeyID
		after := time.Now().UTC().Add(time.Second)
		day := events[0].Time.Format("2006-01-02")
		counts := func(want string) func(t *testing.T, r response) {
			return func(t *testing.T, r response) {
				t.Helper()
				var body struct {
					Data    []store.UsageCount `json:"data"`
					GroupBy string             `json:"group_by"`
				}
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, c := range body.Data {
					got = append(got, fmt.Sprintf("%s=%d/%d", c.Group, c.Count, c.Errors))
				}
				if s := body.GroupBy + ": " + strings.Join(got, " "); s != want {
					t.Errorf("got %q, want %q", s, want)
				}
			}
		}
		logs := func(want ...string) func(t *testing.T, r response) {
			return func(t *testing.T, r response) {
				t.Helper()
				var page store.Page[store.UsageEvent]
				if err := json.Unmarshal(r.body, &page); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, ev := range page.Data {
					if ev.WorkspaceID != e.wsA.ID {
						t.Errorf("event of workspace %s", ev.WorkspaceID)
					}
					got = append(got, fmt.Sprintf("%d %s", ev.Status, ev.Route))
				}
				if strings.Join(got, ", ") != strings.Join(want, ", ") {
					t.Errorf("logs %q, want %q", got, want)
				}
			}
		}
		get := func(path string) request { return request{method: "GET", path: path, key: e.keyA} }
		q := url.QueryEscape
		run(t, e, []group{
			{http.StatusOK, []scenario{
				// The usage requests themselves are recorded too, but not
				// stored: only the events above are in the store.
				{name: "default by day", req: get("/api/v1/usage"), check: counts("day: " + day + "=6/2")},
				{name: "by route", req: get("/api/v1/usage?group_by=route"),
					check: counts("route: /api/v1/accounts=4/0 /api/v1/accounts/:id=1/1 /api/v1/leads=1/1")},
				{name: "by status", req: get("/api/v1/usage?group_by=status"), check: counts("status: 200=4/0 403=1/1 404=1/1")},
				{name: "by key filtered", req: get("/api/v1/usage?group_by=key&key_id=" + keyA2ID),
					check: counts("key: " + keyA2ID + "=2/1")},
				{name: "time window", req: get("/api/v1/usage?from=" + q(before.Format(time.RFC3339Nano)) + "&to=" + q(after.Format(time.RFC3339Nano))),
					check: counts("day: " + day + "=6/2")},
				{name: "empty window", req: get("/api/v1/usage?to=" + q(before.Format(time.RFC3339))), check: counts("day: ")},
				{name: "logs newest first", req: get("/api/v1/usage/logs?limit=3"),
					check: logs("403 /api/v1/leads", "200 /api/v1/accounts", "404 /api/v1/accounts/:id")},
				{name: "logs by status", req: get("/api/v1/usage/logs?status=404"), check: logs("404 /api/v1/accounts/:id")},
				{name: "logs by key", req: get("/api/v1/usage/logs?key_id=" + keyA2ID), check: logs("403 /api/v1/leads", "200 /api/v1/accounts")},
				{name: "logs offset", req: get("/api/v1/usage/logs?offset=5"), check: logs("200 /api/v1/accounts")},
				{name: "logs page", req: get("/api/v1/usage/logs?limit=2"), check: func(t *testing.T, r response) {
					p := r.json(t)["pagination"].(map[string]any)
					if p["limit"] != 2.0 || p["offset"] != 0.0 || p["has_more"] != true {
						t.Errorf("pagination %v", p)
					}
				}},
			}},
			{http.StatusBadRequest, []scenario{
				{name: "group_by unknown", req: get("/api/v1/usage?group_by=week"), msg: []string{"group_by"}},
				{name: "group_by operator", req: get("/api/v1/usage?group_by[$ne]=day"), msg: []string{"group_by[$ne]"}},
				{name: "key_id shape", req: get("/api/v1/usage?key_id=abc"), msg: []string{"key_id"}},
				{name: "key_id operator", req: get("/api/v1/usage/logs?key_id=" + q(`{"$ne":""}`)), msg: []string{"key_id"}},
				{name: "from not a time", req: get("/api/v1/usage?from=yesterday"), msg: []string{"from"}},
				{name: "to date only", req: get("/api/v1/usage?to=2025-01-01"), msg: []string{"to"}},
				{name: "from after to", req: get("/api/v1/usage?from=" + q(after.Format(time.RFC3339)) + "&to=" + q(before.Format(time.RFC3339))), msg: []string{"from"}},
				{name: "status text", req: get("/api/v1/usage/logs?status=ok"), msg: []string{"status"}},
				{name: "status out of range", req: get("/api/v1/usage/logs?status=999"), msg: []string{"status"}},
				{name: "status on counts", req: get("/api/v1/usage?status=200"), msg: []string{"status"}},
				{name: "logs limit 0", req: get("/api/v1/usage/logs?limit=0"), msg: []string{"limit"}},
				{name: "logs repeated key_id", req: get("/api/v1/usage/logs?key_id=" + keyA2ID + "&key_id=" + keyA2ID), msg: []string{"key_id"}},
			}},
		})
	})
}
