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

// TestSecurity walks the operation table: every operation, through its REST
// route, with no key, a revoked key, an expired key, a key lacking the
// operation's scope, a key holding only that scope (for a webhook
// operation, with the read scope of the subscription's events), and a key
// of another workspace. An operation without a route or without a
// cross-workspace rule here fails the test.
func TestSecurity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		// Webhook targets are loopback addresses that nothing delivers to.
		e := newEnv(t, open(t), withServiceOptions(store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true})))
		ctx := t.Context()

		// Workspace A has one record of every resource, some usage and a
		// webhook subscription; workspace B has a record of every resource,
		// a subscription and no usage.
		recA, recB := map[string]*store.Record{}, map[string]*store.Record{}
		for _, r := range store.Resources {
			recA[r.Name] = e.create(e.keyA, r, minimalBody(r))
			recB[r.Name] = e.create(e.keyB, r, minimalBody(r))
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		var evs []store.UsageEvent
		for i := range 3 {
			evs = append(evs, store.UsageEvent{ID: store.NewID(), WorkspaceID: e.wsA.ID, KeyID: e.keyAID, Method: "GET",
				Route: "/api/v1/accounts", Status: 200, DurationMS: 1, Time: now.Add(-time.Duration(i) * time.Minute),
				RequestID: store.NewID(), Transport: store.TransportREST, UserAgent: "test"})
		}
		if err := e.svc.RecordUsage(ctx, evs); err != nil {
			t.Fatalf("RecordUsage: %v", err)
		}
		securityWebhook(t, e, e.keyA)
		securityWebhook(t, e, e.keyB)

		routes := map[string]api.Route{}
		for _, rt := range api.Routes() {
			routes[rt.Operation.Name] = rt
		}
		for _, op := range store.Operations {
			t.Run(op.Name, func(t *testing.T) {
				rt, ok := routes[op.Name]
				if !ok {
					t.Fatalf("operation %s has no REST route", op.Name)
				}
				req := func(key string) request { return securityRequest(t, e, rt, key, recA) }
				expectError := func(t *testing.T, r response, status int, code, msg string) {
					t.Helper()
					if r.status != status {
						t.Fatalf("status %d, want %d: %s", r.status, status, clip(r.body))
					}
					checkError(t, r, code, msg)
				}
				ok2xx := func(t *testing.T, r response) {
					t.Helper()
					var want []int // the route's successes
					for _, resp := range rt.Responses {
						if resp.Status < 300 {
							want = append(want, resp.Status)
						}
					}
					if !slices.Contains(want, r.status) {
						t.Fatalf("status %d, want %v: %s", r.status, want, clip(r.body))
					}
				}

				t.Run("no key", func(t *testing.T) {
					expectError(t, e.do(t, req("")), 401, "unauthorized", "Missing API key.")
				})
				t.Run("revoked key", func(t *testing.T) {
					expectError(t, e.do(t, req(e.revoked)), 410, "revoked_key", "This API key has been revoked.")
				})
				t.Run("expired key", func(t *testing.T) {
					expectError(t, e.do(t, req(e.expired)), 410, "expired_key", "This API key has expired.")
				})
				t.Run("key without the scope", func(t *testing.T) {
					r := e.do(t, req(e.keyWithout(op.Scope)))
					if op.Scope == "" { // any valid key may call it
						ok2xx(t, r)
						return
					}
					expectError(t, r, 403, "forbidden", "API key does not have the required scope.")
				})
				t.Run("key with only the scope", func(t *testing.T) {
					scopes := []store.Scope{op.Scope}
					if op.Scope == "" {
						scopes = []store.Scope{store.ReadScope("notes")}
					}
					if isWebhookRoute(rt) {
						// A subscription's events need a read scope, and a
						// key manages only the subscriptions whose events it
						// could receive (securityWebhook's are note.*).
						scopes = append(scopes, store.ReadScope("notes"))
					}
					_, raw := e.newKey(e.svc, e.wsA.ID, scopes, nil)
					r := e.do(t, req(raw))
					ok2xx(t, r)
					checkOwnWorkspace(t, e, op, r)
				})
				t.Run("key of another workspace", func(t *testing.T) {
					var before response // A's record as A sees it, for writes by id
					if op.Resource != nil {
						before = e.do(t, request{method: http.MethodGet, path: "/api/v1/" + op.Resource.Name + "/" + recA[op.Resource.Name].ID, key: e.keyA})
					}
					policyA := e.do(t, request{method: http.MethodGet, path: api.KeyPolicyPath, key: e.keyA})
					r := e.do(t, req(e.keyB))
					checkOtherWorkspace(t, e, op, r, recA, recB)
					if after := e.do(t, request{method: http.MethodGet, path: api.KeyPolicyPath, key: e.keyA}); string(after.body) != string(policyA.body) {
						t.Errorf("A's key policy changed: %s, was %s", after.body, policyA.body)
					}
					if op.Resource != nil {
						after := e.do(t, request{method: http.MethodGet, path: before.path, key: e.keyA})
						if after.status != http.StatusOK || string(after.body) != string(before.body) {
							t.Errorf("A's record changed:\n%s\nwant\n%s", after.body, before.body)
						}
					}
				})
			})
		}
	})
}

