// Package mongo is the MongoDB implementation of store.Backend, built on the
// official driver (go.mongodb.org/mongo-driver/v2).
//
// Layout: one collection per CRM resource (named after store.Resource.Name)
// plus workspaces, api_keys, usage_logs, idempotency_keys, webhooks,
// webhook_deliveries and outbox. Every document's _id is its string id;
// tenant documents carry workspace_id, which leads every tenant index and is
// part of every tenant filter.
//
// Events of record and key writes are stored in the written document itself
// and moved to the outbox collection later (see outbox.go): MongoDB changes
// one document atomically without a transaction, which FerretDB and
// standalone servers do not offer.
//
// Every filter and update is built here with bson.D from typed Go values, never
// from a client-supplied map, so a value such as {"$gt": ""} or "$where" is
// only ever stored and compared as a literal string.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store"
)

// Collection names besides the per-resource ones.
const (
	workspacesColl = "workspaces"
	apiKeysColl    = "api_keys"
	usageColl      = "usage_logs"
	webhooksColl   = "webhooks"
	deliveriesColl = "webhook_deliveries"
	outboxColl     = "outbox"
)

// DB is a store.Backend over one MongoDB database.
type DB struct {
	client *mongo.Client
	db     *mongo.Database

	// outboxHook, when set (by tests only), runs between the steps of
	// moving events to the outbox collection, with the name of the step
	// just done.
	outboxHook func(step string)

	closeOnce sync.Once
	closeErr  error
}

var _ store.Backend = (*DB)(nil)

// disconnectTimeout bounds Close.
const disconnectTimeout = 10 * time.Second

// Open connects to the server at uri, checks that it answers and creates the
// indexes of database (an idempotent step, done on every Open).
func Open(ctx context.Context, uri, database string) (*DB, error) {
	if database == "" {
		return nil, errors.New("mongo: database name is empty")
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongo: connect: %w", err)
	}
	d := &DB{client: client, db: client.Database(database)}
	if err := client.Ping(ctx, nil); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("mongo: ping: %w", err)
	}
	if err := d.createIndexes(ctx); err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// Close disconnects from the server, waiting (for a bounded time) for
// operations in flight. Calling it again returns the first call's result.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), disconnectTimeout)
		defer cancel()
		if err := d.client.Disconnect(ctx); err != nil {
			d.closeErr = fmt.Errorf("mongo: disconnect: %w", err)
		}
	})
	return d.closeErr
}

// Database returns the underlying database handle, for maintenance tasks
// and tests that inspect what is stored.
func (d *DB) Database() *mongo.Database { return d.db }

