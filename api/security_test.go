package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// TestSecurity walks the operation table: every operation, through its REST
// route, with no key, a revoked key, an expired key, a key lacking the
// operation's scope, a key holding only that scope, and a key of another
// workspace. An operation without a route or without a cross-workspace rule
// here fails the test.
func TestSecurity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t))
		ctx := t.Context()

		// Workspace A has one record of every resource and some usage;
		// workspace B has a record of every resource and no usage.
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
				req := func(key string) request { return securityRequest(t, rt, key, recA) }
				expectError := func(t *testing.T, r response, status int, code, msg string) {
					t.Helper()
					if r.status != status {
						t.Fatalf("status %d, want %d: %s", r.status, status, clip(r.body))
					}
					checkError(t, r, code, msg)
				}
				ok2xx := func(t *testing.T, r response) {
					t.Helper()
					want := http.StatusOK
					if op.Action == store.ActionCreate {
						want = http.StatusCreated
					}
					if r.status != want {
						t.Fatalf("status %d, want %d: %s", r.status, want, clip(r.body))
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
					_, raw := e.newKey(e.svc, e.wsA.ID, scopes, nil)
					r := e.do(t, req(raw))
					ok2xx(t, r)
					checkOwnWorkspace(t, e, op, r)
				})
				t.Run("key of another workspace", func(t *testing.T) {
					checkOtherWorkspace(t, e, op, e.do(t, req(e.keyB)), recA, recB)
				})
			})
		}
	})
}

// securityRequest builds a valid request for route rt about workspace A's
// records: the get names A's record and the create references A's records.
func securityRequest(t *testing.T, rt api.Route, key string, recA map[string]*store.Record) request {
	t.Helper()
	path := rt.Path
	if strings.Contains(path, ":id") {
		path = strings.Replace(path, ":id", recA[rt.Operation.Resource.Name].ID, 1)
	}
	rq := request{method: rt.Method, path: path, key: key}
	if rt.Body {
		body := minimalBody(rt.Operation.Resource)
		if f, ok := firstRef(rt.Operation.Resource); ok {
			body[f.Name] = recA[f.Ref].ID
		} else {
			body["workspace_id"] = recA[rt.Operation.Resource.Name].WorkspaceID
		}
		rq.body = jsonBody(mustJSON(t, body))
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
	case store.ActionList, store.ActionUsageLogs, store.ActionUsageCounts:
		if len(decodeList(t, r).Data) == 0 {
			t.Errorf("workspace A sees no data: %s", clip(r.body))
		}
	case store.ActionWhoami:
		if ws := r.json(t)["workspace"].(map[string]any); ws["id"] != e.wsA.ID {
			t.Errorf("workspace %v, want %s", ws, e.wsA.ID)
		}
	}
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
	default:
		t.Errorf("operation %s (action %s) has no cross-workspace rule in this test: add one", op.Name, op.Action)
	}
}
