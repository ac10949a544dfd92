package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

func TestHealth(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	const want = `{"status":"ok","service":"hustack-api","version":"v1"}`
	for _, rq := range []request{
		{method: "GET", path: "/api/v1/health"},
		{method: "GET", path: "/api/v1/health", key: "not-a-key"},
		{method: "GET", path: "/api/v1/health", key: e.revoked},
	} {
		r := e.do(t, rq)
		if r.status != 200 || string(r.body) != want {
			t.Errorf("health with key %q: %d %s, want 200 %s", rq.key, r.status, r.body, want)
		}
		checkCommon(t, r)
	}
	run(t, e, []group{
		{http.StatusMethodNotAllowed, []scenario{
			{name: "POST health", req: request{method: "POST", path: "/api/v1/health"}, check: allow("GET")},
		}},
	})
}

// HEAD answers like GET without a body, for uptime checks and proxies.
func TestHead(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	for _, rq := range []request{
		{method: "HEAD", path: "/api/v1/health"},
		{method: "HEAD", path: "/api/v1/accounts", key: e.keyA},
		{method: "HEAD", path: "/console/"},
	} {
		r := e.do(t, rq)
		if r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes, want 200 and no body", rq.path, r.status, len(r.body))
		}
		if r.header.Get("Content-Type") == "" || r.header.Get("X-Request-Id") == "" {
			t.Errorf("HEAD %s: headers %v lack Content-Type or X-Request-Id", rq.path, r.header)
		}
	}
	if r := e.do(t, request{method: "HEAD", path: "/api/v1/accounts"}); r.status != http.StatusUnauthorized {
		t.Errorf("HEAD without a key: %d, want 401", r.status)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	auth := func(v string) request {
		return request{method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": v}}
	}
	me := func(path string, key string) request { return request{method: "GET", path: path, key: key} }
	unknown := store.GenerateKey()
	run(t, e, []group{
		{http.StatusOK, []scenario{
			{name: "bearer", req: me("/api/v1/me", e.keyA)},
			{name: "scheme in lower case", req: auth("bearer " + e.keyA)},
			{name: "extra spaces", req: auth("  Bearer   " + e.keyA + "  ")},
		}},
		{http.StatusUnauthorized, []scenario{
			{name: "no header", req: me("/api/v1/me", ""), msg: []string{"Missing API key."}},
			{name: "empty header", req: auth(""), msg: []string{"Missing API key."}},
			{name: "scheme only", req: auth("Bearer"), msg: []string{"Missing API key."}},
			{name: "scheme and spaces", req: auth("Bearer    "), msg: []string{"Missing API key."}},
			{name: "key in another header", req: request{method: "GET", path: "/api/v1/me", header: map[string]string{"X-API-Key": e.keyA}},
				msg: []string{"Missing API key."}},
			{name: "basic", req: auth("Basic dXNlcjpwYXNz"), msg: []string{"Invalid API key."}},
			{name: "other scheme", req: auth("Token " + e.keyA), msg: []string{"Invalid API key."}},
			{name: "no scheme", req: auth(e.keyA), msg: []string{"Invalid API key."}},
			{name: "short key", req: auth("Bearer hs_live_short"), msg: []string{"Invalid API key."}},
			{name: "unknown key", req: me("/api/v1/me", unknown), msg: []string{"Invalid API key."}},
			{name: "key with a space", req: auth("Bearer " + e.keyA[:20] + " " + e.keyA[20:]), msg: []string{"Invalid API key."}},
			{name: "key with operator", req: auth(`Bearer {"$ne":""}`), msg: []string{"Invalid API key."}},
			{name: "long key", req: auth("Bearer hs_live_" + strings.Repeat("A", 10_000)), msg: []string{"Invalid API key."}},
			{name: "two headers", req: request{method: "GET", path: "/api/v1/me", key: e.keyA,
				multi: http.Header{"Authorization": {"Bearer " + e.keyA}}}, msg: []string{"Invalid API key."}},
			{name: "api_key in query", req: me("/api/v1/me?api_key="+e.keyA, ""), msg: []string{"query string", "Authorization: Bearer"}},
			{name: "key in query", req: me("/api/v1/accounts?key="+e.keyA, ""), msg: []string{"query string"}},
			{name: "access_token in query", req: me("/api/v1/accounts?access_token=abc", ""), msg: []string{"query string"}},
			{name: "upper-case name in query", req: me("/api/v1/accounts?API_KEY="+e.keyA, ""), msg: []string{"query string"}},
			{name: "bracket form in query", req: me("/api/v1/accounts?api_key[$ne]=1", ""), msg: []string{"query string"}},
			{name: "key value under another name", req: me("/api/v1/accounts?q="+e.keyA, ""), msg: []string{"query string"}},
			{name: "query key next to a valid header", req: me("/api/v1/accounts?api_key="+e.keyA, e.keyA), msg: []string{"query string"}},
		}},
		{http.StatusGone, []scenario{
			{name: "revoked", req: me("/api/v1/me", e.revoked), code: "revoked_key", msg: []string{"This API key has been revoked."}},
			{name: "expired", req: me("/api/v1/accounts", e.expired), code: "expired_key", msg: []string{"This API key has expired."}},
		}},
	})
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	for _, rq := range []request{
		{method: "GET", path: "/api/v1/health"},
		{method: "GET", path: "/api/v1/me", key: e.keyA},
		{method: "GET", path: "/api/v1/me"},
		{method: "GET", path: "/nowhere"},
	} {
		t.Run(rq.path, func(t *testing.T) {
			rq.header = map[string]string{"X-Request-Id": "client-id_1.2:3"}
			if got := e.do(t, rq).header.Get("X-Request-Id"); got != "client-id_1.2:3" {
				t.Errorf("sane incoming id: got %q", got)
			}
			seen := map[string]bool{}
			for _, in := range []string{"", "has space", "<script>", strings.Repeat("a", 129), "ünï", "a\tb"} {
				rq.header = map[string]string{"X-Request-Id": in}
				got := e.do(t, rq).header.Get("X-Request-Id")
				if !store.ValidID(got) || seen[got] {
					t.Errorf("incoming %q: got %q, want a new generated id", in, got)
				}
				seen[got] = true
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	for _, rq := range []request{
		{method: "GET", path: "/api/v1/health"},
		{method: "GET", path: "/api/v1/accounts", key: e.keyA},
		{method: "GET", path: "/api/v1/accounts"},
		{method: "GET", path: "/missing"},
	} {
		h := e.do(t, rq).header
		for k, v := range map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
			"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		} {
			if h.Get(k) != v {
				t.Errorf("%s %s: %s = %q, want %q", rq.method, rq.path, k, h.Get(k), v)
			}
		}
	}
}

// TestPanic makes the handler mounted at /mcp panic: the client gets a JSON
// 500 with the generic message, the panic is logged once with the request id,
// and the request still produces a usage event.
func TestPanic(t *testing.T) {
	e := newEnv(t, sqliteBackend(t), withMCP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom: secret detail")
	})))
	e.usage.reset()
	r := e.do(t, request{method: "POST", path: "/mcp", key: e.keyA, body: jsonBody(`{}`)})
	if r.status != 500 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	checkError(t, r, "internal_server_error", "An unexpected error occurred.")
	if strings.Contains(string(r.body), "boom") {
		t.Errorf("panic value reached the client: %s", r.body)
	}
	lines := e.logs.lines(t, "panic serving request")
	if len(lines) != 1 || lines[0]["request_id"] != r.header.Get("X-Request-Id") || !strings.Contains(fmt.Sprint(lines[0]["panic"]), "boom") {
		t.Errorf("panic logged %d times: %v", len(lines), lines)
	}
	if n := len(e.logs.lines(t, "request failed")); n != 0 {
		t.Errorf("panic logged again as a failed request (%d lines)", n)
	}
	ev := e.usage.wait(t, 1)[0]
	if ev.Status != 500 || ev.Route != "/mcp" || ev.Transport != store.TransportMCP {
		t.Errorf("usage event %+v", ev)
	}
}

// TestInternalError closes the database under the running API: requests get
// a JSON 500 with the generic message and the cause is logged once.
func TestInternalError(t *testing.T) {
	b := sqliteBackend(t)
	e := newEnv(t, b)
	if r := e.do(t, request{method: "GET", path: "/api/v1/accounts", key: e.keyA}); r.status != 200 {
		t.Fatalf("before closing: %d", r.status)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i, rq := range []request{
		{method: "GET", path: "/api/v1/accounts", key: e.keyA},
		{method: "POST", path: "/api/v1/accounts", key: e.keyA, body: jsonBody(`{"name":"x"}`)},
	} {
		r := e.do(t, rq)
		if r.status != 500 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		checkError(t, r, "internal_server_error", "An unexpected error occurred.")
		lines := e.logs.lines(t, "request failed")
		if len(lines) != i+1 || lines[i]["request_id"] != r.header.Get("X-Request-Id") || lines[i]["error"] == "" {
			t.Errorf("logged %d failures: %v", len(lines), lines)
		}
		for _, line := range lines {
			if strings.Contains(fmt.Sprint(line), store.KeyPrefix) {
				t.Errorf("log line holds key material: %v", line)
			}
		}
	}
}

// fakeLimiter answers with a fixed decision or error and records who asked.
// The real limiter is tested against Redis in its own package.
type fakeLimiter struct {
	mu       sync.Mutex
	decision api.RateDecision
	err      error
	asked    []string // key ids
}

func (f *fakeLimiter) Allow(_ context.Context, p store.Principal) (api.RateDecision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, p.KeyID)
	return f.decision, f.err
}

func (f *fakeLimiter) set(d api.RateDecision, err error) {
	f.mu.Lock()
	f.decision, f.err, f.asked = d, err, nil
	f.mu.Unlock()
}

func (f *fakeLimiter) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

func TestRateLimit(t *testing.T) {
	lim := &fakeLimiter{}
	e := newEnv(t, sqliteBackend(t), withLimiter(lim))
	rateHeaders := func(limit, remaining, reset string) map[string]string {
		return map[string]string{"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}
	}

	t.Run("allowed", func(t *testing.T) {
		lim.set(api.RateDecision{Allowed: true, Limit: 100, Remaining: 42, Reset: 1500 * time.Millisecond}, nil)
		run(t, e, []group{
			{http.StatusOK, []scenario{
				{name: "me", req: request{method: "GET", path: "/api/v1/me", key: e.keyA}, header: rateHeaders("100", "42", "2"),
					check: func(t *testing.T, r response) {
						var me api.MeResponse
						if err := json.Unmarshal(r.body, &me); err != nil {
							t.Fatal(err)
						}
						if me.RateLimitState == nil || *me.RateLimitState != (api.RateLimitState{Limit: 100, Remaining: 42, ResetSeconds: 2}) {
							t.Errorf("rate_limit_state %+v", me.RateLimitState)
						}
						if r.header.Get("Retry-After") != "" {
							t.Error("Retry-After on an allowed request")
						}
					}},
			}},
			{http.StatusNotFound, []scenario{
				{name: "errors carry the headers too", req: request{method: "GET", path: "/api/v1/accounts/" + store.NewID(), key: e.keyA},
					header: rateHeaders("100", "42", "2")},
			}},
		})
		if got := lim.calls(); !slices.Equal(got, []string{e.keyAID, e.keyAID}) {
			t.Errorf("limiter asked for %v, want the caller's key twice", got)
		}
	})

	t.Run("denied", func(t *testing.T) {
		lim.set(api.RateDecision{Allowed: false, Limit: 10, Remaining: 0, Reset: 9 * time.Second, RetryAfter: 2200 * time.Millisecond}, nil)
		e.usage.reset()
		h := rateHeaders("10", "0", "9")
		h["Retry-After"] = "3"
		run(t, e, []group{
			{http.StatusTooManyRequests, []scenario{
				{name: "list", req: request{method: "GET", path: "/api/v1/accounts", key: e.keyA}, header: h,
					msg: []string{"Too many requests. Please try again later."}},
				{name: "create is not run", req: request{method: "POST", path: "/api/v1/accounts", key: e.keyA, body: jsonBody(`{"name":"Limited"}`)},
					header: h},
			}},
		})
		evs := e.usage.wait(t, 2)
		if evs[0].Status != 429 || evs[1].Status != 429 || evs[1].Route != "/api/v1/accounts" {
			t.Errorf("usage events %+v", evs)
		}
		lim.set(api.RateDecision{Allowed: true, Limit: 10, Remaining: 5}, nil)
		r := e.do(t, request{method: "GET", path: "/api/v1/accounts", key: e.keyA})
		if n := len(decodeList(t, r).Data); n != 0 {
			t.Errorf("a rate-limited create stored a record (%d listed)", n)
		}
		lim.set(api.RateDecision{Allowed: false, Limit: 10}, nil)
		if got := e.do(t, request{method: "GET", path: "/api/v1/me", key: e.keyA}).header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After without a duration = %q, want 1", got)
		}
	})

	t.Run("limiter error lets requests through", func(t *testing.T) {
		lim.set(api.RateDecision{}, errors.New("redis: connection refused"))
		before := len(e.logs.lines(t, "rate limiter failed; request allowed"))
		for range 3 {
			r := e.do(t, request{method: "GET", path: "/api/v1/me", key: e.keyA})
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.header.Get("X-RateLimit-Limit") != "" {
				t.Error("rate limit headers without a decision")
			}
			var me api.MeResponse
			if err := json.Unmarshal(r.body, &me); err != nil || me.RateLimitState != nil {
				t.Errorf("rate_limit_state without a decision: %s", r.body)
			}
		}
		if n := len(e.logs.lines(t, "rate limiter failed; request allowed")) - before; n != 1 {
			t.Errorf("limiter failure logged %d times for 3 requests, want 1", n)
		}
	})

	t.Run("unauthenticated requests are not counted", func(t *testing.T) {
		lim.set(api.RateDecision{Allowed: true, Limit: 1, Remaining: 1}, nil)
		for _, rq := range []request{{method: "GET", path: "/api/v1/me"}, {method: "GET", path: "/api/v1/me", key: e.revoked},
			{method: "GET", path: "/api/v1/health"}} {
			if r := e.do(t, rq); r.header.Get("X-RateLimit-Limit") != "" {
				t.Errorf("%s with key %q: rate limit headers", rq.path, rq.key)
			}
		}
		if got := lim.calls(); len(got) != 0 {
			t.Errorf("limiter asked %d times", len(got))
		}
	})
}

func TestNoLimiter(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	r := e.do(t, request{method: "GET", path: "/api/v1/me", key: e.keyA})
	if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "" {
		t.Errorf("status %d, X-RateLimit-Limit %q", r.status, r.header.Get("X-RateLimit-Limit"))
	}
	var me map[string]any
	if err := json.Unmarshal(r.body, &me); err != nil {
		t.Fatal(err)
	}
	if _, ok := me["rate_limit_state"]; ok {
		t.Errorf("rate_limit_state without a limiter: %s", r.body)
	}
	key := me["key"].(map[string]any)
	ws := me["workspace"].(map[string]any)
	if ws["id"] != e.wsA.ID || ws["name"] != "Workspace A" || len(ws) != 2 {
		t.Errorf("workspace %v", ws)
	}
	for _, k := range []string{"id", "name", "prefix", "scopes", "created_at", "expires_at", "rate_limit"} {
		if _, ok := key[k]; !ok {
			t.Errorf("key has no %s: %v", k, key)
		}
	}
	if key["id"] != e.keyAID || key["rate_limit"] != "100/10s" || !strings.HasPrefix(e.keyA, key["prefix"].(string)) {
		t.Errorf("key %v", key)
	}
	if strings.Contains(string(r.body), e.keyA) {
		t.Error("GET /me shows the raw key")
	}
	if got := e.do(t, request{method: "POST", path: "/mcp", key: e.keyA}); got.status != 404 {
		t.Errorf("/mcp without an MCP handler: status %d", got.status)
	}
}

// TestMCPMount mounts a handler at /mcp that reports what it received: the
// principal must be on the request context, behind the same authentication,
// rate limiting and usage recording as REST.
func TestMCPMount(t *testing.T) {
	lim := &fakeLimiter{decision: api.RateDecision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Second}}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := store.PrincipalFromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ok": ok, "workspace": p.WorkspaceID, "key": p.KeyID, "method": r.Method,
			"request_id": r.Header.Get("X-Request-Id"), "ctx_request_id": api.RequestIDFromContext(r.Context()),
		})
	})
	e := newEnv(t, sqliteBackend(t), withMCP(echo), withLimiter(lim))
	e.usage.reset()
	for _, m := range []string{"POST", "GET", "DELETE"} {
		r := e.do(t, request{method: m, path: "/mcp", key: e.keyB, body: jsonBody(`{"jsonrpc":"2.0"}`)})
		got := r.json(t)
		id := r.header.Get("X-Request-Id")
		if r.status != 200 || got["ok"] != true || got["workspace"] != e.wsB.ID || got["key"] != e.keyBID || got["method"] != m ||
			got["request_id"] != id || got["ctx_request_id"] != id {
			t.Errorf("%s /mcp: %d %v", m, r.status, got)
		}
		if r.header.Get("X-RateLimit-Remaining") != "4" {
			t.Errorf("%s /mcp: no rate limit headers", m)
		}
	}
	evs := e.usage.wait(t, 3)
	for _, ev := range evs {
		if ev.Transport != store.TransportMCP || ev.Route != "/mcp" || ev.KeyID != e.keyBID || ev.Status != 200 {
			t.Errorf("usage event %+v", ev)
		}
	}
	lim.set(api.RateDecision{Allowed: false, Limit: 5, RetryAfter: time.Second}, nil)
	run(t, e, []group{
		{http.StatusUnauthorized, []scenario{
			{name: "no key", req: request{method: "POST", path: "/mcp"}, msg: []string{"Missing API key."}},
			{name: "unknown key", req: request{method: "POST", path: "/mcp", key: store.GenerateKey()}, msg: []string{"Invalid API key."}},
			{name: "key in query", req: request{method: "GET", path: "/mcp?api_key=" + e.keyA}, msg: []string{"query string"}},
		}},
		{http.StatusGone, []scenario{
			{name: "revoked", req: request{method: "POST", path: "/mcp", key: e.revoked}, code: "revoked_key"},
			{name: "expired", req: request{method: "GET", path: "/mcp", key: e.expired}, code: "expired_key"},
		}},
		{http.StatusTooManyRequests, []scenario{
			{name: "rate limited", req: request{method: "POST", path: "/mcp", key: e.keyA, body: jsonBody(`{}`)}, header: map[string]string{"Retry-After": "1"}},
		}},
		{http.StatusRequestEntityTooLarge, []scenario{
			{name: "large body", req: request{method: "POST", path: "/mcp", key: e.keyA, body: jsonBody(strings.Repeat(" ", 2<<20))}},
		}},
		{http.StatusMethodNotAllowed, []scenario{
			{name: "PUT", req: request{method: "PUT", path: "/mcp", key: e.keyA}, check: allowExactly("GET, POST, DELETE")},
		}},
	})
}

