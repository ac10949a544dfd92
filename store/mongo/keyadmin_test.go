package mongo_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo/mongotest"
)

// TestOldDocumentsWithoutFilterOrPolicy reads a workspace and a key stored
// before key policies and record filters existed: they read as the zero
// policy and no filter, and take the new fields when updated.
func TestOldDocumentsWithoutFilterOrPolicy(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Open(t)
	ws, keyID := store.NewID(), store.NewID()
	raw := store.GenerateKey()
	created := base.UTC().Truncate(time.Millisecond)
	if _, err := db.Database().Collection("workspaces").InsertOne(ctx, bson.D{
		{Key: "_id", Value: ws}, {Key: "name", Value: "Old"}, {Key: "created_at", Value: created},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Database().Collection("api_keys").InsertOne(ctx, bson.D{
		{Key: "_id", Value: keyID}, {Key: "workspace_id", Value: ws}, {Key: "name", Value: "old key"},
		{Key: "prefix", Value: raw[:14]}, {Key: "hash", Value: store.HashKey(raw)},
		{Key: "scopes", Value: bson.A{"read:leads"}},
		{Key: "rate_limit", Value: bson.D{{Key: "count", Value: int64(100)}, {Key: "period_ns", Value: int64(10 * time.Second)}}},
		{Key: "created_at", Value: created},
	}); err != nil {
		t.Fatal(err)
	}

	w, err := db.FindWorkspaceByID(ctx, ws)
	if err != nil || w.Name != "Old" || w.Policy != (store.KeyPolicy{}) {
		t.Fatalf("old workspace = %+v, %v; want the zero policy", w, err)
	}
	k, err := db.FindAPIKeyByID(ctx, ws, keyID)
	if err != nil || k.Filter != nil || k.Name != "old key" || k.ExpiresAt != nil {
		t.Fatalf("old key = %+v, %v; want no filter and no expiry", k, err)
	}
	byHash, err := db.FindAPIKeyByHashUnscoped(ctx, store.HashKey(raw))
	if err != nil || byHash.ID != keyID || byHash.Filter != nil {
		t.Fatalf("old key by hash = %+v, %v", byHash, err)
	}

	policy := store.KeyPolicy{MaxLifetimeDays: 366, RequireExpiry: true}
	if err := db.UpdateWorkspacePolicy(ctx, ws, policy); err != nil {
		t.Fatal(err)
	}
	exp := created.Add(time.Hour)
	if err := db.SetAPIKeyExpiry(ctx, ws, keyID, exp); err != nil {
		t.Fatal(err)
	}
	w, err = db.FindWorkspaceByID(ctx, ws)
	if err != nil || w.Policy != policy {
		t.Errorf("policy of the old workspace after an update = %+v, %v; want %+v", w.Policy, err, policy)
	}
	k, err = db.FindAPIKeyByID(ctx, ws, keyID)
	if err != nil || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) || k.Filter != nil {
		t.Errorf("old key after SetAPIKeyExpiry = %+v, %v; want expiry %v", k, err, exp)
	}

	// A new key without a filter stores no filter field at all, like the
	// old ones.
	plain := newKey(t, db, ws)
	var doc bson.M
	if err := db.Database().Collection("api_keys").FindOne(ctx, bson.D{{Key: "_id", Value: plain.ID}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["filter"]; ok {
		t.Errorf("stored key without a filter has a filter field: %v", doc["filter"])
	}
}
