package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo/mongotest"
	"github.com/hustack/hustack/store/sqlite"
)

// backend opens a new, empty backend for one test; it is closed when the
// test ends.
type backend struct {
	name string
	open func(t *testing.T) store.Backend
}

var backends = []backend{
	{"sqlite", func(t *testing.T) store.Backend {
		db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hustack.db"))
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}},
	{"mongo", func(t *testing.T) store.Backend { return mongotest.Open(t) }},
}

// forEachBackend runs fn once per backend, as subtests named after them.
func forEachBackend(t *testing.T, fn func(t *testing.T, open func(t *testing.T) store.Backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open) })
	}
}

func sqliteBackend(t *testing.T) store.Backend { return backends[0].open(t) }

// env is a running API over a real backend, with two workspaces and keys in
// every state a test needs.
type env struct {
	t       *testing.T
	backend store.Backend
	svc     *store.Service
	srv     *httptest.Server
	logs    *syncBuffer
	usage   *recorder

	wsA, wsB     *store.Workspace
	keyA, keyB   string // every scope, in workspace A and B
	keyAID       string
	keyBID       string
	revoked      string // workspace A, revoked
	expired      string // workspace A, expired
	withoutScope map[store.Scope]string
}

// envConfig is what envOptions change: the API's configuration and the
// service's options.
type envConfig struct {
	api     api.Config
	service []store.Option
}

type envOption func(*envConfig)

func withLimiter(l api.RateLimiter) envOption { return func(c *envConfig) { c.api.Limiter = l } }
func withMCP(h http.Handler) envOption        { return func(c *envConfig) { c.api.MCP = h } }

// withClock gives the service a clock the test controls.
func withClock(c *testClock) envOption {
	return func(ec *envConfig) { ec.service = append(ec.service, store.WithClock(c.Now)) }
}

