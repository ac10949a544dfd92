package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// hookURL is where the suite's subscriptions point: a loopback address,
// which only a Service with TargetPolicy.AllowInsecure accepts.
const hookURL = "http://127.0.0.1:9/hooks/hustack"

// insecure lets a Service subscribe loopback URLs.
var insecure = store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true})

// forever is a staleBefore that makes every claimed event claimable again.
var forever = t0.AddDate(100, 0, 0)

// newWebhook builds a subscription of workspace ws as the service would,
// without storing it.
func newWebhook(ws string, created time.Time) *store.Webhook {
	return &store.Webhook{
		ID:          store.NewID(),
		WorkspaceID: ws,
		URL:         hookURL + "?id=" + store.NewID()[:8],
		Events:      []string{"deal.created", "lead.*"},
		Description: "CRM sync: Zoë 株式会社 '; DROP TABLE webhooks; -- {\"$gt\":\"\"}",
		Enabled:     true,
		Scopes:      scopes("read:deals", "read:leads"),
		Filter:      map[string]string{"source": vendorSource},
		APIKeyID:    store.NewID(),
		Secret:      store.GenerateWebhookSecret(),
		CreatedAt:   created,
		UpdatedAt:   created,
	}
}

func createWebhook(t *testing.T, b store.Backend, ws string, created time.Time) *store.Webhook {
	t.Helper()
	w := newWebhook(ws, created)
	must(t, b.CreateWebhook(t.Context(), w), "CreateWebhook")
	return w
}

// wantWebhook compares every stored field of a subscription (not the
// derived status). Nil and empty lists and filters are the same.
func wantWebhook(t *testing.T, got, want *store.Webhook) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil webhook, want %s", want.ID)
	}
	if got.ID != want.ID || got.WorkspaceID != want.WorkspaceID || got.APIKeyID != want.APIKeyID {
		t.Errorf("webhook = {id %q ws %q key %q}, want {id %q ws %q key %q}",
			got.ID, got.WorkspaceID, got.APIKeyID, want.ID, want.WorkspaceID, want.APIKeyID)
	}
	if got.URL != want.URL || got.Description != want.Description {
		t.Errorf("webhook %s: url %q description %q, want %q and %q", want.ID, got.URL, got.Description, want.URL, want.Description)
	}
	if got.Enabled != want.Enabled || got.DisabledReason != want.DisabledReason {
		t.Errorf("webhook %s: enabled %v (%q), want %v (%q)", want.ID, got.Enabled, got.DisabledReason, want.Enabled, want.DisabledReason)
	}
	if got.Secret != want.Secret {
		t.Errorf("webhook %s: the secret is not the one stored", want.ID)
	}
	if !slices.Equal(got.Events, want.Events) {
		t.Errorf("webhook %s: events %q, want %q", want.ID, got.Events, want.Events)
	}
	if !slices.Equal(got.Scopes, want.Scopes) {
		t.Errorf("webhook %s: scopes %q, want %q", want.ID, got.Scopes, want.Scopes)
	}
	if !maps.Equal(got.Filter, want.Filter) {
		t.Errorf("webhook %s: filter %v, want %v", want.ID, got.Filter, want.Filter)
	}
	wantTimePtr(t, "failing_since", got.FailingSince, want.FailingSince)
	wantTimePtr(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
	wantTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	wantTime(t, "updated_at", got.UpdatedAt, want.UpdatedAt)
}

func webhookIDs(ws []*store.Webhook) []string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	return ids
}

// newDelivery builds a pending delivery to w of a new deal.created event.
func newDelivery(w *store.Webhook, created time.Time) *store.Delivery {
	ev := store.Event{ID: store.NewID(), Type: "deal.created", CreatedAt: created, WorkspaceID: w.WorkspaceID,
		Data: json.RawMessage(`{"id":"` + store.NewID() + `","name":"Big deal","value":1234.5}`)}
	payload, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	next := created
	return &store.Delivery{ID: store.NewID(), WorkspaceID: w.WorkspaceID, WebhookID: w.ID, EventID: ev.ID, EventType: ev.Type,
		Payload: payload, Status: store.DeliveryPending, History: []store.Attempt{}, NextAttemptAt: &next,
		CreatedAt: created, UpdatedAt: created}
}

func insertDeliveries(t *testing.T, b store.Backend, ds ...*store.Delivery) {
	t.Helper()
	must(t, b.InsertDeliveries(t.Context(), ds), "InsertDeliveries")
}

// wantDelivery compares every stored field of a delivery.
func wantDelivery(t *testing.T, got, want *store.Delivery) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil delivery, want %s", want.ID)
	}
	if got.ID != want.ID || got.WorkspaceID != want.WorkspaceID || got.WebhookID != want.WebhookID ||
		got.EventID != want.EventID || got.EventType != want.EventType || got.ReplayOf != want.ReplayOf {
		t.Errorf("delivery = {id %q ws %q webhook %q event %q %q replay_of %q}, want {id %q ws %q webhook %q event %q %q replay_of %q}",
			got.ID, got.WorkspaceID, got.WebhookID, got.EventID, got.EventType, got.ReplayOf,
			want.ID, want.WorkspaceID, want.WebhookID, want.EventID, want.EventType, want.ReplayOf)
	}
	if got.Status != want.Status || got.Attempts != want.Attempts {
		t.Errorf("delivery %s: status %q after %d attempts, want %q after %d", want.ID, got.Status, got.Attempts, want.Status, want.Attempts)
	}
	wantJSON(t, "delivery "+want.ID+" payload", got.Payload, want.Payload)
	if len(got.History) != len(want.History) {
		t.Errorf("delivery %s: %d attempts in history, want %d", want.ID, len(got.History), len(want.History))
	} else {
		for i, a := range got.History {
			w := want.History[i]
			wantTime(t, fmt.Sprintf("delivery %s attempt %d at", want.ID, i), a.At, w.At)
			if a.StatusCode != w.StatusCode || a.LatencyMS != w.LatencyMS || a.Error != w.Error {
				t.Errorf("delivery %s attempt %d = %+v, want %+v", want.ID, i, a, w)
			}
		}
	}
	wantTimePtr(t, "next_attempt_at", got.NextAttemptAt, want.NextAttemptAt)
	wantTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	wantTime(t, "updated_at", got.UpdatedAt, want.UpdatedAt)
}

func deliveryIDs(ds []*store.Delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// wantJSON fails the test unless got and want are the same JSON value.
func wantJSON(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: not JSON (%v): %s", what, err, got)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: the expected value is not JSON (%v): %s", what, err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n\tgot  %s\n\twant %s", what, got, want)
	}
}

// drainEvents removes every stored event, claimed or not, and returns them
// in the order the claims returned them.
func drainEvents(t *testing.T, b store.Backend) []store.Event {
	t.Helper()
	var out []store.Event
	for range 100 {
		evs, err := b.ClaimEvents(t.Context(), t0, forever, 1000)
		must(t, err, "ClaimEvents")
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		must(t, b.DeleteEvents(t.Context(), eventIDsOf(evs)), "DeleteEvents")
	}
	t.Fatal("the outbox does not empty")
	return nil
}

func eventIDsOf(evs []store.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func eventTypes(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// oneEvent drains the outbox and fails the test unless it held exactly
// one event, which it returns.
func oneEvent(t *testing.T, b store.Backend, what string) store.Event {
	t.Helper()
	evs := drainEvents(t, b)
	if len(evs) != 1 {
		t.Fatalf("%s stored %d events %q, want exactly one", what, len(evs), eventTypes(evs))
	}
	return evs[0]
}

// noEvent drains the outbox and fails the test if it held any event.
func noEvent(t *testing.T, b store.Backend, what string) {
	t.Helper()
	if evs := drainEvents(t, b); len(evs) != 0 {
		t.Errorf("%s stored %d events %q, want none", what, len(evs), eventTypes(evs))
	}
}

// wantEvent compares an event with the one expected (whose id is random):
// type, workspace, time and data.
func wantEvent(t *testing.T, got, want store.Event) {
	t.Helper()
	if !store.ValidID(got.ID) {
		t.Errorf("event id %q is not an id", got.ID)
	}
	if got.Type != want.Type || got.WorkspaceID != want.WorkspaceID {
		t.Errorf("event = {type %q ws %q}, want {type %q ws %q}", got.Type, got.WorkspaceID, want.Type, want.WorkspaceID)
	}
	wantTime(t, got.Type+" created_at", got.CreatedAt, want.CreatedAt)
	wantJSON(t, got.Type+" data", got.Data, want.Data)
}

func recordEvent(t *testing.T, rec *store.Record, kind string) store.Event {
	t.Helper()
	ev, err := store.NewRecordEvent(rec, kind)
	must(t, err, "NewRecordEvent")
	return ev
}

func keyEvent(t *testing.T, b store.Backend, ws, id, kind string, at time.Time) store.Event {
	t.Helper()
	k, err := b.FindAPIKeyByID(t.Context(), ws, id)
	must(t, err, "FindAPIKeyByID")
	ev, err := store.NewKeyEvent(k, kind, at)
	must(t, err, "NewKeyEvent")
	return ev
}

// hookEnv is a service that accepts loopback subscriptions, with a key of
// every scope in each workspace.
type hookEnv struct {
	*env
	admin, adminB issued
	sc, scB       *store.Scoped
}

func newHookEnv(t *testing.T, b store.Backend) *hookEnv {
	t.Helper()
	e := &hookEnv{env: newEnv(t, b, insecure)}
	e.admin = e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "admin", Scopes: store.AllScopes()})
	e.adminB = e.issue(t, store.KeyInput{WorkspaceID: e.wb.ID, Name: "admin B", Scopes: store.AllScopes()})
	e.sc, e.scB = e.svc.Scoped(e.admin.p), e.svc.Scoped(e.adminB.p)
	e.clock.Add(time.Second)
	return e
}

// subscribe creates a subscription through sc and checks its secret.
func (e *hookEnv) subscribe(t *testing.T, sc *store.Scoped, events ...string) *store.Webhook {
	t.Helper()
	w, secret, err := sc.CreateWebhook(t.Context(), store.WebhookInput{URL: hookURL, Events: events})
	must(t, err, "CreateWebhook")
	if key, err := store.WebhookSecretKey(secret); !strings.HasPrefix(secret, store.SecretPrefix) || err != nil || len(key) != 32 {
		t.Errorf("CreateWebhook returned the secret %q, want whsec_ and base64 of 32 bytes", secret)
	}
	e.clock.Add(time.Second)
	return w
}

// collector is a Dispatcher that remembers what it was given and then
// fails, as when Redis is away.
type collector struct {
	mu sync.Mutex
	ds []*store.Delivery
}

func (c *collector) dispatch(_ context.Context, ds []*store.Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ds = append(c.ds, ds...)
	return errors.New("dispatcher unavailable")
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return deliveryIDs(c.ds)
}

