package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestQueryPlans checks that the hot queries are served by the indexes meant
// for them, without scanning a table or sorting a whole result.
func TestQueryPlans(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := db.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		var steps []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, detail)
		}
		return strings.Join(steps, "; ")
	}
	want := func(query, p string, uses string, forbidden ...string) {
		t.Helper()
		t.Logf("%s\n\t%s", query, p)
		if !strings.Contains(p, uses) {
			t.Errorf("plan of %q\n\t%s\ndoes not use %q", query, p, uses)
		}
		for _, f := range forbidden {
			if strings.Contains(p, f) {
				t.Errorf("plan of %q\n\t%s\ncontains %q", query, p, f)
			}
		}
	}
	noScan := func(r *store.Resource) []string { return []string{"SCAN " + r.Name, "TEMP B-TREE"} }
	list := func(tb *table, q store.RecordQuery) (string, []any) {
		t.Helper()
		q.Limit = 51
		query, args, err := tb.listQuery("w", q)
		if err != nil {
			t.Fatal(err)
		}
		return query, args
	}
	after := &store.Position{Time: time.Now(), ID: "id"}

	for _, r := range store.Resources {
		tb := db.tables[r]
		q := tb.findSQL()
		want(q, plan(q, "w", "id"), r.Name+"_workspace_id", "SCAN "+r.Name)
		q = tb.findExtSQL()
		want(q, plan(q, "w", "ext"), r.Name+"_external_id_live", "SCAN "+r.Name)
		for _, q := range []string{tb.updateSQL(), tb.deleteSQL(), tb.liveSQL()} {
			args := make([]any, strings.Count(q, "?"))
			for i := range args {
				args[i] = "x"
			}
			want(q, plan(q, args...), r.Name+"_workspace_id", "SCAN "+r.Name)
		}
		q = tb.purgeSQL()
		want(q, plan(q, 1, 10), r.Name+"_tombstones", "SCAN "+r.Name)

		// Every sort order, first page and after a cursor, with and without
		// tombstones and with time bounds, is served by its sort index: a
		// range from the cursor on, in index order, with no sorting.
		for _, sort := range []string{store.SortCreatedAt, store.SortUpdatedAt} {
			index := map[string]string{store.SortCreatedAt: "_workspace_created", store.SortUpdatedAt: "_workspace_updated"}[sort]
			for _, asc := range []bool{false, true} {
				for _, deleted := range []bool{false, true} {
					base := store.RecordQuery{Sort: sort, Ascending: asc, IncludeDeleted: deleted}
					q, args := list(tb, base)
					want(q, plan(q, args...), r.Name+index, noScan(r)...)
					withAfter := base
					withAfter.After = after
					q, args = list(tb, withAfter)
					want(q, plan(q, args...), "("+sort+",id)", noScan(r)...)
					want(q, plan(q, args...), r.Name+index, noScan(r)...)
					bounded := base
					if sort == store.SortCreatedAt {
						bounded.CreatedAfter, bounded.CreatedBefore = time.Now(), time.Now()
					} else {
						bounded.UpdatedAfter = time.Now()
					}
					q, args = list(tb, bounded)
					want(q, plan(q, args...), r.Name+index, noScan(r)...)
				}
			}
		}
		// Each filter, ordered by created_at either way, after a cursor or
		// not, is served by the filter's index.
		for _, f := range r.Fields {
			if !f.Filterable {
				continue
			}
			ff := []store.FieldFilter{{Field: f.Name, Value: "v"}}
			for _, asc := range []bool{false, true} {
				for _, pos := range []*store.Position{nil, after} {
					q, args := list(tb, store.RecordQuery{Sort: store.SortCreatedAt, Ascending: asc, After: pos, Filters: ff})
					index := filterIndex(r, f.Name)
					if f.Name == store.ExternalIDField && pos == nil {
						// At most one live record has it: the unique index finds it.
						index = r.Name + "_external_id_live"
					}
					want(q, plan(q, args...), index, noScan(r)...)
				}
			}
			// Ordered by updated_at, SQLite walks the updated_at index and
			// filters (no index has both).
			q, args := list(tb, store.RecordQuery{Sort: store.SortUpdatedAt, Filters: ff})
			t.Logf("filter %s, by updated_at: %s", f.Name, plan(q, args...))
		}
		// A search reads the workspace's records in sort order.
		q, args := list(tb, store.RecordQuery{Sort: store.SortCreatedAt, Search: "acme"})
		want(q, plan(q, args...), r.Name+"_workspace_created", noScan(r)...)
	}

	q := `SELECT ` + keyColumns + ` FROM api_keys WHERE hash = ?`
	want(q, plan(q, []byte{1}), "api_keys_hash", "SCAN api_keys")
	q = `SELECT ` + keyColumns + ` FROM api_keys WHERE workspace_id = ? ORDER BY created_at, id`
	want(q, plan(q, "w"), "api_keys_workspace", "SCAN api_keys", "TEMP B-TREE")

	where, args := usageWhere("w", store.UsageQuery{From: time.Now()})
	q = "SELECT " + usageColumns + " FROM usage_logs" + where + " ORDER BY time DESC, id DESC LIMIT 50"
	want(q, plan(q, args...), "usage_logs_workspace_time", "SCAN usage_logs")
	where, args = usageWhere("w", store.UsageQuery{KeyID: "k", To: time.Now()})
	q = "SELECT " + usageColumns + " FROM usage_logs" + where + " ORDER BY time DESC, id DESC LIMIT 50"
	want(q, plan(q, args...), "usage_logs_workspace_key_time", "SCAN usage_logs")
	q = `SELECT rowid FROM usage_logs WHERE workspace_id IN (SELECT id FROM workspaces) AND time < ? LIMIT 10`
	want(q, plan(q, 1), "usage_logs_workspace_time", "SCAN usage_logs")

	q = `SELECT ` + idemColumns + ` FROM idempotency_keys WHERE workspace_id = ? AND key = ?`
	want(q, plan(q, "w", "k"), "sqlite_autoindex_idempotency_keys_1", "SCAN idempotency_keys")
	q = `SELECT rowid FROM idempotency_keys WHERE expires_at < ? LIMIT 10`
	want(q, plan(q, 1), "idempotency_keys_expiry", "SCAN idempotency_keys")
}
