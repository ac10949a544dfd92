package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hustack/hustack/store"
)

// The bench tests run the real load generator briefly and check what it
// reports: never how fast anything was.

// checkMeasured fails the test unless scenario id made requests without
// an error.
func checkMeasured(t *testing.T, rep benchReport, id string) {
	t.Helper()
	s := rep.scenario(id)
	switch {
	case s == nil:
		t.Errorf("scenario %s missing from the report", id)
	case s.Skipped != "":
		t.Errorf("scenario %s skipped: %s (%s)", id, s.Skipped, s.FirstError)
	case s.Requests <= 0 || s.RPS <= 0:
		t.Errorf("scenario %s: %d requests, %v req/s", id, s.Requests, s.RPS)
	case s.Errors != 0:
		t.Errorf("scenario %s: %d errors, first: %s", id, s.Errors, s.FirstError)
	case s.P50MS <= 0 || s.P50MS > s.P95MS || s.P95MS > s.P99MS:
		t.Errorf("scenario %s: percentiles p50 %v, p95 %v, p99 %v", id, s.P50MS, s.P95MS, s.P99MS)
	}
}

func ratioOf(rep benchReport, name string) *ratioResult {
	for i := range rep.Ratios {
		if rep.Ratios[i].Name == name {
			return &rep.Ratios[i]
		}
	}
	return nil
}

func TestBenchInProcess(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rep := mustJSON[benchReport](t, e, "bench", "--json", "--duration", "150ms", "--warmup", "50ms",
		"--concurrency", "2", "--seed", "60", "--deliveries", "20")

	if rep.Mode != "in-process" || rep.Concurrency != 2 || rep.Accounts != 60 || rep.Deep != nil {
		t.Errorf("report header: mode %q, concurrency %d, accounts %d, deep %+v", rep.Mode, rep.Concurrency, rep.Accounts, rep.Deep)
	}
	var ids []string
	for _, s := range rep.Scenarios {
		ids = append(ids, s.ID)
	}
	if want := slices.Concat(scenarioIDs, webhookScenarioIDs); !slices.Equal(ids, want) {
		t.Errorf("scenarios %v, want %v", ids, want)
	}
	for _, id := range slices.Concat(scenarioIDs, webhookScenarioIDs) {
		checkMeasured(t, rep, id)
	}
	// The webhook part: every delivery arrived once, correctly signed.
	if h := rep.Webhooks; h == nil || h.Events != 20 || h.Deliveries != 20*benchDeliverySubs ||
		h.Received != int64(h.Deliveries+h.LatencyNotes*h.Subscriptions) || h.LatencyNotes != 20 ||
		h.BadSignatures != 0 || h.PerSecond <= 0 || h.LatencyP50MS <= 0 || h.LatencyP50MS > h.LatencyP99MS {
		t.Errorf("webhooks: %+v", h)
	}
	for _, name := range []string{"2/1", "2off/1", "2/2off", "3on/3off", "5/3on", "7b/7a"} {
		r := ratioOf(rep, name)
		if r == nil || r.Skipped != "" || r.Value == nil || *r.Value <= 0 || r.CPUValue == nil || (r.Met == nil) != (r.Target == nil) {
			t.Errorf("ratio %s: %+v", name, r)
		}
	}

	ev := rep.Events
	if ev.Skipped != "" || !ev.Match || ev.Sent == 0 || int64(ev.Sent) != ev.Stored || ev.Dropped != 0 {
		t.Errorf("usage events: %+v", ev)
	}
	// Every response of a route that logs usage is one stored event: the
	// scenarios' requests, the warm-ups and the first requests.
	var measured uint64
	for _, s := range rep.Scenarios {
		if s.ID != scenBare && s.ID != scenChainOff && s.ID != scenListOff && !slices.Contains(webhookScenarioIDs, s.ID) {
			measured += uint64(s.Requests)
		}
	}
	if ev.Responses != ev.Recorded || ev.Sent < measured {
		t.Errorf("usage events: %d responses, %d recorded, %d sent; the measured windows alone made %d requests",
			ev.Responses, ev.Recorded, ev.Sent, measured)
	}
}