// securityExternalID is the external id the upsert routes are called with.
func securityExternalID(r *store.Resource) string { return "security-" + r.Singular }

// securityRequest builds a valid request for route rt about workspace A's
// records: ids name A's records (a delete names a new record of A, with
// nothing referencing it), bodies reference A's records. Key routes name a
// new key of A that a key holding only admin:keys manages.
func securityRequest(t *testing.T, e *env, rt api.Route, key string, recA map[string]*store.Record) request {
	t.Helper()
	r := rt.Operation.Resource
	if isWebhookRoute(rt) {
		return securityWebhookRequest(t, e, rt, key)
	}
	if r == nil {
		return securityKeyRequest(t, e, rt, key)
	}
	path := rt.Path
	if strings.Contains(path, "/:id") {
		id := recA[r.Name].ID
		if rt.Operation.Action == store.ActionDelete {
			id = e.create(e.keyA, r, minimalBody(r)).ID
		}
		path = strings.Replace(path, ":id", id, 1)
	}
	if strings.Contains(path, ":"+store.ExternalIDField) {
		path = strings.Replace(path, ":"+store.ExternalIDField, securityExternalID(r), 1)
	}
	rq := request{method: rt.Method, path: path, key: key}
	// A body naming workspace A: by reference where the resource has one,
	// else by a workspace_id, which is ignored.
	body := func() map[string]any {
		body := minimalBody(r)
		if f, ok := firstRef(r); ok {
			body[f.Name] = recA[f.Ref].ID
		} else {
			body["workspace_id"] = recA[r.Name].WorkspaceID
		}
		return body
	}
	switch rt.BodyKind {
	case api.BodyRecord, api.BodyUpsert:
		rq.body = jsonBody(mustJSON(t, body()))
	case api.BodyPatch:
		// No reference: another workspace's key must get not_found for
		// the id itself (references are covered by the other writes).
		b := minimalBody(r)
		b["workspace_id"] = recA[r.Name].WorkspaceID
		rq.body = jsonBody(mustJSON(t, b))
	case api.BodyBatch:
		rq.body = jsonBody(mustJSON(t, map[string]any{"records": []any{body()}}))
	case api.BodyBatchUpsert:
		b := body()
		b[store.ExternalIDField] = securityExternalID(r) + "-batch"
		rq.body = jsonBody(mustJSON(t, map[string]any{"records": []any{b}}))
	case api.BodyNone:
	default:
		t.Fatalf("route %s %s: body kind %q has no request in this test: add one", rt.Method, rt.Path, rt.BodyKind)
	}
	return rq
}

