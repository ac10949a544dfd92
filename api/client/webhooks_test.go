package client_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
)

func TestWebhooks(t *testing.T) {
	e := newEnv(t, store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true}))
	ctx := t.Context()
	admin, adminKey := e.client(t, e.wsA, "admin", store.AllScopes()...)
	other, _ := e.client(t, e.wsB, "other", store.AllScopes()...)

	exp := time.Now().Add(48 * time.Hour).Truncate(time.Millisecond)
	in := store.WebhookInput{URL: "http://127.0.0.1:9/hooks", Events: []string{"lead.*"}, Description: "leads", ExpiresAt: &exp}
	w, secret, err := admin.CreateWebhook(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, store.SecretPrefix) || w.ID == "" || w.WorkspaceID != e.wsA.ID || w.APIKeyID != adminKey.ID ||
		!slices.Equal(w.Events, []string{"lead.*"}) || w.ExpiresAt == nil || !w.ExpiresAt.Equal(exp) || w.Secret != "" {
		t.Fatalf("CreateWebhook = %+v, secret %q", w, secret)
	}
	// The same Idempotency-Key: the same subscription, the secret not shown again.
	ictx := client.WithIdempotencyKey(ctx, "subscribe-leads")
	first, s1, err := admin.CreateWebhook(ictx, in)
	if err != nil || s1 == "" {
		t.Fatalf("CreateWebhook with a key: %v, secret %q", err, s1)
	}
	again, s2, err := admin.CreateWebhook(client.WithIdempotencyKey(ctx, "subscribe-leads"), in)
	if err != nil || again.ID != first.ID || s2 != "" {
		t.Errorf("CreateWebhook repeated: %+v, secret %q, %v", again, s2, err)
	}
	if _, _, err := admin.CreateWebhook(ctx, store.WebhookInput{URL: "http://127.0.0.1:9/x"}); store.ErrorCode(err) != store.EBADREQUEST ||
		!strings.Contains(store.ErrorMessage(err), "events") {
		t.Errorf("CreateWebhook without events: %v, want bad_request about events", err)
	}

	ws, err := admin.FindWebhooks(ctx)
	if err != nil || len(ws) != 2 || ws[0].ID != w.ID || ws[1].ID != first.ID {
		t.Errorf("FindWebhooks = %v, %v", ws, err)
	}
	if got, err := admin.FindWebhookByID(ctx, w.ID); err != nil || got.URL != in.URL || got.Status != store.WebhookActive {
		t.Errorf("FindWebhookByID = %+v, %v", got, err)
	}
	if _, err := other.FindWebhookByID(ctx, w.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("FindWebhookByID of another workspace's: %v, want not_found", err)
	}

	off, desc := false, ""
	got, err := admin.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Enabled: &off, Description: &desc, Events: []string{"*"}})
	if err != nil || got.Enabled || got.Status != store.WebhookDisabled || got.Description != "" || !slices.Equal(got.Events, []string{"*"}) ||
		got.URL != in.URL {
		t.Errorf("UpdateWebhook = %+v, %v", got, err)
	}
	if _, err := admin.UpdateWebhook(ctx, w.ID, store.WebhookPatch{Events: []string{}}); store.ErrorCode(err) != store.EBADREQUEST {
		t.Errorf("UpdateWebhook with no events: %v, want bad_request", err)
	}

	ping, err := admin.TestWebhook(ctx, w.ID)
	if err != nil || ping.EventType != store.EventPing || ping.Status != store.DeliveryPending || ping.WebhookID != w.ID {
		t.Fatalf("TestWebhook = %+v, %v", ping, err)
	}
	page, err := admin.FindDeliveries(ctx, w.ID, store.DeliveryPending, store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != ping.ID || page.Pagination.Limit != 10 {
		t.Errorf("FindDeliveries = %+v, %v", page, err)
	}
	if _, err := admin.ReplayDelivery(ctx, w.ID, ping.ID); store.ErrorCode(err) != store.ECONFLICT {
		t.Errorf("ReplayDelivery of a pending delivery: %v, want conflict", err)
	}
	d, _, err := e.svc.FindDelivery(ctx, e.wsA.ID, ping.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.Status, d.Attempts, d.NextAttemptAt = store.DeliveryDelivered, 1, nil
	d.History = []store.Attempt{{At: time.Now().UTC().Truncate(time.Millisecond), StatusCode: 204, LatencyMS: 4}}
	if err := e.svc.UpdateDelivery(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	replay, err := admin.ReplayDelivery(ctx, w.ID, ping.ID)
	if err != nil || replay.ReplayOf != ping.ID || replay.EventID != ping.EventID || replay.ID == ping.ID {
		t.Errorf("ReplayDelivery = %+v, %v", replay, err)
	}
	page, err = admin.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 1, Offset: 1})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != ping.ID || page.Data[0].Attempts != 1 || len(page.Data[0].History) != 1 ||
		page.Data[0].History[0].StatusCode != 204 {
		t.Errorf("FindDeliveries, second page = %+v, %v", page, err)
	}

	if err := other.DeleteWebhook(ctx, w.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("DeleteWebhook of another workspace's: %v, want not_found", err)
	}
	if err := admin.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.FindDeliveries(ctx, w.ID, "", store.ListParams{Limit: 10}); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("FindDeliveries after DeleteWebhook: %v, want not_found", err)
	}

	reader, _ := e.client(t, e.wsA, "reader", store.ScopeReadWebhooks, store.ReadScope("leads"))
	if _, _, err := reader.CreateWebhook(ctx, in); store.ErrorCode(err) != store.EFORBIDDEN {
		t.Errorf("CreateWebhook without write:webhooks: %v, want forbidden", err)
	}
}
