package storetest

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// issued is a key created for a test: the stored key, its raw value and the
// principal it authenticates as.
type issued struct {
	key *store.APIKey
	raw string
	p   store.Principal
}

// issue creates a key through the operator's service and authenticates it.
func (e *env) issue(t *testing.T, in store.KeyInput) issued {
	t.Helper()
	if in.Name == "" {
		in.Name = "test key"
	}
	k, raw, err := e.svc.CreateAPIKey(t.Context(), in)
	must(t, err, "CreateAPIKey")
	p, err := e.svc.Authenticate(t.Context(), raw)
	must(t, err, "Authenticate")
	return issued{key: k, raw: raw, p: p}
}

// scopes is a shorthand for a scope list.
func scopes(s ...string) []store.Scope {
	out := make([]store.Scope, len(s))
	for i, v := range s {
		out[i] = store.Scope(v)
	}
	return out
}

func keyIDs(infos []store.KeyInfo) []string {
	ids := make([]string, len(infos))
	for i, k := range infos {
		ids[i] = k.ID
	}
	return ids
}

// wantAuth checks how the key with raw value raw authenticates now: ""
// for success, else the error code.
func (e *env) wantAuth(t *testing.T, what, raw, code string) {
	t.Helper()
	_, err := e.svc.Authenticate(t.Context(), raw)
	if got := store.ErrorCode(err); got != code {
		t.Errorf("%s: Authenticate = %v (code %q), want code %q", what, err, got, code)
	}
}

func usageEvent(k *store.APIKey, tm time.Time) store.UsageEvent {
	return store.UsageEvent{ID: store.NewID(), WorkspaceID: k.WorkspaceID, KeyID: k.ID, Method: "GET",
		Route: "/api/v1/leads", Status: 200, DurationMS: 1, Time: tm, RequestID: "r", Transport: store.TransportREST}
}

