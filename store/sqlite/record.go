package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/hustack/hustack/store"
)

// table is the SQL side of one resource: its column lists and its prepared
// statements. Columns are id, workspace_id, the fields in schema order, then
// created_at, updated_at, created_via, api_key_id, deleted_at. Queries leave
// out workspace_id: the caller gave it.
type table struct {
	r       *store.Resource
	name    string // quoted
	columns string // all, for inserts
	selects string // all but workspace_id
	what    string // "Account", for messages

	insert, find, findExt, update, del, live, purge *sql.Stmt

	// lists holds the prepared statements of list queries by SQL text; the
	// text depends only on which options a query uses, never on values.
	listMu sync.Mutex
	lists  map[string]*sql.Stmt
}

// maxListStatements bounds the prepared list statements kept per table;
// queries of rarer shapes are prepared each time.
const maxListStatements = 256

func newTable(r *store.Resource) *table {
	cols := []string{"id"}
	for _, f := range r.Fields {
		cols = append(cols, quote(f.Name))
	}
	cols = append(cols, "created_at", "updated_at", "created_via", "api_key_id", "deleted_at")
	what := []rune(r.Singular)
	what[0] = unicode.ToUpper(what[0])
	return &table{r: r, name: quote(r.Name), what: string(what), lists: map[string]*sql.Stmt{},
		columns: "workspace_id, " + strings.Join(cols, ", "), selects: strings.Join(cols, ", ")}
}

func (t *table) numColumns() int { return len(t.r.Fields) + 7 }

// insertSQL inserts a record and its created event through the table's
// insert view (see insertView).
func (t *table) insertSQL() string {
	name, _, _ := insertView(t.r)
	marks := strings.TrimSuffix(strings.Repeat("?, ", t.numColumns()+4), ", ")
	return fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s)", quote(name), t.columns, eventViewColumns, marks)
}

func (t *table) findSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL", t.selects, t.name)
}

func (t *table) findExtSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE workspace_id = ? AND external_id = ? AND deleted_at IS NULL", t.selects, t.name)
}

// updateSQL sets every field and updated_at of a live record, provided its
// updated_at is still the one the caller read.
func (t *table) updateSQL() string {
	var set strings.Builder
	for _, f := range t.r.Fields {
		fmt.Fprintf(&set, "%s = ?, ", quote(f.Name))
	}
	return fmt.Sprintf("UPDATE %s SET %supdated_at = ? WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL AND updated_at = ?",
		t.name, set.String())
}

// deleteSQL turns a live record into a tombstone and returns the tombstone,
// for its deleted event.
func (t *table) deleteSQL() string {
	return fmt.Sprintf("UPDATE %s SET deleted_at = ?, updated_at = ? WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL RETURNING %s",
		t.name, t.selects)
}

func (t *table) liveSQL() string {
	return fmt.Sprintf("SELECT 1 FROM %s WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL", t.name)
}

// purgeSQL deletes up to a chunk of tombstones deleted before a time.
func (t *table) purgeSQL() string {
	return fmt.Sprintf("DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE deleted_at < ? LIMIT ?)", t.name, t.name)
}

func (db *DB) table(r *store.Resource) (*table, error) {
	t, ok := db.tables[r]
	if !ok {
		return nil, fmt.Errorf("sqlite: unknown resource %v", r)
	}
	return t, nil
}