func newEnv(t *testing.T, b store.Backend, opts ...envOption) *env {
	t.Helper()
	var ec envConfig
	for _, o := range opts {
		o(&ec)
	}
	e := &env{t: t, backend: b, svc: store.NewService(b, ec.service...), logs: &syncBuffer{}, usage: newRecorder(),
		withoutScope: map[store.Scope]string{}}
	ctx := t.Context()
	var err error
	if e.wsA, err = e.svc.CreateWorkspace(ctx, "Workspace A"); err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	if e.wsB, err = e.svc.CreateWorkspace(ctx, "Workspace B"); err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	var k *store.APIKey
	k, e.keyA = e.newKey(e.svc, e.wsA.ID, store.AllScopes(), nil)
	e.keyAID = k.ID
	k, e.keyB = e.newKey(e.svc, e.wsB.ID, store.AllScopes(), nil)
	e.keyBID = k.ID

	k, e.revoked = e.newKey(e.svc, e.wsA.ID, store.AllScopes(), nil)
	if _, err := e.svc.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	// A key that expired an hour ago, made by a service whose clock is two
	// hours behind (the real one refuses an expiry in the past).
	past := store.NewService(b, store.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	exp := time.Now().Add(-time.Hour)
	_, e.expired = e.newKey(past, e.wsA.ID, store.AllScopes(), &exp)

	cfg := ec.api
	cfg.Service = e.svc
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Usage = e.usage
	cfg.Version = "test"
	e.srv = httptest.NewServer(api.New(cfg))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) newKey(svc *store.Service, ws string, scopes []store.Scope, expires *time.Time) (*store.APIKey, string) {
	e.t.Helper()
	k, raw, err := svc.CreateAPIKey(e.t.Context(), store.KeyInput{WorkspaceID: ws, Name: "test key", Scopes: scopes, ExpiresAt: expires})
	if err != nil {
		e.t.Fatalf("CreateAPIKey: %v", err)
	}
	return k, raw
}

// keyWithout returns a key of workspace A with every scope but s.
func (e *env) keyWithout(s store.Scope) string {
	e.t.Helper()
	if k, ok := e.withoutScope[s]; ok {
		return k
	}
	scopes := slices.DeleteFunc(store.AllScopes(), func(x store.Scope) bool { return x == s })
	_, raw := e.newKey(e.svc, e.wsA.ID, scopes, nil)
	e.withoutScope[s] = raw
	return raw
}

// create makes a record through the service, as key's principal would.
func (e *env) create(key string, r *store.Resource, fields map[string]any) *store.Record {
	e.t.Helper()
	p, err := e.svc.Authenticate(e.t.Context(), key)
	if err != nil {
		e.t.Fatalf("Authenticate: %v", err)
	}
	rec, err := e.svc.Scoped(p).CreateRecord(e.t.Context(), r, fields)
	if err != nil {
		e.t.Fatalf("CreateRecord %s: %v", r.Name, err)
	}
	return rec
}

// request is one HTTP call to the test server.
type request struct {
	method string
	path   string
	key    string            // sent as "Authorization: Bearer <key>" when set
	body   io.Reader         // nil: no body
	header map[string]string // extra headers; "Authorization" overrides key
	multi  http.Header       // headers added after the others
}

type response struct {
	path   string // of the request
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (e *env) do(t *testing.T, rq request) response {
	t.Helper()
	r, err := e.try(t.Context(), rq)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	return r
}

// try is do for goroutines other than the test's: it returns errors.
func (e *env) try(ctx context.Context, rq request) (response, error) {
	req, err := http.NewRequestWithContext(ctx, rq.method, e.srv.URL+rq.path, rq.body)
	if err != nil {
		return response{}, err
	}
	if rq.key != "" {
		req.Header.Set("Authorization", "Bearer "+rq.key)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	for k, vs := range rq.multi {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{path: rq.path, status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func jsonBody(s string) io.Reader { return strings.NewReader(s) }

// scenario is one request and what must come back.
type scenario struct {
	name   string
	req    request
	code   string   // the "error" code of an error response; default by status
	msg    []string // substrings of the error message
	header map[string]string
	check  func(t *testing.T, r response)
}

// group holds scenarios that must all answer status.
type group struct {
	status int
	cases  []scenario
}

var codeByStatus = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
	409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "idempotency_key_reused",
	429: "rate_limit_exceeded", 500: "internal_server_error",
}

// run runs every scenario of every group. Besides the status, it checks what
// every response must have: JSON, a request id, security headers, and for
// errors the {"error","message","request_id"} shape.
func run(t *testing.T, e *env, groups []group) {
	t.Helper()
	for _, g := range groups {
		for _, sc := range g.cases {
			t.Run(fmt.Sprintf("%d/%s", g.status, sc.name), func(t *testing.T) {
				r := e.do(t, sc.req)
				if r.status != g.status {
					t.Fatalf("status %d, want %d; body: %s", r.status, g.status, clip(r.body))
				}
				checkCommon(t, r)
				if g.status >= 400 {
					code := sc.code
					if code == "" {
						code = codeByStatus[g.status]
					}
					checkError(t, r, code, sc.msg...)
				}
				for k, v := range sc.header {
					if got := r.header.Get(k); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
				if sc.check != nil {
					sc.check(t, r)
				}
			})
		}
	}
}

func checkCommon(t *testing.T, r response) {
	t.Helper()
	if id := r.header.Get("X-Request-Id"); id == "" {
		t.Error("no X-Request-Id header")
	}
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if r.status == http.StatusNoContent {
		if len(r.body) != 0 || r.header.Get("Content-Type") != "" {
			t.Errorf("204 with Content-Type %q and body %q", r.header.Get("Content-Type"), clip(r.body))
		}
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	if !json.Valid(r.body) {
		t.Errorf("body is not JSON: %s", clip(r.body))
	}
}

// checkError checks the error shape, code, request id and message parts.
func checkError(t *testing.T, r response, code string, msg ...string) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body is not a JSON object: %v: %s", err, clip(r.body))
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range body {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, []string{"error", "message", "request_id"}) {
		t.Errorf("error body keys %v, want [error message request_id]: %s", keys, clip(r.body))
	}
	if body["error"] != code {
		t.Errorf("error = %v, want %q; message %v", body["error"], code, body["message"])
	}
	m, _ := body["message"].(string)
	if m == "" {
		t.Error("empty error message")
	}
	for _, part := range msg {
		if !strings.Contains(m, part) {
			t.Errorf("message %q does not contain %q", m, part)
		}
	}
	if body["request_id"] != r.header.Get("X-Request-Id") {
		t.Errorf("request_id %v differs from X-Request-Id %q", body["request_id"], r.header.Get("X-Request-Id"))
	}
	if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", r.header.Get("WWW-Authenticate"))
	}
}

func clip(b []byte) string {
	if len(b) > 500 {
		return string(b[:500]) + "..."
	}
	return string(b)
}

// recorder is a UsageRecorder that keeps every event in memory.
type recorder struct {
	mu     sync.Mutex
	events []store.UsageEvent
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Record(ev store.UsageEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// wait returns the events once there are at least n, or fails after 5 s.
// Events are recorded after the handler returns, which for small responses
// is before the client sees them and for streamed ones just after.
func (r *recorder) wait(t *testing.T, n int) []store.UsageEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.events)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("got %d usage events, want %d", len(got), n)
		}
	}
}

func (r *recorder) snapshot() []store.UsageEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log records whose message is msg.
func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// sample returns a valid value for field f, for building create bodies.
func sample(f store.Field, refs map[string]string) any {
	switch f.Type {
	case store.FieldNumber:
		return 1250.5
	case store.FieldEmail:
		return "someone@example.com"
	case store.FieldCurrency:
		return "EUR"
	case store.FieldDate:
		return "2025-03-01"
	case store.FieldEnum:
		return f.Enum[0]
	case store.FieldRef:
		return refs[f.Ref]
	default:
		return "Sample " + f.Name
	}
}

// minimalBody returns the smallest valid create body of resource r.
func minimalBody(r *store.Resource) map[string]any {
	m := map[string]any{}
	for _, f := range r.Fields {
		if f.Required {
			m[f.Name] = sample(f, nil)
		}
	}
	if len(r.OneOfRequired) > 0 {
		f, _ := r.Field(r.OneOfRequired[0])
		m[f.Name] = sample(f, nil)
	}
	return m
}

// fullBody returns a create body of r with every field set; refs maps a
// resource name to the id to reference.
func fullBody(r *store.Resource, refs map[string]string) map[string]any {
	m := map[string]any{}
	for _, f := range r.Fields {
		m[f.Name] = sample(f, refs)
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scoped returns the operations of key's principal, for setting up data
// the way the API would.
func (e *env) scoped(key string) *store.Scoped {
	e.t.Helper()
	p, err := e.svc.Authenticate(e.t.Context(), key)
	if err != nil {
		e.t.Fatalf("Authenticate: %v", err)
	}
	return e.svc.Scoped(p)
}

// get reads a record through the API with key, failing unless it is 200.
func (e *env) get(t *testing.T, key string, r *store.Resource, id string) map[string]any {
	t.Helper()
	resp := e.do(t, request{method: http.MethodGet, path: "/api/v1/" + r.Name + "/" + id, key: key})
	if resp.status != http.StatusOK {
		t.Fatalf("GET %s %s: status %d: %s", r.Name, id, resp.status, clip(resp.body))
	}
	return resp.json(t)
}

// testClock is a clock the test sets; it only moves when told to.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Now().UTC().Truncate(time.Second).Add(-time.Hour)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// gatedBackend is a real backend whose InsertRecord a test can hold at a
// gate, make fail or make panic, to put a request in a known state.
type gatedBackend struct {
	store.Backend
	mu      sync.Mutex
	hold    chan struct{} // while set, inserts signal entered and wait for it to close
	entered chan struct{}
	fail    []error // errors returned by the next inserts, in order
	panics  int     // the next inserts panic this many times
}

func gate(b store.Backend) *gatedBackend { return &gatedBackend{Backend: b} }

func (g *gatedBackend) InsertRecord(ctx context.Context, rec *store.Record) error {
	g.mu.Lock()
	hold, entered := g.hold, g.entered
	var err error
	if len(g.fail) > 0 {
		err, g.fail = g.fail[0], g.fail[1:]
	}
	panicking := g.panics > 0
	if panicking {
		g.panics--
	}
	g.mu.Unlock()
	if panicking {
		panic("insert exploded: secret detail")
	}
	if err != nil {
		return err
	}
	if hold != nil {
		entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Backend.InsertRecord(ctx, rec)
}

// close holds inserts until the returned release is called; entered
// receives once per insert that reached the gate.
func (g *gatedBackend) close() (entered <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	hold, ent := make(chan struct{}), make(chan struct{}, 64)
	g.hold, g.entered = hold, ent
	var once sync.Once
	return ent, func() {
		once.Do(func() {
			g.mu.Lock()
			g.hold = nil
			g.mu.Unlock()
			close(hold)
		})
	}
}

func (g *gatedBackend) failNext(errs ...error) {
	g.mu.Lock()
	g.fail = append(g.fail, errs...)
	g.mu.Unlock()
}

func (g *gatedBackend) panicNext() {
	g.mu.Lock()
	g.panics++
	g.mu.Unlock()
}

// waitFor receives from ch or fails the test after 10 s.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// page is a decoded record list.
type page struct {
	Data       []map[string]any `json:"data"`
	Pagination struct {
		Limit      int     `json:"limit"`
		Offset     int     `json:"offset"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

func decodePage(t *testing.T, r response) page {
	t.Helper()
	var p page
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode page: %v: %s", err, clip(r.body))
	}
	return p
}

// ids returns the ids of a page's records, in order.
func (p page) ids() []string {
	out := make([]string, len(p.Data))
	for i, d := range p.Data {
		out[i], _ = d["id"].(string)
	}
	return out
}
