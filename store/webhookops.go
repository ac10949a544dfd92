package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// WebhookInput creates a subscription.
type WebhookInput struct {
	URL         string
	Events      []string
	Description string
	ExpiresAt   *time.Time
}

// WebhookPatch changes a subscription; nil fields are left alone.
type WebhookPatch struct {
	URL         *string
	Events      []string // nil: unchanged
	Description *string
	Enabled     *bool
}

// DisabledByClient is the disabled_reason of a subscription a client turned off.
const DisabledByClient = "Disabled through the API."

// webhookScopes returns the scopes of p that let a subscription receive
// events: the read scopes of resources and admin:keys.
func webhookScopes(p Principal) []Scope {
	var out []Scope
	for _, sc := range p.Scopes {
		if sc == ScopeAdminKeys || (strings.HasPrefix(string(sc), "read:") && scopeResource(sc) != nil) {
			out = append(out, sc)
		}
	}
	return out
}

// normalizeEvents validates event patterns against the scopes that will
// receive them, removes duplicates and sorts them.
func normalizeEvents(patterns []string, scopes []Scope) ([]string, error) {
	if len(patterns) == 0 {
		return nil, FieldError("events", "at least one event type is required, such as \"deal.created\", \"account.*\" or \"*\".")
	}
	if len(patterns) > MaxWebhookEvents {
		return nil, FieldError("events", "may hold at most %d event types.", MaxWebhookEvents)
	}
	var out []string
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		matched := 0
		for _, t := range EventTypes() {
			if !MatchEvent(p, t) {
				continue
			}
			sc, _ := eventScope(t)
			if slices.Contains(scopes, sc) {
				matched++
			} else if p != "*" {
				return nil, FieldError("events", "%q needs the scope %s, which the calling key does not have.", p, sc)
			}
		}
		if matched == 0 {
			if p == "*" {
				return nil, FieldError("events", "the calling key has no read scope, so it can receive no event.")
			}
			return nil, FieldError("events", "unknown event type %q; use {resource}.{created,updated,deleted} "+
				"(resource one of account, contact, lead, deal, activity, note), api_key.{created,revoked,expiring}, \"account.*\" or \"*\".", p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > MaxWebhookDescription {
		return FieldError("description", "must be at most %d characters.", MaxWebhookDescription)
	}
	return nil
}

// webhookView sets the derived status of w.
func (s *Service) webhookView(w *Webhook) *Webhook {
	w.Status = w.status(s.Now())
	if w.Events == nil {
		w.Events = []string{}
	}
	if w.Scopes == nil {
		w.Scopes = []Scope{}
	}
	return w
}

// managesWebhook reports whether the caller may see and change w: one of
// its workspace, whose filter is at least as narrow as the caller's, and
// every event of which the caller could receive itself (it has the scope
// of each). So no key can read, redirect, replay or silence events it may
// not read, and a subscription's URL (often a capability URL) is shown
// only to keys with at least its reach.
func (sc *Scoped) managesWebhook(w *Webhook) bool {
	if w.WorkspaceID != sc.p.WorkspaceID {
		return false
	}
	for f, v := range sc.p.Filter {
		if w.Filter[f] != v {
			return false
		}
	}
	for _, s := range w.neededScopes() {
		if !sc.p.Has(s) {
			return false
		}
	}
	return true
}

// neededScopes returns the scopes of the event types w receives.
func (w *Webhook) neededScopes() []Scope {
	var out []Scope
	for _, t := range EventTypes() {
		if sc, _ := eventScope(t); w.Receives(t) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (sc *Scoped) findWebhook(ctx context.Context, id string) (*Webhook, error) {
	if !ValidID(id) {
		return nil, notFound("Webhook")
	}
	w, err := sc.s.backend.FindWebhookByID(ctx, sc.p.WorkspaceID, id)
	if ErrorCode(err) == ENOTFOUND || (err == nil && !sc.managesWebhook(w)) {
		return nil, notFound("Webhook")
	}
	return w, err
}

// FindWebhooks lists the subscriptions the caller manages, oldest first.
func (sc *Scoped) FindWebhooks(ctx context.Context) ([]*Webhook, error) {
	if err := sc.authorize(operationFor(ActionListWebhooks, nil)); err != nil {
		return nil, err
	}
	all, err := sc.s.backend.FindWebhooks(ctx, sc.p.WorkspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]*Webhook, 0, len(all))
	for _, w := range all {
		if sc.managesWebhook(w) {
			out = append(out, sc.s.webhookView(w))
		}
	}
	return out, nil
}

// FindWebhookByID returns one subscription the caller manages.
func (sc *Scoped) FindWebhookByID(ctx context.Context, id string) (*Webhook, error) {
	if err := sc.authorize(operationFor(ActionGetWebhook, nil)); err != nil {
		return nil, err
	}
	w, err := sc.findWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	return sc.s.webhookView(w), nil
}

// CreateWebhook subscribes a URL to events. The subscription receives only
// what the caller may read (its read scopes, its record filter), also
// after the caller's key is rotated; revoking the key turns it off. It
// returns the signing secret, which is shown only here.
func (sc *Scoped) CreateWebhook(ctx context.Context, in WebhookInput) (*Webhook, string, error) {
	if err := sc.authorize(operationFor(ActionCreateWebhook, nil)); err != nil {
		return nil, "", err
	}
	u, err := sc.s.targets.CheckURL(ctx, in.URL)
	if err != nil {
		return nil, "", err
	}
	scopes := webhookScopes(sc.p)
	events, err := normalizeEvents(in.Events, scopes)
	if err != nil {
		return nil, "", err
	}
	if err := checkDescription(in.Description); err != nil {
		return nil, "", err
	}
	now := sc.s.Now()
	if in.ExpiresAt != nil {
		e := in.ExpiresAt.UTC().Truncate(time.Millisecond)
		if !e.After(now) {
			return nil, "", FieldError("expires_at", "must be in the future.")
		}
		in.ExpiresAt = &e
	}
	existing, err := sc.s.backend.FindWebhooks(ctx, sc.p.WorkspaceID)
	if err != nil {
		return nil, "", err
	}
	if len(existing) >= MaxWebhooks {
		return nil, "", Errorf(ECONFLICT, "This workspace already has %d webhook subscriptions, the most it can have; delete one first.", MaxWebhooks)
	}
	w := &Webhook{
		ID: NewID(), WorkspaceID: sc.p.WorkspaceID, URL: u.String(), Events: events,
		Description: strings.TrimSpace(in.Description), Enabled: true, ExpiresAt: in.ExpiresAt,
		Scopes: scopes, Filter: sc.p.Filter, APIKeyID: sc.p.KeyID, Secret: GenerateWebhookSecret(),
		CreatedAt: now, UpdatedAt: now,
	}
	if err := sc.s.backend.CreateWebhook(ctx, w); err != nil {
		return nil, "", err
	}
	return sc.s.webhookView(w), w.Secret, nil
}

// UpdateWebhook changes a subscription's url, events, description or
// enabled flag. New events are checked against the caller's scopes, which
// then become the subscription's. Enabling a subscription clears the
// reason it was disabled and its failure streak. The change applies to the
// subscription as stored: one changed meanwhile (by the worker disabling
// it, say) is read again and the patch applied to that.
func (sc *Scoped) UpdateWebhook(ctx context.Context, id string, in WebhookPatch) (*Webhook, error) {
	if err := sc.authorize(operationFor(ActionUpdateWebhook, nil)); err != nil {
		return nil, err
	}
	var url string
	if in.URL != nil {
		u, err := sc.s.targets.CheckURL(ctx, *in.URL)
		if err != nil {
			return nil, err
		}
		url = u.String()
	}
	var events []string
	scopes := webhookScopes(sc.p)
	if in.Events != nil {
		var err error
		if events, err = normalizeEvents(in.Events, scopes); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		if err := checkDescription(*in.Description); err != nil {
			return nil, err
		}
	}
	for range staleRetries {
		w, err := sc.findWebhook(ctx, id)
		if err != nil {
			return nil, err
		}
		prev := w.UpdatedAt
		if in.URL != nil {
			w.URL = url
		}
		if in.Events != nil {
			w.Events, w.Scopes = events, scopes
		}
		if in.Description != nil {
			w.Description = strings.TrimSpace(*in.Description)
		}
		if in.Enabled != nil {
			switch {
			case *in.Enabled && !w.Enabled:
				w.Enabled, w.DisabledReason, w.FailingSince = true, "", nil
			case !*in.Enabled && w.Enabled:
				w.Enabled, w.DisabledReason = false, DisabledByClient
			}
		}
		w.UpdatedAt = sc.s.Now()
		if !w.UpdatedAt.After(prev) {
			w.UpdatedAt = prev.Add(time.Millisecond)
		}
		err = sc.s.backend.UpdateWebhook(ctx, w, prev)
		switch {
		case errors.Is(err, ErrStale):
			continue
		case ErrorCode(err) == ENOTFOUND:
			return nil, notFound("Webhook")
		case err != nil:
			return nil, err
		}
		return sc.s.webhookView(w), nil
	}
	return nil, ErrStale
}

// DeleteWebhook unsubscribes: the subscription and its delivery log are
// removed, and pending deliveries are not sent.
func (sc *Scoped) DeleteWebhook(ctx context.Context, id string) error {
	if err := sc.authorize(operationFor(ActionDeleteWebhook, nil)); err != nil {
		return err
	}
	w, err := sc.findWebhook(ctx, id)
	if err != nil {
		return err
	}
	err = sc.s.backend.DeleteWebhook(ctx, sc.p.WorkspaceID, w.ID)
	if ErrorCode(err) == ENOTFOUND {
		return notFound("Webhook")
	}
	return err
}

// Delivery statuses a list can be filtered on.
var deliveryStatuses = []string{DeliveryPending, DeliveryDelivered, DeliveryFailed, DeliveryCancelled}

// DeliveryStatuses lists the delivery statuses.
func DeliveryStatuses() []string { return slices.Clone(deliveryStatuses) }

// FindDeliveries lists a subscription's deliveries, newest first.
func (sc *Scoped) FindDeliveries(ctx context.Context, webhookID, status string, lp ListParams) (Page[*Delivery], error) {
	if err := sc.authorize(operationFor(ActionListDeliveries, nil)); err != nil {
		return Page[*Delivery]{}, err
	}
	if status != "" && !slices.Contains(deliveryStatuses, status) {
		return Page[*Delivery]{}, FieldError("status", "must be one of %s.", strings.Join(deliveryStatuses, ", "))
	}
	lp, err := lp.normalize()
	if err != nil {
		return Page[*Delivery]{}, err
	}
	w, err := sc.findWebhook(ctx, webhookID)
	if err != nil {
		return Page[*Delivery]{}, err
	}
	rows, err := sc.s.backend.FindDeliveries(ctx, sc.p.WorkspaceID, w.ID,
		DeliveryQuery{Status: status, Limit: lp.Limit + 1, Offset: lp.Offset})
	if err != nil {
		return Page[*Delivery]{}, err
	}
	for _, d := range rows {
		deliveryView(d)
	}
	return pageOf(rows, lp), nil
}

func deliveryView(d *Delivery) *Delivery {
	if d.History == nil {
		d.History = []Attempt{}
	}
	return d
}

// ReplayDelivery sends a delivery's event to its subscription again, as a
// new delivery with the same event (and so the same webhook-id header).
func (sc *Scoped) ReplayDelivery(ctx context.Context, webhookID, deliveryID string) (*Delivery, error) {
	if err := sc.authorize(operationFor(ActionReplayDelivery, nil)); err != nil {
		return nil, err
	}
	w, err := sc.findWebhook(ctx, webhookID)
	if err != nil {
		return nil, err
	}
	if !ValidID(deliveryID) {
		return nil, notFound("Delivery")
	}
	d, err := sc.s.backend.FindDeliveryByID(ctx, sc.p.WorkspaceID, deliveryID)
	if ErrorCode(err) == ENOTFOUND || (err == nil && d.WebhookID != w.ID) {
		return nil, notFound("Delivery")
	}
	if err != nil {
		return nil, err
	}
	// The subscription may have been changed since: it must still ask for
	// this event (the caller, who manages it, may then read it too).
	if d.EventType != EventPing && !w.Receives(d.EventType) {
		return nil, Errorf(ECONFLICT, "This subscription no longer receives %s events, so this delivery cannot be replayed to it.", d.EventType)
	}
	if d.Status == DeliveryPending {
		return nil, Errorf(ECONFLICT, "This delivery is still pending (next attempt at %s); replay it once it is finished.",
			formatTimePtr(d.NextAttemptAt))
	}
	replayOf := d.ID
	if d.ReplayOf != "" {
		replayOf = d.ReplayOf
	}
	return sc.s.newDelivery(ctx, w, d.EventID, d.EventType, d.Payload, replayOf)
}

// TestWebhook sends a ping event to a subscription, whatever its status,
// and returns the delivery to follow.
func (sc *Scoped) TestWebhook(ctx context.Context, webhookID string) (*Delivery, error) {
	if err := sc.authorize(operationFor(ActionTestWebhook, nil)); err != nil {
		return nil, err
	}
	w, err := sc.findWebhook(ctx, webhookID)
	if err != nil {
		return nil, err
	}
	data, _ := json.Marshal(map[string]string{"webhook_id": w.ID})
	ev := Event{ID: NewID(), Type: EventPing, CreatedAt: sc.s.Now(), WorkspaceID: w.WorkspaceID, Data: data}
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return sc.s.newDelivery(ctx, w, ev.ID, ev.Type, payload, "")
}

// newDelivery stores a delivery due now and hands it to the dispatcher.
// If that fails (Redis away), the worker's sweep sends it later.
func (s *Service) newDelivery(ctx context.Context, w *Webhook, eventID, eventType string, payload []byte, replayOf string) (*Delivery, error) {
	now := s.Now()
	d := &Delivery{ID: NewID(), WorkspaceID: w.WorkspaceID, WebhookID: w.ID, EventID: eventID, EventType: eventType,
		Payload: payload, Status: DeliveryPending, History: []Attempt{}, NextAttemptAt: &now, ReplayOf: replayOf,
		CreatedAt: now, UpdatedAt: now}
	if err := s.backend.InsertDeliveries(ctx, []*Delivery{d}); err != nil {
		return nil, err
	}
	if s.dispatch != nil {
		_ = s.dispatch(ctx, []*Delivery{d}) // the sweep catches up
	}
	return d, nil
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "an unknown time"
	}
	return t.UTC().Format(TimeFormat)
}