// fieldArgs returns the column values of rec's fields in schema order.
func (t *table) fieldArgs(rec *store.Record, args []any) ([]any, error) {
	for _, f := range t.r.Fields {
		v, err := fieldArg(f, rec.Fields[f.Name])
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	return args, nil
}

// InsertRecord stores the record and its created event with one INSERT
// into the table's insert view, whose trigger stores both: a single
// statement, so both or neither, without the cost of a transaction of
// several statements.
func (db *DB) InsertRecord(ctx context.Context, rec *store.Record) error {
	t, err := db.table(rec.Resource)
	if err != nil {
		return err
	}
	args := make([]any, 0, t.numColumns()+4)
	args = append(args, rec.WorkspaceID, rec.ID)
	if args, err = t.fieldArgs(rec, args); err != nil {
		return fmt.Errorf("sqlite: insert %s: %w", t.r.Singular, err)
	}
	args = append(args, ms(rec.CreatedAt), ms(rec.UpdatedAt), rec.CreatedVia, rec.APIKeyID, nullMS(rec.DeletedAt))
	ev, err := store.NewRecordEvent(rec, store.KindCreated)
	if err != nil {
		return fmt.Errorf("sqlite: insert %s: %w", t.r.Singular, err)
	}
	// The event's workspace is the record's, which the view stores it with.
	args = append(args, ev.ID, ev.Type, ms(ev.CreatedAt), []byte(ev.Data))
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
	return t.findOne(ctx, t.find, workspaceID, id)
}

func (db *DB) FindRecordByExternalID(ctx context.Context, r *store.Resource, workspaceID, externalID string) (*store.Record, error) {
	t, err := db.table(r)
	if err != nil {
		return nil, err
	}
	if t.findExt == nil {
		return nil, notFound(t.what)
	}
	return t.findOne(ctx, t.findExt, workspaceID, externalID)
}

func (t *table) findOne(ctx context.Context, stmt *sql.Stmt, workspaceID, key string) (*store.Record, error) {
	rows, err := stmt.QueryContext(ctx, workspaceID, key)
	if err != nil {
		return nil, translate(err, "find "+t.r.Singular, t.what)
	}
	recs, err := t.scan(rows, workspaceID, 1)
	if err != nil {
		return nil, translate(err, "find "+t.r.Singular, t.what)
	}
	if len(recs) == 0 {
		return nil, notFound(t.what)
	}
	return recs[0], nil
}

// UpdateRecord is one conditional UPDATE and, when it changed the record,
// the INSERT of its updated event, in one transaction; when it changes
// nothing, a second look tells a record changed meanwhile (stale) from one
// that is not there.
func (db *DB) UpdateRecord(ctx context.Context, rec *store.Record, prevUpdatedAt time.Time) error {
	t, err := db.table(rec.Resource)
	if err != nil {
		return err
	}
	args := make([]any, 0, len(t.r.Fields)+4)
	if args, err = t.fieldArgs(rec, args); err != nil {
		return fmt.Errorf("sqlite: update %s: %w", t.r.Singular, err)
	}
	args = append(args, ms(rec.UpdatedAt), rec.WorkspaceID, rec.ID, ms(prevUpdatedAt))
	ev, err := store.NewRecordEvent(rec, store.KindUpdated)
	if err != nil {
		return fmt.Errorf("sqlite: update %s: %w", t.r.Singular, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, t.update).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			return db.insertEvent(ctx, tx, ev)
		}
		var one int
		err = tx.StmtContext(ctx, t.live).QueryRowContext(ctx, rec.WorkspaceID, rec.ID).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return notFound(t.what)
		case err != nil:
			return err
		}
		return store.ErrStale
	})
	if errors.Is(err, store.ErrStale) || store.ErrorCode(err) == store.ENOTFOUND {
		return err
	}
	return translate(err, "update "+t.r.Singular, t.what)
}

// DeleteRecord makes the tombstone and stores its deleted event, made from
// the tombstone as the UPDATE returns it, in one transaction.
func (db *DB) DeleteRecord(ctx context.Context, r *store.Resource, workspaceID, id string, at time.Time) error {
	t, err := db.table(r)
	if err != nil {
		return err
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, t.del).QueryContext(ctx, ms(at), ms(at), workspaceID, id)
		if err != nil {
			return err
		}
		recs, err := t.scan(rows, workspaceID, 1)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return notFound(t.what)
		}
		ev, err := store.NewRecordEvent(recs[0], store.KindDeleted)
		if err != nil {
			return err
		}
		return db.insertEvent(ctx, tx, ev)
	})
	if store.ErrorCode(err) == store.ENOTFOUND {
		return err
	}
	return translate(err, "delete "+r.Singular, t.what)
}

// PurgeTombstones deletes in chunks, table by table, so that other writers
// wait for one chunk at most.
func (db *DB) PurgeTombstones(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for _, r := range store.Resources {
		n, err := deleteChunked(ctx, db.tables[r].purge, ms(before))
		total += n
		if err != nil {
			return total, translate(err, "purge "+r.Name, "Record")
		}
	}
	return total, nil
}

// deleteChunked runs a statement that deletes up to deleteChunk rows (its
// second argument) until it deletes fewer.
func deleteChunked(ctx context.Context, stmt *sql.Stmt, arg any) (int64, error) {
	var total int64
	for {
		res, err := stmt.ExecContext(ctx, arg, deleteChunk)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}

func (db *DB) FindRecords(ctx context.Context, r *store.Resource, workspaceID string, q store.RecordQuery) ([]*store.Record, error) {
	t, err := db.table(r)
	if err != nil {
		return nil, err
	}
	query, args, err := t.listQuery(workspaceID, q)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find %s: %w", r.Name, err)
	}
	stmt, err := db.listStatement(ctx, t, query)
	if err != nil {
		return nil, translate(err, "find "+r.Name, t.what)
	}
	var rows *sql.Rows
	if stmt != nil {
		rows, err = stmt.QueryContext(ctx, args...)
	} else {
		rows, err = db.read.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, translate(err, "find "+r.Name, t.what)
	}
	recs, err := t.scan(rows, workspaceID, max(q.Limit, 0))
	return recs, translate(err, "find "+r.Name, t.what)
}

