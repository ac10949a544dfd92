package mcp_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// keyInfo is a key as the key tools answer it.
type keyInfo struct {
	ID          string            `json:"id"`
	WorkspaceID string            `json:"workspace_id"`
	Name        string            `json:"name"`
	Prefix      string            `json:"prefix"`
	Scopes      []string          `json:"scopes"`
	Filter      map[string]string `json:"filter"`
	RateLimit   string            `json:"rate_limit"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	RevokedAt   *time.Time        `json:"revoked_at"`
	Status      string            `json:"status"`
	Requests7d  *int64            `json:"requests_7d"`
	Key         *string           `json:"key"`
	OldKey      *keyInfo          `json:"old_key"`
}

var keyTools = []string{"list_api_keys", "get_api_key", "create_api_key", "revoke_api_key", "rotate_api_key",
	"get_key_policy", "update_key_policy"}

// TestKeyTools administers keys through every client and transport: in
// process over HTTP (store.Scoped) and over stdio (the REST client).
func TestKeyTools(t *testing.T) {
	for _, c := range connectors {
		t.Run(c.name, func(t *testing.T) { keyToolsScenario(t, newEnv(t), c) })
	}
}

func keyToolsScenario(t *testing.T, e *env, c connector) {
	ctx := t.Context()

	// Only keys with admin:keys see the key tools, and calling one without
	// it is refused.
	notes := mustConnect(t, c, e, e.keys[keyNotes], protoModern)
	tools, err := notes.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range keyTools {
		if slices.Contains(toolNames(tools), name) {
			t.Errorf("a key without admin:keys lists %s", name)
		}
	}
	if res, err := notes.CallTool(ctx, "list_api_keys", nil); err == nil && !res.IsError {
		t.Errorf("list_api_keys without admin:keys succeeded: %s", res.Text)
	}
	_ = notes.Close()

	s := mustConnect(t, c, e, e.keys[keyFull], protoModern)
	tools, err = s.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range keyTools {
		if !slices.Contains(toolNames(tools), name) {
			t.Errorf("a key with admin:keys does not list %s", name)
		}
	}

	// Create: the secret comes back once, and works.
	var created keyInfo
	before := time.Now()
	res := call(t, s, "create_api_key", map[string]any{"name": "zapier", "scopes": []any{"write:leads", "read:leads"},
		"expires_in": "30d", "rate_limit": "60/m"}, &created)
	if created.Key == nil || !strings.HasPrefix(*created.Key, store.KeyPrefix) || !strings.HasPrefix(*created.Key, created.Prefix) {
		t.Fatalf("create_api_key: key %v, prefix %q", created.Key, created.Prefix)
	}
	raw := *created.Key
	if created.Name != "zapier" || created.WorkspaceID != e.wsA.ID || !slices.Equal(created.Scopes, []string{"read:leads", "write:leads"}) ||
		created.RateLimit != "60/m" || created.Status != store.KeyActive || created.Filter != nil || created.RevokedAt != nil {
		t.Errorf("create_api_key = %s", res.Text)
	}
	if created.ExpiresAt == nil || created.ExpiresAt.Before(before.Add(30*24*time.Hour-time.Second)) ||
		created.ExpiresAt.After(time.Now().Add(30*24*time.Hour+time.Second)) {
		t.Errorf("expires_in 30d gave expires_at %v", created.ExpiresAt)
	}
	p, err := e.svc.Authenticate(ctx, raw)
	if err != nil || p.KeyID != created.ID || p.WorkspaceID != e.wsA.ID {
		t.Fatalf("the created key does not authenticate as itself: %+v, %v", p, err)
	}

	// List and get show it, never the secret.
	var list struct{ Data []keyInfo }
	res = call(t, s, "list_api_keys", nil, &list)
	if strings.Contains(res.Text, raw[len(created.Prefix):]) {
		t.Errorf("list_api_keys shows the secret: %s", res.Text)
	}
	var ids []string
	for _, k := range list.Data {
		ids = append(ids, k.ID)
		if k.Key != nil || k.Requests7d == nil {
			t.Errorf("list_api_keys entry %s: key %v, requests_7d %v", k.Name, k.Key, k.Requests7d)
		}
	}
	if !slices.Contains(ids, created.ID) || len(list.Data) != 4 { // the env's three keys of workspace A and the new one
		t.Errorf("list_api_keys = %v, want workspace A's 4 keys with %s", ids, created.ID)
	}
	var got keyInfo
	call(t, s, "get_api_key", map[string]any{"id": created.ID}, &got)
	if got.ID != created.ID || got.Prefix != created.Prefix || got.Key != nil {
		t.Errorf("get_api_key = %+v", got)
	}

	// Another workspace's key is not found; bad input is a clear error.
	otherKeys, err := e.svc.FindAPIKeys(ctx, e.wsB.ID)
	if err != nil || len(otherKeys) == 0 {
		t.Fatal(err)
	}
	for _, tool := range []string{"get_api_key", "revoke_api_key", "rotate_api_key"} {
		if code, _ := callError(t, s, tool, map[string]any{"id": otherKeys[0].ID}); code != store.ENOTFOUND {
			t.Errorf("%s of another workspace's key: %s, want not_found", tool, code)
		}
	}
	for _, tc := range []struct {
		args map[string]any
		want string // in the message
	}{
		{map[string]any{"name": "x", "scopes": []any{"read:everything"}}, "unknown scope"},
		{map[string]any{"name": "x", "scopes": []any{"read:leads"}, "expires_in": "30d", "expires_at": "2030-01-01T00:00:00Z"}, "expires_in"},
		{map[string]any{"name": "x", "scopes": []any{"read:leads"}, "rate_limit": "lots"}, "rate_limit"},
		{map[string]any{"name": "x", "scopes": []any{"read:notes"}, "filter": map[string]any{"source": "Vendor XYZ"}}, "notes have no field"},
		{map[string]any{"name": "x", "scopes": "read:leads"}, "scopes"},
	} {
		if code, msg := callError(t, s, "create_api_key", tc.args); code != store.EBADREQUEST || !contains(msg, tc.want) {
			t.Errorf("create_api_key %v: %s %q, want bad_request naming %q", tc.args, code, msg, tc.want)
		}
	}

	// No escalation: a key with admin:keys and read:leads cannot grant write:leads.
	var limited keyInfo
	call(t, s, "create_api_key", map[string]any{"name": "limited admin", "scopes": []any{"admin:keys", "read:leads"}}, &limited)
	_ = s.Close() // one stdio session at a time
	ls := mustConnect(t, c, e, *limited.Key, protoModern)
	if code, msg := callError(t, ls, "create_api_key", map[string]any{"name": "x", "scopes": []any{"write:leads"}}); code != store.EBADREQUEST ||
		!contains(msg, "write:leads") {
		t.Errorf("escalation through create_api_key: %s %q, want bad_request", code, msg)
	}
	var limitedList struct{ Data []keyInfo }
	call(t, ls, "list_api_keys", nil, &limitedList)
	for _, k := range limitedList.Data {
		if k.ID == created.ID { // write:leads is not a scope of the limited key
			t.Errorf("the limited admin key lists %s, which has scopes it lacks", k.Name)
		}
	}
	_ = ls.Close()
	s = mustConnect(t, c, e, e.keys[keyFull], protoModern)

	// Idempotent creation: the repeat answers the same key without its secret.
	var first, again keyInfo
	call(t, s, "create_api_key", map[string]any{"name": "once", "scopes": []any{"read:leads"}, "idempotency_key": "create-once"}, &first)
	res = call(t, s, "create_api_key", map[string]any{"name": "once", "scopes": []any{"read:leads"}, "idempotency_key": "create-once"}, &again)
	if first.Key == nil || again.ID != first.ID || again.Key != nil || !res.Replayed {
		t.Errorf("repeated create_api_key: first %s (key %v), again %s (key %v, replayed %v)", first.ID, first.Key != nil,
			again.ID, again.Key, res.Replayed)
	}

	// Rotate: a new secret, the old key works until its new expiry.
	var rotated keyInfo
	before = time.Now()
	call(t, s, "rotate_api_key", map[string]any{"id": created.ID, "expire_old_in": "1h"}, &rotated)
	if rotated.Key == nil || rotated.ID == created.ID || rotated.Name != "zapier" || !slices.Equal(rotated.Scopes, created.Scopes) ||
		rotated.RateLimit != "60/m" || rotated.OldKey == nil || rotated.OldKey.ID != created.ID {
		t.Fatalf("rotate_api_key = %+v", rotated)
	}
	if exp := rotated.OldKey.ExpiresAt; exp == nil || exp.Before(before.Add(time.Hour-time.Second)) || exp.After(time.Now().Add(time.Hour+time.Second)) ||
		rotated.OldKey.Status != store.KeyExpiring {
		t.Errorf("old key after rotation: expires_at %v status %s, want in an hour and expiring", exp, rotated.OldKey.Status)
	}
	for _, k := range []string{raw, *rotated.Key} {
		if _, err := e.svc.Authenticate(ctx, k); err != nil {
			t.Errorf("after rotation with overlap, a key is refused: %v", err)
		}
	}
	if code, _ := callError(t, s, "rotate_api_key", map[string]any{"id": created.ID, "expire_old_in": "1y"}); code != store.EBADREQUEST {
		t.Errorf("rotate_api_key expire_old_in 1y: %s, want bad_request", code)
	}

	// Revoke: the key stops working; revoking again changes nothing.
	var revoked keyInfo
	call(t, s, "revoke_api_key", map[string]any{"id": rotated.ID}, &revoked)
	if revoked.ID != rotated.ID || revoked.Status != store.KeyRevoked || revoked.RevokedAt == nil {
		t.Errorf("revoke_api_key = %+v", revoked)
	}
	if _, err := e.svc.Authenticate(ctx, *rotated.Key); store.ErrorCode(err) != store.ErrorCode(store.ErrRevokedKey) {
		t.Errorf("a revoked key authenticates: %v", err)
	}
	var again2 keyInfo
	call(t, s, "revoke_api_key", map[string]any{"id": rotated.ID}, &again2)
	if again2.RevokedAt == nil || !again2.RevokedAt.Equal(*revoked.RevokedAt) {
		t.Errorf("revoking twice moved revoked_at: %v then %v", revoked.RevokedAt, again2.RevokedAt)
	}

	// Policy: read, replace, and applied to new keys.
	var pol store.KeyPolicy
	call(t, s, "get_key_policy", nil, &pol)
	if pol != (store.KeyPolicy{}) {
		t.Errorf("get_key_policy of a new workspace = %+v, want all off", pol)
	}
	want := store.KeyPolicy{MaxLifetimeDays: 366, RequireExpiry: true, DisableUnusedDays: 90}
	call(t, s, "update_key_policy", map[string]any{"max_key_lifetime_days": 366, "require_expiry": true, "disable_unused_after_days": 90}, &pol)
	if pol != want {
		t.Errorf("update_key_policy = %+v, want %+v", pol, want)
	}
	if w, err := e.svc.FindWorkspaceByID(ctx, e.wsA.ID); err != nil || w.Policy != want {
		t.Errorf("stored policy = %+v (%v), want %+v", w.Policy, err, want)
	}
	if code, msg := callError(t, s, "create_api_key", map[string]any{"name": "forever", "scopes": []any{"read:leads"}}); code != store.EBADREQUEST ||
		!contains(msg, "policy") {
		t.Errorf("create_api_key without expiry under the policy: %s %q", code, msg)
	}
	if code, _ := callError(t, s, "update_key_policy", map[string]any{"max_key_lifetime_days": 366}); code != store.EBADREQUEST {
		t.Errorf("update_key_policy with part of the policy: %s, want bad_request", code)
	}
}

// TestVendorKeyTools: a vendor key's tools see and write only the records
// of its filter, through every client and transport.
func TestVendorKeyTools(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, vendorRaw, err := e.svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: e.wsA.ID, Name: "vendor xyz",
		Scopes: []store.Scope{store.ReadScope("leads"), store.WriteScope("leads"), store.ScopeAdminKeys},
		Filter: map[string]string{"source": "Vendor XYZ"}})
	if err != nil {
		t.Fatal(err)
	}
	full := mustConnect(t, connectors[0], e, e.keys[keyFull], protoModern)
	var mine, theirs, plain record
	call(t, full, "create_lead", map[string]any{"name": "Mine", "source": "Vendor XYZ"}, &mine)
	call(t, full, "create_lead", map[string]any{"name": "Theirs", "source": "Other Vendor"}, &theirs)
	call(t, full, "create_lead", map[string]any{"name": "Plain"}, &plain)
	_ = full.Close()

	for _, c := range connectors {
		t.Run(c.name, func(t *testing.T) {
			s := mustConnect(t, c, e, vendorRaw, protoModern)
			var p page
			call(t, s, "list_leads", map[string]any{"limit": 200}, &p)
			for _, r := range p.Data {
				if r["source"] != "Vendor XYZ" {
					t.Errorf("list_leads shows a lead of source %v: %v", r["source"], r)
				}
			}
			if !slices.Contains(p.ids(), mine["id"].(string)) {
				t.Errorf("list_leads lacks the vendor's own lead: %v", p.ids())
			}
			call(t, s, "list_leads", map[string]any{"source": "Other Vendor"}, &p)
			if len(p.Data) != 0 {
				t.Errorf("list_leads source=Other Vendor through the vendor key: %v", p.ids())
			}
			for _, id := range []string{theirs["id"].(string), plain["id"].(string)} {
				if code, _ := callError(t, s, "get_lead", map[string]any{"id": id}); code != store.ENOTFOUND {
					t.Errorf("get_lead of another lead: %s, want not_found", code)
				}
				if code, _ := callError(t, s, "update_lead", map[string]any{"id": id, "status": "Mine now"}); code != store.ENOTFOUND {
					t.Errorf("update_lead of another lead: %s, want not_found", code)
				}
				if code, _ := callError(t, s, "delete_lead", map[string]any{"id": id}); code != store.ENOTFOUND {
					t.Errorf("delete_lead of another lead: %s, want not_found", code)
				}
			}
			var created record
			call(t, s, "create_lead", map[string]any{"name": "New " + c.name}, &created)
			if created["source"] != "Vendor XYZ" {
				t.Errorf("create_lead through the vendor key: source %v, want it stamped Vendor XYZ", created["source"])
			}
			if code, _ := callError(t, s, "create_lead", map[string]any{"name": "Sneaky", "source": "Other Vendor"}); code != store.EBADREQUEST {
				t.Errorf("create_lead with another source: %s, want bad_request", code)
			}
			if code, _ := callError(t, s, "update_lead", map[string]any{"id": mine["id"], "source": "Other Vendor"}); code != store.EBADREQUEST {
				t.Errorf("update_lead moving a lead out of the filter: %s, want bad_request", code)
			}

			// Its key administration sees only keys with its filter, and
			// the keys it creates keep the filter.
			var list struct{ Data []keyInfo }
			call(t, s, "list_api_keys", nil, &list)
			for _, k := range list.Data {
				if k.Filter["source"] != "Vendor XYZ" {
					t.Errorf("the vendor key lists key %s with filter %v", k.Name, k.Filter)
				}
			}
			var sub keyInfo
			call(t, s, "create_api_key", map[string]any{"name": "vendor reader", "scopes": []any{"read:leads"}}, &sub)
			if sub.Filter["source"] != "Vendor XYZ" {
				t.Errorf("a key created by the vendor key has filter %v, want its own", sub.Filter)
			}
			if code, _ := callError(t, s, "update_key_policy", map[string]any{"max_key_lifetime_days": 0, "require_expiry": false,
				"disable_unused_after_days": 0}); code != store.EFORBIDDEN {
				t.Errorf("update_key_policy through a vendor key: %s, want forbidden", code)
			}
		})
	}
}
