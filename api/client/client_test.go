package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
)

// usageSink keeps the events the API records, to store them on demand.
type usageSink struct {
	mu     sync.Mutex
	events []store.UsageEvent
}

func (u *usageSink) Record(ev store.UsageEvent) {
	u.mu.Lock()
	u.events = append(u.events, ev)
	u.mu.Unlock()
}

func (u *usageSink) take() []store.UsageEvent {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.events
	u.events = nil
	return out
}

type env struct {
	svc   *store.Service
	url   string
	usage *usageSink
	wsA   *store.Workspace
	wsB   *store.Workspace
}

func newEnv(t *testing.T, opts ...store.Option) *env {
	t.Helper()
	backend, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hustack.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc := store.NewService(backend, opts...)
	t.Cleanup(func() { _ = svc.Close() })
	e := &env{svc: svc, usage: &usageSink{}}
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Usage: e.usage}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	if e.wsA, err = svc.CreateWorkspace(t.Context(), "A"); err != nil {
		t.Fatal(err)
	}
	if e.wsB, err = svc.CreateWorkspace(t.Context(), "B"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) client(t *testing.T, ws *store.Workspace, name string, scopes ...store.Scope) (*client.Client, *store.APIKey) {
	t.Helper()
	exp := time.Now().Add(time.Hour)
	k, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: ws.ID, Name: name, Scopes: scopes, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(e.url+api.APIPrefix, raw)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestRecords(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, key := e.client(t, e.wsA, "full", store.AllScopes()...)
	other, _ := e.client(t, e.wsB, "other", store.AllScopes()...)

	acc, err := c.CreateRecord(ctx, store.Accounts, map[string]any{"name": "Acme", "country": "NL"})
	if err != nil {
		t.Fatal(err)
	}
	if !store.ValidID(acc.ID) || acc.Fields["name"] != "Acme" || acc.Fields["country"] != "NL" ||
		acc.APIKeyID != key.ID || acc.CreatedVia != store.CreatedViaAPI || acc.CreatedAt.IsZero() || acc.Resource != store.Accounts {
		t.Fatalf("created %+v", acc)
	}
	if _, has := acc.Fields["industry"]; has {
		t.Errorf("an unset field decoded as present: %v", acc.Fields)
	}
	deal, err := c.CreateRecord(ctx, store.Deals, map[string]any{"name": "Big", "value": 10.5, "account_id": acc.ID})
	if err != nil {
		t.Fatal(err)
	}
	if deal.Fields["value"] != 10.5 || deal.Fields["currency"] != "USD" {
		t.Errorf("deal fields %v", deal.Fields)
	}

	got, err := c.FindRecordByID(ctx, store.Accounts, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != acc.ID || got.Fields["name"] != "Acme" || !got.CreatedAt.Equal(acc.CreatedAt) {
		t.Errorf("got %+v, want %+v", got, acc)
	}
	if _, err := c.CreateRecord(ctx, store.Accounts, map[string]any{"name": "Second"}); err != nil {
		t.Fatal(err)
	}
	page, err := c.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].Fields["name"] != "Second" || !page.Pagination.HasMore || page.Pagination.Limit != 1 {
		t.Errorf("page %+v", page)
	}
	page, err = c.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 1, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != acc.ID || page.Pagination.HasMore {
		t.Errorf("second page %+v", page)
	}

	// Errors come back as *store.Error with REST's code and message.
	for _, tc := range []struct {
		name    string
		call    func() error
		code    string
		message string
		status  int
	}{
		{"other workspace", func() error { _, err := other.FindRecordByID(ctx, store.Accounts, acc.ID); return err },
			store.ENOTFOUND, "Account not found.", http.StatusNotFound},
		{"malformed id", func() error { _, err := c.FindRecordByID(ctx, store.Accounts, "../me"); return err },
			store.ENOTFOUND, "", http.StatusNotFound},
		{"validation", func() error {
			_, err := c.CreateRecord(ctx, store.Activities, map[string]any{"type": "Lunch", "title": "x"})
			return err
		}, store.EBADREQUEST, "type: must be one of Call, Email, Meeting, Task.", http.StatusBadRequest},
		{"missing body fields", func() error { _, err := c.CreateRecord(ctx, store.Accounts, nil); return err },
			store.EBADREQUEST, "name: is required.", http.StatusBadRequest},
		{"limit", func() error { _, err := c.FindRecords(ctx, store.Accounts, store.ListParams{}); return err },
			store.EBADREQUEST, "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if store.ErrorCode(err) != tc.code || (tc.message != "" && store.ErrorMessage(err) != tc.message) {
				t.Errorf("err = %v; want %s %q", err, tc.code, tc.message)
			}
			var re *client.ResponseError
			if !errors.As(err, &re) || re.Status != tc.status || re.RequestID == "" {
				t.Errorf("response error = %+v", re)
			}
		})
	}
}

