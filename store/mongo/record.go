package mongo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store"
)

// Server-managed fields of a stored record besides the schema fields.
const (
	deletedAtField = "deleted_at"
	// liveExternalIDField makes external ids unique among live records
	// without a partial index (which FerretDB lacks): it holds the record's
	// external_id while the record is live and has one, and otherwise a value
	// no external id can take, "\x00" followed by the record's own id (a
	// client's external_id never contains NUL: the store refuses it). A
	// unique index on (workspace_id, live_external_id) then rejects a second
	// live record with the same external_id, while records without one and
	// tombstones never collide with anything. DeleteRecord switches the
	// field to the per-record value, which frees the external id.
	liveExternalIDField = "live_external_id"
)

// Names of the record fields managed by the server. A resource field never
// has one of these names; insert refuses one that does rather than let it
// overwrite a server-managed value.
var recordMeta = map[string]bool{
	"_id": true, "workspace_id": true, "created_at": true, "updated_at": true,
	"created_via": true, "api_key_id": true, deletedAtField: true, liveExternalIDField: true,
	outboxField: true, outboxPendingField: true,
}

func (d *DB) records(r *store.Resource) *mongo.Collection { return d.db.Collection(r.Name) }

// liveExternalID is the value of liveExternalIDField for a record: its
// external_id while it is live and has one, else a value unique to it.
func liveExternalID(id string, fields map[string]any, deleted bool) string {
	if ext, ok := fields[store.ExternalIDField].(string); ok && ext != "" && !deleted {
		return ext
	}
	return noExternalID(id)
}

func noExternalID(id string) string { return "\x00" + id }

// recordDoc builds the stored document of a record: the server-managed fields,
// then each schema field that is set, as a top-level field of the same name.
func recordDoc(rec *store.Record) (bson.D, error) {
	doc := bson.D{
		{Key: "_id", Value: rec.ID},
		{Key: "workspace_id", Value: rec.WorkspaceID},
		{Key: "created_at", Value: rec.CreatedAt},
		{Key: "updated_at", Value: rec.UpdatedAt},
		{Key: "created_via", Value: rec.CreatedVia},
		{Key: "api_key_id", Value: rec.APIKeyID},
		{Key: liveExternalIDField, Value: liveExternalID(rec.ID, rec.Fields, rec.DeletedAt != nil)},
	}
	if rec.DeletedAt != nil {
		doc = append(doc, bson.E{Key: deletedAtField, Value: *rec.DeletedAt})
	}
	fields, _, err := fieldValues(rec)
	if err != nil {
		return nil, err
	}
	return append(doc, fields...), nil
}

// fieldValues splits the schema fields of rec into those that are set (with
// their values) and those that are not (as an $unset document).
func fieldValues(rec *store.Record) (set, unset bson.D, err error) {
	for _, f := range rec.Resource.Fields {
		if recordMeta[f.Name] {
			return nil, nil, fmt.Errorf("mongo: field %q of %s clashes with a server-managed field", f.Name, rec.Resource.Name)
		}
		v, ok := rec.Fields[f.Name]
		if !ok || v == nil {
			unset = append(unset, bson.E{Key: f.Name, Value: ""})
			continue
		}
		switch v := v.(type) {
		case string, float64:
			set = append(set, bson.E{Key: f.Name, Value: v})
		default:
			return nil, nil, fmt.Errorf("mongo: field %q of %s: unsupported value type %T", f.Name, rec.Resource.Name, v)
		}
	}
	return set, unset, nil
}

// liveFilter selects the live record id of a workspace.
func liveFilter(workspaceID, id string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}, {Key: deletedAtField, Value: nil}}
}

// InsertRecord stores a new record with its created event; a live record of
// the workspace with the same external_id is a conflict.
func (d *DB) InsertRecord(ctx context.Context, rec *store.Record) error {
	if rec.Resource == nil {
		return errors.New("mongo: insert record: no resource")
	}
	doc, err := recordDoc(rec)
	if err != nil {
		return err
	}
	ev, err := store.NewRecordEvent(rec, store.KindCreated)
	if err != nil {
		return err
	}
	doc = append(doc, insertEvent(newOutboxEntry(ev))...)
	_, err = d.records(rec.Resource).InsertOne(ctx, doc)
	return translate(err, "insert "+rec.Resource.Singular, rec.Resource.Singular)
}

