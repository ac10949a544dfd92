package mcp

import (
	"context"
	"strings"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// The webhook tools (scopes read:webhooks and write:webhooks). The result
// kept for a create_webhook call's idempotency_key never holds the signing
// secret (withoutSecret), so a replay shows secret null.

// eventsSentence tells an agent what a subscription can receive.
const eventsSentence = "Event types: {account,contact,lead,deal,activity,note}.{created,updated,deleted} for records " +
	"(each needs the read scope of its resource, such as read:deals) and api_key.{created,revoked,expiring} for API keys " +
	"(needs admin:keys); \"account.*\" means the three account events and \"*\" every event this key's scopes allow."

// webhookTool returns the input and output schemas and the description of
// a webhook operation's tool.
func webhookTool(op store.Operation) (in, out schema, desc string, ok bool) {
	idArg := func(d string) prop { return prop{"id", with(str(d), "format", "uuid")} }
	switch op.Action {
	case store.ActionListWebhooks:
		in = object(nil)
		out = object(props{{"data", arrayOf(webhookSchema().json())}}, "data")
		desc = op.Summary + "\n\nReturns {data: [subscription]}, oldest first: the subscriptions of this workspace whose record " +
			"filter includes this key's and whose events this key could all receive itself (it has the read scope of each); others " +
			"are left out. Each has url, events, description, enabled, status (active; failing, with failing_since; disabled, with " +
			"disabled_reason; or expired), expires_at, scopes and filter. Use list_webhook_deliveries to see what was sent."
	case store.ActionGetWebhook:
		in = object(props{idArg("The subscription's id (a UUID), as returned by list_webhooks or create_webhook.")}, "id")
		out = webhookSchema()
		desc = op.Summary + "\n\nReturns the subscription as list_webhooks shows it (never its secret). An id this key does not " +
			"manage (one list_webhooks leaves out) answers not_found."
	case store.ActionCreateWebhook:
		in = createWebhookInput()
		out = withProps(webhookSchema(), prop{"secret", secretSchema()})
		desc = op.Summary + "\n\n" + eventsSentence + " The url must be https on a public address (the server setting " +
			"HUSTACK_WEBHOOK_ALLOW_INSECURE=true allows http and private addresses). The subscription only receives records this " +
			"key may read (its read scopes and record filter); revoking this key disables it. Events are POSTed as " +
			"{id, type, created_at, workspace_id, data} within seconds of each change, signed in the webhook-signature header, at least once and in no guaranteed order (receivers drop " +
			"duplicates by the webhook-id header), and retried for about 3 days. Returns the subscription and, in secret, its signing " +
			"secret (whsec_...): it is shown only this once and cannot be recovered, so hand it to the user at once to configure the " +
			"receiver. Every call creates another subscription."
	case store.ActionUpdateWebhook:
		in = object(props{
			idArg("The id of the subscription to change."),
			{"url", with(str("A new https URL to POST events to."), "minLength", 1, "maxLength", store.MaxWebhookURL)},
			{"events", eventsInput("The new events, replacing the old ones.")},
			{"description", with(str("A new description; \"\" clears it."), "maxLength", store.MaxWebhookDescription)},
			{"enabled", map[string]any{"type": "boolean",
				"description": "false stops the deliveries; true resumes them and clears disabled_reason and the failure streak."}},
		}, "id")
		out = webhookSchema()
		desc = op.Summary + "\n\nPass the id and only what changes; arguments left out keep their values, and null is refused. " +
			eventsSentence + " New events must be within this key's scopes, which then become the subscription's. The change applies " +
			"to the subscription as it is when written: one the server disabled stays disabled unless enabled is true. Returns the " +
			"whole subscription as updated. Turning a subscription the server disabled (see disabled_reason) back on is how to " +
			"resume deliveries once the receiver is fixed."
	case store.ActionDeleteWebhook:
		in = object(props{idArg("The id of the subscription to delete.")}, "id")
		out = object(props{
			{"id", with(str("The deleted subscription's id."), "format", "uuid")},
			{"deleted", map[string]any{"type": "boolean", "const": true, "description": "Always true."}},
		}, "id", "deleted")
		desc = op.Summary + "\n\nThe subscription and its delivery log are removed and cannot be restored; nothing more is sent " +
			"to its URL. Returns {id, deleted: true}."
	case store.ActionListDeliveries:
		in = object(append(props{
			idArg("The subscription's id."),
			{"status", map[string]any{"type": "string", "enum": store.DeliveryStatuses(),
				"description": "Only deliveries in this state: pending (queued or waiting for a retry), delivered, failed (given up) or cancelled."}},
		}, pageInput().props...), "id")
		out = pageSchema(deliverySchema().json())
		desc = op.Summary + "\n\nReturns {data, pagination}, newest first, paged by limit and offset. Each delivery has event_id " +
			"(the webhook-id the receiver sees), event_type, status, attempts, history ([{at, status_code, latency_ms, error}], " +
			"status_code 0 when no answer came), last_response_code, last_latency_ms and next_attempt_at (null once finished)."
	case store.ActionReplayDelivery:
		in = object(props{
			idArg("The subscription's id."),
			{"delivery_id", with(str("The id of a finished delivery (delivered, failed or cancelled), from list_webhook_deliveries."), "format", "uuid")},
		}, "id", "delivery_id")
		out = deliverySchema()
		desc = op.Summary + "\n\nUse it after fixing a receiver that missed events. A delivery still pending answers conflict, as " +
			"does one whose event type the subscription no longer receives (its events were changed since). " +
			"Returns the new delivery (status pending); check its outcome with list_webhook_deliveries a few seconds later."
	case store.ActionTestWebhook:
		in = object(props{idArg("The id of the subscription to test.")}, "id")
		out = deliverySchema()
		desc = op.Summary + "\n\nThe ping ({type: \"ping\", data: {webhook_id}}) is signed like every event and sent whatever the " +
			"subscription's status. Returns the delivery (status pending); list_webhook_deliveries shows within seconds whether the " +
			"receiver answered 2xx, and with which status code otherwise."
	default:
		return in, out, "", false
	}
	return in, out, desc, true
}

func eventsInput(desc string) map[string]any {
	return map[string]any{"type": "array", "minItems": 1, "maxItems": store.MaxWebhookEvents, "uniqueItems": true,
		"items": map[string]any{"type": "string", "enum": api.EventPatterns()}, "description": desc}
}

func createWebhookInput() schema {
	return object(props{
		{"url", with(str("The https URL to POST events to, such as a Zapier, Make or n8n webhook URL."), "minLength", 1,
			"maxLength", store.MaxWebhookURL)},
		{"events", eventsInput("What to receive, such as [\"deal.created\", \"account.*\"] or [\"*\"].")},
		{"description", with(str("Optional: a note for people, such as what the receiver does."), "maxLength", store.MaxWebhookDescription)},
		{"expires_at", with(str("Optional: when the subscription stops receiving events, RFC 3339 such as 2026-01-31T00:00:00Z."),
			"format", "date-time")},
	}, "url", "events")
}

func secretSchema() map[string]any {
	return with(nullable(str("The signing secret, to verify the webhook-signature header of every delivery. Shown only this once: "+
		"null when the result is replayed for a repeated idempotency_key.")), "pattern", "^"+store.SecretPrefix)
}

func webhookSchema() schema {
	ts := func(desc string) map[string]any { return with(nullable(str(desc)), "format", "date-time") }
	return object(props{
		{"id", with(str("The subscription's id."), "format", "uuid")},
		{"workspace_id", with(str("The workspace's id."), "format", "uuid")},
		{"url", str("Where events are POSTed.")},
		{"events", map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": api.EventPatterns()},
			"description": "The event types it asks for."}},
		{"description", str("A note for people; empty when none.")},
		{"enabled", map[string]any{"type": "boolean", "description": "Whether events are sent to it."}},
		{"status", map[string]any{"type": "string",
			"enum":        []string{store.WebhookActive, store.WebhookFailing, store.WebhookDisabled, store.WebhookExpired},
			"description": "active; failing (deliveries fail since failing_since); disabled (see disabled_reason); expired (past expires_at)."}},
		{"disabled_reason", str("Why it is disabled (by a client, by the revocation of the key that created it, or by the server " +
			"after 3 days of failed deliveries); empty while enabled.")},
		{"failing_since", ts("When deliveries started failing with no success since; null when the last one succeeded.")},
		{"expires_at", ts("When it stops receiving events; null if never.")},
		{"scopes", map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": scopeEnum()},
			"description": "The read scopes it receives events of (and admin:keys for key events)."}},
		{"filter", map[string]any{"type": []string{"object", "null"}, "additionalProperties": map[string]any{"type": "string"},
			"description": "The record filter of the key that created it: only records with these values are sent. Null for none."}},
		{"api_key_id", with(str("The id of the API key that created it."), "format", "uuid")},
		{"created_at", with(str("When it was created, RFC 3339 UTC."), "format", "date-time")},
		{"updated_at", with(str("When it last changed, RFC 3339 UTC."), "format", "date-time")},
	}, "id", "workspace_id", "url", "events", "description", "enabled", "status", "disabled_reason", "failing_since",
		"expires_at", "scopes", "filter", "api_key_id", "created_at", "updated_at")
}

