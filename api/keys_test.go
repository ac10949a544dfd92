package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// withServiceOptions adds options to the service of an env.
func withServiceOptions(opts ...store.Option) envOption {
	return func(c *envConfig) { c.service = append(c.service, opts...) }
}

// newFilteredKey makes a key of workspace ws with a record filter.
func (e *env) newFilteredKey(ws string, scopes []store.Scope, filter map[string]string) (*store.APIKey, string) {
	e.t.Helper()
	k, raw, err := e.svc.CreateAPIKey(e.t.Context(), store.KeyInput{WorkspaceID: ws, Name: "vendor key", Scopes: scopes, Filter: filter})
	if err != nil {
		e.t.Fatalf("CreateAPIKey: %v", err)
	}
	return k, raw
}

// keyInfo is a decoded key of the admin API.
type keyInfo struct {
	ID          string            `json:"id"`
	WorkspaceID string            `json:"workspace_id"`
	Name        string            `json:"name"`
	Prefix      string            `json:"prefix"`
	Scopes      []string          `json:"scopes"`
	Filter      map[string]string `json:"filter"`
	RateLimit   string            `json:"rate_limit"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	RevokedAt   *time.Time        `json:"revoked_at"`
	LastUsedAt  *time.Time        `json:"last_used_at"`
	Status      string            `json:"status"`
	Requests7d  *int64            `json:"requests_7d"`
	Key         *string           `json:"key"`
	OldKey      *keyInfo          `json:"old_key"`
}

// keyInfoFields are exactly the members of a key in the admin API.
var keyInfoFields = []string{"created_at", "expires_at", "filter", "id", "last_used_at", "name", "prefix",
	"rate_limit", "requests_7d", "revoked_at", "scopes", "status", "workspace_id"}

func decodeKey(t *testing.T, b []byte) keyInfo {
	t.Helper()
	var k keyInfo
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatalf("decode key: %v: %s", err, clip(b))
	}
	return k
}

// checkKeyShape checks that a key object has exactly the KeyInfo members,
// plus the extra ones named.
func checkKeyShape(t *testing.T, m map[string]any, extra ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(append(slices.Clone(keyInfoFields), extra...)))
	if !slices.Equal(got, want) {
		t.Errorf("key members %v, want %v", got, want)
	}
	if s, _ := m["status"].(string); !slices.Contains([]string{"active", "expiring", "expired", "revoked"}, s) {
		t.Errorf("status %v", m["status"])
	}
}

// keyCreated checks a 201 answer of a key creation or rotation and returns
// the key.
func keyCreated(t *testing.T, r response, extra ...string) keyInfo {
	t.Helper()
	checkKeyShape(t, r.json(t), append([]string{"key"}, extra...)...)
	k := decodeKey(t, r.body)
	if k.Key == nil || !store.WellFormedKey(*k.Key) || !strings.HasPrefix(*k.Key, k.Prefix) {
		t.Fatalf("key %v with prefix %q", k.Key, k.Prefix)
	}
	if r.header.Get("Location") != api.KeysPath+"/"+k.ID {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	return k
}

// status answers the status of a request made with key to GET /api/v1/me,
// and its error code.
func (e *env) meStatus(t *testing.T, key string) (int, string) {
	t.Helper()
	r := e.do(t, request{method: http.MethodGet, path: "/api/v1/me", key: key})
	if r.status == http.StatusOK {
		return r.status, ""
	}
	code, _ := r.json(t)["error"].(string)
	return r.status, code
}

// TestKeyAdmin runs the key administration routes on each backend: a table
// of scenarios per status, then the flows (create once, rotate, revoke,
// policy, escalation, vendor administrators).
//
// Escalation is refused in two ways: a key without admin:keys gets 403 for
// every route; a key with it that asks for a scope it lacks, a looser filter
// or a higher rate limit gets 400 naming the field (scopes, filter,
// rate_limit), like any other invalid value.
func TestKeyAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t), withServiceOptions(store.WithKeyCacheTTL(0)))
		admin := e.keyA
		narrowKey, narrow := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ScopeAdminKeys, store.ReadScope("leads")}, nil)
		vendorAdminKey, vendorAdmin := e.newFilteredKey(e.wsA.ID,
			[]store.Scope{store.ScopeAdminKeys, store.ReadScope("leads"), store.WriteScope("leads")}, map[string]string{"source": "Vendor XYZ"})
		noAdmin := e.keyWithout(store.ScopeAdminKeys)
		target, _ := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ReadScope("leads")}, nil)
		revokedTarget, _ := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ReadScope("leads")}, nil)
		if _, err := e.svc.RevokeAPIKey(t.Context(), revokedTarget.ID); err != nil {
			t.Fatal(err)
		}
		missing := store.NewID()
		soon := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
		later := time.Now().Add(60 * 24 * time.Hour).UTC().Format(time.RFC3339)

		post := func(path, key, body string) request {
			return request{method: http.MethodPost, path: path, key: key, body: jsonBody(body)}
		}
		get := func(path, key string) request { return request{method: http.MethodGet, path: path, key: key} }
		createBody := func(extra string) string {
			return `{"name":"CRM sync","scopes":["read:leads"]` + extra + `}`
		}
		policy := func(max int, require bool, unused int) string {
			return mustJSON(t, map[string]any{"max_key_lifetime_days": max, "require_expiry": require, "disable_unused_after_days": unused})
		}
		listIDs := func(t *testing.T, r response) []string {
			t.Helper()
			var l struct {
				Data []map[string]any `json:"data"`
			}
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range l.Data {
				checkKeyShape(t, m)
				if m["workspace_id"] != e.wsA.ID {
					t.Errorf("key of workspace %v listed", m["workspace_id"])
				}
				ids = append(ids, m["id"].(string))
			}
			return ids
		}

		run(t, e, []group{
			{http.StatusOK, []scenario{
				{name: "list", req: get(api.KeysPath, admin), check: func(t *testing.T, r response) {
					ids := listIDs(t, r)
					for _, id := range []string{e.keyAID, narrowKey.ID, vendorAdminKey.ID, target.ID, revokedTarget.ID} {
						if !slices.Contains(ids, id) {
							t.Errorf("key %s not listed", id)
						}
					}
					if slices.Contains(ids, e.keyBID) {
						t.Error("workspace B's key listed")
					}
					if !slices.IsSortedFunc(decodeKeys(t, r), func(a, b keyInfo) int { return a.CreatedAt.Compare(b.CreatedAt) }) {
						t.Errorf("not oldest first: %s", clip(r.body))
					}
				}},
				{name: "list by a narrow admin: only keys it could have created", req: get(api.KeysPath, narrow), check: func(t *testing.T, r response) {
					ids := listIDs(t, r)
					if !slices.Contains(ids, target.ID) || !slices.Contains(ids, narrowKey.ID) {
						t.Errorf("narrow admin does not see its own or a read:leads key: %v", ids)
					}
					if slices.Contains(ids, e.keyAID) || slices.Contains(ids, vendorAdminKey.ID) {
						t.Errorf("narrow admin sees keys with more scopes: %v", ids)
					}
				}},
				{name: "list by a vendor admin: only keys with its filter", req: get(api.KeysPath, vendorAdmin), check: func(t *testing.T, r response) {
					if ids := listIDs(t, r); !slices.Equal(ids, []string{vendorAdminKey.ID}) {
						t.Errorf("vendor admin sees %v, want only itself", ids)
					}
				}},
				{name: "get", req: get(api.KeysPath+"/"+target.ID, admin), check: func(t *testing.T, r response) {
					checkKeyShape(t, r.json(t))
					k := decodeKey(t, r.body)
					if k.ID != target.ID || k.Status != "active" || k.Name != "test key" || k.Prefix != target.Prefix ||
						!slices.Equal(k.Scopes, []string{"read:leads"}) || k.Filter != nil || k.RateLimit != "100/10s" {
						t.Errorf("key %+v", k)
					}
				}},
				{name: "get revoked", req: get(api.KeysPath+"/"+revokedTarget.ID, admin), check: func(t *testing.T, r response) {
					if k := decodeKey(t, r.body); k.Status != "revoked" || k.RevokedAt == nil {
						t.Errorf("key %+v", k)
					}
				}},
				{name: "get with the vendor filter", req: get(api.KeysPath+"/"+vendorAdminKey.ID, vendorAdmin), check: func(t *testing.T, r response) {
					if k := decodeKey(t, r.body); k.Filter["source"] != "Vendor XYZ" || len(k.Filter) != 1 {
						t.Errorf("filter %v", k.Filter)
					}
				}},
				{name: "get policy", req: get(api.KeyPolicyPath, admin), check: func(t *testing.T, r response) {
					if p := decodePolicy(t, r); p != (store.KeyPolicy{}) {
						t.Errorf("policy %+v", p)
					}
				}},
				{name: "get policy by a vendor admin", req: get(api.KeyPolicyPath, vendorAdmin)},
				{name: "me shows the filter", req: get("/api/v1/me", vendorAdmin), check: func(t *testing.T, r response) {
					key := r.json(t)["key"].(map[string]any)
					if f, _ := key["filter"].(map[string]any); f["source"] != "Vendor XYZ" {
						t.Errorf("me key %v", key)
					}
				}},
				{name: "me of an unfiltered key", req: get("/api/v1/me", admin), check: func(t *testing.T, r response) {
					if key := r.json(t)["key"].(map[string]any); key["filter"] != nil {
						t.Errorf("filter %v, want null", key["filter"])
					}
				}},
			}},
			{http.StatusCreated, []scenario{
				{name: "create", req: post(api.KeysPath, admin, createBody("")), check: func(t *testing.T, r response) {
					k := keyCreated(t, r)
					if k.Name != "CRM sync" || k.Status != "active" || k.ExpiresAt != nil || k.Filter != nil ||
						k.RateLimit != "100/10s" || k.WorkspaceID != e.wsA.ID || k.Requests7d == nil || *k.Requests7d != 0 {
						t.Errorf("key %+v", k)
					}
				}},
				{name: "create with filter, expires_in and rate limit",
					req: post(api.KeysPath, admin, `{"name":"Vendor XYZ","scopes":["read:leads","write:leads"],"filter":{"source":"Vendor XYZ"},"expires_in":"30d","rate_limit":"5/s"}`),
					check: func(t *testing.T, r response) {
						k := keyCreated(t, r)
						want := time.Now().Add(30 * 24 * time.Hour)
						if k.ExpiresAt == nil || k.ExpiresAt.Sub(want).Abs() > time.Minute {
							t.Errorf("expires_at %v, want about %v", k.ExpiresAt, want)
						}
						if k.Filter["source"] != "Vendor XYZ" || k.RateLimit != "5/s" || k.Status != "active" {
							t.Errorf("key %+v", k)
						}
					}},
				{name: "create expiring soon", req: post(api.KeysPath, admin, createBody(`,"expires_at":"`+soon+`","filter":null,"rate_limit":null`)),
					check: func(t *testing.T, r response) {
						if k := keyCreated(t, r); k.Status != "expiring" || k.ExpiresAt == nil {
							t.Errorf("key %+v", k)
						}
					}},
				{name: "admin:keys granted by a key that has it", req: post(api.KeysPath, narrow, `{"name":"sub-admin","scopes":["admin:keys"]}`),
					check: func(t *testing.T, r response) {
						if k := keyCreated(t, r); !slices.Equal(k.Scopes, []string{"admin:keys"}) || k.RateLimit != "100/10s" {
							t.Errorf("key %+v", k)
						}
					}},
				{name: "vendor admin's key inherits its filter", req: post(api.KeysPath, vendorAdmin, `{"name":"sub-vendor","scopes":["read:leads"]}`),
					check: func(t *testing.T, r response) {
						if k := keyCreated(t, r); k.Filter["source"] != "Vendor XYZ" {
							t.Errorf("filter %v", k.Filter)
						}
					}},
				{name: "vendor admin adds a field to its filter",
					req: post(api.KeysPath, vendorAdmin, `{"name":"sub-vendor","scopes":["read:leads"],"filter":{"source":"Vendor XYZ","status":"New"}}`),
					check: func(t *testing.T, r response) {
						if k := keyCreated(t, r); k.Filter["source"] != "Vendor XYZ" || k.Filter["status"] != "New" {
							t.Errorf("filter %v", k.Filter)
						}
					}},
				{name: "rotate", req: post(api.KeysPath+"/"+e.newKeyID(t, admin)+"/rotate", admin, `{}`), check: func(t *testing.T, r response) {
					k := keyCreated(t, r, "old_key")
					if k.OldKey == nil || k.OldKey.ID == k.ID || k.OldKey.Status != "expiring" || k.OldKey.ExpiresAt == nil {
						t.Fatalf("old key %+v", k.OldKey)
					}
					if d := time.Until(*k.OldKey.ExpiresAt) - 7*24*time.Hour; d.Abs() > time.Minute {
						t.Errorf("old key expires in %v, want 7 days", time.Until(*k.OldKey.ExpiresAt))
					}
					checkKeyShape(t, r.json(t)["old_key"].(map[string]any))
				}},
				{name: "rotate without a body", req: request{method: http.MethodPost, path: api.KeysPath + "/" + e.newKeyID(t, admin) + "/rotate", key: admin},
					check: func(t *testing.T, r response) { keyCreated(t, r, "old_key") }},
			}},
			{http.StatusBadRequest, []scenario{
				{name: "unknown field", req: post(api.KeysPath, admin, createBody(`,"bogus":1`)), msg: []string{`"bogus"`, "Accepted: name, scopes"}},
				{name: "hash asked for", req: post(api.KeysPath, admin, createBody(`,"hash":"x"`)), msg: []string{`"hash"`}},
				{name: "name of the wrong type", req: post(api.KeysPath, admin, `{"name":5,"scopes":["read:leads"]}`), msg: []string{"name", "a number"}},
				{name: "no name", req: post(api.KeysPath, admin, `{"scopes":["read:leads"]}`), msg: []string{"name", "required"}},
				{name: "blank name", req: post(api.KeysPath, admin, `{"name":"  ","scopes":["read:leads"]}`), msg: []string{"name"}},
				{name: "scopes not an array", req: post(api.KeysPath, admin, `{"name":"x","scopes":"read:leads"}`), msg: []string{"scopes", "array"}},
				{name: "scope not a string", req: post(api.KeysPath, admin, `{"name":"x","scopes":["read:leads",1]}`), msg: []string{"scopes", "item 1"}},
				{name: "no scopes", req: post(api.KeysPath, admin, `{"name":"x"}`), msg: []string{"scopes", "required"}},
				{name: "empty scopes", req: post(api.KeysPath, admin, `{"name":"x","scopes":[]}`), msg: []string{"scopes"}},
				{name: "unknown scope", req: post(api.KeysPath, admin, `{"name":"x","scopes":["read:everything"]}`), msg: []string{"scopes", "read:everything"}},
				{name: "escalation: a scope the caller lacks", req: post(api.KeysPath, narrow, `{"name":"x","scopes":["read:leads","write:leads"]}`),
					msg: []string{"scopes", "write:leads", "calling key"}},
				{name: "escalation: vendor admin drops its filter", req: post(api.KeysPath, vendorAdmin, `{"name":"x","scopes":["read:leads"],"filter":{"source":"Web"}}`),
					msg: []string{"filter", "Vendor XYZ"}},
				{name: "escalation: a higher rate limit", req: post(api.KeysPath, narrow, `{"name":"x","scopes":["read:leads"],"rate_limit":"1000/s"}`),
					msg: []string{"rate_limit", "100/10s"}},
				{name: "filter not an object", req: post(api.KeysPath, admin, createBody(`,"filter":"source=x"`)), msg: []string{"filter", "a string"}},
				{name: "filter value not a string", req: post(api.KeysPath, admin, createBody(`,"filter":{"source":1}`)), msg: []string{"filter", "source"}},
				{name: "filter on an unknown field", req: post(api.KeysPath, admin, createBody(`,"filter":{"nope":"x"}`)), msg: []string{"filter", "nope"}},
				{name: "filter with read:usage", req: post(api.KeysPath, admin, `{"name":"x","scopes":["read:usage"],"filter":{"source":"V"}}`),
					msg: []string{"scopes", "read:usage"}},
				{name: "filter with a resource lacking the field", req: post(api.KeysPath, admin, `{"name":"x","scopes":["read:notes"],"filter":{"source":"V"}}`),
					msg: []string{"scopes", "notes", "source"}},
				{name: "expires_at and expires_in", req: post(api.KeysPath, admin, createBody(`,"expires_at":"`+soon+`","expires_in":"30d"`)),
					msg: []string{"expires_in", "expires_at"}},
				{name: "expires_in not a duration", req: post(api.KeysPath, admin, createBody(`,"expires_in":"soon"`)), msg: []string{"expires_in", "soon"}},
				{name: "expires_in zero", req: post(api.KeysPath, admin, createBody(`,"expires_in":"0s"`)), msg: []string{"expires_in"}},
				{name: "expires_in negative", req: post(api.KeysPath, admin, createBody(`,"expires_in":"-5h"`)), msg: []string{"expires_in"}},
				{name: "expires_in a number", req: post(api.KeysPath, admin, createBody(`,"expires_in":720`)), msg: []string{"expires_in", "a number"}},
				{name: "expires_at not a time", req: post(api.KeysPath, admin, createBody(`,"expires_at":"tomorrow"`)), msg: []string{"expires_at", "RFC 3339"}},
				{name: "expires_at in the past", req: post(api.KeysPath, admin, createBody(`,"expires_at":"2020-01-01T00:00:00Z"`)), msg: []string{"expires_at", "future"}},
				{name: "rate_limit malformed", req: post(api.KeysPath, admin, createBody(`,"rate_limit":"fast"`)), msg: []string{"rate_limit", "fast"}},
				{name: "rate_limit a number", req: post(api.KeysPath, admin, createBody(`,"rate_limit":100`)), msg: []string{"rate_limit", "a number"}},
				{name: "body an array", req: post(api.KeysPath, admin, `[]`), msg: []string{"JSON object"}},
				{name: "body not JSON", req: post(api.KeysPath, admin, `{"name":`), msg: []string{"not valid JSON"}},
				{name: "no body", req: request{method: http.MethodPost, path: api.KeysPath, key: admin}, msg: []string{"empty"}},
				{name: "rotate: expire_old_in malformed", req: post(api.KeysPath+"/"+target.ID+"/rotate", admin, `{"expire_old_in":"tomorrow"}`),
					msg: []string{"expire_old_in"}},
				{name: "rotate: expire_old_in too long", req: post(api.KeysPath+"/"+target.ID+"/rotate", admin, `{"expire_old_in":"91d"}`),
					msg: []string{"expire_old_in", "90 days"}},
				{name: "rotate: expire_old_in a number", req: post(api.KeysPath+"/"+target.ID+"/rotate", admin, `{"expire_old_in":168}`),
					msg: []string{"expire_old_in", "a number"}},
				{name: "rotate: unknown field", req: post(api.KeysPath+"/"+target.ID+"/rotate", admin, `{"overlap":"1h"}`), msg: []string{`"overlap"`}},
				{name: "rotate: body an array", req: post(api.KeysPath+"/"+target.ID+"/rotate", admin, `[]`)},
				{name: "policy: a field missing", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":30,"require_expiry":true}`),
					msg: []string{"disable_unused_after_days", "required"}},
				{name: "policy: null", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":null,"require_expiry":true,"disable_unused_after_days":0}`),
					msg: []string{"max_key_lifetime_days"}},
				{name: "policy: days a string", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":"30","require_expiry":true,"disable_unused_after_days":0}`),
					msg: []string{"max_key_lifetime_days", "a string"}},
				{name: "policy: days a fraction", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":1.5,"require_expiry":true,"disable_unused_after_days":0}`),
					msg: []string{"max_key_lifetime_days", "1.5"}},
				{name: "policy: days negative", req: put(api.KeyPolicyPath, admin, policy(-1, false, 0)), msg: []string{"max_key_lifetime_days"}},
				{name: "policy: days too many", req: put(api.KeyPolicyPath, admin, policy(0, false, 100000)), msg: []string{"disable_unused_after_days"}},
				{name: "policy: days huge", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":1e400,"require_expiry":true,"disable_unused_after_days":0}`),
					msg: []string{"max_key_lifetime_days"}},
				{name: "policy: require_expiry a string", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":0,"require_expiry":"yes","disable_unused_after_days":0}`),
					msg: []string{"require_expiry", "true or false"}},
				{name: "policy: unknown field", req: put(api.KeyPolicyPath, admin, `{"max_key_lifetime_days":0,"require_expiry":false,"disable_unused_after_days":0,"x":1}`),
					msg: []string{`"x"`}},
				{name: "list with a parameter", req: get(api.KeysPath+"?limit=5", admin), msg: []string{`"limit"`}},
			}},
			{http.StatusForbidden, []scenario{
				{name: "list without admin:keys", req: get(api.KeysPath, noAdmin)},
				{name: "get without admin:keys", req: get(api.KeysPath+"/"+target.ID, noAdmin)},
				{name: "create without admin:keys", req: post(api.KeysPath, noAdmin, createBody(""))},
				{name: "revoke without admin:keys", req: post(api.KeysPath+"/"+target.ID+"/revoke", noAdmin, "")},
				{name: "rotate without admin:keys", req: post(api.KeysPath+"/"+target.ID+"/rotate", noAdmin, `{}`)},
				{name: "get policy without admin:keys", req: get(api.KeyPolicyPath, noAdmin)},
				{name: "put policy without admin:keys", req: put(api.KeyPolicyPath, noAdmin, policy(0, false, 0))},
				{name: "put policy by a vendor admin", req: put(api.KeyPolicyPath, vendorAdmin, policy(0, false, 0)), msg: []string{"record filter"}},
			}},
			{http.StatusNotFound, []scenario{
				{name: "get a key of another workspace", req: get(api.KeysPath+"/"+e.keyBID, admin)},
				{name: "revoke a key of another workspace", req: post(api.KeysPath+"/"+e.keyBID+"/revoke", admin, "")},
				{name: "rotate a key of another workspace", req: post(api.KeysPath+"/"+e.keyBID+"/rotate", admin, `{}`)},
				{name: "get a key with more scopes", req: get(api.KeysPath+"/"+e.keyAID, narrow)},
				{name: "revoke a key with more scopes", req: post(api.KeysPath+"/"+e.keyAID+"/revoke", narrow, "")},
				{name: "rotate a key with more scopes", req: post(api.KeysPath+"/"+e.keyAID+"/rotate", narrow, "")},
				{name: "get an unfiltered key as vendor admin", req: get(api.KeysPath+"/"+target.ID, vendorAdmin)},
				{name: "get a missing key", req: get(api.KeysPath+"/"+missing, admin)},
				{name: "get a malformed id", req: get(api.KeysPath+"/not-an-id", admin)},
				{name: "revoke a missing key", req: post(api.KeysPath+"/"+missing+"/revoke", admin, "")},
			}},
			{http.StatusConflict, []scenario{
				{name: "rotate a revoked key", req: post(api.KeysPath+"/"+revokedTarget.ID+"/rotate", admin, `{}`), msg: []string{"revoked"}},
			}},
			{http.StatusGone, []scenario{
				{name: "list with a revoked key", req: get(api.KeysPath, e.revoked), code: "revoked_key"},
				{name: "create with an expired key", req: post(api.KeysPath, e.expired, createBody("")), code: "expired_key"},
			}},
			{http.StatusUnsupportedMediaType, []scenario{
				{name: "create as text/plain", req: request{method: http.MethodPost, path: api.KeysPath, key: admin, body: jsonBody(createBody("")),
					header: map[string]string{"Content-Type": "text/plain"}}},
				{name: "rotate as text/plain without a body", req: request{method: http.MethodPost, path: api.KeysPath + "/" + target.ID + "/rotate", key: admin,
					header: map[string]string{"Content-Type": "text/plain"}}},
			}},
		})

		// Nothing of the above touched B's key or the unmanaged ones.
		for _, key := range []string{e.keyB, admin} {
			if st, _ := e.meStatus(t, key); st != http.StatusOK {
				t.Errorf("a key answers %d after the table", st)
			}
		}

		t.Run("the key is shown once", func(t *testing.T) {
			r := e.do(t, post(api.KeysPath, admin, `{"name":"once","scopes":["read:leads"]}`))
			k := keyCreated(t, r)
			raw := *k.Key
			if st, _ := e.meStatus(t, raw); st != http.StatusOK {
				t.Fatalf("the new key answers %d", st)
			}
			for _, rq := range []request{get(api.KeysPath, admin), get(api.KeysPath+"/"+k.ID, admin), post(api.KeysPath+"/"+k.ID+"/revoke", admin, "")} {
				got := e.do(t, rq)
				if got.status != http.StatusOK || strings.Contains(string(got.body), raw) || strings.Contains(string(got.body), `"key":`) {
					t.Errorf("%s %s: status %d, body shows the key: %s", rq.method, rq.path, got.status, clip(got.body))
				}
			}
			if !strings.Contains(string(e.do(t, get(api.KeysPath, admin)).body), k.Prefix) {
				t.Error("list does not show the prefix")
			}
		})

		t.Run("a replayed creation does not show the key again, nor store it", func(t *testing.T) {
			rq := func() request {
				r := post(api.KeysPath, admin, `{"name":"idempotent","scopes":["read:leads"]}`)
				r.header = map[string]string{"Idempotency-Key": "create-key-1"}
				return r
			}
			first := e.do(t, rq())
			k := keyCreated(t, first)
			again := e.do(t, rq())
			if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay: status %d, replayed %q", again.status, again.header.Get("Idempotent-Replayed"))
			}
			checkKeyShape(t, again.json(t), "key")
			if k2 := decodeKey(t, again.body); k2.ID != k.ID || k2.Key != nil || again.header.Get("Location") != api.KeysPath+"/"+k.ID {
				t.Errorf("replay: id %s (want %s), key %v, Location %q", k2.ID, k.ID, k2.Key, again.header.Get("Location"))
			}
			stored, err := e.backend.FindIdempotencyKey(t.Context(), e.wsA.ID, "create-key-1")
			if err != nil {
				t.Fatal(err)
			}
			if len(stored.Response.Body) == 0 || strings.Contains(string(stored.Response.Body), *k.Key) ||
				strings.Contains(string(stored.Response.Body), (*k.Key)[len(store.KeyPrefix):]) {
				t.Errorf("stored response holds the key: %s", stored.Response.Body)
			}
			n := 0
			for _, id := range listIDs(t, e.do(t, get(api.KeysPath, admin))) {
				if id == k.ID {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the key is listed %d times, want once", n)
			}
			var names int
			for _, m := range decodeKeys(t, e.do(t, get(api.KeysPath, admin))) {
				if m.Name == "idempotent" {
					names++
				}
			}
			if names != 1 {
				t.Errorf("%d keys named idempotent, want 1: the replay created a key", names)
			}

			// The same for a rotation.
			rot := func() request {
				r := post(api.KeysPath+"/"+k.ID+"/rotate", admin, `{"expire_old_in":"1h"}`)
				r.header = map[string]string{"Idempotency-Key": "rotate-key-1"}
				return r
			}
			rotated := keyCreated(t, e.do(t, rot()), "old_key")
			replayed := e.do(t, rot())
			if got := decodeKey(t, replayed.body); replayed.status != http.StatusCreated || got.ID != rotated.ID || got.Key != nil ||
				got.OldKey == nil || got.OldKey.ID != k.ID || replayed.header.Get("Location") != api.KeysPath+"/"+rotated.ID {
				t.Errorf("rotation replay: %d %s", replayed.status, clip(replayed.body))
			}
			stored, err = e.backend.FindIdempotencyKey(t.Context(), e.wsA.ID, "rotate-key-1")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(stored.Response.Body), (*rotated.Key)[len(store.KeyPrefix):]) {
				t.Errorf("stored rotation holds the key: %s", stored.Response.Body)
			}
		})

		t.Run("rotate: the old key works until expire_old_in, then answers 410", func(t *testing.T) {
			created := keyCreated(t, e.do(t, post(api.KeysPath, admin, `{"name":"rotating","scopes":["read:leads","write:leads"],"filter":{"source":"Web"},"rate_limit":"7/s"}`)))
			oldRaw := *created.Key
			r := e.do(t, post(api.KeysPath+"/"+created.ID+"/rotate", admin, `{"expire_old_in":"168h"}`))
			if r.status != http.StatusCreated {
				t.Fatalf("rotate: %d %s", r.status, clip(r.body))
			}
			rot := keyCreated(t, r, "old_key")
			if rot.Name != "rotating" || !slices.Equal(rot.Scopes, created.Scopes) || rot.Filter["source"] != "Web" || rot.RateLimit != "7/s" || rot.ID == created.ID {
				t.Errorf("new key %+v, old %+v", rot, created)
			}
			if rot.OldKey.ID != created.ID || rot.OldKey.ExpiresAt == nil || (time.Until(*rot.OldKey.ExpiresAt)-168*time.Hour).Abs() > time.Minute {
				t.Errorf("old key %+v", rot.OldKey)
			}
			for _, key := range []string{oldRaw, *rot.Key} {
				if st, _ := e.meStatus(t, key); st != http.StatusOK {
					t.Errorf("during the overlap a key answers %d", st)
				}
			}
			// Rotating the old key again, ending it now.
			r = e.do(t, post(api.KeysPath+"/"+created.ID+"/rotate", admin, `{"expire_old_in":"now"}`))
			if r.status != http.StatusCreated {
				t.Fatalf("rotate now: %d %s", r.status, clip(r.body))
			}
			now := keyCreated(t, r, "old_key")
			if now.OldKey.Status != "expired" {
				t.Errorf("old key status %q", now.OldKey.Status)
			}
			if st, code := e.meStatus(t, oldRaw); st != http.StatusGone || code != "expired_key" {
				t.Errorf("old key after expire_old_in now: %d %s", st, code)
			}
			for _, key := range []string{*rot.Key, *now.Key} {
				if st, _ := e.meStatus(t, key); st != http.StatusOK {
					t.Errorf("a new key answers %d", st)
				}
			}
			got := decodeKey(t, e.do(t, get(api.KeysPath+"/"+created.ID, admin)).body)
			if got.Status != "expired" {
				t.Errorf("old key listed as %q", got.Status)
			}
			// An expired key cannot be rotated.
			if r := e.do(t, post(api.KeysPath+"/"+created.ID+"/rotate", admin, `{}`)); r.status != http.StatusConflict {
				t.Errorf("rotating an expired key: %d", r.status)
			}
		})

		t.Run("revoke: the key answers 410 on its next request", func(t *testing.T) {
			k := keyCreated(t, e.do(t, post(api.KeysPath, admin, `{"name":"doomed","scopes":["read:leads"]}`)))
			if st, _ := e.meStatus(t, *k.Key); st != http.StatusOK {
				t.Fatalf("new key answers %d", st)
			}
			r := e.do(t, post(api.KeysPath+"/"+k.ID+"/revoke", admin, ""))
			checkKeyShape(t, r.json(t))
			if got := decodeKey(t, r.body); r.status != http.StatusOK || got.Status != "revoked" || got.RevokedAt == nil {
				t.Fatalf("revoke: %d %s", r.status, clip(r.body))
			}
			if st, code := e.meStatus(t, *k.Key); st != http.StatusGone || code != "revoked_key" {
				t.Errorf("revoked key answers %d %s", st, code)
			}
			// A key may revoke itself.
			self := keyCreated(t, e.do(t, post(api.KeysPath, admin, `{"name":"self","scopes":["admin:keys"]}`)))
			if r := e.do(t, post(api.KeysPath+"/"+self.ID+"/revoke", *self.Key, "")); r.status != http.StatusOK {
				t.Fatalf("self revoke: %d", r.status)
			}
			if r := e.do(t, get(api.KeysPath, *self.Key)); r.status != http.StatusGone {
				t.Errorf("self-revoked key answers %d", r.status)
			}
		})

		t.Run("policy", func(t *testing.T) {
			want := store.KeyPolicy{MaxLifetimeDays: 30, RequireExpiry: true, DisableUnusedDays: 90}
			r := e.do(t, put(api.KeyPolicyPath, admin, policy(30, true, 90)))
			if r.status != http.StatusOK || decodePolicy(t, r) != want {
				t.Fatalf("put: %d %s", r.status, r.body)
			}
			if r := e.do(t, get(api.KeyPolicyPath, admin)); decodePolicy(t, r) != want {
				t.Errorf("get after put: %s", r.body)
			}
			if r := e.do(t, get(api.KeyPolicyPath, e.keyB)); decodePolicy(t, r) != (store.KeyPolicy{}) {
				t.Errorf("workspace B's policy changed: %s", r.body)
			}
			for _, c := range []struct{ body, msg string }{
				{`{"name":"x","scopes":["read:leads"]}`, "key policy"},
				{`{"name":"x","scopes":["read:leads"],"expires_at":"` + later + `"}`, "maximum key lifetime of 30 days"},
				{`{"name":"x","scopes":["read:leads"],"expires_in":"31d"}`, "maximum key lifetime of 30 days"},
			} {
				r := e.do(t, post(api.KeysPath, admin, c.body))
				if r.status != http.StatusBadRequest {
					t.Errorf("%s: status %d, want 400", c.body, r.status)
					continue
				}
				checkError(t, r, "bad_request", "expires_at", c.msg)
			}
			if r := e.do(t, post(api.KeysPath, admin, `{"name":"x","scopes":["read:leads"],"expires_in":"10d"}`)); r.status != http.StatusCreated {
				t.Errorf("a key within the policy: %d %s", r.status, clip(r.body))
			}
			if r := e.do(t, put(api.KeyPolicyPath, admin, policy(0, false, 0))); r.status != http.StatusOK {
				t.Errorf("reset: %d", r.status)
			}
		})
	})
}

// decodePolicy decodes a key policy, which must have exactly its three
// members.
func decodePolicy(t *testing.T, r response) store.KeyPolicy {
	t.Helper()
	if m := r.json(t); len(m) != 3 {
		t.Errorf("policy members: %s", r.body)
	}
	var p store.KeyPolicy
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode policy: %v: %s", err, clip(r.body))
	}
	return p
}

// decodeKeys decodes a key list.
func decodeKeys(t *testing.T, r response) []keyInfo {
	t.Helper()
	var l struct {
		Data []keyInfo `json:"data"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("decode key list: %v: %s", err, clip(r.body))
	}
	return l.Data
}

func put(path, key, body string) request {
	return request{method: http.MethodPut, path: path, key: key, body: jsonBody(body)}
}

// newKeyID creates a key of workspace A through the admin API and returns
// its id.
func (e *env) newKeyID(t *testing.T, admin string) string {
	t.Helper()
	r := e.do(t, request{method: http.MethodPost, path: api.KeysPath, key: admin, body: jsonBody(`{"name":"to rotate","scopes":["read:leads"]}`)})
	if r.status != http.StatusCreated {
		t.Fatalf("create key: %d %s", r.status, clip(r.body))
	}
	return decodeKey(t, r.body).ID
}
