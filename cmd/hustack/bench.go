package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// Bounds of the load test: every run ends, and its memory is bounded, even
// with extreme flags.
const (
	benchMaxConcurrency = 512
	benchMinDuration    = 10 * time.Millisecond
	benchMaxDuration    = 5 * time.Minute
	benchMaxWarmup      = 30 * time.Second
	benchMaxSeed        = 100_000
	// benchMaxRequests caps the requests of one measurement (a latency
	// sample each: 8 bytes); a scenario that reaches it stops early.
	benchMaxRequests = 4_000_000
	// benchQuiesceTimeout bounds waiting for the usage pipeline to empty
	// between scenarios, and the final flush and drain.
	benchQuiesceTimeout = time.Minute
	// benchPageSize is the page every list scenario asks for.
	benchPageSize = 50
)

// Targets of the ratios, from the project's performance goals.
const (
	targetMiddleware = 0.8  // 2/1: authenticated no-DB route against a bare gin handler
	targetUsage      = 0.95 // 3(on)/3(off): list with usage logging against without
	targetMCP        = 0.6  // 5/3(on): MCP tools/call list_accounts against REST
)

// Scenario ids, as the report names them.
const (
	scenBare      = "1"
	scenChain     = "2"
	scenChainOff  = "2off"
	scenMe        = "2b"
	scenListOn    = "3on"
	scenListOff   = "3off"
	scenNote      = "4"
	scenMCP       = "5"
	benchNoDBPath = api.APIPrefix + "/accounts/bench-not-an-id" // not an id: 404 before the store
)

// The deep pagination scenarios (--deep N): the first page of a workspace
// of N accounts and the page at depth N-50 by cursor and by offset. "6"
// selects all three.
const (
	scenDeepFirst  = "6a"
	scenDeepCursor = "6b"
	scenDeepOffset = "6c"
	scenDeep       = "6"
)

var scenarioIDs = []string{scenBare, scenChain, scenChainOff, scenMe, scenListOn, scenListOff, scenNote, scenMCP}

// deepScenarioIDs run only with --deep.
var deepScenarioIDs = []string{scenDeepFirst, scenDeepCursor, scenDeepOffset}

