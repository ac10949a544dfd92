package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
)

// openTestService opens the env's store, closed at the end of the test.
func openTestService(t *testing.T, e testEnv) *store.Service {
	t.Helper()
	cfg, err := loadConfig(e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := openService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func TestParseFilter(t *testing.T) {
	good := map[string]map[string]string{
		`source=Vendor XYZ`:                    {"source": "Vendor XYZ"},
		`source="Vendor XYZ"`:                  {"source": "Vendor XYZ"},
		`source='Vendor, Inc.',status=New`:     {"source": "Vendor, Inc.", "status": "New"},
		` source = "Vendor XYZ" , status=New `: {"source": "Vendor XYZ", "status": "New"},
		`source="a=b"`:                         {"source": "a=b"},
		`source=XYZ,source=XYZ`:                {"source": "XYZ"},
	}
	for in, want := range good {
		got, err := parseFilter(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("parseFilter(%q) = %v, %v; want %v", in, got, err, want)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("parseFilter(%q)[%s] = %q, want %q", in, k, got[k], v)
			}
		}
	}
	for _, in := range []string{``, `source`, `=XYZ`, `source=`, `source="XYZ`, `source="XYZ"extra`, `source=a,source=b`, `my field=x`} {
		if got, err := parseFilter(in); err == nil {
			t.Errorf("parseFilter(%q) = %v, want an error", in, got)
		}
	}
}

func TestKeyCreateWithFilter(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	k := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "xyz",
		"--scopes", "read:leads,write:leads", "--filter", `source="Vendor XYZ"`, "--filter", "status=New")
	f, _ := k["filter"].(map[string]any)
	if len(f) != 2 || f["source"] != "Vendor XYZ" || f["status"] != "New" {
		t.Fatalf("key create --filter: filter = %v", k["filter"])
	}
	raw := k["key"].(string)

	// The key is a vendor key: it sees only matching records.
	svc := openTestService(t, e)
	p, err := svc.Authenticate(t.Context(), raw)
	if err != nil || p.Filter["source"] != "Vendor XYZ" || p.Filter["status"] != "New" {
		t.Fatalf("principal of the vendor key = %+v, %v", p, err)
	}
	rec, err := svc.Scoped(p).CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Ada"})
	if err != nil || rec.Fields["source"] != "Vendor XYZ" {
		t.Fatalf("a lead created by the vendor key = %+v, %v", rec, err)
	}
	svc.Close()

	out := mustRun(t, e, "key", "create", "--workspace", ws, "--name", "abc", "--scopes", "read:leads", "--filter", "source=ABC,status=Qualified")
	if !strings.Contains(out, `Filter:      source="ABC",status="Qualified"`) {
		t.Errorf("readable key create does not show the filter:\n%s", out)
	}
	table := mustRun(t, e, "key", "list", "--workspace", ws)
	for _, want := range []string{"FILTER", `source="Vendor XYZ",status="New"`, `source="ABC",status="Qualified"`, "REQUESTS 7D"} {
		if !strings.Contains(table, want) {
			t.Errorf("key list lacks %q:\n%s", want, table)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scopes", "read:notes", "--filter", "source=X"}, "notes have no field"},
		{[]string{"--scopes", "read:leads,read:usage", "--filter", "source=X"}, "read:usage"},
		{[]string{"--scopes", "read:leads", "--filter", "nickname=X"}, `"nickname" is not a filterable text field`},
		{[]string{"--scopes", "read:leads", "--filter", `source="X`}, "no closing"},
	} {
		args := append([]string{"key", "create", "--workspace", ws, "--name", "bad"}, tc.args...)
		r := runCLI(t, e, args...)
		if r.err == nil || !strings.Contains(errorText(r.err), tc.want) || r.stdout != "" {
			t.Errorf("hustack %s: %v, want an error with %q", strings.Join(args, " "), r.err, tc.want)
		}
	}
}

func TestKeyListStatusesAndRequests(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	soon := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "soon", "--scopes", "read:leads", "--expires-in", "3d")
	busy := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "busy", "--scopes", "read:leads")

	svc := openTestService(t, e)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var events []store.UsageEvent
	for i, at := range []time.Time{now.Add(-time.Hour), now.Add(-6 * 24 * time.Hour), now.Add(-8 * 24 * time.Hour)} {
		events = append(events, store.UsageEvent{ID: store.NewID(), WorkspaceID: ws, KeyID: busy["id"].(string), Method: "GET",
			Route: "/api/v1/leads", Status: 200 + i, Time: at, RequestID: store.NewID(), Transport: store.TransportREST})
	}
	if err := svc.RecordUsage(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	svc.Close()

	list := mustJSON[[]map[string]any](t, e, "key", "list", "--json", "--workspace", ws)
	if len(list) != 2 {
		t.Fatalf("key list --json = %v", list)
	}
	want := []string{"created_at", "expires_at", "filter", "id", "last_used_at", "name", "prefix", "rate_limit", "requests_7d",
		"revoked_at", "scopes", "status", "workspace_id"}
	if got := keysOf(list[0]); !slices.Equal(got, want) {
		t.Errorf("key list --json fields = %v, want %v", got, want)
	}
	if list[0]["id"] != soon["id"] || list[0]["status"] != "expiring" || list[0]["requests_7d"] != 0.0 || list[0]["filter"] != nil {
		t.Errorf("key expiring in 3 days = %v, want status expiring, 0 requests, filter null", list[0])
	}
	if list[1]["id"] != busy["id"] || list[1]["status"] != "active" || list[1]["requests_7d"] != 2.0 || list[1]["last_used_at"] == nil {
		t.Errorf("busy key = %v, want active with 2 requests over 7 days (the third is older)", list[1])
	}
	table := mustRun(t, e, "key", "list", "--workspace", ws)
	if !strings.Contains(table, "expiring") {
		t.Errorf("key list table lacks the expiring status:\n%s", table)
	}
}

