package api

import (
	"fmt"
	"strings"

	"github.com/hustack/hustack/store"
)

// Schemas of webhook subscriptions and deliveries, and the deliveries
// themselves as OpenAPI 3.1 webhooks.

// Headers of a delivery (the Standard Webhooks scheme).
const (
	webhookIDHeader        = "webhook-id"
	webhookTimestampHeader = "webhook-timestamp"
	webhookSignatureHeader = "webhook-signature"
)

// retrySchedule describes when a failing delivery is tried again.
const retrySchedule = "The first attempt leaves at once; retries follow after 10 s, 1 min, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h " +
	"and 20 h again (about 3 days in all), each ±20% at random. A 429 or 503 with Retry-After waits at least as long as it says " +
	"(at most 24 h). A 410 deletes the subscription. Any other 4xx except 408, 409, 425 and 429 is final: the delivery fails at once, " +
	"as it does when the URL's host now resolves to an address the server may not send to. A subscription whose deliveries keep " +
	"failing for 3 days is disabled, even when no attempt is left to make, with the reason in disabled_reason."

// webhooksTagDescription introduces the webhook operations.
const webhooksTagDescription = "Webhook subscriptions: events POSTed to your URL within seconds of a change, signed, " +
	"retried and logged. The events and their headers are described under Webhook events. " +
	"Reading needs read:webhooks, changing write:webhooks."

func (b *docBuilder) eventPatternSchema() *oaSchema {
	return b.schema("EventPattern", func() *oaSchema {
		s := &oaSchema{Type: oaTypes{"string"}, Description: "What a subscription asks for: an event type, a group's " +
			"wildcard (account.* is account.created, account.updated and account.deleted) or * (every event the subscription's " +
			"scopes allow). Record events need the read scope of their resource, api_key events admin:keys."}
		for _, p := range EventPatterns() {
			s.Enum = append(s.Enum, p)
		}
		return s
	})
}

func (b *docBuilder) eventTypeSchema() *oaSchema {
	return b.schema("EventType", func() *oaSchema {
		s := &oaSchema{Type: oaTypes{"string"}, Description: "The type of an event: {resource}.{created,updated,deleted} for " +
			"records, api_key.{created,revoked,expiring} for API keys (expiring: within 7 days), and ping, the test event."}
		for _, t := range EventTypesWithPing() {
			s.Enum = append(s.Enum, t)
		}
		return s
	})
}

// webhookProps are the properties of a subscription.
func (b *docBuilder) webhookProps() []oaProp {
	statuses := []any{store.WebhookActive, store.WebhookFailing, store.WebhookDisabled, store.WebhookExpired}
	return []oaProp{
		prop("id", "The subscription's id.", uuidType()),
		prop("workspace_id", "The workspace's id.", uuidType()),
		prop("url", "Where the events are POSTed.", &oaSchema{Type: oaTypes{"string"}, Format: "uri"}),
		prop("events", "The event types it asks for, sorted.", &oaSchema{Type: oaTypes{"array"}, Items: b.eventPatternSchema()}),
		prop("description", "A note for people; empty when none.", strType()),
		prop("enabled", "Whether events are sent to it: false once a client or the server turned it off.", &oaSchema{Type: oaTypes{"boolean"}}),
		prop("status", "active; failing (enabled, deliveries fail since failing_since); disabled (see disabled_reason); or expired (past expires_at).",
			&oaSchema{Type: oaTypes{"string"}, Enum: statuses}),
		prop("disabled_reason", "Why it is disabled: \""+store.DisabledByClient+"\", \""+store.DisabledByRevocation+"\", or what the "+
			"server saw when it gave up on a receiver that failed for 3 days. Empty while enabled.", strType()),
		prop("failing_since", "When deliveries started failing with no success since; null when the last one succeeded.", dateTime(true)),
		prop("expires_at", "When it stops receiving events; null if never.", dateTime(true)),
		prop("scopes", "The read scopes (and admin:keys) of the key that set its events: events of other resources never reach it.",
			&oaSchema{Type: oaTypes{"array"}, Items: b.scopeSchema()}),
		prop("filter", "The record filter of the key that created it: only records with these values are sent. Null for none.",
			b.keyFilterSchema()),
		prop("api_key_id", "The id of the API key that created it.", uuidType()),
		prop("created_at", "When it was created.", dateTime(false)),
		prop("updated_at", "When it last changed.", dateTime(false)),
	}
}