// indexes lists the indexes of every collection. Index names are the driver's
// defaults (derived from the keys), so creating them again is a no-op.
//
// Record collections, each index led by workspace_id:
//   - (workspace_id, created_at, _id) and (workspace_id, updated_at, _id):
//     lists in either sort order, either direction, with keyset pagination
//     and time bounds on the sort key;
//   - (workspace_id, <field>, created_at, _id) per filterable field: the
//     exact-match filter in the default order (created_at, either
//     direction); other combinations use one of these indexes and filter the
//     rest;
//   - unique (workspace_id, live_external_id): external ids among live
//     records (see liveExternalIDField), and upserts' lookup by external id.
//
// Maintenance indexes, deliberately not per workspace because retention runs
// across all workspaces: deleted_at (sparse: only tombstones have one) on
// every record collection, expires_at on idempotency keys, time on usage,
// created_at on deliveries.
//
// Indexes of the webhook machinery, across workspaces too because the relay
// and the delivery worker serve all of them: _outbox_pending (sparse: only
// documents with events waiting to be moved have it) on every record
// collection and on api_keys; (created_at, _id) on the outbox, its claim
// order; next_attempt_at (sparse: only pending deliveries have one) on
// deliveries. A subscription's deliveries are listed through
// (workspace_id, webhook_id, created_at, _id).
func indexes() map[string][]mongo.IndexModel {
	// listOrder serves a workspace's list, newest first, and lookups by
	// workspace; read backwards it serves oldest first too.
	listOrder := mongo.IndexModel{Keys: bson.D{{Key: "workspace_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}}
	m := map[string][]mongo.IndexModel{
		workspacesColl: {
			{Keys: bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}},
		},
		apiKeysColl: {
			{Keys: bson.D{{Key: "hash", Value: 1}}, Options: options.Index().SetUnique(true)},
			listOrder,
			outboxPendingIndex,
		},
		usageColl: {
			{Keys: bson.D{{Key: "workspace_id", Value: 1}, {Key: "time", Value: -1}, {Key: "_id", Value: -1}}},
			{Keys: bson.D{{Key: "workspace_id", Value: 1}, {Key: "key_id", Value: 1}, {Key: "time", Value: -1}, {Key: "_id", Value: -1}}},
			// Retention deletes old events across all workspaces.
			{Keys: bson.D{{Key: "time", Value: 1}}},
		},
		idempotencyColl: {
			// Keys are found by _id; expiry runs across all workspaces.
			{Keys: bson.D{{Key: "expires_at", Value: 1}}},
		},
		webhooksColl: {listOrder},
		deliveriesColl: {
			{Keys: bson.D{{Key: "workspace_id", Value: 1}, {Key: "webhook_id", Value: 1},
				{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
			{Keys: bson.D{{Key: "next_attempt_at", Value: 1}}, Options: options.Index().SetSparse(true)},
			{Keys: bson.D{{Key: "created_at", Value: 1}}},
		},
		outboxColl: {
			{Keys: bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}},
		},
	}
	for _, r := range store.Resources {
		models := []mongo.IndexModel{
			listOrder,
			{Keys: bson.D{{Key: "workspace_id", Value: 1}, {Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}},
		}
		for _, name := range r.FilterNames() {
			models = append(models, mongo.IndexModel{Keys: bson.D{{Key: "workspace_id", Value: 1}, {Key: name, Value: 1},
				{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}})
		}
		models = append(models,
			liveExternalIDIndex,
			mongo.IndexModel{Keys: bson.D{{Key: deletedAtField, Value: 1}}, Options: options.Index().SetSparse(true)},
			outboxPendingIndex)
		m[r.Name] = models
	}
	return m
}

// liveExternalIDIndex makes external ids unique among a workspace's live
// records of one resource.
var liveExternalIDIndex = mongo.IndexModel{
	Keys:    bson.D{{Key: "workspace_id", Value: 1}, {Key: liveExternalIDField, Value: 1}},
	Options: options.Index().SetUnique(true).SetName(liveExternalIDIndexName),
}

func isLiveExternalIDIndex(m mongo.IndexModel) bool {
	keys, _ := m.Keys.(bson.D)
	return len(keys) == 2 && keys[1].Key == liveExternalIDField
}

// liveExternalIDIndexName is the driver's default name for the index's keys.
const liveExternalIDIndexName = "workspace_id_1_" + liveExternalIDField + "_1"

// createIndexes creates every index, one createIndexes command per index.
// Creating an index that exists with the same keys and name is a no-op on
// MongoDB; FerretDB 1.x also accepts it, but fails (a server-side panic) on a
// single command that lists several already existing indexes.
//
// Before the unique index on live_external_id is first created, records
// stored by an earlier version, which lack the field, get it: otherwise
// MongoDB would index them all as null and refuse the index.
func (d *DB) createIndexes(ctx context.Context) error {
	for coll, models := range indexes() {
		for _, m := range models {
			if isLiveExternalIDIndex(m) {
				if err := d.backfillLiveExternalIDs(ctx, d.db.Collection(coll)); err != nil {
					return err
				}
			}
			if _, err := d.db.Collection(coll).Indexes().CreateOne(ctx, m); err != nil {
				return fmt.Errorf("mongo: create indexes on %s: %w", coll, err)
			}
		}
	}
	return nil
}

// backfillBatch bounds the updates sent in one bulk write.
const backfillBatch = 500

// backfillLiveExternalIDs sets live_external_id on every record of coll that
// lacks it, unless the unique index on it exists already (then every record
// has it, since every write sets it).
func (d *DB) backfillLiveExternalIDs(ctx context.Context, coll *mongo.Collection) error {
	names, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("mongo: list indexes of %s: %w", coll.Name(), err)
	}
	for _, spec := range names {
		if spec.Name == liveExternalIDIndexName {
			return nil
		}
	}
	missing := bson.D{{Key: liveExternalIDField, Value: bson.D{{Key: "$exists", Value: false}}}}
	proj := bson.D{{Key: "_id", Value: 1}, {Key: store.ExternalIDField, Value: 1}, {Key: deletedAtField, Value: 1}}
	cur, err := coll.Find(ctx, missing, options.Find().SetProjection(proj))
	if err != nil {
		return fmt.Errorf("mongo: find records of %s to backfill: %w", coll.Name(), err)
	}
	defer cur.Close(ctx)
	var batch []mongo.WriteModel
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := coll.BulkWrite(ctx, batch, options.BulkWrite().SetOrdered(false))
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("mongo: backfill %s of %s: %w", liveExternalIDField, coll.Name(), err)
		}
		return nil
	}
	for cur.Next(ctx) {
		var doc struct {
			ID         string    `bson:"_id"`
			ExternalID string    `bson:"external_id"`
			DeletedAt  time.Time `bson:"deleted_at"`
		}
		if err := cur.Decode(&doc); err != nil {
			return fmt.Errorf("mongo: read record of %s to backfill: %w", coll.Name(), err)
		}
		key := liveExternalID(doc.ID, map[string]any{store.ExternalIDField: doc.ExternalID}, !doc.DeletedAt.IsZero())
		batch = append(batch, mongo.NewUpdateOneModel().
			SetFilter(append(bson.D{{Key: "_id", Value: doc.ID}}, missing...)).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: liveExternalIDField, Value: key}}}}))
		if len(batch) == backfillBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongo: read records of %s to backfill: %w", coll.Name(), err)
	}
	return flush()
}

// translate turns driver errors into store errors: no document is not_found,
// a unique violation is conflict (both about what, such as "workspace"), and
// anything else is wrapped with the operation that failed.
func translate(err error, op, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return store.Errorf(store.ENOTFOUND, "%s not found.", capitalize(what))
	case isUniqueViolation(err):
		return store.Errorf(store.ECONFLICT, "%s already exists.", capitalize(what))
	default:
		return fmt.Errorf("mongo: %s: %w", op, err)
	}
}

// updateOne applies update to the document filter matches; matching none
// is not_found about what. op names the operation in other errors.
func updateOne(ctx context.Context, coll *mongo.Collection, filter, update bson.D, op, what string) error {
	res, err := coll.UpdateOne(ctx, filter, update)
	if err != nil {
		return translate(err, op, what)
	}
	if res.MatchedCount == 0 {
		return store.Errorf(store.ENOTFOUND, "%s not found.", capitalize(what))
	}
	return nil
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// utc returns t in UTC; every time read from the database goes through it.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// findOptions returns find options for a sort, offset and limit (0: none).
func findOptions(sort bson.D, offset, limit int) *options.FindOptionsBuilder {
	o := options.Find().SetSort(sort)
	if offset > 0 {
		o.SetSkip(int64(offset))
	}
	if limit > 0 {
		o.SetLimit(int64(limit))
	}
	return o
}