// TestRoutes checks the route table against the operation table and against
// what the server actually serves.
func TestRoutes(t *testing.T) {
	routes := api.Routes()
	byOp := map[string]int{}
	byRoute := map[string]string{}
	for _, rt := range routes {
		byOp[rt.Operation.Name]++
		if _, ok := store.OperationByName(rt.Operation.Name); !ok {
			t.Errorf("route %s %s serves unknown operation %q", rt.Method, rt.Path, rt.Operation.Name)
		}
		k := rt.Method + " " + rt.Path
		if prev, dup := byRoute[k]; dup {
			t.Errorf("%s serves both %s and %s", k, prev, rt.Operation.Name)
		}
		byRoute[k] = rt.Operation.Name
		if !strings.HasPrefix(rt.Path, api.APIPrefix+"/") {
			t.Errorf("route %s outside %s", k, api.APIPrefix)
		}
		checkRouteData(t, rt)
	}
	for _, op := range store.Operations {
		if byOp[op.Name] != 1 {
			t.Errorf("operation %s has %d routes, want 1", op.Name, byOp[op.Name])
		}
	}

	svc := store.NewService(sqliteBackend(t))
	for _, mcp := range []http.Handler{nil, http.NotFoundHandler()} {
		eng, ok := api.New(api.Config{Service: svc, MCP: mcp}).(*gin.Engine)
		if !ok {
			t.Fatal("api.New does not return a *gin.Engine")
		}
		want := map[string]bool{"GET " + api.HealthPath: true, "GET " + api.OpenAPIPath: true,
			"GET " + api.DocsPath: true, "GET " + api.DocsCSSPath: true,
			"GET " + strings.TrimSuffix(api.ConsolePath, "/"): true, "GET " + api.ConsolePath + "*filepath": true}
		for k := range byRoute {
			want[k] = true
		}
		for k := range want { // every GET route answers HEAD too
			if path, ok := strings.CutPrefix(k, "GET "); ok {
				want["HEAD "+path] = true
			}
		}
		if mcp != nil {
			for _, m := range []string{"GET", "POST", "DELETE"} {
				want[m+" "+api.MCPPath] = true
			}
		}
		got := map[string]bool{}
		for _, ri := range eng.Routes() {
			got[ri.Method+" "+ri.Path] = true
		}
		for k := range want {
			if !got[k] {
				t.Errorf("not served: %s", k)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("served but not in the table: %s", k)
			}
		}
	}
}

