package mcp_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// webhook is a subscription as the webhook tools answer it.
type webhook struct {
	ID             string            `json:"id"`
	WorkspaceID    string            `json:"workspace_id"`
	URL            string            `json:"url"`
	Events         []string          `json:"events"`
	Description    string            `json:"description"`
	Enabled        bool              `json:"enabled"`
	Status         string            `json:"status"`
	DisabledReason string            `json:"disabled_reason"`
	Scopes         []string          `json:"scopes"`
	Filter         map[string]string `json:"filter"`
	ExpiresAt      *time.Time        `json:"expires_at"`
	Secret         *string           `json:"secret"`
}

// delivery is a delivery as the webhook tools answer it.
type delivery struct {
	ID               string  `json:"id"`
	WebhookID        string  `json:"webhook_id"`
	EventID          string  `json:"event_id"`
	EventType        string  `json:"event_type"`
	Status           string  `json:"status"`
	Attempts         int     `json:"attempts"`
	ReplayOf         *string `json:"replay_of"`
	LastResponseCode *int    `json:"last_response_code"`
	LastLatencyMS    *int64  `json:"last_latency_ms"`
}

var webhookTools = []string{"list_webhooks", "get_webhook", "create_webhook", "update_webhook", "delete_webhook",
	"list_webhook_deliveries", "replay_webhook_delivery", "test_webhook"}

// TestWebhookTools manages subscriptions through every client and
// transport: in process over HTTP (store.Scoped) and over stdio (the REST
// client).
func TestWebhookTools(t *testing.T) {
	for _, c := range connectors {
		t.Run(c.name, func(t *testing.T) {
			webhookToolsScenario(t, newEnv(t, store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true})), c)
		})
	}
}

