package mongo_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo"
	"github.com/hustack/hustack/store/mongo/mongotest"
)

// base is a fixed instant with milliseconds, in a non-UTC zone, so tests see
// both the zone conversion and the precision kept.
var base = time.Date(2026, 3, 1, 23, 30, 0, 123_000_000, time.FixedZone("X", -2*3600))

func newWorkspace(t *testing.T, db store.Backend, name string) *store.Workspace {
	t.Helper()
	w := &store.Workspace{ID: store.NewID(), Name: name, CreatedAt: base}
	if err := db.CreateWorkspace(context.Background(), w); err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	return w
}

func newKey(t *testing.T, db store.Backend, ws string) *store.APIKey {
	t.Helper()
	raw := store.GenerateKey()
	k := &store.APIKey{
		ID: store.NewID(), WorkspaceID: ws, Name: "key", Prefix: raw[:14], Hash: store.HashKey(raw),
		Scopes: []store.Scope{"read:accounts"}, RateLimit: store.DefaultRateLimit, CreatedAt: base,
	}
	if err := db.CreateAPIKey(context.Background(), k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return k
}

func newAccount(t *testing.T, db store.Backend, ws string, fields map[string]any, at time.Time) *store.Record {
	t.Helper()
	rec := &store.Record{
		Resource: store.Accounts, ID: store.NewID(), WorkspaceID: ws, Fields: fields,
		CreatedAt: at, UpdatedAt: at, CreatedVia: store.CreatedViaAPI, APIKeyID: store.NewID(),
	}
	if err := db.InsertRecord(context.Background(), rec); err != nil {
		t.Fatalf("InsertRecord: %v", err)
	}
	return rec
}

func indexKeys(t *testing.T, db *mongo.DB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	names, err := db.Database().ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatalf("ListCollectionNames: %v", err)
	}
	out := map[string][]string{}
	for _, coll := range names {
		cur, err := db.Database().Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Fatalf("list indexes of %s: %v", coll, err)
		}
		var specs []bson.M
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatalf("read indexes of %s: %v", coll, err)
		}
		for _, s := range specs {
			desc := fmt.Sprint(s["name"])
			if u, _ := s["unique"].(bool); u {
				desc += " unique"
			}
			out[coll] = append(out[coll], desc)
		}
		sort.Strings(out[coll])
	}
	return out
}

func TestOpenTwiceKeepsIndexes(t *testing.T) {
	name := mongotest.DatabaseName()
	first := mongotest.OpenDatabase(t, name)
	before := indexKeys(t, first)

	want := map[string][]string{
		"api_keys": {"hash_1 unique", "_outbox_pending_1"},
		"accounts": {"workspace_id_1_created_at_-1__id_-1", "workspace_id_1_updated_at_-1__id_-1",
			"workspace_id_1_industry_1_created_at_-1__id_-1", "workspace_id_1_country_1_created_at_-1__id_-1",
			"workspace_id_1_email_1_created_at_-1__id_-1", "workspace_id_1_external_id_1_created_at_-1__id_-1",
			"workspace_id_1_live_external_id_1 unique", "deleted_at_1", "_outbox_pending_1"},
		"activities": {"workspace_id_1_type_1_created_at_-1__id_-1",
			"workspace_id_1_related_opportunity_id_1_created_at_-1__id_-1"},
		"notes":            {"workspace_id_1_created_at_-1__id_-1", "workspace_id_1_live_external_id_1 unique"},
		"usage_logs":       {"workspace_id_1_time_-1__id_-1"},
		"workspaces":       {"created_at_1__id_1"},
		"idempotency_keys": {"expires_at_1"},
		"webhooks":         {"workspace_id_1_created_at_-1__id_-1"},
		"webhook_deliveries": {"workspace_id_1_webhook_id_1_created_at_-1__id_-1", "next_attempt_at_1",
			"created_at_1"},
		"outbox": {"created_at_1__id_1"},
	}
	for coll, idxs := range want {
		for _, idx := range idxs {
			if !slices.Contains(before[coll], idx) {
				t.Errorf("indexes of %s = %v, want %q among them", coll, before[coll], idx)
			}
		}
	}
	// Every index of a tenant collection leads with workspace_id, except
	// _id, the maintenance indexes of cross-workspace retention and those
	// the relay and the delivery worker use across workspaces.
	maintenance := map[string]bool{"_id_": true, "deleted_at_1": true, "time_1": true, "hash_1 unique": true,
		"created_at_1": true, "_outbox_pending_1": true, "next_attempt_at_1": true}
	for coll, idxs := range before {
		if coll == "workspaces" || coll == "idempotency_keys" || coll == "outbox" {
			continue
		}
		for _, idx := range idxs {
			if !maintenance[idx] && !strings.HasPrefix(idx, "workspace_id_1_") {
				t.Errorf("index %s of %s does not lead with workspace_id", idx, coll)
			}
		}
	}
	for _, r := range store.Resources {
		for _, f := range r.FilterNames() {
			idx := "workspace_id_1_" + f + "_1_created_at_-1__id_-1"
			if !slices.Contains(before[r.Name], idx) {
				t.Errorf("filter %s of %s has no index %s: %v", f, r.Name, idx, before[r.Name])
			}
		}
	}

	newWorkspace(t, first, "acme")
	second := mongotest.OpenDatabase(t, name) // creates the same indexes again
	after := indexKeys(t, second)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("indexes changed on second Open:\nbefore %v\nafter  %v", before, after)
	}
	if ws, err := second.FindWorkspaces(context.Background()); err != nil || len(ws) != 1 {
		t.Errorf("FindWorkspaces after second Open = %d workspaces, %v; want 1", len(ws), err)
	}
}