func (b *docBuilder) webhookSchema() *oaSchema {
	return b.schema("Webhook", func() *oaSchema {
		return object("A webhook subscription: events matching events are POSTed to url, signed with its secret (never shown again).",
			b.webhookProps()...)
	})
}

func (b *docBuilder) newWebhookSchema() *oaSchema {
	return b.schema("NewWebhook", func() *oaSchema {
		secret := prop("secret", "The signing secret (whsec_ and the base64 of 32 bytes), shown this once only: keep it to verify "+
			"webhook-signature. Null when the answer is replayed for a repeated Idempotency-Key.",
			&oaSchema{Type: oaTypes{"string", "null"}, Pattern: "^" + store.SecretPrefix + "[A-Za-z0-9+/]{43}=$"})
		return object("The new subscription, as Webhook, with its signing secret.", append(b.webhookProps(), secret)...)
	})
}

func (b *docBuilder) webhookListSchema() *oaSchema {
	return b.schema("WebhookList", func() *oaSchema {
		return object("The subscriptions the calling key manages, oldest first.",
			oaProp{Name: "data", Schema: &oaSchema{Type: oaTypes{"array"}, Items: b.webhookSchema()}})
	})
}

func (b *docBuilder) createWebhookSchema() *oaSchema {
	return b.schema("CreateWebhookRequest", func() *oaSchema {
		s := object("A new webhook subscription.",
			prop("url", "The https URL to POST events to, on a public address.",
				&oaSchema{Type: oaTypes{"string"}, Format: "uri", MinLength: intp(1), MaxLength: intp(store.MaxWebhookURL)}),
			prop("events", "What to receive: event types, wildcards such as account.*, or *.",
				&oaSchema{Type: oaTypes{"array"}, Items: b.eventPatternSchema(), MinItems: intp(1), MaxItems: intp(store.MaxWebhookEvents)}),
			prop("description", "A note for people.", &oaSchema{Type: oaTypes{"string", "null"}, MaxLength: intp(store.MaxWebhookDescription)}),
			prop("expires_at", "When it stops receiving events (RFC 3339, in the future); by default never.", dateTime(true)),
		)
		s.Required = []string{"url", "events"}
		s.AdditionalProperties = noOtherProperties()
		return s
	})
}

func (b *docBuilder) updateWebhookSchema() *oaSchema {
	return b.schema("UpdateWebhookRequest", func() *oaSchema {
		s := object("The members of a subscription to change; those left out keep their values, and none may be null.",
			prop("url", "The new https URL.", &oaSchema{Type: oaTypes{"string"}, Format: "uri", MinLength: intp(1), MaxLength: intp(store.MaxWebhookURL)}),
			prop("events", "The new events, checked against the calling key's scopes, which become the subscription's.",
				&oaSchema{Type: oaTypes{"array"}, Items: b.eventPatternSchema(), MinItems: intp(1), MaxItems: intp(store.MaxWebhookEvents)}),
			prop("description", "The new description; \"\" clears it.", &oaSchema{Type: oaTypes{"string"}, MaxLength: intp(store.MaxWebhookDescription)}),
			prop("enabled", "false stops the deliveries; true resumes them and clears disabled_reason and the failure streak.",
				&oaSchema{Type: oaTypes{"boolean"}}),
		)
		s.Required = nil
		s.AdditionalProperties = noOtherProperties()
		return s
	})
}