func firstRef(r *store.Resource) (store.Field, bool) {
	for _, f := range r.Fields {
		if f.Type == store.FieldRef {
			return f, true
		}
	}
	return store.Field{}, false
}

type listBody struct {
	Data []struct {
		ID          string `json:"id"`
		KeyID       string `json:"key_id"`
		WorkspaceID string `json:"workspace_id"`
		Group       string `json:"group"`
		Count       int64  `json:"count"`
	} `json:"data"`
}

func decodeList(t *testing.T, r response) listBody {
	t.Helper()
	var l listBody
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("decode %s: %v", clip(r.body), err)
	}
	return l
}

// checkOwnWorkspace checks that a successful answer to workspace A's key
// shows A's data, so that the other-workspace checks below cannot pass on an
// empty answer.
func checkOwnWorkspace(t *testing.T, e *env, op store.Operation, r response) {
	t.Helper()
	switch op.Action {
	case store.ActionList, store.ActionUsageLogs, store.ActionUsageCounts, store.ActionListKeys,
		store.ActionListWebhooks, store.ActionListDeliveries:
		if len(decodeList(t, r).Data) == 0 {
			t.Errorf("workspace A sees no data: %s", clip(r.body))
		}
	case store.ActionWhoami:
		if ws := r.json(t)["workspace"].(map[string]any); ws["id"] != e.wsA.ID {
			t.Errorf("workspace %v, want %s", ws, e.wsA.ID)
		}
	case store.ActionBatchCreate, store.ActionBatchUpsert:
		for _, it := range decodeBatch(t, r).Results {
			if it.Status != http.StatusCreated && it.Status != http.StatusOK {
				t.Errorf("workspace A's batch item failed: %s", clip(r.body))
			}
		}
	}
}

