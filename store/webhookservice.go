package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Dispatcher hands deliveries due now to the workers (asynq). An error
// only delays them: the worker's sweep finds pending deliveries that are
// overdue and dispatches them again.
type Dispatcher func(ctx context.Context, ds []*Delivery) error

// WithTargetPolicy sets where webhooks may be sent (by default https to
// public addresses only).
func WithTargetPolicy(p TargetPolicy) Option { return func(s *Service) { s.targets = p } }

// TargetPolicy returns where webhooks may be sent.
func (s *Service) TargetPolicy() TargetPolicy { return s.targets }

// SetDispatcher sets how replays and test pings reach the workers. Without
// one they wait for the worker's sweep.
func (s *Service) SetDispatcher(d Dispatcher) { s.dispatch = d }

// Changes is signalled (without blocking, so possibly once for several
// writes) after every write that stores an event, so that a relay in the
// same process picks events up at once instead of at its next poll.
func (s *Service) Changes() <-chan struct{} { return s.changes }

// notifying wraps a Backend to signal Changes after writes that store events.
type notifying struct {
	Backend
	ch chan struct{}
}

func (n notifying) signal(err error) error {
	if err == nil {
		select {
		case n.ch <- struct{}{}:
		default:
		}
	}
	return err
}

func (n notifying) InsertRecord(ctx context.Context, rec *Record) error {
	return n.signal(n.Backend.InsertRecord(ctx, rec))
}

func (n notifying) UpdateRecord(ctx context.Context, rec *Record, prev time.Time) error {
	return n.signal(n.Backend.UpdateRecord(ctx, rec, prev))
}

func (n notifying) DeleteRecord(ctx context.Context, r *Resource, workspaceID, id string, at time.Time) error {
	return n.signal(n.Backend.DeleteRecord(ctx, r, workspaceID, id, at))
}

func (n notifying) CreateAPIKey(ctx context.Context, k *APIKey) error {
	return n.signal(n.Backend.CreateAPIKey(ctx, k))
}

func (n notifying) RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error {
	return n.signal(n.Backend.RevokeAPIKey(ctx, workspaceID, id, at))
}

func (n notifying) MarkAPIKeyExpiring(ctx context.Context, workspaceID, id string, at time.Time) (bool, error) {
	ok, err := n.Backend.MarkAPIKeyExpiring(ctx, workspaceID, id, at)
	return ok, n.signal(err)
}

// EventClaimTimeout is how long a claimed event may wait to be fanned out
// before a relay claims it again (its worker died, or Redis lost the task),
// unless WithEventClaimTimeout says otherwise.
const EventClaimTimeout = 30 * time.Second

// WithEventClaimTimeout sets how long a claimed event waits before it is
// claimed again (tests use short ones).
func WithEventClaimTimeout(d time.Duration) Option { return func(s *Service) { s.claimTimeout = d } }

// EventClaimTimeout returns how long a claimed event waits before it is
// claimed again.
func (s *Service) EventClaimTimeout() time.Duration {
	if s.claimTimeout > 0 {
		return s.claimTimeout
	}
	return EventClaimTimeout
}

// ClaimEvents takes up to limit events from the outbox for fan-out; they
// stay there, claimed, until AckEvents, and are claimed again after
// EventClaimTimeout.
func (s *Service) ClaimEvents(ctx context.Context, limit int) ([]Event, error) {
	now := s.Now()
	return s.backend.ClaimEvents(ctx, now, now.Add(-s.EventClaimTimeout()), limit)
}

// AckEvents removes fanned-out events from the outbox.
func (s *Service) AckEvents(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.backend.DeleteEvents(ctx, ids)
}

// clockTolerance is how far apart the clocks of two processes may be for
// FanOut's "changes after the subscription" rule.
const clockTolerance = 5 * time.Second

