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

// InsertUsageEvents stores a batch in one transaction; events already stored
// (same id) are skipped.
func (db *DB) InsertUsageEvents(ctx context.Context, events []store.UsageEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, db.stmt.insertUsage)
		for i := range events {
			e := &events[i]
			_, err := stmt.ExecContext(ctx, e.ID, e.WorkspaceID, e.KeyID, e.Method, e.Route, int64(e.Status),
				e.DurationMS, ms(e.Time), e.RequestID, e.Transport, e.UserAgent, e.Day())
			if err != nil {
				return err
			}
		}
		return nil
	})
	return translate(err, "insert usage events", "Usage event")
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
