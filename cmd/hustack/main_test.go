package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo/mongotest"
)

// TestMain lets a test start this test binary as the hustack command itself
// (see TestServeSIGTERM).
func TestMain(m *testing.M) {
	if os.Getenv("HUSTACK_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(mongotest.Main(m)) // stops the embedded FerretDB, if a test started it
}

// testEnv is the environment a test runs the command with: by default only
// a fresh data directory.
type testEnv map[string]string

func newTestEnv(t *testing.T) testEnv {
	t.Helper()
	return testEnv{"HUSTACK_DATA_DIR": t.TempDir()}
}

func (e testEnv) getenv(name string) string { return e[name] }

type result struct {
	stdout, stderr string
	err            error
}

// runCLI runs the command in process.
func runCLI(t *testing.T, e testEnv, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, e.getenv, strings.NewReader(""), &stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustRun runs the command and fails the test unless it succeeds.
func mustRun(t *testing.T, e testEnv, args ...string) string {
	t.Helper()
	r := runCLI(t, e, args...)
	if r.err != nil {
		t.Fatalf("hustack %s: %s\nstderr: %s", strings.Join(args, " "), errorText(r.err), r.stderr)
	}
	return r.stdout
}

// mustJSON runs a command with JSON output and decodes it into T.
func mustJSON[T any](t *testing.T, e testEnv, args ...string) T {
	t.Helper()
	out := mustRun(t, e, args...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("hustack %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func createWorkspace(t *testing.T, e testEnv, name string) string {
	t.Helper()
	w := mustJSON[map[string]any](t, e, "workspace", "create", "--json", "--name", name)
	id, _ := w["id"].(string)
	if !store.ValidID(id) {
		t.Fatalf("workspace create: id %q is not an id", id)
	}
	return id
}

func TestWorkspaceCreateAndList(t *testing.T) {
	e := newTestEnv(t)

	created := mustJSON[map[string]any](t, e, "workspace", "create", "--json", "--name", "Acme Inc")
	if got, want := keysOf(created), []string{"id", "name"}; !slices.Equal(got, want) {
		t.Errorf("workspace create --json fields = %v, want %v", got, want)
	}
	if created["name"] != "Acme Inc" {
		t.Errorf("name = %v, want Acme Inc", created["name"])
	}
	id, _ := created["id"].(string)

	// GNU style --flag=value and flags after the name work too.
	out := mustRun(t, e, "workspace", "create", "--name=Globex")
	if !strings.Contains(out, `"Globex"`) || !strings.Contains(out, "hustack key create --workspace ") {
		t.Errorf("readable workspace create output lacks the name or the next step:\n%s", out)
	}

	list := mustJSON[[]map[string]any](t, e, "workspace", "list", "--json")
	if len(list) != 2 {
		t.Fatalf("workspace list --json returned %d workspaces, want 2: %v", len(list), list)
	}
	if list[0]["id"] != id || list[0]["name"] != "Acme Inc" || list[1]["name"] != "Globex" {
		t.Errorf("workspace list --json = %v, want Acme Inc (%s) then Globex", list, id)
	}
	if _, err := time.Parse(time.RFC3339, list[0]["created_at"].(string)); err != nil {
		t.Errorf("created_at: %v", err)
	}

	table := mustRun(t, e, "workspace", "list")
	for _, want := range []string{"ID", "NAME", "CREATED", id, "Acme Inc", "Globex"} {
		if !strings.Contains(table, want) {
			t.Errorf("workspace list table lacks %q:\n%s", want, table)
		}
	}
}

func TestWorkspaceListEmpty(t *testing.T) {
	e := newTestEnv(t)
	if out := mustRun(t, e, "workspace", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("workspace list --json on an empty store = %q, want []", out)
	}
	if out := mustRun(t, e, "workspace", "list"); !strings.Contains(out, "No workspaces") {
		t.Errorf("workspace list on an empty store = %q", out)
	}
}

var rawKeyPattern = regexp.MustCompile(`hs_live_[0-9A-Za-z]{32,}`)

func TestKeyCreateJSON(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")

	k := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "zapier",
		"--scopes", "write:notes,read:accounts,read:accounts")
	want := []string{"expires_at", "filter", "id", "key", "name", "prefix", "rate_limit", "scopes", "workspace_id"}
	if got := keysOf(k); !slices.Equal(got, want) {
		t.Errorf("key create --json fields = %v, want %v", got, want)
	}
	raw, _ := k["key"].(string)
	if !strings.HasPrefix(raw, "hs_live_") || len(raw) < 40 || !rawKeyPattern.MatchString(raw) {
		t.Errorf("key = %q, want hs_live_ and at least 32 base62 characters", raw)
	}
	prefix, _ := k["prefix"].(string)
	if prefix == "" || !strings.HasPrefix(raw, prefix) || len(prefix) >= len(raw)-16 {
		t.Errorf("prefix %q must be a short start of the key %q", prefix, raw)
	}
	if k["workspace_id"] != ws || k["name"] != "zapier" || k["expires_at"] != nil || k["rate_limit"] != "100/10s" || k["filter"] != nil {
		t.Errorf("key create --json = %v", k)
	}
	if got := k["scopes"]; !slices.Equal(toStrings(got), []string{"read:accounts", "write:notes"}) {
		t.Errorf("scopes = %v, want the two scopes, sorted, without duplicates", got)
	}
	id, _ := k["id"].(string)

	// The raw key is never listed.
	listOut := mustRun(t, e, "key", "list", "--json", "--workspace", ws)
	if strings.Contains(listOut, raw) || strings.Contains(listOut, raw[len(prefix):]) {
		t.Errorf("key list --json shows the raw key:\n%s", listOut)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(listOut), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0]["id"] != id || list[0]["prefix"] != prefix || list[0]["status"] != "active" {
		t.Fatalf("key list --json = %v", list)
	}
	for _, field := range []string{"key", "hash"} {
		if _, ok := list[0][field]; ok {
			t.Errorf("key list --json has a %q field", field)
		}
	}
	for _, field := range []string{"created_at", "expires_at", "revoked_at", "last_used_at", "scopes", "rate_limit", "filter", "requests_7d"} {
		if _, ok := list[0][field]; !ok {
			t.Errorf("key list --json lacks %q", field)
		}
	}

	// Nor is it anywhere in the database files, WAL included.
	files, err := filepath.Glob(filepath.Join(e["HUSTACK_DATA_DIR"], "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no database files in the data directory (%v)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(raw)) || bytes.Contains(data, []byte(raw[len(prefix):])) {
			t.Errorf("%s contains the raw key", filepath.Base(f))
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func TestKeyCreateOptions(t *testing.T) {
	e := newTestEnv(t)
	e["HUSTACK_RATE_LIMIT"] = "50/m"
	ws := createWorkspace(t, e, "Acme")
	create := func(extra ...string) map[string]any {
		t.Helper()
		args := append([]string{"key", "create", "--json", "--workspace", ws, "--name", "n", "--scopes", "read:leads"}, extra...)
		return mustJSON[map[string]any](t, e, args...)
	}

	if got := create()["rate_limit"]; got != "50/m" {
		t.Errorf("rate_limit without --rate-limit = %v, want HUSTACK_RATE_LIMIT 50/m", got)
	}
	if got := create("--rate-limit", "600/m")["rate_limit"]; got != "600/m" {
		t.Errorf("rate_limit = %v, want 600/m", got)
	}
	if got := create("--expires-at", "2030-01-02T15:04:05Z")["expires_at"]; got != "2030-01-02T15:04:05.000Z" {
		t.Errorf("expires_at = %v, want 2030-01-02T15:04:05.000Z", got)
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"30d", 30 * 24 * time.Hour}, {"720h", 720 * time.Hour}, {"90m", 90 * time.Minute}} {
		before := time.Now().Truncate(time.Millisecond)
		got := create("--expires-in", tc.in)["expires_at"]
		after := time.Now()
		at, err := time.Parse(time.RFC3339, got.(string))
		if err != nil {
			t.Fatalf("--expires-in %s: expires_at %v: %v", tc.in, got, err)
		}
		if at.Before(before.Add(tc.want)) || at.After(after.Add(tc.want)) {
			t.Errorf("--expires-in %s: expires_at %s, want %s from now", tc.in, at, tc.want)
		}
	}
}

func TestKeyCreateReadable(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	out := mustRun(t, e, "key", "create", "--workspace", ws, "--name", "n8n", "--scopes", "read:deals", "--expires-in", "1d")
	for _, want := range []string{"n8n", ws, "read:deals", "shown only this once", "100/10s", "Authorization: Bearer"} {
		if !strings.Contains(out, want) {
			t.Errorf("key create output lacks %q:\n%s", want, out)
		}
	}
	raw := rawKeyPattern.FindString(out)
	if raw == "" {
		t.Fatalf("key create output shows no key:\n%s", out)
	}

	// The key shown is the one stored: it authenticates, in its workspace.
	cfg, err := loadConfig(e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := openService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	p, err := svc.Authenticate(t.Context(), raw)
	if err != nil {
		t.Fatalf("the printed key does not authenticate: %v", err)
	}
	if p.WorkspaceID != ws || p.KeyName != "n8n" || !p.Has("read:deals") || p.ExpiresAt == nil {
		t.Errorf("principal of the printed key = %+v", p)
	}

	table := mustRun(t, e, "key", "list", "--workspace", ws)
	for _, want := range []string{"ID", "NAME", "PREFIX", "SCOPES", "STATUS", "CREATED", "EXPIRES", "LAST USED", p.KeyID, "n8n", p.KeyPrefix, "read:deals", "expiring", "never"} { // expires within 7 days
		if !strings.Contains(table, want) {
			t.Errorf("key list table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, raw) {
		t.Errorf("key list shows the raw key:\n%s", table)
	}
}

func TestKeyRevoke(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	k := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "old", "--scopes", "read:notes")
	id := k["id"].(string)

	revoked := mustJSON[map[string]any](t, e, "key", "revoke", "--json", id)
	if revoked["id"] != id || revoked["status"] != "revoked" || revoked["revoked_at"] == nil {
		t.Errorf("key revoke --json = %v", revoked)
	}
	if _, ok := revoked["key"]; ok {
		t.Errorf("key revoke --json shows a key field")
	}
	if out := mustRun(t, e, "key", "revoke", id); !strings.Contains(out, "Revoked API key") || !strings.Contains(out, id) {
		t.Errorf("readable key revoke = %q", out)
	}
	table := mustRun(t, e, "key", "list", "--workspace", ws)
	if !strings.Contains(table, "revoked") {
		t.Errorf("key list after revoke lacks the revoked status:\n%s", table)
	}
}

func TestDataDirFlag(t *testing.T) {
	e := newTestEnv(t)
	other := t.TempDir()
	mustRun(t, e, "workspace", "create", "--data-dir", other, "--name", "Elsewhere")
	if out := mustRun(t, e, "workspace", "list", "--json"); strings.Contains(out, "Elsewhere") {
		t.Errorf("--data-dir wrote to HUSTACK_DATA_DIR")
	}
	if out := mustRun(t, e, "workspace", "list", "--data-dir", other); !strings.Contains(out, "Elsewhere") {
		t.Errorf("--data-dir store lacks the workspace:\n%s", out)
	}
}

func TestErrors(t *testing.T) {
	e := newTestEnv(t)
	ws := createWorkspace(t, e, "Acme")
	missing := store.NewID()
	keyCreate := func(extra ...string) []string {
		return append([]string{"key", "create", "--workspace", ws, "--name", "n", "--scopes", "read:accounts"}, extra...)
	}
	tests := []struct {
		name  string
		args  []string
		want  string // in the error text
		usage bool   // exit status 2
	}{
		{"unknown scope", []string{"key", "create", "--workspace", ws, "--name", "n", "--scopes", "read:accounts,read:everything"}, `unknown scope "read:everything"`, false},
		{"no scopes", []string{"key", "create", "--workspace", ws, "--name", "n"}, "at least one scope", false},
		{"unknown workspace on create", []string{"key", "create", "--workspace", missing, "--name", "n", "--scopes", "read:accounts"}, "no workspace with id", false},
		{"malformed workspace id", []string{"key", "create", "--workspace", "nope", "--name", "n", "--scopes", "read:accounts"}, "no workspace with id", false},
		{"unknown workspace on list", []string{"key", "list", "--workspace", missing}, "no workspace with id", false},
		{"bad duration", keyCreate("--expires-in", "3 weeks"), `--expires-in: "3 weeks" is not a duration`, false},
		{"bad days", keyCreate("--expires-in", "1.5d"), `is not a duration`, false},
		{"negative duration", keyCreate("--expires-in", "-5h"), "must be positive", false},
		{"bad expiry time", keyCreate("--expires-at", "tomorrow"), "--expires-at", false},
		{"past expiry time", keyCreate("--expires-at", "2001-01-01T00:00:00Z"), "must be in the future", false},
		{"both expiry flags", keyCreate("--expires-in", "1h", "--expires-at", "2030-01-01T00:00:00Z"), "not both", true},
		{"bad rate limit", keyCreate("--rate-limit", "lots"), `--rate-limit: "lots"`, false},
		{"missing key name", []string{"key", "create", "--workspace", ws, "--scopes", "read:accounts"}, "--name is required", true},
		{"missing workspace", []string{"key", "list"}, "--workspace is required", true},
		{"missing workspace name", []string{"workspace", "create"}, "--name is required", true},
		{"blank workspace name", []string{"workspace", "create", "--name", "  "}, "--name is required", true},
		{"unknown key", []string{"key", "revoke", missing}, "no API key with id", false},
		{"revoke without id", []string{"key", "revoke"}, "missing argument", true},
		{"revoke with two ids", []string{"key", "revoke", missing, missing}, "too many arguments", true},
		{"unknown flag", []string{"workspace", "list", "--colour"}, "flag provided but not defined: -colour", true},
		{"stray argument", []string{"workspace", "list", "extra"}, `unexpected argument "extra"`, true},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`, true},
		{"unknown subcommand", []string{"key", "rotate-all"}, `unknown command "key rotate-all"`, true},
		{"missing subcommand", []string{"key"}, "missing subcommand", true},
		{"no command", nil, "no command", true},
		{"bad environment", []string{"workspace", "list"}, "HUSTACK_LOG_FORMAT", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := e
			if tc.name == "bad environment" {
				env = testEnv{"HUSTACK_DATA_DIR": e["HUSTACK_DATA_DIR"], "HUSTACK_LOG_FORMAT": "xml"}
			}
			r := runCLI(t, env, tc.args...)
			if r.err == nil {
				t.Fatalf("hustack %s succeeded, want an error; stdout:\n%s", strings.Join(tc.args, " "), r.stdout)
			}
			if msg := errorText(r.err); !strings.Contains(msg, tc.want) {
				t.Errorf("error = %q, want it to contain %q", msg, tc.want)
			}
			wantCode := 1
			if tc.usage {
				wantCode = 2
			}
			if got := exitCode(r.err); got != wantCode {
				t.Errorf("exit status = %d, want %d", got, wantCode)
			}
			if r.stdout != "" {
				t.Errorf("stdout on error = %q, want nothing", r.stdout)
			}
		})
	}
	// None of the failed commands created a key.
	if out := mustRun(t, e, "key", "list", "--json", "--workspace", ws); strings.TrimSpace(out) != "[]" {
		t.Errorf("failed key create commands left keys behind: %s", out)
	}
}

func TestHelp(t *testing.T) {
	e := newTestEnv(t)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, e, args...)
		if r.err != nil {
			t.Fatalf("hustack %v: %v", args, r.err)
		}
		for _, want := range []string{"Usage:", "serve", "workspace create", "workspace policy", "key create", "key list", "key rotate",
			"key revoke", "HUSTACK_DATA_DIR", "MONGODB_URI", "HUSTACK_TOMBSTONE_RETENTION", "HUSTACK_IDEMPOTENCY_TTL"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("hustack %v lacks %q:\n%s", args, want, r.stdout)
			}
		}
	}
	for _, args := range [][]string{{"key", "create", "-h"}, {"key", "create", "--json", "--help"}, {"help", "key", "create"}} {
		r := runCLI(t, e, args...)
		if r.err != nil {
			t.Fatalf("hustack %v: %v", args, r.err)
		}
		for _, want := range []string{"Usage: hustack key create", "--workspace ID", "--expires-in DURATION", "--expires-at TIME", "--rate-limit LIMIT",
			"--filter FIELD=VALUE", "--json"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("hustack %v lacks %q:\n%s", args, want, r.stdout)
			}
		}
	}
	r := runCLI(t, e, "key", "-h")
	if r.err != nil || !strings.Contains(r.stdout, "key revoke") {
		t.Errorf("hustack key -h = %v:\n%s", r.err, r.stdout)
	}
	r = runCLI(t, e, "version")
	if r.err != nil || !strings.HasPrefix(r.stdout, "hustack ") {
		t.Errorf("hustack version = %v: %q", r.err, r.stdout)
	}
}

// TestEveryCommandHasUsage walks the command table, so that a command added
// to it is checked too.
func TestEveryCommandHasUsage(t *testing.T) {
	e := newTestEnv(t)
	for _, cmd := range commands {
		args := append(strings.Fields(cmd.name), "-h")
		r := runCLI(t, e, args...)
		if r.err != nil {
			t.Errorf("hustack %s -h: %v", cmd.name, r.err)
			continue
		}
		if !strings.Contains(r.stdout, "Usage: hustack "+cmd.name) || !strings.Contains(r.stdout, cmd.summary) {
			t.Errorf("hustack %s -h:\n%s", cmd.name, r.stdout)
		}
		// Servers and version print no data to give as JSON.
		noJSON := map[string]bool{"serve": true, "worker": true, "mcp": true, "version": true}
		if !noJSON[cmd.name] && !strings.Contains(r.stdout, "--json") {
			t.Errorf("hustack %s -h does not offer --json:\n%s", cmd.name, r.stdout)
		}
		if got, _ := findCommand(strings.Fields(cmd.name)); got != cmd {
			t.Errorf("findCommand(%q) does not find it", cmd.name)
		}
	}
}

func TestErrorText(t *testing.T) {
	if got := errorText(store.FieldError("scopes", "unknown scope %q", "x")); got != `scopes: unknown scope "x"` {
		t.Errorf("errorText(store error) = %q", got)
	}
	if got := errorText(errors.New("open data/hustack.db: permission denied")); !strings.Contains(got, "permission denied") {
		t.Errorf("errorText(other error) = %q, want the full text for the operator", got)
	}
}
