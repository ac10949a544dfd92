package store

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Webhook scopes.
const (
	ScopeReadWebhooks  Scope = "read:webhooks"
	ScopeWriteWebhooks Scope = "write:webhooks"
)

// Event kinds of a record change and of a key's life.
const (
	KindCreated  = "created"
	KindUpdated  = "updated"
	KindDeleted  = "deleted"
	KindRevoked  = "revoked"
	KindExpiring = "expiring"
)

// EventAPIKey is the prefix of key events ("api_key.created").
const EventAPIKey = "api_key"

// EventPing is the type of the event POST /webhooks/:id/test sends. No
// subscription asks for it; it goes to one subscription on request.
const EventPing = "ping"

// EventTypes lists every event type a subscription can ask for, in a
// stable order: {resource}.{created,updated,deleted} for each resource, then
// api_key.{created,revoked,expiring}.
func EventTypes() []string {
	var out []string
	for _, r := range Resources {
		for _, k := range []string{KindCreated, KindUpdated, KindDeleted} {
			out = append(out, r.Singular+"."+k)
		}
	}
	for _, k := range []string{KindCreated, KindRevoked, KindExpiring} {
		out = append(out, EventAPIKey+"."+k)
	}
	return out
}

// eventScope returns the scope a subscription needs to receive events of
// type t (a concrete type), and the resource it is about (nil for key
// events).
func eventScope(t string) (Scope, *Resource) {
	prefix, _, _ := strings.Cut(t, ".")
	if prefix == EventAPIKey {
		return ScopeAdminKeys, nil
	}
	r, _ := ResourceBySingular(prefix)
	if r == nil {
		return "", nil
	}
	return ReadScope(r.Name), r
}

// MatchEvent reports whether event type t matches pattern p: "*", a prefix
// with a wildcard ("deal.*") or the type itself.
func MatchEvent(p, t string) bool {
	if p == "*" || p == t {
		return true
	}
	prefix, ok := strings.CutSuffix(p, ".*")
	return ok && strings.HasPrefix(t, prefix+".")
}

// Webhook statuses, as Webhook.Status reports them.
const (
	WebhookActive   = "active"   // enabled, the last delivery succeeded (or none was made)
	WebhookFailing  = "failing"  // enabled, deliveries have failed since failing_since
	WebhookDisabled = "disabled" // turned off by a client or by the worker (disabled_reason says which)
	WebhookExpired  = "expired"  // past its expires_at
)

// Webhook is a subscription: events matching Events are POSTed to URL,
// signed with Secret.
type Webhook struct {
	ID          string   `json:"id"`
	WorkspaceID string   `json:"workspace_id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
	Enabled     bool     `json:"enabled"`
	// Status is derived (see the Webhook* constants); set by Service on read.
	Status string `json:"status"`
	// DisabledReason says why the subscription is disabled: DisabledByClient,
	// or why the worker gave up on it ("" while it is enabled).
	DisabledReason string `json:"disabled_reason"`
	// FailingSince is when the deliveries started to fail without a success
	// since; nil when the last delivery succeeded.
	FailingSince *time.Time `json:"failing_since"`
	ExpiresAt    *time.Time `json:"expires_at"`
	// Scopes are the read scopes (and admin:keys) of the key that created
	// the subscription: events of other resources never reach it.
	Scopes []Scope `json:"scopes"`
	// Filter is the record filter of the key that created the
	// subscription: only records it matches are sent.
	Filter map[string]string `json:"filter"`
	// APIKeyID is the key that created the subscription.
	APIKeyID string `json:"api_key_id"`
	// Secret signs the deliveries ("whsec_" and base64 of 32 bytes). It is
	// shown once, when the subscription is created.
	Secret    string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// status derives w's status at now.
func (w *Webhook) status(now time.Time) string {
	switch {
	case !w.Enabled:
		return WebhookDisabled
	case w.ExpiresAt != nil && !now.Before(*w.ExpiresAt):
		return WebhookExpired
	case w.FailingSince != nil:
		return WebhookFailing
	default:
		return WebhookActive
	}
}

// Receives reports whether w should get an event of type t: it asks for it
// and its scopes allow it. Filters are applied separately, to the data.
func (w *Webhook) Receives(t string) bool {
	sc, _ := eventScope(t)
	if sc == "" || !slices.Contains(w.Scopes, sc) {
		return false
	}
	for _, p := range w.Events {
		if MatchEvent(p, t) {
			return true
		}
	}
	return false
}

// SecretPrefix starts every signing secret (the Standard Webhooks scheme).
const SecretPrefix = "whsec_"

// GenerateWebhookSecret returns a new signing secret: "whsec_" and the
// standard base64 of 32 random bytes, the key of the HMAC.
func GenerateWebhookSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// WebhookSecretKey returns the HMAC key of a signing secret.
func WebhookSecretKey(secret string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
}

// Event is one change to announce: the body of a delivery. Data is the
// record as the API shows it (a tombstone for deleted events), the key as
// key administration shows it, or, for a ping, {"webhook_id": ...}.
type Event struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	CreatedAt   time.Time       `json:"created_at"`
	WorkspaceID string          `json:"workspace_id"`
	Data        json.RawMessage `json:"data"`
}

// MarshalJSON writes the fields in the documented order, created_at with
// milliseconds as every API timestamp.
func (e Event) MarshalJSON() ([]byte, error) {
	data := e.Data
	if data == nil {
		data = json.RawMessage("null")
	}
	return json.Marshal(struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		CreatedAt   string          `json:"created_at"`
		WorkspaceID string          `json:"workspace_id"`
		Data        json.RawMessage `json:"data"`
	}{e.ID, e.Type, e.CreatedAt.UTC().Format(TimeFormat), e.WorkspaceID, data})
}

// NewRecordEvent returns the event announcing that rec was created, updated
// or deleted (kind). Backends call it with the record as stored by the
// write (a tombstone for deletions) and store the event with the write.
//
// The data of a deleted event is the record as it was, with "deleted": true
// and "deleted_at" after its id, so that receivers (and record filters)
// still see its fields.
func NewRecordEvent(rec *Record, kind string) (Event, error) {
	shown := *rec
	shown.DeletedAt = nil
	// Called directly, not through json.Marshal, which would check and
	// copy what it writes: a record's MarshalJSON writes valid JSON.
	data, err := shown.MarshalJSON()
	if err != nil {
		return Event{}, err
	}
	if rec.DeletedAt != nil {
		idEnd := bytes.IndexByte(data, ',')
		if idEnd < 0 {
			return Event{}, fmt.Errorf("store: unexpected record JSON %s", data)
		}
		var buf [64]byte
		mark := append(buf[:0], `,"deleted":true,"deleted_at":"`...)
		mark = rec.DeletedAt.UTC().AppendFormat(mark, TimeFormat)
		mark = append(mark, '"')
		data = slices.Insert(data, idEnd, mark...)
	}
	return Event{ID: NewID(), Type: rec.Resource.Singular + "." + kind, CreatedAt: rec.UpdatedAt,
		WorkspaceID: rec.WorkspaceID, Data: data}, nil
}