// checkRouteData checks that a route describes itself consistently, for the
// documentation generated from it.
func checkRouteData(t *testing.T, rt api.Route) {
	t.Helper()
	k := rt.Method + " " + rt.Path
	// PATCH and PUT read a body, GET and DELETE never; a POST usually
	// does (revoking a key, replaying a delivery and testing a webhook
	// take none).
	bodiless := []store.Action{store.ActionRevokeKey, store.ActionReplayDelivery, store.ActionTestWebhook}
	bodyOK := map[string]bool{http.MethodPatch: rt.Body, http.MethodPut: rt.Body, http.MethodGet: !rt.Body,
		http.MethodDelete: !rt.Body, http.MethodPost: rt.Body || slices.Contains(bodiless, rt.Operation.Action)}
	if !bodyOK[rt.Method] || rt.Body != (rt.BodyKind != api.BodyNone) || (rt.BodyOptional && !rt.Body) {
		t.Errorf("route %s: Body %v, BodyKind %q, BodyOptional %v", k, rt.Body, rt.BodyKind, rt.BodyOptional)
	}
	if rt.Idempotent != (rt.Method != http.MethodGet) || rt.Idempotent == rt.Operation.ReadOnly {
		t.Errorf("route %s: Idempotent %v", k, rt.Idempotent)
	}
	var args []string
	for seg := range strings.SplitSeq(rt.Path, "/") {
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			args = append(args, name)
		}
	}
	var got []string
	for _, p := range rt.PathArgs {
		got = append(got, p.Name)
		if p.Type == "" || p.Description == "" {
			t.Errorf("route %s: path parameter %s undescribed", k, p.Name)
		}
	}
	if !slices.Equal(args, got) {
		t.Errorf("route %s: PathArgs %v, path has %v", k, got, args)
	}
	for _, q := range rt.Query {
		if q.Type == "" || q.Description == "" {
			t.Errorf("route %s: query parameter %s undescribed", k, q.Name)
		}
	}
	if len(rt.Responses) < 2 || rt.Responses[0].Status >= 300 || rt.Responses[0].Body == api.ResponseError {
		t.Fatalf("route %s: responses %+v", k, rt.Responses)
	}
	statuses := map[int]bool{}
	for _, r := range rt.Responses {
		if statuses[r.Status] {
			t.Errorf("route %s: status %d listed twice", k, r.Status)
		}
		statuses[r.Status] = true
		if r.Description == "" {
			t.Errorf("route %s: response %d undescribed", k, r.Status)
		}
		if (r.Status >= 400) != (r.Body == api.ResponseError) {
			t.Errorf("route %s: response %d has body %q", k, r.Status, r.Body)
		}
		for _, code := range r.Codes {
			if api.StatusOf(code) != r.Status {
				t.Errorf("route %s: code %s under status %d", k, code, r.Status)
			}
		}
	}
	for _, st := range []int{400, 401, 410, 429, 500} {
		if !statuses[st] {
			t.Errorf("route %s: no %d response", k, st)
		}
	}
	if rt.Idempotent && (!statuses[409] || !statuses[422]) {
		t.Errorf("route %s: idempotent without 409 and 422 responses", k)
	}
	if (rt.Operation.Scope != "") != statuses[403] {
		t.Errorf("route %s: scope %q but 403 listed %v", k, rt.Operation.Scope, statuses[403])
	}
}
