package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
	"github.com/hustack/hustack/store/storetest"
)

func openPath(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openTemp(t testing.TB) *sqlite.DB {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "data", "hustack.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return openTemp(t) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)

// seed creates a workspace with an active key through the service.
func seed(t testing.TB, svc *store.Service) (*store.Workspace, *store.APIKey, string) {
	t.Helper()
	ctx := context.Background()
	w, err := svc.CreateWorkspace(ctx, "Acme")
	must(t, err)
	k, raw, err := svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: w.ID, Name: "k", Scopes: store.AllScopes()})
	must(t, err)
	return w, k, raw
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hustack.db")
	db := openPath(t, path)
	svc := store.NewService(db)
	w, k, raw := seed(t, svc)
	p, err := svc.Authenticate(ctx, raw)
	must(t, err)
	rec, err := svc.Scoped(p).CreateRecord(ctx, store.Deals, map[string]any{"name": "Big deal", "value": 1234.5, "currency": "eur"})
	must(t, err)
	ev := store.UsageEvent{ID: store.NewID(), WorkspaceID: w.ID, KeyID: k.ID, Method: "POST", Route: "/api/v1/deals",
		Status: 201, DurationMS: 3.5, Time: svc.Now(), RequestID: "r1", Transport: store.TransportREST}
	must(t, svc.RecordUsage(ctx, []store.UsageEvent{ev}))
	must(t, db.Close())

	db = openPath(t, path)
	defer db.Close()
	svc = store.NewService(db)
	p, err = svc.Authenticate(ctx, raw)
	must(t, err)
	got, err := svc.Scoped(p).FindRecordByID(ctx, store.Deals, rec.ID)
	must(t, err)
	if got.Fields["name"] != "Big deal" || got.Fields["value"] != 1234.5 || got.Fields["currency"] != "EUR" || !got.CreatedAt.Equal(rec.CreatedAt) {
		t.Errorf("after reopening: %+v, want %+v", got, rec)
	}
	logs, err := svc.Scoped(p).FindUsageLogs(ctx, store.UsageQuery{}, store.ListParams{Limit: 10})
	must(t, err)
	if len(logs.Data) != 1 || logs.Data[0].ID != ev.ID {
		t.Errorf("after reopening: usage logs %+v, want the one event", logs.Data)
	}
	key, err := db.FindAPIKeyByIDUnscoped(ctx, k.ID)
	must(t, err)
	if key.LastUsedAt == nil || !key.LastUsedAt.Equal(ev.Time) {
		t.Errorf("after reopening: last_used_at %v, want %v", key.LastUsedAt, ev.Time)
	}
}

func TestSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hustack.db")
	db := openPath(t, path)
	defer db.Close()
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	defer raw.Close()
	schemaVersion := func() int {
		var v int
		must(t, raw.QueryRow("PRAGMA schema_version").Scan(&v))
		return v
	}
	// A second Open of the same file migrates nothing, and so changes no
	// schema object, and succeeds.
	before := schemaVersion()
	db2 := openPath(t, path)
	must(t, db2.Close())
	if after := schemaVersion(); after != before {
		t.Errorf("schema_version went from %d to %d on a second Open", before, after)
	}

	var mode string
	var version int
	must(t, raw.QueryRow("PRAGMA journal_mode").Scan(&mode))
	must(t, raw.QueryRow("PRAGMA user_version").Scan(&version))
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	if version != 4 {
		t.Errorf("user_version = %d, want the schema version 4", version)
	}

	// Every resource has a table with a typed column per field.
	for _, r := range store.Resources {
		cols := map[string]string{}
		rows, err := raw.Query("SELECT name, type FROM pragma_table_info(?)", r.Name)
		must(t, err)
		for rows.Next() {
			var name, typ string
			must(t, rows.Scan(&name, &typ))
			cols[name] = typ
		}
		must(t, rows.Err())
		rows.Close()
		for _, f := range r.Fields {
			want := "TEXT"
			if f.Type == store.FieldNumber {
				want = "REAL"
			}
			if cols[f.Name] != want {
				t.Errorf("%s.%s has type %q, want %s", r.Name, f.Name, cols[f.Name], want)
			}
		}
		for _, c := range []string{"workspace_id", "created_at", "updated_at", "deleted_at"} {
			if cols[c] == "" {
				t.Errorf("%s has no column %s", r.Name, c)
			}
		}
	}
	checkIndexes(t, raw)
}

