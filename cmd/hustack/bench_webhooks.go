package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker"
)

// The webhook scenarios: creating a note in a workspace with no
// subscriptions (7a) and with benchFanOut subscriptions to it (7b). "7"
// selects both and the delivery part after them.
const (
	scenHooksNone = "7a"
	scenHooksMany = "7b"
	scenHooks     = "7"
)

var webhookScenarioIDs = []string{scenHooksNone, scenHooksMany}

// Sizes of the webhook part.
const (
	benchFanOut = 100 // subscriptions of scenario 7b
	// benchHookRequests caps the creates of 7a and 7b: their events wait in
	// the outbox, and the fewer there are the sooner the bench ends.
	benchHookRequests = 5000
	// The delivery part: benchDeliverySubs subscriptions get every one of
	// the notes (--deliveries) created before the worker starts.
	benchDeliverySubs = 10
	// The latency part: up to benchTrickleNotes notes created one at a
	// time, benchTrickleEvery apart, with the worker running.
	benchTrickleNotes = 100
	benchTrickleEvery = 20 * time.Millisecond
	// benchDeliveryTimeout bounds the wait for the deliveries.
	benchDeliveryTimeout = 3 * time.Minute
)

// targetFanOut is the 7b/7a target: a create costs the same with or
// without subscriptions, since fan-out happens in the worker.
const targetFanOut = 0.95

// webhookResult is the delivery part of the report.
type webhookResult struct {
	Subscriptions int     `json:"subscriptions"`
	Events        int     `json:"events"`
	Deliveries    int     `json:"deliveries"` // expected: Subscriptions × Events
	Received      int64   `json:"received"`   // distinct (webhook-id, subscription) pairs received
	Duplicates    int64   `json:"duplicates"` // deliveries received more than once
	BadSignatures int64   `json:"bad_signatures"`
	Seconds       float64 `json:"seconds"`
	PerSecond     float64 `json:"deliveries_per_second"`
	// Latency from a record's creation (the event's created_at) to its
	// delivery's arrival, for notes created one at a time with the worker
	// running.
	LatencyNotes int     `json:"latency_notes"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`
}

func (o *benchOptions) webhooksSelected() bool {
	return o.only == nil || o.only[scenHooksNone] || o.only[scenHooksMany]
}

// hookReceiver is a local webhook receiver: it checks every signature and
// counts deliveries by event id and subscription (the URL's last segment).
type hookReceiver struct {
	secrets sync.Map // subscription index (string) -> secret
	mu      sync.Mutex
	seen    map[string]bool
	arrival map[string]time.Time // event id -> first arrival
	created map[string]time.Time // event id -> event created_at
	dups    atomic.Int64
	bad     atomic.Int64
	count   atomic.Int64
}

