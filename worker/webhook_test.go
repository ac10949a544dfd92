package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
	"github.com/hustack/hustack/worker/redistest"
)

// newHookEnv returns an env whose Service may send webhooks to loopback
// and hands replays and pings to the env's webhook queue.
func newHookEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.svc = store.NewService(e.db, store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true}))
	e.svc.SetDispatcher(NewDispatcher(e.rdb, e.queues.Webhooks))
	return e
}

// hookServer starts a worker over svc on the env's queues (through rdb, or
// the env's client when nil) with short polls, a short retry schedule and
// the periodic tasks off unless cfg sets them; it is shut down at the end of
// the test.
func (e *env) hookServer(t *testing.T, svc *store.Service, rdb redis.UniversalClient, cfg Config, logger *slog.Logger) *Server {
	t.Helper()
	if rdb == nil {
		rdb = e.rdb
	}
	cfg.Queues = e.queues
	cfg.PollInterval = 50 * time.Millisecond
	if cfg.WebhookPollInterval == 0 {
		cfg.WebhookPollInterval = 20 * time.Millisecond
	}
	if cfg.RelayInterval == 0 {
		cfg.RelayInterval = 50 * time.Millisecond
	}
	if cfg.WebhookRetrySchedule == nil {
		cfg.WebhookRetrySchedule = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 2 * time.Second
	}
	for _, d := range []*time.Duration{&cfg.Retention, &cfg.TombstoneRetention, &cfg.DisableUnusedInterval,
		&cfg.WebhookSweepInterval, &cfg.DeliveryRetention, &cfg.KeyExpiryInterval} {
		if *d == 0 {
			*d = -1
		}
	}
	s := NewServer(rdb, svc, cfg, logger)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// hookScopes are the scopes of the admin key of webhook tests.
var hookScopes = []store.Scope{store.ReadScope("leads"), store.WriteScope("leads"), store.ReadScope("notes"),
	store.WriteScope("notes"), store.ScopeReadWebhooks, store.ScopeWriteWebhooks}

// admin returns the operations of a new key with hookScopes.
func (e *env) admin(t *testing.T) *store.Scoped {
	t.Helper()
	return e.svc.Scoped(e.principal(t, hookScopes...))
}

// subscribe creates a subscription to url and returns it with its secret.
func subscribe(t *testing.T, sc *store.Scoped, url string, events ...string) (*store.Webhook, string) {
	t.Helper()
	w, secret, err := sc.CreateWebhook(t.Context(), store.WebhookInput{URL: url, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return w, secret
}

// deliveries returns a subscription's deliveries, newest first.
func (e *env) deliveries(t *testing.T, webhookID string) []*store.Delivery {
	t.Helper()
	ds, err := e.db.FindDeliveries(context.Background(), e.ws.ID, webhookID, store.DeliveryQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// delivery waits for a subscription's only delivery to satisfy cond and
// returns it.
func (e *env) delivery(t *testing.T, webhookID, what string, cond func(*store.Delivery) bool) *store.Delivery {
	t.Helper()
	var d *store.Delivery
	waitFor(t, what, func() bool {
		ds := e.deliveries(t, webhookID)
		if len(ds) > 1 {
			t.Fatalf("%d deliveries, want one", len(ds))
		}
		if len(ds) == 1 && cond(ds[0]) {
			d = ds[0]
			return true
		}
		return false
	})
	return d
}

func finished(d *store.Delivery) bool { return d.Status != store.DeliveryPending }

// receiver is a webhook receiver on loopback that keeps what it receives.
type receiver struct {
	url    string
	answer func(n int, w http.ResponseWriter, r *http.Request) // n counts requests from 1; nil: 204

	mu  sync.Mutex
	got []receipt
}

type receipt struct {
	at     time.Time
	header http.Header
	body   []byte
}

// event decodes the body.
func (r receipt) event(t *testing.T) (ev struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	CreatedAt   string         `json:"created_at"`
	WorkspaceID string         `json:"workspace_id"`
	Data        map[string]any `json:"data"`
}) {
	t.Helper()
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatalf("delivery body %s: %v", r.body, err)
	}
	return ev
}

func (r receipt) timestamp(t *testing.T) int64 {
	t.Helper()
	ts, err := strconv.ParseInt(r.header.Get(HeaderWebhookTimestamp), 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q", r.header.Get(HeaderWebhookTimestamp))
	}
	return ts
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(srv.Close)
	rc.url = srv.URL + "/hooks/hustack"
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, receipt{at: time.Now(), header: r.Header.Clone(), body: body})
	n := len(rc.got)
	rc.mu.Unlock()
	if rc.answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rc.answer(n, w, r)
}

func (rc *receiver) receipts() []receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// ids returns the distinct webhook-ids received.
func (rc *receiver) ids() map[string]bool {
	out := map[string]bool{}
	for _, r := range rc.receipts() {
		out[r.header.Get(HeaderWebhookID)] = true
	}
	return out
}

// stays checks that the receiver gets no more than n requests for a while.
func (rc *receiver) stays(t *testing.T, n int, what string) {
	t.Helper()
	time.Sleep(400 * time.Millisecond)
	if got := rc.count(); got != n {
		t.Fatalf("%s: %d requests, want %d", what, got, n)
	}
}

// sleep waits for d or until the request is cancelled.
func sleep(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

func TestWebhookDelivered(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	w, secret := subscribe(t, admin, rc.url, "lead.*")
	e.hookServer(t, e.svc, nil, Config{}, nil)

	start := time.Now()
	rec, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Ada", "source": "Web"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery of lead.created", func() bool { return rc.count() == 1 })
	got := rc.receipts()[0]
	t.Logf("record create to receipt: %v", got.at.Sub(start))

	if err := Verify(secret, got.header, got.body, 0); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := Verify(store.GenerateWebhookSecret(), got.header, got.body, 0); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("signature checked with another secret: %v", err)
	}
	if ct, ua := got.header.Get("Content-Type"), got.header.Get("User-Agent"); ct != "application/json" || ua != "Hustack-Webhooks/1" {
		t.Fatalf("Content-Type %q, User-Agent %q", ct, ua)
	}
	if ts := got.timestamp(t); ts < start.Unix()-1 || ts > time.Now().Unix()+1 {
		t.Fatalf("webhook-timestamp %d is not now", ts)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(got.body, &keys); err != nil {
		t.Fatal(err)
	}
	if k := slices.Sorted(maps.Keys(keys)); !slices.Equal(k, []string{"created_at", "data", "id", "type", "workspace_id"}) {
		t.Fatalf("body keys %v", k)
	}
	ev := got.event(t)
	if ev.Type != "lead.created" || ev.WorkspaceID != e.ws.ID || ev.Data["id"] != rec.ID || ev.Data["name"] != "Ada" ||
		ev.ID != got.header.Get(HeaderWebhookID) {
		t.Fatalf("body %s, webhook-id %s; want lead.created of %s", got.body, got.header.Get(HeaderWebhookID), rec.ID)
	}
	if _, err := time.Parse(store.TimeFormat, ev.CreatedAt); err != nil {
		t.Fatalf("created_at %q: %v", ev.CreatedAt, err)
	}

	d := e.delivery(t, w.ID, "the delivery to be recorded", finished)
	if d.Status != store.DeliveryDelivered || d.Attempts != 1 || len(d.History) != 1 || d.History[0].StatusCode != 204 ||
		d.History[0].Error != "" || d.NextAttemptAt != nil || d.EventID != ev.ID {
		t.Fatalf("delivery %+v", d)
	}

	// Updates and deletions follow.
	if _, err := admin.UpdateRecord(ctx, store.Leads, rec.ID, map[string]any{"status": "Contacted"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRecord(ctx, store.Leads, rec.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lead.updated and lead.deleted", func() bool { return rc.count() == 3 })
	types := map[string]map[string]any{}
	for _, r := range rc.receipts() {
		if err := Verify(secret, r.header, r.body, 0); err != nil {
			t.Fatal(err)
		}
		ev := r.event(t)
		types[ev.Type] = ev.Data
	}
	if types["lead.updated"]["status"] != "Contacted" || types["lead.deleted"]["deleted"] != true || types["lead.deleted"]["id"] != rec.ID {
		t.Fatalf("events %v", types)
	}
}

func TestWebhookRetried(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	admin := e.admin(t)
	w, secret := subscribe(t, admin, rc.url, "*")
	e.hookServer(t, e.svc, nil, Config{WebhookRetrySchedule: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, time.Hour}}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Grace"}); err != nil {
		t.Fatal(err)
	}
	d := e.delivery(t, w.ID, "the delivery to succeed", finished)
	if d.Status != store.DeliveryDelivered || d.Attempts != 3 || len(d.History) != 3 {
		t.Fatalf("delivery %+v, want delivered at the third attempt", d)
	}
	for i, want := range []int{500, 500, 200} {
		a := d.History[i]
		if a.StatusCode != want {
			t.Fatalf("attempt %d: status %d, want %d", i+1, a.StatusCode, want)
		}
		if (want == 500) != (a.Error == "HTTP 500 Internal Server Error") {
			t.Fatalf("attempt %d: error %q", i+1, a.Error)
		}
		if i > 0 && a.At.Before(d.History[i-1].At) {
			t.Fatalf("attempts out of order: %+v", d.History)
		}
	}
	got := rc.receipts()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for _, r := range got {
		if err := Verify(secret, r.header, r.body, 0); err != nil || r.header.Get(HeaderWebhookID) != d.EventID {
			t.Fatalf("attempt signature %v, webhook-id %s", err, r.header.Get(HeaderWebhookID))
		}
	}
	hook, err := admin.FindWebhookByID(t.Context(), w.ID)
	if err != nil || hook.Status != store.WebhookActive || hook.FailingSince != nil {
		t.Fatalf("after a success the subscription is %+v (%v), want active", hook, err)
	}
	rc.stays(t, 3, "after the success")
}

func TestWebhookRetryAfter(t *testing.T) {
	e := newHookEnv(t)
	var asked atomic.Int64 // the Retry-After date of the 503, in unix seconds
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			until := time.Now().Add(2 * time.Second).Truncate(time.Second)
			asked.Store(until.Unix())
			w.Header().Set("Retry-After", until.UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	admin := e.admin(t)
	w, secret := subscribe(t, admin, rc.url, "lead.created")
	e.hookServer(t, e.svc, nil, Config{WebhookRetrySchedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, time.Hour}}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Hedy"}); err != nil {
		t.Fatal(err)
	}
	d := e.delivery(t, w.ID, "the delivery to succeed", finished)
	got := rc.receipts()
	if d.Status != store.DeliveryDelivered || len(got) != 3 {
		t.Fatalf("delivery %+v after %d requests", d, len(got))
	}
	if gap := got[1].at.Sub(got[0].at); gap < time.Second {
		t.Fatalf("Retry-After: 1 honoured after %v", gap)
	}
	if until := time.Unix(asked.Load(), 0); got[2].at.Before(until) {
		t.Fatalf("Retry-After %s honoured at %s", until, got[2].at)
	}
	// Each attempt is signed afresh, with its own timestamp.
	for i, r := range got {
		if err := Verify(secret, r.header, r.body, 0); err != nil {
			t.Fatal(err)
		}
		if i > 0 && r.timestamp(t) <= got[i-1].timestamp(t) {
			t.Fatalf("attempt %d has timestamp %d, attempt %d %d", i+1, r.timestamp(t), i, got[i-1].timestamp(t))
		}
	}
	if c := []int{d.History[0].StatusCode, d.History[1].StatusCode}; !slices.Equal(c, []int{429, 503}) {
		t.Fatalf("status codes %v", c)
	}
}

// TestWebhookAnswers checks which answers are retried: each receiver
// answers the same status to every attempt, and the schedule allows one
// retry.
func TestWebhookAnswers(t *testing.T) {
	e := newHookEnv(t)
	admin := e.admin(t)
	target := newReceiver(t, nil)
	tests := []struct {
		status   int
		attempts int
		error    string
	}{
		{400, 1, "HTTP 400 Bad Request: not retried"},
		{401, 1, "HTTP 401 Unauthorized: not retried"},
		{404, 1, "HTTP 404 Not Found: not retried"},
		{422, 1, "HTTP 422 Unprocessable Entity: not retried"},
		{408, 2, "HTTP 408 Request Timeout"},
		{409, 2, "HTTP 409 Conflict"},
		{425, 2, "HTTP 425 Too Early"},
		{429, 2, "HTTP 429 Too Many Requests"},
		{500, 2, "HTTP 500 Internal Server Error"},
		{503, 2, "HTTP 503 Service Unavailable"},
		{307, 2, "HTTP 307 Temporary Redirect: redirects are not followed (Location: " + target.url + ")"},
	}
	receivers := map[int]*receiver{}
	hooks := map[int]*store.Webhook{}
	for _, tc := range tests {
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			if tc.status == 307 {
				w.Header().Set("Location", target.url)
			}
			w.WriteHeader(tc.status)
		})
		receivers[tc.status] = rc
		hooks[tc.status], _ = subscribe(t, admin, rc.url, "lead.created")
	}
	e.hookServer(t, e.svc, nil, Config{WebhookRetrySchedule: []time.Duration{20 * time.Millisecond}}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Radia"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			d := e.delivery(t, hooks[tc.status].ID, "the delivery to finish", finished)
			if d.Status != store.DeliveryFailed || d.Attempts != tc.attempts || d.NextAttemptAt != nil {
				t.Fatalf("delivery %+v, want failed after %d attempts", d, tc.attempts)
			}
			for _, a := range d.History {
				if a.StatusCode != tc.status || a.Error != tc.error {
					t.Fatalf("attempt %+v, want status %d, error %q", a, tc.status, tc.error)
				}
			}
			if n := receivers[tc.status].count(); n != tc.attempts {
				t.Fatalf("%d requests, want %d", n, tc.attempts)
			}
		})
	}
	if n := target.count(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

func TestWebhookGone(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	e.hookServer(t, e.svc, nil, Config{}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Barbara"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscription to be removed", func() bool {
		_, err := admin.FindWebhookByID(t.Context(), w.ID)
		return store.ErrorCode(err) == store.ENOTFOUND
	})
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Frances"}); err != nil {
		t.Fatal(err)
	}
	rc.stays(t, 1, "after 410 Gone")
}

func TestWebhookTimeout(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		sleep(r, 3*time.Second)
		w.WriteHeader(http.StatusOK)
	})
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	e.hookServer(t, e.svc, nil, Config{WebhookTimeout: 200 * time.Millisecond, WebhookRetrySchedule: []time.Duration{time.Hour}}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Katherine"}); err != nil {
		t.Fatal(err)
	}
	d := e.delivery(t, w.ID, "the attempt to time out", func(d *store.Delivery) bool { return d.Attempts == 1 })
	a := d.History[0]
	if a.StatusCode != 0 || !strings.Contains(a.Error, "timed out") || a.LatencyMS < 190 || a.LatencyMS > 2000 {
		t.Fatalf("attempt %+v, want a timeout after 200 ms", a)
	}
	if d.Status != store.DeliveryPending || d.NextAttemptAt == nil ||
		d.NextAttemptAt.Sub(a.At) < 47*time.Minute || d.NextAttemptAt.Sub(a.At) > 73*time.Minute {
		t.Fatalf("delivery %+v, want the next attempt in an hour ±20%%", d)
	}
}

