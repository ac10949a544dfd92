package mongo

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hustack/hustack/store"
)

const idempotencyColl = "idempotency_keys"

// idempotencyDoc is a stored idempotency key. Its _id joins the workspace id
// and the key with a NUL, which neither contains (ids are alphanumeric, keys
// printable ASCII), so a key is unique per workspace through _id alone and
// one workspace's key can never be another's.
type idempotencyDoc struct {
	ID          string    `bson:"_id"`
	WorkspaceID string    `bson:"workspace_id"`
	Key         string    `bson:"key"`
	Fingerprint string    `bson:"fingerprint"`
	State       string    `bson:"state"`
	Status      int       `bson:"status"`
	Body        []byte    `bson:"body,omitempty"`
	CreatedAt   time.Time `bson:"created_at"`
	ExpiresAt   time.Time `bson:"expires_at"`
}

func idempotencyID(workspaceID, key string) string { return workspaceID + "\x00" + key }

func (d *DB) idempotency() *mongo.Collection { return d.db.Collection(idempotencyColl) }

func idempotencyFilter(workspaceID, key string) bson.D {
	return bson.D{{Key: "_id", Value: idempotencyID(workspaceID, key)}, {Key: "workspace_id", Value: workspaceID}}
}

// CreateIdempotencyKey stores a new key; a conflict when the workspace
// already has it.
func (d *DB) CreateIdempotencyKey(ctx context.Context, k *store.IdempotencyKey) error {
	doc := idempotencyDoc{
		ID: idempotencyID(k.WorkspaceID, k.Key), WorkspaceID: k.WorkspaceID, Key: k.Key,
		Fingerprint: k.Fingerprint, State: k.State, Status: k.Response.Status, Body: k.Response.Body,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
	}
	_, err := d.idempotency().InsertOne(ctx, doc)
	return translate(err, "insert idempotency key", "idempotency key")
}

// FindIdempotencyKey returns a workspace's key.
func (d *DB) FindIdempotencyKey(ctx context.Context, workspaceID, key string) (*store.IdempotencyKey, error) {
	var doc idempotencyDoc
	if err := d.idempotency().FindOne(ctx, idempotencyFilter(workspaceID, key)).Decode(&doc); err != nil {
		return nil, translate(err, "find idempotency key", "idempotency key")
	}
	return &store.IdempotencyKey{
		WorkspaceID: doc.WorkspaceID, Key: doc.Key, Fingerprint: doc.Fingerprint, State: doc.State,
		Response:  store.IdempotentResponse{Status: doc.Status, Body: doc.Body},
		CreatedAt: utc(doc.CreatedAt), ExpiresAt: utc(doc.ExpiresAt),
	}, nil
}

// CompleteIdempotencyKey stores the response and marks the key completed;
// not_found when the key is gone.
func (d *DB) CompleteIdempotencyKey(ctx context.Context, workspaceID, key string, resp store.IdempotentResponse) error {
	set := bson.D{
		{Key: "state", Value: store.IdempotencyCompleted},
		{Key: "status", Value: resp.Status},
		{Key: "body", Value: bodyValue(resp.Body)},
	}
	return updateOne(ctx, d.idempotency(), idempotencyFilter(workspaceID, key), bson.D{{Key: "$set", Value: set}},
		"complete idempotency key", "idempotency key")
}

// bodyValue stores a body as binary data, an empty one included.
func bodyValue(b []byte) bson.Binary {
	if b == nil {
		b = []byte{}
	}
	return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: b}
}

// DeleteIdempotencyKey forgets a key if it is the one created at
// createdAt; forgetting an unknown key is no error.
func (d *DB) DeleteIdempotencyKey(ctx context.Context, workspaceID, key string, createdAt time.Time) error {
	filter := append(idempotencyFilter(workspaceID, key), bson.E{Key: "created_at", Value: createdAt.UTC()})
	_, err := d.idempotency().DeleteOne(ctx, filter)
	return translate(err, "delete idempotency key", "idempotency key")
}

// DeleteIdempotencyKeysBefore forgets the keys of every workspace that
// expired before the given time.
func (d *DB) DeleteIdempotencyKeysBefore(ctx context.Context, before time.Time) (int64, error) {
	res, err := d.idempotency().DeleteMany(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: before}}}})
	if err != nil {
		return 0, translate(err, "delete idempotency keys", "idempotency key")
	}
	return res.DeletedCount, nil
}
