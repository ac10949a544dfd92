package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// usageBatch returns n new events of workspace ws from start on, one second
// apart, with values that repeat in runs and change (keys, routes, agents),
// as the bound values are reused while they repeat.
func usageBatch(ws string, n int, start time.Time) []store.UsageEvent {
	keys := []string{store.NewID(), store.NewID(), store.NewID()}
	agents := []string{"n8n/1.0", "", "Zapier «ü» ✓", "curl/8.0"}
	events := make([]store.UsageEvent, n)
	for i := range events {
		events[i] = store.UsageEvent{ID: store.NewID(), WorkspaceID: ws, KeyID: keys[i/4%len(keys)],
			Method: []string{"GET", "POST"}[i/3%2], Route: fmt.Sprintf("/api/v1/r%d", i/5), Status: 200 + 100*(i%4),
			DurationMS: float64(i) / 4, Time: start.Add(time.Duration(i) * time.Second),
			RequestID: fmt.Sprint("req-", i), Transport: []string{store.TransportREST, store.TransportMCP}[i/7%2],
			UserAgent: agents[i/2%len(agents)]}
	}
	return events
}

// wantStored checks that the workspace holds exactly want, every column
// included.
func wantStored(t *testing.T, db *DB, ws string, want []store.UsageEvent) {
	t.Helper()
	got, err := db.FindUsageEvents(t.Context(), ws, store.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events stored, want %d", len(got), len(want))
	}
	byID := map[string]store.UsageEvent{}
	for _, e := range got {
		byID[e.ID] = e
	}
	for _, w := range want {
		g, ok := byID[w.ID]
		if !ok {
			t.Fatalf("event %s not stored", w.ID)
		}
		if !g.Time.Equal(w.Time) {
			t.Fatalf("event %s: time %v, want %v", w.ID, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("event stored as\n\t%+v\nwant\n\t%+v", g, w)
		}
	}
	rows, err := db.read.QueryContext(t.Context(), `SELECT id, day FROM usage_logs WHERE workspace_id = ?`, ws)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	days := map[string]string{}
	for rows.Next() {
		var id, day string
		if err := rows.Scan(&id, &day); err != nil {
			t.Fatal(err)
		}
		days[id] = day
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if days[w.ID] != w.Day() {
			t.Fatalf("event %s at %v: day %q, want %q", w.ID, w.Time, days[w.ID], w.Day())
		}
	}
}

// TestInsertUsageEventsInChunks stores batches around the sizes where the
// insert changes statements, and checks every column, idempotency and
// repeated ids within a batch.
func TestInsertUsageEventsInChunks(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The batches cross midnight, so the day changes within them.
	start := time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)
	for _, n := range []int{1, 2, usageRows - 1, usageRows, usageRows + 1, 2*usageRows - 1, 2 * usageRows,
		2*usageRows + 1, 3*usageRows + 7, 20 * usageRows} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := store.NewID()
			events := usageBatch(ws, n, start.Add(-time.Duration(n/2)*time.Second))
			if err := db.InsertUsageEvents(t.Context(), events); err != nil {
				t.Fatal(err)
			}
			wantStored(t, db, ws, events)

			// The same batch again adds nothing.
			if err := db.InsertUsageEvents(t.Context(), events); err != nil {
				t.Fatal(err)
			}
			wantStored(t, db, ws, events)

			// Stored events mixed with new ones, and ids repeated with other
			// values, at the start (in a multi-row chunk when the batch has
			// any) and at the end: the first of an id is kept.
			changed := func(e store.UsageEvent) store.UsageEvent {
				e.Status, e.Route, e.UserAgent = 599, "/changed", "changed"
				return e
			}
			fresh := usageBatch(ws, n, start.Add(time.Hour))
			mixed := []store.UsageEvent{fresh[0], events[0], changed(fresh[0]), changed(events[0])}
			for i := 1; i < n; i++ {
				mixed = append(mixed, fresh[i], events[i])
			}
			mixed = append(mixed, changed(fresh[n-1]))
			if err := db.InsertUsageEvents(t.Context(), mixed); err != nil {
				t.Fatal(err)
			}
			wantStored(t, db, ws, append(events, fresh...))
		})
	}
}

// TestInsertUsageEventsAllOrNothing makes one event of a batch fail, in a
// multi-row chunk and among the events stored one by one, and checks that
// none of the batch is stored.
func TestInsertUsageEventsAllOrNothing(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A temporary trigger lives on the connection that creates it: the
	// writer pool has exactly one.
	_, err = db.write.ExecContext(t.Context(), `CREATE TEMP TRIGGER usage_fail BEFORE INSERT ON main.usage_logs
		WHEN NEW.route = '/fail' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
	if err != nil {
		t.Fatal(err)
	}
	n := 3*usageRows + 7
	for _, at := range []int{0, usageRows + 3, n - 1} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			ws := store.NewID()
			events := usageBatch(ws, n, time.Date(2025, 3, 30, 12, 0, 0, 0, time.UTC))
			events[at].Route = "/fail"
			if err := db.InsertUsageEvents(t.Context(), events); err == nil {
				t.Fatal("batch with a refused event stored without an error")
			}
			wantStored(t, db, ws, nil)
		})
	}
}
