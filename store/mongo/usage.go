package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store"
)

// usageDoc is one stored usage event. Day (UTC, YYYY-MM-DD) is stored so that
// counts by day are a plain group on one field.
type usageDoc struct {
	ID          string    `bson:"_id"`
	WorkspaceID string    `bson:"workspace_id"`
	KeyID       string    `bson:"key_id"`
	Method      string    `bson:"method"`
	Route       string    `bson:"route"`
	Status      int32     `bson:"status"`
	DurationMS  float64   `bson:"duration_ms"`
	Time        time.Time `bson:"time"`
	Day         string    `bson:"day"`
	RequestID   string    `bson:"request_id"`
	Transport   string    `bson:"transport"`
	UserAgent   string    `bson:"user_agent"`
}

func newUsageDoc(e store.UsageEvent) usageDoc {
	return usageDoc{
		ID:          e.ID,
		WorkspaceID: e.WorkspaceID,
		KeyID:       e.KeyID,
		Method:      e.Method,
		Route:       e.Route,
		Status:      int32(e.Status),
		DurationMS:  e.DurationMS,
		Time:        e.Time,
		Day:         e.Day(),
		RequestID:   e.RequestID,
		Transport:   e.Transport,
		UserAgent:   e.UserAgent,
	}
}

func (doc usageDoc) event() store.UsageEvent {
	return store.UsageEvent{
		ID:          doc.ID,
		WorkspaceID: doc.WorkspaceID,
		KeyID:       doc.KeyID,
		Method:      doc.Method,
		Route:       doc.Route,
		Status:      int(doc.Status),
		DurationMS:  doc.DurationMS,
		Time:        utc(doc.Time),
		RequestID:   doc.RequestID,
		Transport:   doc.Transport,
		UserAgent:   doc.UserAgent,
	}
}

func (d *DB) usage() *mongo.Collection { return d.db.Collection(usageColl) }

// InsertUsageEvents stores events in one unordered bulk insert. An event whose
// id is already stored is a duplicate-key write error, which is the expected
// outcome of a retried batch and so not an error.
func (d *DB) InsertUsageEvents(ctx context.Context, events []store.UsageEvent) error {
	if len(events) == 0 {
		return nil
	}
	docs := make([]usageDoc, len(events))
	for i, e := range events {
		docs[i] = newUsageDoc(e)
	}
	_, err := d.usage().InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil || onlyDuplicates(err) {
		return nil
	}
	return fmt.Errorf("mongo: insert usage events: %w", err)
}

// onlyDuplicates reports whether err is a bulk write error whose every write
// error is a duplicate key, with no write concern error.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !isDuplicateCode(we.Code) {
			return false
		}
	}
	return true
}

func isDuplicateCode(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// usageFilter selects a workspace's events matching q.
func usageFilter(workspaceID string, q store.UsageQuery) bson.D {
	filter := bson.D{{Key: "workspace_id", Value: workspaceID}}
	if q.KeyID != "" {
		filter = append(filter, bson.E{Key: "key_id", Value: q.KeyID})
	}
	if q.Status != 0 {
		filter = append(filter, bson.E{Key: "status", Value: int32(q.Status)})
	}
	var span bson.D
	if !q.From.IsZero() {
		span = append(span, bson.E{Key: "$gte", Value: q.From.UTC()})
	}
	if !q.To.IsZero() {
		span = append(span, bson.E{Key: "$lt", Value: q.To.UTC()})
	}
	if span != nil {
		filter = append(filter, bson.E{Key: "time", Value: span})
	}
	return filter
}

// FindUsageEvents returns a workspace's events matching q, newest first.
func (d *DB) FindUsageEvents(ctx context.Context, workspaceID string, q store.UsageQuery) ([]store.UsageEvent, error) {
	sort := bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}
	cur, err := d.usage().Find(ctx, usageFilter(workspaceID, q), findOptions(sort, q.Offset, q.Limit))
	if err != nil {
		return nil, translate(err, "find usage events", "usage event")
	}
	var docs []usageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read usage events", "usage event")
	}
	out := make([]store.UsageEvent, len(docs))
	for i, doc := range docs {
		out[i] = doc.event()
	}
	return out, nil
}

// groupField is the stored field each usage group is keyed by.
var groupField = map[store.UsageGroup]string{
	store.GroupByDay:    "day",
	store.GroupByKey:    "key_id",
	store.GroupByRoute:  "route",
	store.GroupByStatus: "status",
}

// CountUsage counts a workspace's events matching q by group, ordered by
// group key. It runs two single-field $group/$sum aggregations, one over all
// matching events and one over those with status >= 400, and merges them in
// Go: one group key and one $sum is the shape of aggregation that MongoDB and
// FerretDB 1.x agree on (FerretDB miscounts some $group stages with several
// sums, and lacks $cond-style accumulators and $dateToString, hence the
// stored day field).
func (d *DB) CountUsage(ctx context.Context, workspaceID string, q store.UsageQuery, by store.UsageGroup) ([]store.UsageCount, error) {
	field, ok := groupField[by]
	if !ok {
		return nil, store.FieldError("group_by", "must be one of day, key, route, status.")
	}
	filter := usageFilter(workspaceID, q)
	totals, err := d.countBy(ctx, filter, field)
	if err != nil {
		return nil, err
	}
	var errs map[string]int64
	switch {
	case q.Status >= 400:
		errs = totals // every matching event is an error
	case q.Status != 0:
		errs = map[string]int64{} // none is
	default:
		errFilter := append(slices.Clone(filter), bson.E{Key: "status", Value: bson.D{{Key: "$gte", Value: int32(400)}}})
		if errs, err = d.countBy(ctx, errFilter, field); err != nil {
			return nil, err
		}
	}
	out := make([]store.UsageCount, 0, len(totals))
	for g, n := range totals {
		out = append(out, store.UsageCount{Group: g, Count: n, Errors: errs[g]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// countBy counts the events matching filter per value of field.
func (d *DB) countBy(ctx context.Context, filter bson.D, field string) (map[string]int64, error) {
	pipeline := mongo.Pipeline{
		{{Key: "$match", Value: filter}},
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: "$" + field},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	}
	cur, err := d.usage().Aggregate(ctx, pipeline)
	if err != nil {
		return nil, translate(err, "count usage", "usage event")
	}
	var rows []struct {
		Group any `bson:"_id"`
		N     any `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, translate(err, "read usage counts", "usage event")
	}
	out := make(map[string]int64, len(rows))
	for _, row := range rows {
		out[groupKey(row.Group)] += intValue(row.N)
	}
	return out, nil
}

// groupKey renders a group's _id (a string, or the status number) as text.
func groupKey(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int32:
		return strconv.Itoa(int(v))
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatInt(int64(v), 10)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func intValue(v any) int64 {
	switch v := v.(type) {
	case int32:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}

// DeleteUsageBefore deletes events older than before, in all workspaces.
func (d *DB) DeleteUsageBefore(ctx context.Context, before time.Time) (int64, error) {
	filter := bson.D{{Key: "time", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}}
	res, err := d.usage().DeleteMany(ctx, filter)
	if err != nil {
		return 0, translate(err, "delete usage events", "usage event")
	}
	return res.DeletedCount, nil
}
