package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// WebhooksPath is the collection of webhook subscriptions.
const WebhooksPath = APIPrefix + "/webhooks"

// WebhookListResponse is the body of GET /api/v1/webhooks.
type WebhookListResponse struct {
	Data []*store.Webhook `json:"data"`
}

// NewWebhookResponse is the answer of a subscription: the subscription and
// its signing secret. Secret is shown once: a request replayed for its
// Idempotency-Key answers with the same subscription and Secret null.
type NewWebhookResponse struct {
	*store.Webhook
	Secret *string `json:"secret"`
}

// CreateWebhookRequest is the body of POST /api/v1/webhooks. Events are
// event types ("deal.created"), a resource's wildcard ("account.*") or
// "*"; ExpiresAt is optional.
type CreateWebhookRequest struct {
	URL         string     `json:"url"`
	Events      []string   `json:"events"`
	Description string     `json:"description,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// UpdateWebhookRequest is the body of PATCH /api/v1/webhooks/:id: the
// members to change. Null is refused; members left out keep their values.
type UpdateWebhookRequest struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
}

// DeliveryInfo is a delivery as the API shows it: the delivery, with
// replay_of null when it is no replay, and the status code and latency of
// its last attempt (null before the first, and the code also when the
// receiver did not answer).
type DeliveryInfo struct {
	*store.Delivery
	ReplayOf         *string `json:"replay_of"`
	LastResponseCode *int    `json:"last_response_code"`
	LastLatencyMS    *int64  `json:"last_latency_ms"`
}

// NewDeliveryInfo describes d.
func NewDeliveryInfo(d *store.Delivery) DeliveryInfo {
	out := DeliveryInfo{Delivery: d}
	if d.History == nil {
		d.History = []store.Attempt{}
	}
	if d.ReplayOf != "" {
		r := d.ReplayOf
		out.ReplayOf = &r
	}
	if a := d.LastAttempt(); a != nil {
		lat := a.LatencyMS
		out.LastLatencyMS = &lat
		if a.StatusCode != 0 {
			code := a.StatusCode
			out.LastResponseCode = &code
		}
	}
	return out
}

// NewDeliveryPage describes a page of deliveries.
func NewDeliveryPage(p store.Page[*store.Delivery]) store.Page[DeliveryInfo] {
	out := store.Page[DeliveryInfo]{Data: make([]DeliveryInfo, len(p.Data)), Pagination: p.Pagination}
	for i, d := range p.Data {
		out.Data[i] = NewDeliveryInfo(d)
	}
	return out
}

// EventPatterns lists what a subscription's events may hold: "*", each
// group's wildcard ("account.*", "api_key.*") and each event type, in the
// order of store.EventTypes.
func EventPatterns() []string {
	out := []string{"*"}
	var prev string
	for _, t := range store.EventTypes() {
		if group := t[:strings.LastIndexByte(t, '.')]; group != prev {
			out = append(out, group+".*")
			prev = group
		}
		out = append(out, t)
	}
	return out
}

// EventTypesWithPing lists every event type a delivery can carry: those a
// subscription can ask for, then ping.
func EventTypesWithPing() []string { return append(store.EventTypes(), store.EventPing) }

// Fields of the webhook bodies.
var (
	createWebhookFields = []string{"url", "events", "description", "expires_at"}
	updateWebhookFields = []string{"url", "events", "description", "enabled"}
)

// webhookLocation is the path of a subscription.
func webhookLocation(id string) string { return WebhooksPath + "/" + id }

func listWebhooks(r *request) (int, any, error) {
	ws, err := r.sc.FindWebhooks(r.ctx)
	if err != nil {
		return 0, nil, err
	}
	if ws == nil {
		ws = []*store.Webhook{}
	}
	return http.StatusOK, WebhookListResponse{Data: ws}, nil
}

func getWebhook(r *request) (int, any, error) {
	w, err := r.sc.FindWebhookByID(r.ctx, r.c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, w, nil
}

func createWebhook(r *request) (int, any, error) {
	obj, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	in, err := webhookInput(obj)
	if err != nil {
		return 0, nil, err
	}
	w, secret, err := r.sc.CreateWebhook(r.ctx, in)
	if err != nil {
		return 0, nil, err
	}
	r.c.Set(redactedBodyKey, NewWebhookResponse{Webhook: w})
	r.c.Header("Location", webhookLocation(w.ID))
	return http.StatusCreated, NewWebhookResponse{Webhook: w, Secret: &secret}, nil
}

func updateWebhook(r *request) (int, any, error) {
	obj, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	in, err := webhookPatch(obj)
	if err != nil {
		return 0, nil, err
	}
	w, err := r.sc.UpdateWebhook(r.ctx, r.c.Param("id"), in)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, w, nil
}

func deleteWebhook(r *request) (int, any, error) {
	if err := r.sc.DeleteWebhook(r.ctx, r.c.Param("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func listDeliveries(r *request) (int, any, error) {
	lp, err := listParams(r.query)
	if err != nil {
		return 0, nil, err
	}
	page, err := r.sc.FindDeliveries(r.ctx, r.c.Param("id"), r.query["status"], lp)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, NewDeliveryPage(page), nil
}

func replayDelivery(r *request) (int, any, error) {
	d, err := r.sc.ReplayDelivery(r.ctx, r.c.Param("id"), r.c.Param("delivery_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, NewDeliveryInfo(d), nil
}

func testWebhook(r *request) (int, any, error) {
	d, err := r.sc.TestWebhook(r.ctx, r.c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, NewDeliveryInfo(d), nil
}

// webhookInput reads the body of a subscription. Values are checked here
// for shape (types, times) and by store for meaning (the URL and its
// target, event types and scopes, lengths).
func webhookInput(obj map[string]any) (store.WebhookInput, error) {
	var in store.WebhookInput
	if err := checkFields(obj, "a webhook subscription", createWebhookFields); err != nil {
		return in, err
	}
	u, present, err := stringField(obj, "url")
	if err != nil {
		return in, err
	}
	if !present {
		return in, store.FieldError("url", "is required: the https URL to POST events to.")
	}
	in.URL = u
	events, present, err := stringsField(obj, "events")
	if err != nil {
		return in, err
	}
	if !present {
		return in, store.FieldError("events", "is required: a list of event types such as [\"deal.created\", \"account.*\"], or [\"*\"].")
	}
	in.Events = events
	if in.Description, _, err = stringField(obj, "description"); err != nil {
		return in, err
	}
	at, present, err := stringField(obj, "expires_at")
	if err != nil {
		return in, err
	}
	if present {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return in, store.FieldError("expires_at", "must be an RFC 3339 time such as 2026-01-31T00:00:00Z, got %q.", clip(at))
		}
		in.ExpiresAt = &t
	}
	return in, nil
}

// webhookPatch reads the body of a subscription's update: members left out
// keep their values; null is refused, as no member can be cleared.
func webhookPatch(obj map[string]any) (store.WebhookPatch, error) {
	var in store.WebhookPatch
	if err := checkFields(obj, "a webhook update", updateWebhookFields); err != nil {
		return in, err
	}
	for _, name := range updateWebhookFields {
		if v, ok := obj[name]; ok && v == nil {
			return in, store.FieldError(name, "cannot be null; leave it out to keep the current value.")
		}
	}
	if s, present, err := stringField(obj, "url"); err != nil {
		return in, err
	} else if present {
		in.URL = &s
	}
	if evs, present, err := stringsField(obj, "events"); err != nil {
		return in, err
	} else if present {
		in.Events = evs
	}
	if s, present, err := stringField(obj, "description"); err != nil {
		return in, err
	} else if present {
		in.Description = &s
	}
	if v, ok := obj["enabled"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return in, store.FieldError("enabled", "must be true or false, got %s.", store.JSONKind(v))
		}
		in.Enabled = &b
	}
	return in, nil
}