func TestUniqueViolationsAreConflicts(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	if err := db.CreateWorkspace(ctx, &store.Workspace{ID: w.ID, Name: "again", CreatedAt: base}); store.ErrorCode(err) != store.ECONFLICT {
		t.Errorf("CreateWorkspace with a taken id: %v, want conflict", err)
	}
	k := newKey(t, db, w.ID)
	dup := *k
	dup.ID = store.NewID()
	if err := db.CreateAPIKey(ctx, &dup); store.ErrorCode(err) != store.ECONFLICT {
		t.Errorf("CreateAPIKey with a taken hash: %v, want conflict", err)
	}
	if _, err := db.FindWorkspaceByID(ctx, store.NewID()); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("FindWorkspaceByID(unknown): %v, want not_found", err)
	}
}

func TestRoundTrip(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	got, err := db.FindWorkspaceByID(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Location() != time.UTC || !got.CreatedAt.Equal(base) {
		t.Errorf("workspace created_at = %v, want %v in UTC", got.CreatedAt, base.UTC())
	}

	k := newKey(t, db, w.ID)
	exp := base.Add(time.Hour)
	gotKey, err := db.FindAPIKeyByHashUnscoped(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if gotKey.ID != k.ID || gotKey.RateLimit != k.RateLimit || !slices.Equal(gotKey.Scopes, k.Scopes) ||
		gotKey.ExpiresAt != nil || gotKey.RevokedAt != nil || gotKey.LastUsedAt != nil {
		t.Errorf("key read back = %+v, want %+v", gotKey, k)
	}

	if err := db.RevokeAPIKey(ctx, w.ID, k.ID, exp); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAPIKey(ctx, w.ID, k.ID, exp.Add(time.Hour)); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	gotKey, err = db.FindAPIKeyByIDUnscoped(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gotKey.RevokedAt == nil || !gotKey.RevokedAt.Equal(exp) || gotKey.RevokedAt.Location() != time.UTC {
		t.Errorf("revoked_at = %v, want %v (the first revocation), in UTC", gotKey.RevokedAt, exp)
	}

	fields := map[string]any{"name": "Acme", "website": "https://acme.test", "country": "FR"}
	rec := newAccount(t, db, w.ID, fields, base)
	deal := &store.Record{
		Resource: store.Deals, ID: store.NewID(), WorkspaceID: w.ID,
		Fields:    map[string]any{"name": "Big", "value": 1234.5, "currency": "EUR"},
		CreatedAt: base, UpdatedAt: base, CreatedVia: store.CreatedViaAPI,
	}
	if err := db.InsertRecord(ctx, deal); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*store.Record{rec, deal} {
		got, err := db.FindRecordByID(ctx, want.Resource, w.ID, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Fields) != fmt.Sprint(want.Fields) || !got.CreatedAt.Equal(want.CreatedAt) ||
			got.CreatedAt.Location() != time.UTC || got.APIKeyID != want.APIKeyID || got.CreatedVia != want.CreatedVia {
			t.Errorf("record read back = %+v, want %+v", got, want)
		}
	}

	var raw bson.M
	if err := db.Database().Collection("deals").FindOne(ctx, bson.D{{Key: "_id", Value: deal.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["value"].(float64); !ok {
		t.Errorf("deal value stored as %T, want a double", raw["value"])
	}
	if _, ok := raw["stage"]; ok {
		t.Errorf("unset field stage stored: %v", raw)
	}
	if _, ok := raw["created_at"].(bson.DateTime); !ok {
		t.Errorf("created_at stored as %T, want a date", raw["created_at"])
	}
}

func TestOperatorLookingValuesAreLiterals(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	other := newWorkspace(t, db, "other")
	newAccount(t, db, other.ID, map[string]any{"name": "Secret"}, base)

	values := []string{`{"$gt": ""}`, "$where", "$ne", "this.name == 'x' || true", "a.b.c", `{"$regex": ".*"}`}
	var ids []string
	for _, v := range values {
		rec := newAccount(t, db, w.ID, map[string]any{"name": v, "industry": v}, base)
		ids = append(ids, rec.ID)
		got, err := db.FindRecordByID(ctx, store.Accounts, w.ID, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Fields["name"] != v || got.Fields["industry"] != v {
			t.Errorf("stored %q, read back %v", v, got.Fields)
		}
	}
	n, err := db.Database().Collection("accounts").CountDocuments(ctx, bson.D{{Key: "name", Value: `{"$gt": ""}`}})
	if err != nil || n != 1 {
		t.Errorf("documents whose name is the literal string: %d, %v; want 1", n, err)
	}

	// Operator-looking ids and workspace ids match nothing.
	for _, v := range values {
		if _, err := db.FindRecordByID(ctx, store.Accounts, w.ID, v); store.ErrorCode(err) != store.ENOTFOUND {
			t.Errorf("FindRecordByID(id %q): %v, want not_found", v, err)
		}
		if _, err := db.FindRecordByID(ctx, store.Accounts, v, ids[0]); store.ErrorCode(err) != store.ENOTFOUND {
			t.Errorf("FindRecordByID(workspace %q): %v, want not_found", v, err)
		}
		recs, err := db.FindRecords(ctx, store.Accounts, v, store.RecordQuery{Limit: 10})
		if err != nil || len(recs) != 0 {
			t.Errorf("FindRecords(workspace %q) = %d records, %v; want none", v, len(recs), err)
		}
		if _, err := db.FindAPIKeyByIDUnscoped(ctx, v); store.ErrorCode(err) != store.ENOTFOUND {
			t.Errorf("FindAPIKeyByIDUnscoped(%q): %v, want not_found", v, err)
		}
	}
}

func TestWorkspaceIsolation(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	a := newWorkspace(t, db, "a")
	b := newWorkspace(t, db, "b")
	recA := newAccount(t, db, a.ID, map[string]any{"name": "A"}, base)
	recB := newAccount(t, db, b.ID, map[string]any{"name": "B"}, base)
	keyA := newKey(t, db, a.ID)
	keyB := newKey(t, db, b.ID)

	if _, err := db.FindRecordByID(ctx, store.Accounts, a.ID, recB.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("workspace a reading b's record: %v, want not_found", err)
	}
	recs, err := db.FindRecords(ctx, store.Accounts, a.ID, store.RecordQuery{Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].ID != recA.ID || recs[0].WorkspaceID != a.ID {
		t.Errorf("FindRecords(a) = %v, %v; want only %s", recs, err, recA.ID)
	}
	keys, err := db.FindAPIKeys(ctx, a.ID)
	if err != nil || len(keys) != 1 || keys[0].ID != keyA.ID {
		t.Errorf("FindAPIKeys(a) = %v, %v; want only %s", keys, err, keyA.ID)
	}
	if err := db.RevokeAPIKey(ctx, a.ID, keyB.ID, base); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("workspace a revoking b's key: %v, want not_found", err)
	}
	if k, err := db.FindAPIKeyByIDUnscoped(ctx, keyB.ID); err != nil || k.RevokedAt != nil {
		t.Errorf("b's key after a's revoke attempt: %+v, %v; want not revoked", k, err)
	}

	events := []store.UsageEvent{
		{ID: store.NewID(), WorkspaceID: a.ID, KeyID: keyA.ID, Status: 200, Time: base},
		{ID: store.NewID(), WorkspaceID: b.ID, KeyID: keyB.ID, Status: 500, Time: base},
	}
	if err := db.InsertUsageEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindUsageEvents(ctx, a.ID, store.UsageQuery{})
	if err != nil || len(got) != 1 || got[0].ID != events[0].ID {
		t.Errorf("FindUsageEvents(a) = %v, %v; want only a's event", got, err)
	}
	counts, err := db.CountUsage(ctx, a.ID, store.UsageQuery{}, store.GroupByKey)
	want := []store.UsageCount{{Group: keyA.ID, Count: 1}}
	if err != nil || !slices.Equal(counts, want) {
		t.Errorf("CountUsage(a) = %v, %v; want %v", counts, err, want)
	}
}

func TestTouchAPIKeysNeverMovesBack(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	k1 := newKey(t, db, w.ID)
	k2 := newKey(t, db, w.ID)
	later := base.Add(time.Minute)

	steps := []struct {
		touch    map[string]time.Time
		want1    time.Time
		want2    time.Time
		wantNil2 bool
	}{
		{touch: map[string]time.Time{k1.ID: later, store.NewID(): later}, want1: later, wantNil2: true},
		{touch: map[string]time.Time{k1.ID: base, k2.ID: base}, want1: later, want2: base},
		{touch: map[string]time.Time{k1.ID: later.Add(time.Millisecond), k2.ID: base}, want1: later.Add(time.Millisecond), want2: base},
	}
	for i, s := range steps {
		if err := db.TouchAPIKeys(ctx, s.touch); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		g1, err := db.FindAPIKeyByIDUnscoped(ctx, k1.ID)
		if err != nil {
			t.Fatal(err)
		}
		g2, err := db.FindAPIKeyByIDUnscoped(ctx, k2.ID)
		if err != nil {
			t.Fatal(err)
		}
		if g1.LastUsedAt == nil || !g1.LastUsedAt.Equal(s.want1) {
			t.Errorf("step %d: key 1 last_used_at = %v, want %v", i, g1.LastUsedAt, s.want1)
		}
		switch {
		case s.wantNil2 && g2.LastUsedAt != nil:
			t.Errorf("step %d: key 2 last_used_at = %v, want unset", i, g2.LastUsedAt)
		case !s.wantNil2 && (g2.LastUsedAt == nil || !g2.LastUsedAt.Equal(s.want2)):
			t.Errorf("step %d: key 2 last_used_at = %v, want %v", i, g2.LastUsedAt, s.want2)
		}
	}
}

// TestCountUsage checks counts against totals computed here from the events,
// for every grouping and filter, on whatever server the tests run against
// (FerretDB included).
func TestCountUsage(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	other := newWorkspace(t, db, "other")
	keys := []string{store.NewID(), store.NewID()}
	routes := []string{"/api/v1/accounts", "/api/v1/accounts/:id", "/mcp"}
	statuses := []int{200, 201, 404, 500}

	var events []store.UsageEvent
	for i := range 60 {
		events = append(events, store.UsageEvent{
			ID: store.NewID(), WorkspaceID: w.ID, KeyID: keys[i%2], Method: "GET",
			Route: routes[i%3], Status: statuses[i%4], DurationMS: float64(i),
			Time:      base.Add(time.Duration(i) * 2 * time.Hour), // spans six UTC days
			Transport: store.TransportREST,
		})
	}
	events = append(events, store.UsageEvent{ID: store.NewID(), WorkspaceID: other.ID, KeyID: keys[0], Route: routes[0], Status: 500, Time: base})
	// Inserting in two overlapping batches, one of them twice, stores each event once.
	for _, batch := range [][]store.UsageEvent{events[:40], events[20:], events[:40]} {
		if err := db.InsertUsageEvents(ctx, batch); err != nil {
			t.Fatalf("InsertUsageEvents: %v", err)
		}
	}
	n, err := db.Database().Collection("usage_logs").CountDocuments(ctx, bson.D{})
	if err != nil || n != int64(len(events)) {
		t.Fatalf("stored %d events, %v; want %d", n, err, len(events))
	}

	from, to := base.Add(10*time.Hour), base.Add(70*time.Hour)
	queries := map[string]store.UsageQuery{
		"all":    {},
		"key":    {KeyID: keys[1]},
		"status": {Status: 404},
		"ok":     {Status: 200},
		"range":  {From: from, To: to},
		"mixed":  {KeyID: keys[0], From: from},
	}
	groups := []store.UsageGroup{store.GroupByDay, store.GroupByKey, store.GroupByRoute, store.GroupByStatus}
	for qname, q := range queries {
		for _, by := range groups {
			t.Run(qname+"/"+string(by), func(t *testing.T) {
				got, err := db.CountUsage(ctx, w.ID, q, by)
				if err != nil {
					t.Fatal(err)
				}
				want := expectedCounts(events, w.ID, q, by)
				if !slices.Equal(got, want) {
					t.Errorf("CountUsage = %v\nwant %v", got, want)
				}
			})
		}
	}

	// Listing uses the same filter, newest first.
	list, err := db.FindUsageEvents(ctx, w.ID, store.UsageQuery{KeyID: keys[0], From: from, To: to, Limit: 5, Offset: 2})
	if err != nil {
		t.Fatal(err)
	}
	var all []store.UsageEvent
	for _, e := range events {
		if matches(e, w.ID, store.UsageQuery{KeyID: keys[0], From: from, To: to}) {
			all = append(all, e)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Time.After(all[j].Time) })
	if len(list) != 5 {
		t.Fatalf("FindUsageEvents returned %d events, want 5", len(list))
	}
	for i, e := range list {
		if e.ID != all[i+2].ID || !e.Time.Equal(all[i+2].Time) || e.Time.Location() != time.UTC {
			t.Errorf("event %d = %s at %v, want %s at %v (UTC)", i, e.ID, e.Time, all[i+2].ID, all[i+2].Time)
		}
	}

	deleted, err := db.DeleteUsageBefore(ctx, base.Add(24*time.Hour))
	if err != nil || deleted != 13 { // 12 of w (every 2 hours) and 1 of other
		t.Errorf("DeleteUsageBefore = %d, %v; want 13", deleted, err)
	}
}

func matches(e store.UsageEvent, ws string, q store.UsageQuery) bool {
	return e.WorkspaceID == ws &&
		(q.KeyID == "" || e.KeyID == q.KeyID) &&
		(q.Status == 0 || e.Status == q.Status) &&
		(q.From.IsZero() || !e.Time.Before(q.From)) &&
		(q.To.IsZero() || e.Time.Before(q.To))
}

func expectedCounts(events []store.UsageEvent, ws string, q store.UsageQuery, by store.UsageGroup) []store.UsageCount {
	m := map[string]*store.UsageCount{}
	for _, e := range events {
		if !matches(e, ws, q) {
			continue
		}
		var g string
		switch by {
		case store.GroupByDay:
			g = e.Day()
		case store.GroupByKey:
			g = e.KeyID
		case store.GroupByRoute:
			g = e.Route
		case store.GroupByStatus:
			g = fmt.Sprint(e.Status)
		}
		if m[g] == nil {
			m[g] = &store.UsageCount{Group: g}
		}
		m[g].Count++
		if e.Status >= 400 {
			m[g].Errors++
		}
	}
	out := []store.UsageCount{}
	for _, c := range m {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}
