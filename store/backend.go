package store

import (
	"context"
	"time"
)

// Backend is the storage contract, implemented by store/sqlite (the embedded
// default) and store/mongo, and checked by the suite in store/storetest.
//
// Every method that touches tenant data takes the workspace id explicitly and
// must apply it to every filter and insert. The two lookups that are not
// limited to one workspace say so in their names.
//
// Errors: not_found as *Error with code ENOTFOUND, unique violations as
// ECONFLICT; anything else is returned as is and treated as internal.
type Backend interface {
	CreateWorkspace(ctx context.Context, w *Workspace) error
	FindWorkspaceByID(ctx context.Context, id string) (*Workspace, error)
	// FindWorkspaces returns all workspaces, oldest first.
	FindWorkspaces(ctx context.Context) ([]*Workspace, error)
	// UpdateWorkspacePolicy replaces a workspace's key policy.
	UpdateWorkspacePolicy(ctx context.Context, id string, p KeyPolicy) error

	CreateAPIKey(ctx context.Context, k *APIKey) error
	// FindAPIKeyByHashUnscoped finds a key by the hash of its raw value, in any
	// workspace: this is how a request is authenticated.
	FindAPIKeyByHashUnscoped(ctx context.Context, hash []byte) (*APIKey, error)
	// FindAPIKeyByIDUnscoped finds a key by id in any workspace; only the
	// operator's command line uses it.
	FindAPIKeyByIDUnscoped(ctx context.Context, id string) (*APIKey, error)
	// FindAPIKeyByID finds a key of the given workspace.
	FindAPIKeyByID(ctx context.Context, workspaceID, id string) (*APIKey, error)
	// FindAPIKeys returns the keys of a workspace, oldest first.
	FindAPIKeys(ctx context.Context, workspaceID string) ([]*APIKey, error)
	// SetAPIKeyExpiry changes a key's expiry (rotation); not_found if the
	// workspace has no such key.
	SetAPIKeyExpiry(ctx context.Context, workspaceID, id string, expiresAt time.Time) error
	// RevokeAPIKey sets revoked_at unless the key is already revoked.
	RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error
	// TouchAPIKeys advances last_used_at of each key to the given time; it
	// never moves a key's last_used_at back. Unknown key ids are ignored.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error

	// InsertRecord stores a new record; rec.Resource and rec.WorkspaceID are
	// set. A live record of the same resource and workspace with the same
	// external_id is a conflict.
	InsertRecord(ctx context.Context, rec *Record) error
	// FindRecordByID finds a live record (tombstones are not_found).
	FindRecordByID(ctx context.Context, r *Resource, workspaceID, id string) (*Record, error)
	// FindRecordByExternalID finds the live record with that external_id.
	FindRecordByExternalID(ctx context.Context, r *Resource, workspaceID, externalID string) (*Record, error)
	// FindRecords returns up to q.Limit records matching q in q's order.
	// Tombstones are included only with q.IncludeDeleted.
	FindRecords(ctx context.Context, r *Resource, workspaceID string, q RecordQuery) ([]*Record, error)
	// UpdateRecord replaces the fields and updated_at of the live record
	// rec.ID, provided its updated_at still equals prevUpdatedAt. It returns
	// exactly ErrStale when the live record has changed meanwhile, not_found
	// when there is no such live record (a record deleted meanwhile may give
	// either), and a conflict when the external id is taken.
	UpdateRecord(ctx context.Context, rec *Record, prevUpdatedAt time.Time) error
	// DeleteRecord turns a live record into a tombstone: deleted_at and
	// updated_at are set to at, fields are kept (not shown), and its
	// external_id no longer counts for uniqueness. not_found when there is no
	// such live record.
	DeleteRecord(ctx context.Context, r *Resource, workspaceID, id string, at time.Time) error
	// PurgeTombstones removes tombstones deleted before the given time, in
	// all workspaces and resources.
	PurgeTombstones(ctx context.Context, before time.Time) (int64, error)

	// CreateIdempotencyKey stores a new idempotency key (state in progress);
	// a conflict when the workspace already has that key.
	CreateIdempotencyKey(ctx context.Context, k *IdempotencyKey) error
	FindIdempotencyKey(ctx context.Context, workspaceID, key string) (*IdempotencyKey, error)
	// CompleteIdempotencyKey stores the response of the request that holds
	// the key.
	CompleteIdempotencyKey(ctx context.Context, workspaceID, key string, resp IdempotentResponse) error
	// DeleteIdempotencyKey forgets a key (its request failed and may be
	// retried, or it expired) provided it is still the one created at
	// createdAt, so that a request never forgets a key another request has
	// just taken. Forgetting an unknown key is no error.
	DeleteIdempotencyKey(ctx context.Context, workspaceID, key string, createdAt time.Time) error
	// DeleteIdempotencyKeysBefore forgets keys that expired before the given
	// time, in all workspaces.
	DeleteIdempotencyKeysBefore(ctx context.Context, before time.Time) (int64, error)

	// InsertUsageEvents stores events; an event whose id is already stored is
	// skipped, so inserting a batch twice adds no rows.
	InsertUsageEvents(ctx context.Context, events []UsageEvent) error
	// FindUsageEvents returns a workspace's events matching q, newest first.
	FindUsageEvents(ctx context.Context, workspaceID string, q UsageQuery) ([]UsageEvent, error)
	// CountUsage counts a workspace's events matching q (Limit and Offset
	// ignored) by group, ordered by group key.
	CountUsage(ctx context.Context, workspaceID string, q UsageQuery, by UsageGroup) ([]UsageCount, error)
	// DeleteUsageBefore deletes events older than before, in all workspaces.
	DeleteUsageBefore(ctx context.Context, before time.Time) (int64, error)

	// Webhook subscriptions. FindWebhooks returns a workspace's
	// subscriptions oldest first. UpdateWebhook replaces url, events,
	// description, enabled, disabled_reason, expires_at, scopes and
	// updated_at of an existing subscription (failing_since, which the
	// worker keeps, is left alone, except cleared when the update turns a
	// disabled subscription on), provided its
	// updated_at still equals prevUpdatedAt (else exactly ErrStale;
	// not_found if the workspace has none with w.ID). DeleteWebhook removes
	// a subscription and its deliveries.
	CreateWebhook(ctx context.Context, w *Webhook) error
	FindWebhookByID(ctx context.Context, workspaceID, id string) (*Webhook, error)
	FindWebhooks(ctx context.Context, workspaceID string) ([]*Webhook, error)
	UpdateWebhook(ctx context.Context, w *Webhook, prevUpdatedAt time.Time) error
	DeleteWebhook(ctx context.Context, workspaceID, id string) error
	// SetWebhookFailing sets failing_since to at unless it is already set
	// (at == nil clears it). It changes nothing else, so that it never
	// undoes a client's concurrent update. Unknown ids are no error.
	SetWebhookFailing(ctx context.Context, workspaceID, id string, at *time.Time) error
	// DisableWebhook turns an enabled subscription off with a reason,
	// setting updated_at to at; when failingSince is not nil, only if its
	// failing_since still equals *failingSince (a success or a client's
	// re-enable meanwhile keeps it on). It reports whether it disabled it.
	// Unknown ids are no error.
	DisableWebhook(ctx context.Context, workspaceID, id, reason string, at time.Time, failingSince *time.Time) (bool, error)

	// The outbox. Every write that changes a record (InsertRecord,
	// UpdateRecord, DeleteRecord) or a key's life (CreateAPIKey, an
	// effective RevokeAPIKey, MarkAPIKeyExpiring) stores its event, made by
	// NewRecordEvent or NewKeyEvent from what it wrote, atomically with
	// the change: a change is never stored without its event, nor an event
	// without its change.
	//
	// ClaimEvents returns up to limit stored events, in id order (ids are
	// UUIDv7, so oldest first), that were never claimed or were claimed
	// before staleBefore, and marks them claimed at now. DeleteEvents
	// removes claimed events once they are handed on; unknown ids are no
	// error.
	ClaimEvents(ctx context.Context, now, staleBefore time.Time, limit int) ([]Event, error)
	DeleteEvents(ctx context.Context, ids []string) error
	// MarkAPIKeyExpiring records, once per key, that its expiry was
	// announced, with its api_key.expiring event. It reports whether it did
	// (false when it was already announced or the key is unknown).
	MarkAPIKeyExpiring(ctx context.Context, workspaceID, id string, at time.Time) (bool, error)

	// Deliveries. InsertDeliveries stores new deliveries; one whose id is
	// already stored is skipped. FindDeliveries returns a subscription's
	// deliveries matching q, newest first (created_at, then id). UpdateDelivery
	// replaces status, attempts, history, next_attempt_at and updated_at,
	// provided the stored delivery still has prevAttempts attempts (else
	// exactly ErrStale; not_found when there is none).
	InsertDeliveries(ctx context.Context, ds []*Delivery) error
	FindDeliveryByID(ctx context.Context, workspaceID, id string) (*Delivery, error)
	FindDeliveries(ctx context.Context, workspaceID, webhookID string, q DeliveryQuery) ([]*Delivery, error)
	UpdateDelivery(ctx context.Context, d *Delivery, prevAttempts int) error
	// FindDueDeliveriesUnscoped returns pending deliveries of any workspace
	// whose next attempt was due before the given time, oldest due first.
	FindDueDeliveriesUnscoped(ctx context.Context, before time.Time, limit int) ([]*Delivery, error)
	// DeleteDeliveriesBefore deletes finished (not pending) deliveries
	// created before the given time, in all workspaces.
	DeleteDeliveriesBefore(ctx context.Context, before time.Time) (int64, error)

	Close() error
}

