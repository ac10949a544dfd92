package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hustack/hustack/store"
)

// Webhook subscriptions: listing them and their deliveries needs the scope
// read:webhooks, the rest write:webhooks. A key sees the subscriptions of
// its workspace whose record filter includes its own.

// webhookBody is the body of POST /webhooks.
type webhookBody struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
	ExpiresAt   *string  `json:"expires_at,omitempty"`
}

// newWebhook is the answer of POST /webhooks: the subscription and, once,
// its signing secret.
type newWebhook struct {
	store.Webhook
	Secret *string `json:"secret"`
}

// FindWebhooks lists the subscriptions the calling key manages, oldest
// first.
func (c *Client) FindWebhooks(ctx context.Context) ([]*store.Webhook, error) {
	var out struct {
		Data []*store.Webhook `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/webhooks", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Data == nil {
		out.Data = []*store.Webhook{}
	}
	return out.Data, nil
}

// FindWebhookByID returns one subscription the calling key manages.
func (c *Client) FindWebhookByID(ctx context.Context, id string) (*store.Webhook, error) {
	var w store.Webhook
	if _, err := c.do(ctx, http.MethodGet, webhookPath(id), nil, nil, &w); err != nil {
		return nil, err
	}
	return &w, checkID(http.MethodGet, webhookPath(id), "subscription", w.ID)
}

// CreateWebhook subscribes in.URL to in.Events and returns the subscription
// with its signing secret, which the server shows only this once ("" when
// it replayed its answer for a repeated Idempotency-Key).
func (c *Client) CreateWebhook(ctx context.Context, in store.WebhookInput) (*store.Webhook, string, error) {
	body := webhookBody{URL: in.URL, Events: in.Events, Description: in.Description}
	if body.Events == nil {
		body.Events = []string{} // the server answers with its own message
	}
	if in.ExpiresAt != nil {
		s := in.ExpiresAt.UTC().Format(time.RFC3339Nano)
		body.ExpiresAt = &s
	}
	var out newWebhook
	if _, err := c.do(ctx, http.MethodPost, "/webhooks", nil, body, &out); err != nil {
		return nil, "", err
	}
	if err := checkID(http.MethodPost, "/webhooks", "subscription", out.ID); err != nil {
		return nil, "", err
	}
	var secret string
	if out.Secret != nil {
		secret = *out.Secret
	}
	return &out.Webhook, secret, nil
}

// UpdateWebhook changes the members of a subscription that in sets.
func (c *Client) UpdateWebhook(ctx context.Context, id string, in store.WebhookPatch) (*store.Webhook, error) {
	body := map[string]any{}
	if in.URL != nil {
		body["url"] = *in.URL
	}
	if in.Events != nil {
		body["events"] = in.Events
	}
	if in.Description != nil {
		body["description"] = *in.Description
	}
	if in.Enabled != nil {
		body["enabled"] = *in.Enabled
	}
	var w store.Webhook
	if _, err := c.do(ctx, http.MethodPatch, webhookPath(id), nil, body, &w); err != nil {
		return nil, err
	}
	return &w, checkID(http.MethodPatch, webhookPath(id), "subscription", w.ID)
}

// DeleteWebhook unsubscribes: the subscription and its deliveries are
// removed.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, webhookPath(id), nil, nil, nil)
	return err
}

// FindDeliveries lists a subscription's deliveries, newest first, in the
// given status ("" for any), paged by lp.Limit and lp.Offset.
func (c *Client) FindDeliveries(ctx context.Context, webhookID, status string, lp store.ListParams) (store.Page[*store.Delivery], error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(lp.Limit))
	if lp.Offset != 0 {
		q.Set("offset", strconv.Itoa(lp.Offset))
	}
	if status != "" {
		q.Set("status", status)
	}
	var page store.Page[*store.Delivery]
	if _, err := c.do(ctx, http.MethodGet, webhookPath(webhookID)+"/deliveries", q, nil, &page); err != nil {
		return store.Page[*store.Delivery]{}, err
	}
	if page.Data == nil {
		page.Data = []*store.Delivery{}
	}
	return page, nil
}

// ReplayDelivery sends a finished delivery's event again, as a new
// delivery, and returns it.
func (c *Client) ReplayDelivery(ctx context.Context, webhookID, deliveryID string) (*store.Delivery, error) {
	return c.doDelivery(ctx, webhookPath(webhookID)+"/deliveries/"+url.PathEscape(deliveryID)+"/replay")
}

// TestWebhook sends a ping event to a subscription and returns its
// delivery.
func (c *Client) TestWebhook(ctx context.Context, webhookID string) (*store.Delivery, error) {
	return c.doDelivery(ctx, webhookPath(webhookID)+"/test")
}

func (c *Client) doDelivery(ctx context.Context, path string) (*store.Delivery, error) {
	var d store.Delivery
	if _, err := c.do(ctx, http.MethodPost, path, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, checkID(http.MethodPost, path, "delivery", d.ID)
}

func webhookPath(id string) string { return "/webhooks/" + url.PathEscape(id) }

// checkID refuses a successful answer that names nothing.
func checkID(method, path, what, id string) error {
	if id == "" {
		return fmt.Errorf("hustack client: %s %s: the answer holds no %s", method, path, what)
	}
	return nil
}