func deliverySchema() schema {
	nullableInt := func(desc string) map[string]any {
		return map[string]any{"type": []string{"integer", "null"}, "description": desc}
	}
	attempt := object(props{
		{"at", with(str("When the attempt was made."), "format", "date-time")},
		{"status_code", map[string]any{"type": "integer", "description": "The receiver's HTTP status; 0 when no answer came."}},
		{"latency_ms", map[string]any{"type": "integer", "description": "How long it took, in milliseconds."}},
		{"error", str("What went wrong; empty for a 2xx.")},
	}, "at", "status_code", "latency_ms", "error").json()
	return object(props{
		{"id", with(str("The delivery's id."), "format", "uuid")},
		{"workspace_id", with(str("The workspace's id."), "format", "uuid")},
		{"webhook_id", with(str("The subscription's id."), "format", "uuid")},
		{"event_id", with(str("The event's id: the webhook-id header the receiver sees, the same on every attempt and replay."), "format", "uuid")},
		{"event_type", map[string]any{"type": "string", "enum": api.EventTypesWithPing(), "description": "The event's type."}},
		{"status", map[string]any{"type": "string", "enum": store.DeliveryStatuses(),
			"description": "pending (queued or waiting for its next attempt), delivered, failed (given up) or cancelled (the subscription was disabled, " +
				"expired or deleted first, or no longer receives the event's type)."}},
		{"attempts", map[string]any{"type": "integer", "minimum": 0, "description": "How many attempts were made."}},
		{"history", map[string]any{"type": "array", "items": attempt, "description": "The attempts, oldest first."}},
		{"next_attempt_at", with(nullable(str("When the next attempt is due; null once finished.")), "format", "date-time")},
		{"replay_of", with(nullable(str("The delivery this one replays; null when it is no replay.")), "format", "uuid")},
		{"created_at", with(str("When the delivery was made."), "format", "date-time")},
		{"updated_at", with(str("When it last changed."), "format", "date-time")},
		{"last_response_code", nullableInt("The HTTP status of the last attempt; null before the first and when no answer came.")},
		{"last_latency_ms", nullableInt("How long the last attempt took, in milliseconds; null before the first.")},
	}, "id", "workspace_id", "webhook_id", "event_id", "event_type", "status", "attempts", "history", "next_attempt_at",
		"replay_of", "created_at", "updated_at", "last_response_code", "last_latency_ms")
}

