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

	CreateAPIKey(ctx context.Context, k *APIKey) error
	// FindAPIKeyByHashUnscoped finds a key by the hash of its raw value, in any
	// workspace: this is how a request is authenticated.
	FindAPIKeyByHashUnscoped(ctx context.Context, hash []byte) (*APIKey, error)
	// FindAPIKeyByIDUnscoped finds a key by id in any workspace; only the
	// operator's command line uses it.
	FindAPIKeyByIDUnscoped(ctx context.Context, id string) (*APIKey, error)
	// FindAPIKeys returns the keys of a workspace, oldest first.
	FindAPIKeys(ctx context.Context, workspaceID string) ([]*APIKey, error)
	// RevokeAPIKey sets revoked_at unless the key is already revoked.
	RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error
	// TouchAPIKeys advances last_used_at of each key to the given time; it
	// never moves a key's last_used_at back. Unknown key ids are ignored.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error

	// InsertRecord stores a new record; rec.Resource and rec.WorkspaceID are set.
	InsertRecord(ctx context.Context, rec *Record) error
	FindRecordByID(ctx context.Context, r *Resource, workspaceID, id string) (*Record, error)
	// FindRecords returns a page of records, newest first (created_at, then id,
	// descending). It returns up to q.Limit records.
	FindRecords(ctx context.Context, r *Resource, workspaceID string, q RecordQuery) ([]*Record, error)

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

	Close() error
}

// RecordQuery selects a page of records.
type RecordQuery struct {
	Limit  int
	Offset int
}
