package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store"
)

// apiKeyDoc is a stored key: the SHA-256 hash of the raw key, never the key.
type apiKeyDoc struct {
	ID          string       `bson:"_id"`
	WorkspaceID string       `bson:"workspace_id"`
	Name        string       `bson:"name"`
	Prefix      string       `bson:"prefix"`
	Hash        []byte       `bson:"hash"`
	Scopes      []string     `bson:"scopes"`
	RateLimit   rateLimitDoc `bson:"rate_limit"`
	CreatedAt   time.Time    `bson:"created_at"`
	ExpiresAt   *time.Time   `bson:"expires_at,omitempty"`
	RevokedAt   *time.Time   `bson:"revoked_at,omitempty"`
	LastUsedAt  *time.Time   `bson:"last_used_at,omitempty"`
	// Filter is a vendor key's record filter; absent for other keys and in
	// documents stored before filters existed.
	Filter map[string]string `bson:"filter,omitempty"`
	// ExpiringAnnouncedAt is when the key's api_key.expiring event was
	// stored; absent until then.
	ExpiringAnnouncedAt *time.Time `bson:"expiring_announced_at,omitempty"`
}

// apiKeyInsert is a new key's document: the key and its created event.
type apiKeyInsert struct {
	Key     apiKeyDoc     `bson:",inline"`
	Outbox  []outboxEntry `bson:"_outbox"`
	Pending bool          `bson:"_outbox_pending"`
}

type rateLimitDoc struct {
	Count    int64 `bson:"count"`
	PeriodNS int64 `bson:"period_ns"`
}

func newAPIKeyDoc(k *store.APIKey) apiKeyDoc {
	scopes := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = string(s)
	}
	return apiKeyDoc{
		ID:          k.ID,
		WorkspaceID: k.WorkspaceID,
		Name:        k.Name,
		Prefix:      k.Prefix,
		Hash:        k.Hash,
		Scopes:      scopes,
		RateLimit:   rateLimitDoc{Count: int64(k.RateLimit.Count), PeriodNS: int64(k.RateLimit.Period)},
		CreatedAt:   k.CreatedAt,
		ExpiresAt:   k.ExpiresAt,
		RevokedAt:   k.RevokedAt,
		LastUsedAt:  k.LastUsedAt,
		Filter:      k.Filter,
	}
}

func (doc apiKeyDoc) apiKey() *store.APIKey {
	scopes := make([]store.Scope, len(doc.Scopes))
	for i, s := range doc.Scopes {
		scopes[i] = store.Scope(s)
	}
	var filter map[string]string
	if len(doc.Filter) > 0 {
		filter = doc.Filter
	}
	return &store.APIKey{
		ID:          doc.ID,
		WorkspaceID: doc.WorkspaceID,
		Name:        doc.Name,
		Prefix:      doc.Prefix,
		Hash:        doc.Hash,
		Scopes:      scopes,
		RateLimit:   store.RateLimit{Count: int(doc.RateLimit.Count), Period: time.Duration(doc.RateLimit.PeriodNS)},
		CreatedAt:   utc(doc.CreatedAt),
		ExpiresAt:   utcPtr(doc.ExpiresAt),
		RevokedAt:   utcPtr(doc.RevokedAt),
		LastUsedAt:  utcPtr(doc.LastUsedAt),
		Filter:      filter,
	}
}

func (d *DB) keys() *mongo.Collection { return d.db.Collection(apiKeysColl) }

// CreateAPIKey stores a new key with its created event; a key with the same
// id or hash is a conflict.
func (d *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	doc := newAPIKeyDoc(k)
	stored := doc.apiKey()
	ev, err := store.NewKeyEvent(stored, store.KindCreated, stored.CreatedAt)
	if err != nil {
		return err
	}
	_, err = d.keys().InsertOne(ctx, apiKeyInsert{Key: doc, Outbox: []outboxEntry{newOutboxEntry(ev)}, Pending: true})
	return translate(err, "insert API key", "API key")
}

func (d *DB) findKey(ctx context.Context, filter bson.D) (*store.APIKey, error) {
	doc, err := d.findKeyDoc(ctx, filter)
	if err != nil {
		return nil, err
	}
	return doc.apiKey(), nil
}

func (d *DB) findKeyDoc(ctx context.Context, filter bson.D) (*apiKeyDoc, error) {
	var doc apiKeyDoc
	if err := d.keys().FindOne(ctx, filter, options.FindOne().SetProjection(withoutOutbox)).Decode(&doc); err != nil {
		return nil, translate(err, "find API key", "API key")
	}
	return &doc, nil
}

// FindAPIKeyByHashUnscoped finds a key by hash in any workspace.
func (d *DB) FindAPIKeyByHashUnscoped(ctx context.Context, hash []byte) (*store.APIKey, error) {
	return d.findKey(ctx, bson.D{{Key: "hash", Value: hash}})
}

// FindAPIKeyByIDUnscoped finds a key by id in any workspace.
func (d *DB) FindAPIKeyByIDUnscoped(ctx context.Context, id string) (*store.APIKey, error) {
	return d.findKey(ctx, bson.D{{Key: "_id", Value: id}})
}

// FindAPIKeyByID finds a key of the given workspace.
func (d *DB) FindAPIKeyByID(ctx context.Context, workspaceID, id string) (*store.APIKey, error) {
	return d.findKey(ctx, bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}})
}