// RecordQuery selects a page of records.
type RecordQuery struct {
	Limit  int
	Offset int
	// Sort is SortCreatedAt or SortUpdatedAt; ties are broken by id in the
	// same direction. Descending unless Ascending.
	Sort      string
	Ascending bool
	// After, when set, starts the page strictly after this position in the
	// sort order (keyset pagination).
	After *Position
	// Time bounds, exclusive; zero values do not filter.
	CreatedAfter, CreatedBefore time.Time
	UpdatedAfter, UpdatedBefore time.Time
	// Filters are exact matches on Filterable fields, all of which must hold.
	Filters []FieldFilter
	// Search, when not empty, keeps records where any of the resource's
	// SearchFields contains it, case-insensitively (plain text, no patterns).
	Search         string
	IncludeDeleted bool
}

// Sort keys of record lists.
const (
	SortCreatedAt = "created_at"
	SortUpdatedAt = "updated_at"
)

// Position is a place in a sorted list: the sort key's value and the id.
type Position struct {
	Time time.Time
	ID   string
}

// FieldFilter is one exact-match condition on a record field.
type FieldFilter struct {
	Field string
	Value any // string, or float64 for number fields
}

// Idempotency key states.
const (
	IdempotencyInProgress = "in_progress"
	IdempotencyCompleted  = "completed"
)

// IdempotencyKey remembers the outcome of a request made with an
// Idempotency-Key, per workspace.
type IdempotencyKey struct {
	WorkspaceID string
	Key         string
	// Fingerprint identifies the request (method, path and body for REST;
	// tool and arguments for MCP); a different request with the same key is
	// refused.
	Fingerprint string
	State       string
	Response    IdempotentResponse
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// IdempotentResponse is what is replayed for a repeated request.
type IdempotentResponse struct {
	Status int
	Body   []byte
}
