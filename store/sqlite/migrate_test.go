package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
)

// schemaV1 is the schema as schema version 1 created it: no external_id, no
// deleted_at, no idempotency keys, one list index per resource.
var schemaV1 = []string{
	`CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL) STRICT`,
	`CREATE INDEX workspaces_created ON workspaces (created_at, id)`,
	`CREATE TABLE api_keys (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces (id), name TEXT NOT NULL,
		prefix TEXT NOT NULL, hash BLOB NOT NULL, scopes TEXT NOT NULL, rate_limit TEXT NOT NULL, created_at INTEGER NOT NULL,
		expires_at INTEGER, revoked_at INTEGER, last_used_at INTEGER) STRICT`,
	`CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash)`,
	`CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at, id)`,
	`CREATE TABLE usage_logs (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, key_id TEXT NOT NULL, method TEXT NOT NULL,
		route TEXT NOT NULL, status INTEGER NOT NULL, duration_ms REAL NOT NULL, time INTEGER NOT NULL, day TEXT NOT NULL,
		request_id TEXT NOT NULL, transport TEXT NOT NULL, user_agent TEXT NOT NULL) STRICT`,
	`CREATE INDEX usage_logs_workspace_time ON usage_logs (workspace_id, time DESC)`,
	`CREATE INDEX usage_logs_workspace_key_time ON usage_logs (workspace_id, key_id, time)`,
	`PRAGMA user_version = 1`,
}

// v1Fields are the fields each resource had in schema version 1.
var v1Fields = map[string]string{
	"accounts":   `"name" TEXT, "industry" TEXT, "website" TEXT, "email" TEXT, "phone" TEXT, "country" TEXT`,
	"contacts":   `"first_name" TEXT, "last_name" TEXT, "email" TEXT, "phone" TEXT, "title" TEXT, "account_id" TEXT`,
	"leads":      `"name" TEXT, "email" TEXT, "company" TEXT, "status" TEXT, "source" TEXT`,
	"deals":      `"name" TEXT, "value" REAL, "currency" TEXT, "stage" TEXT, "account_id" TEXT`,
	"activities": `"type" TEXT, "title" TEXT, "description" TEXT, "due_date" TEXT, "related_account_id" TEXT, "related_contact_id" TEXT, "related_opportunity_id" TEXT, "related_lead_id" TEXT`,
	"notes":      `"title" TEXT, "content" TEXT, "related_account_id" TEXT, "related_contact_id" TEXT, "related_opportunity_id" TEXT, "related_lead_id" TEXT`,
}

