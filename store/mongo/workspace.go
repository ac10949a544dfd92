package mongo

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store"
)

type workspaceDoc struct {
	ID        string    `bson:"_id"`
	Name      string    `bson:"name"`
	CreatedAt time.Time `bson:"created_at"`
	// Policy is absent in documents stored before key policies existed,
	// which read as the zero policy.
	Policy policyDoc `bson:"key_policy"`
}

type policyDoc struct {
	MaxLifetimeDays   int  `bson:"max_lifetime_days"`
	RequireExpiry     bool `bson:"require_expiry"`
	DisableUnusedDays int  `bson:"disable_unused_days"`
}

func newPolicyDoc(p store.KeyPolicy) policyDoc {
	return policyDoc{MaxLifetimeDays: p.MaxLifetimeDays, RequireExpiry: p.RequireExpiry, DisableUnusedDays: p.DisableUnusedDays}
}

func (w workspaceDoc) workspace() *store.Workspace {
	return &store.Workspace{ID: w.ID, Name: w.Name, CreatedAt: utc(w.CreatedAt), Policy: store.KeyPolicy{
		MaxLifetimeDays:   w.Policy.MaxLifetimeDays,
		RequireExpiry:     w.Policy.RequireExpiry,
		DisableUnusedDays: w.Policy.DisableUnusedDays,
	}}
}

// CreateWorkspace stores a new workspace.
func (d *DB) CreateWorkspace(ctx context.Context, w *store.Workspace) error {
	doc := workspaceDoc{ID: w.ID, Name: w.Name, CreatedAt: w.CreatedAt, Policy: newPolicyDoc(w.Policy)}
	_, err := d.db.Collection(workspacesColl).InsertOne(ctx, doc)
	return translate(err, "insert workspace", "workspace")
}

// UpdateWorkspacePolicy replaces a workspace's key policy.
func (d *DB) UpdateWorkspacePolicy(ctx context.Context, id string, p store.KeyPolicy) error {
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "key_policy", Value: newPolicyDoc(p)}}}}
	return updateOne(ctx, d.db.Collection(workspacesColl), bson.D{{Key: "_id", Value: id}}, update, "update key policy", "workspace")
}

// FindWorkspaceByID returns one workspace.
func (d *DB) FindWorkspaceByID(ctx context.Context, id string) (*store.Workspace, error) {
	var doc workspaceDoc
	err := d.db.Collection(workspacesColl).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if err != nil {
		return nil, translate(err, "find workspace", "workspace")
	}
	return doc.workspace(), nil
}

// FindWorkspaces returns all workspaces, oldest first.
func (d *DB) FindWorkspaces(ctx context.Context) ([]*store.Workspace, error) {
	sort := bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}
	cur, err := d.db.Collection(workspacesColl).Find(ctx, bson.D{}, options.Find().SetSort(sort))
	if err != nil {
		return nil, translate(err, "find workspaces", "workspace")
	}
	var docs []workspaceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read workspaces", "workspace")
	}
	out := make([]*store.Workspace, len(docs))
	for i, doc := range docs {
		out[i] = doc.workspace()
	}
	return out, nil
}