func TestKeyRotate(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	old := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "zapier",
		"--scopes", "read:leads,write:leads", "--filter", "source=Zap", "--rate-limit", "60/m")
	oldRaw := old["key"].(string)

	before := time.Now()
	rotated := mustJSON[map[string]any](t, e, "key", "rotate", "--json", old["id"].(string), "--expire-old-in", "2d")
	if out := mustRun(t, e, "key", "list", "--workspace", ws); !strings.Contains(out, "expiring") {
		t.Errorf("key list after rotation lacks the old key's expiring status:\n%s", out)
	}
	want := []string{"expires_at", "filter", "id", "key", "name", "old_key", "prefix", "rate_limit", "scopes", "workspace_id"}
	if got := keysOf(rotated); !slices.Equal(got, want) {
		t.Errorf("key rotate --json fields = %v, want %v", got, want)
	}
	newRaw, _ := rotated["key"].(string)
	if !store.WellFormedKey(newRaw) || newRaw == oldRaw || rotated["id"] == old["id"] || rotated["name"] != "zapier" ||
		rotated["rate_limit"] != "60/m" || rotated["filter"].(map[string]any)["source"] != "Zap" ||
		!slices.Equal(toStrings(rotated["scopes"]), []string{"read:leads", "write:leads"}) {
		t.Errorf("key rotate --json = %v", rotated)
	}
	oldKey := rotated["old_key"].(map[string]any)
	exp, err := time.Parse(time.RFC3339, oldKey["expires_at"].(string))
	if err != nil || oldKey["id"] != old["id"] || oldKey["status"] != "expiring" ||
		exp.Before(before.Add(48*time.Hour-time.Second)) || exp.After(time.Now().Add(48*time.Hour)) {
		t.Errorf("old_key = %v, want it expiring in 2 days", oldKey)
	}
	if _, ok := oldKey["key"]; ok {
		t.Errorf("old_key shows a key field")
	}
	svc := openTestService(t, e)
	for _, raw := range []string{oldRaw, newRaw} {
		if _, err := svc.Authenticate(t.Context(), raw); err != nil {
			t.Errorf("during the overlap a key is refused: %v", err)
		}
	}
	svc.Close()

	// Readable, and "now": the old key stops at once.
	out := mustRun(t, e, "key", "rotate", rotated["id"].(string), "--expire-old-in", "now")
	third := rawKeyPattern.FindString(out)
	if third == "" || third == newRaw || !strings.Contains(out, "shown only this once") || !strings.Contains(out, "has stopped working") {
		t.Errorf("readable key rotate:\n%s", out)
	}
	svc = openTestService(t, e)
	if _, err := svc.Authenticate(t.Context(), newRaw); store.ErrorCode(err) != store.ErrorCode(store.ErrExpiredKey) {
		t.Errorf("the key rotated with now still authenticates: %v", err)
	}
	if _, err := svc.Authenticate(t.Context(), third); err != nil {
		t.Errorf("the newest key is refused: %v", err)
	}
	svc.Close()

	for _, tc := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"key", "rotate", store.NewID()}, "no API key with id", false},
		{[]string{"key", "rotate", old["id"].(string), "--expire-old-in", "1y"}, "--expire-old-in", false},
		{[]string{"key", "rotate", old["id"].(string), "--expire-old-in", "100d"}, "at most 90 days", false},
		{[]string{"key", "rotate", rotated["id"].(string)}, "Only an active key can be rotated", false},
		{[]string{"key", "rotate"}, "missing argument", true},
	} {
		r := runCLI(t, e, tc.args...)
		if r.err == nil || !strings.Contains(errorText(r.err), tc.want) || r.stdout != "" {
			t.Errorf("hustack %s: %v, stdout %q; want an error with %q", strings.Join(tc.args, " "), r.err, r.stdout, tc.want)
			continue
		}
		if got := exitCode(r.err) == 2; got != tc.usage {
			t.Errorf("hustack %s: exit status %d", strings.Join(tc.args, " "), exitCode(r.err))
		}
	}
}