func (s *suite) keyAdmin(t *testing.T) {
	s.test(t, "ListAndGetOnlyManageable", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "admin",
			Scopes: scopes("admin:keys", "read:leads", "write:leads", "read:accounts")})
		e.clock.Add(time.Second)
		sub := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "subset", Scopes: scopes("read:leads")})
		e.clock.Add(time.Second)
		wider := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "wider", Scopes: scopes("read:leads", "read:deals")})
		e.clock.Add(time.Second)
		vendor := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "vendor", Scopes: scopes("read:leads", "admin:keys"),
			Filter: map[string]string{"source": "Vendor XYZ"}})
		e.clock.Add(time.Second)
		otherVendor := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "other vendor", Scopes: scopes("read:leads"),
			Filter: map[string]string{"source": "Vendor ABC"}})
		e.clock.Add(time.Second)
		elsewhere := e.issue(t, store.KeyInput{WorkspaceID: e.wb.ID, Name: "elsewhere", Scopes: scopes("read:leads")})

		// Requests over the last 7 days are counted per key.
		now := e.clock.Now()
		must(t, e.svc.RecordUsage(t.Context(), []store.UsageEvent{
			usageEvent(sub.key, now.Add(-8*24*time.Hour)), // too old
			usageEvent(sub.key, now.Add(-time.Hour)),
			usageEvent(sub.key, now.Add(-time.Minute)),
			usageEvent(admin.key, now.Add(-time.Minute)),
			usageEvent(elsewhere.key, now.Add(-time.Minute)),
		}), "RecordUsage")

		sc := e.svc.Scoped(admin.p)
		list, err := sc.FindAPIKeys(t.Context())
		must(t, err, "FindAPIKeys")
		wantIDs(t, "keys the admin manages", keyIDs(list),
			[]string{admin.key.ID, sub.key.ID, vendor.key.ID, otherVendor.key.ID})
		for _, k := range list {
			if k.Status != store.KeyActive {
				t.Errorf("key %s: status %q, want active", k.Name, k.Status)
			}
			want := map[string]int64{admin.key.ID: 1, sub.key.ID: 2}[k.ID]
			if k.Requests7d != want {
				t.Errorf("key %s: requests_7d = %d, want %d", k.Name, k.Requests7d, want)
			}
			if k.ID == vendor.key.ID {
				wantKey(t, k.APIKey, vendor.key)
			}
		}
		got, err := sc.FindAPIKeyByID(t.Context(), sub.key.ID)
		must(t, err, "FindAPIKeyByID")
		sub.key.LastUsedAt = ptr(now.Add(-time.Minute))
		wantKey(t, got.APIKey, sub.key)
		if got.Requests7d != 2 || got.Status != store.KeyActive {
			t.Errorf("FindAPIKeyByID: status %q, requests_7d %d; want active, 2", got.Status, got.Requests7d)
		}
		// What an administrator sees never holds the hash.
		js, err := json.Marshal(got)
		must(t, err, "json.Marshal")
		var m map[string]any
		must(t, json.Unmarshal(js, &m), "json.Unmarshal")
		for _, f := range []string{"id", "name", "prefix", "scopes", "filter", "rate_limit", "status", "requests_7d", "last_used_at"} {
			if _, ok := m[f]; !ok {
				t.Errorf("key JSON %s lacks %q", js, f)
			}
		}
		if _, ok := m["hash"]; ok || strings.Contains(string(js), sub.raw) {
			t.Errorf("key JSON %s shows the hash or the key", js)
		}

		// Keys with more scopes and keys of other workspaces are not found.
		for _, id := range []string{wider.key.ID, elsewhere.key.ID, store.NewID(), "not-an-id", `{"$gt":""}`, ""} {
			_, err := sc.FindAPIKeyByID(t.Context(), id)
			wantCode(t, err, store.ENOTFOUND)
		}

		// A vendor administrator manages only keys with its filter.
		vsc := e.svc.Scoped(vendor.p)
		list, err = vsc.FindAPIKeys(t.Context())
		must(t, err, "FindAPIKeys(vendor)")
		wantIDs(t, "keys the vendor manages", keyIDs(list), []string{vendor.key.ID})
		for _, id := range []string{sub.key.ID, otherVendor.key.ID, admin.key.ID} {
			_, err := vsc.FindAPIKeyByID(t.Context(), id)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "CreateSubset", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		limit := store.RateLimit{Count: 600, Period: time.Minute}
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads", "write:leads"), RateLimit: &limit})
		sc := e.svc.Scoped(admin.p)
		e.clock.Add(time.Minute)
		exp := at(30 * 24 * time.Hour)
		lower := store.RateLimit{Count: 10, Period: time.Second} // 600/m, the same rate
		k, raw, err := sc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wb.ID, Name: " Vendor XYZ ",
			Scopes: scopes("read:leads", "write:leads"), Filter: map[string]string{"source": " Vendor XYZ "}, ExpiresAt: &exp, RateLimit: &lower})
		must(t, err, "CreateAPIKey")
		want := &store.APIKey{ID: k.ID, WorkspaceID: e.wa.ID, Name: "Vendor XYZ", Prefix: raw[:len(k.Prefix)], Hash: store.HashKey(raw),
			Scopes: scopes("read:leads", "write:leads"), Filter: map[string]string{"source": "Vendor XYZ"}, RateLimit: lower,
			CreatedAt: at(time.Minute), ExpiresAt: &exp}
		wantKey(t, k, want)
		stored, err := b.FindAPIKeyByID(t.Context(), e.wa.ID, k.ID)
		must(t, err, "FindAPIKeyByID")
		wantKey(t, stored, want)
		p, err := e.svc.Authenticate(t.Context(), raw)
		must(t, err, "Authenticate")
		if p.WorkspaceID != e.wa.ID || !maps.Equal(p.Filter, want.Filter) || !slices.Equal(p.Scopes, want.Scopes) {
			t.Errorf("principal of the new key = %+v", p)
		}

		// Without a rate limit the new key gets the caller's; admin:keys may
		// be passed on by a key that has it.
		k, _, err = sc.CreateAPIKey(t.Context(), store.KeyInput{Name: "deputy", Scopes: scopes("admin:keys", "read:leads")})
		must(t, err, "CreateAPIKey")
		if k.RateLimit != limit || k.WorkspaceID != e.wa.ID || k.Filter != nil || k.ExpiresAt != nil {
			t.Errorf("key created without limit = %+v, want the caller's limit %v", k, limit)
		}
		list, err := sc.FindAPIKeys(t.Context())
		must(t, err, "FindAPIKeys")
		if len(list) != 3 {
			t.Errorf("%d keys listed, want the admin and the 2 it created", len(list))
		}
		// The operator can grant admin:keys too.
		_, _, err = e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wb.ID, Name: "first admin", Scopes: scopes("admin:keys")})
		must(t, err, "CreateAPIKey(operator, admin:keys)")
	})

	s.test(t, "CreateNoEscalation", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads", "write:leads")})
		vendor := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads", "write:leads"),
			Filter: map[string]string{"source": "Vendor XYZ"}})
		noAdmin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads", "write:leads", "read:accounts")})
		before, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")

		cases := []struct {
			name   string
			caller issued
			in     store.KeyInput
			code   string
			field  string
		}{
			{"extra scope", admin, store.KeyInput{Name: "k", Scopes: scopes("read:leads", "read:accounts")}, store.EBADREQUEST, "scopes"},
			{"usage", admin, store.KeyInput{Name: "k", Scopes: scopes("read:usage")}, store.EBADREQUEST, "scopes"},
			{"admin:keys from a key without it", noAdmin, store.KeyInput{Name: "k", Scopes: scopes("admin:keys")}, store.EFORBIDDEN, ""},
			{"any key from a key without admin:keys", noAdmin, store.KeyInput{Name: "k", Scopes: scopes("read:leads")}, store.EFORBIDDEN, ""},
			{"higher rate", admin, store.KeyInput{Name: "k", Scopes: scopes("read:leads"),
				RateLimit: &store.RateLimit{Count: 101, Period: 10 * time.Second}}, store.EBADREQUEST, "rate_limit"},
			{"higher rate in other units", admin, store.KeyInput{Name: "k", Scopes: scopes("read:leads"),
				RateLimit: &store.RateLimit{Count: 601, Period: time.Minute}}, store.EBADREQUEST, "rate_limit"},
			{"looser filter", vendor, store.KeyInput{Name: "k", Scopes: scopes("read:leads"),
				Filter: map[string]string{"source": "Vendor ABC"}}, store.EBADREQUEST, "filter"},
			{"filter of another case", vendor, store.KeyInput{Name: "k", Scopes: scopes("read:leads"),
				Filter: map[string]string{"source": "vendor xyz"}}, store.EBADREQUEST, "filter"},
			{"vendor extra scope", vendor, store.KeyInput{Name: "k", Scopes: scopes("read:leads", "read:accounts")}, store.EBADREQUEST, "scopes"},
		}
		for _, c := range cases {
			_, raw, err := e.svc.Scoped(c.caller.p).CreateAPIKey(t.Context(), c.in)
			var got string
			if se := (*store.Error)(nil); errors.As(err, &se) {
				got = se.Field
			}
			if store.ErrorCode(err) != c.code || got != c.field || raw != "" {
				t.Errorf("%s: %v (field %q), want %s on %q", c.name, err, got, c.code, c.field)
			}
		}
		after, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")
		if len(after) != len(before) {
			t.Errorf("%d keys after refused creates, want %d", len(after), len(before))
		}

		// A vendor's new key keeps the vendor's filter, whether it repeats
		// it, leaves it out or narrows it further.
		vsc := e.svc.Scoped(vendor.p)
		for _, f := range []map[string]string{nil, {"source": "Vendor XYZ"}, {"status": "New"}} {
			k, _, err := vsc.CreateAPIKey(t.Context(), store.KeyInput{Name: "sub-vendor", Scopes: scopes("read:leads"), Filter: f})
			must(t, err, "CreateAPIKey(vendor)")
			want := map[string]string{"source": "Vendor XYZ"}
			maps.Copy(want, f)
			if !maps.Equal(k.Filter, want) {
				t.Errorf("vendor's key with filter %v has filter %v, want %v", f, k.Filter, want)
			}
		}
	})

	s.test(t, "Revoke", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads")})
		target := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads")})
		wider := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads", "write:leads")})
		elsewhere := e.issue(t, store.KeyInput{WorkspaceID: e.wb.ID, Scopes: scopes("read:leads")})
		sc := e.svc.Scoped(admin.p)
		e.clock.Add(time.Hour)
		info, err := sc.RevokeAPIKey(t.Context(), target.key.ID)
		must(t, err, "RevokeAPIKey")
		if info.ID != target.key.ID || info.Status != store.KeyRevoked {
			t.Errorf("revoked key = %+v, want status revoked", info)
		}
		wantTimePtr(t, "revoked_at", info.RevokedAt, ptr(at(time.Hour)))
		e.wantAuth(t, "revoked key", target.raw, store.EREVOKED)
		// Revoking again keeps the first time.
		e.clock.Add(time.Hour)
		info, err = sc.RevokeAPIKey(t.Context(), target.key.ID)
		must(t, err, "RevokeAPIKey again")
		wantTimePtr(t, "revoked_at after a second revoke", info.RevokedAt, ptr(at(time.Hour)))

		for _, k := range []issued{wider, elsewhere} {
			_, err := sc.RevokeAPIKey(t.Context(), k.key.ID)
			wantCode(t, err, store.ENOTFOUND)
			e.wantAuth(t, "key the admin does not manage", k.raw, "")
		}
		_, err = sc.RevokeAPIKey(t.Context(), store.NewID())
		wantCode(t, err, store.ENOTFOUND)
		// A key may revoke itself.
		_, err = sc.RevokeAPIKey(t.Context(), admin.key.ID)
		must(t, err, "RevokeAPIKey(self)")
		e.wantAuth(t, "self-revoked key", admin.raw, store.EREVOKED)
	})

	s.test(t, "RotateWithOverlap", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads", "write:leads")})
		limit := store.RateLimit{Count: 5, Period: time.Second}
		old := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "vendor", Scopes: scopes("read:leads"),
			Filter: map[string]string{"source": "Vendor XYZ"}, RateLimit: &limit})
		e.clock.Add(time.Hour)
		sc := e.svc.Scoped(admin.p)
		nk, raw, err := sc.RotateAPIKey(t.Context(), old.key.ID, 48*time.Hour)
		must(t, err, "RotateAPIKey")
		if raw == old.raw || nk.ID == old.key.ID || !store.WellFormedKey(raw) || string(nk.Hash) != string(store.HashKey(raw)) {
			t.Fatalf("rotation returned the old key or a malformed one: %+v", nk)
		}
		want := &store.APIKey{ID: nk.ID, WorkspaceID: e.wa.ID, Name: "vendor", Prefix: raw[:len(nk.Prefix)], Hash: store.HashKey(raw),
			Scopes: old.key.Scopes, Filter: old.key.Filter, RateLimit: limit, CreatedAt: at(time.Hour)}
		wantKey(t, nk, want)
		stored, err := b.FindAPIKeyByID(t.Context(), e.wa.ID, nk.ID)
		must(t, err, "FindAPIKeyByID(new)")
		wantKey(t, stored, want)

		// The old key now expires after the overlap; until then both work.
		info, err := sc.FindAPIKeyByID(t.Context(), old.key.ID)
		must(t, err, "FindAPIKeyByID(old)")
		wantTimePtr(t, "old key's expires_at", info.ExpiresAt, ptr(at(49*time.Hour)))
		if info.Status != store.KeyExpiring {
			t.Errorf("old key's status = %q, want expiring", info.Status)
		}
		e.clock.Add(48*time.Hour - time.Millisecond)
		e.wantAuth(t, "old key just before the end of the overlap", old.raw, "")
		e.wantAuth(t, "new key", raw, "")
		e.clock.Add(time.Millisecond)
		e.wantAuth(t, "old key after the overlap", old.raw, store.EEXPIRED)
		e.wantAuth(t, "new key after the overlap", raw, "")
		info, err = sc.FindAPIKeyByID(t.Context(), old.key.ID)
		must(t, err, "FindAPIKeyByID(old)")
		if info.Status != store.KeyExpired {
			t.Errorf("old key's status after the overlap = %q, want expired", info.Status)
		}
		// An expired key cannot be rotated again.
		_, _, err = sc.RotateAPIKey(t.Context(), old.key.ID, time.Hour)
		wantCode(t, err, store.ECONFLICT)
	})

	s.test(t, "RotateKeepsLifetimeAndEarlierExpiry", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		exp := at(10 * 24 * time.Hour)
		old := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads"), ExpiresAt: &exp})
		e.clock.Add(24 * time.Hour)
		// The operator rotates with an overlap longer than the old key has
		// left: the old key keeps its own, earlier expiry; the new one gets
		// the old one's lifetime.
		nk, raw, err := e.svc.RotateAPIKey(t.Context(), old.key.ID, 30*24*time.Hour)
		must(t, err, "RotateAPIKey")
		wantTimePtr(t, "new key's expires_at", nk.ExpiresAt, ptr(at(11*24*time.Hour)))
		got, err := b.FindAPIKeyByID(t.Context(), e.wa.ID, old.key.ID)
		must(t, err, "FindAPIKeyByID")
		wantTimePtr(t, "old key's expires_at", got.ExpiresAt, &exp)
		e.wantAuth(t, "new key", raw, "")
		for _, id := range []string{store.NewID(), "x"} {
			_, _, err := e.svc.RotateAPIKey(t.Context(), id, time.Hour)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "RotateNow", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads")})
		old := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads")})
		overlap, err := store.ParseOverlap("now")
		must(t, err, "ParseOverlap")
		_, raw, err := e.svc.Scoped(admin.p).RotateAPIKey(t.Context(), old.key.ID, overlap)
		must(t, err, "RotateAPIKey")
		e.wantAuth(t, "old key rotated now", old.raw, store.EEXPIRED)
		e.wantAuth(t, "new key", raw, "")
	})

	s.test(t, "RotateRefused", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads")})
		revoked := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads")})
		wider := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads", "write:leads")})
		elsewhere := e.issue(t, store.KeyInput{WorkspaceID: e.wb.ID, Scopes: scopes("read:leads")})
		sc := e.svc.Scoped(admin.p)
		_, err := sc.RevokeAPIKey(t.Context(), revoked.key.ID)
		must(t, err, "RevokeAPIKey")
		before, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")

		_, raw, err := sc.RotateAPIKey(t.Context(), revoked.key.ID, time.Hour)
		wantCode(t, err, store.ECONFLICT)
		_, _, err = e.svc.RotateAPIKey(t.Context(), revoked.key.ID, time.Hour)
		wantCode(t, err, store.ECONFLICT)
		for _, k := range []issued{wider, elsewhere} {
			_, raw2, err := sc.RotateAPIKey(t.Context(), k.key.ID, 0)
			wantCode(t, err, store.ENOTFOUND)
			e.wantAuth(t, "key the admin does not manage", k.raw, "")
			raw += raw2
		}
		if raw != "" {
			t.Errorf("refused rotations returned a key")
		}
		after, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")
		if len(after) != len(before) {
			t.Errorf("%d keys after refused rotations, want %d", len(after), len(before))
		}
		got, err := b.FindAPIKeyByID(t.Context(), e.wa.ID, revoked.key.ID)
		must(t, err, "FindAPIKeyByID")
		if got.ExpiresAt != nil || got.RevokedAt == nil {
			t.Errorf("revoked key after a refused rotation = %+v", got)
		}
	})

	s.test(t, "PolicyLifetimeAndExpiry", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		admin := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads")})
		noExpiry := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads")})
		sc := e.svc.Scoped(admin.p)
		p, err := sc.KeyPolicy(t.Context())
		must(t, err, "KeyPolicy")
		if p != (store.KeyPolicy{}) {
			t.Errorf("new workspace's policy = %+v, want none", p)
		}
		for _, bad := range []store.KeyPolicy{{MaxLifetimeDays: -1}, {DisableUnusedDays: -1}, {MaxLifetimeDays: 100_000}} {
			_, err := sc.UpdateKeyPolicy(t.Context(), bad)
			wantCode(t, err, store.EBADREQUEST)
		}
		policy := store.KeyPolicy{MaxLifetimeDays: 30, RequireExpiry: true}
		got, err := sc.UpdateKeyPolicy(t.Context(), policy)
		must(t, err, "UpdateKeyPolicy")
		if got != policy {
			t.Errorf("UpdateKeyPolicy = %+v, want %+v", got, policy)
		}
		w, err := b.FindWorkspaceByID(t.Context(), e.wa.ID)
		must(t, err, "FindWorkspaceByID")
		if w.Policy != policy {
			t.Errorf("stored policy = %+v, want %+v", w.Policy, policy)
		}

		in := func(exp *time.Time) store.KeyInput {
			return store.KeyInput{WorkspaceID: e.wa.ID, Name: "k", Scopes: scopes("read:leads"), ExpiresAt: exp}
		}
		tooLate := at(30*24*time.Hour + time.Millisecond)
		inTime := at(30 * 24 * time.Hour)
		for _, c := range []struct {
			name   string
			create func(store.KeyInput) error
		}{
			{"operator", func(in store.KeyInput) error { _, _, err := e.svc.CreateAPIKey(t.Context(), in); return err }},
			{"admin key", func(in store.KeyInput) error { _, _, err := sc.CreateAPIKey(t.Context(), in); return err }},
		} {
			wantField(t, c.create(in(nil)), store.EBADREQUEST, "expires_at", c.name+" without expiry")
			wantField(t, c.create(in(&tooLate)), store.EBADREQUEST, "expires_at", c.name+" beyond the maximum lifetime")
			must(t, c.create(in(&inTime)), c.name+" within the maximum lifetime")
		}
		// Rotating a key made before the policy gives the new key the
		// maximum lifetime.
		nk, _, err := sc.RotateAPIKey(t.Context(), noExpiry.key.ID, time.Hour)
		must(t, err, "RotateAPIKey")
		wantTimePtr(t, "rotated key's expires_at", nk.ExpiresAt, &inTime)

		// Expiry required, no maximum.
		_, err = e.svc.SetKeyPolicy(t.Context(), e.wa.ID, store.KeyPolicy{RequireExpiry: true})
		must(t, err, "SetKeyPolicy")
		_, _, err = e.svc.CreateAPIKey(t.Context(), in(nil))
		wantField(t, err, store.EBADREQUEST, "expires_at", "without expiry when required")
		far := at(5 * 365 * 24 * time.Hour)
		_, _, err = e.svc.CreateAPIKey(t.Context(), in(&far))
		must(t, err, "CreateAPIKey far in the future")

		// The other workspace has no policy.
		_, _, err = e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wb.ID, Name: "k", Scopes: scopes("read:leads")})
		must(t, err, "CreateAPIKey in workspace B")
		_, err = e.svc.SetKeyPolicy(t.Context(), store.NewID(), store.KeyPolicy{})
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "FilteredAdminCannotChangePolicy", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		policy := store.KeyPolicy{MaxLifetimeDays: 90}
		_, err := e.svc.SetKeyPolicy(t.Context(), e.wa.ID, policy)
		must(t, err, "SetKeyPolicy")
		exp := at(24 * time.Hour)
		vendor := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("admin:keys", "read:leads"),
			Filter: map[string]string{"source": "Vendor XYZ"}, ExpiresAt: &exp})
		vsc := e.svc.Scoped(vendor.p)
		got, err := vsc.KeyPolicy(t.Context())
		must(t, err, "KeyPolicy")
		if got != policy {
			t.Errorf("KeyPolicy = %+v, want %+v", got, policy)
		}
		_, err = vsc.UpdateKeyPolicy(t.Context(), store.KeyPolicy{})
		wantCode(t, err, store.EFORBIDDEN)
		w, err := b.FindWorkspaceByID(t.Context(), e.wa.ID)
		must(t, err, "FindWorkspaceByID")
		if w.Policy != policy {
			t.Errorf("policy after a refused update = %+v, want %+v", w.Policy, policy)
		}
	})

	s.test(t, "DisableUnusedKeys", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		_, err := e.svc.SetKeyPolicy(t.Context(), e.wa.ID, store.KeyPolicy{DisableUnusedDays: 30})
		must(t, err, "SetKeyPolicy")
		key := func(ws *store.Workspace, name string) issued {
			return e.issue(t, store.KeyInput{WorkspaceID: ws.ID, Name: name, Scopes: scopes("read:leads")})
		}
		unused := key(e.wa, "never used")
		usedLongAgo := key(e.wa, "used long ago")
		usedRecently := key(e.wa, "used recently")
		usedAtCutoff := key(e.wa, "used exactly at the cutoff")
		revoked := key(e.wa, "revoked")
		exp := at(24 * time.Hour)
		expired := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "expired", Scopes: scopes("read:leads"), ExpiresAt: &exp})
		noPolicy := key(e.wb, "other workspace, no policy")
		_, err = e.svc.RevokeAPIKey(t.Context(), revoked.key.ID)
		must(t, err, "RevokeAPIKey")
		must(t, e.svc.RecordUsage(t.Context(), []store.UsageEvent{
			usageEvent(usedLongAgo.key, at(time.Hour)),
			usageEvent(usedAtCutoff.key, at(10*24*time.Hour)),
			usageEvent(usedRecently.key, at(39*24*time.Hour)),
		}), "RecordUsage")

		e.clock.Add(40 * 24 * time.Hour)
		fresh := key(e.wa, "created recently, never used")
		n, err := e.svc.DisableUnusedKeys(t.Context())
		must(t, err, "DisableUnusedKeys")
		if n != 2 {
			t.Errorf("DisableUnusedKeys = %d, want 2", n)
		}
		for _, c := range []struct {
			k    issued
			code string
		}{
			{unused, store.EREVOKED}, {usedLongAgo, store.EREVOKED},
			{usedRecently, ""}, {usedAtCutoff, ""}, {fresh, ""}, {noPolicy, ""},
			{revoked, store.EREVOKED}, {expired, store.EEXPIRED},
		} {
			e.wantAuth(t, c.k.key.Name, c.k.raw, c.code)
		}
		for _, k := range []issued{unused, usedLongAgo} {
			got, err := b.FindAPIKeyByID(t.Context(), e.wa.ID, k.key.ID)
			must(t, err, "FindAPIKeyByID")
			wantTimePtr(t, k.key.Name+" revoked_at", got.RevokedAt, ptr(e.clock.Now()))
		}
		got, err := b.FindAPIKeyByID(t.Context(), e.wa.ID, expired.key.ID)
		must(t, err, "FindAPIKeyByID")
		wantTimePtr(t, "expired key's revoked_at", got.RevokedAt, nil)
		got, err = b.FindAPIKeyByID(t.Context(), e.wa.ID, revoked.key.ID)
		must(t, err, "FindAPIKeyByID")
		wantTimePtr(t, "revoked key's revoked_at", got.RevokedAt, ptr(at(0)))

		n, err = e.svc.DisableUnusedKeys(t.Context())
		must(t, err, "DisableUnusedKeys again")
		if n != 0 {
			t.Errorf("DisableUnusedKeys again = %d, want 0", n)
		}
	})
}