// mcpListAccountsBody is one self-contained tools/call request of protocol
// 2026-07-28: no initialize round trip is needed.
var mcpListAccountsBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_accounts",` +
	`"arguments":{"limit":` + strconv.Itoa(benchPageSize) + `},` +
	`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
	`"io.modelcontextprotocol/clientInfo":{"name":"hustack-bench","version":"1"},` +
	`"io.modelcontextprotocol/clientCapabilities":{}}}}`)

var noteBody = []byte(`{"title":"Load test","content":"Written by hustack bench to measure POST /api/v1/notes."}`)

// benchOptions are the flags of `hustack bench`.
type benchOptions struct {
	json        bool
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	url         string // external server root; "" runs in process
	keyFlag     string
	key         string // --key, or HUSTACK_API_KEY with --url
	seed        int
	allowRemote bool
	profileDir  string
	only        map[string]bool // --scenarios; nil: every scenario
	deferWorker bool
	deep        int // accounts of the deep pagination part; 0: not run
	deliveries  int // notes of the webhook delivery backlog
}

// runBench is `hustack bench`, the project's load test: it drives HTTP load
// over loopback at a fixed concurrency through each scenario in turn and
// reports requests/s, latency percentiles, CPU time per request, the ratios
// the project has targets for, and whether every usage event was stored.
// It exits non-zero when a request failed or an event was lost.
func runBench(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	var o benchOptions
	fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of a table")
	fs.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients `N` per scenario (1 to 512)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured `DURATION` per scenario (10ms to 5m)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up `DURATION` before each scenario (at most half of --duration)")
	fs.StringVar(&o.url, "url", "", "load an external server at `URL` (its root, e.g. http://127.0.0.1:8080) instead of starting one")
	fs.StringVar(&o.keyFlag, "key", "", "API `KEY` for --url, with every scope and a rate limit that allows the load (HUSTACK_API_KEY)")
	fs.IntVar(&o.seed, "seed", 1000, "accounts `N` to create before the run (with --url: only enough to fill one page)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a --url that is not a loopback address")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of each measured scenario to `DIR`")
	fs.BoolVar(&o.deferWorker, "defer-worker", false, "store the usage events only after the load, as when workers run on "+
		"other machines: the figures then show the API's own cost (in process only)")
	fs.IntVar(&o.deep, "deep", 0, fmt.Sprintf("also measure deep pagination: seed a workspace of `N` accounts (%d to %d) and "+
		"compare its first page with the page at depth N-%d by cursor and by offset (scenarios 6a, 6b, 6c; in process only)",
		benchMinDeep, benchMaxDeep, benchPageSize))
	fs.IntVar(&o.deliveries, "deliveries", 1000, fmt.Sprintf("notes `N` of the webhook delivery part, each sent to %d subscriptions (10 to 100000)", benchDeliverySubs))
	scenarios := fs.String("scenarios", "", "run only these scenarios: `IDS` separated by commas, such as 1,2,3on "+
		"(default all; 6 is 6a,6b,6c; 7 is 7a,7b and the webhook deliveries)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *scenarios != "" {
		o.only = map[string]bool{}
		known := slices.Concat(scenarioIDs, deepScenarioIDs, webhookScenarioIDs)
		for id := range strings.SplitSeq(*scenarios, ",") {
			id = strings.TrimSpace(id)
			switch {
			case id == scenDeep:
				for _, d := range deepScenarioIDs {
					o.only[d] = true
				}
			case id == scenHooks:
				for _, d := range webhookScenarioIDs {
					o.only[d] = true
				}
			case slices.Contains(known, id):
				o.only[id] = true
			default:
				return usageErrorf("bench: --scenarios: unknown scenario %q; the scenarios are %s (6 for all of 6a, 6b, 6c; 7 for 7a, 7b)",
					id, strings.Join(known, ", "))
			}
		}
	}
	if err := o.validate(c.cfg); err != nil {
		return err
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("bench: profile directory: %w", err)
		}
	}

	var rep *benchReport
	var err error
	if o.url != "" {
		rep, err = benchExternal(ctx, o)
	} else {
		rep, err = benchInProcess(ctx, c, o)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("bench interrupted: %w", err)
		}
		return err
	}
	if o.json {
		if err := writeJSON(c.stdout, rep); err != nil {
			return err
		}
	} else {
		rep.writeTable(c.stdout)
	}
	return rep.failure()
}

func (o *benchOptions) validate(cfg Config) error {
	switch {
	case o.concurrency < 1 || o.concurrency > benchMaxConcurrency:
		return usageErrorf("bench: --concurrency must be between 1 and %d", benchMaxConcurrency)
	case o.duration < benchMinDuration || o.duration > benchMaxDuration:
		return usageErrorf("bench: --duration must be between %s and %s", benchMinDuration, benchMaxDuration)
	case o.warmup < 0 || o.warmup > benchMaxWarmup:
		return usageErrorf("bench: --warmup must be between 0 and %s", benchMaxWarmup)
	case o.seed < 0 || o.seed > benchMaxSeed:
		return usageErrorf("bench: --seed must be between 0 and %d", benchMaxSeed)
	case o.deep != 0 && (o.deep < benchMinDeep || o.deep > benchMaxDeep):
		return usageErrorf("bench: --deep must be 0 (off) or between %d and %d", benchMinDeep, benchMaxDeep)
	case o.deliveries < 10 || o.deliveries > 100_000:
		return usageErrorf("bench: --deliveries must be between 10 and 100000")
	case o.deep != 0 && o.url != "":
		return usageErrorf("bench: --deep needs the in-process server; it cannot be used with --url")
	case o.deep == 0 && o.only != nil && slices.ContainsFunc(deepScenarioIDs, func(id string) bool { return o.only[id] }):
		return usageErrorf("bench: --scenarios: scenarios 6a, 6b and 6c need --deep N")
	}
	o.warmup = min(o.warmup, o.duration/2)
	if o.url != "" && o.deferWorker {
		return usageErrorf("bench: --defer-worker needs the in-process server; it cannot be used with --url")
	}
	if o.url == "" {
		if o.keyFlag != "" {
			return usageErrorf("bench: --key needs --url; without it the bench starts its own server and key")
		}
		return nil
	}
	o.key = cmp.Or(o.keyFlag, cfg.APIKey)
	if o.key == "" {
		return usageErrorf("bench: --url needs --key (or HUSTACK_API_KEY)")
	}
	root, err := benchRoot(o.url)
	if err != nil {
		return usageErrorf("bench: --url: %v", err)
	}
	o.url = root
	if !o.allowRemote {
		u, _ := url.Parse(root)
		if err := requireLoopback(u.Hostname()); err != nil {
			return usageErrorf("bench: --url: %v; pass --allow-remote to load another machine", err)
		}
	}
	return nil
}

// benchRoot turns --url into the server's root URL, accepting the API base
// (…/api/v1) too.
func benchRoot(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q: give the server's root URL, without query, fragment or credentials", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), api.APIPrefix)
	return strings.TrimSuffix(u.String(), "/"), nil
}

// requireLoopback accepts only hosts that are, or resolve only to, loopback
// addresses.
func requireLoopback(host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address", host)
		}
		return nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("resolve %s: %v", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not a loopback address", host, ip)
		}
	}
	return nil
}

// --- the report ---

// benchReport is what `hustack bench` prints, as a table or as JSON.
type benchReport struct {
	Mode        string           `json:"mode"` // "in-process" or "external"
	Target      string           `json:"target"`
	Concurrency int              `json:"concurrency"`
	Duration    string           `json:"duration"`
	Warmup      string           `json:"warmup"`
	Accounts    int              `json:"accounts"`
	GOMAXPROCS  int              `json:"gomaxprocs"`
	Scenarios   []scenarioResult `json:"scenarios"`
	Ratios      []ratioResult    `json:"ratios"`
	Events      eventsResult     `json:"events"`
	// Deep is the deep pagination part; nil unless --deep selected it.
	Deep *deepResult `json:"deep,omitempty"`
	// Webhooks is the webhook delivery part (in process only).
	Webhooks *webhookResult `json:"webhooks,omitempty"`
	Notes    []string       `json:"notes"`
}

// scenarioResult is one measured scenario. Latencies are client-side, from
// sending the request to reading the whole response.
type scenarioResult struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Request      string  `json:"request"`
	ExpectStatus int     `json:"expect_status"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	Seconds      float64 `json:"seconds"`
	RPS          float64 `json:"rps"`
	P50MS        float64 `json:"p50_ms"`
	P95MS        float64 `json:"p95_ms"`
	P99MS        float64 `json:"p99_ms"`
	// CPUMicros is the CPU time this process used per request, in
	// process only: client, servers and worker together, including the
	// worker storing the scenario's usage events after the window. It does
	// not depend on what else the machine runs.
	CPUMicros  float64 `json:"cpu_us_per_request,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	// Clients is the number of concurrent clients when it is not the
	// report's concurrency.
	Clients int    `json:"clients,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// ratioResult compares the throughput of two scenarios.