func (s *suite) webhooks(t *testing.T) {
	s.test(t, "CreateAndFind", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		second := newWebhook(wa.ID, at(2*time.Second))
		second.Filter, second.Scopes, second.Events = nil, scopes("admin:keys"), []string{"*"}
		expires := at(48 * time.Hour)
		second.ExpiresAt = &expires
		must(t, b.CreateWebhook(t.Context(), second), "CreateWebhook")
		first := createWebhook(t, b, wa.ID, at(time.Second))
		third := createWebhook(t, b, wa.ID, at(3*time.Second))
		elsewhere := createWebhook(t, b, wb.ID, at(time.Second))

		for _, want := range []*store.Webhook{first, second, third} {
			got, err := b.FindWebhookByID(t.Context(), wa.ID, want.ID)
			must(t, err, "FindWebhookByID")
			wantWebhook(t, got, want)
		}
		list, err := b.FindWebhooks(t.Context(), wa.ID)
		must(t, err, "FindWebhooks")
		wantIDs(t, "workspace A's webhooks, oldest first", webhookIDs(list), []string{first.ID, second.ID, third.ID})
		if len(list) == 3 {
			wantWebhook(t, list[1], second)
		}
		list, err = b.FindWebhooks(t.Context(), wb.ID)
		must(t, err, "FindWebhooks")
		wantIDs(t, "workspace B's webhooks", webhookIDs(list), []string{elsewhere.ID})
		list, err = b.FindWebhooks(t.Context(), store.NewID())
		must(t, err, "FindWebhooks of an unknown workspace")
		if len(list) != 0 {
			t.Errorf("an unknown workspace has %d webhooks", len(list))
		}

		// Another workspace's id is not found, like an unknown one.
		_, err = b.FindWebhookByID(t.Context(), wb.ID, first.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindWebhookByID(t.Context(), wa.ID, store.NewID())
		wantCode(t, err, store.ENOTFOUND)

		// The same id again is a conflict, and changes nothing.
		dup := newWebhook(wa.ID, at(time.Hour))
		dup.ID = first.ID
		wantCode(t, b.CreateWebhook(t.Context(), dup), store.ECONFLICT)
		got, err := b.FindWebhookByID(t.Context(), wa.ID, first.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, first)
	})

	s.test(t, "Update", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		orig := createWebhook(t, b, wa.ID, at(time.Second))
		bystander := createWebhook(t, b, wa.ID, at(2*time.Second))

		want := *orig
		want.URL = hookURL + "/v2"
		want.Events = []string{"*"}
		want.Description = ""
		want.Enabled = false
		want.DisabledReason = store.DisabledByClient
		want.ExpiresAt = ptr(at(24 * time.Hour))
		want.Scopes = scopes("read:leads")
		want.UpdatedAt = at(time.Hour)
		// The worker's failure streak, started meanwhile, is not undone by
		// an update that read none.
		must(t, b.SetWebhookFailing(t.Context(), wa.ID, orig.ID, ptr(at(time.Minute))), "SetWebhookFailing")
		// What UpdateWebhook does not replace stays as created.
		change := want
		want.FailingSince = ptr(at(time.Minute))
		change.Secret = store.GenerateWebhookSecret()
		change.Filter = map[string]string{"source": "Vendor ABC"}
		change.APIKeyID = store.NewID()
		change.CreatedAt = at(time.Hour)
		// An update from a stale read changes nothing.
		stale := change
		stale.URL = hookURL + "/stale"
		err := b.UpdateWebhook(t.Context(), &stale, orig.UpdatedAt.Add(-time.Millisecond))
		if !errors.Is(err, store.ErrStale) {
			t.Errorf("UpdateWebhook from a stale read = %v, want ErrStale", err)
		}
		must(t, b.UpdateWebhook(t.Context(), &change, orig.UpdatedAt), "UpdateWebhook")
		got, err := b.FindWebhookByID(t.Context(), wa.ID, orig.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, &want)
		got, err = b.FindWebhookByID(t.Context(), wa.ID, bystander.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, bystander)

		// And back: times cleared, enabled again.
		want.Enabled, want.DisabledReason, want.FailingSince, want.ExpiresAt = true, "", nil, nil
		want.UpdatedAt = at(2 * time.Hour)
		back := want
		must(t, b.UpdateWebhook(t.Context(), &back, at(time.Hour)), "UpdateWebhook")
		got, err = b.FindWebhookByID(t.Context(), wa.ID, orig.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, &want)

		// Unknown ids and other workspaces' ids are not found.
		away := want
		away.WorkspaceID = wb.ID
		away.Enabled = false
		wantCode(t, b.UpdateWebhook(t.Context(), &away, want.UpdatedAt), store.ENOTFOUND)
		unknown := want
		unknown.ID = store.NewID()
		wantCode(t, b.UpdateWebhook(t.Context(), &unknown, want.UpdatedAt), store.ENOTFOUND)
		got, err = b.FindWebhookByID(t.Context(), wa.ID, orig.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, &want)
	})

	s.test(t, "DeleteRemovesDeliveries", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		gone := createWebhook(t, b, wa.ID, at(time.Second))
		kept := createWebhook(t, b, wa.ID, at(2*time.Second))
		var goneDs []*store.Delivery
		for i := range 5 {
			goneDs = append(goneDs, newDelivery(gone, at(time.Minute+time.Duration(i)*time.Second)))
		}
		keptD := newDelivery(kept, at(time.Minute))
		insertDeliveries(t, b, append(goneDs, keptD)...)

		// Not from another workspace.
		wantCode(t, b.DeleteWebhook(t.Context(), wb.ID, gone.ID), store.ENOTFOUND)
		_, err := b.FindWebhookByID(t.Context(), wa.ID, gone.ID)
		must(t, err, "FindWebhookByID after a delete from another workspace")
		_, err = b.FindDeliveryByID(t.Context(), wa.ID, goneDs[0].ID)
		must(t, err, "FindDeliveryByID after a delete from another workspace")

		must(t, b.DeleteWebhook(t.Context(), wa.ID, gone.ID), "DeleteWebhook")
		_, err = b.FindWebhookByID(t.Context(), wa.ID, gone.ID)
		wantCode(t, err, store.ENOTFOUND)
		for _, d := range goneDs {
			_, err = b.FindDeliveryByID(t.Context(), wa.ID, d.ID)
			wantCode(t, err, store.ENOTFOUND)
		}
		ds, err := b.FindDeliveries(t.Context(), wa.ID, gone.ID, store.DeliveryQuery{Limit: 10})
		must(t, err, "FindDeliveries of a deleted webhook")
		if len(ds) != 0 {
			t.Errorf("a deleted webhook still lists %d deliveries", len(ds))
		}
		due, err := b.FindDueDeliveriesUnscoped(t.Context(), at(time.Hour), 100)
		must(t, err, "FindDueDeliveriesUnscoped")
		wantIDs(t, "due deliveries after deleting a webhook", deliveryIDs(due), []string{keptD.ID})
		got, err := b.FindDeliveryByID(t.Context(), wa.ID, keptD.ID)
		must(t, err, "FindDeliveryByID of another webhook's delivery")
		wantDelivery(t, got, keptD)
		list, err := b.FindWebhooks(t.Context(), wa.ID)
		must(t, err, "FindWebhooks")
		wantIDs(t, "webhooks after a delete", webhookIDs(list), []string{kept.ID})

		wantCode(t, b.DeleteWebhook(t.Context(), wa.ID, gone.ID), store.ENOTFOUND)
		wantCode(t, b.DeleteWebhook(t.Context(), wa.ID, store.NewID()), store.ENOTFOUND)
	})

	s.test(t, "FailingAndDisabled", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		w := createWebhook(t, b, wa.ID, at(time.Second))
		check := func(what string, want *store.Webhook) {
			t.Helper()
			got, err := b.FindWebhookByID(t.Context(), wa.ID, w.ID)
			must(t, err, what)
			wantWebhook(t, got, want)
		}
		want := *w

		// The first failure starts the streak; later ones leave it.
		must(t, b.SetWebhookFailing(t.Context(), wa.ID, w.ID, ptr(at(time.Minute))), "SetWebhookFailing")
		want.FailingSince = ptr(at(time.Minute))
		check("after a failure", &want)
		must(t, b.SetWebhookFailing(t.Context(), wa.ID, w.ID, ptr(at(time.Hour))), "SetWebhookFailing again")
		check("after a second failure", &want)
		// Other workspaces and unknown ids: no error, no change.
		must(t, b.SetWebhookFailing(t.Context(), wb.ID, w.ID, nil), "SetWebhookFailing from another workspace")
		must(t, b.SetWebhookFailing(t.Context(), wa.ID, store.NewID(), ptr(at(time.Hour))), "SetWebhookFailing of an unknown id")
		check("after SetWebhookFailing elsewhere", &want)
		// A success ends it.
		must(t, b.SetWebhookFailing(t.Context(), wa.ID, w.ID, nil), "SetWebhookFailing(nil)")
		want.FailingSince = nil
		check("after a success", &want)
		must(t, b.SetWebhookFailing(t.Context(), wa.ID, w.ID, ptr(at(2*time.Hour))), "SetWebhookFailing")
		want.FailingSince = ptr(at(2 * time.Hour))
		check("after a new failure", &want)

		disable := func(ws, id, reason string, since *time.Time, wantDone bool) {
			t.Helper()
			done, err := b.DisableWebhook(t.Context(), ws, id, reason, at(3*time.Hour), since)
			if err != nil || done != wantDone {
				t.Errorf("DisableWebhook(%s, since %v) = %v, %v; want %v", reason, since, done, err, wantDone)
			}
		}
		disable(wb.ID, w.ID, "elsewhere", nil, false)
		disable(wa.ID, store.NewID(), "unknown", nil, false)
		// A streak other than the one read (a success and a new failure
		// since) keeps it on.
		disable(wa.ID, w.ID, "stale streak", ptr(at(time.Hour)), false)
		check("after DisableWebhook elsewhere or with a stale streak", &want)
		disable(wa.ID, w.ID, "Deliveries failed for 3 days.", ptr(at(2*time.Hour)), true)
		want.Enabled, want.DisabledReason, want.UpdatedAt = false, "Deliveries failed for 3 days.", at(3*time.Hour)
		check("after DisableWebhook", &want)
		// Disabling a disabled subscription changes nothing.
		disable(wa.ID, w.ID, "again", nil, false)
		check("after DisableWebhook again", &want)
	})

	s.test(t, "Deliveries", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		w := createWebhook(t, b, wa.ID, at(time.Second))
		d := newDelivery(w, at(time.Minute))
		d.Payload = []byte(`{"id":"e","type":"deal.created","data":{"name":"` + hostile[3] + ` Zoë 株式会社 🚀","value":0.30000000000000004}}`)
		replay := newDelivery(w, at(2*time.Minute))
		replay.ReplayOf = d.ID
		replay.Status, replay.Attempts, replay.NextAttemptAt = store.DeliveryFailed, 2, nil
		replay.History = []store.Attempt{
			{At: at(2 * time.Minute), StatusCode: 503, LatencyMS: 1234, Error: "HTTP 503 Service Unavailable"},
			{At: at(3 * time.Minute), StatusCode: 0, LatencyMS: 10000, Error: "timeout after 10s: " + hostile[0]},
		}
		replay.UpdatedAt = at(3 * time.Minute)
		insertDeliveries(t, b, d, replay)
		for _, want := range []*store.Delivery{d, replay} {
			got, err := b.FindDeliveryByID(t.Context(), wa.ID, want.ID)
			must(t, err, "FindDeliveryByID")
			wantDelivery(t, got, want)
		}
		_, err := b.FindDeliveryByID(t.Context(), wb.ID, d.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindDeliveryByID(t.Context(), wa.ID, store.NewID())
		wantCode(t, err, store.ENOTFOUND)

		// Inserting a delivery again skips it, alone or in a batch.
		again := *d
		again.Status, again.Attempts = store.DeliveryDelivered, 1
		fresh := newDelivery(w, at(4*time.Minute))
		must(t, b.InsertDeliveries(t.Context(), []*store.Delivery{&again}), "InsertDeliveries of a stored delivery")
		must(t, b.InsertDeliveries(t.Context(), []*store.Delivery{&again, fresh}), "InsertDeliveries with a stored delivery")
		got, err := b.FindDeliveryByID(t.Context(), wa.ID, d.ID)
		must(t, err, "FindDeliveryByID")
		wantDelivery(t, got, d)
		got, err = b.FindDeliveryByID(t.Context(), wa.ID, fresh.ID)
		must(t, err, "FindDeliveryByID of the new delivery of a batch")
		wantDelivery(t, got, fresh)
		all, err := b.FindDeliveries(t.Context(), wa.ID, w.ID, store.DeliveryQuery{Limit: 10})
		must(t, err, "FindDeliveries")
		wantIDs(t, "deliveries after inserting twice", deliveryIDs(all), []string{fresh.ID, replay.ID, d.ID})
		must(t, b.InsertDeliveries(t.Context(), nil), "InsertDeliveries(nil)")
	})

	s.test(t, "FindDeliveries", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		w := createWebhook(t, b, wa.ID, at(time.Second))
		other := createWebhook(t, b, wa.ID, at(time.Second))
		statuses := []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryDelivered, store.DeliveryCancelled}
		var ds []*store.Delivery
		for i := range 10 {
			// Two deliveries per second: ties on created_at are broken by id.
			d := newDelivery(w, at(time.Minute+time.Duration(i/2)*time.Second))
			d.Status = statuses[i%len(statuses)]
			if d.Status != store.DeliveryPending {
				d.NextAttemptAt = nil
			}
			ds = append(ds, d)
		}
		// Stored in a shuffled order, so that storage order cannot pass for the order asked.
		shuffled := []*store.Delivery{ds[3], ds[8], ds[0], ds[5], ds[9], ds[1], ds[6], ds[2], ds[7], ds[4]}
		insertDeliveries(t, b, shuffled...)
		insertDeliveries(t, b, newDelivery(other, at(time.Minute)), newDelivery(other, at(time.Hour)))

		newest := slices.Clone(ds)
		slices.SortFunc(newest, func(x, y *store.Delivery) int {
			if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(y.ID, x.ID)
		})
		find := func(q store.DeliveryQuery) []string {
			t.Helper()
			got, err := b.FindDeliveries(t.Context(), wa.ID, w.ID, q)
			must(t, err, "FindDeliveries")
			return deliveryIDs(got)
		}
		wantIDs(t, "all deliveries, newest first", find(store.DeliveryQuery{Limit: 100}), deliveryIDs(newest))
		wantIDs(t, "no limit", find(store.DeliveryQuery{}), deliveryIDs(newest))
		wantIDs(t, "first page", find(store.DeliveryQuery{Limit: 3}), deliveryIDs(newest[:3]))
		wantIDs(t, "second page", find(store.DeliveryQuery{Limit: 3, Offset: 3}), deliveryIDs(newest[3:6]))
		wantIDs(t, "last page", find(store.DeliveryQuery{Limit: 3, Offset: 9}), deliveryIDs(newest[9:]))
		wantIDs(t, "past the end", find(store.DeliveryQuery{Limit: 3, Offset: 10}), nil)
		for _, st := range store.DeliveryStatuses() {
			var want []string
			for _, d := range newest {
				if d.Status == st {
					want = append(want, d.ID)
				}
			}
			wantIDs(t, st+" deliveries", find(store.DeliveryQuery{Status: st, Limit: 100}), want)
			if len(want) > 1 {
				wantIDs(t, st+" deliveries from offset 1", find(store.DeliveryQuery{Status: st, Limit: 1, Offset: 1}), want[1:2])
			}
		}
		wantIDs(t, "hostile status", find(store.DeliveryQuery{Status: hostile[0], Limit: 100}), nil)

		got, err := b.FindDeliveries(t.Context(), wb.ID, w.ID, store.DeliveryQuery{Limit: 100})
		must(t, err, "FindDeliveries from another workspace")
		if len(got) != 0 {
			t.Errorf("another workspace lists %d of the webhook's deliveries", len(got))
		}
		got, err = b.FindDeliveries(t.Context(), wa.ID, other.ID, store.DeliveryQuery{Limit: 100})
		must(t, err, "FindDeliveries")
		if len(got) != 2 {
			t.Errorf("the other webhook lists %d deliveries, want 2", len(got))
		}
	})

	s.test(t, "UpdateDelivery", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		w := createWebhook(t, b, wa.ID, at(time.Second))
		d := newDelivery(w, at(time.Minute))
		bystander := newDelivery(w, at(time.Minute))
		insertDeliveries(t, b, d, bystander)

		// A failed attempt, then a success.
		first := *d
		first.Attempts = 1
		first.History = []store.Attempt{{At: at(time.Minute), StatusCode: 500, LatencyMS: 12, Error: "HTTP 500"}}
		first.NextAttemptAt = ptr(at(2 * time.Minute))
		first.UpdatedAt = at(time.Minute + time.Second)
		must(t, b.UpdateDelivery(t.Context(), &first, 0), "UpdateDelivery")
		got, err := b.FindDeliveryByID(t.Context(), wa.ID, d.ID)
		must(t, err, "FindDeliveryByID")
		wantDelivery(t, got, &first)

		second := first
		second.Attempts = 2
		second.Status = store.DeliveryDelivered
		second.History = append(slices.Clone(first.History), store.Attempt{At: at(2 * time.Minute), StatusCode: 204, LatencyMS: 3})
		second.NextAttemptAt = nil
		second.UpdatedAt = at(2*time.Minute + time.Second)
		// A worker that read the delivery before the first attempt is stale.
		late := second
		late.Status = store.DeliveryFailed
		wantStale(t, b.UpdateDelivery(t.Context(), &late, 0), "UpdateDelivery with old attempts")
		wantStale(t, b.UpdateDelivery(t.Context(), &late, 2), "UpdateDelivery with future attempts")
		got, err = b.FindDeliveryByID(t.Context(), wa.ID, d.ID)
		must(t, err, "FindDeliveryByID")
		wantDelivery(t, got, &first)
		must(t, b.UpdateDelivery(t.Context(), &second, 1), "UpdateDelivery")
		got, err = b.FindDeliveryByID(t.Context(), wa.ID, d.ID)
		must(t, err, "FindDeliveryByID")
		wantDelivery(t, got, &second)

		// Only status, attempts, history, next attempt and updated_at change.
		odd := second
		odd.Attempts = 3
		odd.EventType, odd.Payload, odd.ReplayOf, odd.CreatedAt = "lead.deleted", []byte(`{"changed":true}`), store.NewID(), at(time.Hour)
		must(t, b.UpdateDelivery(t.Context(), &odd, 2), "UpdateDelivery")
		got, err = b.FindDeliveryByID(t.Context(), wa.ID, d.ID)
		must(t, err, "FindDeliveryByID")
		want := second
		want.Attempts = 3
		wantDelivery(t, got, &want)

		away := want
		away.WorkspaceID = wb.ID
		wantCode(t, b.UpdateDelivery(t.Context(), &away, 3), store.ENOTFOUND)
		unknown := want
		unknown.ID = store.NewID()
		wantCode(t, b.UpdateDelivery(t.Context(), &unknown, 0), store.ENOTFOUND)
		got, err = b.FindDeliveryByID(t.Context(), wa.ID, bystander.ID)
		must(t, err, "FindDeliveryByID")
		wantDelivery(t, got, bystander)
	})

	s.test(t, "DueDeliveries", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		w := createWebhook(t, b, wa.ID, at(time.Second))
		wB := createWebhook(t, b, wb.ID, at(time.Second))
		due := func(w *store.Webhook, next time.Duration, status string) *store.Delivery {
			d := newDelivery(w, at(time.Minute))
			d.Status = status
			d.NextAttemptAt = ptr(at(next))
			if status != store.DeliveryPending {
				d.NextAttemptAt = nil
			}
			return d
		}
		a3 := due(w, 3*time.Minute, store.DeliveryPending)
		b1 := due(wB, time.Minute, store.DeliveryPending)
		a2 := due(w, 2*time.Minute, store.DeliveryPending)
		later := due(w, time.Hour, store.DeliveryPending)
		done := due(w, 0, store.DeliveryDelivered)
		failed := due(wB, 0, store.DeliveryFailed)
		cancelled := due(w, 0, store.DeliveryCancelled)
		insertDeliveries(t, b, a3, b1, a2, later, done, failed, cancelled)

		find := func(before time.Time, limit int) []string {
			t.Helper()
			got, err := b.FindDueDeliveriesUnscoped(t.Context(), before, limit)
			must(t, err, "FindDueDeliveriesUnscoped")
			return deliveryIDs(got)
		}
		wantIDs(t, "due before 10 minutes", find(at(10*time.Minute), 100), []string{b1.ID, a2.ID, a3.ID})
		wantIDs(t, "due before 10 minutes, 2 at most", find(at(10*time.Minute), 2), []string{b1.ID, a2.ID})
		wantIDs(t, "due before 1 minute", find(at(time.Minute), 100), nil)
		wantIDs(t, "due before 2 hours", find(at(2*time.Hour), 100), []string{b1.ID, a2.ID, a3.ID, later.ID})

		got, err := b.FindDueDeliveriesUnscoped(t.Context(), at(2*time.Minute+time.Millisecond), 1)
		must(t, err, "FindDueDeliveriesUnscoped")
		if len(got) == 1 {
			wantDelivery(t, got[0], b1)
		} else {
			t.Errorf("%d due deliveries, want 1", len(got))
		}

		// A delivery that is no longer pending is no longer due.
		sent := *b1
		sent.Status, sent.Attempts, sent.NextAttemptAt = store.DeliveryDelivered, 1, nil
		must(t, b.UpdateDelivery(t.Context(), &sent, 0), "UpdateDelivery")
		wantIDs(t, "due after one was sent", find(at(10*time.Minute), 100), []string{a2.ID, a3.ID})
	})

	s.test(t, "DeleteDeliveriesBefore", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		w := createWebhook(t, b, wa.ID, at(time.Second))
		wB := createWebhook(t, b, wb.ID, at(time.Second))
		old := func(w *store.Webhook, created time.Duration, status string) *store.Delivery {
			d := newDelivery(w, at(created))
			d.Status = status
			if status != store.DeliveryPending {
				d.NextAttemptAt = nil
			}
			return d
		}
		gone := []*store.Delivery{
			old(w, time.Minute, store.DeliveryDelivered), old(wB, time.Minute, store.DeliveryFailed),
			old(w, 2*time.Minute, store.DeliveryCancelled),
		}
		kept := []*store.Delivery{
			old(w, time.Minute, store.DeliveryPending), // pending: never removed
			old(w, time.Hour, store.DeliveryDelivered), // the boundary: not before it
			old(wB, 2*time.Hour, store.DeliveryFailed),
		}
		insertDeliveries(t, b, append(slices.Clone(gone), kept...)...)
		n, err := b.DeleteDeliveriesBefore(t.Context(), at(time.Hour))
		must(t, err, "DeleteDeliveriesBefore")
		if n != int64(len(gone)) {
			t.Errorf("DeleteDeliveriesBefore deleted %d, want %d", n, len(gone))
		}
		for _, d := range gone {
			_, err := b.FindDeliveryByID(t.Context(), d.WorkspaceID, d.ID)
			if store.ErrorCode(err) != store.ENOTFOUND {
				t.Errorf("delivery %s (%s) after retention: %v, want not_found", d.ID, d.Status, err)
			}
		}
		for _, d := range kept {
			got, err := b.FindDeliveryByID(t.Context(), d.WorkspaceID, d.ID)
			must(t, err, "FindDeliveryByID of a kept delivery")
			wantDelivery(t, got, d)
		}
		n, err = b.DeleteDeliveriesBefore(t.Context(), at(time.Hour))
		must(t, err, "DeleteDeliveriesBefore")
		if n != 0 {
			t.Errorf("DeleteDeliveriesBefore again deleted %d, want 0", n)
		}
	})

	s.test(t, "ClaimEvents", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		// Events are returned oldest first, in id order, across workspaces.
		var byAge []*store.Record
		for i := range 5 {
			ws := wa.ID
			if i%2 == 1 {
				ws = wb.ID
			}
			byAge = append(byAge, insertRecord(t, b, store.Leads, ws, minimalFields(store.Leads, i), at(time.Duration(i+1)*time.Second)))
		}
		claim := func(what string, now, staleBefore time.Time, limit int, want []*store.Record) []store.Event {
			t.Helper()
			evs, err := b.ClaimEvents(t.Context(), now, staleBefore, limit)
			must(t, err, "ClaimEvents")
			if len(evs) != len(want) {
				t.Fatalf("%s: claimed %d events, want %d", what, len(evs), len(want))
			}
			for i, ev := range evs {
				wantEvent(t, ev, recordEvent(t, want[i], store.KindCreated))
			}
			return evs
		}
		now := at(time.Hour)
		first := claim("first claim", now, now.Add(-30*time.Second), 2, byAge[:2])
		rest := claim("second claim", now, now.Add(-30*time.Second), 10, byAge[2:])
		claim("claim with everything claimed", now.Add(time.Second), now.Add(-29*time.Second), 10, nil)
		// Claimed at now: not before now, so not stale yet.
		claim("claim at the claim time", now.Add(time.Minute), now, 10, nil)
		again := claim("claim after the claims went stale", now.Add(time.Minute), now.Add(time.Millisecond), 10, byAge)
		if !slices.Equal(eventIDsOf(again), append(eventIDsOf(first), eventIDsOf(rest)...)) {
			t.Errorf("re-claimed events have other ids: %q, want %q and %q", eventIDsOf(again), eventIDsOf(first), eventIDsOf(rest))
		}
		claim("claim after the re-claim", now.Add(time.Minute+time.Second), now.Add(time.Millisecond), 10, nil)

		// Deleted events are gone; unknown ids are no error.
		must(t, b.DeleteEvents(t.Context(), append(eventIDsOf(first), store.NewID())), "DeleteEvents")
		must(t, b.DeleteEvents(t.Context(), []string{store.NewID()}), "DeleteEvents of an unknown id")
		claim("claim after deleting two", now.Add(time.Hour), forever, 10, byAge[2:])
		must(t, b.DeleteEvents(t.Context(), eventIDsOf(rest)), "DeleteEvents")
		claim("claim after deleting all", now.Add(time.Hour), forever, 10, nil)
	})

	s.test(t, "RecordWritesStoreTheirEvent", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		for i, r := range store.Resources {
			t.Run(r.Name, func(t *testing.T) {
				rec := newRecord(r, wa.ID, allFields(r, i), at(time.Duration(i)*time.Hour))
				must(t, b.InsertRecord(t.Context(), rec), "InsertRecord")
				wantEvent(t, oneEvent(t, b, "InsertRecord"), recordEvent(t, rec, store.KindCreated))

				upd := updated(rec, minimalFields(r, i+1), rec.UpdatedAt.Add(time.Minute))
				must(t, b.UpdateRecord(t.Context(), upd, rec.UpdatedAt), "UpdateRecord")
				wantEvent(t, oneEvent(t, b, "UpdateRecord"), recordEvent(t, upd, store.KindUpdated))

				del := upd.UpdatedAt.Add(time.Minute)
				must(t, b.DeleteRecord(t.Context(), r, wa.ID, rec.ID, del), "DeleteRecord")
				ev := oneEvent(t, b, "DeleteRecord")
				tomb := *upd
				tomb.DeletedAt, tomb.UpdatedAt = &del, del
				wantEvent(t, ev, recordEvent(t, &tomb, store.KindDeleted))
				// The tombstone carries the fields, so that filters apply to it.
				var data map[string]any
				must(t, json.Unmarshal(ev.Data, &data), "decode the deleted event's data")
				if data["deleted"] != true || data["id"] != rec.ID {
					t.Errorf("deleted event data: deleted %v, id %v", data["deleted"], data["id"])
				}
				for name, v := range upd.Fields {
					if !reflect.DeepEqual(data[name], v) {
						t.Errorf("deleted event data %s = %#v, want %#v", name, data[name], v)
					}
				}
			})
		}
	})

	s.test(t, "FailedWritesStoreNoEvent", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		wb := newWorkspace(t, b, "B", at(0))
		rec := insertRecord(t, b, store.Leads, wa.ID, map[string]any{"name": "Mine", "source": vendorSource, "external_id": "ext-1"}, at(time.Second))
		k := insertKey(t, b, wa.ID, at(time.Second))
		drainEvents(t, b)

		dup := newRecord(store.Leads, wa.ID, map[string]any{"name": "Dup", "external_id": "ext-1"}, at(time.Minute))
		wantCode(t, b.InsertRecord(t.Context(), dup), store.ECONFLICT)
		sameID := newRecord(store.Leads, wa.ID, map[string]any{"name": "Same id"}, at(time.Minute))
		sameID.ID = rec.ID
		wantCode(t, b.InsertRecord(t.Context(), sameID), store.ECONFLICT)
		noEvent(t, b, "refused inserts")

		wantStale(t, b.UpdateRecord(t.Context(), updated(rec, map[string]any{"name": "Late"}, at(time.Hour)), at(time.Minute)), "stale UpdateRecord")
		err := b.UpdateRecord(t.Context(), updated(newRecord(store.Leads, wa.ID, nil, at(0)), map[string]any{"name": "X"}, at(time.Hour)), at(1500*time.Millisecond))
		wantCode(t, err, store.ENOTFOUND)
		away := updated(rec, map[string]any{"name": "Away"}, at(time.Hour))
		away.WorkspaceID = wb.ID
		wantCode(t, b.UpdateRecord(t.Context(), away, rec.UpdatedAt), store.ENOTFOUND)
		noEvent(t, b, "refused updates")

		wantCode(t, b.DeleteRecord(t.Context(), store.Leads, wb.ID, rec.ID, at(time.Hour)), store.ENOTFOUND)
		wantCode(t, b.DeleteRecord(t.Context(), store.Leads, wa.ID, store.NewID(), at(time.Hour)), store.ENOTFOUND)
		noEvent(t, b, "refused deletes")
		must(t, b.DeleteRecord(t.Context(), store.Leads, wa.ID, rec.ID, at(time.Hour)), "DeleteRecord")
		oneEvent(t, b, "DeleteRecord")
		wantCode(t, b.DeleteRecord(t.Context(), store.Leads, wa.ID, rec.ID, at(2*time.Hour)), store.ENOTFOUND)
		noEvent(t, b, "deleting a tombstone")

		dupKey, _ := newKey(wa.ID, at(time.Minute))
		dupKey.Hash = k.Hash
		wantCode(t, b.CreateAPIKey(t.Context(), dupKey), store.ECONFLICT)
		noEvent(t, b, "a refused key")
		wantCode(t, b.RevokeAPIKey(t.Context(), wb.ID, k.ID, at(time.Hour)), store.ENOTFOUND)
		wantCode(t, b.RevokeAPIKey(t.Context(), wa.ID, store.NewID(), at(time.Hour)), store.ENOTFOUND)
		noEvent(t, b, "refused revocations")
		for _, c := range []struct{ what, ws, id string }{
			{"another workspace's key", wb.ID, k.ID}, {"an unknown key", wa.ID, store.NewID()},
		} {
			ok, err := b.MarkAPIKeyExpiring(t.Context(), c.ws, c.id, at(time.Hour))
			must(t, err, "MarkAPIKeyExpiring of "+c.what)
			if ok {
				t.Errorf("MarkAPIKeyExpiring of %s reported true", c.what)
			}
		}
		noEvent(t, b, "marking unknown keys")
	})

	s.test(t, "KeyWritesStoreTheirEvent", func(t *testing.T, b store.Backend) {
		wa := newWorkspace(t, b, "A", at(0))
		k, _ := newKey(wa.ID, at(time.Second))
		k.Filter = vendorFilter
		k.Scopes = scopes("read:leads")
		k.ExpiresAt = ptr(at(72 * time.Hour))
		must(t, b.CreateAPIKey(t.Context(), k), "CreateAPIKey")
		ev := oneEvent(t, b, "CreateAPIKey")
		wantEvent(t, ev, keyEvent(t, b, wa.ID, k.ID, store.KindCreated, k.CreatedAt))
		if strings.Contains(string(ev.Data), "hash") {
			t.Errorf("the key event shows the key's hash: %s", ev.Data)
		}

		ok, err := b.MarkAPIKeyExpiring(t.Context(), wa.ID, k.ID, at(time.Hour))
		must(t, err, "MarkAPIKeyExpiring")
		if !ok {
			t.Error("MarkAPIKeyExpiring of a new key reported false")
		}
		wantEvent(t, oneEvent(t, b, "MarkAPIKeyExpiring"), keyEvent(t, b, wa.ID, k.ID, store.KindExpiring, at(time.Hour)))
		ok, err = b.MarkAPIKeyExpiring(t.Context(), wa.ID, k.ID, at(2*time.Hour))
		must(t, err, "MarkAPIKeyExpiring again")
		if ok {
			t.Error("MarkAPIKeyExpiring of an announced key reported true")
		}
		noEvent(t, b, "MarkAPIKeyExpiring again")

		must(t, b.RevokeAPIKey(t.Context(), wa.ID, k.ID, at(3*time.Hour)), "RevokeAPIKey")
		ev = oneEvent(t, b, "RevokeAPIKey")
		wantEvent(t, ev, keyEvent(t, b, wa.ID, k.ID, store.KindRevoked, at(3*time.Hour)))
		var data map[string]any
		must(t, json.Unmarshal(ev.Data, &data), "decode the revoked event's data")
		if data["revoked_at"] == nil || data["id"] != k.ID {
			t.Errorf("revoked event data: id %v revoked_at %v", data["id"], data["revoked_at"])
		}
		must(t, b.RevokeAPIKey(t.Context(), wa.ID, k.ID, at(4*time.Hour)), "RevokeAPIKey again")
		noEvent(t, b, "revoking a revoked key")

		// Changes that are not announced store nothing.
		must(t, b.SetAPIKeyExpiry(t.Context(), wa.ID, k.ID, at(5*time.Hour)), "SetAPIKeyExpiry")
		must(t, b.TouchAPIKeys(t.Context(), map[string]time.Time{k.ID: at(time.Hour)}), "TouchAPIKeys")
		noEvent(t, b, "SetAPIKeyExpiry and TouchAPIKeys")
	})

	s.test(t, "ScopedSubscriptions", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		noAdmin := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "deals only",
			Scopes: scopes("read:deals", "write:deals", "read:webhooks", "write:webhooks")}).p)
		e.clock.Add(time.Second)

		created := e.clock.Now()
		w, secret, err := e.sc.CreateWebhook(ctx, store.WebhookInput{URL: hookURL, Events: []string{"lead.*", "deal.created", "lead.*"},
			Description: "  Zapier  "})
		must(t, err, "CreateWebhook")
		if w.Status != store.WebhookActive || !w.Enabled || w.Description != "Zapier" || w.APIKeyID != e.admin.key.ID ||
			w.WorkspaceID != e.wa.ID || len(w.Filter) != 0 || !w.CreatedAt.Equal(created) || w.Secret != secret {
			t.Errorf("created webhook = %+v", w)
		}
		wantIDs(t, "normalized events", w.Events, []string{"deal.created", "lead.*"})
		for _, sc := range w.Scopes {
			if sc == store.ScopeWriteWebhooks || strings.HasPrefix(string(sc), "write:") || sc == store.ScopeUsage {
				t.Errorf("the webhook's scopes %q hold %s; only read scopes and admin:keys receive events", w.Scopes, sc)
			}
		}
		if !slices.Contains(w.Scopes, store.ScopeAdminKeys) || !slices.Contains(w.Scopes, store.ReadScope("leads")) {
			t.Errorf("the webhook's scopes %q lack admin:keys or read:leads", w.Scopes)
		}
		body, err := json.Marshal(w)
		must(t, err, "marshal the webhook")
		if strings.Contains(string(body), strings.TrimPrefix(secret, store.SecretPrefix)) {
			t.Errorf("the webhook's JSON shows its secret: %s", body)
		}
		got, err := e.sc.FindWebhookByID(ctx, w.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, w)
		if got.Status != store.WebhookActive {
			t.Errorf("status %q, want active", got.Status)
		}
		e.clock.Add(time.Second)
		second := e.subscribe(t, noAdmin, "*")
		if !slices.Equal(second.Scopes, scopes("read:deals")) {
			t.Errorf("a deals key's webhook has scopes %q, want read:deals", second.Scopes)
		}
		expiring, _, err := e.sc.CreateWebhook(ctx, store.WebhookInput{URL: hookURL, Events: []string{"*"},
			ExpiresAt: ptr(e.clock.Now().Add(time.Hour))})
		must(t, err, "CreateWebhook with an expiry")
		list, err := e.sc.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "webhooks", webhookIDs(list), []string{w.ID, second.ID, expiring.ID})

		// Refused: events outside the key's scopes, no events, a past expiry,
		// a loopback URL without the insecure policy, no write:webhooks.
		for _, in := range []store.WebhookInput{
			{URL: hookURL, Events: []string{"lead.created"}},
			{URL: hookURL, Events: []string{"api_key.*"}},
			{URL: hookURL, Events: nil},
			{URL: hookURL, Events: []string{"deal.exploded"}},
			{URL: hookURL, Events: []string{"*"}, ExpiresAt: ptr(e.clock.Now().Add(-time.Second))},
			{URL: "ftp://127.0.0.1/x", Events: []string{"*"}},
		} {
			_, _, err := noAdmin.CreateWebhook(ctx, in)
			wantCode(t, err, store.EBADREQUEST)
		}
		strict := store.NewService(b, store.WithClock(e.clock.Now), store.WithKeyCacheTTL(0))
		_, _, err = strict.Scoped(e.admin.p).CreateWebhook(ctx, store.WebhookInput{URL: hookURL, Events: []string{"*"}})
		wantCode(t, err, store.EBADREQUEST)
		readOnly := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "reader",
			Scopes: scopes("read:webhooks", "read:leads", "read:deals")}).p)
		_, _, err = readOnly.CreateWebhook(ctx, store.WebhookInput{URL: hookURL, Events: []string{"*"}})
		wantCode(t, err, store.EFORBIDDEN)
		_, err = readOnly.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(false)})
		wantCode(t, err, store.EFORBIDDEN)
		wantCode(t, readOnly.DeleteWebhook(ctx, w.ID), store.EFORBIDDEN)
		// A key sees the subscriptions whose events it could receive itself:
		// not the admin's "*" one (keys, every resource).
		readable, err := readOnly.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "webhooks a leads and deals reader sees", webhookIDs(readable), []string{w.ID, second.ID})
		readable, err = noAdmin.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "webhooks a deals key sees", webhookIDs(readable), []string{second.ID})
		_, err = noAdmin.FindWebhookByID(ctx, w.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = noAdmin.UpdateWebhook(ctx, w.ID, store.WebhookPatch{URL: ptr(hookURL + "/elsewhere")})
		wantCode(t, err, store.ENOTFOUND)
		wantCode(t, noAdmin.DeleteWebhook(ctx, expiring.ID), store.ENOTFOUND)
		list, err = e.sc.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		if len(list) != 3 {
			t.Errorf("%d webhooks after refused creates, want 3", len(list))
		}

		// Patches: off and on, url, events, description.
		e.clock.Add(time.Second)
		off, err := e.sc.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(false)})
		must(t, err, "UpdateWebhook(enabled=false)")
		if off.Enabled || off.Status != store.WebhookDisabled || off.DisabledReason != store.DisabledByClient || !off.UpdatedAt.Equal(e.clock.Now()) {
			t.Errorf("disabled webhook = %+v", off)
		}
		got, err = e.sc.FindWebhookByID(ctx, w.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, off)
		must(t, b.SetWebhookFailing(ctx, e.wa.ID, w.ID, ptr(e.clock.Now())), "SetWebhookFailing")
		on, err := e.sc.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(true), URL: ptr(hookURL + "/v2"),
			Events: []string{"*"}, Description: ptr("Make")})
		must(t, err, "UpdateWebhook")
		if !on.Enabled || on.Status != store.WebhookActive || on.DisabledReason != "" || on.FailingSince != nil ||
			on.URL != hookURL+"/v2" || on.Description != "Make" || !slices.Equal(on.Events, []string{"*"}) {
			t.Errorf("re-enabled webhook = %+v", on)
		}
		got, err = e.sc.FindWebhookByID(ctx, w.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, on)
		_, err = noAdmin.UpdateWebhook(ctx, second.ID, store.WebhookPatch{Events: []string{"lead.*"}})
		wantCode(t, err, store.EBADREQUEST)

		// Derived statuses.
		must(t, b.SetWebhookFailing(ctx, e.wa.ID, w.ID, ptr(e.clock.Now())), "SetWebhookFailing")
		got, err = e.sc.FindWebhookByID(ctx, w.ID)
		must(t, err, "FindWebhookByID")
		if got.Status != store.WebhookFailing {
			t.Errorf("status of a failing webhook = %q", got.Status)
		}
		e.clock.Add(2 * time.Hour)
		got, err = e.sc.FindWebhookByID(ctx, expiring.ID)
		must(t, err, "FindWebhookByID")
		if got.Status != store.WebhookExpired {
			t.Errorf("status of an expired webhook = %q", got.Status)
		}

		// Unsubscribe.
		must(t, e.sc.DeleteWebhook(ctx, w.ID), "DeleteWebhook")
		_, err = e.sc.FindWebhookByID(ctx, w.ID)
		wantCode(t, err, store.ENOTFOUND)
		wantCode(t, e.sc.DeleteWebhook(ctx, w.ID), store.ENOTFOUND)
		_, err = e.sc.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(false)})
		wantCode(t, err, store.ENOTFOUND)
		list, err = e.sc.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "webhooks after a delete", webhookIDs(list), []string{second.ID, expiring.ID})
		for _, id := range []string{"", "not-an-id", hostile[0], store.NewID()} {
			_, err = e.sc.FindWebhookByID(ctx, id)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "RevokedKeysSubscriptions", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		vendor := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "vendor",
			Scopes: scopes("read:leads", "read:webhooks", "write:webhooks")})
		rotated := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "rotated",
			Scopes: scopes("read:leads", "read:webhooks", "write:webhooks")})
		byVendor := e.subscribe(t, e.svc.Scoped(vendor.p), "lead.*")
		byRotated := e.subscribe(t, e.svc.Scoped(rotated.p), "lead.*")
		byAdmin := e.subscribe(t, e.sc, "lead.*")

		// Revoking a key (by an admin or the operator) turns off what it
		// subscribed, and nothing else.
		_, err := e.sc.RevokeAPIKey(ctx, vendor.key.ID)
		must(t, err, "RevokeAPIKey")
		got, err := e.sc.FindWebhookByID(ctx, byVendor.ID)
		must(t, err, "FindWebhookByID")
		if got.Enabled || got.Status != store.WebhookDisabled || got.DisabledReason != store.DisabledByRevocation {
			t.Errorf("subscription of a revoked key = %+v", got)
		}
		// A rotated key's old key expires; its subscriptions keep working.
		_, _, err = e.sc.RotateAPIKey(ctx, rotated.key.ID, 0)
		must(t, err, "RotateAPIKey")
		for _, id := range []string{byRotated.ID, byAdmin.ID} {
			got, err := e.sc.FindWebhookByID(ctx, id)
			must(t, err, "FindWebhookByID")
			if !got.Enabled || got.Status != store.WebhookActive {
				t.Errorf("subscription %s after another key's revocation or a rotation = %+v", id, got)
			}
		}
		// Nothing is sent to the disabled one.
		lead, err := e.sc.CreateRecord(ctx, store.Leads, map[string]any{"name": "After the revocation"})
		must(t, err, "CreateRecord")
		evs, err := e.svc.ClaimEvents(ctx, 100)
		must(t, err, "ClaimEvents")
		ds, err := e.svc.FanOut(ctx, evs)
		must(t, err, "FanOut")
		var to []string
		for _, d := range ds {
			to = append(to, d.WebhookID)
		}
		slices.Sort(to)
		want := []string{byRotated.ID, byAdmin.ID}
		slices.Sort(want)
		wantIDs(t, "subscriptions that get "+lead.ID, to, want)
		// A manager turns it on again; revoking the key again changes nothing.
		e.clock.Add(time.Second)
		_, err = e.sc.UpdateWebhook(ctx, byVendor.ID, store.WebhookPatch{Enabled: ptr(true)})
		must(t, err, "UpdateWebhook(enabled=true)")
		e.clock.Add(time.Second)
		_, err = e.sc.RevokeAPIKey(ctx, vendor.key.ID)
		must(t, err, "RevokeAPIKey again")
		_, err = e.svc.RevokeAPIKey(ctx, vendor.key.ID)
		must(t, err, "operator RevokeAPIKey again")
		got, err = e.sc.FindWebhookByID(ctx, byVendor.ID)
		must(t, err, "FindWebhookByID")
		if !got.Enabled {
			t.Errorf("a subscription re-enabled after its key's revocation was turned off by revoking again: %+v", got)
		}
		// The operator's revocation does the same.
		other := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "other", Scopes: scopes("read:leads", "write:webhooks")})
		byOther := e.subscribe(t, e.svc.Scoped(other.p), "lead.created")
		_, err = e.svc.RevokeAPIKey(ctx, other.key.ID)
		must(t, err, "operator RevokeAPIKey")
		got, err = e.sc.FindWebhookByID(ctx, byOther.ID)
		must(t, err, "FindWebhookByID")
		if got.Enabled || got.DisabledReason != store.DisabledByRevocation {
			t.Errorf("subscription of a key the operator revoked = %+v", got)
		}
	})

	s.test(t, "DisableFailingWebhooks", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		long := e.subscribe(t, e.sc, "lead.*")
		recent := e.subscribe(t, e.sc, "lead.*")
		healthy := e.subscribe(t, e.sc, "lead.*")
		off := e.subscribe(t, e.sc, "lead.*")
		other := e.subscribe(t, e.scB, "lead.*")
		quiet := e.subscribe(t, e.sc, "lead.*")
		start := e.clock.Now()
		for _, w := range []*store.Webhook{long, off, quiet} {
			must(t, b.SetWebhookFailing(ctx, e.wa.ID, w.ID, ptr(start)), "SetWebhookFailing")
		}
		must(t, b.SetWebhookFailing(ctx, e.wb.ID, other.ID, ptr(start)), "SetWebhookFailing")
		// long and other keep failing for 60 h; quiet failed once, then
		// nothing more was sent to it.
		failed := func(w *store.Webhook, ats ...time.Duration) {
			t.Helper()
			d := &store.Delivery{ID: store.NewID(), WorkspaceID: w.WorkspaceID, WebhookID: w.ID, EventID: store.NewID(),
				EventType: "lead.created", Payload: []byte(`{}`), Status: store.DeliveryFailed, CreatedAt: start, UpdatedAt: start}
			for _, at := range ats {
				d.History = append(d.History, store.Attempt{At: start.Add(at), StatusCode: 500, Error: "HTTP 500"})
			}
			d.Attempts = len(d.History)
			must(t, b.InsertDeliveries(ctx, []*store.Delivery{d}), "InsertDeliveries")
		}
		failed(long, 0, time.Hour, 60*time.Hour)
		failed(other, 0, 60*time.Hour)
		failed(quiet, 0)
		_, err := e.sc.UpdateWebhook(ctx, off.ID, store.WebhookPatch{Enabled: ptr(false)})
		must(t, err, "UpdateWebhook")
		e.clock.Add(71 * time.Hour)
		must(t, b.SetWebhookFailing(ctx, e.wa.ID, recent.ID, ptr(e.clock.Now())), "SetWebhookFailing")
		n, err := e.svc.DisableFailingWebhooks(ctx, 72*time.Hour)
		if err != nil || n != 0 {
			t.Errorf("DisableFailingWebhooks before 72 h = %d, %v; want 0", n, err)
		}
		e.clock.Add(2 * time.Hour)
		n, err = e.svc.DisableFailingWebhooks(ctx, 72*time.Hour)
		if err != nil || n != 2 {
			t.Errorf("DisableFailingWebhooks after 73 h = %d, %v; want 2 (one per workspace)", n, err)
		}
		for _, c := range []struct {
			sc      *store.Scoped
			w       *store.Webhook
			enabled bool
		}{{e.sc, long, false}, {e.sc, recent, true}, {e.sc, healthy, true}, {e.scB, other, false}, {e.sc, quiet, true}} {
			got, err := c.sc.FindWebhookByID(ctx, c.w.ID)
			must(t, err, "FindWebhookByID")
			if got.Enabled != c.enabled || (!c.enabled && !strings.Contains(got.DisabledReason, "re-enable")) {
				t.Errorf("subscription %s: enabled %v (reason %q), want %v", c.w.ID, got.Enabled, got.DisabledReason, c.enabled)
			}
		}
		got, err := e.sc.FindWebhookByID(ctx, off.ID)
		must(t, err, "FindWebhookByID")
		if got.DisabledReason != store.DisabledByClient {
			t.Errorf("a subscription a client turned off got the reason %q", got.DisabledReason)
		}
		// WebhookFailed disables only the streak it read.
		fresh, err := e.sc.FindWebhookByID(ctx, recent.ID)
		must(t, err, "FindWebhookByID")
		must(t, b.SetWebhookFailing(ctx, e.wa.ID, recent.ID, nil), "SetWebhookFailing(nil)") // a success meanwhile
		e.clock.Add(100 * time.Hour)
		disabled, err := e.svc.WebhookFailed(ctx, fresh, 72*time.Hour, "stale")
		if err != nil || disabled {
			t.Errorf("WebhookFailed on a streak that ended meanwhile = %v, %v; want not disabled", disabled, err)
		}
	})

	s.test(t, "FanOutSkipsEarlierEvents", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		_, err := e.sc.CreateRecord(ctx, store.Leads, map[string]any{"name": "Before the subscription"})
		must(t, err, "CreateRecord")
		e.clock.Add(time.Minute)
		w := e.subscribe(t, e.sc, "lead.*")
		after, err := e.sc.CreateRecord(ctx, store.Leads, map[string]any{"name": "After the subscription"})
		must(t, err, "CreateRecord")
		evs, err := e.svc.ClaimEvents(ctx, 100)
		must(t, err, "ClaimEvents")
		ds, err := e.svc.FanOut(ctx, evs)
		must(t, err, "FanOut")
		if len(ds) != 1 || ds[0].WebhookID != w.ID || !strings.Contains(string(ds[0].Payload), after.ID) {
			t.Errorf("FanOut of an event older than the subscription and a newer one = %d deliveries, want the newer one only", len(ds))
		}
	})

	s.test(t, "ReplayAfterEventsChanged", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		w := e.subscribe(t, e.sc, "lead.*")
		_, err := e.sc.CreateRecord(ctx, store.Leads, map[string]any{"name": "Replayed"})
		must(t, err, "CreateRecord")
		evs, err := e.svc.ClaimEvents(ctx, 100)
		must(t, err, "ClaimEvents")
		ds, err := e.svc.FanOut(ctx, evs)
		must(t, err, "FanOut")
		if len(ds) != 1 {
			t.Fatalf("%d deliveries, want 1", len(ds))
		}
		done := *ds[0]
		done.Status, done.Attempts, done.NextAttemptAt = store.DeliveryDelivered, 1, nil
		must(t, e.svc.UpdateDelivery(ctx, &done, 0), "UpdateDelivery")
		_, err = e.sc.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Events: []string{"note.*"}})
		must(t, err, "UpdateWebhook")
		_, err = e.sc.ReplayDelivery(ctx, w.ID, done.ID)
		wantCode(t, err, store.ECONFLICT)
		_, err = e.sc.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Events: []string{"*"}})
		must(t, err, "UpdateWebhook")
		_, err = e.sc.ReplayDelivery(ctx, w.ID, done.ID)
		must(t, err, "ReplayDelivery once the subscription asks for leads again")
	})

	s.test(t, "ScopedOtherWorkspace", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		w := e.subscribe(t, e.sc, "*")
		d, err := e.sc.TestWebhook(ctx, w.ID)
		must(t, err, "TestWebhook")
		done := *d
		done.Status, done.Attempts, done.NextAttemptAt = store.DeliveryDelivered, 1, nil
		must(t, e.svc.UpdateDelivery(ctx, &done, 0), "UpdateDelivery")

		_, err = e.scB.FindWebhookByID(ctx, w.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = e.scB.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(false), URL: ptr(hookURL + "/evil")})
		wantCode(t, err, store.ENOTFOUND)
		wantCode(t, e.scB.DeleteWebhook(ctx, w.ID), store.ENOTFOUND)
		_, err = e.scB.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 10})
		wantCode(t, err, store.ENOTFOUND)
		_, err = e.scB.ReplayDelivery(ctx, w.ID, d.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = e.scB.TestWebhook(ctx, w.ID)
		wantCode(t, err, store.ENOTFOUND)
		// B's own webhook does not reach A's deliveries either.
		wB := e.subscribe(t, e.scB, "*")
		_, err = e.scB.ReplayDelivery(ctx, wB.ID, d.ID)
		wantCode(t, err, store.ENOTFOUND)
		list, err := e.scB.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "workspace B's webhooks", webhookIDs(list), []string{wB.ID})

		got, err := e.sc.FindWebhookByID(ctx, w.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, w)
		page, err := e.sc.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 10})
		must(t, err, "FindDeliveries")
		wantIDs(t, "deliveries", deliveryIDs(page.Data), []string{d.ID})
	})

	s.test(t, "ScopedVendorVisibility", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		vendorScopes := scopes("read:leads", "write:leads", "read:webhooks", "write:webhooks")
		vendor := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "Vendor XYZ", Scopes: vendorScopes, Filter: vendorFilter}).p)
		other := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "Vendor ABC", Scopes: vendorScopes,
			Filter: map[string]string{"source": "Vendor ABC"}}).p)

		house := e.subscribe(t, e.sc, "*")
		mine := e.subscribe(t, vendor, "lead.*")
		theirs := e.subscribe(t, other, "*")
		if !maps.Equal(mine.Filter, vendorFilter) || !slices.Equal(mine.Scopes, scopes("read:leads")) {
			t.Errorf("the vendor's webhook has filter %v and scopes %q, want %v and read:leads", mine.Filter, mine.Scopes, vendorFilter)
		}

		list, err := e.sc.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "the admin's webhooks", webhookIDs(list), []string{house.ID, mine.ID, theirs.ID})
		list, err = vendor.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "the vendor's webhooks", webhookIDs(list), []string{mine.ID})
		list, err = other.FindWebhooks(ctx)
		must(t, err, "FindWebhooks")
		wantIDs(t, "the other vendor's webhooks", webhookIDs(list), []string{theirs.ID})

		for _, w := range []*store.Webhook{house, theirs} {
			_, err = vendor.FindWebhookByID(ctx, w.ID)
			wantCode(t, err, store.ENOTFOUND)
			_, err = vendor.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(false)})
			wantCode(t, err, store.ENOTFOUND)
			wantCode(t, vendor.DeleteWebhook(ctx, w.ID), store.ENOTFOUND)
			_, err = vendor.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 10})
			wantCode(t, err, store.ENOTFOUND)
			_, err = vendor.TestWebhook(ctx, w.ID)
			wantCode(t, err, store.ENOTFOUND)
		}
		got, err := vendor.FindWebhookByID(ctx, mine.ID)
		must(t, err, "FindWebhookByID")
		wantWebhook(t, got, mine)
		// The admin manages the vendor's webhook too.
		_, err = e.sc.UpdateWebhook(ctx, mine.ID, store.WebhookPatch{Description: ptr("checked by the admin")})
		must(t, err, "UpdateWebhook of a vendor's webhook by the admin")
		for _, w := range []*store.Webhook{house, theirs} {
			got, err := e.sc.FindWebhookByID(ctx, w.ID)
			must(t, err, "FindWebhookByID")
			wantWebhook(t, got, w)
		}
	})

	s.test(t, "ScopedDeliveries", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		var sent collector
		e.svc.SetDispatcher(sent.dispatch)
		w := e.subscribe(t, e.sc, "*")
		other := e.subscribe(t, e.sc, "*")
		statuses := []string{store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryPending, store.DeliveryDelivered, store.DeliveryCancelled}
		var ds []*store.Delivery
		for i, st := range statuses {
			d := newDelivery(w, e.clock.Now().Add(time.Duration(i)*time.Second))
			d.Status = st
			if st != store.DeliveryPending {
				d.NextAttemptAt = nil
			}
			ds = append(ds, d)
		}
		insertDeliveries(t, b, ds...)
		otherD := newDelivery(other, e.clock.Now())
		otherD.Status, otherD.NextAttemptAt = store.DeliveryDelivered, nil
		insertDeliveries(t, b, otherD)
		e.clock.Add(time.Minute)

		page, err := e.sc.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 2})
		must(t, err, "FindDeliveries")
		wantIDs(t, "first page", deliveryIDs(page.Data), []string{ds[4].ID, ds[3].ID})
		if !page.Pagination.HasMore || page.Pagination.Limit != 2 {
			t.Errorf("first page's pagination = %+v, want has_more", page.Pagination)
		}
		for _, d := range page.Data {
			if d.History == nil {
				t.Errorf("delivery %s has a nil history; want an empty list", d.ID)
			}
		}
		page, err = e.sc.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 2, Offset: 4})
		must(t, err, "FindDeliveries")
		wantIDs(t, "last page", deliveryIDs(page.Data), []string{ds[0].ID})
		if page.Pagination.HasMore {
			t.Errorf("last page's pagination = %+v, want no more", page.Pagination)
		}
		page, err = e.sc.FindDeliveries(ctx, w.ID, store.DeliveryDelivered, store.ListParams{Limit: 10})
		must(t, err, "FindDeliveries(delivered)")
		wantIDs(t, "delivered", deliveryIDs(page.Data), []string{ds[3].ID, ds[0].ID})
		_, err = e.sc.FindDeliveries(ctx, w.ID, "bogus", store.ListParams{Limit: 10})
		wantCode(t, err, store.EBADREQUEST)
		_, err = e.sc.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 0})
		wantCode(t, err, store.EBADREQUEST)
		_, err = e.sc.FindDeliveries(ctx, store.NewID(), "", store.ListParams{Limit: 10})
		wantCode(t, err, store.ENOTFOUND)

		// Replays: a new delivery of the same event, due now.
		_, err = e.sc.ReplayDelivery(ctx, w.ID, ds[2].ID)
		wantCode(t, err, store.ECONFLICT)
		for _, id := range []string{otherD.ID, store.NewID(), "nope"} {
			_, err = e.sc.ReplayDelivery(ctx, w.ID, id)
			wantCode(t, err, store.ENOTFOUND)
		}
		r1, err := e.sc.ReplayDelivery(ctx, w.ID, ds[1].ID)
		must(t, err, "ReplayDelivery")
		now := e.clock.Now()
		want := &store.Delivery{ID: r1.ID, WorkspaceID: e.wa.ID, WebhookID: w.ID, EventID: ds[1].EventID, EventType: ds[1].EventType,
			Payload: ds[1].Payload, Status: store.DeliveryPending, History: []store.Attempt{}, NextAttemptAt: &now,
			ReplayOf: ds[1].ID, CreatedAt: now, UpdatedAt: now}
		if r1.ID == ds[1].ID {
			t.Error("a replay has the id of the delivery it replays")
		}
		wantDelivery(t, r1, want)
		got, err := b.FindDeliveryByID(ctx, e.wa.ID, r1.ID)
		must(t, err, "FindDeliveryByID of the replay")
		wantDelivery(t, got, want)
		wantIDs(t, "dispatched", sent.ids(), []string{r1.ID})
		// A replay of a replay names the first delivery.
		done := *r1
		done.Status, done.Attempts, done.NextAttemptAt = store.DeliveryDelivered, 1, nil
		done.History = []store.Attempt{{At: now, StatusCode: 200, LatencyMS: 5}}
		must(t, e.svc.UpdateDelivery(ctx, &done, 0), "UpdateDelivery")
		e.clock.Add(time.Second)
		r2, err := e.sc.ReplayDelivery(ctx, w.ID, r1.ID)
		must(t, err, "ReplayDelivery of a replay")
		if r2.ReplayOf != ds[1].ID || r2.EventID != ds[1].EventID {
			t.Errorf("replay of a replay: replay_of %q event %q, want %q and %q", r2.ReplayOf, r2.EventID, ds[1].ID, ds[1].EventID)
		}
		page, err = e.sc.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 2})
		must(t, err, "FindDeliveries")
		wantIDs(t, "newest deliveries", deliveryIDs(page.Data), []string{r2.ID, r1.ID})

		// A test ping, whatever the webhook's status.
		_, err = e.sc.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: ptr(false)})
		must(t, err, "UpdateWebhook")
		ping, err := e.sc.TestWebhook(ctx, w.ID)
		must(t, err, "TestWebhook")
		if ping.EventType != store.EventPing || ping.Status != store.DeliveryPending || ping.WebhookID != w.ID || ping.ReplayOf != "" {
			t.Errorf("ping delivery = %+v", ping)
		}
		var ev map[string]any
		must(t, json.Unmarshal(ping.Payload, &ev), "decode the ping")
		if ev["id"] != ping.EventID || ev["type"] != store.EventPing || ev["workspace_id"] != e.wa.ID {
			t.Errorf("ping payload = %s", ping.Payload)
		}
		if data, _ := ev["data"].(map[string]any); data["webhook_id"] != w.ID {
			t.Errorf("ping data = %v, want the webhook id", ev["data"])
		}
		got, err = b.FindDeliveryByID(ctx, e.wa.ID, ping.ID)
		must(t, err, "FindDeliveryByID of the ping")
		wantDelivery(t, got, ping)
		wantIDs(t, "dispatched", sent.ids(), []string{r1.ID, r2.ID, ping.ID})
	})

	s.test(t, "FanOut", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		leadsOnly := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "leads",
			Scopes: scopes("read:leads", "write:webhooks")}).p)
		vendor := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "Vendor XYZ",
			Scopes: scopes("read:leads", "write:webhooks"), Filter: vendorFilter}).p)

		all := e.subscribe(t, e.sc, "*")
		deals := e.subscribe(t, e.sc, "deal.*")
		created := e.subscribe(t, e.sc, "lead.created", "deal.updated")
		off := e.subscribe(t, e.sc, "*")
		_, err := e.sc.UpdateWebhook(ctx, off.ID, store.WebhookPatch{Enabled: ptr(false)})
		must(t, err, "UpdateWebhook")
		disabled := e.subscribe(t, e.sc, "*")
		if done, err := b.DisableWebhook(ctx, e.wa.ID, disabled.ID, "failing", e.clock.Now(), nil); err != nil || !done {
			t.Fatalf("DisableWebhook = %v, %v", done, err)
		}
		expired, _, err := e.sc.CreateWebhook(ctx, store.WebhookInput{URL: hookURL, Events: []string{"*"}, ExpiresAt: ptr(e.clock.Now().Add(time.Hour))})
		must(t, err, "CreateWebhook")
		failing := e.subscribe(t, e.sc, "lead.*")
		must(t, b.SetWebhookFailing(ctx, e.wa.ID, failing.ID, ptr(e.clock.Now())), "SetWebhookFailing")
		leads := e.subscribe(t, leadsOnly, "*")
		mine := e.subscribe(t, vendor, "lead.*")
		away := e.subscribe(t, e.scB, "*")
		e.clock.Add(2 * time.Hour) // expired is now past its expiry
		drainEvents(t, b)

		// The writes, through the API's operations.
		lead := func(name, source string) *store.Record {
			t.Helper()
			in := map[string]any{"name": name}
			if source != "" {
				in["source"] = source
			}
			rec, err := e.sc.CreateRecord(ctx, store.Leads, in)
			must(t, err, "CreateRecord")
			e.clock.Add(time.Second)
			return rec
		}
		vLead := lead("Mine", vendorSource)
		oLead := lead("Theirs", "Vendor ABC")
		deal, err := e.sc.CreateRecord(ctx, store.Deals, map[string]any{"name": "Big", "value": 10.0})
		must(t, err, "CreateRecord")
		e.clock.Add(time.Second)
		_, err = e.sc.UpdateRecord(ctx, store.Leads, vLead.ID, map[string]any{"status": "Qualified"})
		must(t, err, "UpdateRecord")
		e.clock.Add(time.Second)
		_, err = e.sc.UpdateRecord(ctx, store.Deals, deal.ID, map[string]any{"value": 20.0})
		must(t, err, "UpdateRecord")
		e.clock.Add(time.Second)
		must(t, e.sc.DeleteRecord(ctx, store.Leads, oLead.ID), "DeleteRecord")
		e.clock.Add(time.Second)
		must(t, e.sc.DeleteRecord(ctx, store.Leads, vLead.ID), "DeleteRecord")
		e.clock.Add(time.Second)
		_, err = e.scB.CreateRecord(ctx, store.Leads, map[string]any{"name": "Elsewhere", "source": vendorSource})
		must(t, err, "CreateRecord in B")
		e.clock.Add(time.Second)

		evs, err := e.svc.ClaimEvents(ctx, 100)
		must(t, err, "ClaimEvents")
		wantIDs(t, "event types", eventTypes(evs), []string{"lead.created", "lead.created", "deal.created", "lead.updated",
			"deal.updated", "lead.deleted", "lead.deleted", "lead.created"})
		if len(evs) != 8 {
			t.FailNow()
		}
		ds, err := e.svc.FanOut(ctx, evs)
		must(t, err, "FanOut")
		now := e.clock.Now()
		// Which event reached which subscription, by index into evs.
		want := map[string][]int{
			all.ID:     {0, 1, 2, 3, 4, 5, 6},
			deals.ID:   {2, 4},
			created.ID: {0, 1, 4},
			failing.ID: {0, 1, 3, 5, 6},
			leads.ID:   {0, 1, 3, 5, 6},
			mine.ID:    {0, 3, 6},
			away.ID:    {7},
		}
		byID := map[string]store.Event{}
		for _, ev := range evs {
			byID[ev.ID] = ev
		}
		got := map[string][]int{}
		for _, d := range ds {
			ev, ok := byID[d.EventID]
			if !ok {
				t.Errorf("delivery %s of an unknown event %s", d.ID, d.EventID)
				continue
			}
			got[d.WebhookID] = append(got[d.WebhookID], slices.IndexFunc(evs, func(e store.Event) bool { return e.ID == ev.ID }))
			payload, err := json.Marshal(ev)
			must(t, err, "marshal the event")
			wantDelivery(t, d, &store.Delivery{ID: store.FanOutDeliveryID(ev.ID, d.WebhookID), WorkspaceID: ev.WorkspaceID,
				WebhookID: d.WebhookID, EventID: ev.ID, EventType: ev.Type, Payload: payload, Status: store.DeliveryPending,
				History: []store.Attempt{}, NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now})
		}
		for _, w := range []*store.Webhook{off, disabled, expired} {
			if len(got[w.ID]) != 0 {
				t.Errorf("webhook %s (%s) got events %v, want none", w.ID, w.Description, got[w.ID])
			}
		}
		for id, idx := range want {
			slices.Sort(got[id])
			if !slices.Equal(got[id], idx) {
				t.Errorf("webhook %s got events %v, want %v", id, got[id], idx)
			}
		}
		// The deliveries are stored.
		for id, idx := range want {
			ws := e.wa.ID
			if id == away.ID {
				ws = e.wb.ID
			}
			stored, err := b.FindDeliveries(ctx, ws, id, store.DeliveryQuery{Limit: 100})
			must(t, err, "FindDeliveries")
			if len(stored) != len(idx) {
				t.Errorf("webhook %s has %d stored deliveries, want %d", id, len(stored), len(idx))
			}
		}

		// Fanning out again stores nothing new and keeps what happened since.
		sent := ds[0]
		done := *sent
		done.Status, done.Attempts, done.NextAttemptAt = store.DeliveryDelivered, 1, nil
		must(t, e.svc.UpdateDelivery(ctx, &done, 0), "UpdateDelivery")
		e.clock.Add(time.Minute)
		again, err := e.svc.FanOut(ctx, evs)
		must(t, err, "FanOut again")
		if !slices.Equal(deliveryIDs(again), deliveryIDs(ds)) {
			t.Errorf("FanOut again returned deliveries %q, want %q", deliveryIDs(again), deliveryIDs(ds))
		}
		stored, err := b.FindDeliveryByID(ctx, sent.WorkspaceID, sent.ID)
		must(t, err, "FindDeliveryByID")
		if stored.Status != store.DeliveryDelivered || stored.Attempts != 1 {
			t.Errorf("a delivered delivery fanned out again is %s after %d attempts", stored.Status, stored.Attempts)
		}
		total := 0
		for id := range want {
			ws := e.wa.ID
			if id == away.ID {
				ws = e.wb.ID
			}
			list, err := b.FindDeliveries(ctx, ws, id, store.DeliveryQuery{Limit: 100})
			must(t, err, "FindDeliveries")
			total += len(list)
		}
		if total != len(ds) {
			t.Errorf("%d deliveries stored after fanning out twice, want %d", total, len(ds))
		}
		nothing, err := e.svc.FanOut(ctx, nil)
		if err != nil || len(nothing) != 0 {
			t.Errorf("FanOut(nil) = %d deliveries, %v", len(nothing), err)
		}
	})

	s.test(t, "FanOutKeyEvents", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		vendorAdmin := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "Vendor XYZ admin",
			Scopes: scopes("admin:keys", "read:leads", "write:webhooks"), Filter: vendorFilter}).p)
		noAdmin := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "no admin",
			Scopes: scopes("read:leads", "write:webhooks")}).p)
		admin := e.subscribe(t, e.sc, "api_key.*")
		vendor := e.subscribe(t, vendorAdmin, "api_key.created", "api_key.revoked", "api_key.expiring")
		blind := e.subscribe(t, noAdmin, "*")
		away := e.subscribe(t, e.scB, "*")
		drainEvents(t, b)

		plain, _, err := e.svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: e.wa.ID, Name: "plain", Scopes: scopes("read:leads")})
		must(t, err, "CreateAPIKey")
		e.clock.Add(time.Second)
		filtered, _, err := e.sc.CreateAPIKey(ctx, store.KeyInput{Name: "filtered", Scopes: scopes("read:leads"), Filter: vendorFilter})
		must(t, err, "CreateAPIKey")
		e.clock.Add(time.Second)
		_, err = e.sc.RevokeAPIKey(ctx, filtered.ID)
		must(t, err, "RevokeAPIKey")
		e.clock.Add(time.Second)
		soon, _, err := vendorAdmin.CreateAPIKey(ctx, store.KeyInput{Name: "soon", Scopes: scopes("read:leads"),
			ExpiresAt: ptr(e.clock.Now().Add(3 * 24 * time.Hour))})
		must(t, err, "CreateAPIKey")
		e.clock.Add(time.Second)
		n, err := e.svc.AnnounceExpiringKeys(ctx)
		must(t, err, "AnnounceExpiringKeys")
		if n != 1 {
			t.Errorf("AnnounceExpiringKeys announced %d keys, want 1", n)
		}
		if n, err := e.svc.AnnounceExpiringKeys(ctx); err != nil || n != 0 {
			t.Errorf("AnnounceExpiringKeys again announced %d keys (%v), want 0", n, err)
		}

		evs, err := e.svc.ClaimEvents(ctx, 100)
		must(t, err, "ClaimEvents")
		wantIDs(t, "event types", eventTypes(evs), []string{"api_key.created", "api_key.created", "api_key.revoked",
			"api_key.created", "api_key.expiring"})
		if len(evs) != 5 {
			t.FailNow()
		}
		for i, id := range []string{plain.ID, filtered.ID, filtered.ID, soon.ID, soon.ID} {
			var data map[string]any
			must(t, json.Unmarshal(evs[i].Data, &data), "decode a key event")
			if data["id"] != id || evs[i].WorkspaceID != e.wa.ID {
				t.Errorf("event %d (%s) is about key %v in %s, want %s in workspace A", i, evs[i].Type, data["id"], evs[i].WorkspaceID, id)
			}
		}
		ds, err := e.svc.FanOut(ctx, evs)
		must(t, err, "FanOut")
		got := map[string][]int{}
		for _, d := range ds {
			got[d.WebhookID] = append(got[d.WebhookID], slices.IndexFunc(evs, func(e store.Event) bool { return e.ID == d.EventID }))
		}
		want := map[string][]int{admin.ID: {0, 1, 2, 3, 4}, vendor.ID: {1, 2, 3, 4}}
		for _, w := range []*store.Webhook{admin, vendor, blind, away} {
			slices.Sort(got[w.ID])
			if !slices.Equal(got[w.ID], want[w.ID]) {
				t.Errorf("webhook %s got key events %v, want %v", w.ID, got[w.ID], want[w.ID])
			}
		}
	})

	s.test(t, "WorkerOperations", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		w := e.subscribe(t, e.sc, "*")
		wB := e.subscribe(t, e.scB, "*")
		d := newDelivery(w, e.clock.Now())
		dB := newDelivery(wB, e.clock.Now().Add(time.Second))
		insertDeliveries(t, b, d, dB)

		gotD, gotW, err := e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		must(t, err, "FindDelivery")
		wantDelivery(t, gotD, d)
		wantWebhook(t, gotW, w)
		if gotW.Status != store.WebhookActive {
			t.Errorf("FindDelivery's webhook has status %q, want active", gotW.Status)
		}
		_, _, err = e.svc.FindDelivery(ctx, e.wb.ID, d.ID)
		wantCode(t, err, store.ENOTFOUND)

		e.clock.Add(time.Minute)
		due, err := e.svc.DueDeliveries(ctx, e.clock.Now(), 10)
		must(t, err, "DueDeliveries")
		wantIDs(t, "due deliveries", deliveryIDs(due), []string{d.ID, dB.ID})

		// An attempt recorded through the service stamps updated_at.
		next := *d
		next.Attempts, next.NextAttemptAt = 1, ptr(e.clock.Now().Add(time.Minute))
		next.History = []store.Attempt{{At: e.clock.Now(), StatusCode: 502, LatencyMS: 40, Error: "HTTP 502"}}
		must(t, e.svc.UpdateDelivery(ctx, &next, 0), "UpdateDelivery")
		wantTime(t, "updated_at after UpdateDelivery", next.UpdatedAt, e.clock.Now())
		wantStale(t, e.svc.UpdateDelivery(ctx, &next, 0), "UpdateDelivery with old attempts")
		gotD, _, err = e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		must(t, err, "FindDelivery")
		wantDelivery(t, gotD, &next)

		// A failure streak, ended by a success, then one that disables.
		disabled, err := e.svc.WebhookFailed(ctx, w, time.Hour, "Deliveries have failed for an hour.")
		must(t, err, "WebhookFailed")
		_, gotW, err = e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		must(t, err, "FindDelivery")
		if disabled || gotW.Status != store.WebhookFailing || gotW.FailingSince == nil || !gotW.FailingSince.Equal(e.clock.Now()) {
			t.Errorf("after a failure: disabled %v, webhook %+v", disabled, gotW)
		}
		must(t, e.svc.WebhookSucceeded(ctx, gotW), "WebhookSucceeded")
		_, gotW, err = e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		must(t, err, "FindDelivery")
		if gotW.Status != store.WebhookActive || gotW.FailingSince != nil {
			t.Errorf("after a success: webhook %+v", gotW)
		}
		_, err = e.svc.WebhookFailed(ctx, gotW, time.Hour, "unused")
		must(t, err, "WebhookFailed")
		start := e.clock.Now()
		_, gotW, err = e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		must(t, err, "FindDelivery")
		e.clock.Add(30 * time.Minute)
		disabled, err = e.svc.WebhookFailed(ctx, gotW, time.Hour, "unused")
		must(t, err, "WebhookFailed")
		_, gotW, err = e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		must(t, err, "FindDelivery")
		if disabled || !gotW.Enabled || gotW.FailingSince == nil || !gotW.FailingSince.Equal(start) {
			t.Errorf("after failing for 30 minutes: disabled %v, webhook %+v", disabled, gotW)
		}
		e.clock.Add(31 * time.Minute)
		disabled, err = e.svc.WebhookFailed(ctx, gotW, time.Hour, "Deliveries have failed for an hour.")
		must(t, err, "WebhookFailed")
		got, err := e.sc.FindWebhookByID(ctx, w.ID)
		must(t, err, "FindWebhookByID")
		if !disabled || got.Enabled || got.Status != store.WebhookDisabled || got.DisabledReason != "Deliveries have failed for an hour." {
			t.Errorf("after failing for 61 minutes: disabled %v, webhook %+v", disabled, got)
		}

		// 410 Gone: the subscription and its deliveries go.
		must(t, e.svc.RemoveWebhook(ctx, got), "RemoveWebhook")
		_, err = e.sc.FindWebhookByID(ctx, w.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, _, err = e.svc.FindDelivery(ctx, e.wa.ID, d.ID)
		wantCode(t, err, store.ENOTFOUND)
		must(t, e.svc.RemoveWebhook(ctx, got), "RemoveWebhook again")
		// A delivery whose subscription is gone comes back without one.
		orphan := newDelivery(w, e.clock.Now())
		insertDeliveries(t, b, orphan)
		gotD, gotW, err = e.svc.FindDelivery(ctx, e.wa.ID, orphan.ID)
		must(t, err, "FindDelivery of an orphan")
		if gotD == nil || gotW != nil {
			t.Errorf("FindDelivery of a delivery without its webhook = %v, %v; want the delivery and no webhook", gotD, gotW)
		}

		// Retention.
		doneB := *dB
		doneB.Status, doneB.Attempts, doneB.NextAttemptAt = store.DeliveryDelivered, 1, nil
		must(t, e.svc.UpdateDelivery(ctx, &doneB, 0), "UpdateDelivery")
		n, err := e.svc.DeleteDeliveriesBefore(ctx, e.clock.Now())
		must(t, err, "DeleteDeliveriesBefore")
		if n != 1 {
			t.Errorf("DeleteDeliveriesBefore deleted %d, want 1", n)
		}
	})

	s.test(t, "ServiceOutbox", func(t *testing.T, b store.Backend) {
		e := newHookEnv(t, b)
		ctx := t.Context()
		drainEvents(t, b)
		select {
		case <-e.svc.Changes():
		default:
		}
		rec, err := e.sc.CreateRecord(ctx, store.Accounts, map[string]any{"name": "Acme"})
		must(t, err, "CreateRecord")
		select {
		case <-e.svc.Changes():
		default:
			t.Error("no change signalled after a write")
		}

		evs, err := e.svc.ClaimEvents(ctx, 10)
		must(t, err, "ClaimEvents")
		if len(evs) != 1 {
			t.Fatalf("claimed %d events, want 1", len(evs))
		}
		wantEvent(t, evs[0], recordEvent(t, rec, store.KindCreated))
		claimAt := func(what string, want int) {
			t.Helper()
			evs, err := e.svc.ClaimEvents(ctx, 10)
			must(t, err, "ClaimEvents")
			if len(evs) != want {
				t.Errorf("%s: claimed %d events, want %d", what, len(evs), want)
			}
		}
		claimAt("right after the claim", 0)
		e.clock.Add(store.EventClaimTimeout - time.Second)
		claimAt("before the claim timeout", 0)
		e.clock.Add(2 * time.Second)
		claimAt("after the claim timeout", 1)
		must(t, e.svc.AckEvents(ctx, eventIDsOf(evs)), "AckEvents")
		must(t, e.svc.AckEvents(ctx, nil), "AckEvents(nil)")
		e.clock.Add(time.Hour)
		claimAt("after the ack", 0)
	})
}