// FanOut stores one delivery per event and subscription that should get
// it: enabled and unexpired, created no later than the event, asking for
// the event type, allowed by its scopes, and whose filter matches the record (or, for key events,
// manages the key). Fanning the same events out again stores nothing new
// (delivery ids derive from the event and the subscription) but returns
// the deliveries again, still pending or not, for the caller to dispatch.
func (s *Service) FanOut(ctx context.Context, events []Event) ([]*Delivery, error) {
	now := s.Now()
	hooks := map[string][]*Webhook{}
	var out []*Delivery
	for _, ev := range events {
		ws, ok := hooks[ev.WorkspaceID]
		if !ok {
			var err error
			if ws, err = s.backend.FindWebhooks(ctx, ev.WorkspaceID); err != nil {
				return nil, err
			}
			hooks[ev.WorkspaceID] = ws
		}
		if len(ws) == 0 {
			continue
		}
		var data map[string]any
		var payload []byte
		for _, w := range ws {
			// A subscription gets the changes made after it was created,
			// even when an older event is fanned out late; the clocks of
			// the processes that wrote the two may differ a little, and an
			// extra early event is better than a missing one.
			if w.status(now) == WebhookDisabled || w.status(now) == WebhookExpired || !w.Receives(ev.Type) ||
				ev.CreatedAt.Before(w.CreatedAt.Add(-clockTolerance)) {
				continue
			}
			if data == nil {
				if err := json.Unmarshal(ev.Data, &data); err != nil {
					return nil, err
				}
				var err error
				if payload, err = json.Marshal(ev); err != nil {
					return nil, err
				}
			}
			if !filterAllows(w.Filter, ev.Type, data) {
				continue
			}
			out = append(out, &Delivery{ID: FanOutDeliveryID(ev.ID, w.ID), WorkspaceID: ev.WorkspaceID, WebhookID: w.ID,
				EventID: ev.ID, EventType: ev.Type, Payload: payload, Status: DeliveryPending, History: []Attempt{},
				NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now})
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := s.backend.InsertDeliveries(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// filterAllows reports whether a subscription with filter f may receive an
// event with this data: a record every filtered field of which matches,
// or a key whose own filter contains f.
func filterAllows(f map[string]string, eventType string, data map[string]any) bool {
	if len(f) == 0 {
		return true
	}
	_, r := eventScope(eventType)
	if r == nil { // a key event
		kf, _ := data["filter"].(map[string]any)
		for name, v := range f {
			if got, _ := kf[name].(string); got != v {
				return false
			}
		}
		return true
	}
	for name, v := range f {
		if got, _ := data[name].(string); got != v {
			return false
		}
	}
	return true
}

// Operations of the delivery worker. They are not scoped to a principal:
// the worker acts for the workspace that owns the delivery.

// FindDelivery returns a delivery and its subscription; the subscription is
// nil when it was deleted.
func (s *Service) FindDelivery(ctx context.Context, workspaceID, id string) (*Delivery, *Webhook, error) {
	d, err := s.backend.FindDeliveryByID(ctx, workspaceID, id)
	if err != nil {
		return nil, nil, err
	}
	w, err := s.backend.FindWebhookByID(ctx, workspaceID, d.WebhookID)
	if ErrorCode(err) == ENOTFOUND {
		return d, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return d, s.webhookView(w), nil
}

// UpdateDelivery stores a delivery's new state, provided no other worker
// recorded an attempt since it was read with prevAttempts (else ErrStale).
func (s *Service) UpdateDelivery(ctx context.Context, d *Delivery, prevAttempts int) error {
	d.UpdatedAt = s.Now()
	return s.backend.UpdateDelivery(ctx, d, prevAttempts)
}

// DueDeliveries returns pending deliveries whose attempt was due before
// the given time, in any workspace, oldest first.
func (s *Service) DueDeliveries(ctx context.Context, before time.Time, limit int) ([]*Delivery, error) {
	return s.backend.FindDueDeliveriesUnscoped(ctx, before, limit)
}

// WebhookSucceeded ends a subscription's failure streak.
func (s *Service) WebhookSucceeded(ctx context.Context, w *Webhook) error {
	if w.FailingSince == nil {
		return nil
	}
	return s.backend.SetWebhookFailing(ctx, w.WorkspaceID, w.ID, nil)
}

// WebhookFailed records a failed attempt on a subscription: it starts a
// failure streak, or, when the streak is older than disableAfter, disables
// the subscription with a reason (unless it succeeded or was re-enabled
// since w was read). It reports whether it disabled it.
func (s *Service) WebhookFailed(ctx context.Context, w *Webhook, disableAfter time.Duration, reason string) (bool, error) {
	now := s.Now()
	if w.FailingSince == nil {
		return false, s.backend.SetWebhookFailing(ctx, w.WorkspaceID, w.ID, &now)
	}
	if now.Sub(*w.FailingSince) < disableAfter {
		return false, nil
	}
	return s.backend.DisableWebhook(ctx, w.WorkspaceID, w.ID, reason, now, w.FailingSince)
}

// DisableFailingWebhooks disables, in every workspace, the enabled
// subscriptions whose deliveries have failed without a success for longer
// than after, and kept failing over at least four fifths of it, even when
// no attempt is left to notice it. It returns how
// many it disabled.
func (s *Service) DisableFailingWebhooks(ctx context.Context, after time.Duration) (int, error) {
	wss, err := s.backend.FindWorkspaces(ctx)
	if err != nil {
		return 0, err
	}
	now := s.Now()
	n := 0
	for _, ws := range wss {
		hooks, err := s.backend.FindWebhooks(ctx, ws.ID)
		if err != nil {
			return n, err
		}
		for _, w := range hooks {
			if !w.Enabled || w.FailingSince == nil || now.Sub(*w.FailingSince) < after {
				continue
			}
			// Only continuous failure counts: attempts that kept failing
			// over most of the window (a delivery's retries, jittered, may
			// end a little before it), not one failure followed by silence.
			last, err := s.lastFailedAttempt(ctx, w)
			if err != nil {
				return n, err
			}
			if last.Sub(*w.FailingSince) < after*4/5 {
				continue
			}
			reason := fmt.Sprintf("Deliveries failed without a success from %s to %s (more than %s); "+
				"fix the receiver, then re-enable the subscription (PATCH {\"enabled\": true}).",
				w.FailingSince.UTC().Format(TimeFormat), now.Format(TimeFormat), shortDuration(after))
			ok, err := s.backend.DisableWebhook(ctx, ws.ID, w.ID, reason, now, w.FailingSince)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
	}
	return n, nil
}

// lastFailedAttempt returns when the latest failed attempt among w's
// newest deliveries was made (zero if none).
func (s *Service) lastFailedAttempt(ctx context.Context, w *Webhook) (time.Time, error) {
	ds, err := s.backend.FindDeliveries(ctx, w.WorkspaceID, w.ID, DeliveryQuery{Limit: 20})
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, d := range ds {
		for _, a := range d.History {
			if (a.StatusCode < 200 || a.StatusCode > 299) && a.At.After(last) {
				last = a.At
			}
		}
	}
	return last, nil
}

// DisabledByRevocation is the disabled_reason of the subscriptions of a key
// that was revoked.
const DisabledByRevocation = "The API key that created this subscription was revoked."

// disableWebhooksOf turns off the subscriptions created by k, which was
// just revoked: revoking a vendor's key cuts its data off, pushed as well as
// pulled. (A key that merely expires, as an old key does after a rotation,
// keeps its subscriptions.) A subscription changed after the revocation (a
// manager turned it on again) is left alone, so that revoking again, or
// retrying a revocation, never undoes that.
func (s *Service) disableWebhooksOf(ctx context.Context, k *APIKey) error {
	if k.RevokedAt == nil {
		return nil
	}
	hooks, err := s.backend.FindWebhooks(ctx, k.WorkspaceID)
	if err != nil {
		return err
	}
	now := s.Now()
	for _, w := range hooks {
		if w.APIKeyID != k.ID || !w.Enabled || w.UpdatedAt.After(*k.RevokedAt) {
			continue
		}
		if _, err := s.backend.DisableWebhook(ctx, k.WorkspaceID, w.ID, DisabledByRevocation, now, nil); err != nil {
			return err
		}
	}
	return nil
}

// RemoveWebhook deletes a subscription whose receiver answered 410 Gone, as
// REST hooks expect.
func (s *Service) RemoveWebhook(ctx context.Context, w *Webhook) error {
	err := s.backend.DeleteWebhook(ctx, w.WorkspaceID, w.ID)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	}
	return err
}

// DeleteDeliveriesBefore removes finished deliveries created before the
// given time (the delivery log's retention).
func (s *Service) DeleteDeliveriesBefore(ctx context.Context, before time.Time) (int64, error) {
	return s.backend.DeleteDeliveriesBefore(ctx, before)
}

// AnnounceExpiringKeys stores an api_key.expiring event, once per key, for
// every usable key that expires within ExpiringWindow. It returns how many
// it announced.
func (s *Service) AnnounceExpiringKeys(ctx context.Context) (int, error) {
	wss, err := s.backend.FindWorkspaces(ctx)
	if err != nil {
		return 0, err
	}
	now := s.Now()
	n := 0
	for _, w := range wss {
		keys, err := s.backend.FindAPIKeys(ctx, w.ID)
		if err != nil {
			return n, err
		}
		for _, k := range keys {
			if k.Status(now) != KeyExpiring {
				continue
			}
			ok, err := s.backend.MarkAPIKeyExpiring(ctx, w.ID, k.ID, now)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
	}
	return n, nil
}