// checkIndexes checks that every resource table has the indexes of its sorts
// and filters, and that workspace_id leads every index of tenant data
// except the partial ones that serve retention across workspaces and the
// two that the workers' sweeps walk across workspaces (the claim of stale
// events and the due deliveries).
func checkIndexes(t *testing.T, raw *sql.DB) {
	t.Helper()
	rows, err := raw.Query(`SELECT m.tbl_name, m.name, m.sql, group_concat(ii.name || ':' || ii.desc, ',') FROM sqlite_schema m,
		pragma_index_xinfo(m.name) ii WHERE m.type = 'index' AND ii.key AND m.name NOT LIKE 'sqlite_autoindex%'
		GROUP BY m.name ORDER BY m.name`)
	must(t, err)
	defer rows.Close()
	type index struct{ table, sql, cols string }
	indexes := map[string]index{}
	for rows.Next() {
		var name string
		var ix index
		must(t, rows.Scan(&ix.table, &name, &ix.sql, &ix.cols))
		indexes[name] = ix
		retention := strings.HasSuffix(name, "_tombstones") || name == "idempotency_keys_expiry" || name == "deliveries_finished"
		sweep := name == "outbox_claimed_at" || name == "deliveries_due"
		switch {
		case ix.table == "workspaces", name == "api_keys_hash", retention, sweep:
		case !strings.HasPrefix(ix.cols, "workspace_id:0"):
			t.Errorf("index %s on %s is on %s, want workspace_id first", name, ix.table, ix.cols)
		}
	}
	must(t, rows.Err())
	for _, r := range store.Resources {
		want := map[string]string{
			r.Name + "_workspace_id":      "workspace_id:0,id:0",
			r.Name + "_workspace_created": "workspace_id:0,created_at:1,id:1",
			r.Name + "_workspace_updated": "workspace_id:0,updated_at:1,id:1",
			r.Name + "_external_id_live":  "workspace_id:0,external_id:0",
			r.Name + "_tombstones":        "deleted_at:0",
		}
		for _, f := range r.Fields {
			if f.Filterable {
				want[r.Name+"_by_"+f.Name] = "workspace_id:0," + f.Name + ":0,created_at:1,id:1"
			}
		}
		for name, cols := range want {
			ix, ok := indexes[name]
			if !ok || ix.table != r.Name || ix.cols != cols {
				t.Errorf("index %s = %+v, want on %s (%s)", name, ix, r.Name, cols)
			}
		}
		if sql := indexes[r.Name+"_external_id_live"].sql; !strings.Contains(sql, "UNIQUE") ||
			!strings.Contains(sql, "WHERE deleted_at IS NULL AND external_id IS NOT NULL") {
			t.Errorf("%s_external_id_live = %s, want unique among live records with an external id", r.Name, sql)
		}
		if sql := indexes[r.Name+"_tombstones"].sql; !strings.Contains(sql, "WHERE deleted_at IS NOT NULL") {
			t.Errorf("%s_tombstones = %s, want it over tombstones only", r.Name, sql)
		}
	}
	if ix := indexes["idempotency_keys_expiry"]; ix.cols != "expires_at:0" {
		t.Errorf("idempotency_keys_expiry = %+v", ix)
	}
	for name, want := range map[string]struct{ table, cols, where string }{
		"webhooks_workspace_created": {"webhooks", "workspace_id:0,created_at:0,id:0", ""},
		"outbox_claimed_at":          {"outbox_claimed", "claimed_at:0", ""},
		"deliveries_webhook":         {"deliveries", "workspace_id:0,webhook_id:0,created_at:1,id:1", ""},
		"deliveries_due":             {"deliveries", "next_attempt_at:0,id:0", "WHERE status = 'pending'"},
		"deliveries_finished":        {"deliveries", "created_at:0", "WHERE status <> 'pending'"},
	} {
		ix, ok := indexes[name]
		if !ok || ix.table != want.table || ix.cols != want.cols || !strings.Contains(ix.sql, want.where) {
			t.Errorf("index %s = %+v, want on %s (%s) %s", name, ix, want.table, want.cols, want.where)
		}
	}
	// The outbox of waiting events has no index, not even of a primary or
	// unique key, so that storing an event with each record write changes
	// one B-tree.
	var outboxIndexes int
	must(t, raw.QueryRow(`SELECT count(*) FROM pragma_index_list('outbox')`).Scan(&outboxIndexes))
	if outboxIndexes != 0 {
		t.Errorf("the outbox has %d indexes, want none", outboxIndexes)
	}
}