// NewKeyEvent returns the event announcing that key k was created, revoked
// or is about to expire (kind), at the given time. Backends call it with
// the key as stored by the write and store the event with the write.
func NewKeyEvent(k *APIKey, kind string, at time.Time) (Event, error) {
	data, err := json.Marshal(k)
	if err != nil {
		return Event{}, err
	}
	return Event{ID: NewID(), Type: EventAPIKey + "." + kind, CreatedAt: at, WorkspaceID: k.WorkspaceID, Data: data}, nil
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"   // queued, or waiting for its next attempt
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryFailed    = "failed"    // given up: a final answer, or out of attempts
	DeliveryCancelled = "cancelled" // the subscription was disabled, expired, deleted or no longer asks for the event first
)

// Delivery is one event sent to one subscription, with its attempts.
type Delivery struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	WebhookID   string `json:"webhook_id"`
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	// Payload is the body sent: the event as JSON.
	Payload json.RawMessage `json:"-"`
	Status  string          `json:"status"`
	// Attempts counts the attempts made; History lists them, oldest first.
	Attempts int       `json:"attempts"`
	History  []Attempt `json:"history"`
	// NextAttemptAt is when the next attempt is due; nil once the delivery
	// is finished.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	// ReplayOf names the delivery this one replays, if any.
	ReplayOf  string    `json:"replay_of"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Attempt is one try at a delivery.
type Attempt struct {
	At time.Time `json:"at"`
	// StatusCode is the receiver's HTTP status, 0 when there was no answer.
	StatusCode int   `json:"status_code"`
	LatencyMS  int64 `json:"latency_ms"`
	// Error says what went wrong ("" for a 2xx).
	Error string `json:"error"`
}

// LastAttempt returns the latest attempt, or nil.
func (d *Delivery) LastAttempt() *Attempt {
	if len(d.History) == 0 {
		return nil
	}
	return &d.History[len(d.History)-1]
}

// deliveryNamespace derives fan-out delivery ids.
var deliveryNamespace = uuid.MustParse("6f0d3c9e-3b1a-4f57-9a57-6b1f5e0e7a11")

// FanOutDeliveryID is the id of the delivery of an event to a subscription:
// the same for the same pair, so that fanning an event out twice stores
// each delivery once.
func FanOutDeliveryID(eventID, webhookID string) string {
	return uuid.NewSHA1(deliveryNamespace, []byte(eventID+"/"+webhookID)).String()
}

// DeliveryQuery selects a page of a subscription's deliveries, newest first.
type DeliveryQuery struct {
	Status string // "" for any
	Limit  int
	Offset int
}

// Limits of subscriptions.
const (
	MaxWebhooks           = 100 // per workspace
	MaxWebhookURL         = 2048
	MaxWebhookEvents      = 50
	MaxWebhookDescription = 500
)
