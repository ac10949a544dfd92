package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/hustack/hustack/store"
)

// table is the SQL side of one resource: its column lists and its prepared
// statements. Columns are id, workspace_id, the fields in schema order, then
// created_at, updated_at, created_via, api_key_id. Queries leave out
// workspace_id: the caller gave it.
type table struct {
	r       *store.Resource
	name    string // quoted
	columns string // all, for inserts
	selects string // all but workspace_id
	what    string // "Account", for messages

	insert, find, list *sql.Stmt
}

func newTable(r *store.Resource) *table {
	cols := []string{"id"}
	for _, f := range r.Fields {
		cols = append(cols, quote(f.Name))
	}
	cols = append(cols, "created_at", "updated_at", "created_via", "api_key_id")
	what := []rune(r.Singular)
	what[0] = unicode.ToUpper(what[0])
	return &table{r: r, name: quote(r.Name), what: string(what),
		columns: "workspace_id, " + strings.Join(cols, ", "), selects: strings.Join(cols, ", ")}
}

func (t *table) numColumns() int { return len(t.r.Fields) + 6 }

func (t *table) insertSQL() string {
	marks := strings.TrimSuffix(strings.Repeat("?, ", t.numColumns()), ", ")
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", t.name, t.columns, marks)
}

func (t *table) findSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE workspace_id = ? AND id = ?", t.selects, t.name)
}

func (t *table) listSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE workspace_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
		t.selects, t.name)
}

func (db *DB) table(r *store.Resource) (*table, error) {
	t, ok := db.tables[r]
	if !ok {
		return nil, fmt.Errorf("sqlite: unknown resource %v", r)
	}
	return t, nil
}

func (db *DB) InsertRecord(ctx context.Context, rec *store.Record) error {
	t, err := db.table(rec.Resource)
	if err != nil {
		return err
	}
	args := make([]any, 0, t.numColumns())
	args = append(args, rec.WorkspaceID, rec.ID)
	for _, f := range t.r.Fields {
		v, err := fieldArg(f, rec.Fields[f.Name])
		if err != nil {
			return fmt.Errorf("sqlite: insert %s: %w", t.r.Singular, err)
		}
		args = append(args, v)
	}
	args = append(args, ms(rec.CreatedAt), ms(rec.UpdatedAt), rec.CreatedVia, rec.APIKeyID)
	_, err = t.insert.ExecContext(ctx, args...)
	return translate(err, "insert "+t.r.Singular, t.what)
}

// fieldArg checks that a field value has the type its column stores.
func fieldArg(f store.Field, v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case float64:
		if f.Type == store.FieldNumber {
			return v, nil
		}
	case string:
		if f.Type != store.FieldNumber {
			return v, nil
		}
	}
	return nil, fmt.Errorf("field %s (%s) cannot hold a %T", f.Name, f.Type, v)
}

func (db *DB) FindRecordByID(ctx context.Context, r *store.Resource, workspaceID, id string) (*store.Record, error) {
	t, err := db.table(r)
	if err != nil {
		return nil, err
	}
	rows, err := t.find.QueryContext(ctx, workspaceID, id)
	if err != nil {
		return nil, translate(err, "find "+r.Singular, t.what)
	}
	recs, err := t.scan(rows, workspaceID, 1)
	if err != nil {
		return nil, translate(err, "find "+r.Singular, t.what)
	}
	if len(recs) == 0 {
		return nil, notFound(t.what)
	}
	return recs[0], nil
}

func (db *DB) FindRecords(ctx context.Context, r *store.Resource, workspaceID string, q store.RecordQuery) ([]*store.Record, error) {
	t, err := db.table(r)
	if err != nil {
		return nil, err
	}
	rows, err := t.list.QueryContext(ctx, workspaceID, limitArg(q.Limit), max(q.Offset, 0))
	if err != nil {
		return nil, translate(err, "find "+r.Name, t.what)
	}
	recs, err := t.scan(rows, workspaceID, max(q.Limit, 0))
	return recs, translate(err, "find "+r.Name, t.what)
}

var errColumn = errors.New("unexpected column value")

// scan reads records from rows and closes them. One set of scan targets is
// reused for every row; each record then gets only its own map and values.
func (t *table) scan(rows *sql.Rows, workspaceID string, sizeHint int) ([]*store.Record, error) {
	defer rows.Close()
	n := t.numColumns() - 1 // no workspace_id
	vals := make([]any, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	fields := t.r.Fields
	out := make([]*store.Record, 0, min(sizeHint, 256))
	for rows.Next() {
		clear(vals)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		rec := &store.Record{Resource: t.r, WorkspaceID: workspaceID}
		var ok [5]bool
		rec.ID, ok[0] = vals[0].(string)
		fv := vals[1 : 1+len(fields)]
		set := 0
		for _, v := range fv {
			if v != nil {
				set++
			}
		}
		rec.Fields = make(map[string]any, set)
		for i, f := range fields {
			switch v := fv[i].(type) {
			case nil:
			case string, float64:
				rec.Fields[f.Name] = fv[i] // the driver's value, not boxed again
			case int64: // a REAL column hands back whole numbers as integers
				rec.Fields[f.Name] = float64(v)
			default:
				return nil, fmt.Errorf("%s.%s: %w %T", t.r.Name, f.Name, errColumn, v)
			}
		}
		tail := vals[1+len(fields):]
		var created, updated int64
		created, ok[1] = tail[0].(int64)
		updated, ok[2] = tail[1].(int64)
		rec.CreatedVia, ok[3] = tail[2].(string)
		rec.APIKeyID, ok[4] = tail[3].(string)
		for i, good := range ok {
			if !good {
				return nil, fmt.Errorf("%s: %w in system column %d", t.r.Name, errColumn, i)
			}
		}
		rec.CreatedAt, rec.UpdatedAt = fromMS(created), fromMS(updated)
		out = append(out, rec)
	}
	return out, rows.Err()
}
