package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestRecords runs the record endpoints of every resource through the real
// HTTP stack, on each backend.
func TestRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, e *env)
		}{{"Create", testCreate}, {"Get", testGet}, {"List", testList}, {"EveryResource", testEveryResource}} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newEnv(t, open(t))) })
		}
	})
}

// checkCreated checks the server-managed fields of a record created with
// the key of env's workspace A.
func checkCreated(e *env, want map[string]any) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		got := r.json(t)
		id, _ := got["id"].(string)
		if !store.ValidID(id) {
			t.Fatalf("id %q is not a UUID", got["id"])
		}
		for _, k := range []string{"created_at", "updated_at"} {
			s, _ := got[k].(string)
			ts, err := time.Parse(time.RFC3339, s)
			if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
				t.Errorf("%s = %q, want a current RFC 3339 UTC time", k, got[k])
			}
		}
		if got["created_via"] != "api" {
			t.Errorf("created_via = %v, want api", got["created_via"])
		}
		if got["api_key_id"] != e.keyAID {
			t.Errorf("api_key_id = %v, want %s", got["api_key_id"], e.keyAID)
		}
		for _, k := range []string{"workspace_id", "company_id"} {
			if _, ok := got[k]; ok {
				t.Errorf("record shows %s", k)
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
		if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/"+id) {
			t.Errorf("Location = %q, want it to end with the id", loc)
		}
	}
}