// FindRecordByID returns one live record of the workspace.
func (d *DB) FindRecordByID(ctx context.Context, r *store.Resource, workspaceID, id string) (*store.Record, error) {
	return d.findRecord(ctx, r, liveFilter(workspaceID, id))
}

// FindRecordByExternalID returns the live record of the workspace with that
// external_id, through the unique index on live_external_id.
func (d *DB) FindRecordByExternalID(ctx context.Context, r *store.Resource, workspaceID, externalID string) (*store.Record, error) {
	if externalID == "" {
		return nil, store.Errorf(store.ENOTFOUND, "%s not found.", capitalize(r.Singular))
	}
	filter := bson.D{
		{Key: "workspace_id", Value: workspaceID},
		{Key: liveExternalIDField, Value: externalID},
		// Also on the field itself, so that a made-up "\x00"+id never finds
		// the record id, which has no external_id.
		{Key: store.ExternalIDField, Value: externalID},
		{Key: deletedAtField, Value: nil},
	}
	return d.findRecord(ctx, r, filter)
}

func (d *DB) findRecord(ctx context.Context, r *store.Resource, filter bson.D) (*store.Record, error) {
	var doc bson.D
	if err := d.records(r).FindOne(ctx, filter, options.FindOne().SetProjection(withoutOutbox)).Decode(&doc); err != nil {
		return nil, translate(err, "find "+r.Singular, r.Singular)
	}
	return recordFromDoc(r, doc), nil
}