// TestBenchTable runs a few scenarios with the worker deferred until after
// the load and checks the table.
func TestBenchTable(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	out := mustRun(t, e, "bench", "--duration", "50ms", "--warmup", "0s", "--concurrency", "1", "--seed", "5",
		"--scenarios", "1,2,4,6c", "--deep", "100", "--defer-worker")
	for _, want := range []string{
		"REQ/S", "P99 MS",
		"bare gin handler", "GET " + benchNoDBPath, "POST /api/v1/notes",
		"skipped: not selected by --scenarios",
		"2/1", "Usage events: sent ", ": MATCH", "Deferred worker: stored them in",
		"GET /api/v1/accounts?limit=50&offset=50", "6c/6a",
		"Deep pagination: 100 accounts seeded in ", "cursor and offset pages hold the same records",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchDeep runs the deep pagination part alone on a small workspace.
func TestBenchDeep(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rep := mustJSON[benchReport](t, e, "bench", "--json", "--duration", "100ms", "--warmup", "20ms",
		"--concurrency", "2", "--seed", "0", "--deep", "500", "--scenarios", "6")

	d := rep.Deep
	if d == nil {
		t.Fatal("no deep section in the report")
	}
	// 450 records before the page, reached by cursor in pages of 200.
	if d.Accounts != 500 || d.Depth != 450 || d.WalkLimit != 200 || d.WalkPages != 3 || !d.SamePage || d.Mismatch != "" ||
		d.SeedSeconds <= 0 || d.SeedPerSecond <= 0 || d.SeedWriters < 1 {
		t.Errorf("deep section: %+v", *d)
	}
	for _, id := range deepScenarioIDs {
		checkMeasured(t, rep, id)
	}
	if s := rep.scenario(scenDeepCursor); s != nil && !strings.Contains(s.Request, "cursor=") {
		t.Errorf("scenario 6b request %q", s.Request)
	}
	if s := rep.scenario(scenDeepOffset); s != nil && (!strings.Contains(s.Request, "offset=450") || s.Requests > 10) {
		t.Errorf("scenario 6c: request %q, %d requests", s.Request, s.Requests)
	}
	for _, id := range scenarioIDs {
		if s := rep.scenario(id); s == nil || s.Skipped != "not selected by --scenarios" {
			t.Errorf("scenario %s should be skipped: %+v", id, s)
		}
	}
	for _, name := range []string{"6b/6a", "6c/6a"} {
		if r := ratioOf(rep, name); r == nil || r.Skipped != "" || r.Value == nil || *r.Value <= 0 || r.Target != nil {
			t.Errorf("ratio %s: %+v", name, r)
		}
	}
	// The walk, the page checks and the three scenarios log usage in the
	// deep workspace: every event is stored.
	ev := rep.Events
	if !ev.Match || ev.Stored == 0 || ev.Responses != ev.Recorded || int64(ev.Sent) != ev.Stored {
		t.Errorf("usage events: %+v", ev)
	}
}

func TestBenchExternal(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ws := mustJSON[map[string]any](t, e, "workspace", "create", "--json", "--name", "Bench")
	key := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws["id"].(string), "--name", "bench",
		"--scopes", joinScopes(store.AllScopes()), "--rate-limit", "100000/s")
	url, _, _ := startServer(t, e)

	rep := mustJSON[benchReport](t, e, "bench", "--json", "--url", url+"/api/v1", "--key", key["key"].(string),
		"--duration", "100ms", "--warmup", "0s", "--concurrency", "2", "--seed", "3")
	if rep.Mode != "external" || rep.Target != url || rep.Accounts != 3 {
		t.Errorf("report header: mode %q, target %q, accounts %d", rep.Mode, rep.Target, rep.Accounts)
	}
	for _, id := range []string{scenChain, scenMe, scenListOn, scenNote, scenMCP} {
		checkMeasured(t, rep, id)
	}
	for _, id := range []string{scenBare, scenChainOff, scenListOff} {
		if s := rep.scenario(id); s == nil || s.Skipped == "" || s.Requests != 0 {
			t.Errorf("scenario %s should be skipped against an external server: %+v", id, s)
		}
	}
	if r := ratioOf(rep, "5/3on"); r == nil || r.Value == nil || r.CPUValue != nil {
		t.Errorf("ratio 5/3on: %+v", r)
	}
	if r := ratioOf(rep, "2/1"); r == nil || r.Skipped == "" {
		t.Errorf("ratio 2/1 should be skipped: %+v", r)
	}
	if rep.Events.Skipped == "" || rep.Events.Match {
		t.Errorf("events check should be skipped: %+v", rep.Events)
	}
}

func TestBenchFlags(t *testing.T) {
	e := newTestEnv(t)
	for _, args := range [][]string{
		{"--concurrency", "0"},
		{"--concurrency", "100000"},
		{"--duration", "1h"},
		{"--duration", "1ns"},
		{"--seed", "-1"},
		{"--scenarios", "1,9"},
		{"--key", "hs_live_x"},                           // --key without --url
		{"--url", "http://127.0.0.1:1"},                  // --url without a key
		{"--url", "http://192.0.2.1:8080", "--key", "k"}, // not loopback
		{"--url", "ftp://127.0.0.1", "--key", "k"},
		{"--url", "http://127.0.0.1:1", "--key", "k", "--defer-worker"},
		{"--deep", "50"},
		{"--deep", "-1"},
		{"--deep", "100000000"},
		{"--scenarios", "6b"}, // a deep scenario without --deep
		{"--deep", "1000", "--url", "http://127.0.0.1:1", "--key", "k"}, // in process only
	} {
		r := runCLI(t, e, append([]string{"bench"}, args...)...)
		if _, ok := errors.AsType[*usageError](r.err); !ok {
			t.Errorf("bench %v: err = %v, want a usage error", args, r.err)
		}
	}
}