func TestMigrateAddsColumnForNewField(t *testing.T) {
	// A file made when accounts had no "country" field yet.
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	_, err = raw.Exec(`CREATE TABLE accounts (id TEXT NOT NULL, workspace_id TEXT NOT NULL, name TEXT, industry TEXT,
		website TEXT, email TEXT, phone TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
		created_via TEXT NOT NULL, api_key_id TEXT NOT NULL) STRICT`)
	must(t, err)
	_, err = raw.Exec(`INSERT INTO accounts VALUES ('0198c0de-0000-7000-8000-000000000001', 'w', 'Old Co', NULL, NULL, NULL, NULL, 1, 2, 'api', 'k')`)
	must(t, err)
	must(t, raw.Close())

	db := openPath(t, path)
	defer db.Close()
	ctx := t.Context()
	old, err := db.FindRecordByID(ctx, store.Accounts, "w", "0198c0de-0000-7000-8000-000000000001")
	must(t, err)
	if old.Fields["name"] != "Old Co" || len(old.Fields) != 1 {
		t.Errorf("old record = %v, want only its name", old.Fields)
	}
	rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: "w",
		Fields: map[string]any{"name": "New Co", "country": "Österreich"}, CreatedAt: t0, UpdatedAt: t0, CreatedVia: "api"}
	must(t, db.InsertRecord(ctx, rec))
	got, err := db.FindRecordByID(ctx, store.Accounts, "w", rec.ID)
	must(t, err)
	if got.Fields["country"] != "Österreich" {
		t.Errorf("country = %v after migration", got.Fields["country"])
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	raw, err := sql.Open("sqlite", newer)
	must(t, err)
	_, err = raw.Exec("PRAGMA user_version = 9999")
	must(t, err)
	must(t, raw.Close())
	if db, err := sqlite.Open(t.Context(), newer); err == nil || !strings.Contains(err.Error(), "9999") {
		if db != nil {
			db.Close()
		}
		t.Errorf("Open of a newer schema: err = %v, want an error naming its version", err)
	}

	mismatch := filepath.Join(dir, "mismatch.db")
	raw, err = sql.Open("sqlite", mismatch)
	must(t, err)
	_, err = raw.Exec(`CREATE TABLE deals (id TEXT NOT NULL, workspace_id TEXT NOT NULL, value TEXT,
		created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_via TEXT NOT NULL, api_key_id TEXT NOT NULL) STRICT`)
	must(t, err)
	must(t, raw.Close())
	if db, err := sqlite.Open(t.Context(), mismatch); err == nil || !strings.Contains(err.Error(), "value") {
		if db != nil {
			db.Close()
		}
		t.Errorf("Open with deals.value as TEXT: err = %v, want an error naming the column", err)
	}

	notDB := filepath.Join(dir, "garbage.db")
	must(t, os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o600))
	if db, err := sqlite.Open(t.Context(), notDB); err == nil {
		db.Close()
		t.Error("Open of a file that is not a database succeeded")
	}

	for _, p := range []string{"", ":memory:"} {
		if db, err := sqlite.Open(t.Context(), p); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dir #1 100%")
	path := filepath.Join(dir, "a?b#c%20.db")
	db := openPath(t, path)
	w := &store.Workspace{ID: store.NewID(), Name: "w", CreatedAt: t0}
	must(t, db.CreateWorkspace(t.Context(), w))
	must(t, db.Close())
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the path given: %v", err)
	}
	db = openPath(t, path)
	defer db.Close()
	if _, err := db.FindWorkspaceByID(t.Context(), w.ID); err != nil {
		t.Errorf("after reopening %q: %v", path, err)
	}
}