// webhookList is the result of list_webhooks, shaped like GET /webhooks.
type webhookList struct {
	Data []*store.Webhook `json:"data"`
}

// createdWebhook is the result of create_webhook, shaped like POST
// /webhooks.
type createdWebhook struct {
	*store.Webhook
	Secret *string `json:"secret"`
}

// runWebhookTool runs a webhook tool; ok is false for other actions.
func (ts *toolServer) runWebhookTool(ctx context.Context, op store.Operation, ops Operations, args map[string]any) (out any, ok bool, err error) {
	switch op.Action {
	case store.ActionListWebhooks:
		ws, err := ops.FindWebhooks(ctx)
		if err != nil {
			return nil, true, err
		}
		if ws == nil {
			ws = []*store.Webhook{}
		}
		return webhookList{Data: ws}, true, nil
	case store.ActionCreateWebhook:
		in, err := webhookInput(args)
		if err != nil {
			return nil, true, err
		}
		w, secret, err := ops.CreateWebhook(ctx, in)
		if err != nil {
			return nil, true, err
		}
		return createdWebhook{Webhook: w, Secret: rawKey(secret)}, true, nil
	case store.ActionGetWebhook, store.ActionUpdateWebhook, store.ActionDeleteWebhook, store.ActionListDeliveries,
		store.ActionReplayDelivery, store.ActionTestWebhook:
	default:
		return nil, false, nil
	}
	id, err := requiredString(args, "id")
	if err != nil {
		return nil, true, err
	}
	switch op.Action {
	case store.ActionGetWebhook:
		w, err := ops.FindWebhookByID(ctx, id)
		return w, true, err
	case store.ActionUpdateWebhook:
		in, err := webhookPatch(args)
		if err != nil {
			return nil, true, err
		}
		w, err := ops.UpdateWebhook(ctx, id, in)
		return w, true, err
	case store.ActionDeleteWebhook:
		if err := ops.DeleteWebhook(ctx, id); err != nil {
			return nil, true, err
		}
		return deleted{ID: id, Deleted: true}, true, nil
	case store.ActionListDeliveries:
		status, err := stringArg(args, "status")
		if err != nil {
			return nil, true, err
		}
		lp, err := listParams(args)
		if err != nil {
			return nil, true, err
		}
		page, err := ops.FindDeliveries(ctx, id, status, lp)
		if err != nil {
			return nil, true, err
		}
		return api.NewDeliveryPage(page), true, nil
	case store.ActionReplayDelivery:
		did, err := requiredString(args, "delivery_id")
		if err != nil {
			return nil, true, err
		}
		d, err := ops.ReplayDelivery(ctx, id, did)
		if err != nil {
			return nil, true, err
		}
		return api.NewDeliveryInfo(d), true, nil
	default: // store.ActionTestWebhook
		d, err := ops.TestWebhook(ctx, id)
		if err != nil {
			return nil, true, err
		}
		return api.NewDeliveryInfo(d), true, nil
	}
}