// SetAPIKeyExpiry changes a key's expiry; not_found if the workspace has no
// such key.
func (d *DB) SetAPIKeyExpiry(ctx context.Context, workspaceID, id string, expiresAt time.Time) error {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: expiresAt.UTC()}}}}
	return updateOne(ctx, d.keys(), filter, update, "set API key expiry", "API key")
}

// FindAPIKeys returns the keys of a workspace, oldest first.
func (d *DB) FindAPIKeys(ctx context.Context, workspaceID string) ([]*store.APIKey, error) {
	filter := bson.D{{Key: "workspace_id", Value: workspaceID}}
	sort := bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}
	cur, err := d.keys().Find(ctx, filter, options.Find().SetSort(sort).SetProjection(withoutOutbox))
	if err != nil {
		return nil, translate(err, "find API keys", "API key")
	}
	var docs []apiKeyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read API keys", "API key")
	}
	out := make([]*store.APIKey, len(docs))
	for i, doc := range docs {
		out[i] = doc.apiKey()
	}
	return out, nil
}

// RevokeAPIKey sets revoked_at, with the revoked event, unless the key is
// already revoked. A key that does not exist in the workspace is not_found.
func (d *DB) RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error {
	_, err := d.keyEvent(ctx, workspaceID, id, store.KindRevoked, at, func(doc *apiKeyDoc, at time.Time) bson.D {
		if doc.RevokedAt != nil {
			return nil
		}
		doc.RevokedAt = &at
		return bson.D{{Key: "revoked_at", Value: at}}
	})
	return err
}

// MarkAPIKeyExpiring stores the key's expiring event, once: it reports
// false when the key's expiry was already announced or there is no such key.
func (d *DB) MarkAPIKeyExpiring(ctx context.Context, workspaceID, id string, at time.Time) (bool, error) {
	ok, err := d.keyEvent(ctx, workspaceID, id, store.KindExpiring, at, func(doc *apiKeyDoc, at time.Time) bson.D {
		if doc.ExpiringAnnouncedAt != nil {
			return nil
		}
		return bson.D{{Key: "expiring_announced_at", Value: at}}
	})
	if store.ErrorCode(err) == store.ENOTFOUND {
		return false, nil
	}
	return ok, err
}

// keyWriteAttempts bounds how often keyEvent reads a key again because it
// changed between its read and its update.
const keyWriteAttempts = 8

// keyEvent changes a key and stores the event of that change (kind, at the
// given time) in one update. change receives the key as read and the time
// as stored (UTC, milliseconds), applies the change to the key and returns
// the fields to set, or nil when there is nothing to do (keyEvent then
// reports false). The event's data is the key as
// changed, so the update only applies if the fields other writes change
// (expires_at, revoked_at, last_used_at, expiring_announced_at) still hold
// what was read; otherwise the key is read again. A key that does not exist
// in the workspace is not_found.
func (d *DB) keyEvent(ctx context.Context, workspaceID, id, kind string, at time.Time, change func(*apiKeyDoc, time.Time) bson.D) (bool, error) {
	at = at.UTC().Truncate(time.Millisecond) // as stored
	for range keyWriteAttempts {
		doc, err := d.findKeyDoc(ctx, bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}})
		if err != nil {
			return false, err
		}
		filter := bson.D{
			{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID},
			{Key: "expires_at", Value: timeOrNil(doc.ExpiresAt)},
			{Key: "revoked_at", Value: timeOrNil(doc.RevokedAt)},
			{Key: "last_used_at", Value: timeOrNil(doc.LastUsedAt)},
			{Key: "expiring_announced_at", Value: timeOrNil(doc.ExpiringAnnouncedAt)},
		}
		set := change(doc, at)
		if set == nil {
			return false, nil
		}
		ev, err := store.NewKeyEvent(doc.apiKey(), kind, at)
		if err != nil {
			return false, err
		}
		res, err := d.keys().UpdateOne(ctx, filter, pushEvent(set, newOutboxEntry(ev)))
		if err != nil {
			return false, translate(err, "update API key", "API key")
		}
		if res.MatchedCount > 0 {
			return true, nil
		}
	}
	return false, fmt.Errorf("mongo: API key %s kept changing during a %s update", id, kind)
}

// timeOrNil is a filter value matching t, or a missing or null field when
// t is nil.
func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// TouchAPIKeys advances last_used_at of each key, never moving it back: the
// filter only matches a key whose last_used_at is unset or older, so
// concurrent batches arriving out of order keep the latest time.
func (d *DB) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(lastUsed))
	for id, t := range lastUsed {
		t = t.UTC()
		filter := bson.D{
			{Key: "_id", Value: id},
			{Key: "$or", Value: bson.A{
				bson.D{{Key: "last_used_at", Value: bson.D{{Key: "$exists", Value: false}}}},
				bson.D{{Key: "last_used_at", Value: nil}},
				bson.D{{Key: "last_used_at", Value: bson.D{{Key: "$lt", Value: t}}}},
			}},
		}
		update := bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: t}}}}
		models = append(models, mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(update))
	}
	if _, err := d.keys().BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return translate(err, "touch API keys", "API key")
	}
	return nil
}