func TestWorkspaceCreateWithAdminKey(t *testing.T) {
	e := newTestEnv(t)
	w := mustJSON[map[string]any](t, e, "workspace", "create", "--json", "--name", "Acme", "--with-admin-key")
	if got, want := keysOf(w), []string{"admin_key", "id", "name"}; !slices.Equal(got, want) {
		t.Fatalf("workspace create --with-admin-key --json fields = %v, want %v", got, want)
	}
	admin := w["admin_key"].(map[string]any)
	raw, _ := admin["key"].(string)
	if !store.WellFormedKey(raw) || admin["workspace_id"] != w["id"] || admin["name"] != "admin" {
		t.Fatalf("admin_key = %v", admin)
	}
	var want []string
	for _, s := range store.AllScopes() {
		want = append(want, string(s))
	}
	slices.Sort(want)
	if got := toStrings(admin["scopes"]); !slices.Equal(got, want) || !slices.Contains(got, "admin:keys") || !slices.Contains(got, "read:usage") {
		t.Errorf("admin key scopes = %v, want every scope %v", got, want)
	}

	// The key administers the workspace's keys.
	svc := openTestService(t, e)
	p, err := svc.Authenticate(t.Context(), raw)
	if err != nil || p.WorkspaceID != w["id"] {
		t.Fatalf("the admin key: %+v, %v", p, err)
	}
	k, _, err := svc.Scoped(p).CreateAPIKey(t.Context(), store.KeyInput{Name: "made by admin", Scopes: []store.Scope{store.ScopeAdminKeys}})
	if err != nil || k.WorkspaceID != w["id"] {
		t.Errorf("the admin key cannot create an admin key: %v", err)
	}
	svc.Close()

	out := mustRun(t, e, "workspace", "create", "--name", "Globex", "--with-admin-key")
	if rawKeyPattern.FindString(out) == "" || !strings.Contains(out, "shown only this once") || !strings.Contains(out, "admin:keys") {
		t.Errorf("readable workspace create --with-admin-key:\n%s", out)
	}
	// Without the flag no key is made.
	plain := mustJSON[map[string]any](t, e, "workspace", "create", "--json", "--name", "Initech")
	if _, ok := plain["admin_key"]; ok {
		t.Errorf("workspace create without --with-admin-key made a key: %v", plain)
	}
	if keys := mustJSON[[]map[string]any](t, e, "key", "list", "--json", "--workspace", plain["id"].(string)); len(keys) != 0 {
		t.Errorf("workspace create without --with-admin-key: keys %v", keys)
	}
}

