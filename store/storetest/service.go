package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// env is a service over the backend under test, with a settable clock and
// two workspaces.
type env struct {
	b      store.Backend
	clock  *clock
	svc    *store.Service
	wa, wb *store.Workspace
}

func newEnv(t *testing.T, b store.Backend, opts ...store.Option) *env {
	t.Helper()
	e := &env{b: b, clock: newClock(t0)}
	opts = append([]store.Option{store.WithClock(e.clock.Now), store.WithKeyCacheTTL(0)}, opts...)
	e.svc = store.NewService(b, opts...)
	var err error
	e.wa, err = e.svc.CreateWorkspace(t.Context(), "Workspace A")
	must(t, err, "CreateWorkspace")
	e.wb, err = e.svc.CreateWorkspace(t.Context(), "Workspace B")
	must(t, err, "CreateWorkspace")
	return e
}

// principal creates a key in ws with the given scopes and authenticates it.
func (e *env) principal(t *testing.T, ws *store.Workspace, scopes ...store.Scope) store.Principal {
	t.Helper()
	_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: ws.ID, Name: "test key", Scopes: scopes})
	must(t, err, "CreateAPIKey")
	p, err := e.svc.Authenticate(t.Context(), raw)
	must(t, err, "Authenticate")
	return p
}

func (e *env) all(t *testing.T, ws *store.Workspace) *store.Scoped {
	t.Helper()
	return e.svc.Scoped(e.principal(t, ws, store.AllScopes()...))
}

// validInput is a create body that passes validation, without references
// and without an external id (so that it can be created any number of times).
func validInput(r *store.Resource, i int) map[string]any {
	in := map[string]any{}
	for k, v := range allFields(r, i) {
		if f, _ := r.Field(k); f.Type != store.FieldRef && k != store.ExternalIDField {
			in[k] = v
		}
	}
	return in
}

// spy counts the record calls that reach the backend.
type spy struct {
	store.Backend
	inserts, finds, lists, writes atomic.Int64
}

func (s *spy) FindRecordByExternalID(ctx context.Context, r *store.Resource, ws, ext string) (*store.Record, error) {
	s.finds.Add(1)
	return s.Backend.FindRecordByExternalID(ctx, r, ws, ext)
}

func (s *spy) UpdateRecord(ctx context.Context, rec *store.Record, prev time.Time) error {
	s.writes.Add(1)
	return s.Backend.UpdateRecord(ctx, rec, prev)
}

func (s *spy) DeleteRecord(ctx context.Context, r *store.Resource, ws, id string, at time.Time) error {
	s.writes.Add(1)
	return s.Backend.DeleteRecord(ctx, r, ws, id, at)
}

func (s *spy) InsertRecord(ctx context.Context, rec *store.Record) error {
	s.inserts.Add(1)
	return s.Backend.InsertRecord(ctx, rec)
}

func (s *spy) FindRecordByID(ctx context.Context, r *store.Resource, ws, id string) (*store.Record, error) {
	s.finds.Add(1)
	return s.Backend.FindRecordByID(ctx, r, ws, id)
}

func (s *spy) FindRecords(ctx context.Context, r *store.Resource, ws string, q store.RecordQuery) ([]*store.Record, error) {
	s.lists.Add(1)
	return s.Backend.FindRecords(ctx, r, ws, q)
}

// call runs operation op through sc with valid arguments. existingID is a
// record of op's resource; fresh makes a new one, for the operations that
// use a record up, or a new key that any key with admin:keys manages, for
// the key operations.
func call(t *testing.T, sc *store.Scoped, op store.Operation, existingID string, fresh func() string) error {
	t.Helper()
	ctx := t.Context()
	withExt := func() map[string]any {
		in := validInput(op.Resource, 0)
		in[store.ExternalIDField] = "ext " + store.NewID()
		return in
	}
	var err error
	switch op.Action {
	case store.ActionUpdate:
		_, err = sc.UpdateRecord(ctx, op.Resource, existingID, map[string]any{store.ExternalIDField: "ext " + store.NewID()})
	case store.ActionDelete:
		err = sc.DeleteRecord(ctx, op.Resource, fresh())
	case store.ActionUpsert:
		in := withExt()
		_, _, err = sc.UpsertRecord(ctx, op.Resource, in[store.ExternalIDField].(string), in)
	case store.ActionBatchCreate:
		_, err = sc.CreateRecords(ctx, op.Resource, []map[string]any{validInput(op.Resource, 0), withExt()})
	case store.ActionBatchUpsert:
		_, err = sc.UpsertRecords(ctx, op.Resource, []map[string]any{withExt(), withExt()})
	case store.ActionList:
		_, err = sc.FindRecords(ctx, op.Resource, store.ListParams{Limit: 10})
	case store.ActionGet:
		_, err = sc.FindRecordByID(ctx, op.Resource, existingID)
	case store.ActionCreate:
		_, err = sc.CreateRecord(ctx, op.Resource, validInput(op.Resource, 0))
	case store.ActionWhoami:
		_, err = sc.Whoami(ctx)
	case store.ActionUsageCounts:
		_, err = sc.CountUsage(ctx, store.UsageQuery{}, store.GroupByDay)
	case store.ActionUsageLogs:
		_, err = sc.FindUsageLogs(ctx, store.UsageQuery{}, store.ListParams{Limit: 10})
	case store.ActionListKeys:
		_, err = sc.FindAPIKeys(ctx)
	case store.ActionGetKey:
		_, err = sc.FindAPIKeyByID(ctx, fresh())
	case store.ActionCreateKey:
		_, _, err = sc.CreateAPIKey(ctx, store.KeyInput{Name: "made by a key", Scopes: []store.Scope{store.ScopeAdminKeys}})
	case store.ActionRevokeKey:
		_, err = sc.RevokeAPIKey(ctx, fresh())
	case store.ActionRotateKey:
		_, _, err = sc.RotateAPIKey(ctx, fresh(), store.DefaultRotationOverlap)
	case store.ActionGetPolicy:
		_, err = sc.KeyPolicy(ctx)
	case store.ActionUpdatePolicy:
		_, err = sc.UpdateKeyPolicy(ctx, store.KeyPolicy{})
	default:
		if isWebhookAction(op.Action) {
			return callWebhook(t, sc, op, fresh)
		}
		t.Fatalf("operation %s: the suite does not know how to call action %q; add it to storetest", op.Name, op.Action)
	}
	return err
}