func TestScopesAndKeys(t *testing.T) {
	e := newEnv(t, store.WithKeyCacheTTL(0)) // a revocation applies at once
	ctx := t.Context()
	c, key := e.client(t, e.wsA, "reader", store.ReadScope("notes"))
	me, err := c.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if me.Workspace.ID != e.wsA.ID || me.Workspace.Name != "A" || me.Key.ID != key.ID || me.Key.Name != "reader" ||
		!slices.Equal(me.Key.Scopes, []store.Scope{store.ReadScope("notes")}) || me.Key.Prefix != key.Prefix ||
		me.Key.RateLimit != store.DefaultRateLimit || me.Key.ExpiresAt == nil || !me.Key.ExpiresAt.Equal(*key.ExpiresAt) {
		t.Errorf("whoami = %+v, key %+v", me, key)
	}
	_, err = c.CreateRecord(ctx, store.Notes, map[string]any{"content": "x"})
	if store.ErrorCode(err) != store.EFORBIDDEN || store.ErrorMessage(err) != store.ErrMissingScope.Message {
		t.Errorf("create without scope: %v", err)
	}

	bad, err := client.New(e.url, "hs_live_0000000000000000000000000000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if bad.BaseURL() != e.url+api.APIPrefix {
		t.Errorf("base URL %q, want /api/v1 appended", bad.BaseURL())
	}
	_, err = bad.Whoami(ctx)
	if store.ErrorCode(err) != store.EUNAUTHORIZED || store.ErrorMessage(err) != store.ErrInvalidKey.Message {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := e.svc.RevokeAPIKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Whoami(ctx)
	if store.ErrorCode(err) != store.EREVOKED || store.ErrorMessage(err) != store.ErrRevokedKey.Message {
		t.Errorf("revoked key: %v", err)
	}
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, key := e.client(t, e.wsA, "usage", store.ReadScope("accounts"), store.ScopeUsage)
	if _, err := c.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindRecordByID(ctx, store.Accounts, store.NewID()); store.ErrorCode(err) != store.ENOTFOUND {
		t.Fatal(err)
	}
	if err := e.svc.RecordUsage(ctx, e.usage.take()); err != nil {
		t.Fatal(err)
	}

	counts, err := c.CountUsage(ctx, store.UsageQuery{KeyID: key.ID}, store.GroupByStatus)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UsageCount{{Group: "200", Count: 1}, {Group: "404", Count: 1, Errors: 1}}
	if !slices.Equal(counts, want) {
		t.Errorf("counts = %+v, want %+v", counts, want)
	}
	_, err = c.CountUsage(ctx, store.UsageQuery{}, "week")
	if store.ErrorCode(err) != store.EBADREQUEST || !strings.HasPrefix(store.ErrorMessage(err), "group_by:") {
		t.Errorf("group_by week: %v", err)
	}

	logs, err := c.FindUsageLogs(ctx, store.UsageQuery{Status: 404, From: time.Now().Add(-time.Hour)}, store.ListParams{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Data) != 1 || logs.Data[0].Route != api.APIPrefix+"/accounts/:id" || logs.Data[0].KeyID != key.ID ||
		logs.Data[0].Transport != store.TransportREST || logs.Pagination.Limit != 10 {
		t.Errorf("logs = %+v", logs)
	}
	logs, err = c.FindUsageLogs(ctx, store.UsageQuery{To: time.Now().Add(-time.Hour)}, store.ListParams{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Data) != 0 || logs.Data == nil {
		t.Errorf("logs before an hour ago = %+v", logs)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "http://127.0.0.1:8080/api/v1", want: "http://127.0.0.1:8080/api/v1"},
		{in: "https://hustack.example.com/api/v1/", want: "https://hustack.example.com/api/v1"},
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080/api/v1"},
		{in: "https://example.com/hustack/api/v1", want: "https://example.com/hustack/api/v1"},
		{in: "127.0.0.1:8080", err: "http or https URL"},
		{in: "ftp://example.com", err: "http or https URL"},
		{in: "http://example.com/api/v1?key=x", err: "query"},
	} {
		c, err := client.New(tc.in, "k")
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("New(%q) = %v, want error %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("New(%q): %v", tc.in, err)
		case c.BaseURL() != tc.want:
			t.Errorf("New(%q).BaseURL() = %q, want %q", tc.in, c.BaseURL(), tc.want)
		}
	}
}

// TestUnreachable: a server that is not there is an error without a code
// the client could confuse with an answer.
func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := client.New(url, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Whoami(t.Context())
	if err == nil || store.ErrorCode(err) != store.EINTERNAL || store.ErrorMessage(err) != store.InternalMessage {
		t.Errorf("err = %v", err)
	}
}

// TestNotHustack: an error page that is not a Hustack error body is internal.
func TestNotHustack(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Whoami(t.Context())
	var re *client.ResponseError
	if store.ErrorCode(err) != store.EINTERNAL || !errors.As(err, &re) || re.Status != http.StatusBadGateway {
		t.Errorf("err = %v", err)
	}
}