func TestWorkspacePolicy(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	type policy struct {
		WorkspaceID       string `json:"workspace_id"`
		MaxLifetimeDays   *int   `json:"max_key_lifetime_days"`
		RequireExpiry     *bool  `json:"require_expiry"`
		DisableUnusedDays *int   `json:"disable_unused_after_days"`
	}
	show := func(args ...string) policy {
		t.Helper()
		return mustJSON[policy](t, e, append([]string{"workspace", "policy", "--json", "--workspace", ws}, args...)...)
	}
	p := show()
	if p.WorkspaceID != ws || p.MaxLifetimeDays == nil || *p.MaxLifetimeDays != 0 || p.RequireExpiry == nil || *p.RequireExpiry ||
		p.DisableUnusedDays == nil || *p.DisableUnusedDays != 0 {
		t.Fatalf("default policy = %+v, want everything off", p)
	}
	p = show("--max-key-lifetime", "366d", "--require-expiry")
	if *p.MaxLifetimeDays != 366 || !*p.RequireExpiry || *p.DisableUnusedDays != 0 {
		t.Errorf("after setting lifetime and expiry: %+v", p)
	}
	// Only the flags given change.
	p = show("--disable-unused-after", "2160h")
	if *p.MaxLifetimeDays != 366 || !*p.RequireExpiry || *p.DisableUnusedDays != 90 {
		t.Errorf("after setting disable-unused-after: %+v", p)
	}
	if again := show(); *again.MaxLifetimeDays != 366 || !*again.RequireExpiry || *again.DisableUnusedDays != 90 {
		t.Errorf("showing the policy = %+v, want the stored one", again)
	}

	// The policy applies to keys created from now on.
	r := runCLI(t, e, "key", "create", "--workspace", ws, "--name", "forever", "--scopes", "read:leads")
	if r.err == nil || !strings.Contains(errorText(r.err), "key policy") {
		t.Errorf("key without expiry under the policy: %v", r.err)
	}
	r = runCLI(t, e, "key", "create", "--workspace", ws, "--name", "long", "--scopes", "read:leads", "--expires-in", "400d")
	if r.err == nil || !strings.Contains(errorText(r.err), "366 days") {
		t.Errorf("key beyond the maximum lifetime: %v", r.err)
	}
	mustRun(t, e, "key", "create", "--workspace", ws, "--name", "ok", "--scopes", "read:leads", "--expires-in", "30d")

	out := mustRun(t, e, "workspace", "policy", "--workspace", ws, "--max-key-lifetime", "0", "--require-expiry=false", "--disable-unused-after", "0")
	for _, want := range []string{"Updated key policy", "Maximum key lifetime:  none", "Expiry required:       no", "Revoke unused keys:    never"} {
		if !strings.Contains(out, want) {
			t.Errorf("readable workspace policy lacks %q:\n%s", want, out)
		}
	}
	if p := show(); *p.MaxLifetimeDays != 0 || *p.RequireExpiry || *p.DisableUnusedDays != 0 {
		t.Errorf("after turning everything off: %+v", p)
	}

	for _, tc := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"--max-key-lifetime", "a year"}, "--max-key-lifetime", false},
		{[]string{"--max-key-lifetime", "36h"}, "not a number of days", false},
		{[]string{"--disable-unused-after", "-5d"}, "--disable-unused-after", false},
		{[]string{"--max-key-lifetime", "4000d"}, "between 0", false},
		{[]string{"--require-expiry=maybe"}, "invalid boolean", true},
	} {
		args := append([]string{"workspace", "policy", "--workspace", ws}, tc.args...)
		r := runCLI(t, e, args...)
		if r.err == nil || !strings.Contains(errorText(r.err), tc.want) || r.stdout != "" {
			t.Errorf("hustack %s: %v; want an error with %q", strings.Join(args, " "), r.err, tc.want)
			continue
		}
		if got := exitCode(r.err) == 2; got != tc.usage {
			t.Errorf("hustack %s: exit status %d", strings.Join(args, " "), exitCode(r.err))
		}
	}
	r = runCLI(t, e, "workspace", "policy", "--workspace", store.NewID())
	if r.err == nil || !strings.Contains(errorText(r.err), "no workspace with id") {
		t.Errorf("policy of an unknown workspace: %v", r.err)
	}
	r = runCLI(t, e, "workspace", "policy")
	if r.err == nil || exitCode(r.err) != 2 {
		t.Errorf("policy without --workspace: %v", r.err)
	}
}

