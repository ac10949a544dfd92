package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker"
	"github.com/hustack/hustack/worker/redistest"
)

// cmdTestRedisDB is the database of the test Redis that this package's tests
// own: the commands use asynq's default queue names, which the other
// packages' tests (running at the same time, in database 0) must not see.
// Each test that uses it empties it first and last.
const cmdTestRedisDB = 13

// testRedisURL returns a REDIS_URL for this package's own database of the
// test Redis (REDIS_URL or 127.0.0.1:6379), emptied. It skips the test only
// when no Redis answers.
func testRedisURL(t *testing.T) string {
	t.Helper()
	opts := redistest.Options(t)
	opts.DB = cmdTestRedisDB
	flush := func() {
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Errorf("empty redis database %d: %v", cmdTestRedisDB, err)
		}
	}
	flush()
	t.Cleanup(flush)
	u := url.URL{Scheme: "redis", Host: opts.Addr, Path: "/" + strconv.Itoa(cmdTestRedisDB)}
	if opts.TLSConfig != nil {
		u.Scheme = "rediss"
	}
	if opts.Password != "" {
		u.User = url.UserPassword(opts.Username, opts.Password)
	} else if opts.Username != "" {
		u.User = url.User(opts.Username)
	}
	return u.String()
}

// createKey creates a key with the command line and returns its id and the
// raw key.
func createKey(t *testing.T, e testEnv, ws string, extra ...string) (id, key string) {
	t.Helper()
	args := append([]string{"key", "create", "--json", "--workspace", ws, "--name", "test"}, extra...)
	k := mustJSON[map[string]any](t, e, args...)
	id, _ = k["id"].(string)
	key, _ = k["key"].(string)
	if id == "" || !strings.HasPrefix(key, "hs_live_") {
		t.Fatalf("key create --json = %v", k)
	}
	return id, key
}

// usageTotal sums the counts of `hustack usage --json`.
func usageTotal(u usageJSON) (count, errs int64) {
	for _, n := range u.Data {
		count += n.Count
		errs += n.Errors
	}
	return count, errs
}

