package mongo_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo"
	"github.com/hustack/hustack/store/mongo/mongotest"
)

func rawDoc(t *testing.T, db *mongo.DB, coll, id string) bson.M {
	t.Helper()
	var doc bson.M
	if err := db.Database().Collection(coll).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatalf("read stored %s %s: %v", coll, id, err)
	}
	return doc
}

// TestWebhookDocuments checks what a subscription's document holds as it
// changes: optional times are absent rather than null, the secret and
// filter survive updates, and deleting removes the deliveries too, also
// when the subscription is already gone.
func TestWebhookDocuments(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	ws := store.NewID()
	exp := base.Add(24 * time.Hour)
	w := &store.Webhook{ID: store.NewID(), WorkspaceID: ws, URL: "https://hooks.example.test/a",
		Events: []string{"deal.*"}, Enabled: true, ExpiresAt: &exp, Scopes: []store.Scope{"read:deals"},
		Filter: map[string]string{"region": "emea"}, APIKeyID: store.NewID(), Secret: store.GenerateWebhookSecret(),
		CreatedAt: base, UpdatedAt: base}
	if err := db.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateWebhook(ctx, w); store.ErrorCode(err) != store.ECONFLICT {
		t.Errorf("creating the same id again = %v, want conflict", err)
	}

	failing := base.Add(time.Minute)
	if err := db.SetWebhookFailing(ctx, ws, w.ID, &failing); err != nil {
		t.Fatal(err)
	}
	later := failing.Add(time.Minute)
	if err := db.SetWebhookFailing(ctx, ws, w.ID, &later); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindWebhookByID(ctx, ws, w.ID)
	if err != nil || got.FailingSince == nil || !got.FailingSince.Equal(failing) {
		t.Fatalf("failing_since after two failures = %v, %v; want the first, %v", got, err, failing)
	}

	upd := *got
	upd.URL, upd.Events, upd.FailingSince, upd.ExpiresAt = "https://hooks.example.test/b", []string{"*"}, nil, nil
	upd.Secret, upd.Filter = "changed", nil // neither is replaced by an update
	upd.UpdatedAt = base.Add(time.Hour)
	if err := db.UpdateWebhook(ctx, &upd, w.UpdatedAt); err != nil {
		t.Fatal(err)
	}
	raw := rawDoc(t, db, "webhooks", w.ID)
	if _, ok := raw["expires_at"]; ok {
		t.Errorf("stored webhook has expires_at after it was cleared: %v", raw)
	}
	// failing_since is the worker's: an update of an enabled subscription
	// leaves it.
	if _, ok := raw["failing_since"]; !ok {
		t.Errorf("an update removed failing_since: %v", raw)
	}
	got, err = db.FindWebhookByID(ctx, ws, w.ID)
	if err != nil || got.URL != upd.URL || !slices.Equal(got.Events, []string{"*"}) || got.Secret != w.Secret ||
		got.Filter["region"] != "emea" || !got.UpdatedAt.Equal(upd.UpdatedAt) || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("webhook after update = %+v, %v", got, err)
	}
	if _, err := db.FindWebhookByID(ctx, store.NewID(), w.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("webhook from another workspace = %v, want not_found", err)
	}
	other := upd
	other.WorkspaceID = store.NewID()
	if err := db.UpdateWebhook(ctx, &other, other.UpdatedAt); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("updating through another workspace = %v, want not_found", err)
	}

	now := base.Add(2 * time.Hour)
	d := &store.Delivery{ID: store.NewID(), WorkspaceID: ws, WebhookID: w.ID, EventID: store.NewID(),
		EventType: "deal.created", Payload: []byte(`{"id":"x"}`), Status: store.DeliveryPending,
		NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now}
	if err := db.InsertDeliveries(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteWebhook(ctx, ws, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindDeliveryByID(ctx, ws, d.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("delivery after its webhook was deleted = %v, want not_found", err)
	}
	orphan := *d
	orphan.ID = store.NewID()
	if err := db.InsertDeliveries(ctx, []*store.Delivery{&orphan}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteWebhook(ctx, ws, w.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("deleting again = %v, want not_found", err)
	}
	if _, err := db.FindDeliveryByID(ctx, ws, orphan.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("delivery left by an earlier delete = %v, want removed by deleting again", err)
	}
}

// TestDeliveryNextAttemptOnlyWhilePending checks that a finished delivery
// has no next_attempt_at in its document (the sparse index on it then holds
// pending deliveries only), that it is no longer due, and that retention
// removes it but not pending ones.
func TestDeliveryNextAttemptOnlyWhilePending(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	ws, hook := store.NewID(), store.NewID()
	var ds []*store.Delivery
	for i := range 3 {
		at := base.Add(time.Duration(i) * time.Minute)
		ds = append(ds, &store.Delivery{ID: store.NewID(), WorkspaceID: ws, WebhookID: hook, EventID: store.NewID(),
			EventType: "deal.created", Payload: []byte(`{}`), Status: store.DeliveryPending, History: []store.Attempt{},
			NextAttemptAt: &at, CreatedAt: at, UpdatedAt: at})
	}
	if err := db.InsertDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertDeliveries(ctx, ds); err != nil {
		t.Fatalf("inserting the same deliveries again = %v, want them skipped", err)
	}

	done := *ds[0]
	done.Status, done.Attempts, done.NextAttemptAt = store.DeliveryDelivered, 1, nil
	done.History = []store.Attempt{{At: base.Add(time.Second), StatusCode: 204, LatencyMS: 12}}
	done.UpdatedAt = base.Add(time.Second)
	if err := db.UpdateDelivery(ctx, &done, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateDelivery(ctx, &done, 0); err != store.ErrStale {
		t.Errorf("updating with an old attempt count = %v, want ErrStale", err)
	}
	ghost := done
	ghost.ID = store.NewID()
	if err := db.UpdateDelivery(ctx, &ghost, 0); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("updating an unknown delivery = %v, want not_found", err)
	}
	if raw := rawDoc(t, db, "webhook_deliveries", done.ID); raw["next_attempt_at"] != nil {
		t.Errorf("finished delivery stored with next_attempt_at: %v", raw)
	}
	got, err := db.FindDeliveryByID(ctx, ws, done.ID)
	if err != nil || got.Status != store.DeliveryDelivered || got.NextAttemptAt != nil || len(got.History) != 1 ||
		got.History[0].StatusCode != 204 || got.History[0].LatencyMS != 12 || string(got.Payload) != `{}` {
		t.Errorf("finished delivery read back = %+v, %v", got, err)
	}

	due, err := db.FindDueDeliveriesUnscoped(ctx, base.Add(time.Hour), 10)
	if err != nil || len(due) != 2 || due[0].ID != ds[1].ID || due[1].ID != ds[2].ID {
		t.Errorf("due deliveries = %v, %v; want the two pending ones, oldest first", due, err)
	}
	n, err := db.DeleteDeliveriesBefore(ctx, base.Add(time.Hour))
	if err != nil || n != 1 {
		t.Errorf("DeleteDeliveriesBefore = %d, %v; want 1 (the finished one)", n, err)
	}
	left, err := db.FindDeliveries(ctx, ws, hook, store.DeliveryQuery{Limit: 10})
	if err != nil || len(left) != 2 || left[0].ID != ds[2].ID {
		t.Errorf("deliveries left = %v, %v; want the two pending ones, newest first", left, err)
	}
}