func TestInsertRecordRejectsWrongTypes(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	cases := []struct {
		r      *store.Resource
		fields map[string]any
	}{
		{store.Deals, map[string]any{"name": "d", "value": "12"}},
		{store.Deals, map[string]any{"name": 12.0}},
		{store.Accounts, map[string]any{"name": true}},
		{store.Accounts, map[string]any{"name": map[string]any{"$gt": ""}}},
	}
	for _, c := range cases {
		rec := &store.Record{Resource: c.r, ID: store.NewID(), WorkspaceID: "w", Fields: c.fields, CreatedAt: t0, UpdatedAt: t0}
		err := db.InsertRecord(t.Context(), rec)
		if err == nil {
			t.Errorf("InsertRecord(%s, %v) succeeded", c.r.Name, c.fields)
		}
	}
	unknown := &store.Resource{Name: "widgets", Singular: "widget"}
	if err := db.InsertRecord(t.Context(), &store.Record{Resource: unknown, ID: store.NewID()}); err == nil {
		t.Error("InsertRecord of an unknown resource succeeded")
	}
	if _, err := db.FindRecords(t.Context(), unknown, "w", store.RecordQuery{Limit: 1}); err == nil {
		t.Error("FindRecords of an unknown resource succeeded")
	}
}

func TestClosedDB(t *testing.T) {
	db := openTemp(t)
	must(t, db.Close())
	_, err := db.FindWorkspaces(t.Context())
	if err == nil || store.ErrorCode(err) != store.EINTERNAL {
		t.Errorf("FindWorkspaces on a closed DB: %v, want an internal error", err)
	}
}