type batchBody struct {
	Results []struct {
		Index  int            `json:"index"`
		Status int            `json:"status"`
		Data   map[string]any `json:"data"`
		Error  *struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

func decodeBatch(t *testing.T, r response) batchBody {
	t.Helper()
	var b batchBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("decode batch response: %v: %s", err, clip(r.body))
	}
	return b
}

// checkOtherWorkspace checks what workspace B's key gets when it asks about
// workspace A's records: nothing of A, ever.
func checkOtherWorkspace(t *testing.T, e *env, op store.Operation, r response, recA, recB map[string]*store.Record) {
	t.Helper()
	switch op.Action {
	case store.ActionGet:
		if r.status != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %s", r.status, clip(r.body))
		}
		checkError(t, r, "not_found", "not found")
	case store.ActionList:
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, clip(r.body))
		}
		l := decodeList(t, r)
		var sawB bool
		for _, d := range l.Data {
			if d.ID == recA[op.Resource.Name].ID {
				t.Errorf("workspace B lists workspace A's record %s", d.ID)
			}
			sawB = sawB || d.ID == recB[op.Resource.Name].ID
		}
		if !sawB {
			t.Errorf("workspace B does not see its own record")
		}
	case store.ActionCreate:
		if f, ok := firstRef(op.Resource); ok {
			if r.status != http.StatusBadRequest {
				t.Fatalf("reference to another workspace: status %d, want 400: %s", r.status, clip(r.body))
			}
			checkError(t, r, "bad_request", f.Name)
			return
		}
		// No reference to misuse: the workspace_id of A in the body is
		// ignored and the record lands in B.
		if r.status != http.StatusCreated {
			t.Fatalf("status %d, want 201: %s", r.status, clip(r.body))
		}
		id, _ := r.json(t)["id"].(string)
		path := "/api/v1/" + op.Resource.Name + "/" + id
		if got := e.do(t, request{method: http.MethodGet, path: path, key: e.keyA}); got.status != http.StatusNotFound {
			t.Errorf("workspace A reads the record: status %d", got.status)
		}
		if got := e.do(t, request{method: http.MethodGet, path: path, key: e.keyB}); got.status != http.StatusOK {
			t.Errorf("workspace B cannot read its record: status %d", got.status)
		}
	case store.ActionWhoami:
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, clip(r.body))
		}
		if ws := r.json(t)["workspace"].(map[string]any); ws["id"] != e.wsB.ID || ws["name"] != e.wsB.Name {
			t.Errorf("workspace %v, want B (%s)", ws, e.wsB.ID)
		}
	case store.ActionUsageCounts, store.ActionUsageLogs:
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, clip(r.body))
		}
		if l := decodeList(t, r); len(l.Data) != 0 {
			t.Errorf("workspace B sees usage of A: %s", clip(r.body))
		}
		// Naming A's key explicitly changes nothing.
		path := map[store.Action]string{store.ActionUsageCounts: "/api/v1/usage?group_by=key&key_id=", store.ActionUsageLogs: "/api/v1/usage/logs?key_id="}[op.Action]
		r2 := e.do(t, request{method: http.MethodGet, path: path + e.keyAID, key: e.keyB})
		if l := decodeList(t, r2); r2.status != http.StatusOK || len(l.Data) != 0 {
			t.Errorf("workspace B filtering by A's key: status %d: %s", r2.status, clip(r2.body))
		}
	case store.ActionUpdate, store.ActionDelete:
		// A's record: not found, and untouched.
		if r.status != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %s", r.status, clip(r.body))
		}
		checkError(t, r, "not_found", "not found")
		if op.Action == store.ActionDelete { // the request named a new record of A: still there
			id := strings.TrimPrefix(r.path, "/api/v1/"+op.Resource.Name+"/")
			e.get(t, e.keyA, op.Resource, id)
		}
	case store.ActionUpsert, store.ActionBatchUpsert, store.ActionBatchCreate:
		checkOtherWorkspaceWrite(t, e, op, r, recA)
	case store.ActionListKeys:
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, clip(r.body))
		}
		var sawB bool
		for _, k := range decodeKeys(t, r) {
			if k.WorkspaceID != e.wsB.ID {
				t.Errorf("workspace B lists key %s of workspace %s", k.ID, k.WorkspaceID)
			}
			sawB = sawB || k.ID == e.keyBID
		}
		if !sawB {
			t.Error("workspace B does not see its own key")
		}
	case store.ActionGetKey, store.ActionRevokeKey, store.ActionRotateKey:
		// A's key: not found, and still active and unrotated.
		if r.status != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %s", r.status, clip(r.body))
		}
		checkError(t, r, "not_found", "not found")
		id := strings.Split(strings.TrimPrefix(r.path, api.KeysPath+"/"), "/")[0]
		got := e.do(t, request{method: http.MethodGet, path: api.KeysPath + "/" + id, key: e.keyA})
		if k := decodeKey(t, got.body); got.status != http.StatusOK || k.Status != "active" || k.ExpiresAt != nil {
			t.Errorf("A's key after B's request: %d %s", got.status, clip(got.body))
		}
	case store.ActionCreateKey:
		if r.status != http.StatusCreated {
			t.Fatalf("status %d, want 201: %s", r.status, clip(r.body))
		}
		if k := decodeKey(t, r.body); k.WorkspaceID != e.wsB.ID {
			t.Errorf("B's new key is in workspace %s", k.WorkspaceID)
		}
	case store.ActionGetPolicy, store.ActionUpdatePolicy:
		// B's own policy; A's is checked unchanged by the caller.
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, clip(r.body))
		}
	case store.ActionListWebhooks:
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", r.status, clip(r.body))
		}
		l := decodeList(t, r)
		if len(l.Data) == 0 {
			t.Error("workspace B does not see its own subscription")
		}
		for _, w := range l.Data {
			if w.WorkspaceID != e.wsB.ID {
				t.Errorf("workspace B lists subscription %s of workspace %s", w.ID, w.WorkspaceID)
			}
		}
	case store.ActionCreateWebhook:
		if r.status != http.StatusCreated {
			t.Fatalf("status %d, want 201: %s", r.status, clip(r.body))
		}
		if ws := r.json(t)["workspace_id"]; ws != e.wsB.ID {
			t.Errorf("B's new subscription is in workspace %v", ws)
		}
	case store.ActionGetWebhook, store.ActionUpdateWebhook, store.ActionDeleteWebhook, store.ActionListDeliveries,
		store.ActionReplayDelivery, store.ActionTestWebhook:
		// A's subscription: not found, unchanged, and sent nothing more.
		if r.status != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %s", r.status, clip(r.body))
		}
		checkError(t, r, "not_found", "not found")
		id := strings.Split(strings.TrimPrefix(r.path, api.WebhooksPath+"/"), "/")[0]
		got := e.do(t, request{method: http.MethodGet, path: api.WebhooksPath + "/" + id, key: e.keyA})
		if w := got.json(t); got.status != http.StatusOK || w["description"] != "" || w["enabled"] != true {
			t.Errorf("A's subscription after B's request: %d %s", got.status, clip(got.body))
		}
		ds := e.do(t, request{method: http.MethodGet, path: api.WebhooksPath + "/" + id + "/deliveries", key: e.keyA})
		if n := len(decodeList(t, ds).Data); ds.status != http.StatusOK || n != 1 {
			t.Errorf("A's subscription has %d deliveries after B's request, want 1: %s", n, clip(ds.body))
		}
	default:
		t.Errorf("operation %s (action %s) has no cross-workspace rule in this test: add one", op.Name, op.Action)
	}
}