// waitForUsage runs `hustack usage --json` with args until it counts want
// requests in all, for at most 15 s, and returns the last answer.
func waitForUsage(t *testing.T, e testEnv, want int64, args ...string) usageJSON {
	t.Helper()
	args = append([]string{"usage", "--json"}, args...)
	var u usageJSON
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 300; i++ {
		u = mustJSON[usageJSON](t, e, args...)
		n, _ := usageTotal(u)
		if n > want {
			t.Fatalf("hustack %s counts %d requests, more than the %d made: %+v", strings.Join(args, " "), n, want, u.Data)
		}
		if n == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, _ := usageTotal(u); n != want {
		t.Fatalf("hustack %s counts %d requests after 15 s, want %d: %+v", strings.Join(args, " "), n, want, u.Data)
	}
	return u
}

// countsByGroup maps the groups of a usage answer to their counts.
func countsByGroup(u usageJSON) map[string]int64 {
	m := map[string]int64{}
	for _, n := range u.Data {
		m[n.Group] = n.Count
	}
	return m
}

// keyLastUsed returns the last_used_at of key id from `key list --json`
// ("" while never used).
func keyLastUsed(t *testing.T, e testEnv, ws, id string) string {
	t.Helper()
	for _, k := range mustJSON[[]map[string]any](t, e, "key", "list", "--json", "--workspace", ws) {
		if k["id"] == id {
			s, _ := k["last_used_at"].(string)
			return s
		}
	}
	t.Fatalf("key list --json lacks key %s", id)
	return ""
}

// TestServeRecordsUsage runs serve as the README does (embedded Redis, the
// worker in process): the requests made come back from `hustack usage`, and
// `key list` shows when the key was last used.
func TestServeRecordsUsage(t *testing.T) {
	e := newTestEnv(t)
	base, stop, logs := startServer(t, e)
	ws := createWorkspace(t, e, "Acme")
	id, key := createKey(t, e, ws, "--scopes", "read:accounts,write:accounts")
	before := time.Now().UTC().Truncate(time.Millisecond)

	if got := keyLastUsed(t, e, ws, id); got != "" {
		t.Fatalf("last_used_at of an unused key = %q, want null", got)
	}
	for i := range 3 {
		if r := call(t, "POST", base+"/api/v1/accounts", key, fmt.Sprintf(`{"name":"Account %d"}`, i)); r.status != http.StatusCreated {
			t.Fatalf("create account = %d %v", r.status, r.body)
		}
	}
	for range 2 {
		if r := call(t, "GET", base+"/api/v1/accounts", key, ""); r.status != http.StatusOK {
			t.Fatalf("list accounts = %d %v", r.status, r.body)
		}
	}
	if r := call(t, "GET", base+"/api/v1/accounts/"+store.NewID(), key, ""); r.status != http.StatusNotFound {
		t.Fatalf("get a missing account = %d %v", r.status, r.body)
	}
	// Not authenticated: no key, so no usage event.
	if r := call(t, "GET", base+"/api/v1/accounts", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("list without a key = %d %v", r.status, r.body)
	}

	u := waitForUsage(t, e, 6, "--workspace", ws, "--by", "status")
	if got := countsByGroup(u); got["200"] != 2 || got["201"] != 3 || got["404"] != 1 || len(got) != 3 {
		t.Errorf("usage by status = %v, want 200:2 201:3 404:1", got)
	}
	if _, errs := usageTotal(u); errs != 1 {
		t.Errorf("usage counts %d errors, want 1 (the 404)", errs)
	}
	if u.WorkspaceID != ws || u.GroupBy != "status" || u.KeyID != nil {
		t.Errorf("usage --json header = %+v", u)
	}
	byRoute := countsByGroup(mustJSON[usageJSON](t, e, "usage", "--json", "--workspace", ws, "--by", "route", "--key", id))
	if byRoute["/api/v1/accounts"] != 5 || byRoute["/api/v1/accounts/:id"] != 1 {
		t.Errorf("usage by route = %v, want /api/v1/accounts:5 and /api/v1/accounts/:id:1", byRoute)
	}
	other := mustJSON[usageJSON](t, e, "usage", "--json", "--workspace", ws, "--key", store.NewID())
	if n, _ := usageTotal(other); n != 0 {
		t.Errorf("usage of another key counts %d requests, want 0", n)
	}

	// last_used_at: set by the stored events, and it only moves forward.
	first := keyLastUsed(t, e, ws, id)
	t1, err := time.Parse(time.RFC3339, first)
	if err != nil || t1.Before(before) || t1.After(time.Now()) {
		t.Fatalf("last_used_at = %q (%v), want a time since the test started", first, err)
	}
	time.Sleep(5 * time.Millisecond) // the next request's time is later at millisecond precision
	if r := call(t, "GET", base+"/api/v1/accounts", key, ""); r.status != http.StatusOK {
		t.Fatalf("list accounts = %d %v", r.status, r.body)
	}
	waitForUsage(t, e, 7, "--workspace", ws)
	second := keyLastUsed(t, e, ws, id)
	if t2, err := time.Parse(time.RFC3339, second); err != nil || !t2.After(t1) {
		t.Errorf("last_used_at after another request = %q, want later than %q", second, first)
	}

	// The readable forms.
	table := mustRun(t, e, "key", "list", "--workspace", ws)
	if !strings.Contains(table, "LAST USED") || strings.Contains(table, "never\n") {
		t.Errorf("key list does not show when the key was last used:\n%s", table)
	}
	out := mustRun(t, e, "usage", "--workspace", ws, "--by", "key")
	if !strings.Contains(out, id) || !strings.Contains(out, "test") || !regexpMatch(`TOTAL\s+7\s+1`, out) {
		t.Errorf("usage --by key:\n%s", out)
	}

	if err := stop(); err != nil {
		t.Fatalf("serve stopped with %v\n%s", err, logs)
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("the logs contain the raw key")
	}
}

// TestServeShutdownFlushesUsage: the events of requests made right before
// the server is stopped are stored by the shutdown itself. The batcher here
// would not enqueue them for an hour, so nothing but the shutdown stores them.
func TestServeShutdownFlushesUsage(t *testing.T) {
	e := newTestEnv(t)
	base, stop, logs := startServer(t, e, withBatcherConfig(worker.BatcherConfig{FlushInterval: time.Hour, BatchSize: worker.MaxBatchEvents}))
	ws := createWorkspace(t, e, "Acme")
	_, key := createKey(t, e, ws, "--scopes", "read:accounts", "--rate-limit", "1000/s")
	const n = 25
	for range n {
		if r := call(t, "GET", base+"/api/v1/accounts", key, ""); r.status != http.StatusOK {
			t.Fatalf("list accounts = %d %v", r.status, r.body)
		}
	}
	if got, _ := usageTotal(mustJSON[usageJSON](t, e, "usage", "--json", "--workspace", ws)); got != 0 {
		t.Fatalf("%d events stored before the shutdown although the batcher holds them for an hour", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve stopped with %v\n%s", err, logs)
	}
	u := mustJSON[usageJSON](t, e, "usage", "--json", "--workspace", ws)
	if got, _ := usageTotal(u); got != n {
		t.Errorf("after the shutdown %d events are stored, want %d\n%s", got, n, logs)
	}
}

// TestServeWithoutUsage: with usage logging off, requests are served and
// nothing is recorded.
func TestServeWithoutUsage(t *testing.T) {
	e := newTestEnv(t)
	base, stop, logs := startServer(t, e, withoutUsage())
	ws := createWorkspace(t, e, "Acme")
	_, key := createKey(t, e, ws, "--scopes", "read:accounts")
	if r := call(t, "GET", base+"/api/v1/accounts", key, ""); r.status != http.StatusOK {
		t.Fatalf("list accounts = %d %v", r.status, r.body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "usage=off") {
		t.Errorf("the start line does not say usage is off:\n%s", logs)
	}
	if got, _ := usageTotal(mustJSON[usageJSON](t, e, "usage", "--json", "--workspace", ws)); got != 0 {
		t.Errorf("%d events stored with usage logging off", got)
	}
}

// TestServeWorkerOffEmbeddedWarns: events sent to an embedded Redis that no
// worker reads would never be stored; serve says so loudly.
func TestServeWorkerOffEmbeddedWarns(t *testing.T) {
	e := newTestEnv(t)
	e["HUSTACK_WORKER"] = "off"
	base, stop, logs := startServer(t, e)
	if r := call(t, "GET", base+"/api/v1/health", "", ""); r.status != http.StatusOK {
		t.Fatalf("health = %d %v", r.status, r.body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !regexpMatch(`level=ERROR msg="HUSTACK_WORKER=off without REDIS_URL[^"]*never stored`, out) {
		t.Errorf("no error logged for HUSTACK_WORKER=off on the embedded Redis:\n%s", out)
	}
	if strings.Contains(out, "worker started") {
		t.Errorf("the worker started although HUSTACK_WORKER=off:\n%s", out)
	}
}

// TestServeWorkerOffWithRedis is the production shape: serve with the
// worker off enqueues the usage batches in a real Redis, and `hustack
// worker`, a separate worker on the same Redis and store, stores them.
func TestServeWorkerOffWithRedis(t *testing.T) {
	e := newTestEnv(t)
	e["REDIS_URL"] = testRedisURL(t)
	e["HUSTACK_WORKER"] = "off"
	base, stop, logs := startServer(t, e)
	ws := createWorkspace(t, e, "Acme")
	id, key := createKey(t, e, ws, "--scopes", "read:accounts")
	const n = 7
	for range n {
		if r := call(t, "GET", base+"/api/v1/accounts", key, ""); r.status != http.StatusOK {
			t.Fatalf("list accounts = %d %v", r.status, r.body)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("serve stopped with %v\n%s", err, logs)
	}
	out := logs.String()
	if strings.Contains(out, "worker started") || strings.Contains(out, "embedded") || strings.Contains(out, "level=ERROR") {
		t.Errorf("serve with REDIS_URL and the worker off logged a worker, an embedded Redis or an error:\n%s", out)
	}
	if !strings.Contains(out, "mode=synced") {
		t.Errorf("the rate limiter is not in the default synced mode:\n%s", out)
	}
	// The batches wait in Redis: no worker has run.
	if got, _ := usageTotal(mustJSON[usageJSON](t, e, "usage", "--json", "--workspace", ws)); got != 0 {
		t.Fatalf("%d events stored without a worker", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	workerLogs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"worker"}, e.getenv, strings.NewReader(""), &strings.Builder{}, workerLogs)
	}()
	u := waitForUsage(t, e, n, "--workspace", ws, "--by", "key")
	if got := countsByGroup(u); got[id] != n {
		t.Errorf("usage by key = %v, want %d for %s", got, n, id)
	}
	if keyLastUsed(t, e, ws, id) == "" {
		t.Errorf("last_used_at is still null after the worker stored the events")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("hustack worker after cancellation = %v, want nil\n%s", err, workerLogs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hustack worker did not stop within 30 s of cancellation")
	}
	wl := workerLogs.String()
	if !strings.Contains(wl, "hustack worker running") || !strings.Contains(wl, "hustack worker stopped") {
		t.Errorf("worker logs lack the start or the stop:\n%s", wl)
	}
}

// TestWorkerNeedsRedis: `hustack worker` refuses to run on an embedded Redis,
// which would share nothing with the API servers.
func TestWorkerNeedsRedis(t *testing.T) {
	r := runCLI(t, newTestEnv(t), "worker")
	if r.err == nil || !strings.Contains(r.err.Error(), "REDIS_URL is required") {
		t.Errorf("hustack worker without REDIS_URL = %v, want an error asking for REDIS_URL", r.err)
	}
}

// TestServeRateLimit: a key's own limit answers 429 through serve, whichever
// limiter the configuration selects.
func TestServeRateLimit(t *testing.T) {
	modes := []struct {
		name string
		env  func(t *testing.T, e testEnv)
		log  string
	}{
		{"embedded per-instance", func(*testing.T, testEnv) {}, "mode=per-instance"},
		{"redis exact", func(t *testing.T, e testEnv) {
			e["REDIS_URL"] = testRedisURL(t)
			e["HUSTACK_RATE_LIMIT_MODE"] = "exact"
		}, "mode=exact"},
		{"redis synced", func(t *testing.T, e testEnv) { e["REDIS_URL"] = testRedisURL(t) }, "mode=synced"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newTestEnv(t)
			m.env(t, e)
			base, stop, logs := startServer(t, e)
			ws := createWorkspace(t, e, "Acme")

			// --rate-limit sets the key's own limit.
			_, key := createKey(t, e, ws, "--scopes", "read:accounts", "--rate-limit", "3/m")
			for i := range 3 {
				r := call(t, "GET", base+"/api/v1/accounts", key, "")
				if r.status != http.StatusOK || r.header.Get("X-RateLimit-Limit") != "3" ||
					r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
					t.Fatalf("request %d = %d, limit %q remaining %q; want 200, 3, %d", i+1, r.status,
						r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"), 2-i)
				}
			}
			r := call(t, "GET", base+"/api/v1/accounts", key, "")
			if r.status != http.StatusTooManyRequests || r.body["error"] != "rate_limit_exceeded" ||
				r.body["message"] != "Too many requests. Please try again later." {
				t.Fatalf("request over the limit = %d %v, want 429 rate_limit_exceeded", r.status, r.body)
			}
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
				t.Errorf("Retry-After = %q, want 1..60 seconds", r.header.Get("Retry-After"))
			}
			if r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Reset") == "" {
				t.Errorf("429 headers: remaining %q reset %q", r.header.Get("X-RateLimit-Remaining"), r.header.Get("X-RateLimit-Reset"))
			}

			// HUSTACK_RATE_LIMIT is the limit of keys created without --rate-limit.
			e["HUSTACK_RATE_LIMIT"] = "2/m"
			id2, key2 := createKey(t, e, ws, "--scopes", "read:accounts")
			for _, k := range mustJSON[[]map[string]any](t, e, "key", "list", "--json", "--workspace", ws) {
				if k["id"] == id2 && k["rate_limit"] != "2/m" {
					t.Errorf("rate_limit of a key created with HUSTACK_RATE_LIMIT=2/m = %v", k["rate_limit"])
				}
			}
			var statuses []int
			for range 3 {
				statuses = append(statuses, call(t, "GET", base+"/api/v1/accounts", key2, "").status)
			}
			if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 {
				t.Errorf("statuses of a 2/m key = %v, want 200 200 429", statuses)
			}

			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), m.log) {
				t.Errorf("the logs do not name the limiter mode %q:\n%s", m.log, logs)
			}
		})
	}
}

// TestServeSharedRateLimit: two servers on one Redis in exact mode share
// each key's limit.
func TestServeSharedRateLimit(t *testing.T) {
	e := newTestEnv(t)
	e["REDIS_URL"] = testRedisURL(t)
	e["HUSTACK_RATE_LIMIT_MODE"] = "exact"
	baseA, stopA, _ := startServer(t, e)
	baseB, stopB, _ := startServer(t, e)
	ws := createWorkspace(t, e, "Acme")
	_, key := createKey(t, e, ws, "--scopes", "read:accounts", "--rate-limit", "4/m")
	var statuses []int
	for _, base := range []string{baseA, baseB, baseA, baseB, baseA, baseB} {
		statuses = append(statuses, call(t, "GET", base+"/api/v1/accounts", key, "").status)
	}
	want := []int{200, 200, 200, 200, 429, 429}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("statuses alternating between two servers = %v, want %v", statuses, want)
	}
	if err := stopA(); err != nil {
		t.Error(err)
	}
	if err := stopB(); err != nil {
		t.Error(err)
	}
}