// UpdateRecord replaces the fields and updated_at of a live record,
// provided its updated_at is still prevUpdatedAt: the condition is part of
// the update's filter, so MongoDB checks and writes atomically, the updated
// event with the rest.
//
// External ids are unique through the index on live_external_id. A
// duplicate caused by an update is reported by MongoDB as a duplicate key
// error, but by FerretDB 1.x as an InternalError; so the update first looks
// for another live record with the external id (giving a clean conflict in
// the common case) and isUniqueViolation also recognises FerretDB's error.
func (d *DB) UpdateRecord(ctx context.Context, rec *store.Record, prevUpdatedAt time.Time) error {
	r := rec.Resource
	if r == nil {
		return errors.New("mongo: update record: no resource")
	}
	set, unset, err := fieldValues(rec)
	if err != nil {
		return err
	}
	key := liveExternalID(rec.ID, rec.Fields, false)
	if key != noExternalID(rec.ID) {
		other := bson.D{
			{Key: "workspace_id", Value: rec.WorkspaceID},
			{Key: liveExternalIDField, Value: key},
			{Key: "_id", Value: bson.D{{Key: "$ne", Value: rec.ID}}},
		}
		err := d.records(r).FindOne(ctx, other, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		switch {
		case err == nil:
			return externalIDTaken(r, key)
		case !errors.Is(err, mongo.ErrNoDocuments):
			return translate(err, "update "+r.Singular, r.Singular)
		}
	}
	ev, err := store.NewRecordEvent(rec, store.KindUpdated)
	if err != nil {
		return err
	}
	set = append(set,
		bson.E{Key: "updated_at", Value: rec.UpdatedAt},
		bson.E{Key: liveExternalIDField, Value: key})
	update := pushEvent(set, newOutboxEntry(ev))
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	filter := append(liveFilter(rec.WorkspaceID, rec.ID), bson.E{Key: "updated_at", Value: prevUpdatedAt})
	res, err := d.records(r).UpdateOne(ctx, filter, update)
	if isUniqueViolation(err) {
		return externalIDTaken(r, key)
	}
	if err != nil {
		return translate(err, "update "+r.Singular, r.Singular)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	// Nothing matched: either there is no such record (not_found), or it
	// was changed or deleted since it was read (stale).
	err = d.records(r).FindOne(ctx, bson.D{{Key: "_id", Value: rec.ID}, {Key: "workspace_id", Value: rec.WorkspaceID}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err != nil {
		return translate(err, "update "+r.Singular, r.Singular)
	}
	return store.ErrStale
}

func externalIDTaken(r *store.Resource, ext string) error {
	return &store.Error{Code: store.ECONFLICT, Field: store.ExternalIDField,
		Message: fmt.Sprintf("%s: another %s already has external_id %q.", store.ExternalIDField, r.Singular, ext)}
}

// DeleteRecord turns a live record into a tombstone and frees its external
// id. Its deleted event has no data yet: the tombstone gives it when the
// event is moved to the outbox (see outbox.go).
func (d *DB) DeleteRecord(ctx context.Context, r *store.Resource, workspaceID, id string, at time.Time) error {
	entry := outboxEntry{ID: store.NewID(), Type: r.Singular + "." + store.KindDeleted, CreatedAt: at}
	update := pushEvent(bson.D{
		{Key: deletedAtField, Value: at},
		{Key: "updated_at", Value: at},
		{Key: liveExternalIDField, Value: noExternalID(id)},
	}, entry)
	return updateOne(ctx, d.records(r), liveFilter(workspaceID, id), update, "delete "+r.Singular, r.Singular)
}

// PurgeTombstones removes tombstones deleted before the given time from
// every resource's collection. A tombstone's deleted event is made from it
// when the event is moved to the outbox, so the waiting events are moved
// first, and a tombstone whose events are still waiting (stored meanwhile)
// is kept for the next purge.
func (d *DB) PurgeTombstones(ctx context.Context, before time.Time) (int64, error) {
	if err := d.moveEvents(ctx, d.outboxSources(false)); err != nil {
		return 0, err
	}
	var n int64
	filter := bson.D{
		{Key: deletedAtField, Value: bson.D{{Key: "$lt", Value: before}}},
		{Key: outboxPendingField, Value: bson.D{{Key: "$exists", Value: false}}},
	}
	for _, r := range store.Resources {
		res, err := d.records(r).DeleteMany(ctx, filter)
		if err != nil {
			return n, translate(err, "purge "+r.Name, r.Singular)
		}
		n += res.DeletedCount
	}
	return n, nil
}

// FindRecords returns a page of the workspace's records in q's order.
func (d *DB) FindRecords(ctx context.Context, r *store.Resource, workspaceID string, q store.RecordQuery) ([]*store.Record, error) {
	filter, err := recordFilter(r, workspaceID, q)
	if err != nil {
		return nil, err
	}
	if filter == nil { // matches nothing
		return []*store.Record{}, nil
	}
	sortField, err := sortKey(q)
	if err != nil {
		return nil, err
	}
	dir := -1
	if q.Ascending {
		dir = 1
	}
	sort := bson.D{{Key: sortField, Value: dir}, {Key: "_id", Value: dir}}
	cur, err := d.records(r).Find(ctx, filter, findOptions(sort, q.Offset, q.Limit).SetProjection(withoutOutbox))
	if err != nil {
		return nil, translate(err, "find "+r.Name, r.Singular)
	}
	var docs []bson.D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read "+r.Name, r.Singular)
	}
	out := make([]*store.Record, len(docs))
	for i, doc := range docs {
		out[i] = recordFromDoc(r, doc)
	}
	return out, nil
}

// sortKey returns the field q sorts by: created_at unless q says updated_at.
func sortKey(q store.RecordQuery) (string, error) {
	switch q.Sort {
	case "", store.SortCreatedAt:
		return "created_at", nil
	case store.SortUpdatedAt:
		return "updated_at", nil
	}
	return "", fmt.Errorf("mongo: unknown record sort %q", q.Sort)
}

// recordFilter builds the filter of a record query. Every value in it is a
// typed Go value placed by this function (field names come from the
// resource's schema), so user text is only ever compared literally. It
// returns a nil filter for a query that can match nothing.
func recordFilter(r *store.Resource, workspaceID string, q store.RecordQuery) (bson.D, error) {
	filter := bson.D{{Key: "workspace_id", Value: workspaceID}}
	if !q.IncludeDeleted {
		filter = append(filter, bson.E{Key: deletedAtField, Value: nil})
	}
	for _, ff := range q.Filters {
		f, ok := r.Field(ff.Field)
		if !ok || recordMeta[f.Name] {
			return nil, fmt.Errorf("mongo: %s has no field %q to filter on", r.Name, ff.Field)
		}
		switch v := ff.Value.(type) {
		case string, float64:
			filter = append(filter, bson.E{Key: f.Name, Value: v})
		default:
			return nil, fmt.Errorf("mongo: filter on %s.%s: unsupported value type %T", r.Name, f.Name, ff.Value)
		}
	}
	field, err := sortKey(q)
	if err != nil {
		return nil, err
	}
	created := timeRange(q.CreatedAfter, q.CreatedBefore)
	updated := timeRange(q.UpdatedAfter, q.UpdatedBefore)
	var and bson.A
	if q.After != nil {
		op, bound := "$lt", "$lte"
		if q.Ascending {
			op, bound = "$gt", "$gte"
		}
		// Strictly after the position in (sort key, _id) order. The plain
		// bound on the sort key repeats what the $or implies, so that the
		// index scan starts at the position whatever the planner makes of
		// the $or: a deep page costs what the first page costs.
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: field, Value: bson.D{{Key: op, Value: q.After.Time}}}},
			bson.D{{Key: field, Value: q.After.Time}, {Key: "_id", Value: bson.D{{Key: op, Value: q.After.ID}}}},
		}}})
		if field == "created_at" {
			created = append(created, bson.E{Key: bound, Value: q.After.Time})
		} else {
			updated = append(updated, bson.E{Key: bound, Value: q.After.Time})
		}
	}
	if created != nil {
		filter = append(filter, bson.E{Key: "created_at", Value: created})
	}
	if updated != nil {
		filter = append(filter, bson.E{Key: "updated_at", Value: updated})
	}
	if q.Search != "" {
		if len(r.SearchFields) == 0 {
			return nil, nil
		}
		// Plain text: QuoteMeta escapes every regular expression
		// metacharacter, so the pattern is a literal substring and cannot
		// backtrack catastrophically.
		re := bson.Regex{Pattern: regexp.QuoteMeta(q.Search), Options: "i"}
		var or bson.A
		for _, name := range r.SearchFields {
			or = append(or, bson.D{{Key: name, Value: re}})
		}
		and = append(and, bson.D{{Key: "$or", Value: or}})
	}
	switch len(and) {
	case 0:
	case 1:
		filter = append(filter, and[0].(bson.D)...)
	default:
		filter = append(filter, bson.E{Key: "$and", Value: and})
	}
	return filter, nil
}