// securityKeyRequest builds a valid request for a key administration route:
// a path naming a new key of workspace A with the scope admin:keys only (so
// that a key holding only that scope manages it), and a valid body.
func securityKeyRequest(t *testing.T, e *env, rt api.Route, key string) request {
	t.Helper()
	path := rt.Path
	if strings.Contains(path, "/:id") {
		k, _ := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ScopeAdminKeys}, nil)
		path = strings.Replace(path, ":id", k.ID, 1)
	}
	rq := request{method: rt.Method, path: path, key: key}
	switch rt.BodyKind {
	case api.BodyKeyCreate:
		rq.body = jsonBody(`{"name":"security","scopes":["admin:keys"],"expires_in":"30d"}`)
	case api.BodyKeyRotate:
		rq.body = jsonBody(`{"expire_old_in":"1h"}`)
	case api.BodyKeyPolicy:
		// A policy that changes nothing for the other tests' keys.
		rq.body = jsonBody(`{"max_key_lifetime_days":0,"require_expiry":false,"disable_unused_after_days":400}`)
	case api.BodyNone:
	default:
		t.Fatalf("route %s %s: body kind %q has no request in this test: add one", rt.Method, rt.Path, rt.BodyKind)
	}
	return rq
}

func isWebhookRoute(rt api.Route) bool {
	return rt.Operation.Scope == store.ScopeReadWebhooks || rt.Operation.Scope == store.ScopeWriteWebhooks
}