type ratioResult struct {
	Name   string   `json:"name"` // such as "2/1"
	About  string   `json:"about"`
	Value  *float64 `json:"value"`
	Target *float64 `json:"target"` // nil: shown for diagnosis, without a target
	Met    *bool    `json:"met"`
	// CPUValue is the same comparison by CPU time per request (the
	// inverse ratio of cpu_us_per_request): requests/s as they would be if
	// the process had the CPUs to itself.
	CPUValue *float64 `json:"cpu_value,omitempty"`
	Skipped  string   `json:"skipped,omitempty"`
}

// eventsResult checks that usage logging loses nothing: every event the
// batcher sent to the queue is a usage row in the store.
type eventsResult struct {
	Responses uint64 `json:"responses"` // responses the clients got from usage-logging routes
	Recorded  uint64 `json:"recorded"`  // events the batcher was given
	Sent      uint64 `json:"sent"`      // events the batcher enqueued
	Dropped   uint64 `json:"dropped"`   // events the batcher dropped
	Stored    int64  `json:"stored"`    // usage rows in the store after the flush and drain
	Match     bool   `json:"match"`
	// With --defer-worker: how long storing the events took after the load,
	// and the CPU time it took per event.
	StoreSeconds   float64 `json:"store_seconds,omitempty"`
	StoreCPUMicros float64 `json:"store_cpu_us_per_event,omitempty"`
	Skipped        string  `json:"skipped,omitempty"`
}