func createV1(t *testing.T, path string) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	defer raw.Close()
	stmts := schemaV1
	for name, fields := range v1Fields {
		stmts = append(stmts,
			`CREATE TABLE "`+name+`" (id TEXT NOT NULL, workspace_id TEXT NOT NULL, `+fields+
				`, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_via TEXT NOT NULL, api_key_id TEXT NOT NULL) STRICT`,
			`CREATE UNIQUE INDEX "`+name+`_workspace_id" ON "`+name+`" (workspace_id, id)`,
			`CREATE INDEX "`+name+`_workspace_created" ON "`+name+`" (workspace_id, created_at DESC, id DESC)`)
	}
	for _, s := range stmts {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestMigrateFromV1 upgrades a file of schema version 1 with data in it.
func TestMigrateFromV1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v1.db")
	createV1(t, path)

	// Data as version 1 stored it.
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	ws := store.NewID()
	key := store.GenerateKey()
	keyID := store.NewID()
	acc1, acc2, deal, note := store.NewID(), store.NewID(), store.NewID(), store.NewID()
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	execAll(t, raw, []stmt{
		{`INSERT INTO workspaces VALUES (?, 'Old workspace', ?)`, []any{ws, ms(0)}},
		{`INSERT INTO api_keys VALUES (?, ?, 'old key', ?, ?, 'read:accounts,read:deals,write:accounts,write:deals', ?, ?, NULL, NULL, NULL)`,
			[]any{keyID, ws, key[:len(store.KeyPrefix)+6], store.HashKey(key), store.DefaultRateLimit.String(), ms(0)}},
		{`INSERT INTO accounts VALUES (?, ?, 'Acme', 'Software', NULL, 'ops@acme.example', NULL, 'DE', ?, ?, 'api', ?)`,
			[]any{acc1, ws, ms(time.Second), ms(2 * time.Second), keyID}},
		{`INSERT INTO accounts VALUES (?, ?, 'Globex', NULL, NULL, NULL, NULL, NULL, ?, ?, 'cli', '')`,
			[]any{acc2, ws, ms(3 * time.Second), ms(3 * time.Second)}},
		{`INSERT INTO deals VALUES (?, ?, 'Big', 1234.5, 'EUR', 'Won', ?, ?, ?, 'api', ?)`,
			[]any{deal, ws, acc1, ms(4 * time.Second), ms(4 * time.Second), keyID}},
		{`INSERT INTO notes VALUES (?, ?, NULL, 'remember', ?, NULL, NULL, NULL, ?, ?, 'api', ?)`,
			[]any{note, ws, acc2, ms(5 * time.Second), ms(5 * time.Second), keyID}},
		{`INSERT INTO usage_logs VALUES (?, ?, ?, 'GET', '/api/v1/accounts', 200, 1.5, ?, '2025-01-15', 'r', 'rest', 'ua')`,
			[]any{store.NewID(), ws, keyID, ms(time.Minute)}},
	}...)
	must(t, raw.Close())

	db, raw := upgrade(t, path)

	// Nothing was lost.
	got, err := db.FindRecordByID(ctx, store.Accounts, ws, acc1)
	must(t, err)
	want := map[string]any{"name": "Acme", "industry": "Software", "email": "ops@acme.example", "country": "DE"}
	if len(got.Fields) != len(want) || got.CreatedVia != "api" || got.APIKeyID != keyID || got.DeletedAt != nil ||
		!got.CreatedAt.Equal(t0.Add(time.Second)) || !got.UpdatedAt.Equal(t0.Add(2*time.Second)) {
		t.Errorf("old account = %+v", got)
	}
	for k, v := range want {
		if got.Fields[k] != v {
			t.Errorf("old account %s = %v, want %v", k, got.Fields[k], v)
		}
	}
	d, err := db.FindRecordByID(ctx, store.Deals, ws, deal)
	must(t, err)
	if d.Fields["value"] != 1234.5 || d.Fields["account_id"] != acc1 || d.Fields["external_id"] != nil {
		t.Errorf("old deal = %v", d.Fields)
	}
	list, err := db.FindRecords(ctx, store.Accounts, ws, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10})
	must(t, err)
	if len(list) != 2 || list[0].ID != acc2 || list[1].ID != acc1 {
		t.Errorf("old accounts listed as %v", list)
	}
	logs, err := db.FindUsageEvents(ctx, ws, store.UsageQuery{Limit: 10})
	must(t, err)
	if len(logs) != 1 {
		t.Errorf("%d usage events after the upgrade, want 1", len(logs))
	}

	// And the old data takes part in everything new.
	svc := store.NewService(db)
	p, err := svc.Authenticate(ctx, key)
	must(t, err)
	sc := svc.Scoped(p)
	upd, err := sc.UpdateRecord(ctx, store.Accounts, acc1, map[string]any{"external_id": "crm-acme", "industry": nil})
	must(t, err)
	if upd.Fields["external_id"] != "crm-acme" || upd.Fields["industry"] != nil {
		t.Errorf("updated old account = %v", upd.Fields)
	}
	up, created, err := sc.UpsertRecord(ctx, store.Accounts, "crm-acme", map[string]any{"phone": "123"})
	must(t, err)
	if created || up.ID != acc1 {
		t.Errorf("upsert by the old account's new external id: created %v, id %s", created, up.ID)
	}
	err = sc.DeleteRecord(ctx, store.Accounts, acc1)
	if store.ErrorCode(err) != store.ECONFLICT || !strings.Contains(err.Error(), "deals") {
		t.Errorf("deleting the account an old deal refers to: %v, want conflict", err)
	}
	page, err := sc.FindRecords(ctx, store.Deals, store.ListParams{Limit: 10, Filters: map[string]string{"account_id": acc1}})
	must(t, err)
	if len(page.Data) != 1 || page.Data[0].ID != deal {
		t.Errorf("deals filtered by account = %v", page.Data)
	}
	page, err = sc.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 10, Q: "GLOB"})
	must(t, err)
	if len(page.Data) != 1 || page.Data[0].ID != acc2 {
		t.Errorf("accounts searched for GLOB = %v", page.Data)
	}
	must(t, db.DeleteRecord(ctx, store.Accounts, ws, acc2, t0.Add(time.Hour)))
	all, err := db.FindRecords(ctx, store.Accounts, ws, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, IncludeDeleted: true})
	must(t, err)
	if len(all) != 2 || all[0].ID != acc2 || all[0].DeletedAt == nil {
		t.Errorf("accounts with tombstones = %v", all)
	}
	resp, replayed, err := sc.Idempotent(ctx, "k", "fp", func(context.Context) (store.IdempotentResponse, error) {
		return store.IdempotentResponse{Status: 201, Body: []byte("ok")}, nil
	})
	must(t, err)
	if replayed || resp.Status != 201 {
		t.Errorf("Idempotent = %+v, %v", resp, replayed)
	}
	if _, err := db.FindIdempotencyKey(ctx, ws, "k"); err != nil {
		t.Errorf("idempotency key after the upgrade: %v", err)
	}

	// Opening the upgraded file again changes nothing.
	must(t, db.Close())
	db2 := openPath(t, path)
	defer db2.Close()
	got, err = db2.FindRecordByExternalID(ctx, store.Accounts, ws, "crm-acme")
	must(t, err)
	if got.ID != acc1 || got.Fields["phone"] != "123" {
		t.Errorf("after reopening: %+v", got)
	}
}

