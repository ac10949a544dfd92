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

// The outbox without transactions.
//
// MongoDB writes one document atomically, but several only in a
// transaction, which needs a replica set (and FerretDB has none). So a
// write that must store an event (a record's insert, update or deletion, a
// key's creation, revocation or expiry notice) stores it in the document
// it writes, in the same command: it appends the event to the document's
// _outbox array and sets _outbox_pending, which a sparse index makes cheap
// to find. The change and its event are then stored together or not at
// all.
//
// ClaimEvents first moves waiting events to the outbox collection, in
// three steps per batch of documents:
//
//  1. insert each event there, with its id as _id (a duplicate, left by a
//     move that failed half-way or ran concurrently, is ignored);
//  2. $pullAll exactly the entries read from each document, so an entry
//     pushed since the read stays;
//  3. unset _outbox and _outbox_pending where the array is empty, a
//     condition checked by the update itself, so an entry pushed since
//     step 2 keeps its document marked.
//
// It then claims from the outbox collection. An event may be moved twice
// (two relays reading one document at once), and so be fanned out twice;
// deliveries derive their ids from the event, so that stores nothing twice.
//
// A deletion's entry carries no data: the tombstone, which no write
// changes afterwards (and PurgeTombstones keeps while it has waiting
// events), gives it when the event is moved. The deletion so stays one
// command without a read first. Every other entry carries its data, made
// from what the write stored.

// Fields of a record or key document that hold its waiting events. Reads of
// records and keys project them away.
const (
	outboxField        = "_outbox"
	outboxPendingField = "_outbox_pending"
)

// outboxPendingIndex finds the documents that have events to move.
var outboxPendingIndex = mongo.IndexModel{
	Keys: bson.D{{Key: outboxPendingField, Value: 1}}, Options: options.Index().SetSparse(true),
}

// withoutOutbox is the projection that leaves the waiting events out of a read.
var withoutOutbox = bson.D{{Key: outboxField, Value: 0}, {Key: outboxPendingField, Value: 0}}

// outboxEntry is an event waiting in the document it is about; the
// document gives its workspace.
type outboxEntry struct {
	ID        string    `bson:"id"`
	Type      string    `bson:"type"`
	CreatedAt time.Time `bson:"created_at"`
	// Data is the event's JSON data; empty for a deletion (see above).
	Data string `bson:"data,omitempty"`
}

func newOutboxEntry(ev store.Event) outboxEntry {
	return outboxEntry{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, Data: string(ev.Data)}
}

// pushEvent returns the update operators that store entry with an update:
// set must be the update's $set document (it gets the marker).
func pushEvent(set bson.D, entry outboxEntry) bson.D {
	set = append(set, bson.E{Key: outboxPendingField, Value: true})
	return bson.D{{Key: "$set", Value: set}, {Key: "$push", Value: bson.D{{Key: outboxField, Value: entry}}}}
}

// insertEvent returns the fields that store entry with an insert.
func insertEvent(entry outboxEntry) bson.D {
	return bson.D{{Key: outboxField, Value: bson.A{entry}}, {Key: outboxPendingField, Value: true}}
}

// eventDoc is an event in the outbox collection.
type eventDoc struct {
	ID          string    `bson:"_id"`
	Type        string    `bson:"type"`
	CreatedAt   time.Time `bson:"created_at"`
	WorkspaceID string    `bson:"workspace_id"`
	Data        string    `bson:"data"`
	// ClaimedAt is absent until a relay claims the event; Claim identifies
	// that claim.
	ClaimedAt *time.Time `bson:"claimed_at,omitempty"`
	Claim     string     `bson:"claim,omitempty"`
}

func (d *DB) outbox() *mongo.Collection { return d.db.Collection(outboxColl) }

// moveBatch bounds the documents read from one collection by one move.
const moveBatch = 1000

// outboxSource is a collection whose documents carry events: a resource's
// (r set) or the keys' (r nil).
type outboxSource struct {
	coll *mongo.Collection
	r    *store.Resource
}

func (d *DB) outboxSources(withKeys bool) []outboxSource {
	var out []outboxSource
	for _, r := range store.Resources {
		out = append(out, outboxSource{coll: d.records(r), r: r})
	}
	if withKeys {
		out = append(out, outboxSource{coll: d.keys()})
	}
	return out
}

// moveEvents moves the waiting events of every source to the outbox
// collection.
func (d *DB) moveEvents(ctx context.Context, sources []outboxSource) error {
	for _, src := range sources {
		if err := d.moveFrom(ctx, src); err != nil {
			return err
		}
	}
	return nil
}

// pendingDoc is what a move reads of a document with waiting events. Raw
// keeps the entries byte for byte, so that $pullAll matches them exactly.
type pendingDoc struct {
	ID          string     `bson:"_id"`
	WorkspaceID string     `bson:"workspace_id"`
	Outbox      []bson.Raw `bson:"_outbox"`
}