func TestWebhookDisabledAfterFailures(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	logs := &capture{}
	schedule := slices.Repeat([]time.Duration{100 * time.Millisecond}, 30)
	e.hookServer(t, e.svc, nil, Config{WebhookRetrySchedule: schedule, WebhookDisableAfter: 500 * time.Millisecond}, slog.New(logs))
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Margaret"}); err != nil {
		t.Fatal(err)
	}
	var hook *store.Webhook
	waitFor(t, "the subscription to be disabled", func() bool {
		var err error
		hook, err = admin.FindWebhookByID(t.Context(), w.ID)
		return err == nil && hook.Status == store.WebhookDisabled
	})
	if !strings.Contains(hook.DisabledReason, "failed since") || !strings.Contains(hook.DisabledReason, "HTTP 502 Bad Gateway") ||
		!strings.Contains(hook.DisabledReason, "500ms") {
		t.Fatalf("disabled_reason %q", hook.DisabledReason)
	}
	d := e.delivery(t, w.ID, "the delivery to be given up", finished)
	if d.Status != store.DeliveryFailed || d.Attempts < 2 || d.Attempts > 10 {
		t.Fatalf("delivery %+v, want failed once the subscription is disabled", d)
	}
	if n := logs.count(slog.LevelWarn, "webhook disabled"); n != 1 {
		t.Fatalf("%d warnings about the disabling, want 1: %v", n, logs.messages())
	}
	n := rc.count()
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Mary"}); err != nil {
		t.Fatal(err)
	}
	rc.stays(t, n, "a disabled subscription")

	// A test ping is sent whatever the subscription's state, and leaves it.
	ping, err := admin.TestWebhook(t.Context(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ping", func() bool { return rc.count() == n+1 })
	if ev := rc.receipts()[n].event(t); ev.Type != store.EventPing || ev.Data["webhook_id"] != w.ID || ev.ID != ping.EventID {
		t.Fatalf("ping %+v", ev)
	}
	waitFor(t, "the ping to be recorded", func() bool {
		d, _, err := e.svc.FindDelivery(t.Context(), e.ws.ID, ping.ID)
		return err == nil && d.Attempts >= 1
	})
	if after, err := admin.FindWebhookByID(t.Context(), w.ID); err != nil || after.DisabledReason != hook.DisabledReason ||
		after.Status != store.WebhookDisabled {
		t.Fatalf("after a ping: %+v %v", after, err)
	}
}

// TestWebhookRedisOutage makes record changes while the worker's Redis is
// cut off: every change reaches the receiver once Redis is back.
func TestWebhookRedisOutage(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	subscribe(t, admin, rc.url, "lead.*")
	proxy := redistest.NewProxy(t, e.opts.Addr)
	viaProxy := *e.opts
	viaProxy.Addr = proxy.Addr()
	prdb := redis.NewClient(&viaProxy)
	t.Cleanup(func() { prdb.Close() })
	logs := &capture{}
	e.hookServer(t, e.svc, prdb, Config{}, slog.New(logs))

	changes := 0
	var ids []string
	burst := func(n int) {
		t.Helper()
		for i := range n {
			rec, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": fmt.Sprint("lead ", changes)})
			if err != nil {
				t.Fatal(err)
			}
			changes++
			ids = append(ids, rec.ID)
			if i%3 == 0 {
				if _, err := admin.UpdateRecord(t.Context(), store.Leads, rec.ID, map[string]any{"status": "Contacted"}); err != nil {
					t.Fatal(err)
				}
				changes++
			}
		}
	}
	burst(30)
	proxy.Stop()
	burst(30)
	waitFor(t, "the relay to meet the outage", func() bool {
		return logs.count(slog.LevelWarn, "webhook relay cannot enqueue") > 0
	})
	burst(30)
	proxy.Start(t)
	burst(30)
	deadline := time.Now().Add(90 * time.Second)
	for len(rc.ids()) < changes {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d changes delivered", len(rc.ids()), changes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := rc.ids()
	if len(got) != changes {
		t.Fatalf("%d distinct events for %d changes", len(got), changes)
	}
	created := map[string]bool{}
	for _, r := range rc.receipts() {
		ev := r.event(t)
		if ev.ID != r.header.Get(HeaderWebhookID) {
			t.Fatalf("body id %s, webhook-id %s", ev.ID, r.header.Get(HeaderWebhookID))
		}
		if ev.Type == "lead.created" {
			created[ev.Data["id"].(string)] = true
		}
	}
	for _, id := range ids {
		if !created[id] {
			t.Fatalf("lead %s: no lead.created received", id)
		}
	}
	if n := logs.count(slog.LevelWarn, "webhook relay cannot enqueue"); n != 1 {
		t.Fatalf("the relay warned %d times about one outage", n)
	}
	t.Logf("%d changes, %d requests (%d duplicates)", changes, rc.count(), rc.count()-changes)
}

// fanOut claims the outbox's events and runs the fan-out handler on them,
// as the relay and a webhook worker would.
func fanOut(t *testing.T, e *env, h *WebhookHandlers) {
	t.Helper()
	evs, err := e.svc.ClaimEvents(t.Context(), 100)
	if err != nil || len(evs) == 0 {
		t.Fatalf("claim: %d events, %v", len(evs), err)
	}
	task, err := NewWebhookFanOutTask(evs)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleWebhookFanOutTask(t.Context(), task); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookSweep loses the queued tasks of a delivery (as a Redis
// without persistence does when it restarts): the sweep dispatches it
// again, once and only once, and replaces an archived task.
func TestWebhookSweep(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	cfg := Config{Queues: e.queues}
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Sophie"}); err != nil {
		t.Fatal(err)
	}
	fanOut(t, e, NewWebhookHandlers(e.rdb, e.svc, cfg, nil))
	ds := e.deliveries(t, w.ID)
	if len(ds) != 1 || ds[0].Status != store.DeliveryPending {
		t.Fatalf("deliveries %+v", ds)
	}
	taskID := DeliveryTaskID(ds[0].ID, 0)
	redistest.DeleteQueues(t, e.opts, e.queues.Webhooks)
	if evs, _ := e.svc.ClaimEvents(t.Context(), 100); len(evs) != 0 {
		t.Fatalf("%d events left in the outbox after the fan-out", len(evs))
	}

	// Two minutes on, the delivery is overdue.
	sweeper := NewWebhookHandlers(e.rdb, e.later(time.Now().Add(2*time.Minute)), cfg, nil)
	inspector := asynq.NewInspectorFromRedisClient(e.rdb)
	state := func() string {
		info, err := inspector.GetTaskInfo(e.queues.Webhooks, taskID)
		if err != nil {
			return err.Error()
		}
		return info.State.String()
	}
	sweep := func() {
		t.Helper()
		if err := sweeper.HandleWebhookSweepTask(t.Context(), NewWebhookSweepTask()); err != nil {
			t.Fatal(err)
		}
	}
	tasks := func() int {
		n, err := e.rdb.LLen(t.Context(), "asynq:{"+e.queues.Webhooks+"}:pending").Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	sweep()
	if s := state(); s != "pending" {
		t.Fatalf("after the sweep the delivery's task is %s", s)
	}
	sweep()
	if n := tasks(); n != 1 {
		t.Fatalf("%d tasks after two sweeps, want 1", n)
	}
	if err := inspector.ArchiveTask(e.queues.Webhooks, taskID); err != nil {
		t.Fatal(err)
	}
	sweep()
	if s, n := state(), tasks(); s != "pending" || n != 1 {
		t.Fatalf("an archived task swept: %s, %d pending", s, n)
	}

	e.hookServer(t, e.svc, nil, Config{}, nil)
	d := e.delivery(t, w.ID, "the swept delivery", finished)
	if d.Status != store.DeliveryDelivered || d.Attempts != 1 {
		t.Fatalf("delivery %+v", d)
	}
	rc.stays(t, 1, "a swept delivery")
}

// TestWebhookDuplicates runs a fan-out twice and a stale attempt: the
// receiver gets the event once.
func TestWebhookDuplicates(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	h := NewWebhookHandlers(e.rdb, e.svc, Config{Queues: e.queues}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Lise"}); err != nil {
		t.Fatal(err)
	}
	evs, err := e.svc.ClaimEvents(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	task, err := NewWebhookFanOutTask(evs)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h.HandleWebhookFanOutTask(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	e.hookServer(t, e.svc, nil, Config{}, nil)
	d := e.delivery(t, w.ID, "the delivery", finished)
	if d.Status != store.DeliveryDelivered {
		t.Fatalf("delivery %+v", d)
	}
	// The same fan-out once more, after the delivery: its task finds the
	// attempt made.
	if err := h.HandleWebhookFanOutTask(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	stale, err := NewWebhookDeliverTask(&store.Delivery{ID: d.ID, WorkspaceID: d.WorkspaceID, Attempts: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleWebhookDeliverTask(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	rc.stays(t, 1, "duplicated fan-outs and a stale attempt")
	bad := asynq.NewTask(TypeWebhookDeliver, []byte(`{"workspace_id":"x"}`))
	if err := h.HandleWebhookDeliverTask(t.Context(), bad); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("malformed delivery task: %v, want SkipRetry", err)
	}
	if err := h.HandleWebhookFanOutTask(t.Context(), asynq.NewTask(TypeWebhookFanOut, []byte(`{"events":[]}`))); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("empty fan-out: %v, want SkipRetry", err)
	}
}

// TestWebhookVendorFilter subscribes a vendor key and an unfiltered key:
// the vendor's receiver gets only the records its filter lets it see, and
// only of resources it may read.
func TestWebhookVendorFilter(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	admin := e.admin(t)
	_, raw, err := e.svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: e.ws.ID, Name: "vendor",
		Scopes: []store.Scope{store.ReadScope("leads"), store.WriteScope("leads"), store.ScopeWriteWebhooks, store.ScopeReadWebhooks},
		Filter: map[string]string{"source": "Vendor XYZ"}})
	if err != nil {
		t.Fatal(err)
	}
	vp, err := e.svc.Authenticate(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	vendor := e.svc.Scoped(vp)
	all, mine := newReceiver(t, nil), newReceiver(t, nil)
	subscribe(t, admin, all.url, "*")
	subscribe(t, vendor, mine.url, "*")
	e.hookServer(t, e.svc, nil, Config{}, nil)

	create := func(sc *store.Scoped, r *store.Resource, fields map[string]any) *store.Record {
		t.Helper()
		rec, err := sc.CreateRecord(ctx, r, fields)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	xyz := create(admin, store.Leads, map[string]any{"name": "Own", "source": "Vendor XYZ"})
	create(admin, store.Leads, map[string]any{"name": "Foreign", "source": "Vendor ABC"})
	web := create(admin, store.Leads, map[string]any{"name": "Web", "source": "Web"})
	create(admin, store.Notes, map[string]any{"content": "not for vendors"})
	byVendor := create(vendor, store.Leads, map[string]any{"name": "Vendor's own"})
	if _, err := admin.UpdateRecord(ctx, store.Leads, web.ID, map[string]any{"status": "Qualified"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRecord(ctx, store.Leads, xyz.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every change at the unfiltered receiver", func() bool { return all.count() == 7 })
	waitFor(t, "the vendor's records", func() bool { return mine.count() == 3 })
	mine.stays(t, 3, "the vendor's receiver")
	got := map[string]string{}
	for _, r := range mine.receipts() {
		ev := r.event(t)
		if ev.Data["source"] != "Vendor XYZ" {
			t.Fatalf("the vendor received %s of a record of source %v", ev.Type, ev.Data["source"])
		}
		got[ev.Type+" "+ev.Data["id"].(string)] = ev.Type
	}
	want := []string{"lead.created " + xyz.ID, "lead.created " + byVendor.ID, "lead.deleted " + xyz.ID}
	if k := slices.Sorted(maps.Keys(got)); !slices.Equal(k, slices.Sorted(slices.Values(want))) {
		t.Fatalf("the vendor received %v, want %v", k, want)
	}
}

// TestWebhookTargetPolicy sends with a worker that does not allow insecure
// targets to subscriptions stored when they were allowed: nothing leaves.
func TestWebhookTargetPolicy(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	hits := 0
	var mu sync.Mutex
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(tlsSrv.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(tlsSrv.URL, "https://"), ":")
	admin := e.admin(t)
	byName, _ := subscribe(t, admin, "https://localhost:"+port+"/hooks", "lead.*")
	byAddr, _ := subscribe(t, admin, tlsSrv.URL+"/hooks", "lead.*")
	plain := newReceiver(t, nil)
	overHTTP, _ := subscribe(t, admin, plain.url, "lead.*")

	strict := store.NewService(e.db)
	if _, _, err := strict.Scoped(e.principal(t, hookScopes...)).CreateWebhook(ctx,
		store.WebhookInput{URL: tlsSrv.URL, Events: []string{"*"}}); store.ErrorCode(err) != store.EBADREQUEST {
		t.Fatalf("subscribing a loopback URL without AllowInsecure: %v", err)
	}
	e.hookServer(t, strict, nil, Config{WebhookRetrySchedule: []time.Duration{time.Hour}}, nil)
	if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Alan"}); err != nil {
		t.Fatal(err)
	}
	// A refused address is final, not retried, and a failure of the
	// subscription.
	for _, w := range []*store.Webhook{byName, byAddr} {
		d := e.delivery(t, w.ID, "the refused attempt", func(d *store.Delivery) bool { return d.Attempts == 1 })
		a := d.History[0]
		if a.StatusCode != 0 || !strings.HasPrefix(a.Error, "refused: ") || !strings.Contains(a.Error, " is not a public address") {
			t.Fatalf("%s: attempt %+v, want refused", w.URL, a)
		}
		if addr := strings.Fields(a.Error)[1]; addr != "127.0.0.1" && addr != "::1" {
			t.Fatalf("%s: refused %q, want the loopback address", w.URL, addr)
		}
		if d.Status != store.DeliveryFailed || d.NextAttemptAt != nil {
			t.Fatalf("%s: delivery %+v, want failed without a retry", w.URL, d)
		}
		if hook, err := admin.FindWebhookByID(ctx, w.ID); err != nil || hook.Status != store.WebhookFailing || hook.FailingSince == nil {
			t.Fatalf("%s: subscription %+v (%v), want failing", w.URL, hook, err)
		}
	}
	d := e.delivery(t, overHTTP.ID, "the http delivery", finished)
	if d.Status != store.DeliveryFailed || !strings.Contains(d.History[0].Error, "must use https") {
		t.Fatalf("http delivery %+v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 || plain.count() != 0 {
		t.Fatalf("%d requests reached the loopback receivers", hits+plain.count())
	}
}

func TestWebhookShutdown(t *testing.T) {
	t.Run("finishes running deliveries", func(t *testing.T) {
		e := newHookEnv(t)
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			sleep(r, 400*time.Millisecond)
			w.WriteHeader(http.StatusOK)
		})
		admin := e.admin(t)
		w, _ := subscribe(t, admin, rc.url, "lead.*")
		srv := e.hookServer(t, e.svc, nil, Config{ShutdownTimeout: 5 * time.Second}, nil)
		if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Emmy"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the request", func() bool { return rc.count() == 1 })
		srv.Shutdown()
		ds := e.deliveries(t, w.ID)
		if len(ds) != 1 || ds[0].Status != store.DeliveryDelivered {
			t.Fatalf("after Shutdown: %+v", ds)
		}
	})
	t.Run("requeues deliveries past the timeout", func(t *testing.T) {
		e := newHookEnv(t)
		release := make(chan struct{})
		rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}
			w.WriteHeader(http.StatusOK)
		})
		admin := e.admin(t)
		w, secret := subscribe(t, admin, rc.url, "lead.*")
		srv := e.hookServer(t, e.svc, nil, Config{ShutdownTimeout: 300 * time.Millisecond}, nil)
		if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Ida"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the request", func() bool { return rc.count() == 1 })
		start := time.Now()
		srv.Shutdown()
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("Shutdown took %v with a 300 ms timeout", took)
		}
		close(release)
		time.Sleep(100 * time.Millisecond) // the cancelled handler returns
		ds := e.deliveries(t, w.ID)
		if len(ds) != 1 || ds[0].Status != store.DeliveryPending || ds[0].Attempts != 0 {
			t.Fatalf("after an interrupted attempt: %+v", ds)
		}
		e.hookServer(t, e.svc, nil, Config{}, nil)
		d := e.delivery(t, w.ID, "the delivery after a restart", finished)
		got := rc.receipts()
		if d.Status != store.DeliveryDelivered || d.Attempts != 1 || len(got) != 2 ||
			got[0].header.Get(HeaderWebhookID) != got[1].header.Get(HeaderWebhookID) {
			t.Fatalf("delivery %+v after %d requests", d, len(got))
		}
		if err := Verify(secret, got[1].header, got[1].body, 0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWebhookReplay(t *testing.T) {
	e := newHookEnv(t)
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	w, secret := subscribe(t, admin, rc.url, "lead.*")
	e.hookServer(t, e.svc, nil, Config{}, nil)
	if _, err := admin.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Rosalind"}); err != nil {
		t.Fatal(err)
	}
	first := e.delivery(t, w.ID, "the delivery", finished)
	replay, err := admin.ReplayDelivery(t.Context(), w.ID, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { return rc.count() == 2 })
	got := rc.receipts()
	if got[0].header.Get(HeaderWebhookID) != got[1].header.Get(HeaderWebhookID) || string(got[0].body) != string(got[1].body) {
		t.Fatalf("the replay differs: %s %s", got[0].body, got[1].body)
	}
	if err := Verify(secret, got[1].header, got[1].body, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay to be recorded", func() bool {
		d, _, err := e.svc.FindDelivery(t.Context(), e.ws.ID, replay.ID)
		return err == nil && d.Status == store.DeliveryDelivered && d.ReplayOf == first.ID
	})
}

func TestWebhookMaintenanceHandlers(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	e.hookServer(t, e.svc, nil, Config{}, nil)
	if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Chien-Shiung"}); err != nil {
		t.Fatal(err)
	}
	e.delivery(t, w.ID, "the delivery", finished)

	// Retention: 29 days on the delivery stays, 31 days on it goes.
	task, err := NewWebhookRetentionTask(DefaultDeliveryRetention)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		days int
		left int
	}{{29, 1}, {31, 0}} {
		h := NewWebhookHandlers(e.rdb, e.later(time.Now().Add(time.Duration(tc.days)*24*time.Hour)), Config{Queues: e.queues}, nil)
		if err := h.HandleWebhookRetentionTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		if n := len(e.deliveries(t, w.ID)); n != tc.left {
			t.Fatalf("%d days on: %d deliveries, want %d", tc.days, n, tc.left)
		}
	}
	if _, err := NewWebhookRetentionTask(0); err == nil {
		t.Fatal("NewWebhookRetentionTask(0) succeeded")
	}

	// A key expiring within the window is announced once.
	keys := newReceiver(t, nil)
	subscribe(t, e.svc.Scoped(e.principal(t, store.ScopeAdminKeys, store.ScopeWriteWebhooks)), keys.url, "api_key.expiring")
	soon := time.Now().Add(24 * time.Hour)
	k, _, err := e.svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: e.ws.ID, Name: "short-lived",
		Scopes: []store.Scope{store.ScopeUsage}, ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	h := NewWebhookHandlers(e.rdb, e.svc, Config{Queues: e.queues}, nil)
	announced := func() int {
		t.Helper()
		n, err := e.svc.AnnounceExpiringKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := h.HandleAnnounceExpiringKeysTask(ctx, NewAnnounceExpiringKeysTask()); err != nil {
		t.Fatal(err)
	}
	if n := announced(); n != 0 {
		t.Fatalf("the key %s was announced again (%d)", k.ID, n)
	}
	waitFor(t, "api_key.expiring", func() bool { return keys.count() == 1 })
	if ev := keys.receipts()[0].event(t); ev.Type != "api_key.expiring" || ev.Data["id"] != k.ID {
		t.Fatalf("announced %s of %v, want api_key.expiring of %s", ev.Type, ev.Data["id"], k.ID)
	}
	keys.stays(t, 1, "an announced key")
}

// benchHooks is the world of a webhook benchmark: a store with one
// subscription to a loopback receiver that signals each request on got, and
// a worker (not started) with the default polls.
func benchHooks(b *testing.B) (admin *store.Scoped, srv *Server, got chan struct{}) {
	ctx := b.Context()
	opts := redistest.Options(b)
	rdb := redistest.Client(b)
	name := redistest.Name(b)
	queues := Queues{Usage: name + "-usage", Maintenance: name + "-maintenance", Webhooks: name + "-webhooks",
		WebhookFanOut: name + "-webhooks-fanout"}
	b.Cleanup(func() {
		redistest.DeleteQueues(b, opts, queues.Usage, queues.Maintenance, queues.Webhooks, queues.WebhookFanOut)
	})
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "hustack.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	svc := store.NewService(db, store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true}))
	ws, err := svc.CreateWorkspace(ctx, "Acme")
	if err != nil {
		b.Fatal(err)
	}
	_, raw, err := svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: ws.ID, Name: "bench", Scopes: hookScopes})
	if err != nil {
		b.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, raw)
	if err != nil {
		b.Fatal(err)
	}
	admin = svc.Scoped(p)
	got = make(chan struct{}, 100_000)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		got <- struct{}{}
	}))
	b.Cleanup(recv.Close)
	if _, _, err := admin.CreateWebhook(ctx, store.WebhookInput{URL: recv.URL, Events: []string{"lead.created"}}); err != nil {
		b.Fatal(err)
	}
	srv = NewServer(rdb, svc, Config{Queues: queues, Retention: -1, TombstoneRetention: -1, DisableUnusedInterval: -1,
		WebhookSweepInterval: -1, DeliveryRetention: -1, KeyExpiryInterval: -1}, nil)
	b.Cleanup(srv.Shutdown)
	return admin, srv, got
}

// BenchmarkWebhookLatency measures the time from a record create to its
// receipt by a loopback receiver, through the relay, the fan-out and the
// delivery, with the default polls.
func BenchmarkWebhookLatency(b *testing.B) {
	admin, srv, got := benchHooks(b)
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := admin.CreateRecord(b.Context(), store.Leads, map[string]any{"name": fmt.Sprint("lead ", i)}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatal("no delivery within 10 s")
		}
		took := time.Since(start)
		total, worst = total+took, max(worst, took)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/delivery")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst")
}

// BenchmarkWebhookThroughput measures deliveries per second to a loopback
// receiver: b.N events are waiting in the outbox when the worker starts.
func BenchmarkWebhookThroughput(b *testing.B) {
	admin, srv, got := benchHooks(b)
	for i := range b.N {
		if _, err := admin.CreateRecord(b.Context(), store.Leads, map[string]any{"name": fmt.Sprint("lead ", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			b.Fatal("deliveries stalled for 30 s")
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
