package mongo

import (
	"context"
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

// CreateAPIKey stores a new key; a key with the same id or hash is a conflict.
func (d *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	_, err := d.keys().InsertOne(ctx, newAPIKeyDoc(k))
	return translate(err, "insert API key", "API key")
}

func (d *DB) findKey(ctx context.Context, filter bson.D) (*store.APIKey, error) {
	var doc apiKeyDoc
	if err := d.keys().FindOne(ctx, filter).Decode(&doc); err != nil {
		return nil, translate(err, "find API key", "API key")
	}
	return doc.apiKey(), nil
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
	cur, err := d.keys().Find(ctx, filter, options.Find().SetSort(sort))
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

// RevokeAPIKey sets revoked_at unless the key is already revoked. A key that
// does not exist in the workspace is not_found.
func (d *DB) RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error {
	filter := bson.D{
		{Key: "_id", Value: id},
		{Key: "workspace_id", Value: workspaceID},
		{Key: "revoked_at", Value: bson.D{{Key: "$exists", Value: false}}},
	}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: at}}}}
	res, err := d.keys().UpdateOne(ctx, filter, update)
	if err != nil {
		return translate(err, "revoke API key", "API key")
	}
	if res.MatchedCount > 0 {
		return nil
	}
	// Nothing matched: either already revoked (fine) or not there.
	n, err := d.keys().CountDocuments(ctx, bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}})
	if err != nil {
		return translate(err, "find API key", "API key")
	}
	if n == 0 {
		return store.Errorf(store.ENOTFOUND, "API key not found.")
	}
	return nil
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