// moveFrom moves up to moveBatch documents' events from one collection, in
// the three steps described at the top of this file.
func (d *DB) moveFrom(ctx context.Context, src outboxSource) error {
	name := src.coll.Name()
	opts := options.Find().SetLimit(moveBatch)
	if src.r == nil {
		opts.SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "workspace_id", Value: 1}, {Key: outboxField, Value: 1}})
	}
	cur, err := src.coll.Find(ctx, bson.D{{Key: outboxPendingField, Value: true}}, opts)
	if err != nil {
		return fmt.Errorf("mongo: find events to move in %s: %w", name, err)
	}
	var docs []pendingDoc
	var events []any
	for cur.Next(ctx) {
		var doc pendingDoc
		if err := cur.Decode(&doc); err != nil {
			_ = cur.Close(ctx)
			return fmt.Errorf("mongo: read events to move in %s: %w", name, err)
		}
		for _, raw := range doc.Outbox {
			ev, err := movedEvent(src, doc.WorkspaceID, raw, cur.Current)
			if err != nil {
				_ = cur.Close(ctx)
				return fmt.Errorf("mongo: event of %s %s: %w", name, doc.ID, err)
			}
			events = append(events, ev)
		}
		docs = append(docs, doc)
	}
	err = cur.Err()
	_ = cur.Close(ctx)
	if err != nil {
		return fmt.Errorf("mongo: read events to move in %s: %w", name, err)
	}
	if len(docs) == 0 {
		return nil
	}

	if len(events) > 0 {
		_, err := d.outbox().InsertMany(ctx, events, options.InsertMany().SetOrdered(false))
		if err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("mongo: move events of %s: %w", name, err)
		}
	}
	d.outboxStep("inserted")

	var pulls []mongo.WriteModel
	for _, doc := range docs {
		if len(doc.Outbox) == 0 {
			continue
		}
		entries := make(bson.A, len(doc.Outbox))
		for i, raw := range doc.Outbox {
			entries[i] = raw
		}
		pulls = append(pulls, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: doc.ID}}).
			SetUpdate(bson.D{{Key: "$pullAll", Value: bson.D{{Key: outboxField, Value: entries}}}}))
	}
	if len(pulls) > 0 {
		if _, err := src.coll.BulkWrite(ctx, pulls, options.BulkWrite().SetOrdered(false)); err != nil {
			return fmt.Errorf("mongo: remove moved events from %s: %w", name, err)
		}
	}
	d.outboxStep("pulled")

	unmarks := make([]mongo.WriteModel, len(docs))
	for i, doc := range docs {
		unmarks[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{
				{Key: "_id", Value: doc.ID},
				{Key: "$or", Value: bson.A{
					bson.D{{Key: outboxField, Value: bson.D{{Key: "$size", Value: 0}}}},
					bson.D{{Key: outboxField, Value: bson.D{{Key: "$exists", Value: false}}}},
				}},
			}).
			SetUpdate(bson.D{{Key: "$unset", Value: bson.D{{Key: outboxField, Value: ""}, {Key: outboxPendingField, Value: ""}}}})
	}
	if _, err := src.coll.BulkWrite(ctx, unmarks, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("mongo: unmark documents of %s: %w", name, err)
	}
	d.outboxStep("unmarked")
	return nil
}

func (d *DB) outboxStep(step string) {
	if d.outboxHook != nil {
		d.outboxHook(step)
	}
}

// movedEvent turns an entry of a document into an outbox event. An entry
// without data is a deletion: its data is the tombstone, read from the
// document (whole, in raw).
func movedEvent(src outboxSource, workspaceID string, entryRaw, docRaw bson.Raw) (eventDoc, error) {
	var e outboxEntry
	if err := bson.Unmarshal(entryRaw, &e); err != nil {
		return eventDoc{}, err
	}
	ev := eventDoc{ID: e.ID, Type: e.Type, CreatedAt: e.CreatedAt, WorkspaceID: workspaceID, Data: e.Data}
	if ev.Data == "" && src.r != nil {
		var doc bson.D
		if err := bson.Unmarshal(docRaw, &doc); err != nil {
			return eventDoc{}, err
		}
		made, err := store.NewRecordEvent(recordFromDoc(src.r, doc), store.KindDeleted)
		if err != nil {
			return eventDoc{}, err
		}
		ev.Data = string(made.Data)
	}
	if ev.Data == "" {
		return eventDoc{}, fmt.Errorf("event %s has no data", e.ID)
	}
	return ev, nil
}

// ClaimEvents moves waiting events to the outbox collection, then claims
// up to limit of its events, oldest first, that were never claimed or were
// claimed before staleBefore. Each claim carries a token of its own, so
// that of two relays claiming at once each gets only the events its own
// update marked.
func (d *DB) ClaimEvents(ctx context.Context, now, staleBefore time.Time, limit int) ([]store.Event, error) {
	if err := d.moveEvents(ctx, d.outboxSources(true)); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return []store.Event{}, nil
	}
	claimable := bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "claimed_at", Value: nil}},
		bson.D{{Key: "claimed_at", Value: bson.D{{Key: "$lt", Value: staleBefore}}}},
	}}
	order := bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}
	cur, err := d.outbox().Find(ctx, bson.D{claimable},
		findOptions(order, 0, limit).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, translate(err, "find events to claim", "event")
	}
	var found []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &found); err != nil {
		return nil, translate(err, "read events to claim", "event")
	}
	if len(found) == 0 {
		return []store.Event{}, nil
	}
	ids := make(bson.A, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	token := store.NewID()
	inIDs := bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}
	claim := bson.D{{Key: "$set", Value: bson.D{{Key: "claimed_at", Value: now}, {Key: "claim", Value: token}}}}
	if _, err := d.outbox().UpdateMany(ctx, bson.D{inIDs, claimable}, claim); err != nil {
		return nil, translate(err, "claim events", "event")
	}
	cur, err = d.outbox().Find(ctx, bson.D{inIDs, {Key: "claim", Value: token}}, findOptions(order, 0, 0))
	if err != nil {
		return nil, translate(err, "find claimed events", "event")
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read claimed events", "event")
	}
	out := make([]store.Event, len(docs))
	for i, doc := range docs {
		out[i] = store.Event{ID: doc.ID, Type: doc.Type, CreatedAt: utc(doc.CreatedAt), WorkspaceID: doc.WorkspaceID,
			Data: []byte(doc.Data)}
	}
	return out, nil
}

// DeleteEvents removes events from the outbox collection; unknown ids are
// no error.
func (d *DB) DeleteEvents(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := d.outbox().DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	return translate(err, "delete events", "event")
}