// regexpMatch reports whether text matches the regular expression pattern.
func regexpMatch(pattern, text string) bool { return regexp.MustCompile(pattern).MatchString(text) }

// TestServeMCPSwitch: /mcp is served behind the API's authentication, and
// HUSTACK_MCP=off removes it.
func TestServeMCPSwitch(t *testing.T) {
	const list = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	post := func(t *testing.T, url, key string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(list))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, io.LimitReader(resp.Body, 1<<20)); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.String()
	}
	for _, on := range []bool{true, false} {
		t.Run("HUSTACK_MCP="+onOff(on), func(t *testing.T) {
			e := newTestEnv(t)
			e["HUSTACK_MCP"] = onOff(on)
			base, stop, _ := startServer(t, e)
			ws := createWorkspace(t, e, "Acme")
			_, key := createKey(t, e, ws, "--scopes", "read:notes")
			status, body := post(t, base+"/mcp", key)
			switch {
			case on && (status != http.StatusOK || !strings.Contains(body, `"list_notes"`) || strings.Contains(body, `"list_accounts"`)):
				t.Errorf("tools/list with a read:notes key = %d %s; want 200 with list_notes and without list_accounts", status, body)
			case !on && (status != http.StatusNotFound || !strings.Contains(body, `"not_found"`)):
				t.Errorf("POST /mcp with MCP off = %d %s, want 404 not_found", status, body)
			}
			if on {
				if status, body := post(t, base+"/mcp", ""); status != http.StatusUnauthorized {
					t.Errorf("POST /mcp without a key = %d %s, want 401", status, body)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUsageCommandErrors(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	tests := []struct {
		args     []string
		usage    bool // a command-line mistake: exit status 2
		contains string
	}{
		{[]string{"usage"}, true, "--workspace is required"},
		{[]string{"usage", "--workspace", ws, "--by", "hour"}, true, `--by "hour"`},
		{[]string{"usage", "--workspace", ws, "--key", "k1"}, true, `--key "k1" is not a key id`},
		{[]string{"usage", "--workspace", ws, "--since", "forever"}, false, "--since"},
		{[]string{"usage", "--workspace", store.NewID()}, false, "no workspace with id"},
	}
	for _, tc := range tests {
		r := runCLI(t, e, tc.args...)
		if r.err == nil || !strings.Contains(errorText(r.err), tc.contains) || (exitCode(r.err) == 2) != tc.usage {
			t.Errorf("hustack %s = %v (exit %d), want an error containing %q (usage error: %v)",
				strings.Join(tc.args, " "), r.err, exitCode(r.err), tc.contains, tc.usage)
		}
	}
	out := mustRun(t, e, "usage", "--workspace", ws)
	if !strings.Contains(out, "No requests recorded") {
		t.Errorf("usage of an unused workspace:\n%s", out)
	}
}
