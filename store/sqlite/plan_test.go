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

	for _, r := range store.Resources {
		tb := db.tables[r]
		q := tb.listSQL()
		want(q, plan(q, "w", 50, 0), r.Name+"_workspace_created", "SCAN "+r.Name, "TEMP B-TREE")
		q = tb.findSQL()
		want(q, plan(q, "w", "id"), r.Name+"_workspace_id", "SCAN "+r.Name)
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
}