func testCreate(t *testing.T, e *env) {
	accA := e.create(e.keyA, store.Accounts, map[string]any{"name": "Acme"})
	accB := e.create(e.keyB, store.Accounts, map[string]any{"name": "Other Co"})
	post := func(path, body string) request {
		return request{method: http.MethodPost, path: path, key: e.keyA, body: jsonBody(body)}
	}
	postCT := func(path, body, ct string) request {
		r := post(path, body)
		r.header = map[string]string{"Content-Type": ct}
		return r
	}
	var workspaceIgnored string // id of the record created with foreign tenant ids in the body
	deep := `{"name":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
	huge := `{"name":"` + strings.Repeat("a", 10<<20) + `"}`

	run(t, e, []group{
		{http.StatusCreated, []scenario{
			{name: "account with every field", req: postCT("/api/v1/accounts",
				`{"name":" Acme Corp ","industry":"Software","website":"https://acme.example","email":"info@acme.example","phone":"+1 555 0100","country":"US"}`,
				"application/json"),
				check: checkCreated(e, map[string]any{"name": "Acme Corp", "industry": "Software", "country": "US"})},
			{name: "workspace_id and company_id ignored", req: post("/api/v1/accounts",
				fmt.Sprintf(`{"name":"Tenant Test","workspace_id":%q,"company_id":%q}`, e.wsB.ID, e.wsB.ID)),
				check: func(t *testing.T, r response) {
					checkCreated(e, map[string]any{"name": "Tenant Test"})(t, r)
					workspaceIgnored, _ = r.json(t)["id"].(string)
				}},
			{name: "server fields in body ignored", req: post("/api/v1/accounts",
				`{"name":"Echo","id":"x","created_at":"1999-01-01T00:00:00Z","created_via":"import","api_key_id":"k"}`),
				check: checkCreated(e, map[string]any{"name": "Echo"})},
			{name: "contact referencing own account", req: post("/api/v1/contacts",
				fmt.Sprintf(`{"first_name":"Ada","account_id":%q}`, accA.ID)),
				check: checkCreated(e, map[string]any{"first_name": "Ada", "last_name": nil, "account_id": accA.ID})},
			{name: "deal number and currency normalised", req: post("/api/v1/deals", `{"name":"Big","value":1e3,"currency":"eur"}`),
				check: checkCreated(e, map[string]any{"value": 1000.0, "currency": "EUR"})},
			{name: "deal currency default", req: post("/api/v1/deals", `{"name":"Small","value":0}`),
				check: checkCreated(e, map[string]any{"value": 0.0, "currency": "USD"})},
			{name: "activity enum any case", req: post("/api/v1/activities", `{"type":"meeting","title":"Kick-off","due_date":"2025-04-01"}`),
				check: checkCreated(e, map[string]any{"type": "Meeting", "due_date": "2025-04-01"})},
			{name: "no content type", req: post("/api/v1/notes", `{"content":"hello"}`),
				check: checkCreated(e, map[string]any{"content": "hello"})},
			{name: "json with charset", req: postCT("/api/v1/notes", `{"content":"x"}`, "application/json; charset=UTF-8"),
				check: checkCreated(e, nil)},
			{name: "json suffix type", req: postCT("/api/v1/notes", `{"content":"x"}`, "application/vnd.api+json"),
				check: checkCreated(e, nil)},
			{name: "unicode", req: post("/api/v1/leads", `{"name":"Zoë Ünïcödé 日本"}`),
				check: checkCreated(e, map[string]any{"name": "Zoë Ünïcödé 日本"})},
			{name: "optional fields null", req: post("/api/v1/leads", `{"name":"Plain","status":"  "}`),
				check: checkCreated(e, map[string]any{"status": nil, "email": nil})},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "empty body", req: post("/api/v1/accounts", ``), msg: []string{"empty"}},
			{name: "whitespace body", req: post("/api/v1/accounts", "  \n"), msg: []string{"empty"}},
			{name: "truncated JSON", req: post("/api/v1/accounts", `{"name":`), msg: []string{"not valid JSON"}},
			{name: "trailing comma", req: post("/api/v1/accounts", `{"name":"a",}`), msg: []string{"not valid JSON"}},
			{name: "trailing data", req: post("/api/v1/accounts", `{"name":"a"} {"name":"b"}`), msg: []string{"nothing after"}},
			{name: "trailing garbage", req: post("/api/v1/accounts", `{"name":"a"}x`), msg: []string{"nothing after"}},
			{name: "array body", req: post("/api/v1/accounts", `[{"name":"a"}]`), msg: []string{"JSON object", "array"}},
			{name: "string body", req: post("/api/v1/accounts", `"name"`), msg: []string{"JSON object", "string"}},
			{name: "number body", req: post("/api/v1/accounts", `42`), msg: []string{"JSON object"}},
			{name: "null body", req: post("/api/v1/accounts", `null`), msg: []string{"JSON object", "null"}},
			{name: "invalid UTF-8", req: post("/api/v1/accounts", "{\"name\":\"\xff\xfe\"}"), msg: []string{"UTF-8"}},
			{name: "NUL in string", req: post("/api/v1/accounts", `{"name":"a\u0000b"}`), msg: []string{"name"}},
			{name: "missing required", req: post("/api/v1/accounts", `{}`), msg: []string{"name", "required"}},
			{name: "wrong type number", req: post("/api/v1/accounts", `{"name":5}`), msg: []string{"name", "string"}},
			{name: "wrong type bool", req: post("/api/v1/accounts", `{"name":"a","country":true}`), msg: []string{"country"}},
			{name: "array for string", req: post("/api/v1/accounts", `{"name":["a"]}`), msg: []string{"name"}},
			{name: "mongo operator in field", req: post("/api/v1/accounts", `{"name":{"$gt":""}}`), msg: []string{"name", "object"}},
			{name: "mongo $where key", req: post("/api/v1/accounts", `{"$where":"1"}`), msg: []string{"$where"}},
			{name: "mongo $set key", req: post("/api/v1/accounts", `{"name":"a","$set":{"workspace_id":"x"}}`), msg: []string{"$set"}},
			{name: "dotted key", req: post("/api/v1/accounts", `{"name":"a","workspace_id.x":"y"}`), msg: []string{"workspace_id.x"}},
			{name: "unknown field", req: post("/api/v1/accounts", `{"name":"a","colour":"red"}`), msg: []string{"colour"}},
			{name: "deeply nested", req: post("/api/v1/accounts", deep), msg: []string{"JSON"}},
			{name: "string over max length", req: post("/api/v1/accounts", `{"name":"`+strings.Repeat("x", 300_000)+`"}`), msg: []string{"name", "at most"}},
			{name: "bad email", req: post("/api/v1/accounts", `{"name":"a","email":"not-an-email"}`), msg: []string{"email"}},
			{name: "reference to another workspace", req: post("/api/v1/contacts",
				fmt.Sprintf(`{"first_name":"Eve","account_id":%q}`, accB.ID)), msg: []string{"account_id"}},
			{name: "reference that does not exist", req: post("/api/v1/deals",
				fmt.Sprintf(`{"name":"d","account_id":%q}`, store.NewID())), msg: []string{"account_id"}},
			{name: "reference of the wrong shape", req: post("/api/v1/contacts", `{"last_name":"x","account_id":"123"}`), msg: []string{"account_id"}},
			{name: "reference as operator", req: post("/api/v1/contacts", `{"last_name":"x","account_id":{"$ne":null}}`), msg: []string{"account_id"}},
			{name: "reference to wrong resource", req: post("/api/v1/notes",
				fmt.Sprintf(`{"content":"c","related_contact_id":%q}`, accA.ID)), msg: []string{"related_contact_id"}},
			{name: "negative deal value", req: post("/api/v1/deals", `{"name":"d","value":-1}`), msg: []string{"value"}},
			{name: "deal value as string", req: post("/api/v1/deals", `{"name":"d","value":"100"}`), msg: []string{"value"}},
			{name: "huge number", req: post("/api/v1/deals", `{"name":"d","value":1e400}`), msg: []string{"value"}},
			{name: "bad currency", req: post("/api/v1/deals", `{"name":"d","currency":"EURO"}`), msg: []string{"currency"}},
			{name: "bad activity type", req: post("/api/v1/activities", `{"type":"Lunch","title":"t"}`), msg: []string{"type"}},
			{name: "bad due date", req: post("/api/v1/activities", `{"type":"Task","title":"t","due_date":"tomorrow"}`), msg: []string{"due_date"}},
			{name: "contact without names", req: post("/api/v1/contacts", `{"email":"a@example.com"}`), msg: []string{"first_name"}},
			{name: "unknown query parameter", req: post("/api/v1/accounts?upsert=true", `{"name":"a"}`), msg: []string{"upsert"}},
		}},
		{http.StatusRequestEntityTooLarge, []scenario{
			{name: "10 MB body", req: post("/api/v1/accounts", huge), msg: []string{"1 MiB"}},
			{name: "2 MB chunked body", req: request{method: http.MethodPost, path: "/api/v1/notes", key: e.keyA,
				body: io.MultiReader(strings.NewReader(`{"content":"`), strings.NewReader(strings.Repeat("b", 2<<20)), strings.NewReader(`"}`))},
				msg: []string{"1 MiB"}},
		}},
		{http.StatusUnsupportedMediaType, []scenario{
			{name: "form", req: postCT("/api/v1/accounts", `name=a`, "application/x-www-form-urlencoded")},
			{name: "text", req: postCT("/api/v1/accounts", `{"name":"a"}`, "text/plain")},
			{name: "malformed content type", req: postCT("/api/v1/accounts", `{"name":"a"}`, "application/json; ===")},
			{name: "other charset", req: postCT("/api/v1/accounts", `{"name":"a"}`, "application/json; charset=latin1"), msg: []string{"UTF-8"}},
		}},
		{http.StatusNotFound, []scenario{
			{name: "unknown resource", req: post("/api/v1/widgets", `{"name":"a"}`)},
			{name: "no version", req: post("/accounts", `{"name":"a"}`)},
		}},
		{http.StatusMethodNotAllowed, []scenario{
			{name: "PUT collection", req: request{method: http.MethodPut, path: "/api/v1/accounts", key: e.keyA, body: jsonBody(`{}`)},
				check: allow("GET, POST")},
			{name: "POST to an id", req: post("/api/v1/accounts/"+accA.ID, `{"name":"a"}`), check: allow("GET, PATCH, DELETE")},
			{name: "PUT an id", req: request{method: http.MethodPut, path: "/api/v1/accounts/" + accA.ID, key: e.keyA, body: jsonBody(`{}`)},
				check: allow("GET, PATCH, DELETE")},
		}},
	})

	t.Run("workspace comes from the key", func(t *testing.T) {
		if workspaceIgnored == "" {
			t.Skip("creation scenario failed")
		}
		if r := e.do(t, request{method: http.MethodGet, path: "/api/v1/accounts/" + workspaceIgnored, key: e.keyA}); r.status != http.StatusOK {
			t.Errorf("own workspace: status %d, want 200", r.status)
		}
		if r := e.do(t, request{method: http.MethodGet, path: "/api/v1/accounts/" + workspaceIgnored, key: e.keyB}); r.status != http.StatusNotFound {
			t.Errorf("workspace named in the body: status %d, want 404", r.status)
		}
	})
}

// allow checks the Allow header of a 405 on a REST route, where HEAD is
// allowed wherever GET is.
func allow(want string) func(t *testing.T, r response) {
	return allowExactly(strings.Replace(want, "GET", "GET, HEAD", 1))
}

// allowExactly checks the Allow header of a 405.
func allowExactly(want string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		if got := r.header.Get("Allow"); got != want {
			t.Errorf("Allow = %q, want %q", got, want)
		}
	}
}

func testGet(t *testing.T, e *env) {
	acc := e.create(e.keyA, store.Accounts, map[string]any{"name": "Findable", "industry": "Retail"})
	contact := e.create(e.keyA, store.Contacts, map[string]any{"last_name": "Lovelace", "account_id": acc.ID})
	other := e.create(e.keyB, store.Accounts, map[string]any{"name": "Hidden"})
	get := func(path string) request { return request{method: http.MethodGet, path: path, key: e.keyA} }
	run(t, e, []group{
		{http.StatusOK, []scenario{
			{name: "own account", req: get("/api/v1/accounts/" + acc.ID), check: func(t *testing.T, r response) {
				want, _ := json.Marshal(acc)
				if string(r.body) != string(want) {
					t.Errorf("body\n%s\nwant\n%s", r.body, want)
				}
			}},
			{name: "own contact", req: get("/api/v1/contacts/" + contact.ID), check: func(t *testing.T, r response) {
				if got := r.json(t); got["account_id"] != acc.ID || got["last_name"] != "Lovelace" || got["first_name"] != nil {
					t.Errorf("contact %v", got)
				}
			}},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "query parameter", req: get("/api/v1/accounts/" + acc.ID + "?fields=name"), msg: []string{"fields"}},
		}},
		{http.StatusNotFound, []scenario{
			{name: "other workspace", req: get("/api/v1/accounts/" + other.ID), msg: []string{"not found"}},
			{name: "does not exist", req: get("/api/v1/accounts/" + store.NewID())},
			{name: "id of another resource", req: get("/api/v1/accounts/" + contact.ID)},
			{name: "short id", req: get("/api/v1/accounts/123")},
			{name: "operator id", req: get("/api/v1/accounts/%7B%22$gt%22:%22%22%7D")},
			{name: "dollar id", req: get("/api/v1/accounts/$where")},
			{name: "regex id", req: get("/api/v1/accounts/.*")},
			{name: "long id", req: get("/api/v1/accounts/" + strings.Repeat("a", 10_000))},
			{name: "invalid UTF-8 id", req: get("/api/v1/accounts/%ff%fe")},
			{name: "NUL id", req: get("/api/v1/accounts/%00")},
			{name: "uuid with braces", req: get("/api/v1/accounts/{" + acc.ID + "}")},
			{name: "trailing slash", req: get("/api/v1/accounts/" + acc.ID + "/")},
			{name: "nested path", req: get("/api/v1/accounts/" + acc.ID + "/contacts")},
			{name: "unknown route", req: get("/api/v2/accounts")},
			{name: "unknown route without key", req: request{method: http.MethodGet, path: "/nope"}},
		}},
	})
}

func testList(t *testing.T, e *env) {
	// Leads: 205 in workspace A (more than the largest page), 2 in B.
	var leads []*store.Record
	for i := range 205 {
		leads = append(leads, e.create(e.keyA, store.Leads, map[string]any{"name": fmt.Sprintf("Lead %03d", i)}))
	}
	hidden := e.create(e.keyB, store.Leads, map[string]any{"name": "Hidden lead"})
	e.create(e.keyB, store.Leads, map[string]any{"name": "Hidden lead 2"})

	list := func(query string) request {
		return request{method: http.MethodGet, path: "/api/v1/leads" + query, key: e.keyA}
	}
	page := func(limit, offset int, more bool, first int) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			t.Helper()
			var p struct {
				Data []struct {
					ID   string `json:"id"`
					Name string `json:"name"`
				} `json:"data"`
				Pagination struct {
					Limit   int  `json:"limit"`
					Offset  int  `json:"offset"`
					HasMore bool `json:"has_more"`
				} `json:"pagination"`
			}
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Pagination.Limit != limit || p.Pagination.Offset != offset || p.Pagination.HasMore != more {
				t.Errorf("pagination %+v, want limit %d offset %d has_more %v", p.Pagination, limit, offset, more)
			}
			wantLen := min(limit, max(len(leads)-offset, 0))
			if len(p.Data) != wantLen {
				t.Fatalf("%d records, want %d", len(p.Data), wantLen)
			}
			// Newest first: the i-th record of the page is leads[first-i].
			for i, d := range p.Data {
				if want := leads[first-i]; d.ID != want.ID {
					t.Fatalf("record %d is %s (%s), want %s (%s)", i, d.ID, d.Name, want.ID, want.Fields["name"])
				}
				if d.ID == hidden.ID {
					t.Fatal("another workspace's record listed")
				}
			}
		}
	}
	last := len(leads) - 1
	run(t, e, []group{
		{http.StatusOK, []scenario{
			{name: "defaults", req: list(""), check: page(50, 0, true, last)},
			{name: "limit and offset", req: list("?limit=2&offset=1"), check: page(2, 1, true, last-1)},
			{name: "limit 200", req: list("?limit=200"), check: page(200, 0, true, last)},
			{name: "limit clamped", req: list("?limit=1000"), check: page(200, 0, true, last)},
			{name: "limit beyond int64 clamped", req: list("?limit=99999999999999999999999"), check: page(200, 0, true, last)},
			{name: "last page", req: list("?limit=10&offset=200"), check: page(10, 200, false, last-200)},
			{name: "offset past the end", req: list("?offset=1000"), check: page(50, 1000, false, 0)},
			{name: "empty query", req: list("?"), check: page(50, 0, true, last)},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "limit 0", req: list("?limit=0"), msg: []string{"limit"}},
			{name: "limit negative", req: list("?limit=-1"), msg: []string{"limit"}},
			{name: "limit very negative", req: list("?limit=-99999999999999999999999"), msg: []string{"limit"}},
			{name: "limit not a number", req: list("?limit=abc"), msg: []string{"limit"}},
			{name: "limit fraction", req: list("?limit=1.5"), msg: []string{"limit"}},
			{name: "limit empty", req: list("?limit="), msg: []string{"limit"}},
			{name: "limit without value", req: list("?limit"), msg: []string{"limit"}},
			{name: "limit with spaces", req: list("?limit=%2010"), msg: []string{"limit"}},
			{name: "offset negative", req: list("?offset=-1"), msg: []string{"offset"}},
			{name: "offset not a number", req: list("?offset=x"), msg: []string{"offset"}},
			{name: "offset beyond int64", req: list("?offset=99999999999999999999999"), msg: []string{"offset"}},
			{name: "repeated limit", req: list("?limit=1&limit=2"), msg: []string{"limit", "once"}},
			{name: "limit operator bracket", req: list("?limit[$gt]=1"), msg: []string{"limit[$gt]"}},
			{name: "field operator bracket", req: list("?name[$ne]=x"), msg: []string{"name[$ne]"}},
			{name: "where", req: list("?$where=1"), msg: []string{"$where"}},
			{name: "JSON filter", req: list("?filter=" + url.QueryEscape(`{"workspace_id":{"$ne":""}}`)), msg: []string{"filter"}},
			{name: "workspace_id", req: list("?workspace_id=" + e.wsB.ID), msg: []string{"workspace_id"}},
			{name: "unknown parameter", req: list("?order=name"), msg: []string{"order", "limit, offset, cursor, sort"}},
			{name: "malformed escape", req: list("?limit=%zz"), msg: []string{"malformed"}},
			{name: "semicolon separator", req: list("?limit=1;offset=2"), msg: []string{"malformed"}},
			{name: "invalid UTF-8 value", req: list("?limit=%ff"), msg: []string{"limit"}},
			{name: "huge parameter name", req: list("?" + strings.Repeat("z", 5000) + "=1"), msg: []string{"Unknown query"}},
		}},
	})
}

// testEveryResource creates, gets and lists a record of every resource,
// with every field set, checking the stored values come back.
func testEveryResource(t *testing.T, e *env) {
	refs := map[string]string{}
	for _, r := range store.Resources {
		refs[r.Name] = e.create(e.keyA, r, minimalBody(r)).ID
	}
	for _, r := range store.Resources {
		t.Run(r.Name, func(t *testing.T) {
			body := fullBody(r, refs)
			cr := e.do(t, request{method: http.MethodPost, path: "/api/v1/" + r.Name, key: e.keyA, body: jsonBody(mustJSON(t, body))})
			if cr.status != http.StatusCreated {
				t.Fatalf("create: status %d: %s", cr.status, cr.body)
			}
			created := cr.json(t)
			for k, v := range body {
				if created[k] != v {
					t.Errorf("created %s = %#v, want %#v", k, created[k], v)
				}
			}
			id := created["id"].(string)
			gr := e.do(t, request{method: http.MethodGet, path: "/api/v1/" + r.Name + "/" + id, key: e.keyA})
			if gr.status != http.StatusOK || string(gr.body) != string(cr.body) {
				t.Errorf("get: status %d, body\n%s\nwant\n%s", gr.status, gr.body, cr.body)
			}
			lr := e.do(t, request{method: http.MethodGet, path: "/api/v1/" + r.Name + "?limit=1", key: e.keyA})
			var page struct{ Data []json.RawMessage }
			if err := json.Unmarshal(lr.body, &page); err != nil || lr.status != http.StatusOK || len(page.Data) != 1 {
				t.Fatalf("list: status %d, err %v: %s", lr.status, err, lr.body)
			}
			if string(page.Data[0]) != string(cr.body) {
				t.Errorf("newest listed record\n%s\nwant\n%s", page.Data[0], cr.body)
			}
		})
	}
}