func (b *docBuilder) deliverySchema() *oaSchema {
	return b.schema("Delivery", func() *oaSchema {
		attempt := b.schema("DeliveryAttempt", func() *oaSchema {
			return object("One attempt at a delivery.",
				prop("at", "When it was made.", dateTime(false)),
				prop("status_code", "The receiver's HTTP status; 0 when none came (timeout, connection error, refused address).",
					&oaSchema{Type: oaTypes{"integer"}, Minimum: floatp(0), Maximum: floatp(599)}),
				prop("latency_ms", "How long the attempt took, in milliseconds.", intType(0)),
				prop("error", "What went wrong; empty for a 2xx.", strType()),
			)
		})
		statuses := []any{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryCancelled}
		nullableInt := func() *oaSchema { return &oaSchema{Type: oaTypes{"integer", "null"}, Minimum: floatp(0)} }
		return object("One event sent to one subscription, with its attempts.",
			prop("id", "The delivery's id.", uuidType()),
			prop("workspace_id", "The workspace's id.", uuidType()),
			prop("webhook_id", "The subscription's id.", uuidType()),
			prop("event_id", "The event's id, sent as webhook-id: the same on every attempt and replay.", uuidType()),
			prop("event_type", "The event's type.", b.eventTypeSchema()),
			prop("status", "pending (queued or waiting for its next attempt), delivered (a 2xx came), failed (a final answer, or out of attempts) "+
				"or cancelled (the subscription was disabled, expired or deleted first, or no longer receives the event's type).",
				&oaSchema{Type: oaTypes{"string"}, Enum: statuses}),
			prop("attempts", "How many attempts were made.", intType(0)),
			prop("history", "The attempts, oldest first.", &oaSchema{Type: oaTypes{"array"}, Items: attempt}),
			prop("next_attempt_at", "When the next attempt is due; null once the delivery is finished.", dateTime(true)),
			prop("replay_of", "The delivery this one replays; null when it is no replay.", &oaSchema{Type: oaTypes{"string", "null"}, Format: "uuid"}),
			prop("created_at", "When the delivery was made.", dateTime(false)),
			prop("updated_at", "When it last changed.", dateTime(false)),
			prop("last_response_code", "The HTTP status of the last attempt; null before the first and when no answer came.", nullableInt()),
			prop("last_latency_ms", "How long the last attempt took, in milliseconds; null before the first.", nullableInt()),
		)
	})
}

func (b *docBuilder) deliveryPageSchema() *oaSchema {
	return b.schema("DeliveryPage", func() *oaSchema {
		return object("A page of a subscription's deliveries, newest first.",
			oaProp{Name: "data", Schema: &oaSchema{Type: oaTypes{"array"}, Items: b.deliverySchema()}},
			oaProp{Name: "pagination", Schema: b.paginationSchema()})
	})
}

// eventSchema is the body of a delivery of the given event types. It is
// written in place rather than as a component: code generators that prune
// the components no path refers to (oapi-codegen) would drop it.
func eventSchema(desc string, types []string, data oaProp) *oaSchema {
	typ := &oaSchema{Type: oaTypes{"string"}}
	for _, t := range types {
		typ.Enum = append(typ.Enum, t)
	}
	return object(desc,
		prop("id", "The event's id, also in the webhook-id header: the same on every attempt and replay. Drop events whose id you have seen.", uuidType()),
		prop("type", "The event's type.", typ),
		prop("created_at", "When the change happened (RFC 3339, UTC, milliseconds).", dateTime(false)),
		prop("workspace_id", "The workspace's id.", uuidType()),
		data,
	)
}

// webhookEvents documents the deliveries a subscription can receive, one
// webhook per group of event types: each resource, api_key and ping. A
// key's document shows them when it has a webhook scope, and only those
// its scopes let a subscription receive.
func (b *docBuilder) webhookEvents(p *store.Principal) {
	if p != nil && !p.Has(store.ScopeReadWebhooks) && !p.Has(store.ScopeWriteWebhooks) {
		return
	}
	kinds := []string{store.KindCreated, store.KindUpdated, store.KindDeleted}
	for _, r := range store.Resources {
		sc := store.ReadScope(r.Name)
		if p != nil && !p.Has(sc) {
			continue
		}
		var types []string
		for _, k := range kinds {
			types = append(types, r.Singular+"."+k)
		}
		data := prop("data", fmt.Sprintf("The %s as the API shows it after the change. For %s.deleted, the %s as it was, "+
			"with \"deleted\": true and \"deleted_at\" after its id.", r.Singular, r.Singular, r.Singular), b.recordSchema(r))
		body := eventSchema(fmt.Sprintf("A change to %s %s.", article(r.Singular), r.Singular), types, data)
		b.addEvent(r.Singular, fmt.Sprintf("%s created, updated or deleted", strings.ToUpper(r.Singular[:1])+r.Singular[1:]),
			fmt.Sprintf("Sent for %s to subscriptions that ask for them and whose scopes include %s; a subscription with a record filter "+
				"only gets %s with its values.", strings.Join(types, ", "), sc, r.Name), sc, body)
	}
	if p == nil || p.Has(store.ScopeAdminKeys) {
		var types []string
		for _, k := range []string{store.KindCreated, store.KindRevoked, store.KindExpiring} {
			types = append(types, store.EventAPIKey+"."+k)
		}
		var props []oaProp
		for _, pr := range b.keyInfoProps() {
			if pr.Name != "status" && pr.Name != "requests_7d" {
				props = append(props, pr)
			}
		}
		body := eventSchema("A change in an API key's life.", types,
			prop("data", "The key after the change, as key administration shows it but without status and requests_7d; never the key itself.",
				object("", props...)))
		b.addEvent(store.EventAPIKey, "API key created, revoked or about to expire",
			fmt.Sprintf("Sent for %s to subscriptions whose scopes include admin:keys. api_key.expiring is sent once per key, "+
				"%d days before it expires. A subscription with a record filter only gets keys with its filter.",
				strings.Join(types, ", "), int(store.ExpiringWindow.Hours()/24)), store.ScopeAdminKeys, body)
	}
	ping := object("", prop("webhook_id", "The subscription tested.", uuidType()))
	body := eventSchema("The test event.", []string{store.EventPing}, prop("data", "Which subscription was tested.", ping))
	b.addEvent(store.EventPing, "Test event", "Sent by POST /api/v1/webhooks/{id}/test, to that subscription only, whatever it asks for.", "", body)
}

