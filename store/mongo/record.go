package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hustack/hustack/store"
)

// Names of the record fields managed by the server. A resource field never
// has one of these names; insert refuses one that does rather than let it
// overwrite a server-managed value.
var recordMeta = map[string]bool{
	"_id": true, "workspace_id": true, "created_at": true, "updated_at": true,
	"created_via": true, "api_key_id": true,
}

func (d *DB) records(r *store.Resource) *mongo.Collection { return d.db.Collection(r.Name) }

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
	}
	for _, f := range rec.Resource.Fields {
		v, ok := rec.Fields[f.Name]
		if !ok || v == nil {
			continue
		}
		if recordMeta[f.Name] {
			return nil, fmt.Errorf("mongo: field %q of %s clashes with a server-managed field", f.Name, rec.Resource.Name)
		}
		switch v := v.(type) {
		case string, float64:
			doc = append(doc, bson.E{Key: f.Name, Value: v})
		default:
			return nil, fmt.Errorf("mongo: field %q of %s: unsupported value type %T", f.Name, rec.Resource.Name, v)
		}
	}
	return doc, nil
}

// InsertRecord stores a new record.
func (d *DB) InsertRecord(ctx context.Context, rec *store.Record) error {
	if rec.Resource == nil {
		return errors.New("mongo: insert record: no resource")
	}
	doc, err := recordDoc(rec)
	if err != nil {
		return err
	}
	_, err = d.records(rec.Resource).InsertOne(ctx, doc)
	return translate(err, "insert "+rec.Resource.Singular, rec.Resource.Singular)
}

// FindRecordByID returns one record of the workspace.
func (d *DB) FindRecordByID(ctx context.Context, r *store.Resource, workspaceID, id string) (*store.Record, error) {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}}
	var doc bson.D
	if err := d.records(r).FindOne(ctx, filter).Decode(&doc); err != nil {
		return nil, translate(err, "find "+r.Singular, r.Singular)
	}
	return recordFromDoc(r, doc), nil
}

// FindRecords returns a page of the workspace's records, newest first.
func (d *DB) FindRecords(ctx context.Context, r *store.Resource, workspaceID string, q store.RecordQuery) ([]*store.Record, error) {
	filter := bson.D{{Key: "workspace_id", Value: workspaceID}}
	sort := bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}
	cur, err := d.records(r).Find(ctx, filter, findOptions(sort, q.Offset, q.Limit))
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