// timeRange is the exclusive range (after, before) as a filter value, nil
// when both are zero. Stored times have millisecond precision, so a bound
// with a finer part is rounded the way that keeps the comparison exact:
// t > after iff t > after truncated; t < before iff t < before rounded up.
func timeRange(after, before time.Time) bson.D {
	var b bson.D
	if !after.IsZero() {
		b = append(b, bson.E{Key: "$gt", Value: after.Truncate(time.Millisecond)})
	}
	if !before.IsZero() {
		up := before.Truncate(time.Millisecond)
		if up.Before(before) {
			up = up.Add(time.Millisecond)
		}
		b = append(b, bson.E{Key: "$lt", Value: up})
	}
	return b
}

// recordFromDoc reads a stored document back. Only fields of the resource's
// schema land in Fields, as string or float64.
func recordFromDoc(r *store.Resource, doc bson.D) *store.Record {
	rec := &store.Record{Resource: r, Fields: map[string]any{}}
	for _, e := range doc {
		switch e.Key {
		case "_id":
			rec.ID, _ = e.Value.(string)
		case "workspace_id":
			rec.WorkspaceID, _ = e.Value.(string)
		case "created_at":
			rec.CreatedAt = timeValue(e.Value)
		case "updated_at":
			rec.UpdatedAt = timeValue(e.Value)
		case "created_via":
			rec.CreatedVia, _ = e.Value.(string)
		case "api_key_id":
			rec.APIKeyID, _ = e.Value.(string)
		case deletedAtField:
			if t := timeValue(e.Value); !t.IsZero() {
				rec.DeletedAt = &t
			}
		case liveExternalIDField, outboxField, outboxPendingField:
		default:
			if _, ok := r.Field(e.Key); !ok {
				continue
			}
			switch v := e.Value.(type) {
			case string, float64:
				rec.Fields[e.Key] = v
			case int32:
				rec.Fields[e.Key] = float64(v)
			case int64:
				rec.Fields[e.Key] = float64(v)
			}
		}
	}
	return rec
}

func timeValue(v any) time.Time {
	switch v := v.(type) {
	case bson.DateTime:
		return v.Time().UTC()
	case time.Time:
		return v.UTC()
	}
	return time.Time{}
}

// isUniqueViolation reports a duplicate key: MongoDB's error codes, or the
// InternalError FerretDB 1.x returns when an update (rather than an insert)
// hits a unique index, which carries SQLite's message.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Name == "InternalError" && strings.Contains(ce.Message, "UNIQUE constraint failed")
}