// webhookInput reads the arguments of create_webhook as REST reads the body
// of POST /webhooks.
func webhookInput(args map[string]any) (store.WebhookInput, error) {
	var in store.WebhookInput
	var err error
	if in.URL, err = stringArg(args, "url"); err != nil {
		return in, err
	}
	if in.URL == "" {
		return in, store.FieldError("url", "is required: the https URL to POST events to.")
	}
	events, given, err := eventsArg(args)
	if err != nil {
		return in, err
	}
	if !given {
		return in, store.FieldError("events", "is required: a list of event types such as [\"deal.created\", \"account.*\"], or [\"*\"].")
	}
	in.Events = events
	if in.Description, err = stringArg(args, "description"); err != nil {
		return in, err
	}
	at, err := timeArg(args, "expires_at")
	if err != nil {
		return in, err
	}
	if !at.IsZero() {
		in.ExpiresAt = &at
	}
	return in, nil
}

// webhookPatch reads the arguments of update_webhook: those left out keep
// their values, and null is refused, as REST does.
func webhookPatch(args map[string]any) (store.WebhookPatch, error) {
	var in store.WebhookPatch
	for _, name := range []string{"url", "events", "description", "enabled"} {
		if v, ok := args[name]; ok && v == nil {
			return in, store.FieldError(name, "cannot be null; leave it out to keep the current value.")
		}
	}
	if v, ok := args["url"]; ok {
		s, isString := v.(string)
		if !isString {
			return in, store.FieldError("url", "must be a string, got %s.", shown(v))
		}
		in.URL = &s
	}
	events, given, err := eventsArg(args)
	if err != nil {
		return in, err
	}
	if given {
		in.Events = events
	}
	if v, ok := args["description"]; ok {
		s, isString := v.(string)
		if !isString {
			return in, store.FieldError("description", "must be a string, got %s.", shown(v))
		}
		in.Description = &s
	}
	if v, ok := args["enabled"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return in, store.FieldError("enabled", "must be true or false, got %s.", shown(v))
		}
		in.Enabled = &b
	}
	return in, nil
}

// eventsArg reads the events argument: an array of strings (never nil when
// given).
func eventsArg(args map[string]any) ([]string, bool, error) {
	v, ok := present(args, "events")
	if !ok {
		return nil, false, nil
	}
	items, isArray := v.([]any)
	if !isArray {
		return nil, false, store.FieldError("events", "must be an array of event types such as [\"deal.created\"], got %s.", shown(v))
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, isString := it.(string)
		if !isString {
			return nil, false, store.FieldError("events", "must be an array of strings; item %d is %s.", i, shown(it))
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out, true, nil
}