// listStatement returns the prepared statement of a list query, preparing
// it on first use; nil when the cache is full.
func (db *DB) listStatement(ctx context.Context, t *table, query string) (*sql.Stmt, error) {
	t.listMu.Lock()
	defer t.listMu.Unlock()
	if s, ok := t.lists[query]; ok {
		return s, nil
	}
	if len(t.lists) >= maxListStatements {
		return nil, nil
	}
	s, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	t.lists[query] = s
	return s, nil
}

// likeEscaper escapes the LIKE wildcards and the escape character itself.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// listQuery builds the SQL and arguments of a list query. Column names come
// from the resource schema only; every value is a parameter.
//
// The keyset position is a row-value comparison, (sort key, id) < (?, ?)
// when descending and > when ascending, which SQLite turns into a range on
// the sort index: a page after a cursor costs what the first page costs.
// The search is a substring match on the case-folded text (foldFunc), with
// LIKE's wildcards in the user's text escaped.
func (t *table) listQuery(workspaceID string, q store.RecordQuery) (string, []any, error) {
	var sortCol string
	switch q.Sort {
	case store.SortCreatedAt, "":
		sortCol = "created_at"
	case store.SortUpdatedAt:
		sortCol = "updated_at"
	default:
		return "", nil, fmt.Errorf("unknown sort %q", q.Sort)
	}
	dir, cmp := "DESC", "<"
	if q.Ascending {
		dir, cmp = "ASC", ">"
	}
	var w strings.Builder
	args := make([]any, 0, 8+len(q.Filters))
	w.WriteString(" WHERE workspace_id = ?")
	args = append(args, workspaceID)
	if !q.IncludeDeleted {
		w.WriteString(" AND deleted_at IS NULL")
	}
	if q.After != nil {
		fmt.Fprintf(&w, " AND (%s, id) %s (?, ?)", sortCol, cmp)
		args = append(args, ms(q.After.Time), q.After.ID)
	}
	// Stored times are whole milliseconds: t > after holds exactly when
	// t > after rounded down, and t < before when t < before rounded up.
	bounds := []struct {
		col, op string
		t       time.Time
		ms      func(time.Time) int64
	}{
		{"created_at", ">", q.CreatedAfter, ms}, {"created_at", "<", q.CreatedBefore, ceilMS},
		{"updated_at", ">", q.UpdatedAfter, ms}, {"updated_at", "<", q.UpdatedBefore, ceilMS},
	}
	for _, b := range bounds {
		if !b.t.IsZero() {
			fmt.Fprintf(&w, " AND %s %s ?", b.col, b.op)
			args = append(args, b.ms(b.t))
		}
	}
	for _, f := range q.Filters {
		field, ok := t.r.Field(f.Field)
		if !ok || !field.Filterable {
			return "", nil, fmt.Errorf("%s is not a filterable field of %s", f.Field, t.r.Name)
		}
		v, err := fieldArg(field, f.Value)
		if err != nil || v == nil {
			return "", nil, fmt.Errorf("filter %s: bad value %#v", f.Field, f.Value)
		}
		fmt.Fprintf(&w, " AND %s = ?", quote(f.Field))
		args = append(args, v)
	}
	if q.Search != "" && len(t.r.SearchFields) > 0 {
		pattern := "%" + likeEscaper.Replace(fold(q.Search)) + "%"
		w.WriteString(" AND (")
		for i, name := range t.r.SearchFields {
			if _, ok := t.r.Field(name); !ok {
				return "", nil, fmt.Errorf("search field %s is not a field of %s", name, t.r.Name)
			}
			if i > 0 {
				w.WriteString(" OR ")
			}
			fmt.Fprintf(&w, `%s(%s) LIKE ? ESCAPE '\'`, foldFunc, quote(name))
			args = append(args, pattern)
		}
		w.WriteString(")")
	}
	query := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s %s, id %s LIMIT ? OFFSET ?",
		t.selects, t.name, w.String(), sortCol, dir, dir)
	args = append(args, limitArg(q.Limit), max(q.Offset, 0))
	return query, args, nil
}

// ceilMS is t in unix milliseconds, rounded up.
func ceilMS(t time.Time) int64 {
	if t.Equal(t.Truncate(time.Millisecond)) {
		return t.UnixMilli()
	}
	return t.Truncate(time.Millisecond).UnixMilli() + 1
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
		var ok [6]bool
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
		switch v := tail[4].(type) {
		case nil:
			ok[5] = true
		case int64:
			d := fromMS(v)
			rec.DeletedAt, ok[5] = &d, true
		}
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