// schemaV2 is what schema version 2 added to version 1 besides the columns
// and indexes of the resource tables (those are derived from the resources
// on every open).
var schemaV2 = []string{
	`CREATE TABLE idempotency_keys (workspace_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
		state TEXT NOT NULL, status INTEGER NOT NULL, body BLOB, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
		PRIMARY KEY (workspace_id, key)) STRICT`,
	`CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)`,
	`PRAGMA user_version = 2`,
}

// TestMigrateFromV2 upgrades a file of schema version 2, which has neither
// key filters nor key policies.
func TestMigrateFromV2(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v2.db")
	createV1(t, path)
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	for _, s := range schemaV2 {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	ws := store.NewID()
	key := store.GenerateKey()
	keyID := store.NewID()
	expires := t0.Add(30 * 24 * time.Hour)
	execAll(t, raw, []stmt{
		{`INSERT INTO workspaces VALUES (?, 'Version 2', ?)`, []any{ws, t0.UnixMilli()}},
		{`INSERT INTO api_keys VALUES (?, ?, 'v2 key', ?, ?, 'read:leads,write:leads', '600/m', ?, ?, NULL, NULL)`,
			[]any{keyID, ws, key[:len(store.KeyPrefix)+6], store.HashKey(key), t0.UnixMilli(), expires.UnixMilli()}},
	}...)
	must(t, raw.Close())

	db, raw := upgrade(t, path)

	// Old rows read as a key without a filter in a workspace without a policy.
	w, err := db.FindWorkspaceByID(ctx, ws)
	must(t, err)
	if w.Name != "Version 2" || w.Policy != (store.KeyPolicy{}) {
		t.Errorf("old workspace = %+v", w)
	}
	k, err := db.FindAPIKeyByID(ctx, ws, keyID)
	must(t, err)
	if k.Filter != nil || k.Name != "v2 key" || k.ExpiresAt == nil || !k.ExpiresAt.Equal(expires) ||
		k.RateLimit != (store.RateLimit{Count: 600, Period: time.Minute}) || len(k.Scopes) != 2 {
		t.Errorf("old key = %+v", k)
	}

	// The new columns work on the old rows.
	policy := store.KeyPolicy{MaxLifetimeDays: 90, RequireExpiry: true, DisableUnusedDays: 30}
	must(t, db.UpdateWorkspacePolicy(ctx, ws, policy))
	newExpiry := t0.Add(time.Hour)
	must(t, db.SetAPIKeyExpiry(ctx, ws, keyID, newExpiry))
	vendor := &store.APIKey{ID: store.NewID(), WorkspaceID: ws, Name: "vendor", Prefix: "hs_live_abcdef",
		Hash: store.HashKey(store.GenerateKey()), Scopes: []store.Scope{"read:leads"},
		Filter: map[string]string{"source": "Vendor XYZ"}, RateLimit: store.DefaultRateLimit, CreatedAt: t0}
	must(t, db.CreateAPIKey(ctx, vendor))

	// Opening the upgraded file again keeps all of it.
	must(t, db.Close())
	db2 := openPath(t, path)
	defer db2.Close()
	w, err = db2.FindWorkspaceByID(ctx, ws)
	must(t, err)
	if w.Policy != policy {
		t.Errorf("policy after reopening = %+v, want %+v", w.Policy, policy)
	}
	k, err = db2.FindAPIKeyByID(ctx, ws, keyID)
	must(t, err)
	if k.ExpiresAt == nil || !k.ExpiresAt.Equal(newExpiry) {
		t.Errorf("old key's expiry after reopening = %v, want %v", k.ExpiresAt, newExpiry)
	}
	v, err := db2.FindAPIKeyByID(ctx, ws, vendor.ID)
	must(t, err)
	if len(v.Filter) != 1 || v.Filter["source"] != "Vendor XYZ" {
		t.Errorf("vendor key's filter after reopening = %v", v.Filter)
	}
	clock := func() time.Time { return t0.Add(time.Minute) }
	p, err := store.NewService(db2, store.WithClock(clock)).Authenticate(ctx, key)
	if err != nil || p.KeyID != keyID || len(p.Filter) != 0 {
		t.Errorf("authenticating the old key: %+v, %v", p, err)
	}
}

// schemaV3 is what schema version 3 added to version 2.
var schemaV3 = []string{
	`ALTER TABLE api_keys ADD COLUMN record_filter TEXT`,
	`ALTER TABLE workspaces ADD COLUMN policy_max_lifetime_days INTEGER NOT NULL DEFAULT 0`,
	`ALTER TABLE workspaces ADD COLUMN policy_require_expiry INTEGER NOT NULL DEFAULT 0`,
	`ALTER TABLE workspaces ADD COLUMN policy_disable_unused_days INTEGER NOT NULL DEFAULT 0`,
	`PRAGMA user_version = 3`,
}

// TestMigrateFromV3 upgrades a file of schema version 3, which has no
// webhooks, outbox or deliveries: the old keys and records take part in
// all of them.
func TestMigrateFromV3(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v3.db")
	createV1(t, path)
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	for _, s := range append(slices.Clone(schemaV2), schemaV3...) {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	ws := store.NewID()
	admin := store.GenerateKey()
	adminID, vendorID, leadID := store.NewID(), store.NewID(), store.NewID()
	soon := t0.Add(3 * 24 * time.Hour)
	execAll(t, raw, []stmt{
		{`INSERT INTO workspaces VALUES (?, 'Version 3', ?, 0, 0, 0)`, []any{ws, t0.UnixMilli()}},
		{`INSERT INTO api_keys VALUES (?, ?, 'v3 admin', ?, ?, ?, '600/m', ?, NULL, NULL, NULL, NULL)`,
			[]any{adminID, ws, admin[:len(store.KeyPrefix)+6], store.HashKey(admin), "admin:keys,read:leads,write:leads,read:webhooks,write:webhooks",
				t0.UnixMilli()}},
		{`INSERT INTO api_keys VALUES (?, ?, 'v3 vendor', 'hs_live_vvvvvv', ?, 'read:leads', '600/m', ?, ?, NULL, NULL, '{"source":"Vendor XYZ"}')`,
			[]any{vendorID, ws, store.HashKey(store.GenerateKey()), t0.UnixMilli(), soon.UnixMilli()}},
		{`INSERT INTO leads VALUES (?, ?, 'Old lead', NULL, NULL, 'New', 'Vendor XYZ', ?, ?, 'api', ?)`,
			[]any{leadID, ws, t0.UnixMilli(), t0.UnixMilli(), adminID}},
	}...)
	must(t, raw.Close())

	db, raw := upgrade(t, path)
	var announced sql.NullInt64
	must(t, raw.QueryRow("SELECT expiring_announced_at FROM api_keys WHERE id = ?", vendorID).Scan(&announced))
	if announced.Valid {
		t.Errorf("an old key reads as announced at %d", announced.Int64)
	}

	clock := t0.Add(time.Hour)
	svc := store.NewService(db, store.WithClock(func() time.Time { return clock }),
		store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true}))
	p, err := svc.Authenticate(ctx, admin)
	must(t, err)
	sc := svc.Scoped(p)
	w, _, err := sc.CreateWebhook(ctx, store.WebhookInput{URL: "http://127.0.0.1:9/hook", Events: []string{"lead.*", "api_key.*"}})
	must(t, err)

	// The old lead and the old vendor key announce their changes.
	_, err = sc.UpdateRecord(ctx, store.Leads, leadID, map[string]any{"status": "Qualified"})
	must(t, err)
	clock = clock.Add(time.Second)
	n, err := svc.AnnounceExpiringKeys(ctx)
	must(t, err)
	if n != 1 {
		t.Errorf("AnnounceExpiringKeys announced %d old keys, want 1", n)
	}
	clock = clock.Add(time.Second)
	must(t, sc.DeleteRecord(ctx, store.Leads, leadID))
	evs, err := svc.ClaimEvents(ctx, 10)
	must(t, err)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if want := []string{"lead.updated", "api_key.expiring", "lead.deleted"}; !slices.Equal(types, want) {
		t.Fatalf("events after the upgrade = %q, want %q", types, want)
	}
	if !strings.Contains(string(evs[2].Data), `"source":"Vendor XYZ"`) || !strings.Contains(string(evs[2].Data), `"deleted":true`) {
		t.Errorf("the old lead's deleted event = %s", evs[2].Data)
	}
	ds, err := svc.FanOut(ctx, evs)
	must(t, err)
	must(t, svc.AckEvents(ctx, []string{evs[0].ID, evs[1].ID, evs[2].ID}))
	if len(ds) != 3 {
		t.Errorf("FanOut stored %d deliveries, want 3", len(ds))
	}

	// Opening the upgraded file again keeps all of it.
	must(t, db.Close())
	db2 := openPath(t, path)
	defer db2.Close()
	got, err := db2.FindWebhookByID(ctx, ws, w.ID)
	must(t, err)
	if got.URL != w.URL || got.Secret != w.Secret || !slices.Equal(got.Events, w.Events) {
		t.Errorf("webhook after reopening = %+v", got)
	}
	log, err := db2.FindDeliveries(ctx, ws, w.ID, store.DeliveryQuery{Limit: 10})
	must(t, err)
	if len(log) != 3 {
		t.Errorf("%d deliveries after reopening, want 3", len(log))
	}
	if ok, err := db2.MarkAPIKeyExpiring(ctx, ws, vendorID, clock); err != nil || ok {
		t.Errorf("MarkAPIKeyExpiring of the announced key after reopening = %v, %v; want false", ok, err)
	}
	if evs, err := db2.ClaimEvents(ctx, clock, clock, 10); err != nil || len(evs) != 0 {
		t.Errorf("the outbox after reopening holds %d events (%v), want none", len(evs), err)
	}
}

// stmt is a statement and its arguments.
type stmt struct {
	q    string
	args []any
}

// execAll runs statements on raw, failing the test at the first error.
func execAll(t *testing.T, raw *sql.DB, stmts ...stmt) {
	t.Helper()
	for _, s := range stmts {
		if _, err := raw.Exec(s.q, s.args...); err != nil {
			t.Fatalf("%s: %v", s.q, err)
		}
	}
}

// upgrade opens the file at path, which migrates it, checks that it now
// has the current schema version and every index, and returns the store
// and a plain connection to the file; both are closed when the test ends.
func upgrade(t *testing.T, path string) (*sqlite.DB, *sql.DB) {
	t.Helper()
	db := openPath(t, path)
	t.Cleanup(func() { db.Close() })
	raw, err := sql.Open("sqlite", path)
	must(t, err)
	t.Cleanup(func() { raw.Close() })
	var version int
	must(t, raw.QueryRow("PRAGMA user_version").Scan(&version))
	if version != 4 {
		t.Errorf("user_version after the upgrade = %d, want 4", version)
	}
	checkIndexes(t, raw)
	return db, raw
}