// securityWebhook subscribes a loopback URL to the note events with key
// (which has every scope; a key with read:notes and the operation's scope
// manages the subscription) and sends it a ping, whose delivery it marks
// delivered. It returns the subscription's and the delivery's ids.
func securityWebhook(t *testing.T, e *env, key string) (webhookID, deliveryID string) {
	t.Helper()
	ctx := t.Context()
	sc := e.scoped(key)
	w, _, err := sc.CreateWebhook(ctx, store.WebhookInput{URL: "http://127.0.0.1:9/hook", Events: []string{"note.*"}})
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	d, err := sc.TestWebhook(ctx, w.ID)
	if err != nil {
		t.Fatalf("TestWebhook: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	d.Status, d.Attempts, d.NextAttemptAt = store.DeliveryDelivered, 1, nil
	d.History = []store.Attempt{{At: now, StatusCode: http.StatusNoContent, LatencyMS: 3}}
	if err := e.svc.UpdateDelivery(ctx, d, 0); err != nil {
		t.Fatalf("UpdateDelivery: %v", err)
	}
	return w.ID, d.ID
}

// securityWebhookRequest builds a valid request for a webhook route: a path
// naming a new subscription of workspace A with a finished delivery, and a
// valid body.
func securityWebhookRequest(t *testing.T, e *env, rt api.Route, key string) request {
	t.Helper()
	path := rt.Path
	if strings.Contains(path, "/:id") {
		wid, did := securityWebhook(t, e, e.keyA)
		path = strings.Replace(strings.Replace(path, ":id", wid, 1), ":delivery_id", did, 1)
	}
	rq := request{method: rt.Method, path: path, key: key}
	switch rt.BodyKind {
	case api.BodyWebhookCreate:
		rq.body = jsonBody(`{"url":"http://127.0.0.1:9/new","events":["*"],"description":"security"}`)
	case api.BodyWebhookPatch:
		rq.body = jsonBody(`{"description":"changed","enabled":false}`)
	case api.BodyNone:
	default:
		t.Fatalf("route %s %s: body kind %q has no request in this test: add one", rt.Method, rt.Path, rt.BodyKind)
	}
	return rq
}

// checkOtherWorkspaceWrite checks the writes by external id and in batches
// that workspace B's key sends about A's records: a reference to A's record
// is refused as if it did not exist, and an external id A uses creates a new
// record in B rather than touching A's.
func checkOtherWorkspaceWrite(t *testing.T, e *env, op store.Operation, r response, recA map[string]*store.Record) {
	t.Helper()
	status, errBody, data := r.status, map[string]any(nil), map[string]any(nil)
	if op.Action != store.ActionUpsert {
		if r.status != http.StatusOK {
			t.Fatalf("batch status %d, want 200: %s", r.status, clip(r.body))
		}
		b := decodeBatch(t, r)
		if len(b.Results) != 1 || b.Results[0].Index != 0 {
			t.Fatalf("batch results %s", clip(r.body))
		}
		status, data = b.Results[0].Status, b.Results[0].Data
		if b.Results[0].Error != nil {
			errBody = map[string]any{"error": b.Results[0].Error.Error, "message": b.Results[0].Error.Message}
		}
	} else if r.status < 300 {
		data = r.json(t)
	} else {
		errBody = r.json(t)
	}
	if f, ok := firstRef(op.Resource); ok {
		msg, _ := errBody["message"].(string)
		if status != http.StatusBadRequest || errBody["error"] != "bad_request" || !strings.Contains(msg, f.Name) {
			t.Fatalf("reference to another workspace: status %d, error %v", status, errBody)
		}
		return
	}
	if status != http.StatusCreated {
		t.Fatalf("status %d, want 201 (a new record of B): %v %v", status, errBody, data)
	}
	id, _ := data["id"].(string)
	if id == recA[op.Resource.Name].ID {
		t.Fatal("B's write returned A's record")
	}
	e.get(t, e.keyB, op.Resource, id)
	if got := e.do(t, request{method: http.MethodGet, path: "/api/v1/" + op.Resource.Name + "/" + id, key: e.keyA}); got.status != http.StatusNotFound {
		t.Errorf("A reads B's new record: status %d", got.status)
	}
	if op.Action == store.ActionUpsert {
		// A's record with that external id is still A's and unchanged.
		ext := securityExternalID(op.Resource)
		l := e.do(t, request{method: http.MethodGet, path: "/api/v1/" + op.Resource.Name + "?external_id=" + ext, key: e.keyA})
		if p := decodePage(t, l); len(p.Data) != 1 || p.Data[0]["id"] == id || p.Data[0]["external_id"] != ext {
			t.Errorf("A's records with external id %s: %s", ext, clip(l.body))
		}
	}
}