// isWebhookAction reports whether a is an operation on subscriptions.
func isWebhookAction(a store.Action) bool {
	switch a {
	case store.ActionListWebhooks, store.ActionGetWebhook, store.ActionCreateWebhook, store.ActionUpdateWebhook,
		store.ActionDeleteWebhook, store.ActionListDeliveries, store.ActionReplayDelivery, store.ActionTestWebhook:
		return true
	}
	return false
}

// webhookReach is the scope a key needs, besides the operation's, to manage
// the subscriptions of webhookTarget (whose events are note.*).
var webhookReach = store.ReadScope("notes")

// webhookTarget creates a subscription through full for a scope check of
// action a and returns its id, and for a replay "webhook id/delivery id" of
// a finished delivery.
func webhookTarget(t *testing.T, e *env, full *store.Scoped, a store.Action) string {
	t.Helper()
	w, _, err := full.CreateWebhook(t.Context(), store.WebhookInput{URL: hookURL, Events: []string{"note.*"}})
	must(t, err, "CreateWebhook")
	if a != store.ActionReplayDelivery {
		return w.ID
	}
	d, err := full.TestWebhook(t.Context(), w.ID)
	must(t, err, "TestWebhook")
	done := *d
	done.Status, done.Attempts, done.NextAttemptAt = store.DeliveryDelivered, 1, nil
	must(t, e.svc.UpdateDelivery(t.Context(), &done, 0), "UpdateDelivery")
	return w.ID + "/" + d.ID
}

