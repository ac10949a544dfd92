package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookQueryPlans checks that the queries of subscriptions, the
// outbox and deliveries are served by their indexes, without scanning a
// table or sorting a whole result.
func TestWebhookQueryPlans(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plan := func(query string) string {
		t.Helper()
		args := make([]any, strings.Count(query, "?"))
		for i := range args {
			args[i] = "1"
		}
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
	cases := []struct {
		query, uses string
		forbidden   []string
	}{
		{`SELECT ` + webhookColumns + ` FROM webhooks WHERE workspace_id = ? AND id = ?`, "sqlite_autoindex_webhooks_1", nil},
		{`SELECT ` + webhookColumns + ` FROM webhooks WHERE workspace_id = ? ORDER BY created_at, id`, "webhooks_workspace_created", nil},
		{`UPDATE webhooks SET failing_since = ? WHERE workspace_id = ? AND id = ? AND failing_since IS NULL`, "sqlite_autoindex_webhooks_1", nil},
		// A claim reads the stale claimed events through their index in
		// claim order, and the waiting ones in the order they were stored,
		// without sorting, and stops at the limit; reclaiming and deleting
		// find claimed events by id.
		{`UPDATE outbox_claimed SET claimed_at = ? WHERE id IN (
			SELECT id FROM outbox_claimed WHERE claimed_at < ? ORDER BY claimed_at, id LIMIT ?)`,
			"COVERING INDEX outbox_claimed_at", []string{"SCAN outbox_claimed"}},
		{`INSERT INTO outbox_claimed (` + eventColumns + `, claimed_at) SELECT ` + eventColumns + `, ? FROM outbox WHERE true
			ORDER BY rowid LIMIT ? ON CONFLICT (id) DO UPDATE SET claimed_at = excluded.claimed_at`, "SCAN outbox", nil},
		{`DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox ORDER BY rowid LIMIT ?)`,
			"SEARCH outbox USING INTEGER PRIMARY KEY (rowid=?)", nil},
		{`DELETE FROM outbox_claimed WHERE id IN (SELECT value FROM json_each(?))`,
			"SEARCH outbox_claimed USING PRIMARY KEY (id=?)", []string{"SCAN outbox_claimed"}},
		{`SELECT ` + deliveryColumns + ` FROM deliveries WHERE workspace_id = ? AND id = ?`, "sqlite_autoindex_deliveries_1", nil},
		{`SELECT ` + deliveryColumns + ` FROM deliveries WHERE workspace_id = ? AND webhook_id = ?
			ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, "deliveries_webhook", nil},
		{`SELECT ` + deliveryColumns + ` FROM deliveries WHERE workspace_id = ? AND webhook_id = ? AND status = ?
			ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, "deliveries_webhook", nil},
		{`DELETE FROM deliveries WHERE workspace_id = ? AND webhook_id = ?`, "deliveries_webhook", nil},
		{`SELECT ` + deliveryColumns + ` FROM deliveries WHERE status = 'pending' AND next_attempt_at < ?
			ORDER BY next_attempt_at, id LIMIT ?`, "deliveries_due", nil},
		{`SELECT rowid FROM deliveries WHERE status <> 'pending' AND created_at < ? LIMIT ?`, "deliveries_finished", nil},
		{`UPDATE api_keys SET expiring_announced_at = ? WHERE workspace_id = ? AND id = ? AND expiring_announced_at IS NULL`,
			"sqlite_autoindex_api_keys_1", nil},
	}
	for _, c := range cases {
		p := plan(c.query)
		t.Logf("%s\n\t%s", c.query, p)
		if !strings.Contains(p, c.uses) {
			t.Errorf("plan of %q\n\t%s\ndoes not use %q", c.query, p, c.uses)
		}
		for _, f := range append(c.forbidden, "TEMP B-TREE", "SCAN webhooks", "SCAN deliveries", "SCAN api_keys") {
			if strings.Contains(p, f) {
				t.Errorf("plan of %q\n\t%s\ncontains %q", c.query, p, f)
			}
		}
	}
}