func newHookReceiver() *hookReceiver {
	return &hookReceiver{seen: map[string]bool{}, arrival: map[string]time.Time{}, created: map[string]time.Time{}}
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sub := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	secret, ok := h.secrets.Load(sub)
	if !ok || worker.Verify(secret.(string), r.Header, body, 5*time.Minute) != nil {
		h.bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get("webhook-id") {
		h.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	k := ev.ID + "/" + sub
	if h.seen[k] {
		h.dups.Add(1)
	} else {
		h.seen[k] = true
		h.count.Add(1)
		if _, ok := h.arrival[ev.ID]; !ok {
			h.arrival[ev.ID], h.created[ev.ID] = now, ev.CreatedAt
		}
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// subscribe creates n subscriptions of sc to note.created at the receiver.
func (h *hookReceiver) subscribe(ctx context.Context, sc *store.Scoped, root string, n int) error {
	for i := range n {
		key := fmt.Sprintf("%s-%d", sc.Principal().WorkspaceID, i)
		_, secret, err := sc.CreateWebhook(ctx, store.WebhookInput{URL: root + "/hooks/" + key, Events: []string{"note.created"}})
		if err != nil {
			return fmt.Errorf("bench: subscribe: %w", err)
		}
		h.secrets.Store(key, secret)
	}
	return nil
}

// runWebhooks measures the webhook part on its own store (so that no other
// part's worker relays its events): 7a and 7b with no worker running, so
// that they measure the request path; then, with a worker, the deliveries
// per second of a backlog and the latency of single changes.
func runWebhooks(ctx context.Context, br *benchRunner, cfg Config, notes int, logger *slog.Logger, progress io.Writer) (
	_ *webhookResult, _ []scenarioResult, err error) {
	dir, err := os.MkdirTemp("", "hustack-bench-hooks-")
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg.DataDir, cfg.MongoURI, cfg.RedisURL = dir, "", ""
	cfg.Worker, cfg.MCP, cfg.WebhookAllowInsecure = false, false, true
	a, err := newApp(ctx, cfg, logger, withoutUsage())
	if err != nil {
		return nil, nil, err
	}
	var srv, recvSrv *benchServer
	var w *worker.Server
	defer func() {
		if w != nil {
			w.Shutdown()
		}
		for _, s := range []*benchServer{srv, recvSrv} {
			if serr := s.stop(); serr != nil && err == nil {
				err = serr
			}
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), benchQuiesceTimeout)
		defer cancel()
		if cerr := a.Close(closeCtx); cerr != nil && err == nil {
			err = cerr
		}
	}()
	recv := newHookReceiver()
	if recvSrv, err = startBenchServer(ctx, recv, logger); err != nil {
		return nil, nil, err
	}
	if srv, err = startBenchServer(ctx, a.Handler(), logger); err != nil {
		return nil, nil, err
	}
	keyNone, _, err := benchWorkspace(ctx, a.Service, "Bench webhooks: none")
	if err != nil {
		return nil, nil, err
	}
	keyMany, scMany, err := benchWorkspace(ctx, a.Service, "Bench webhooks: many")
	if err != nil {
		return nil, nil, err
	}
	if err := recv.subscribe(ctx, scMany, recvSrv.root, benchFanOut); err != nil {
		return nil, nil, err
	}
	note := func(id, name, key string) *benchTarget {
		return &benchTarget{id: id, name: name, method: http.MethodPost, url: srv.root + api.APIPrefix + "/notes",
			body: noteBody, expect: http.StatusCreated, maxRequests: benchHookRequests,
			header: http.Header{"Authorization": {"Bearer " + key}, "User-Agent": {"hustack-bench"}, "Content-Type": {"application/json"}}}
	}
	scenarios, err := br.runAll(ctx, []*benchTarget{
		note(scenHooksNone, "create note, workspace without webhook subscriptions", keyNone),
		note(scenHooksMany, fmt.Sprintf("create note, workspace with %d subscriptions to note.created", benchFanOut), keyMany),
	}, nil)
	if err != nil {
		return nil, nil, err
	}
	// 7b's events are not delivered: its subscriptions go before the worker
	// starts, so that the delivery part measures a known number.
	hooks, err := scMany.FindWebhooks(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, h := range hooks {
		if err := scMany.DeleteWebhook(ctx, h.ID); err != nil {
			return nil, nil, err
		}
	}

	// The backlog: notes created before the worker runs.
	_, scDel, err := benchWorkspace(ctx, a.Service, "Bench webhooks: deliveries")
	if err != nil {
		return nil, nil, err
	}
	if err := recv.subscribe(ctx, scDel, recvSrv.root, benchDeliverySubs); err != nil {
		return nil, nil, err
	}
	for i := range notes {
		if _, err := scDel.CreateRecord(ctx, store.Notes, map[string]any{"title": "Delivery " + strconv.Itoa(i), "content": "Sent to every subscription."}); err != nil {
			return nil, nil, fmt.Errorf("bench: create notes: %w", err)
		}
	}
	res := &webhookResult{Subscriptions: benchDeliverySubs, Events: notes, Deliveries: benchDeliverySubs * notes}
	fmt.Fprintf(progress, "bench: delivering %d events to %d subscriptions...\n", res.Events, res.Subscriptions)
	w = worker.NewServer(a.Redis.Client, a.Service, worker.Config{Retention: -1, TombstoneRetention: -1}, logger)
	start := time.Now()
	if err := w.Start(); err != nil {
		return nil, nil, err
	}
	if err := waitReceived(ctx, recv, int64(res.Deliveries)); err != nil {
		return nil, nil, err
	}
	elapsed := time.Since(start)
	res.Seconds = math.Round(elapsed.Seconds()*1000) / 1000
	res.PerSecond = math.Round(float64(res.Deliveries) / elapsed.Seconds())

	// Latency: one note at a time, the worker idle between them.
	var ids []string
	for i := range min(benchTrickleNotes, notes) {
		rec, err := scDel.CreateRecord(ctx, store.Notes, map[string]any{"title": "Latency " + strconv.Itoa(i), "content": "Timed from creation to arrival."})
		if err != nil {
			return nil, nil, fmt.Errorf("bench: create notes: %w", err)
		}
		ids = append(ids, rec.ID)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(benchTrickleEvery):
		}
	}
	if err := waitReceived(ctx, recv, int64(res.Deliveries+len(ids)*benchDeliverySubs)); err != nil {
		return nil, nil, err
	}
	res.LatencyNotes = len(ids)
	res.LatencyP50MS, res.LatencyP99MS, res.LatencyMaxMS = recv.latencies(res.Events+len(ids), res.Events)
	res.Received, res.Duplicates, res.BadSignatures = recv.count.Load(), recv.dups.Load(), recv.bad.Load()
	return res, scenarios, nil
}

// waitReceived waits until the receiver has n distinct deliveries.
func waitReceived(ctx context.Context, recv *hookReceiver, n int64) error {
	ctx, cancel := context.WithTimeout(ctx, benchDeliveryTimeout)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for recv.count.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %d of %d webhook deliveries arrived within %s (bad signatures: %d)",
				recv.count.Load(), n, benchDeliveryTimeout, recv.bad.Load())
		case <-t.C:
		}
	}
	return nil
}

// latencies returns the p50, p99 and maximum time from creation to first
// arrival of the events created after the backlog: of total events, the
// latest total-backlog by creation time.
func (h *hookReceiver) latencies(total, backlog int) (p50, p99, maxMS float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	type pair struct{ created, arrived time.Time }
	var all []pair
	for id, at := range h.arrival {
		all = append(all, pair{h.created[id], at})
	}
	slices.SortFunc(all, func(a, b pair) int { return a.created.Compare(b.created) })
	n := total - backlog
	if n <= 0 || len(all) < n {
		return 0, 0, 0
	}
	var ns []int64
	for _, p := range all[len(all)-n:] {
		ns = append(ns, p.arrived.Sub(p.created).Nanoseconds())
	}
	slices.Sort(ns)
	return percentileMS(ns, 0.50), percentileMS(ns, 0.99), percentileMS(ns, 1)
}

func webhookNote(notes int) string {
	return fmt.Sprintf("7a and 7b run on a store of their own with no worker, so that they measure the request path: "+
		"each create stores its event in the outbox in the same transaction, whatever the subscriptions; fan-out and delivery "+
		"are the worker's. 7b's %d subscriptions are deleted before the worker starts. Deliveries: a worker in this process "+
		"(default configuration) sends a backlog of %d notes to %d subscriptions on a loopback receiver that verifies every signature.",
		benchFanOut, notes, benchDeliverySubs)
}