func (s *suite) service(t *testing.T) {
	s.test(t, "AuthenticateMissingMalformedUnknown", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts"}})
		must(t, err, "CreateAPIKey")

		_, err = e.svc.Authenticate(t.Context(), "")
		if got := wantCode(t, err, store.EUNAUTHORIZED); got.Message != store.ErrMissingKey.Message {
			t.Errorf("empty key: message %q, want %q", got.Message, store.ErrMissingKey.Message)
		}
		flipped := raw[:len(raw)-1] + map[bool]string{true: "b", false: "a"}[raw[len(raw)-1] == 'a']
		invalid := []string{
			"abc", "hs_live_", "hs_live_short", "hs_test_" + raw[len(store.KeyPrefix):], "Bearer " + raw, raw + " ",
			" " + raw, raw[:len(raw)-1] + "!", strings.Repeat("a", 200), store.KeyPrefix + strings.Repeat("x", 200),
			`{"$gt":""}`, "hs_live_' OR '1'='1' --xxxxxxxxxxxxxxxxxxxxxxx", raw + "\x00", flipped,
			store.GenerateKey(), // well formed, but no such key
		}
		for _, k := range invalid {
			_, err := e.svc.Authenticate(t.Context(), k)
			if got := wantCode(t, err, store.EUNAUTHORIZED); got.Message != store.ErrInvalidKey.Message {
				t.Errorf("key %q: message %q, want %q", k, got.Message, store.ErrInvalidKey.Message)
			}
		}
	})

	s.test(t, "AuthenticateValid", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		exp := at(48 * time.Hour)
		limit := store.RateLimit{Count: 600, Period: time.Minute}
		k, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{
			WorkspaceID: e.wa.ID, Name: "  Zapier  ", Scopes: []store.Scope{"write:notes", "read:accounts", "write:notes"},
			ExpiresAt: &exp, RateLimit: &limit,
		})
		must(t, err, "CreateAPIKey")
		if !store.WellFormedKey(raw) || k.Prefix != raw[:len(k.Prefix)] || strings.Contains(k.Prefix, raw) {
			t.Errorf("raw key %q and prefix %q do not fit together", raw, k.Prefix)
		}
		p, err := e.svc.Authenticate(t.Context(), raw)
		must(t, err, "Authenticate")
		want := store.Principal{WorkspaceID: e.wa.ID, KeyID: k.ID, KeyName: "Zapier", KeyPrefix: k.Prefix,
			Scopes: []store.Scope{"read:accounts", "write:notes"}, RateLimit: limit, CreatedAt: t0, ExpiresAt: &exp}
		if fmt.Sprint(p.Scopes) != fmt.Sprint(want.Scopes) || p.WorkspaceID != want.WorkspaceID || p.KeyID != want.KeyID ||
			p.KeyName != want.KeyName || p.KeyPrefix != want.KeyPrefix || p.RateLimit != want.RateLimit {
			t.Errorf("principal = %+v, want %+v", p, want)
		}
		wantTime(t, "principal created_at", p.CreatedAt, want.CreatedAt)
		wantTimePtr(t, "principal expires_at", p.ExpiresAt, want.ExpiresAt)
		if !p.Authenticated() {
			t.Error("principal is not authenticated")
		}
		// Only the hash and the prefix are stored.
		stored, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
		must(t, err, "FindAPIKeyByIDUnscoped")
		if string(stored.Hash) != string(store.HashKey(raw)) || strings.Contains(stored.Name+stored.Prefix, raw) {
			t.Errorf("stored key %+v holds more than the hash and prefix of %q", stored, raw)
		}
	})

	s.test(t, "AuthenticateRevoked", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		k, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts"}})
		must(t, err, "CreateAPIKey")
		_, other, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "other", Scopes: []store.Scope{"read:accounts"}})
		must(t, err, "CreateAPIKey")
		e.clock.Add(time.Minute)
		revoked, err := e.svc.RevokeAPIKey(t.Context(), k.ID)
		must(t, err, "RevokeAPIKey")
		wantTimePtr(t, "revoked_at", revoked.RevokedAt, ptr(at(time.Minute)))
		_, err = e.svc.Authenticate(t.Context(), raw)
		if got := wantCode(t, err, store.EREVOKED); got.Message != store.ErrRevokedKey.Message {
			t.Errorf("message %q, want %q", got.Message, store.ErrRevokedKey.Message)
		}
		_, err = e.svc.Authenticate(t.Context(), other)
		must(t, err, "Authenticate(another key of the workspace)")

		e.clock.Add(time.Minute)
		again, err := e.svc.RevokeAPIKey(t.Context(), k.ID)
		must(t, err, "RevokeAPIKey again")
		wantTimePtr(t, "revoked_at after a second revoke", again.RevokedAt, ptr(at(time.Minute)))

		for _, id := range []string{store.NewID(), "not-an-id", `{"$gt":""}`, ""} {
			_, err = e.svc.RevokeAPIKey(t.Context(), id)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "AuthenticateExpired", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		exp := at(time.Hour)
		_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts"}, ExpiresAt: &exp})
		must(t, err, "CreateAPIKey")
		_, err = e.svc.Authenticate(t.Context(), raw)
		must(t, err, "Authenticate before expiry")
		e.clock.Add(time.Hour - time.Millisecond)
		_, err = e.svc.Authenticate(t.Context(), raw)
		must(t, err, "Authenticate a millisecond before expiry")
		e.clock.Add(time.Millisecond)
		_, err = e.svc.Authenticate(t.Context(), raw)
		if got := wantCode(t, err, store.EEXPIRED); got.Message != store.ErrExpiredKey.Message {
			t.Errorf("message %q, want %q", got.Message, store.ErrExpiredKey.Message)
		}
	})

	s.test(t, "RevocationByAnotherProcess", func(t *testing.T, b store.Backend) {
		// The server caches keys; the command line revokes through its own
		// service on the same store. The server honours it once its cache
		// entry is older than the cache lifetime.
		e := newEnv(t, b)
		server := store.NewService(b, store.WithClock(e.clock.Now), store.WithKeyCacheTTL(store.DefaultKeyCacheTTL))
		k, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts"}})
		must(t, err, "CreateAPIKey")
		_, err = server.Authenticate(t.Context(), raw)
		must(t, err, "Authenticate")
		_, err = e.svc.RevokeAPIKey(t.Context(), k.ID)
		must(t, err, "RevokeAPIKey")
		e.clock.Add(store.DefaultKeyCacheTTL)
		_, err = server.Authenticate(t.Context(), raw)
		wantCode(t, err, store.EREVOKED)

		// A revocation through the same service applies at once.
		k2, raw2, err := server.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "k2", Scopes: []store.Scope{"read:accounts"}})
		must(t, err, "CreateAPIKey")
		_, err = server.Authenticate(t.Context(), raw2)
		must(t, err, "Authenticate")
		_, err = server.RevokeAPIKey(t.Context(), k2.ID)
		must(t, err, "RevokeAPIKey")
		_, err = server.Authenticate(t.Context(), raw2)
		wantCode(t, err, store.EREVOKED)
	})

	s.test(t, "CreateAPIKeyValidation", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		past := at(-time.Second)
		now := at(0)
		cases := []struct {
			name  string
			in    store.KeyInput
			field string
		}{
			{"unknown workspace", store.KeyInput{WorkspaceID: store.NewID(), Name: "k", Scopes: []store.Scope{"read:accounts"}}, "workspace"},
			{"malformed workspace", store.KeyInput{WorkspaceID: `{"$gt":""}`, Name: "k", Scopes: []store.Scope{"read:accounts"}}, "workspace"},
			{"no name", store.KeyInput{WorkspaceID: e.wa.ID, Name: "  ", Scopes: []store.Scope{"read:accounts"}}, "name"},
			{"long name", store.KeyInput{WorkspaceID: e.wa.ID, Name: strings.Repeat("n", 256), Scopes: []store.Scope{"read:accounts"}}, "name"},
			{"no scopes", store.KeyInput{WorkspaceID: e.wa.ID, Name: "k"}, "scopes"},
			{"unknown scope", store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts", "admin"}}, "scopes"},
			{"expired", store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts"}, ExpiresAt: &past}, "expires_at"},
			{"expires now", store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: []store.Scope{"read:accounts"}, ExpiresAt: &now}, "expires_at"},
		}
		for _, c := range cases {
			_, _, err := e.svc.CreateAPIKey(t.Context(), c.in)
			if got := wantCode(t, err, store.EBADREQUEST); got.Field != c.field {
				t.Errorf("%s: field %q, want %q", c.name, got.Field, c.field)
			}
		}
		keys, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")
		if len(keys) != 0 {
			t.Errorf("%d keys stored after invalid creates", len(keys))
		}
		_, err = e.svc.FindAPIKeys(t.Context(), store.NewID())
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "Workspaces", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		for _, name := range []string{"", "   ", strings.Repeat("w", 256)} {
			_, err := e.svc.CreateWorkspace(t.Context(), name)
			if got := wantCode(t, err, store.EBADREQUEST); got.Field != "name" {
				t.Errorf("workspace name %q: field %q, want name", name, got.Field)
			}
		}
		all, err := e.svc.FindWorkspaces(t.Context())
		must(t, err, "FindWorkspaces")
		if len(all) != 2 || all[0].ID != e.wa.ID || all[1].ID != e.wb.ID {
			t.Errorf("FindWorkspaces returned %d workspaces, want A and B", len(all))
		}
		for _, id := range []string{store.NewID(), "x", `{"$gt":""}`} {
			_, err = e.svc.FindWorkspaceByID(t.Context(), id)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "ScopeChecks", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b, insecure)
		full := e.all(t, e.wa)
		existing := map[*store.Resource]string{}
		for i, r := range store.Resources {
			rec, err := full.CreateRecord(t.Context(), r, validInput(r, i))
			must(t, err, "CreateRecord")
			existing[r] = rec.ID
		}
		for _, op := range store.Operations {
			id := existing[op.Resource]
			fresh := func() string {
				if isWebhookAction(op.Action) {
					return webhookTarget(t, e, full, op.Action)
				}
				if op.Resource == nil {
					k, _, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "target",
						Scopes: []store.Scope{store.ScopeAdminKeys}})
					must(t, err, "CreateAPIKey")
					return k.ID
				}
				rec, err := full.CreateRecord(t.Context(), op.Resource, validInput(op.Resource, 0))
				must(t, err, "CreateRecord")
				return rec.ID
			}
			if err := call(t, full, op, id, fresh); err != nil {
				t.Errorf("%s with every scope: %v", op.Name, err)
			}
			// The zero principal is not authenticated.
			if err := call(t, e.svc.Scoped(store.Principal{}), op, id, fresh); store.ErrorCode(err) != store.EUNAUTHORIZED {
				t.Errorf("%s without a principal: %v, want unauthorized", op.Name, err)
			}
			if op.Scope == "" {
				continue
			}
			var others []store.Scope
			for _, sc := range store.AllScopes() {
				if sc != op.Scope {
					others = append(others, sc)
				}
			}
			without := e.svc.Scoped(e.principal(t, e.wa, others...))
			err := call(t, without, op, id, fresh)
			if got := wantCode(t, err, store.EFORBIDDEN); got.Message != store.ErrMissingScope.Message {
				t.Errorf("%s: message %q, want %q", op.Name, got.Message, store.ErrMissingScope.Message)
			}
			onlyScopes := []store.Scope{op.Scope}
			if isWebhookAction(op.Action) {
				// A subscription is managed only by keys that could receive
				// its events.
				onlyScopes = append(onlyScopes, webhookReach)
			}
			only := e.svc.Scoped(e.principal(t, e.wa, onlyScopes...))
			if err := call(t, only, op, id, fresh); err != nil {
				t.Errorf("%s with only %s: %v", op.Name, op.Scope, err)
			}
		}
	})

	s.test(t, "CreateAndFind", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		p := e.principal(t, e.wa, store.AllScopes()...)
		sc := e.svc.Scoped(p)
		for i, r := range store.Resources {
			e.clock.Add(time.Second)
			in := validInput(r, i)
			in[store.ExternalIDField] = fmt.Sprint("ext-", i)
			// Surrounding spaces are trimmed, server fields and tenant ids ignored.
			for _, f := range r.Fields {
				if f.Type == store.FieldString {
					in[f.Name] = "  " + in[f.Name].(string) + "  "
				}
			}
			in["workspace_id"] = e.wb.ID
			in["company_id"] = e.wb.ID
			in["id"] = store.NewID()
			in["created_at"] = "2000-01-01T00:00:00Z"
			in["api_key_id"] = "someone else"
			rec, err := sc.CreateRecord(t.Context(), r, in)
			must(t, err, "CreateRecord("+r.Name+")")
			if !store.ValidID(rec.ID) || rec.ID == in["id"] || rec.WorkspaceID != e.wa.ID || rec.CreatedVia != store.CreatedViaAPI || rec.APIKeyID != p.KeyID {
				t.Errorf("%s: created {id %q ws %q via %q key %q}", r.Name, rec.ID, rec.WorkspaceID, rec.CreatedVia, rec.APIKeyID)
			}
			wantTime(t, "created_at", rec.CreatedAt, e.clock.Now())
			wantTime(t, "updated_at", rec.UpdatedAt, e.clock.Now())
			for _, f := range r.Fields {
				if f.Type == store.FieldString && rec.Fields[f.Name] != strings.TrimSpace(in[f.Name].(string)) {
					t.Errorf("%s.%s = %q, want it trimmed", r.Name, f.Name, rec.Fields[f.Name])
				}
			}
			got, err := sc.FindRecordByID(t.Context(), r, rec.ID)
			must(t, err, "FindRecordByID")
			wantRecord(t, got, rec)
			page, err := sc.FindRecords(t.Context(), r, store.ListParams{Limit: 10})
			must(t, err, "FindRecords")
			if len(page.Data) != 1 || page.Pagination.HasMore {
				t.Fatalf("%s: list has %d records (has_more %v), want 1", r.Name, len(page.Data), page.Pagination.HasMore)
			}
			wantRecord(t, page.Data[0], rec)
			// Nothing landed in workspace B.
			other, err := e.all(t, e.wb).FindRecords(t.Context(), r, store.ListParams{Limit: 10})
			must(t, err, "FindRecords in B")
			if len(other.Data) != 0 {
				t.Errorf("%s: workspace B sees %d records", r.Name, len(other.Data))
			}
		}
	})

	s.test(t, "WorkspaceIsolation", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		for i, r := range store.Resources {
			rec, err := a.CreateRecord(t.Context(), r, validInput(r, i))
			must(t, err, "CreateRecord")
			_, errOther := bb.FindRecordByID(t.Context(), r, rec.ID)
			_, errUnknown := bb.FindRecordByID(t.Context(), r, store.NewID())
			gotOther, gotUnknown := wantCode(t, errOther, store.ENOTFOUND), wantCode(t, errUnknown, store.ENOTFOUND)
			if gotOther.Message != gotUnknown.Message {
				t.Errorf("%s: another workspace's record answers %q, an unknown id %q: they must not differ",
					r.Name, gotOther.Message, gotUnknown.Message)
			}
			for _, id := range []string{"x", `{"$gt":""}`, "' OR 1=1 --", ""} {
				_, err := bb.FindRecordByID(t.Context(), r, id)
				wantCode(t, err, store.ENOTFOUND)
			}
			page, err := bb.FindRecords(t.Context(), r, store.ListParams{Limit: store.MaxLimit})
			must(t, err, "FindRecords")
			if len(page.Data) != 0 {
				t.Errorf("%s: workspace B lists %d records of A", r.Name, len(page.Data))
			}
			if _, err := a.FindRecordByID(t.Context(), r, rec.ID); err != nil {
				t.Errorf("%s: owner cannot find its record: %v", r.Name, err)
			}
		}
	})

	s.test(t, "References", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		for i, r := range store.Resources {
			for _, f := range r.Fields {
				if f.Type != store.FieldRef {
					continue
				}
				target, ok := store.ResourceByName(f.Ref)
				if !ok {
					t.Fatalf("%s.%s refers to unknown resource %q", r.Name, f.Name, f.Ref)
				}
				own, err := a.CreateRecord(t.Context(), target, validInput(target, i))
				must(t, err, "CreateRecord(target)")
				foreign, err := bb.CreateRecord(t.Context(), target, validInput(target, i))
				must(t, err, "CreateRecord(target in B)")
				var wrongKind string
				for _, other := range store.Resources {
					if other != target {
						rec, err := a.CreateRecord(t.Context(), other, validInput(other, i))
						must(t, err, "CreateRecord(other resource)")
						wrongKind = rec.ID
						break
					}
				}
				bad := map[string]string{
					"another workspace's " + target.Singular: foreign.ID,
					"unknown id":                             store.NewID(),
					"a record of another resource":           wrongKind,
					"malformed id":                           "not-an-id",
					"operator":                               `{"$gt":""}`,
				}
				for what, id := range bad {
					in := validInput(r, i)
					in[f.Name] = id
					_, err := a.CreateRecord(t.Context(), r, in)
					got := wantCode(t, err, store.EBADREQUEST)
					if got.Field != f.Name || !strings.HasPrefix(got.Message, f.Name) {
						t.Errorf("%s.%s = %s: field %q, message %q; want both to name %s", r.Name, f.Name, what, got.Field, got.Message, f.Name)
					}
				}
				in := validInput(r, i)
				in[f.Name] = own.ID
				rec, err := a.CreateRecord(t.Context(), r, in)
				must(t, err, fmt.Sprintf("CreateRecord(%s with %s of the same workspace)", r.Name, f.Name))
				if rec.Fields[f.Name] != own.ID {
					t.Errorf("%s.%s = %v, want %s", r.Name, f.Name, rec.Fields[f.Name], own.ID)
				}
			}
		}
	})

	s.test(t, "ValidationNeverReachesBackend", func(t *testing.T, b store.Backend) {
		sp := &spy{Backend: b}
		e := newEnv(t, sp)
		sc := e.all(t, e.wa)
		for _, r := range store.Resources {
			var bad, badPatch []map[string]any
			bad = append(bad, nil, map[string]any{}, map[string]any{"$where": "1"},
				mergeInput(validInput(r, 0), "unknown_field", "x"))
			badPatch = append(badPatch, nil, map[string]any{"$where": "1"}, mergeInput(validInput(r, 0), "unknown_field", "x"))
			for _, f := range r.Fields {
				wrong := []any{true, []any{"x"}, map[string]any{"$gt": ""}}
				if f.Type == store.FieldNumber {
					wrong = append(wrong, "12", -1.0)
				} else {
					wrong = append(wrong, 12.0, "a\x00b", strings.Repeat("x", max(f.MaxLen, 3)+1))
				}
				for _, w := range wrong {
					bad = append(bad, mergeInput(validInput(r, 0), f.Name, w))
					badPatch = append(badPatch, map[string]any{f.Name: w})
				}
				if f.Required {
					in := validInput(r, 0)
					delete(in, f.Name)
					bad = append(bad, in)
					badPatch = append(badPatch, map[string]any{f.Name: nil})
				}
			}
			for _, in := range bad {
				_, err := sc.CreateRecord(t.Context(), r, in)
				wantCode(t, err, store.EBADREQUEST)
			}
			for _, lp := range []store.ListParams{{Limit: 0}, {Limit: -1}, {Limit: 10, Offset: -1},
				{Limit: 10, Sort: "name"}, {Limit: 10, Cursor: "x"}, {Limit: 10, Filters: map[string]string{"nope": "1"}},
				{Limit: 10, Filters: map[string]string{"$where": "1"}}, {Limit: 10, Q: strings.Repeat("q", 300)},
				{Limit: 10, CreatedAfter: at(time.Hour), CreatedBefore: at(time.Minute)}} {
				_, err := sc.FindRecords(t.Context(), r, lp)
				wantCode(t, err, store.EBADREQUEST)
			}
			// Invalid updates, upserts and batches are refused before any lookup.
			for _, in := range badPatch {
				_, err := sc.UpdateRecord(t.Context(), r, store.NewID(), in)
				wantCode(t, err, store.EBADREQUEST)
				if _, ok := in[store.ExternalIDField]; !ok && in != nil {
					_, _, err = sc.UpsertRecord(t.Context(), r, "ext", in)
					wantCode(t, err, store.EBADREQUEST)
				}
			}
			for _, ext := range []string{"", "  ", strings.Repeat("x", 300), "a\x00b"} {
				_, _, err := sc.UpsertRecord(t.Context(), r, ext, validInput(r, 0))
				wantCode(t, err, store.EBADREQUEST)
			}
			_, _, err := sc.UpsertRecord(t.Context(), r, "e1", map[string]any{store.ExternalIDField: "e2"})
			wantCode(t, err, store.EBADREQUEST)
			for _, n := range []int{0, store.MaxBatch + 1} {
				_, err := sc.CreateRecords(t.Context(), r, make([]map[string]any, n))
				wantCode(t, err, store.EBADREQUEST)
				_, err = sc.UpsertRecords(t.Context(), r, make([]map[string]any, n))
				wantCode(t, err, store.EBADREQUEST)
			}
		}
		if n, f, l, w := sp.inserts.Load(), sp.finds.Load(), sp.lists.Load(), sp.writes.Load(); n+f+l+w != 0 {
			t.Errorf("invalid requests reached the backend: %d inserts, %d finds, %d lists, %d other writes", n, f, l, w)
		}
		// The spy does see valid requests.
		if _, err := sc.CreateRecord(t.Context(), store.Accounts, validInput(store.Accounts, 0)); err != nil {
			t.Fatal(err)
		}
		if sp.inserts.Load() != 1 {
			t.Errorf("spy counted %d inserts for one valid create", sp.inserts.Load())
		}
	})

	s.serviceWrites(t)

	s.test(t, "HostileInputStoredLiterally", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		sc := e.all(t, e.wa)
		for _, h := range hostile {
			in := map[string]any{"name": h, "industry": h, "website": h, "country": h, "phone": h}
			rec, err := sc.CreateRecord(t.Context(), store.Accounts, in)
			must(t, err, "CreateRecord")
			got, err := sc.FindRecordByID(t.Context(), store.Accounts, rec.ID)
			must(t, err, "FindRecordByID")
			wantFields(t, got.Fields, in)
		}
		page, err := sc.FindRecords(t.Context(), store.Accounts, store.ListParams{Limit: store.MaxLimit})
		must(t, err, "FindRecords")
		if len(page.Data) != len(hostile) {
			t.Errorf("FindRecords returned %d records, want %d", len(page.Data), len(hostile))
		}
		_, err = sc.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": map[string]any{"$gt": ""}})
		if got := wantCode(t, err, store.EBADREQUEST); got.Field != "name" {
			t.Errorf("operator object as name: field %q, want name", got.Field)
		}
	})

	s.test(t, "ListPagination", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		sc := e.all(t, e.wa)
		empty, err := sc.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 10})
		must(t, err, "FindRecords")
		if empty.Data == nil || len(empty.Data) != 0 || empty.Pagination.HasMore {
			t.Errorf("empty list = %+v, want an empty, non-nil page without more", empty)
		}
		var ids []string
		for i := range 5 {
			e.clock.Add(time.Second)
			rec, err := sc.CreateRecord(t.Context(), store.Leads, validInput(store.Leads, i))
			must(t, err, "CreateRecord")
			ids = append([]string{rec.ID}, ids...) // newest first
		}
		cases := []struct {
			lp      store.ListParams
			want    []string
			hasMore bool
			limit   int
		}{
			{store.ListParams{Limit: 2}, ids[:2], true, 2},
			{store.ListParams{Limit: 2, Offset: 2}, ids[2:4], true, 2},
			{store.ListParams{Limit: 2, Offset: 4}, ids[4:], false, 2},
			{store.ListParams{Limit: 5}, ids, false, 5},
			{store.ListParams{Limit: 4, Offset: 1}, ids[1:], false, 4},
			{store.ListParams{Limit: 10, Offset: 5}, nil, false, 10},
			{store.ListParams{Limit: 1000}, ids, false, store.MaxLimit},
		}
		for _, c := range cases {
			page, err := sc.FindRecords(t.Context(), store.Leads, c.lp)
			must(t, err, "FindRecords")
			wantIDs(t, fmt.Sprintf("page %+v", c.lp), recordIDs(page.Data), c.want)
			got := page.Pagination
			if got.Limit != c.limit || got.Offset != c.lp.Offset || got.HasMore != c.hasMore || (got.NextCursor != nil) != c.hasMore {
				t.Errorf("page %+v: pagination %+v, want limit %d, offset %d, has_more %v and a next cursor exactly when there is more",
					c.lp, got, c.limit, c.lp.Offset, c.hasMore)
			}
			// The next cursor continues right after this page, offset or not.
			if got.NextCursor != nil {
				next, err := sc.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 1, Cursor: *got.NextCursor})
				must(t, err, "FindRecords by cursor")
				i := min(c.lp.Offset+c.lp.Limit, len(ids)-1)
				wantIDs(t, fmt.Sprintf("page after %+v", c.lp), recordIDs(next.Data), ids[i:i+1])
			}
		}
	})

	s.test(t, "RecordUsage", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		p := e.principal(t, e.wa, store.AllScopes()...)
		k2 := e.principal(t, e.wa, store.ScopeUsage)
		ev := func(p store.Principal, tm time.Time, status int) store.UsageEvent {
			return store.UsageEvent{ID: store.NewID(), WorkspaceID: p.WorkspaceID, KeyID: p.KeyID, Method: "GET",
				Route: "/api/v1/accounts", Status: status, DurationMS: 2.5, Time: tm, RequestID: store.NewID(),
				Transport: store.TransportREST, UserAgent: "test"}
		}
		lastUsed := func(id string) *time.Time {
			t.Helper()
			k, err := b.FindAPIKeyByIDUnscoped(t.Context(), id)
			must(t, err, "FindAPIKeyByIDUnscoped")
			return k.LastUsedAt
		}
		must(t, e.svc.RecordUsage(t.Context(), nil), "RecordUsage(nil)")
		batch := []store.UsageEvent{ev(p, at(time.Minute), 200), ev(p, at(3*time.Minute), 404), ev(p, at(2*time.Minute), 200), ev(k2, at(time.Minute), 200)}
		must(t, e.svc.RecordUsage(t.Context(), batch), "RecordUsage")
		must(t, e.svc.RecordUsage(t.Context(), batch), "RecordUsage(same batch again)")
		wantTimePtr(t, "last_used_at", lastUsed(p.KeyID), ptr(at(3*time.Minute)))
		wantTimePtr(t, "last_used_at of the second key", lastUsed(k2.KeyID), ptr(at(time.Minute)))

		// A late batch with older events does not move last_used_at back.
		must(t, e.svc.RecordUsage(t.Context(), []store.UsageEvent{ev(p, at(30*time.Second), 200)}), "RecordUsage(older)")
		wantTimePtr(t, "last_used_at after older events", lastUsed(p.KeyID), ptr(at(3*time.Minute)))
		must(t, e.svc.RecordUsage(t.Context(), []store.UsageEvent{ev(p, at(time.Hour), 500)}), "RecordUsage(newer)")
		wantTimePtr(t, "last_used_at after newer events", lastUsed(p.KeyID), ptr(at(time.Hour)))

		sc := e.svc.Scoped(p)
		counts, err := sc.CountUsage(t.Context(), store.UsageQuery{}, store.GroupByKey)
		must(t, err, "CountUsage")
		wantCounts(t, "CountUsage by key", counts, sortedCounts(
			store.UsageCount{Group: p.KeyID, Count: 5, Errors: 2}, store.UsageCount{Group: k2.KeyID, Count: 1}))
		page, err := sc.FindUsageLogs(t.Context(), store.UsageQuery{KeyID: p.KeyID}, store.ListParams{Limit: 3})
		must(t, err, "FindUsageLogs")
		if len(page.Data) != 3 || !page.Pagination.HasMore || !page.Data[0].Time.Equal(at(time.Hour)) {
			t.Errorf("FindUsageLogs page = %d events (has_more %v), want the 3 newest of 5", len(page.Data), page.Pagination.HasMore)
		}
	})

	s.test(t, "UsageThroughScoped", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		ev := store.UsageEvent{ID: store.NewID(), WorkspaceID: e.wa.ID, KeyID: a.Principal().KeyID, Method: "GET",
			Route: "/api/v1/accounts", Status: 200, Time: at(time.Minute), Transport: store.TransportMCP}
		must(t, e.svc.RecordUsage(t.Context(), []store.UsageEvent{ev}), "RecordUsage")

		bad := []struct {
			q     store.UsageQuery
			by    store.UsageGroup
			field string
		}{
			{store.UsageQuery{}, "week", "group_by"},
			{store.UsageQuery{}, `{"$gt":""}`, "group_by"},
			{store.UsageQuery{KeyID: "x"}, store.GroupByDay, "key_id"},
			{store.UsageQuery{KeyID: `{"$ne":null}`}, store.GroupByDay, "key_id"},
			{store.UsageQuery{From: at(time.Hour), To: at(time.Hour)}, store.GroupByDay, "from"},
			{store.UsageQuery{Status: 42}, store.GroupByDay, "status"},
		}
		for _, c := range bad {
			_, err := a.CountUsage(t.Context(), c.q, c.by)
			if got := wantCode(t, err, store.EBADREQUEST); got.Field != c.field {
				t.Errorf("CountUsage(%+v, %q): field %q, want %q", c.q, c.by, got.Field, c.field)
			}
			if c.by == store.GroupByDay {
				_, err = a.FindUsageLogs(t.Context(), c.q, store.ListParams{Limit: 10})
				if got := wantCode(t, err, store.EBADREQUEST); got.Field != c.field {
					t.Errorf("FindUsageLogs(%+v): field %q, want %q", c.q, got.Field, c.field)
				}
			}
		}

		counts, err := a.CountUsage(t.Context(), store.UsageQuery{}, store.GroupByDay)
		must(t, err, "CountUsage")
		wantCounts(t, "CountUsage of A", counts, []store.UsageCount{{Group: ev.Day(), Count: 1}})
		counts, err = bb.CountUsage(t.Context(), store.UsageQuery{}, store.GroupByDay)
		must(t, err, "CountUsage of B")
		if counts == nil || len(counts) != 0 {
			t.Errorf("CountUsage of B = %#v, want an empty, non-nil list", counts)
		}
		logs, err := bb.FindUsageLogs(t.Context(), store.UsageQuery{}, store.ListParams{Limit: 10})
		must(t, err, "FindUsageLogs of B")
		if len(logs.Data) != 0 {
			t.Errorf("workspace B sees %d usage events of A", len(logs.Data))
		}
		// Asking B's logs for A's key finds nothing either.
		logs, err = bb.FindUsageLogs(t.Context(), store.UsageQuery{KeyID: ev.KeyID}, store.ListParams{Limit: 10})
		must(t, err, "FindUsageLogs of B by A's key")
		if len(logs.Data) != 0 {
			t.Errorf("workspace B sees %d usage events of A's key", len(logs.Data))
		}
	})

	s.test(t, "Whoami", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		p := e.principal(t, e.wb, store.ReadScope("notes"))
		me, err := e.svc.Scoped(p).Whoami(t.Context())
		must(t, err, "Whoami")
		if me.Workspace.ID != e.wb.ID || me.Workspace.Name != e.wb.Name || me.Key.ID != p.KeyID || me.Key.Prefix != p.KeyPrefix {
			t.Errorf("whoami = %+v, want workspace B and key %s", me, p.KeyID)
		}
		if fmt.Sprint(me.Key.Scopes) != "[read:notes]" {
			t.Errorf("whoami scopes = %v, want [read:notes]", me.Key.Scopes)
		}
	})
}

func mergeInput(in map[string]any, k string, v any) map[string]any {
	in[k] = v
	return in
}