func (r *benchReport) scenario(id string) *scenarioResult {
	for i := range r.Scenarios {
		if r.Scenarios[i].ID == id {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// computeRatios fills Ratios from the scenarios.
func (r *benchReport) computeRatios() {
	ratio := func(name, about, num, den string, target float64) ratioResult {
		out := ratioResult{Name: name, About: about}
		if target > 0 {
			out.Target = &target
		}
		a, b := r.scenario(num), r.scenario(den)
		switch {
		case a == nil || b == nil:
			out.Skipped = "scenario missing"
		case a.Skipped != "":
			out.Skipped = "scenario " + num + " was not measured"
		case b.Skipped != "":
			out.Skipped = "scenario " + den + " was not measured"
		case b.RPS == 0:
			out.Skipped = "scenario " + den + " made no requests"
		default:
			v := math.Round(a.RPS/b.RPS*1000) / 1000
			out.Value = &v
			if out.Target != nil {
				met := v >= target
				out.Met = &met
			}
			if a.CPUMicros > 0 && b.CPUMicros > 0 {
				c := math.Round(b.CPUMicros/a.CPUMicros*1000) / 1000
				out.CPUValue = &c
			}
		}
		return out
	}
	r.Ratios = []ratioResult{
		ratio("2/1", "authenticated no-DB route through the middleware chain / bare gin", scenChain, scenBare, targetMiddleware),
		ratio("2off/1", "the same route with usage logging off / bare gin (no target: the request path without storing events)",
			scenChainOff, scenBare, 0),
		ratio("2/2off", "the same route with usage logging on / off (no target)", scenChain, scenChainOff, 0),
		ratio("3on/3off", "list accounts with usage logging / without", scenListOn, scenListOff, targetUsage),
		ratio("5/3on", "MCP tools/call list_accounts / REST list accounts", scenMCP, scenListOn, targetMCP),
	}
	if r.Deep != nil {
		r.Ratios = append(r.Ratios,
			ratio("6b/6a", "page at depth N-50 by cursor / first page (no target: the issue asks for about 1)",
				scenDeepCursor, scenDeepFirst, 0),
			ratio("6c/6a", "page at depth N-50 by offset / first page (no target: for comparison)",
				scenDeepOffset, scenDeepFirst, 0))
	}
	if r.scenario(scenHooksMany) != nil {
		r.Ratios = append(r.Ratios, ratio("7b/7a",
			fmt.Sprintf("create note with %d webhook subscriptions / with none (fan-out is the worker's)", benchFanOut),
			scenHooksMany, scenHooksNone, targetFanOut))
	}
}

// failure is the error that makes the command exit non-zero: a request
// that failed, or usage events lost.
func (r *benchReport) failure() error {
	var bad []string
	for _, s := range r.Scenarios {
		if s.Errors > 0 {
			bad = append(bad, fmt.Sprintf("scenario %s: %d errors (first: %s)", s.ID, s.Errors, s.FirstError))
		}
	}
	if r.Deep != nil && !r.Deep.SamePage {
		bad = append(bad, "deep pagination: the pages by cursor and by offset differ: "+r.Deep.Mismatch)
	}
	if r.Events.Skipped == "" && !r.Events.Match {
		bad = append(bad, fmt.Sprintf("usage events: %d sent, %d stored, %d dropped, %d recorded for %d responses",
			r.Events.Sent, r.Events.Stored, r.Events.Dropped, r.Events.Recorded, r.Events.Responses))
	}
	if h := r.Webhooks; h != nil && (h.Received != int64(h.Deliveries+h.LatencyNotes*h.Subscriptions) || h.BadSignatures > 0) {
		bad = append(bad, fmt.Sprintf("webhooks: %d deliveries received of %d, %d bad signatures",
			h.Received, h.Deliveries+h.LatencyNotes*h.Subscriptions, h.BadSignatures))
	}
	if len(bad) > 0 {
		return fmt.Errorf("bench failed: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (r *benchReport) writeTable(w io.Writer) {
	fmt.Fprintf(w, "hustack bench: %s, %s; %d concurrent clients, %s per scenario after a %s warm-up; %d accounts; GOMAXPROCS %d\n\n",
		r.Mode, r.Target, r.Concurrency, r.Duration, r.Warmup, r.Accounts, r.GOMAXPROCS)
	tw := newTable(w)
	fmt.Fprintln(tw, "#\tSCENARIO\tREQUEST\tREQUESTS\tREQ/S\tP50 MS\tP95 MS\tP99 MS\tCPU µS/REQ\tERRORS\t")
	for _, s := range r.Scenarios {
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%d\tskipped: %s\n", s.ID, s.Name, s.Request, s.Errors, s.Skipped)
			continue
		}
		cpu := "-"
		if s.CPUMicros > 0 {
			cpu = fmt.Sprintf("%.1f", s.CPUMicros)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%s\t%d\t\n",
			s.ID, s.Name, s.Request, s.Requests, s.RPS, s.P50MS, s.P95MS, s.P99MS, cpu, s.Errors)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "RATIO\tREQ/S\tTARGET\tMET\tBY CPU\tOF")
	for _, q := range r.Ratios {
		target, met, value, cpu := "-", "-", "-", "-"
		if q.Target != nil {
			target = fmt.Sprintf(">= %.2f", *q.Target)
		}
		if q.Met != nil {
			met = yesNo(*q.Met)
		}
		if q.Value != nil {
			value = fmt.Sprintf("%.3f", *q.Value)
		}
		if q.CPUValue != nil {
			cpu = fmt.Sprintf("%.3f", *q.CPUValue)
		}
		about := q.About
		if q.Skipped != "" {
			about += " (skipped: " + q.Skipped + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", q.Name, value, target, met, cpu, about)
	}
	tw.Flush()

	fmt.Fprintln(w)
	if e := r.Events; e.Skipped != "" {
		fmt.Fprintf(w, "Usage events: skipped: %s\n", e.Skipped)
	} else {
		verdict := "MATCH"
		if !e.Match {
			verdict = "MISMATCH"
		}
		fmt.Fprintf(w, "Usage events: sent %d, stored %d: %s (recorded %d, dropped %d, responses from usage-logging routes %d)\n",
			e.Sent, e.Stored, verdict, e.Recorded, e.Dropped, e.Responses)
		if e.StoreSeconds > 0 {
			fmt.Fprintf(w, "Deferred worker: stored them in %.3f s after the load, %.1f µs of CPU per event\n", e.StoreSeconds, e.StoreCPUMicros)
		}
	}
	if d := r.Deep; d != nil {
		same := "the same records"
		if !d.SamePage {
			same = "DIFFERENT records"
		}
		fmt.Fprintf(w, "Deep pagination: %d accounts seeded in %.3f s (%.0f/s, %d writers through the store); "+
			"the cursor of depth %d took a walk of %d pages of %d in %.3f s; cursor and offset pages hold %s\n",
			d.Accounts, d.SeedSeconds, d.SeedPerSecond, d.SeedWriters, d.Depth, d.WalkPages, d.WalkLimit, d.WalkSeconds, same)
	}
	if h := r.Webhooks; h != nil {
		fmt.Fprintf(w, "Webhook deliveries: %d events x %d subscriptions = %d deliveries to a local receiver in %.3f s: %.0f deliveries/s "+
			"(received %d distinct, %d duplicates, %d bad signatures)\n",
			h.Events, h.Subscriptions, h.Deliveries, h.Seconds, h.PerSecond, h.Received, h.Duplicates, h.BadSignatures)
		fmt.Fprintf(w, "Webhook latency, record created to delivery received (%d notes, one every %s, worker idle): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			h.LatencyNotes, benchTrickleEvery, h.LatencyP50MS, h.LatencyP99MS, h.LatencyMaxMS)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "Note: "+n)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// --- scenarios and the load generator ---

// benchTarget is one kind of request the load generator repeats.
type benchTarget struct {
	id, name string
	method   string
	url      string
	display  string // the request as the report shows it; "" derives it from url
	body     []byte
	header   http.Header
	expect   int
	// check looks at a response body with the expected status; nil accepts
	// any.
	check func(body []byte) error
	// usage reports whether the route records usage events, for the events
	// check.
	usage bool
	// For slow requests: noWarmup skips the warm-up; maxRequests, when
	// set, caps the measured requests below benchMaxRequests; concurrency,
	// when set, replaces --concurrency.
	noWarmup    bool
	maxRequests int64
	concurrency int
}

func (t *benchTarget) request() string {
	if t.display != "" {
		return t.display
	}
	u, err := url.Parse(t.url)
	if err != nil {
		return t.method + " " + t.url
	}
	if t.id == scenMCP {
		return "POST " + u.Path + " tools/call list_accounts"
	}
	return t.method + " " + u.RequestURI()
}

func (t *benchTarget) newRequest(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if t.body != nil {
		body = bytes.NewReader(t.body)
	}
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, body)
	if err != nil {
		return nil, err
	}
	req.Header = t.header.Clone()
	return req, nil
}

// benchTargets builds the requests of every scenario: root is the API
// server with usage logging, offRoot the same API without it and bareRoot
// the bare gin server ("" for those not available).
// pageRecords is the number of records a list page must hold.
func benchTargets(root, offRoot, bareRoot, key string, pageRecords int) []*benchTarget {
	auth := func(extra ...string) http.Header {
		h := http.Header{"Authorization": {"Bearer " + key}, "User-Agent": {"hustack-bench"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	listPath := fmt.Sprintf("%s/accounts?limit=%d", api.APIPrefix, benchPageSize)
	list := func(id, name, root string) *benchTarget {
		return &benchTarget{id: id, name: name, method: http.MethodGet, url: root + listPath,
			header: auth(), expect: http.StatusOK, check: checkListPage(pageRecords), usage: id == scenListOn}
	}
	return []*benchTarget{
		{id: scenBare, name: "bare gin handler, small JSON (ceiling)", method: http.MethodGet, url: bareRoot + api.HealthPath,
			header: http.Header{"User-Agent": {"hustack-bench"}}, expect: http.StatusOK},
		{id: scenChain, name: "authenticated, no DB (auth, rate limit, usage)", method: http.MethodGet, url: root + benchNoDBPath,
			header: auth(), expect: http.StatusNotFound, check: checkErrorCode(store.ENOTFOUND), usage: true},
		{id: scenChainOff, name: "authenticated, no DB, usage logging off", method: http.MethodGet, url: offRoot + benchNoDBPath,
			header: auth(), expect: http.StatusNotFound, check: checkErrorCode(store.ENOTFOUND)},
		{id: scenMe, name: "authenticated GET /me (one indexed read)", method: http.MethodGet, url: root + api.APIPrefix + "/me",
			header: auth(), expect: http.StatusOK, usage: true},
		list(scenListOn, "list accounts, usage logging on", root),
		list(scenListOff, "list accounts, usage logging off", offRoot),
		{id: scenNote, name: "create note", method: http.MethodPost, url: root + api.APIPrefix + "/notes", body: noteBody,
			header: auth("Content-Type", "application/json"), expect: http.StatusCreated, usage: true},
		{id: scenMCP, name: "MCP list_accounts (Streamable HTTP)", method: http.MethodPost, url: root + api.MCPPath, body: mcpListAccountsBody,
			header: auth(
				"Content-Type", "application/json",
				"Accept", "application/json, text/event-stream",
				"Mcp-Protocol-Version", "2026-07-28",
				"Mcp-Method", "tools/call",
				"Mcp-Name", "list_accounts",
			), expect: http.StatusOK, check: checkToolResult(pageRecords), usage: true},
	}
}

// checkListPage accepts a page of n records.
func checkListPage(n int) func([]byte) error {
	return func(body []byte) error {
		if !bytes.HasPrefix(body, []byte(`{"data":[`)) {
			return fmt.Errorf("not a page of records: %.120s", body)
		}
		if got := bytes.Count(body, []byte(`"created_via":`)); got != n {
			return fmt.Errorf("page holds %d records, want %d", got, n)
		}
		return nil
	}
}

func checkErrorCode(code string) func([]byte) error {
	want := []byte(`"error":"` + code + `"`)
	return func(body []byte) error {
		if !bytes.Contains(body, want) {
			return fmt.Errorf("error body without %s: %.120s", want, body)
		}
		return nil
	}
}

// checkToolResult accepts a JSON-RPC result that is not a tool error and
// shows at least n records.
func checkToolResult(n int) func([]byte) error {
	return func(body []byte) error {
		if !bytes.Contains(body, []byte(`"result"`)) || bytes.Contains(body, []byte(`"isError":true`)) {
			return fmt.Errorf("tool call failed: %.200s", body)
		}
		// The records are in the structured content and, escaped, in the
		// text content.
		if got := bytes.Count(body, []byte(`created_via`)); got < n {
			return fmt.Errorf("tool result holds %d records, want %d", got, n)
		}
		return nil
	}
}

// loadResult is what one measurement produced.
type loadResult struct {
	requests  int64
	errors    int64
	answered  int64 // requests the server answered, with any status
	elapsed   time.Duration
	latencies []int64 // nanoseconds, one per request
	firstErr  string
}

// errorCounter keeps the number of failed requests and the first failure.
type errorCounter struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *errorCounter) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

// drive sends t's request from concurrency clients in a loop until d has
// passed (or maxRequests were sent, or ctx is done). A request under way at
// the deadline completes and counts.
func drive(ctx context.Context, hc *http.Client, t *benchTarget, concurrency int, d time.Duration, maxRequests int64) loadResult {
	var (
		started  atomic.Int64
		answered atomic.Int64
		errs     errorCounter
		wg       sync.WaitGroup
		lats     = make([][]int64, concurrency)
	)
	begin := time.Now()
	deadline := begin.Add(d)
	for w := range concurrency {
		wg.Go(func() {
			buf := new(bytes.Buffer)
			lat := make([]int64, 0, 1024)
			for time.Now().Before(deadline) && ctx.Err() == nil && started.Add(1) <= maxRequests {
				t0 := time.Now()
				ok, err := do(ctx, hc, t, buf)
				lat = append(lat, int64(time.Since(t0)))
				if ok {
					answered.Add(1)
				}
				if err != nil && ctx.Err() == nil {
					errs.add(err)
				}
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(begin), errors: errs.n.Load(), answered: answered.Load(), firstErr: errs.first}
	for _, l := range lats {
		res.latencies = append(res.latencies, l...)
	}
	res.requests = int64(len(res.latencies))
	return res
}

// do sends one request and reads the whole response into buf. It reports
// whether the server answered, even with an error.
func do(ctx context.Context, hc *http.Client, t *benchTarget, buf *bytes.Buffer) (answered bool, err error) {
	req, err := t.newRequest(ctx)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return true, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != t.expect {
		return true, fmt.Errorf("status %d, want %d: %.200s", resp.StatusCode, t.expect, buf.Bytes())
	}
	if t.check != nil {
		return true, t.check(buf.Bytes())
	}
	return true, nil
}

// percentileMS returns the p-th percentile (nearest rank) of sorted
// nanosecond latencies, in milliseconds.
func percentileMS(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return math.Round(float64(sorted[i])/1e3) / 1e3
}

// benchRunner runs the scenarios against one set of servers.
type benchRunner struct {
	o  benchOptions
	hc *http.Client
	// quiesce, when set, waits until the usage events of the requests made
	// so far are stored, so that one scenario's background work does not
	// land in the next one's measurement.
	quiesce func(ctx context.Context) error
	// cpu reports the process's CPU time per request: only meaningful when
	// the servers run in this process.
	cpu bool
	// responses counts the responses of routes that record usage.
	responses atomic.Uint64
}

// newBenchClient returns an HTTP client that keeps one connection per
// concurrent client to each server and refuses to dial anything but
// loopback unless remote is allowed.
func newBenchClient(concurrency int, allowRemote bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowRemote {
		dialer.ControlContext = func(ctx context.Context, network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("bench: refusing to connect to %s: not a loopback address", address)
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                 nil, // never through a proxy: the load is local
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0, // no overall limit
		MaxIdleConnsPerHost:   concurrency + 4,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// run measures t: one request to check it works, the warm-up, then the
// measured load.
func (br *benchRunner) run(ctx context.Context, t *benchTarget) (scenarioResult, error) {
	res := scenarioResult{ID: t.id, Name: t.name, Request: t.request(), ExpectStatus: t.expect}
	clients := br.o.concurrency
	if t.concurrency > 0 && t.concurrency != clients {
		clients, res.Clients = t.concurrency, t.concurrency
	}
	count := func(n int64) {
		if t.usage {
			br.responses.Add(uint64(n))
		}
	}
	// A broken scenario fails once, clearly, instead of a million times.
	ok, err := do(ctx, br.hc, t, new(bytes.Buffer))
	if ok {
		count(1)
	}
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Requests, res.Errors, res.FirstError = 1, 1, err.Error()
		res.Skipped = "the first request failed"
		return res, nil
	}
	if br.o.warmup > 0 && !t.noWarmup {
		w := drive(ctx, br.hc, t, clients, br.o.warmup, benchMaxRequests)
		count(w.answered)
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	// The window starts with the usage pipeline empty, so that its CPU time
	// is that of the window's own events.
	if t.usage && br.quiesce != nil {
		if err := br.quiesce(ctx); err != nil {
			return res, err
		}
	}
	stopProfile, err := br.startProfile(t.id)
	if err != nil {
		return res, err
	}
	cpu0, cpuOK := processCPU()
	m := drive(ctx, br.hc, t, clients, br.o.duration, cmp.Or(t.maxRequests, benchMaxRequests))
	if err := ctx.Err(); err != nil {
		stopProfile()
		return res, err
	}
	// The usage events of the window are stored before the next scenario
	// starts, and their CPU time counts for this one.
	if t.usage && br.quiesce != nil {
		if err := br.quiesce(ctx); err != nil {
			stopProfile()
			return res, err
		}
	}
	cpu1, _ := processCPU()
	stopProfile()
	if cpuOK && br.cpu && m.requests > 0 {
		res.CPUMicros = math.Round(float64((cpu1-cpu0).Nanoseconds())/float64(m.requests)/100) / 10
	}
	count(m.answered)
	slices.Sort(m.latencies)
	res.Requests, res.Errors, res.FirstError = m.requests, m.errors, m.firstErr
	res.Seconds = math.Round(m.elapsed.Seconds()*1000) / 1000
	if m.elapsed > 0 {
		res.RPS = math.Round(float64(m.requests) / m.elapsed.Seconds())
	}
	res.P50MS = percentileMS(m.latencies, 0.50)
	res.P95MS = percentileMS(m.latencies, 0.95)
	res.P99MS = percentileMS(m.latencies, 0.99)
	return res, nil
}

// startProfile starts a CPU profile of the scenario when --profile is set.
func (br *benchRunner) startProfile(id string) (stop func(), err error) {
	if br.o.profileDir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(br.o.profileDir, "scenario-"+id+".cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// runAll runs every target in order; those in skip are reported with the
// reason instead.
func (br *benchRunner) runAll(ctx context.Context, targets []*benchTarget, skip map[string]string) ([]scenarioResult, error) {
	var out []scenarioResult
	for _, t := range targets {
		why, ok := skip[t.id]
		if !ok && br.o.only != nil && !br.o.only[t.id] {
			why, ok = "not selected by --scenarios", true
		}
		if ok {
			out = append(out, scenarioResult{ID: t.id, Name: t.name, Request: t.request(), ExpectStatus: t.expect, Skipped: why})
			continue
		}
		res, err := br.run(ctx, t)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

func newReport(o benchOptions, mode, target string, accounts int) *benchReport {
	return &benchReport{
		Mode:        mode,
		Target:      target,
		Concurrency: o.concurrency,
		Duration:    o.duration.String(),
		Warmup:      o.warmup.String(),
		Accounts:    accounts,
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		Notes:       []string{},
	}
}

// --- the bare gin server ---

// newBareEngine is the ceiling: a plain gin engine that answers the health
// check's small JSON body, with no middleware.
func newBareEngine() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.GET(api.HealthPath, func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "service": "hustack-api", "version": "v1"})
	})
	return e
}

// benchServer is an HTTP server of the bench on a loopback port, with the
// same settings as `serve`.
type benchServer struct {
	root    string
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	stopErr error
}

func startBenchServer(ctx context.Context, h http.Handler, logger *slog.Logger) (*benchServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: listen: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &benchServer{root: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- serveHTTP(sctx, ln, h, logger, drainTimeout) }()
	return s, nil
}

// stop shuts the server down and waits for it. It may be called more than
// once.
func (s *benchServer) stop() error {
	if s == nil {
		return nil
	}
	s.once.Do(func() {
		s.cancel()
		s.stopErr = <-s.done
	})
	return s.stopErr
}
