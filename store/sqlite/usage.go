package sqlite

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

const usageColumns = `id, workspace_id, key_id, method, route, status, duration_ms, time, request_id, transport, user_agent`

// usageGroups maps each grouping to its column; the SQL text comes only from
// here, never from the caller.
var usageGroups = map[store.UsageGroup]struct{ group, order string }{
	store.GroupByDay:    {"day", "day"},
	store.GroupByKey:    {"key_id", "key_id"},
	store.GroupByRoute:  {"route", "route"},
	store.GroupByStatus: {"status", "CAST(status AS TEXT)"}, // ordered as the group key, a string
}

// deleteChunk is how many usage rows one retention statement deletes.
const deleteChunk = 5000

// usageRows is how many events one multi-row INSERT stores. Each statement
// run has a fixed cost (about 2 µs: database/sql, the driver's context
// watcher, the VM start) that a statement per event pays for every event;
// preparing the multi-row statement costs about 10 µs plus 3 µs per row, once
// per transaction. With 25 rows a batch of 500 pays under 0.2 µs per event
// for both, and a statement binds 25*usageArgs values, far below SQLite's
// limit of 32766.
const usageRows = 25

// usageArgs is the number of values bound per event: usageColumns and day.
const usageArgs = 12

// insertUsageSQL returns the statement that stores n events. An event whose
// id is already stored is skipped, as is a repeated id within the statement:
// the same outcome as one statement per event.
func insertUsageSQL(n int) string {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	var b strings.Builder
	b.Grow(len(usageColumns) + 64 + n*(len(row)+2))
	b.WriteString(`INSERT INTO usage_logs (` + usageColumns + `, day) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(` ON CONFLICT (id) DO NOTHING`)
	return b.String()
}

var insertUsageRows = insertUsageSQL(usageRows)

// InsertUsageEvents stores a batch in one transaction; events already stored
// (same id) are skipped. Whole chunks of usageRows events go through one
// multi-row statement, prepared for the transaction when the batch fills at
// least two (for one, preparing costs more than it saves); the rest through
// the per-event statement prepared at Open.
func (db *DB) InsertUsageEvents(ctx context.Context, events []store.UsageEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		v := usageValues{args: make([]any, 0, min(len(events), usageRows)*usageArgs)}
		if len(events) >= 2*usageRows {
			chunk, err := tx.PrepareContext(ctx, insertUsageRows)
			if err != nil {
				return err
			}
			defer chunk.Close()
			for len(events) >= usageRows {
				if _, err := chunk.ExecContext(ctx, v.of(events[:usageRows])...); err != nil {
					return err
				}
				events = events[usageRows:]
			}
		}
		one := tx.StmtContext(ctx, db.stmt.insertUsage)
		for i := range events {
			if _, err := one.ExecContext(ctx, v.of(events[i:i+1])...); err != nil {
				return err
			}
		}
		return nil
	})
	return translate(err, "insert usage events", "Usage event")
}

// usageValues turns events into the values bound by the insert statements.
// A batch's events mostly share their workspace, key, method, route,
// transport, user agent and day: each of those is boxed (and the day
// formatted) once and reused while it repeats, where boxing every value
// would allocate.
type usageValues struct {
	args   []any
	shared [7]any // the last workspace_id, key_id, method, route, transport, user_agent, day
	y, d   int    // the date of shared[6]
	m      time.Month
}

// of returns the values of events, in the column order of the statements,
// in a slice that the next call reuses.
func (v *usageValues) of(events []store.UsageEvent) []any {
	v.args = v.args[:0]
	for i := range events {
		e := &events[i]
		v.args = append(v.args, e.ID, v.reuse(0, e.WorkspaceID), v.reuse(1, e.KeyID), v.reuse(2, e.Method),
			v.reuse(3, e.Route), int64(e.Status), e.DurationMS, ms(e.Time), e.RequestID, v.reuse(4, e.Transport),
			v.reuse(5, e.UserAgent), v.day(e.Time))
	}
	return v.args
}

func (v *usageValues) reuse(i int, s string) any {
	if last, ok := v.shared[i].(string); !ok || last != s {
		v.shared[i] = s
	}
	return v.shared[i]
}

// day is store.UsageEvent.Day of an event at t.
func (v *usageValues) day(t time.Time) any {
	y, m, d := t.UTC().Date()
	if v.shared[6] == nil || y != v.y || m != v.m || d != v.d {
		v.y, v.m, v.d = y, m, d
		v.shared[6] = t.UTC().Format("2006-01-02")
	}
	return v.shared[6]
}

// usageWhere returns the WHERE clause and arguments selecting a workspace's
// events matching q.
func usageWhere(workspaceID string, q store.UsageQuery) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 6)
	b.WriteString(" WHERE workspace_id = ?")
	args = append(args, workspaceID)
	if q.KeyID != "" {
		b.WriteString(" AND key_id = ?")
		args = append(args, q.KeyID)
	}
	if q.Status != 0 {
		b.WriteString(" AND status = ?")
		args = append(args, int64(q.Status))
	}
	if !q.From.IsZero() {
		b.WriteString(" AND time >= ?")
		args = append(args, ms(q.From))
	}
	if !q.To.IsZero() {
		b.WriteString(" AND time < ?")
		args = append(args, ms(q.To))
	}
	return b.String(), args
}

func (db *DB) FindUsageEvents(ctx context.Context, workspaceID string, q store.UsageQuery) ([]store.UsageEvent, error) {
	where, args := usageWhere(workspaceID, q)
	query := "SELECT " + usageColumns + " FROM usage_logs" + where + " ORDER BY time DESC, id DESC LIMIT ? OFFSET ?"
	args = append(args, limitArg(q.Limit), max(q.Offset, 0))
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err, "find usage events", "Usage event")
	}
	defer rows.Close()
	out := make([]store.UsageEvent, 0, min(max(q.Limit, 0), 256))
	for rows.Next() {
		var e store.UsageEvent
		var status, tm int64
		if err := rows.Scan(&e.ID, &e.WorkspaceID, &e.KeyID, &e.Method, &e.Route, &status, &e.DurationMS, &tm,
			&e.RequestID, &e.Transport, &e.UserAgent); err != nil {
			return nil, translate(err, "find usage events", "Usage event")
		}
		e.Status, e.Time = int(status), fromMS(tm)
		out = append(out, e)
	}
	return out, translate(rows.Err(), "find usage events", "Usage event")
}

func (db *DB) CountUsage(ctx context.Context, workspaceID string, q store.UsageQuery, by store.UsageGroup) ([]store.UsageCount, error) {
	g, ok := usageGroups[by]
	if !ok {
		return nil, store.FieldError("group_by", "must be one of day, key, route, status.")
	}
	where, args := usageWhere(workspaceID, q)
	query := "SELECT " + g.group + ", count(*), count(CASE WHEN status >= 400 THEN 1 END) FROM usage_logs" + where +
		" GROUP BY " + g.group + " ORDER BY " + g.order
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err, "count usage", "Usage event")
	}
	defer rows.Close()
	var out []store.UsageCount
	for rows.Next() {
		var c store.UsageCount
		var group any
		if err := rows.Scan(&group, &c.Count, &c.Errors); err != nil {
			return nil, translate(err, "count usage", "Usage event")
		}
		switch v := group.(type) {
		case string:
			c.Group = v
		case int64:
			c.Group = strconv.FormatInt(v, 10)
		}
		out = append(out, c)
	}
	return out, translate(rows.Err(), "count usage", "Usage event")
}

// DeleteUsageBefore deletes, in all workspaces, the events older than before.
func (db *DB) DeleteUsageBefore(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := db.stmt.deleteUsage.ExecContext(ctx, ms(before), deleteChunk)
		if err != nil {
			return total, translate(err, "delete usage events", "Usage event")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, translate(err, "delete usage events", "Usage event")
		}
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}