// callWebhook runs a webhook operation for the scope checks; fresh returns
// what webhookTarget made.
func callWebhook(t *testing.T, sc *store.Scoped, op store.Operation, fresh func() string) error {
	t.Helper()
	ctx := t.Context()
	var err error
	switch op.Action {
	case store.ActionListWebhooks:
		_, err = sc.FindWebhooks(ctx)
	case store.ActionGetWebhook:
		_, err = sc.FindWebhookByID(ctx, fresh())
	case store.ActionCreateWebhook:
		_, _, err = sc.CreateWebhook(ctx, store.WebhookInput{URL: hookURL, Events: []string{"*"}})
		// A key with write:webhooks alone passes the scope check but can
		// receive no event, which CreateWebhook refuses as bad input.
		var se *store.Error
		if errors.As(err, &se) && se.Code == store.EBADREQUEST && se.Field == "events" && !receivesEvents(sc.Principal()) {
			err = nil
		}
	case store.ActionUpdateWebhook:
		_, err = sc.UpdateWebhook(ctx, fresh(), store.WebhookPatch{Description: ptr("changed")})
	case store.ActionDeleteWebhook:
		err = sc.DeleteWebhook(ctx, fresh())
	case store.ActionListDeliveries:
		_, err = sc.FindDeliveries(ctx, fresh(), "", store.ListParams{Limit: 10})
	case store.ActionReplayDelivery:
		hook, delivery, _ := strings.Cut(fresh(), "/")
		_, err = sc.ReplayDelivery(ctx, hook, delivery)
	case store.ActionTestWebhook:
		_, err = sc.TestWebhook(ctx, fresh())
	default:
		t.Fatalf("operation %s: %q is not a webhook action", op.Name, op.Action)
	}
	return err
}

// receivesEvents reports whether a subscription made by p could receive
// any event: p can read a resource or administers keys.
func receivesEvents(p store.Principal) bool {
	for _, t := range store.EventTypes() {
		if (&store.Webhook{Events: []string{"*"}, Scopes: p.Scopes}).Receives(t) {
			return true
		}
	}
	return false
}