// addEvent adds the webhook of one group of events.
func (b *docBuilder) addEvent(name, summary, desc string, scope store.Scope, body *oaSchema) {
	str := func(pattern string) *oaSchema { return &oaSchema{Type: oaTypes{"string"}, Pattern: pattern} }
	o := &oaOperation{
		OperationID: "receive_" + strings.ReplaceAll(name, ".", "_") + "_event",
		Tags:        []string{"webhooks"},
		Summary:     summary,
		Description: desc + " Verify webhook-signature before trusting the body, answer 2xx within 10 s, and drop events whose " +
			"webhook-id you have already seen: delivery is at least once, in no guaranteed order. " + retrySchedule,
		Parameters: []*oaParameter{
			{Name: webhookIDHeader, In: "header", Required: true, Schema: uuidType(),
				Description: "The event's id: the same on every attempt and replay of the event, and for every subscription that gets it."},
			{Name: webhookTimestampHeader, In: "header", Required: true, Schema: str("^[0-9]+$"),
				Description: "When this attempt was signed, in Unix seconds; every attempt is signed afresh. Refuse a timestamp far from your clock (5 minutes, say)."},
			{Name: webhookSignatureHeader, In: "header", Required: true, Schema: str(`^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$`),
				Description: "v1, and the standard base64 of the HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\", keyed with the " +
					"base64-decoded secret after its whsec_ prefix. Space-separated if there are several; compare in constant time."},
		},
		RequestBody:    &oaRequestBody{Description: "The event.", Required: true, Content: jsonContent(body)},
		Security:       []oaSecurity{},
		RequiredScopes: []string{},
		method:         "POST",
		path:           name,
	}
	if scope != "" {
		o.RequiredScopes = []string{string(scope)}
	}
	retryAfter := oaHeaders{{Name: "Retry-After", Header: &oaHeader{Schema: strType(),
		Description: "Seconds, or an HTTP date, to wait before the next attempt (at most 24 h is honoured)."}}}
	o.Responses = oaResponses{
		{key: "2XX", Description: "Received: the delivery is done. The body is ignored."},
		{status: 410, Description: "Gone: the subscription is deleted, as REST hooks expect; nothing more is sent to it."},
		{status: 429, Description: "Too many requests: tried again after Retry-After, else on the schedule.", Headers: retryAfter},
		{status: 503, Description: "Unavailable: tried again after Retry-After, else on the schedule.", Headers: retryAfter},
		{key: "default", Description: "Any other answer: 3xx (redirects are not followed), 408, 409, 425 and 5xx, timeouts (10 s) and " +
			"connection errors are tried again on the schedule; any other 4xx fails the delivery."},
	}
	for _, r := range o.Responses {
		r.desc = r.Description
	}
	slot := b.doc.Webhooks.item(name).slot(o.method)
	o.seq = b.ops
	b.ops++
	*slot = o
}