// TestTwoHandlesOneFile is the command line and the server in one process:
// one handle writes while the other reads, and each sees the other's commits.
func TestTwoHandlesOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hustack.db")
	server, cli := openPath(t, path), openPath(t, path)
	defer server.Close()
	defer cli.Close()
	cliSvc, serverSvc := store.NewService(cli), store.NewService(server, store.WithKeyCacheTTL(0))
	w, k, raw := seed(t, cliSvc)
	p, err := serverSvc.Authenticate(ctx, raw)
	must(t, err)
	sc := serverSvc.Scoped(p)

	const writes = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*writes+2)
	wg.Go(func() {
		for i := range writes {
			rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: w.ID,
				Fields: map[string]any{"name": fmt.Sprint("cli ", i)}, CreatedAt: t0, UpdatedAt: t0, CreatedVia: "cli"}
			errs <- cli.InsertRecord(ctx, rec)
		}
	})
	wg.Go(func() {
		for i := range writes {
			_, err := sc.CreateRecord(ctx, store.Accounts, map[string]any{"name": fmt.Sprint("api ", i)})
			errs <- err
		}
	})
	// Read while both write; counts never go down.
	last := 0
	for range 200 {
		page, err := sc.FindRecords(ctx, store.Accounts, store.ListParams{Limit: store.MaxLimit})
		must(t, err)
		if len(page.Data) < last {
			t.Fatalf("list shrank from %d to %d records", last, len(page.Data))
		}
		last = len(page.Data)
		if last == 2*writes {
			break
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	page, err := sc.FindRecords(ctx, store.Accounts, store.ListParams{Limit: store.MaxLimit})
	must(t, err)
	if len(page.Data) != 2*writes {
		t.Errorf("server sees %d records, want %d", len(page.Data), 2*writes)
	}

	// A revocation through the command line's handle is seen by the server.
	_, err = cliSvc.RevokeAPIKey(ctx, k.ID)
	must(t, err)
	_, err = serverSvc.Authenticate(ctx, raw)
	if store.ErrorCode(err) != store.EREVOKED {
		t.Errorf("server after revocation by the other handle: %v, want revoked_key", err)
	}
}

// TestOtherProcessWrites runs this test binary again as a second process that
// writes to the same file while this one reads and writes, as the command
// line does next to a running server.
// TestConcurrentOpenOfNewFile: two handles creating the same new file at
// once (a server starting while the command line runs) both succeed.
func TestConcurrentOpenOfNewFile(t *testing.T) {
	for i := range 20 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("new-%d.db", i))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j := range errs {
			wg.Go(func() {
				db, err := sqlite.Open(t.Context(), path)
				if err == nil {
					err = db.Close()
				}
				errs[j] = err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

func TestOtherProcessWrites(t *testing.T) {
	if path := os.Getenv("HUSTACK_SQLITE_CHILD"); path != "" {
		childProcess(t, path)
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "hustack.db")
	db := openPath(t, path)
	defer db.Close()
	svc := store.NewService(db, store.WithKeyCacheTTL(0))
	w, k, raw := seed(t, svc)
	p, err := svc.Authenticate(ctx, raw)
	must(t, err)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOtherProcessWrites$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HUSTACK_SQLITE_CHILD="+path, "HUSTACK_SQLITE_CHILD_WS="+w.ID, "HUSTACK_SQLITE_CHILD_KEY="+k.ID)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	// Write and read here while the child writes.
	sc := svc.Scoped(p)
	for i := range childWrites {
		_, err := sc.CreateRecord(ctx, store.Notes, map[string]any{"content": fmt.Sprint("parent ", i)})
		must(t, err)
		if _, err := sc.FindRecords(ctx, store.Notes, store.ListParams{Limit: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	page, err := sc.FindRecords(ctx, store.Notes, store.ListParams{Limit: store.MaxLimit})
	must(t, err)
	if len(page.Data) != 2*childWrites {
		t.Errorf("found %d notes, want %d from each process", len(page.Data), childWrites)
	}
	_, err = svc.Authenticate(ctx, raw)
	if store.ErrorCode(err) != store.EREVOKED {
		t.Errorf("after the other process revoked the key: %v, want revoked_key", err)
	}
}

const childWrites = 50

func childProcess(t *testing.T, path string) {
	ctx := t.Context()
	db := openPath(t, path)
	defer db.Close()
	ws, keyID := os.Getenv("HUSTACK_SQLITE_CHILD_WS"), os.Getenv("HUSTACK_SQLITE_CHILD_KEY")
	for i := range childWrites {
		rec := &store.Record{Resource: store.Notes, ID: store.NewID(), WorkspaceID: ws,
			Fields: map[string]any{"content": fmt.Sprint("child ", i)}, CreatedAt: t0, UpdatedAt: t0, CreatedVia: "cli"}
		must(t, db.InsertRecord(ctx, rec))
	}
	_, err := store.NewService(db).RevokeAPIKey(ctx, keyID)
	must(t, err)
}

func TestDeleteUsageInChunks(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := t.Context()
	w := &store.Workspace{ID: store.NewID(), Name: "w", CreatedAt: t0}
	must(t, db.CreateWorkspace(ctx, w))
	const n = 12_000 // more than two retention chunks
	events := make([]store.UsageEvent, n)
	for i := range events {
		events[i] = store.UsageEvent{ID: store.NewID(), WorkspaceID: w.ID, KeyID: "k", Method: "GET", Route: "/r",
			Status: 200, Time: t0.Add(time.Duration(i) * time.Second)}
	}
	must(t, db.InsertUsageEvents(ctx, events))
	deleted, err := db.DeleteUsageBefore(ctx, t0.Add(11_000*time.Second))
	must(t, err)
	if deleted != 11_000 {
		t.Errorf("deleted %d events, want 11000", deleted)
	}
	left, err := db.CountUsage(ctx, w.ID, store.UsageQuery{}, store.GroupByRoute)
	must(t, err)
	if len(left) != 1 || left[0].Count != 1000 {
		t.Errorf("left %+v, want 1000 events", left)
	}
}

func TestContextCanceled(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := db.FindRecords(ctx, store.Accounts, "w", store.RecordQuery{Limit: 10})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("FindRecords with a canceled context: %v, want context.Canceled", err)
	}
}

func TestRelativePathAndDoubleClose(t *testing.T) {
	t.Chdir(t.TempDir())
	db := openPath(t, filepath.Join("data", "hustack.db"))
	must(t, db.CreateWorkspace(t.Context(), &store.Workspace{ID: store.NewID(), Name: "w", CreatedAt: t0}))
	must(t, db.Close())
	must(t, db.Close())
	if _, err := os.Stat(filepath.Join("data", "hustack.db")); err != nil {
		t.Errorf("the database is not under the working directory: %v", err)
	}
}

func TestPurgeInChunks(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := t.Context()
	w := &store.Workspace{ID: store.NewID(), Name: "w", CreatedAt: t0}
	must(t, db.CreateWorkspace(ctx, w))
	const n = 12_000 // more than two chunks
	for i := range n {
		deleted := t0.Add(time.Duration(i) * time.Second)
		rec := &store.Record{Resource: store.Notes, ID: store.NewID(), WorkspaceID: w.ID, Fields: map[string]any{"content": "x"},
			CreatedAt: t0, UpdatedAt: deleted, CreatedVia: "api", DeletedAt: &deleted}
		must(t, db.InsertRecord(ctx, rec))
		k := &store.IdempotencyKey{WorkspaceID: w.ID, Key: fmt.Sprint("k", i), Fingerprint: "f", State: store.IdempotencyInProgress,
			CreatedAt: t0, ExpiresAt: deleted}
		must(t, db.CreateIdempotencyKey(ctx, k))
	}
	live := &store.Record{Resource: store.Notes, ID: store.NewID(), WorkspaceID: w.ID, Fields: map[string]any{"content": "live"},
		CreatedAt: t0, UpdatedAt: t0, CreatedVia: "api"}
	must(t, db.InsertRecord(ctx, live))

	cutoff := t0.Add(11_000 * time.Second)
	purged, err := db.PurgeTombstones(ctx, cutoff)
	must(t, err)
	expired, err := db.DeleteIdempotencyKeysBefore(ctx, cutoff)
	must(t, err)
	if purged != 11_000 || expired != 11_000 {
		t.Errorf("purged %d tombstones and %d keys, want 11000 of each", purged, expired)
	}
	left, err := db.FindRecords(ctx, store.Notes, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 2000, IncludeDeleted: true})
	must(t, err)
	if len(left) != 1001 {
		t.Errorf("%d notes left, want 1000 tombstones and the live one", len(left))
	}
	if _, err := db.FindIdempotencyKey(ctx, w.ID, "k11000"); err != nil {
		t.Errorf("the key expiring at the cutoff: %v", err)
	}
	if _, err := db.FindIdempotencyKey(ctx, w.ID, "k10999"); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("a key expired before the cutoff: %v", err)
	}
}

// TestSubMillisecondBounds: times are stored in milliseconds, and exclusive
// bounds finer than that still mean exactly "after" and "before".
func TestSubMillisecondBounds(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := t.Context()
	rec := &store.Record{Resource: store.Leads, ID: store.NewID(), WorkspaceID: "w", Fields: map[string]any{"name": "L"},
		CreatedAt: t0, UpdatedAt: t0, CreatedVia: "api"}
	must(t, db.InsertRecord(ctx, rec))
	half := 500 * time.Microsecond
	cases := []struct {
		q    store.RecordQuery
		want int
	}{
		{store.RecordQuery{CreatedAfter: t0.Add(-half)}, 1},
		{store.RecordQuery{CreatedAfter: t0.Add(half)}, 0},
		{store.RecordQuery{CreatedAfter: t0}, 0},
		{store.RecordQuery{CreatedBefore: t0.Add(half)}, 1},
		{store.RecordQuery{CreatedBefore: t0.Add(-half)}, 0},
		{store.RecordQuery{CreatedBefore: t0}, 0},
		{store.RecordQuery{UpdatedAfter: t0.Add(-time.Nanosecond), UpdatedBefore: t0.Add(time.Nanosecond)}, 1},
		{store.RecordQuery{UpdatedAfter: t0.Add(time.Nanosecond)}, 0},
	}
	for _, c := range cases {
		c.q.Limit = 10
		got, err := db.FindRecords(ctx, store.Leads, "w", c.q)
		must(t, err)
		if len(got) != c.want {
			t.Errorf("%+v: %d records, want %d", c.q, len(got), c.want)
		}
	}
}
