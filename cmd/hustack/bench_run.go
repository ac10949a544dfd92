package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker"
)

// benchRateLimit is the bench key's rate limit: far above what one machine
// can send, so that the limiter is consulted on every request but never
// refuses one.
var benchRateLimit = store.RateLimit{Count: 1_000_000, Period: time.Second}

// benchInProcess starts everything in this process on the embedded
// defaults (SQLite in a temporary directory, embedded Redis, worker in
// process) and measures every scenario over loopback HTTP:
//
//   - the API with usage logging (scenarios 2 to 5),
//   - a second API over the same SQLite file built without usage logging
//     (3off): every other part is the same,
//   - a bare gin engine (1).
//
// After the load, the servers stop, the usage batcher flushes, the worker
// processes every queued batch, and the store, opened again, must hold one
// usage row per event sent.
//
// With --defer-worker the batcher enqueues into a queue that no worker
// serves during the load; a worker stores the events after it, as when
// workers run on other machines. The figures then show the API's own cost,
// and the events check reports what storing them cost.
func benchInProcess(ctx context.Context, c *cli, o benchOptions) (_ *benchReport, err error) {
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir, err := os.MkdirTemp("", "hustack-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)

	cfg := c.cfg
	cfg.DataDir, cfg.MongoURI, cfg.RedisURL = dir, "", ""
	cfg.Worker, cfg.MCP = true, true

	// Everything started is stopped on every path; the success path stops
	// it explicitly first, to check the usage rows.
	var (
		on, off           *app
		bare, srv, offSrv *benchServer
	)
	stopAll := func() error {
		var errs []error
		for _, s := range []*benchServer{bare, srv, offSrv} {
			if err := s.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), benchQuiesceTimeout)
		defer cancel()
		for _, a := range []*app{off, on} {
			if a != nil {
				if err := a.Close(closeCtx); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	}
	defer func() {
		if cerr := stopAll(); cerr != nil && err == nil {
			err = fmt.Errorf("bench: stop servers: %w", cerr)
		}
	}()

	var onOpts []appOption
	if o.deferWorker {
		onOpts = append(onOpts, withBatcherConfig(worker.BatcherConfig{Queue: benchDeferredQueue}))
	}
	if on, err = newApp(ctx, cfg, logger, onOpts...); err != nil {
		return nil, err
	}
	rawKey, err := benchSetup(ctx, on.Service, o.seed)
	if err != nil {
		return nil, err
	}
	offCfg := cfg
	offCfg.Worker = false // it records no usage, so it has nothing to process
	if off, err = newApp(ctx, offCfg, logger, withoutUsage()); err != nil {
		return nil, err
	}
	if bare, err = startBenchServer(ctx, newBareEngine(), logger); err != nil {
		return nil, err
	}
	if srv, err = startBenchServer(ctx, on.Handler(), logger); err != nil {
		return nil, err
	}
	if offSrv, err = startBenchServer(ctx, off.Handler(), logger); err != nil {
		return nil, err
	}

	br := &benchRunner{o: o, hc: newBenchClient(o.concurrency, false), cpu: true, quiesce: func(ctx context.Context) error {
		return quiesceUsage(ctx, on, !o.deferWorker)
	}}
	defer br.hc.CloseIdleConnections()
	target := "sqlite in a temporary directory, embedded Redis, worker in process"
	if o.deferWorker {
		target = "sqlite in a temporary directory, embedded Redis, worker deferred until after the load"
	}
	rep := newReport(o, "in-process", target, o.seed)
	targets := benchTargets(srv.root, offSrv.root, bare.root, rawKey, min(o.seed, benchPageSize))
	if rep.Scenarios, err = br.runAll(ctx, targets, nil); err != nil {
		return nil, err
	}
	keys := []string{rawKey}
	if o.deepSelected() {
		deep, scenarios, deepKey, err := runDeep(ctx, br, on.Service, srv.root, c.stderr)
		if err != nil {
			return nil, err
		}
		rep.Deep = deep
		rep.Scenarios = append(rep.Scenarios, scenarios...)
		keys = append(keys, deepKey)
	}
	if o.webhooksSelected() {
		hooks, scenarios, err := runWebhooks(ctx, br, cfg, o.deliveries, logger, c.stderr)
		if err != nil {
			return nil, err
		}
		rep.Webhooks = hooks
		rep.Scenarios = append(rep.Scenarios, scenarios...)
	}
	rep.computeRatios()

	// The events check: stop taking requests, flush and drain, then count
	// the rows in the store as a new process would find them.
	for _, s := range []*benchServer{bare, srv, offSrv} {
		if err := s.stop(); err != nil {
			return nil, fmt.Errorf("bench: stop servers: %w", err)
		}
	}
	var deferred *deferredStore
	if o.deferWorker {
		if deferred, err = storeDeferred(ctx, on, logger); err != nil {
			return nil, err
		}
	}
	if err := stopAll(); err != nil {
		return nil, fmt.Errorf("bench: stop servers: %w", err)
	}
	st := on.Batcher.Stats()
	stored, err := countStoredUsage(ctx, cfg, keys...)
	if err != nil {
		return nil, err
	}
	rep.Events = eventsResult{
		Responses: br.responses.Load(),
		Recorded:  st.Recorded,
		Sent:      st.Enqueued,
		Dropped:   st.Dropped,
		Stored:    stored,
	}
	rep.Events.Match = stored == int64(st.Enqueued) && st.Dropped == 0 && st.Recorded == st.Enqueued &&
		rep.Events.Responses == st.Recorded
	if deferred != nil {
		rep.Events.StoreSeconds = math.Round(deferred.elapsed.Seconds()*1000) / 1000
		if st.Enqueued > 0 && deferred.cpu > 0 {
			rep.Events.StoreCPUMicros = math.Round(float64(deferred.cpu.Nanoseconds())/float64(st.Enqueued)/100) / 10
		}
	}
	rep.Notes = append(rep.Notes,
		"2 is "+benchNoDBPath+": an authenticated route whose id is malformed, answered 404 by the handler "+
			"before any store call, so it runs the whole chain (request id, auth, usage, rate limit, query parsing, "+
			"error body) without the database. The API has no authenticated route that answers 200 without the "+
			"database: GET /api/v1/me reads the workspace (2b).",
		"2off and 3off run on a second API instance over the same SQLite file and configuration, built without usage logging.",
		"Rate limits are per instance in memory (embedded Redis); the bench key allows "+benchRateLimit.String()+".",
		cpuNote(o.deferWorker),
		"Client and servers share this machine's CPUs: the ratios compare like with like, the absolute figures are lower than a separate client would show.",
	)
	if rep.Deep != nil {
		rep.Notes = append(rep.Notes, deepNote())
	}
	if rep.Webhooks != nil {
		rep.Notes = append(rep.Notes, webhookNote(o.deliveries))
	}
	return rep, nil
}

func cpuNote(deferred bool) string {
	if deferred {
		return "CPU µs/req is this process's CPU time (client, servers, batcher) per request of the window; " +
			"storing the usage events is not in it: the deferred worker's cost is shown separately."
	}
	return "CPU µs/req is this process's CPU time (client, servers, worker) per request of the window; with usage " +
		"logging it includes storing the window's events, which the worker finishes after the window."
}

// benchSetup creates the workspace, a key with every scope, and n accounts.
func benchSetup(ctx context.Context, svc *store.Service, n int) (rawKey string, err error) {
	rawKey, sc, err := benchWorkspace(ctx, svc, "Bench")
	if err != nil {
		return "", err
	}
	industries := []string{"Software", "Retail", "Manufacturing", "Finance", "Health"}
	for i := range n {
		if _, err := sc.CreateRecord(ctx, store.Accounts, map[string]any{
			"name":     fmt.Sprintf("Account %05d", i),
			"industry": industries[i%len(industries)],
			"website":  fmt.Sprintf("https://account-%d.example.com", i),
		}); err != nil {
			return "", fmt.Errorf("bench: seed accounts: %w", err)
		}
	}
	return rawKey, nil
}

// benchDeferredQueue is the usage queue of --defer-worker: no worker serves
// it until the load is over.
const benchDeferredQueue = "bench-deferred-usage"

// deferredStore is what storing the deferred usage events took.
type deferredStore struct {
	elapsed time.Duration
	cpu     time.Duration // of the whole process, which does nothing else meanwhile
}

// storeDeferred flushes the batcher and runs a worker on the deferred queue
// until it is empty.
func storeDeferred(ctx context.Context, a *app, logger *slog.Logger) (*deferredStore, error) {
	ctx, cancel := context.WithTimeout(ctx, benchQuiesceTimeout)
	defer cancel()
	if err := a.Batcher.Close(ctx); err != nil {
		return nil, fmt.Errorf("bench: flush usage events: %w", err)
	}
	w := worker.NewServer(a.Redis.Client, a.Service, worker.Config{
		Queues:       worker.Queues{Usage: benchDeferredQueue, Maintenance: benchDeferredQueue + "-maintenance"},
		Retention:    -1,
		PollInterval: 50 * time.Millisecond,
	}, logger)
	start := time.Now()
	cpu0, _ := processCPU()
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	err := w.Drain(ctx)
	cpu1, _ := processCPU()
	elapsed := time.Since(start)
	w.Shutdown()
	if err != nil {
		return nil, fmt.Errorf("bench: store deferred usage events: %w", err)
	}
	return &deferredStore{elapsed: elapsed, cpu: cpu1 - cpu0}, nil
}

// quiesceUsage waits until every usage event recorded so far has left the
// batcher and, when stored is set, is stored (the worker's queue is empty).
func quiesceUsage(ctx context.Context, a *app, stored bool) error {
	ctx, cancel := context.WithTimeout(ctx, benchQuiesceTimeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for a.Batcher.Stats().Buffered > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: usage events still buffered after %s", benchQuiesceTimeout)
		case <-t.C:
		}
	}
	if !stored {
		return nil
	}
	if err := a.Worker.Drain(ctx); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// countStoredUsage opens the closed store again and counts the usage rows
// of the keys' workspaces.
func countStoredUsage(ctx context.Context, cfg Config, rawKeys ...string) (int64, error) {
	svc, err := openService(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer svc.Close()
	var n int64
	for _, raw := range rawKeys {
		p, err := svc.Authenticate(ctx, raw)
		if err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		counts, err := svc.Scoped(p).CountUsage(ctx, store.UsageQuery{}, store.GroupByKey)
		if err != nil {
			return 0, fmt.Errorf("bench: count usage rows: %w", err)
		}
		for _, g := range counts {
			n += g.Count
		}
	}
	return n, nil
}

// benchExternal loads a running server with the given key. It cannot
// measure the bare gin ceiling or usage logging turned off, nor count the
// server's usage rows.
func benchExternal(ctx context.Context, o benchOptions) (*benchReport, error) {
	br := &benchRunner{o: o, hc: newBenchClient(o.concurrency, o.allowRemote)}
	defer br.hc.CloseIdleConnections()
	accounts, err := benchSeedRemote(ctx, br.hc, o.url, o.key, min(o.seed, benchPageSize))
	if err != nil {
		return nil, err
	}
	rep := newReport(o, "external", o.url, accounts)
	targets := benchTargets(o.url, o.url, o.url, o.key, accounts)
	for _, t := range targets {
		if t.id == scenListOn {
			t.name = "list accounts, usage logging as the server has it"
		}
	}
	skip := map[string]string{
		scenBare:     "the bare gin ceiling runs only in process",
		scenChainOff: "usage logging cannot be turned off on an external server",
		scenListOff:  "usage logging cannot be turned off on an external server",
	}
	if rep.Scenarios, err = br.runAll(ctx, targets, skip); err != nil {
		return nil, err
	}
	rep.computeRatios()
	rep.Events = eventsResult{Skipped: "the events check needs the server's store and batcher; it runs only in process"}
	rep.Notes = append(rep.Notes,
		"4 writes notes into the key's workspace on "+o.url+".",
		"2 is "+benchNoDBPath+": an authenticated route answered 404 before any store call.")
	return rep, nil
}

// benchSeedRemote makes sure the key's workspace shows at least want
// accounts on its first page, creating the shortfall, and returns how many
// the page shows.
func benchSeedRemote(ctx context.Context, hc *http.Client, root, key string, want int) (int, error) {
	call := func(method, path, body string, out any) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, root+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("bench: %s %s: %w", method, path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			var e api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&e)
			return fmt.Errorf("bench: %s %s: status %d: %s %s", method, path, resp.StatusCode, e.Error, e.Message)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := call(http.MethodGet, fmt.Sprintf("%s/accounts?limit=%d", api.APIPrefix, benchPageSize), "", &page); err != nil {
		return 0, err
	}
	have := len(page.Data)
	for i := have; i < want; i++ {
		body := fmt.Sprintf(`{"name":"Bench account %d","industry":"Software"}`, i)
		if err := call(http.MethodPost, api.APIPrefix+"/accounts", body, nil); err != nil {
			return 0, err
		}
		have++
	}
	return have, nil
}