func webhookToolsScenario(t *testing.T, e *env, c connector) {
	ctx := t.Context()

	// Only keys with the webhook scopes see the webhook tools, and calling
	// one without them is refused.
	notes := mustConnect(t, c, e, e.keys[keyNotes], protoModern)
	tools, err := notes.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range webhookTools {
		if slices.Contains(toolNames(tools), name) {
			t.Errorf("a key without the webhook scopes lists %s", name)
		}
	}
	if res, err := notes.CallTool(ctx, "list_webhooks", nil); err == nil && !res.IsError {
		t.Errorf("list_webhooks without read:webhooks succeeded: %s", res.Text)
	}
	_ = notes.Close()

	// A key that may read deals and manage webhooks, and nothing else.
	hooksKey := e.newKey(t, e.wsA.ID, "hooks", store.ReadScope("deals"), store.ScopeReadWebhooks, store.ScopeWriteWebhooks)
	s := mustConnect(t, c, e, hooksKey, protoModern)
	tools, err = s.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range webhookTools {
		if !slices.Contains(toolNames(tools), name) {
			t.Errorf("a key with the webhook scopes does not list %s", name)
		}
	}

	// Create: the secret comes back once; a repeat with the idempotency
	// key answers the same subscription without it.
	args := map[string]any{"url": "http://127.0.0.1:9/hooks", "events": []any{"deal.*", "deal.created"},
		"description": "deals to the warehouse", "idempotency_key": "subscribe-deals"}
	var created, again webhook
	call(t, s, "create_webhook", args, &created)
	if created.Secret == nil || !strings.HasPrefix(*created.Secret, store.SecretPrefix) {
		t.Fatalf("create_webhook: secret %v", created.Secret)
	}
	secret := *created.Secret
	if created.WorkspaceID != e.wsA.ID || created.URL != "http://127.0.0.1:9/hooks" || !slices.Equal(created.Events, []string{"deal.*", "deal.created"}) ||
		!slices.Equal(created.Scopes, []string{"read:deals"}) || created.Status != store.WebhookActive || !created.Enabled || created.Filter != nil {
		t.Errorf("create_webhook = %+v", created)
	}
	res := call(t, s, "create_webhook", args, &again)
	if again.ID != created.ID || again.Secret != nil || !res.Replayed || strings.Contains(res.Text, secret) {
		t.Errorf("repeated create_webhook: id %s, secret %v, replayed %v", again.ID, again.Secret, res.Replayed)
	}

	// List and get show it, never the secret.
	var list struct{ Data []webhook }
	res = call(t, s, "list_webhooks", nil, &list)
	if len(list.Data) != 1 || list.Data[0].ID != created.ID || strings.Contains(res.Text, secret) || strings.Contains(res.Text, `"secret"`) {
		t.Errorf("list_webhooks = %s", res.Text)
	}
	var got webhook
	res = call(t, s, "get_webhook", map[string]any{"id": created.ID}, &got)
	if got.ID != created.ID || got.Description != "deals to the warehouse" || strings.Contains(res.Text, secret) {
		t.Errorf("get_webhook = %s", res.Text)
	}

	// Bad input is a clear error, with REST's messages.
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string // in the message
	}{
		{"create_webhook", map[string]any{"events": []any{"*"}}, "url: is required"},
		{"create_webhook", map[string]any{"url": "http://127.0.0.1:9/x"}, "events: is required"},
		{"create_webhook", map[string]any{"url": "http://127.0.0.1:9/x", "events": "*"}, "events: must be an array"},
		{"create_webhook", map[string]any{"url": "http://127.0.0.1:9/x", "events": []any{"account.created"}}, "needs the scope read:accounts"},
		{"create_webhook", map[string]any{"url": "http://127.0.0.1:9/x", "events": []any{"deal.won"}}, `unknown event type "deal.won"`},
		{"create_webhook", map[string]any{"url": "ftp://127.0.0.1/x", "events": []any{"*"}}, "url: must use https, not ftp"},
		{"create_webhook", map[string]any{"url": "http://127.0.0.1:9/x", "events": []any{"*"}, "expires_at": "2020-01-01T00:00:00Z"}, "must be in the future"},
		{"create_webhook", map[string]any{"url": "http://127.0.0.1:9/x", "events": []any{"*"}, "secret": "whsec_mine"}, "Unknown argument"},
		{"update_webhook", map[string]any{"id": created.ID, "url": nil}, "url: cannot be null"},
		{"update_webhook", map[string]any{"id": created.ID, "enabled": "no"}, "enabled: must be true or false"},
		{"update_webhook", map[string]any{"id": created.ID, "events": []any{}}, "events: at least one"},
		{"list_webhook_deliveries", map[string]any{"id": created.ID, "status": "lost"}, "status: must be one of"},
		{"list_webhook_deliveries", map[string]any{"id": created.ID, "limit": 0}, "limit"},
		{"get_webhook", map[string]any{}, "id: is required"},
	} {
		if code, msg := callError(t, s, tc.tool, tc.args); code != store.EBADREQUEST || !contains(msg, tc.want) {
			t.Errorf("%s %v: %s %q, want bad_request naming %q", tc.tool, tc.args, code, msg, tc.want)
		}
	}

	// Update: turn it off and on, change its events.
	var updated webhook
	call(t, s, "update_webhook", map[string]any{"id": created.ID, "enabled": false}, &updated)
	if updated.Enabled || updated.Status != store.WebhookDisabled || updated.DisabledReason != store.DisabledByClient {
		t.Errorf("update_webhook enabled false = %+v", updated)
	}
	call(t, s, "update_webhook", map[string]any{"id": created.ID, "enabled": true, "events": []any{"*"}, "description": ""}, &updated)
	if !updated.Enabled || updated.Status != store.WebhookActive || !slices.Equal(updated.Events, []string{"*"}) || updated.Description != "" {
		t.Errorf("update_webhook enabled true = %+v", updated)
	}

	// Test, deliveries and replay.
	var ping delivery
	call(t, s, "test_webhook", map[string]any{"id": created.ID}, &ping)
	if ping.EventType != store.EventPing || ping.Status != store.DeliveryPending || ping.WebhookID != created.ID || ping.ReplayOf != nil {
		t.Errorf("test_webhook = %+v", ping)
	}
	var deliveries struct{ Data []delivery }
	call(t, s, "list_webhook_deliveries", map[string]any{"id": created.ID, "status": "pending", "limit": 10}, &deliveries)
	if len(deliveries.Data) != 1 || deliveries.Data[0].ID != ping.ID {
		t.Errorf("list_webhook_deliveries = %+v", deliveries.Data)
	}
	if code, _ := callError(t, s, "replay_webhook_delivery", map[string]any{"id": created.ID, "delivery_id": ping.ID}); code != store.ECONFLICT {
		t.Errorf("replay of a pending delivery: %s, want conflict", code)
	}
	d, _, err := e.svc.FindDelivery(ctx, e.wsA.ID, ping.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.Status, d.Attempts, d.NextAttemptAt = store.DeliveryFailed, 1, nil
	d.History = []store.Attempt{{At: time.Now().UTC().Truncate(time.Millisecond), StatusCode: 404, LatencyMS: 9, Error: "HTTP 404 Not Found: not retried"}}
	if err := e.svc.UpdateDelivery(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	call(t, s, "list_webhook_deliveries", map[string]any{"id": created.ID, "status": "failed"}, &deliveries)
	if len(deliveries.Data) != 1 || deliveries.Data[0].LastResponseCode == nil || *deliveries.Data[0].LastResponseCode != 404 ||
		deliveries.Data[0].LastLatencyMS == nil || *deliveries.Data[0].LastLatencyMS != 9 {
		t.Errorf("failed deliveries = %+v", deliveries.Data)
	}
	var replayed delivery
	call(t, s, "replay_webhook_delivery", map[string]any{"id": created.ID, "delivery_id": ping.ID}, &replayed)
	if replayed.ReplayOf == nil || *replayed.ReplayOf != ping.ID || replayed.EventID != ping.EventID || replayed.ID == ping.ID {
		t.Errorf("replay_webhook_delivery = %+v", replayed)
	}
	_ = s.Close() // one stdio session at a time

	// Another workspace's key: not found, whatever the tool.
	other := mustConnect(t, c, e, e.keys[keyOther], protoModern)
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"get_webhook", map[string]any{"id": created.ID}},
		{"update_webhook", map[string]any{"id": created.ID, "enabled": false}},
		{"delete_webhook", map[string]any{"id": created.ID}},
		{"test_webhook", map[string]any{"id": created.ID}},
		{"list_webhook_deliveries", map[string]any{"id": created.ID}},
		{"replay_webhook_delivery", map[string]any{"id": created.ID, "delivery_id": ping.ID}},
	} {
		if code, _ := callError(t, other, tc.tool, tc.args); code != store.ENOTFOUND {
			t.Errorf("%s of another workspace's subscription: %s, want not_found", tc.tool, code)
		}
	}
	var otherList struct{ Data []webhook }
	call(t, other, "list_webhooks", nil, &otherList)
	if len(otherList.Data) != 0 {
		t.Errorf("workspace B lists %+v", otherList.Data)
	}
	_ = other.Close()

	// A subscription to account events, which the deals key cannot read:
	// that key neither lists it nor reaches it by id.
	p, err := e.svc.Authenticate(ctx, e.keys[keyFull])
	if err != nil {
		t.Fatal(err)
	}
	broader, _, err := e.svc.Scoped(p).CreateWebhook(ctx, store.WebhookInput{URL: "http://127.0.0.1:9/accounts", Events: []string{"account.*"}})
	if err != nil {
		t.Fatal(err)
	}
	s = mustConnect(t, c, e, hooksKey, protoModern)
	call(t, s, "list_webhooks", nil, &list)
	if len(list.Data) != 1 || list.Data[0].ID != created.ID {
		t.Errorf("the deals key lists %+v, want only its own subscription", list.Data)
	}
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"get_webhook", map[string]any{"id": broader.ID}},
		{"update_webhook", map[string]any{"id": broader.ID, "url": "http://127.0.0.1:9/mine"}},
		{"delete_webhook", map[string]any{"id": broader.ID}},
		{"test_webhook", map[string]any{"id": broader.ID}},
		{"list_webhook_deliveries", map[string]any{"id": broader.ID}},
	} {
		if code, _ := callError(t, s, tc.tool, tc.args); code != store.ENOTFOUND {
			t.Errorf("%s of a subscription to events the key cannot read: %s, want not_found", tc.tool, code)
		}
	}
	if w, err := e.svc.Scoped(p).FindWebhookByID(ctx, broader.ID); err != nil || w.URL != "http://127.0.0.1:9/accounts" {
		t.Errorf("the account subscription after the deals key's calls: %+v, %v", w, err)
	}

	// Delete: gone, with its deliveries.
	var gone struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	call(t, s, "delete_webhook", map[string]any{"id": created.ID}, &gone)
	if gone.ID != created.ID || !gone.Deleted {
		t.Errorf("delete_webhook = %+v", gone)
	}
	for _, tool := range []string{"get_webhook", "list_webhook_deliveries", "delete_webhook"} {
		if code, _ := callError(t, s, tool, map[string]any{"id": created.ID}); code != store.ENOTFOUND {
			t.Errorf("%s after delete_webhook: %s, want not_found", tool, code)
		}
	}
}