// TestIdempotencyTTL: HUSTACK_IDEMPOTENCY_TTL sets how long the store
// remembers an Idempotency-Key.
func TestIdempotencyTTL(t *testing.T) {
	e := newTestEnv(t)
	e["HUSTACK_IDEMPOTENCY_TTL"] = "2h"
	ws := createWorkspace(t, e, "Acme")
	k := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "n", "--scopes", "write:notes")
	svc := openTestService(t, e)
	p, err := svc.Authenticate(t.Context(), k["key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Scoped(p).Idempotent(t.Context(), "retry-1", "fp", func(context.Context) (store.IdempotentResponse, error) {
		return store.IdempotentResponse{Status: 201, Body: []byte(`{}`)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	db, err := sqlite.Open(t.Context(), filepath.Join(e["HUSTACK_DATA_DIR"], "hustack.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ik, err := db.FindIdempotencyKey(t.Context(), ws, "retry-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := ik.ExpiresAt.Sub(ik.CreatedAt); got != 2*time.Hour {
		t.Errorf("idempotency key kept for %v, want HUSTACK_IDEMPOTENCY_TTL 2h", got)
	}
}

// TestTombstoneRetention: HUSTACK_TOMBSTONE_RETENTION reaches the worker
// inside `serve`, whose purge removes tombstones older than it.
func TestTombstoneRetention(t *testing.T) {
	e := newTestEnv(t)
	e["HUSTACK_TOMBSTONE_RETENTION"] = "1h"
	ws := createWorkspace(t, e, "Acme")
	_, raw := createKey(t, e, ws, "--scopes", "read:notes,write:notes")
	cfg, err := loadConfig(e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	svc := openTestService(t, e)
	p, err := svc.Authenticate(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	sc := svc.Scoped(p)
	rec, err := sc.CreateRecord(t.Context(), store.Notes, map[string]any{"content": "to be deleted"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.DeleteRecord(t.Context(), store.Notes, rec.ID); err != nil {
		t.Fatal(err)
	}
	svc.Close()

	// Two hours on, the tombstone is past the configured hour (though not
	// past the default 30 days): the worker started by serve purges it.
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	a, err := newApp(t.Context(), cfg, nil, withoutUsage(), withStoreOptions(store.WithClock(later)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	tombstones := func() int {
		page, err := a.Service.Scoped(p).FindRecords(t.Context(), store.Notes, store.ListParams{Limit: 10, IncludeDeleted: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Data)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tombstones() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the tombstone was not purged within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
