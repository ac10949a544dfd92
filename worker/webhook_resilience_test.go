package worker

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
)

// TestWebhookSubscriptionChangedBeforeSend changes a subscription between
// the fan-out and the attempt: a subscription that no longer asks for the
// event's type gets nothing, not even at its new URL.
func TestWebhookSubscriptionChangedBeforeSend(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	admin := e.admin(t)
	before, after, kept := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	moved, _ := subscribe(t, admin, before.url, "lead.*")
	narrowed, _ := subscribe(t, admin, kept.url, "lead.*")
	same, _ := subscribe(t, admin, kept.url, "*")
	if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Annie"}); err != nil {
		t.Fatal(err)
	}
	fanOut(t, e, NewWebhookHandlers(e.rdb, e.svc, Config{Queues: e.queues}, nil))
	for _, w := range []*store.Webhook{moved, narrowed, same} {
		if ds := e.deliveries(t, w.ID); len(ds) != 1 || ds[0].Status != store.DeliveryPending {
			t.Fatalf("%s: deliveries %+v, want one pending", w.ID, ds)
		}
	}
	// Re-pointed to another receiver, for notes only; and narrowed to updates.
	if _, err := admin.UpdateWebhook(ctx, moved.ID, store.WebhookPatch{URL: &after.url, Events: []string{"note.*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateWebhook(ctx, narrowed.ID, store.WebhookPatch{Events: []string{"lead.updated"}}); err != nil {
		t.Fatal(err)
	}
	logs := &capture{}
	e.hookServer(t, e.svc, nil, Config{}, slog.New(logs))

	for _, w := range []*store.Webhook{moved, narrowed} {
		d := e.delivery(t, w.ID, "the changed subscription's delivery", finished)
		if d.Status != store.DeliveryCancelled || d.Attempts != 0 || d.NextAttemptAt != nil {
			t.Fatalf("%s: delivery %+v, want cancelled without an attempt", w.ID, d)
		}
	}
	if d := e.delivery(t, same.ID, "the unchanged subscription's delivery", finished); d.Status != store.DeliveryDelivered {
		t.Fatalf("unchanged subscription: delivery %+v", d)
	}
	cancelled := logs.records(slog.LevelInfo, "webhook delivery cancelled")
	if len(cancelled) != 2 {
		t.Fatalf("%d cancellations logged, want 2: %v", len(cancelled), logs.messages())
	}
	for _, r := range cancelled {
		if !strings.Contains(r.str("reason"), "no longer receives lead.created") || r.str("event_type") != "lead.created" {
			t.Fatalf("cancellation logged with %v", r.attrs)
		}
	}
	if before.count() != 0 || after.count() != 0 {
		t.Fatalf("the re-pointed subscription sent %d requests to its old URL and %d to its new one", before.count(), after.count())
	}
	if kept.count() != 1 {
		t.Fatalf("%d requests at the unchanged subscription's receiver, want 1", kept.count())
	}

	// What the subscriptions ask for now still reaches them.
	if _, err := admin.CreateRecord(ctx, store.Notes, map[string]any{"content": "after the move"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "note.created at the new URL", func() bool { return after.count() == 1 })
	if ev := after.receipts()[0].event(t); ev.Type != "note.created" {
		t.Fatalf("the new URL received %s", ev.Type)
	}
	before.stays(t, 0, "the old URL")
}

// slowReceiver holds every request until released (or 10 s), and keeps the
// most requests it held at once.
type slowReceiver struct {
	*receiver
	release chan struct{}

	mu             sync.Mutex
	inFlight, most int
	releaseOnce    sync.Once
}

func newSlowReceiver(t *testing.T) *slowReceiver {
	s := &slowReceiver{release: make(chan struct{})}
	s.receiver = newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.inFlight++
		s.most = max(s.most, s.inFlight)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		}()
		select {
		case <-s.release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// Registered after newReceiver's cleanup, so it runs first: the server
	// does not wait for held requests when it closes.
	t.Cleanup(s.open)
	return s
}

func (s *slowReceiver) open() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *slowReceiver) held() (now, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight, s.most
}

// TestWebhookSlowReceiver checks that a receiver that does not answer
// holds back neither the fan-out of new events nor other subscriptions.
func TestWebhookSlowReceiver(t *testing.T) {
	t.Run("fan-outs have workers of their own", func(t *testing.T) {
		e := newHookEnv(t)
		ctx := t.Context()
		admin := e.admin(t)
		slow, fast := newSlowReceiver(t), newReceiver(t, nil)
		subscribe(t, admin, slow.url, "lead.*")
		notes, _ := subscribe(t, admin, fast.url, "note.*")
		// Every delivery worker may serve the slow receiver.
		e.hookServer(t, e.svc, nil, Config{WebhookConcurrency: 2, WebhookPerSubscription: -1}, nil)
		for i := range 6 {
			if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": fmt.Sprint("slow ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "both delivery workers to be held", func() bool { now, _ := slow.held(); return now == 2 })
		for i := range 3 {
			if _, err := admin.CreateRecord(ctx, store.Notes, map[string]any{"content": fmt.Sprint("note ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the notes to be fanned out while every delivery worker is held", func() bool {
			return len(e.deliveries(t, notes.ID)) == 3
		})
		slow.open()
		waitFor(t, "the notes to be delivered", func() bool { return fast.count() == 3 })
	})

	t.Run("a subscription has a few deliveries in flight at most", func(t *testing.T) {
		e := newHookEnv(t)
		ctx := t.Context()
		admin := e.admin(t)
		slow, fast := newSlowReceiver(t), newReceiver(t, nil)
		slowHook, _ := subscribe(t, admin, slow.url, "lead.*")
		fastHook, _ := subscribe(t, admin, fast.url, "note.*")
		e.hookServer(t, e.svc, nil, Config{WebhookConcurrency: 3, WebhookPerSubscription: 2}, nil)
		const leads = 8
		for i := range leads {
			if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": fmt.Sprint("slow ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "deliveries held by the slow receiver", func() bool { now, _ := slow.held(); return now >= 2 })
		for i := range 3 {
			if _, err := admin.CreateRecord(ctx, store.Notes, map[string]any{"content": fmt.Sprint("note ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the other subscription's deliveries while the slow receiver holds its two", func() bool {
			return fast.count() == 3
		})
		// The deliveries waiting their turn are put back without counting
		// a retry.
		inspector := asynq.NewInspectorFromRedisClient(e.rdb)
		var waiting *asynq.TaskInfo
		waitFor(t, "a delivery put back to wait its turn", func() bool {
			tasks, err := inspector.ListRetryTasks(e.queues.Webhooks)
			if err != nil || len(tasks) == 0 {
				return false
			}
			waiting = tasks[0]
			return true
		})
		if waiting.Retried != 0 || !strings.Contains(waiting.LastErr, "in flight") {
			t.Fatalf("a waiting delivery: retried %d, last error %q", waiting.Retried, waiting.LastErr)
		}
		if _, most := slow.held(); most != 2 {
			t.Fatalf("the slow receiver held %d requests at once, want 2", most)
		}
		slow.open()
		waitFor(t, "every delivery to the slow receiver", func() bool {
			ds := e.deliveries(t, slowHook.ID)
			return len(ds) == leads && !slices.ContainsFunc(ds, func(d *store.Delivery) bool { return !finished(d) })
		})
		for _, d := range e.deliveries(t, slowHook.ID) {
			if d.Status != store.DeliveryDelivered || d.Attempts != 1 {
				t.Fatalf("slow delivery %+v, want delivered at the first attempt", d)
			}
		}
		if n := slow.count(); n != leads {
			t.Fatalf("%d requests at the slow receiver for %d deliveries", n, leads)
		}
		if _, most := slow.held(); most > 2 {
			t.Fatalf("the slow receiver held %d requests at once, want at most 2", most)
		}
		for _, d := range e.deliveries(t, fastHook.ID) {
			if d.Status != store.DeliveryDelivered {
				t.Fatalf("fast delivery %+v", d)
			}
		}
	})
}

// TestWebhookFanOutTaskID hands the same events on twice, as a relay does
// when it claims them again while their fan-out is queued: one task is
// queued. A fan-out archived after its retries does not block them.
func TestWebhookFanOutTaskID(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	admin := e.admin(t)
	subscribe(t, admin, newReceiver(t, nil).url, "lead.*")
	for i := range 3 {
		if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": fmt.Sprint("lead ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := e.svc.ClaimEvents(ctx, 100) // the leads, and the creation of the admin key
	if err != nil || len(evs) < 3 {
		t.Fatalf("claimed %d events: %v", len(evs), err)
	}
	reversed := slices.Clone(evs)
	slices.Reverse(reversed)
	id := FanOutTaskID(evs)
	if FanOutTaskID(reversed) != id || FanOutTaskID(evs[:2]) == id || !strings.HasPrefix(id, "fanout:") {
		t.Fatalf("task ids %s, %s (reversed), %s (two events)", id, FanOutTaskID(reversed), FanOutTaskID(evs[:2]))
	}
	r := &relay{svc: e.svc, unique: newUniqueEnqueuer(e.rdb), queue: e.queues.WebhookFanOut, log: slog.New(slog.DiscardHandler)}
	pending := func() int64 {
		t.Helper()
		n, err := e.rdb.LLen(ctx, "asynq:{"+e.queues.WebhookFanOut+"}:pending").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	inspector := asynq.NewInspectorFromRedisClient(e.rdb)
	state := func() string {
		info, err := inspector.GetTaskInfo(e.queues.WebhookFanOut, id)
		if err != nil {
			return err.Error()
		}
		return info.State.String()
	}
	for _, batch := range [][]store.Event{evs, reversed, evs} {
		if _, err := r.hand(batch); err != nil {
			t.Fatal(err)
		}
	}
	if n, s := pending(), state(); n != 1 || s != "pending" {
		t.Fatalf("after three hand-overs of the same events: %d pending tasks, the fan-out %s", n, s)
	}
	if err := inspector.ArchiveTask(e.queues.WebhookFanOut, id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.hand(evs); err != nil {
		t.Fatal(err)
	}
	if n, s := pending(), state(); n != 1 || s != "pending" {
		t.Fatalf("after an archived fan-out: %d pending tasks, the fan-out %s", n, s)
	}
}

// TestWebhookSweepDisablesFailing lets a delivery fail for good before the
// subscription has failed for WebhookDisableAfter: the sweep disables it
// once it has.
func TestWebhookSweepDisablesFailing(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	rejecting := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	admin := e.admin(t)
	w, _ := subscribe(t, admin, rc.url, "lead.*")
	healthy, _ := subscribe(t, admin, newReceiver(t, nil).url, "lead.*")
	// quiet fails once (a final 400), then nothing more is sent to it: one
	// failure followed by silence is no continuous failure.
	quiet, _ := subscribe(t, admin, rejecting.url, "lead.*")
	e.hookServer(t, e.svc, nil, Config{WebhookRetrySchedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}}, nil)
	if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Evelyn"}); err != nil {
		t.Fatal(err)
	}
	if d := e.delivery(t, w.ID, "the delivery to fail", finished); d.Status != store.DeliveryFailed || d.Attempts != 3 {
		t.Fatalf("delivery %+v, want failed after three attempts", d)
	}
	e.delivery(t, healthy.ID, "the healthy delivery", finished)
	if d := e.delivery(t, quiet.ID, "the rejected delivery", finished); d.Status != store.DeliveryFailed || d.Attempts != 1 {
		t.Fatalf("rejected delivery %+v, want failed after one attempt", d)
	}
	hook, err := admin.FindWebhookByID(ctx, w.ID)
	if err != nil || hook.Status != store.WebhookFailing || hook.FailingSince == nil {
		t.Fatalf("after the failed delivery: %+v %v", hook, err)
	}

	// The attempts span at least 32 ms (two waits of 20 ms, -20% jitter):
	// more than four fifths of a 30 ms window.
	const window = 30 * time.Millisecond
	sweep := func(at time.Time, logs *capture) {
		t.Helper()
		h := NewWebhookHandlers(e.rdb, e.later(at), Config{Queues: e.queues, WebhookDisableAfter: window}, slog.New(logs))
		if err := h.HandleWebhookSweepTask(ctx, NewWebhookSweepTask()); err != nil {
			t.Fatal(err)
		}
	}
	early := &capture{}
	sweep(hook.FailingSince.Add(window-10*time.Millisecond), early)
	if hook, err := admin.FindWebhookByID(ctx, w.ID); err != nil || hook.Status != store.WebhookFailing {
		t.Fatalf("before the window's end: %+v %v", hook, err)
	}
	logs := &capture{}
	sweep(hook.FailingSince.Add(61*time.Minute), logs)
	hook, err = admin.FindWebhookByID(ctx, w.ID)
	if err != nil || hook.Status != store.WebhookDisabled || hook.DisabledReason == "" || hook.DisabledReason == store.DisabledByClient {
		t.Fatalf("61 minutes into the failure: %+v %v", hook, err)
	}
	warned := logs.records(slog.LevelWarn, "webhooks disabled")
	if len(warned) != 1 || warned[0].int("disabled") != 1 || early.count(slog.LevelWarn, "webhooks disabled") != 0 {
		t.Fatalf("warnings: %v (before: %v)", logs.messages(), early.messages())
	}
	if h, err := admin.FindWebhookByID(ctx, healthy.ID); err != nil || h.Status != store.WebhookActive {
		t.Fatalf("the healthy subscription: %+v %v", h, err)
	}
	if h, err := admin.FindWebhookByID(ctx, quiet.ID); err != nil || h.Status != store.WebhookFailing {
		t.Fatalf("a subscription that failed once and then got nothing: %+v %v", h, err)
	}
	again := &capture{}
	sweep(hook.FailingSince.Add(2*time.Hour), again)
	if n := again.count(slog.LevelWarn, "webhooks disabled"); n != 0 {
		t.Fatalf("a second sweep warned %d times", n)
	}
}

// TestWebhookBadEvents puts events the worker can never send in the
// outbox, between good ones: the good ones are delivered, and each bad one
// is logged once and removed.
func TestWebhookBadEvents(t *testing.T) {
	e := newHookEnv(t)
	ctx := t.Context()
	rc := newReceiver(t, nil)
	admin := e.admin(t)
	subscribe(t, admin, rc.url, "lead.*")
	first, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Before"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+e.db.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bad := map[string]string{} // id -> data
	for _, data := range []string{`{"id": "cut short`, `"not an object"`, `[1, 2, 3]`} {
		id := store.NewID()
		bad[id] = data
		if _, err := raw.ExecContext(ctx, `INSERT INTO outbox (id, workspace_id, type, created_at, data) VALUES (?, ?, ?, ?, ?)`,
			id, e.ws.ID, "lead.created", time.Now().UnixMilli(), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	last, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "After"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &capture{}
	e.hookServer(t, e.svc, nil, Config{}, slog.New(logs))

	waitFor(t, "the good events", func() bool { return rc.count() == 2 })
	got := map[string]bool{}
	for _, r := range rc.receipts() {
		got[r.event(t).Data["id"].(string)] = true
	}
	if !got[first.ID] || !got[last.ID] {
		t.Fatalf("received the leads %v, want %s and %s", got, first.ID, last.ID)
	}
	waitFor(t, "every bad event to be logged", func() bool { return logs.count(slog.LevelError, "webhook event dropped") == len(bad) })
	rc.stays(t, 2, "after the bad events")
	dropped := logs.records(slog.LevelError, "webhook event dropped")
	if len(dropped) != len(bad) {
		t.Fatalf("%d bad events logged, want %d, once each: %v", len(dropped), len(bad), logs.messages())
	}
	for _, r := range dropped {
		if _, ok := bad[r.str("event_id")]; !ok {
			t.Fatalf("logged %v, not one of the bad events", r.attrs)
		}
		delete(bad, r.str("event_id"))
	}
	// Nothing is left in the outbox, even for a relay an hour later.
	if evs, err := e.later(time.Now().Add(time.Hour)).ClaimEvents(ctx, 100); err != nil || len(evs) != 0 {
		t.Fatalf("left in the outbox: %d events (%v)", len(evs), err)
	}
	if n := logs.count(slog.LevelWarn, "task failed"); n != 0 {
		t.Fatalf("%d fan-out failures logged: %v", n, logs.messages())
	}
}
