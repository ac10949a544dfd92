package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// docValidator checks requests and responses against an OpenAPI document
// with kin-openapi's request and response validation.
type docValidator struct {
	doc    *openapi3.T
	router routers.Router

	mu       sync.Mutex
	success  map[string]int // by operation id
	failure  map[string]int
	statuses map[int]int
}

func newDocValidator(t *testing.T, data []byte) *docValidator {
	t.Helper()
	doc := loadOpenAPI(t, data)
	closeObjects(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &docValidator{doc: doc, router: router,
		success: map[string]int{}, failure: map[string]int{}, statuses: map[int]int{}}
}

// closeObjects forbids properties that the object schemas of responses do
// not declare. The published document leaves response objects open, so that
// clients accept fields added later; the tests hold the server to what is
// documented today. Request bodies are closed in the document itself.
func closeObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(r *openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		if s.Type.Is("object") && len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties.Has = new(bool)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		for _, alts := range [][]*openapi3.SchemaRef{s.OneOf, s.AnyOf, s.AllOf} {
			for _, a := range alts {
				walk(a)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				for _, mt := range resp.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// formats asserts the string formats the document uses beyond kin-openapi's
// built-in date and date-time: ids are UUIDv7, which RFC 9562 covers.
var formats = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
	openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
	openapi3.WithStringFormatValidator("uri-reference", openapi3.NewCallbackValidator(func(s string) error {
		_, err := url.Parse(s)
		return err
	})),
}

// validity is what the document must say about a request.
type validity int

const (
	reqValid   validity = iota // the document accepts the request
	reqInvalid                 // the document refuses it, as the server does
	reqEither                  // the server refuses what the document cannot express
)

// exchange is one request and the status it must get.
type exchange struct {
	name   string
	method string
	path   string
	key    string
	header map[string]string
	body   string // sent as is; "" sends no body
	valid  validity
	status int
	code   string // the error code, for errors
	before func()
	check  func(t *testing.T, status int, header http.Header, body []byte)
}

// authOK is the document's security check: a Bearer key must be present.
// Whether it is valid is for the server to say.
func authOK(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if in.SecurityScheme.Type == "http" && in.SecurityScheme.Scheme == "bearer" {
		if key, ok := strings.CutPrefix(h, "Bearer "); !ok || strings.TrimSpace(key) == "" {
			return errors.New("no bearer key")
		}
		return nil
	}
	return fmt.Errorf("unexpected security scheme %q", in.SecuritySchemeName)
}

// do validates the request, sends it, and validates the response, which
// must have the expected status and be documented for the operation.
func (v *docValidator) do(t *testing.T, e *env, x exchange) (int, http.Header, []byte) {
	t.Helper()
	newReq := func(base string) *http.Request {
		var body io.Reader
		if x.body != "" {
			body = strings.NewReader(x.body)
		}
		req, err := http.NewRequestWithContext(t.Context(), x.method, base+x.path, body)
		if err != nil {
			t.Fatalf("%s: %v", x.name, err)
		}
		if x.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if x.key != "" {
			req.Header.Set("Authorization", "Bearer "+x.key)
		}
		for k, val := range x.header {
			req.Header.Set(k, val)
		}
		return req
	}

	vreq := newReq("")
	route, pathParams, err := v.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s: %s %s matches no documented operation: %v", x.name, x.method, x.path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authOK, MultiError: true, SchemaValidationOptions: formats}}
	reqErr := openapi3filter.ValidateRequest(t.Context(), in)
	switch {
	case x.valid == reqValid && reqErr != nil:
		t.Errorf("%s: the document refuses a request the server must accept as well-formed: %v", x.name, reqErr)
	case x.valid == reqInvalid && reqErr == nil:
		t.Errorf("%s: the document accepts a request the server refuses", x.name)
	}

	if x.before != nil {
		x.before()
	}
	resp, err := e.srv.Client().Do(newReq(e.srv.URL))
	if err != nil {
		t.Fatalf("%s: %v", x.name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", x.name, err)
	}
	if resp.StatusCode != x.status {
		t.Fatalf("%s: status %d, want %d: %s", x.name, resp.StatusCode, x.status, clip(body))
	}
	if x.code != "" {
		var eb struct{ Error string }
		if json.Unmarshal(body, &eb) != nil || eb.Error != x.code {
			t.Errorf("%s: error code %q, want %q", x.name, eb.Error, x.code)
		}
	}
	v.checkResponse(t, x.name, in, resp.StatusCode, resp.Header, body)

	v.mu.Lock()
	if resp.StatusCode < 400 {
		v.success[route.Operation.OperationID]++
	} else {
		v.failure[route.Operation.OperationID]++
	}
	v.statuses[resp.StatusCode]++
	v.mu.Unlock()
	if x.check != nil {
		x.check(t, resp.StatusCode, resp.Header, body)
	}
	return resp.StatusCode, resp.Header, body
}

func (v *docValidator) checkResponse(t *testing.T, name string, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) {
	t.Helper()
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: formats}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s: response %d does not match the document: %v\n%s", name, status, err, clip(body))
	}
}

// keyLimiter refuses one key and allows everyone else.
type keyLimiter struct {
	mu   sync.Mutex
	deny string // key id
}

func (l *keyLimiter) Allow(_ context.Context, p store.Principal) (api.RateDecision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.KeyID == l.deny {
		return api.RateDecision{Allowed: false, Limit: 10, Remaining: 0, Reset: 5 * time.Second, RetryAfter: 2 * time.Second}, nil
	}
	return api.RateDecision{Allowed: true, Limit: 1000, Remaining: 999, Reset: time.Second}, nil
}

func jsonOf(t *testing.T, v any) string { t.Helper(); return mustJSON(t, v) }

// firstOptionalString returns the first optional plain-text field of r.
func firstOptionalString(r *store.Resource) store.Field {
	for _, f := range r.Fields {
		if !f.Required && f.Type == store.FieldString && f.Name != store.ExternalIDField {
			return f
		}
	}
	panic("no optional text field in " + r.Name)
}

// TestOpenAPITraffic sends real requests to a server on SQLite, at least
// one successful and one failing request per operation, and validates each
// request and response against the served document: the response must be
// documented for its status, with its headers and body schema (objects
// closed, see closeObjects); a request the server takes as well-formed must
// be valid per the document, and requests the server refuses as malformed
// must be invalid per the document where it can say so.
func TestOpenAPITraffic(t *testing.T) {
	g := gate(sqliteBackend(t))
	lim := &keyLimiter{}
	// Webhooks go to loopback addresses, where nothing delivers them.
	e := newEnv(t, g, withLimiter(lim), withServiceOptions(store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true})))
	limitedKey, limitedRaw := e.newKey(e.svc, e.wsA.ID, store.AllScopes(), nil)
	lim.deny = limitedKey.ID

	v := newDocValidator(t, getDoc(t, e, api.OpenAPIPath, "").body)
	t.Run("closed objects refuse undocumented fields", func(t *testing.T) {
		// The harness itself: an extra field in a documented object fails.
		in := &openapi3filter.RequestValidationInput{Request: httptest.NewRequest(http.MethodGet, api.HealthPath, nil)}
		route, params, err := v.router.FindRoute(in.Request)
		if err != nil {
			t.Fatal(err)
		}
		in.Route, in.PathParams = route, params
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: 200,
			Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"x"}}}
		out.SetBodyBytes([]byte(`{"status":"ok","service":"hustack-api","version":"v1","extra":1}`))
		if openapi3filter.ValidateResponse(t.Context(), out) == nil {
			t.Fatal("a response with an undocumented field validates")
		}
	})

	// Usage to list, and a record of every resource to reference.
	now := time.Now().UTC().Truncate(time.Millisecond)
	var evs []store.UsageEvent
	for i := range 3 {
		evs = append(evs, store.UsageEvent{ID: store.NewID(), WorkspaceID: e.wsA.ID, KeyID: e.keyAID, Method: "GET",
			Route: "/api/v1/accounts", Status: 200 + i*100, DurationMS: 1.5, Time: now.Add(-time.Duration(i) * time.Minute),
			RequestID: store.NewID(), Transport: store.TransportREST, UserAgent: "test"})
	}
	if err := e.svc.RecordUsage(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	for _, r := range store.Resources {
		refs[r.Name] = e.create(e.keyA, r, minimalBody(r)).ID
	}

	routes := map[string]api.Route{}
	for _, rt := range api.Routes() {
		routes[rt.Operation.Name] = rt
	}
	pathOf := func(rt api.Route, arg string) string {
		p := rt.Path
		for _, pa := range rt.PathArgs {
			p = strings.Replace(p, ":"+pa.Name, url.PathEscape(arg), 1)
		}
		return p
	}
	missing := store.NewID()

	// Every route: no key, a revoked key, a key without its scope and a
	// rate-limited key, with an otherwise well-formed request.
	wellFormed := func(rt api.Route) exchange {
		x := exchange{method: rt.Method, path: pathOf(rt, missing)}
		if rt.Operation.Action == store.ActionUpsert {
			x.path = pathOf(rt, "ext-"+rt.Operation.Name)
		}
		if r := rt.Operation.Resource; r != nil {
			switch rt.BodyKind {
			case api.BodyRecord, api.BodyUpsert:
				x.body = jsonOf(t, minimalBody(r))
			case api.BodyPatch:
				x.body = `{}`
			case api.BodyBatch:
				x.body = jsonOf(t, map[string]any{"records": []any{minimalBody(r)}})
			case api.BodyBatchUpsert:
				item := minimalBody(r)
				item[store.ExternalIDField] = "bx-" + rt.Operation.Name
				x.body = jsonOf(t, map[string]any{"records": []any{item}})
			}
		}
		switch rt.BodyKind {
		case api.BodyKeyCreate:
			x.body = `{"name":"traffic","scopes":["read:leads"]}`
		case api.BodyKeyRotate:
			x.body = `{"expire_old_in":"1h"}`
		case api.BodyKeyPolicy:
			x.body = `{"max_key_lifetime_days":0,"require_expiry":false,"disable_unused_after_days":0}`
		case api.BodyWebhookCreate:
			x.body = `{"url":"http://127.0.0.1:9/hook","events":["*"]}`
		case api.BodyWebhookPatch:
			x.body = `{}`
		}
		return x
	}
	for _, rt := range api.Routes() {
		op := rt.Operation
		t.Run(op.Name+"/refused keys", func(t *testing.T) {
			x := wellFormed(rt)
			x.name, x.status, x.valid, x.code = "no key", 401, reqInvalid, "unauthorized"
			v.do(t, e, x)
			x.name, x.key, x.status, x.valid, x.code = "revoked key", e.revoked, 410, reqValid, "revoked_key"
			v.do(t, e, x)
			x.name, x.key, x.status, x.code = "rate limited", limitedRaw, 429, "rate_limit_exceeded"
			v.do(t, e, x)
			if op.Scope != "" {
				x.name, x.key, x.status, x.code = "missing scope", e.keyWithout(op.Scope), 403, "forbidden"
				v.do(t, e, x)
			}
		})
	}

	for _, r := range store.Resources {
		rt := func(prefix string) api.Route {
			name := prefix + r.Singular
			if strings.HasPrefix(prefix, "list") || strings.HasPrefix(prefix, "batch") {
				name = prefix + r.Name
			}
			route, ok := routes[name]
			if !ok {
				t.Fatalf("no route for %s", name)
			}
			return route
		}
		list, get, create, update, del := rt("list_"), rt("get_"), rt("create_"), rt("update_"), rt("delete_")
		upsert, batch, batchUpsert := rt("upsert_"), rt("batch_create_"), rt("batch_upsert_")
		live := e.create(e.keyA, r, fullBody(r, refs))
		text := firstOptionalString(r)

		t.Run(r.Name, func(t *testing.T) {
			k := e.keyA
			// create
			full := fullBody(r, refs)
			full[store.ExternalIDField] = "full-" + r.Name
			idem := map[string]string{"Idempotency-Key": "create-" + r.Name}
			v.do(t, e, exchange{name: "create", method: "POST", path: create.Path, key: k, body: jsonOf(t, full), header: idem, status: 201,
				check: func(t *testing.T, _ int, h http.Header, _ []byte) {
					if !strings.HasPrefix(h.Get("Location"), create.Path+"/") {
						t.Errorf("Location %q", h.Get("Location"))
					}
				}})
			v.do(t, e, exchange{name: "create replayed", method: "POST", path: create.Path, key: k, body: jsonOf(t, full), header: idem, status: 201,
				check: func(t *testing.T, _ int, h http.Header, _ []byte) {
					if h.Get("Idempotent-Replayed") != "true" {
						t.Error("no Idempotent-Replayed: true")
					}
				}})
			v.do(t, e, exchange{name: "create key reused", method: "POST", path: create.Path, key: k, body: jsonOf(t, minimalBody(r)), header: idem,
				status: 422, code: "idempotency_key_reused"})
			v.do(t, e, exchange{name: "create duplicate external_id", method: "POST", path: create.Path, key: k, body: jsonOf(t, full),
				status: 409, code: "conflict"})
			v.do(t, e, exchange{name: "create incomplete", method: "POST", path: create.Path, key: k, body: `{}`,
				status: 400, valid: reqInvalid})
			v.do(t, e, exchange{name: "create unknown field", method: "POST", path: create.Path, key: k,
				body: jsonOf(t, map[string]any{text.Name: "x", "bogus": 1}), status: 400, valid: reqInvalid})
			v.do(t, e, exchange{name: "create too long", method: "POST", path: create.Path, key: k,
				body: jsonOf(t, map[string]any{text.Name: strings.Repeat("x", text.MaxLen+1)}), status: 400, valid: reqInvalid})
			v.do(t, e, exchange{name: "create as text/plain", method: "POST", path: create.Path, key: k, body: `{}`,
				header: map[string]string{"Content-Type": "text/plain"}, status: 415, valid: reqInvalid})
			big := `{"` + text.Name + `":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
			v.do(t, e, exchange{name: "create too large", method: "POST", path: create.Path, key: k, body: big,
				status: 413, valid: reqInvalid})

			// get
			v.do(t, e, exchange{name: "get", method: "GET", path: pathOf(get, live.ID), key: k, status: 200})
			v.do(t, e, exchange{name: "get missing", method: "GET", path: pathOf(get, missing), key: k, status: 404})
			v.do(t, e, exchange{name: "get of another workspace", method: "GET", path: pathOf(get, live.ID), key: e.keyB, status: 404})

			// update
			v.do(t, e, exchange{name: "update", method: "PATCH", path: pathOf(update, live.ID), key: k,
				body: jsonOf(t, map[string]any{text.Name: "Changed"}), status: 200})
			v.do(t, e, exchange{name: "update clears", method: "PATCH", path: pathOf(update, live.ID), key: k,
				body: jsonOf(t, map[string]any{text.Name: nil}), header: map[string]string{"Idempotency-Key": "clear-" + r.Name}, status: 200,
				check: func(t *testing.T, _ int, _ http.Header, b []byte) {
					var m map[string]any
					if json.Unmarshal(b, &m) != nil || m[text.Name] != nil {
						t.Errorf("%s not cleared: %s", text.Name, clip(b))
					}
				}})
			v.do(t, e, exchange{name: "update missing", method: "PATCH", path: pathOf(update, missing), key: k, body: `{}`, status: 404})
			v.do(t, e, exchange{name: "update with a wrong type", method: "PATCH", path: pathOf(update, live.ID), key: k,
				body: jsonOf(t, map[string]any{text.Name: 5}), status: 400, valid: reqInvalid})
			for _, f := range r.Fields {
				if f.Required {
					v.do(t, e, exchange{name: "update clears required " + f.Name, method: "PATCH", path: pathOf(update, live.ID), key: k,
						body: jsonOf(t, map[string]any{f.Name: nil}), status: 400, valid: reqInvalid})
					break
				}
			}

			// upsert
			extPath := pathOf(upsert, "sync-"+r.Name)
			v.do(t, e, exchange{name: "upsert creates", method: "PUT", path: extPath, key: k, body: jsonOf(t, minimalBody(r)), status: 201})
			v.do(t, e, exchange{name: "upsert updates", method: "PUT", path: extPath, key: k,
				body: jsonOf(t, map[string]any{text.Name: "Synced"}), status: 200})
			v.do(t, e, exchange{name: "upsert with another external_id", method: "PUT", path: extPath, key: k,
				body: jsonOf(t, map[string]any{store.ExternalIDField: "other"}), status: 400, valid: reqEither})
			v.do(t, e, exchange{name: "upsert unknown field", method: "PUT", path: extPath, key: k,
				body: `{"bogus":true}`, status: 400, valid: reqInvalid})

			// batches
			withExt := func(ext string) map[string]any {
				m := minimalBody(r)
				m[store.ExternalIDField] = ext
				return m
			}
			v.do(t, e, exchange{name: "batch", method: "POST", path: batch.Path, key: k,
				body: jsonOf(t, map[string]any{"records": []any{minimalBody(r), withExt("b-" + r.Name)}}), status: 200})
			v.do(t, e, exchange{name: "batch with a failing record", method: "POST", path: batch.Path, key: k,
				body: jsonOf(t, map[string]any{"records": []any{minimalBody(r), map[string]any{"bogus": 1}}}), status: 200, valid: reqInvalid,
				check: func(t *testing.T, _ int, _ http.Header, b []byte) {
					var br api.BatchResponse
					if json.Unmarshal(b, &br) != nil || len(br.Results) != 2 || br.Results[1].Error == nil {
						t.Errorf("batch results: %s", clip(b))
					}
				}})
			v.do(t, e, exchange{name: "batch empty", method: "POST", path: batch.Path, key: k, body: `{"records":[]}`, status: 400, valid: reqInvalid})
			v.do(t, e, exchange{name: "batch upsert", method: "POST", path: batchUpsert.Path, key: k,
				body: jsonOf(t, map[string]any{"records": []any{withExt("b-" + r.Name), withExt("bu-" + r.Name)}}), status: 200,
				check: func(t *testing.T, _ int, _ http.Header, b []byte) {
					var br api.BatchResponse
					if json.Unmarshal(b, &br) != nil || len(br.Results) != 2 || br.Results[0].Status != 200 || br.Results[1].Status != 201 {
						t.Errorf("batch upsert results: %s", clip(b))
					}
				}})
			v.do(t, e, exchange{name: "batch upsert without external_id", method: "POST", path: batchUpsert.Path, key: k,
				body: jsonOf(t, map[string]any{"records": []any{minimalBody(r)}}), status: 200, valid: reqInvalid})
			v.do(t, e, exchange{name: "batch upsert not a batch", method: "POST", path: batchUpsert.Path, key: k,
				body: `{"items":[]}`, status: 400, valid: reqInvalid})

			// delete, then list with the tombstone
			doomed := e.create(e.keyA, r, minimalBody(r))
			v.do(t, e, exchange{name: "delete", method: "DELETE", path: pathOf(del, doomed.ID), key: k, status: 204,
				header: map[string]string{"Idempotency-Key": "delete-" + r.Name}})
			v.do(t, e, exchange{name: "delete again", method: "DELETE", path: pathOf(del, doomed.ID), key: k, status: 404})

			var cursor string
			v.do(t, e, exchange{name: "list with tombstones", method: "GET", key: k, status: 200,
				path: list.Path + "?limit=3&sort=-updated_at&include_deleted=true&updated_after=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)),
				check: func(t *testing.T, _ int, _ http.Header, b []byte) {
					var p struct {
						Data []struct {
							ID      string
							Deleted bool
						}
						Pagination struct {
							NextCursor *string `json:"next_cursor"`
						}
					}
					if err := json.Unmarshal(b, &p); err != nil || len(p.Data) == 0 || !p.Data[0].Deleted || p.Data[0].ID != doomed.ID {
						t.Fatalf("want the tombstone first: %s", clip(b))
					}
					if p.Pagination.NextCursor == nil {
						t.Fatal("no next_cursor")
					}
					cursor = *p.Pagination.NextCursor
				}})
			v.do(t, e, exchange{name: "list next page", method: "GET", key: k, status: 200,
				path: list.Path + "?include_deleted=true&limit=3&cursor=" + url.QueryEscape(cursor)})
			filter := r.FilterNames()[0]
			ff, _ := r.Field(filter)
			fv := fmt.Sprint(sample(ff, refs))
			v.do(t, e, exchange{name: "list filtered", method: "GET", key: k, status: 200,
				path: list.Path + "?q=sample&" + filter + "=" + url.QueryEscape(fv)})
			v.do(t, e, exchange{name: "list limit 0", method: "GET", key: k, status: 400, valid: reqInvalid, path: list.Path + "?limit=0"})
			v.do(t, e, exchange{name: "list bad sort", method: "GET", key: k, status: 400, valid: reqInvalid, path: list.Path + "?sort=name"})
			v.do(t, e, exchange{name: "list bad time", method: "GET", key: k, status: 400, valid: reqInvalid, path: list.Path + "?created_after=yesterday"})
			v.do(t, e, exchange{name: "list unknown filter", method: "GET", key: k, status: 400, valid: reqEither, path: list.Path + "?bogus=1"})
		})
	}

	t.Run("references", func(t *testing.T) {
		acc := e.create(e.keyA, store.Accounts, minimalBody(store.Accounts))
		body := minimalBody(store.Contacts)
		body["account_id"] = acc.ID
		e.create(e.keyA, store.Contacts, body)
		v.do(t, e, exchange{name: "delete referenced account", method: "DELETE", path: "/api/v1/accounts/" + acc.ID, key: e.keyA,
			status: 409, code: "conflict"})
		v.do(t, e, exchange{name: "create with a missing reference", method: "POST", path: "/api/v1/contacts", key: e.keyA,
			body: jsonOf(t, map[string]any{"first_name": "Ann", "account_id": missing}), status: 400})
	})

	t.Run("internal error", func(t *testing.T) {
		v.do(t, e, exchange{name: "create fails in the backend", method: "POST", path: "/api/v1/notes", key: e.keyA,
			body: jsonOf(t, minimalBody(store.Notes)), status: 500, code: "internal_server_error",
			before: func() { g.failNext(errors.New("disk on fire")) }})
	})

	t.Run("idempotency key in use", func(t *testing.T) {
		entered, release := g.close()
		defer release()
		first := make(chan int, 1)
		body := []byte(jsonOf(t, minimalBody(store.Notes)))
		go func() {
			req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/notes", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e.keyA)
			req.Header.Set("Idempotency-Key", "slow")
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				first <- 0
				return
			}
			resp.Body.Close()
			first <- resp.StatusCode
		}()
		waitFor(t, entered, "the first request to reach the backend")
		v.do(t, e, exchange{name: "second request with the key", method: "POST", path: "/api/v1/notes", key: e.keyA,
			body: jsonOf(t, minimalBody(store.Notes)), header: map[string]string{"Idempotency-Key": "slow"},
			status: 409, code: "idempotency_key_in_use"})
		release()
		select {
		case st := <-first:
			if st != 201 {
				t.Errorf("first request: status %d", st)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("first request did not finish")
		}
	})

	t.Run("keys", func(t *testing.T) {
		k := e.keyA
		var created api.NewKeyResponse
		v.do(t, e, exchange{name: "create key", method: "POST", path: api.KeysPath, key: k, status: 201,
			body: `{"name":"Vendor XYZ","scopes":["read:leads","write:leads"],"filter":{"source":"Vendor XYZ"},"expires_in":"30d","rate_limit":"5/s"}`,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if err := json.Unmarshal(b, &created); err != nil || created.Key == nil {
					t.Fatalf("new key: %v %s", err, clip(b))
				}
			}})
		idem := map[string]string{"Idempotency-Key": "traffic-key"}
		v.do(t, e, exchange{name: "create key with an idempotency key", method: "POST", path: api.KeysPath, key: k, status: 201,
			body: `{"name":"once","scopes":["read:leads"],"expires_at":"` + now.Add(48*time.Hour).Format(time.RFC3339) + `","filter":null}`, header: idem})
		v.do(t, e, exchange{name: "create key replayed", method: "POST", path: api.KeysPath, key: k, status: 201,
			body: `{"name":"once","scopes":["read:leads"],"expires_at":"` + now.Add(48*time.Hour).Format(time.RFC3339) + `","filter":null}`, header: idem,
			check: func(t *testing.T, _ int, h http.Header, b []byte) {
				if h.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(b), `"key":null`) {
					t.Errorf("replay %v: %s", h.Get("Idempotent-Replayed"), clip(b))
				}
			}})
		v.do(t, e, exchange{name: "create key with an unknown field", method: "POST", path: api.KeysPath, key: k, status: 400, valid: reqInvalid,
			body: `{"name":"x","scopes":["read:leads"],"hash":"x"}`})
		v.do(t, e, exchange{name: "create key without scopes", method: "POST", path: api.KeysPath, key: k, status: 400, valid: reqInvalid,
			body: `{"name":"x"}`})
		v.do(t, e, exchange{name: "create key with an unknown scope", method: "POST", path: api.KeysPath, key: k, status: 400, valid: reqInvalid,
			body: `{"name":"x","scopes":["read:all"]}`})
		v.do(t, e, exchange{name: "create key with a scope the caller lacks", method: "POST", path: api.KeysPath, key: e.keyWithout(store.WriteScope("leads")),
			status: 400, valid: reqEither, body: `{"name":"x","scopes":["write:leads"]}`})
		v.do(t, e, exchange{name: "create key with a filter value not a string", method: "POST", path: api.KeysPath, key: k, status: 400, valid: reqInvalid,
			body: `{"name":"x","scopes":["read:leads"],"filter":{"source":5}}`})
		v.do(t, e, exchange{name: "create key with a malformed expires_at", method: "POST", path: api.KeysPath, key: k, status: 400, valid: reqInvalid,
			body: `{"name":"x","scopes":["read:leads"],"expires_at":"soon"}`})

		v.do(t, e, exchange{name: "list keys", method: "GET", path: api.KeysPath, key: k, status: 200})
		v.do(t, e, exchange{name: "list keys with a parameter", method: "GET", path: api.KeysPath + "?limit=1", key: k, status: 400, valid: reqEither})
		v.do(t, e, exchange{name: "get key", method: "GET", path: api.KeysPath + "/" + created.ID, key: k, status: 200})
		v.do(t, e, exchange{name: "get missing key", method: "GET", path: api.KeysPath + "/" + missing, key: k, status: 404})
		v.do(t, e, exchange{name: "get key with a malformed id", method: "GET", path: api.KeysPath + "/nope", key: k, status: 404, valid: reqInvalid})

		var rotated api.RotatedKeyResponse
		v.do(t, e, exchange{name: "rotate key", method: "POST", path: api.KeysPath + "/" + created.ID + "/rotate", key: k, status: 201,
			body: `{"expire_old_in":"7d"}`, check: func(t *testing.T, _ int, h http.Header, b []byte) {
				if err := json.Unmarshal(b, &rotated); err != nil || rotated.OldKey.ID != created.ID || h.Get("Location") != api.KeysPath+"/"+rotated.ID {
					t.Errorf("rotated %v: %s", err, clip(b))
				}
			}})
		v.do(t, e, exchange{name: "rotate key without a body", method: "POST", path: api.KeysPath + "/" + rotated.ID + "/rotate", key: k, status: 201})
		v.do(t, e, exchange{name: "rotate key with a malformed overlap", method: "POST", path: api.KeysPath + "/" + created.ID + "/rotate", key: k,
			body: `{"expire_old_in":"later"}`, status: 400, valid: reqEither})
		v.do(t, e, exchange{name: "rotate key with an unknown field", method: "POST", path: api.KeysPath + "/" + created.ID + "/rotate", key: k,
			body: `{"overlap":"1h"}`, status: 400, valid: reqInvalid})

		v.do(t, e, exchange{name: "revoke key", method: "POST", path: api.KeysPath + "/" + created.ID + "/revoke", key: k, status: 200})
		v.do(t, e, exchange{name: "rotate revoked key", method: "POST", path: api.KeysPath + "/" + created.ID + "/rotate", key: k, status: 409, code: "conflict"})
		v.do(t, e, exchange{name: "revoke missing key", method: "POST", path: api.KeysPath + "/" + missing + "/revoke", key: k, status: 404})

		v.do(t, e, exchange{name: "get policy", method: "GET", path: api.KeyPolicyPath, key: k, status: 200})
		v.do(t, e, exchange{name: "put policy", method: "PUT", path: api.KeyPolicyPath, key: k, status: 200,
			body: `{"max_key_lifetime_days":366,"require_expiry":true,"disable_unused_after_days":0}`})
		v.do(t, e, exchange{name: "put policy incomplete", method: "PUT", path: api.KeyPolicyPath, key: k, status: 400, valid: reqInvalid,
			body: `{"require_expiry":true}`})
		v.do(t, e, exchange{name: "put policy negative", method: "PUT", path: api.KeyPolicyPath, key: k, status: 400, valid: reqInvalid,
			body: `{"max_key_lifetime_days":-1,"require_expiry":true,"disable_unused_after_days":0}`})
		v.do(t, e, exchange{name: "create key beyond the policy", method: "POST", path: api.KeysPath, key: k, status: 400, valid: reqEither,
			body: `{"name":"x","scopes":["read:leads"]}`})
		v.do(t, e, exchange{name: "put policy back", method: "PUT", path: api.KeyPolicyPath, key: k, status: 200,
			body: `{"max_key_lifetime_days":0,"require_expiry":false,"disable_unused_after_days":0}`})

		// The vendor key's traffic validates against the whole document.
		vendor := *rotated.Key
		v.do(t, e, exchange{name: "vendor creates a lead", method: "POST", path: "/api/v1/leads", key: vendor, status: 201, body: `{"name":"V"}`})
		v.do(t, e, exchange{name: "vendor creates a lead of another source", method: "POST", path: "/api/v1/leads", key: vendor, status: 400,
			body: `{"name":"V","source":"Web"}`, valid: reqEither})
		v.do(t, e, exchange{name: "vendor gets another record", method: "GET", path: "/api/v1/leads/" + refs["leads"], key: vendor, status: 404})
		v.do(t, e, exchange{name: "vendor's me", method: "GET", path: "/api/v1/me", key: vendor, status: 200,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if !strings.Contains(string(b), `"filter":{"source":"Vendor XYZ"}`) {
					t.Errorf("me: %s", clip(b))
				}
			}})
	})

	t.Run("webhooks", func(t *testing.T) {
		k := e.keyA
		idem := map[string]string{"Idempotency-Key": "traffic-webhook"}
		body := `{"url":"http://127.0.0.1:9/hook","events":["deal.created","account.*"],"description":"CRM sync","expires_at":"` +
			now.Add(48*time.Hour).Format(time.RFC3339) + `"}`
		var created api.NewWebhookResponse
		v.do(t, e, exchange{name: "create webhook", method: "POST", path: api.WebhooksPath, key: k, body: body, header: idem, status: 201,
			check: func(t *testing.T, _ int, h http.Header, b []byte) {
				if err := json.Unmarshal(b, &created); err != nil || created.Secret == nil || h.Get("Location") != api.WebhooksPath+"/"+created.ID {
					t.Fatalf("new webhook %v, Location %q: %s", err, h.Get("Location"), clip(b))
				}
			}})
		v.do(t, e, exchange{name: "create webhook replayed", method: "POST", path: api.WebhooksPath, key: k, body: body, header: idem, status: 201,
			check: func(t *testing.T, _ int, h http.Header, b []byte) {
				if h.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(b), `"secret":null`) ||
					h.Get("Location") != api.WebhooksPath+"/"+created.ID {
					t.Errorf("replay %v %q: %s", h.Get("Idempotent-Replayed"), h.Get("Location"), clip(b))
				}
			}})
		for _, bad := range []struct{ name, body string }{
			{"an unknown field", `{"url":"http://127.0.0.1:9/x","events":["*"],"secret":"whsec_x"}`},
			{"no events", `{"url":"http://127.0.0.1:9/x"}`},
			{"no url", `{"events":["*"]}`},
			{"an unknown event", `{"url":"http://127.0.0.1:9/x","events":["deal.exploded"]}`},
			{"events not an array", `{"url":"http://127.0.0.1:9/x","events":"*"}`},
			{"a malformed expires_at", `{"url":"http://127.0.0.1:9/x","events":["*"],"expires_at":"soon"}`},
		} {
			v.do(t, e, exchange{name: "create webhook with " + bad.name, method: "POST", path: api.WebhooksPath, key: k, body: bad.body,
				status: 400, valid: reqInvalid})
		}
		v.do(t, e, exchange{name: "create webhook with an ftp url", method: "POST", path: api.WebhooksPath, key: k,
			body: `{"url":"ftp://127.0.0.1/x","events":["*"]}`, status: 400, valid: reqEither})
		v.do(t, e, exchange{name: "create webhook for events beyond the key's scopes", method: "POST", path: api.WebhooksPath,
			key: e.keyWithout(store.ReadScope("deals")), body: `{"url":"http://127.0.0.1:9/x","events":["deal.created"]}`, status: 400, valid: reqEither})

		one := api.WebhooksPath + "/" + created.ID
		v.do(t, e, exchange{name: "list webhooks", method: "GET", path: api.WebhooksPath, key: k, status: 200})
		v.do(t, e, exchange{name: "list webhooks with a parameter", method: "GET", path: api.WebhooksPath + "?limit=1", key: k, status: 400, valid: reqEither})
		v.do(t, e, exchange{name: "get webhook", method: "GET", path: one, key: k, status: 200})
		v.do(t, e, exchange{name: "get missing webhook", method: "GET", path: api.WebhooksPath + "/" + missing, key: k, status: 404})
		v.do(t, e, exchange{name: "get webhook with a malformed id", method: "GET", path: api.WebhooksPath + "/nope", key: k, status: 404, valid: reqInvalid})
		v.do(t, e, exchange{name: "get webhook of another workspace", method: "GET", path: one, key: e.keyB, status: 404})

		v.do(t, e, exchange{name: "update webhook", method: "PATCH", path: one, key: k, status: 200,
			body: `{"url":"http://127.0.0.1:9/other","events":["*"],"description":"","enabled":false}`,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if !strings.Contains(string(b), `"status":"disabled"`) {
					t.Errorf("disabled webhook: %s", clip(b))
				}
			}})
		v.do(t, e, exchange{name: "update webhook enables", method: "PATCH", path: one, key: k, status: 200, body: `{"enabled":true}`})
		v.do(t, e, exchange{name: "update webhook with a null url", method: "PATCH", path: one, key: k, status: 400, valid: reqInvalid, body: `{"url":null}`})
		v.do(t, e, exchange{name: "update webhook with enabled not a boolean", method: "PATCH", path: one, key: k, status: 400, valid: reqInvalid,
			body: `{"enabled":"yes"}`})
		v.do(t, e, exchange{name: "update webhook with an unknown field", method: "PATCH", path: one, key: k, status: 400, valid: reqInvalid,
			body: `{"expires_at":null}`})
		v.do(t, e, exchange{name: "update webhook with no events", method: "PATCH", path: one, key: k, status: 400, valid: reqInvalid,
			body: `{"events":[]}`})
		v.do(t, e, exchange{name: "update missing webhook", method: "PATCH", path: api.WebhooksPath + "/" + missing, key: k, status: 404, body: `{}`})

		var ping api.DeliveryInfo
		v.do(t, e, exchange{name: "test webhook", method: "POST", path: one + "/test", key: k, status: 202,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if err := json.Unmarshal(b, &ping); err != nil || ping.EventType != "ping" || ping.Status != "pending" {
					t.Fatalf("ping %v: %s", err, clip(b))
				}
			}})
		v.do(t, e, exchange{name: "test missing webhook", method: "POST", path: api.WebhooksPath + "/" + missing + "/test", key: k, status: 404})
		v.do(t, e, exchange{name: "list deliveries", method: "GET", path: one + "/deliveries?status=pending&limit=5&offset=0", key: k, status: 200,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if !strings.Contains(string(b), ping.ID) {
					t.Errorf("the ping is not listed: %s", clip(b))
				}
			}})
		v.do(t, e, exchange{name: "list deliveries in a bad status", method: "GET", path: one + "/deliveries?status=lost", key: k, status: 400, valid: reqInvalid})
		v.do(t, e, exchange{name: "list deliveries with limit 0", method: "GET", path: one + "/deliveries?limit=0", key: k, status: 400, valid: reqInvalid})
		v.do(t, e, exchange{name: "list deliveries of a missing webhook", method: "GET", path: api.WebhooksPath + "/" + missing + "/deliveries", key: k, status: 404})
		replay := one + "/deliveries/" + ping.ID + "/replay"
		v.do(t, e, exchange{name: "replay a pending delivery", method: "POST", path: replay, key: k, status: 409, code: "conflict"})
		d, _, err := e.svc.FindDelivery(t.Context(), e.wsA.ID, ping.ID)
		if err != nil {
			t.Fatal(err)
		}
		d.Status, d.Attempts, d.NextAttemptAt = store.DeliveryFailed, 1, nil
		d.History = []store.Attempt{{At: now, StatusCode: 500, LatencyMS: 12, Error: "HTTP 500"}}
		if err := e.svc.UpdateDelivery(t.Context(), d, 0); err != nil {
			t.Fatal(err)
		}
		v.do(t, e, exchange{name: "list a failed delivery", method: "GET", path: one + "/deliveries?status=failed", key: k, status: 200,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if !strings.Contains(string(b), `"last_response_code":500`) || !strings.Contains(string(b), `"last_latency_ms":12`) {
					t.Errorf("the failed delivery's last attempt is not shown: %s", clip(b))
				}
			}})
		v.do(t, e, exchange{name: "replay a delivery", method: "POST", path: replay, key: k, status: 202,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if !strings.Contains(string(b), `"replay_of":"`+ping.ID+`"`) || !strings.Contains(string(b), `"event_id":"`+ping.EventID+`"`) {
					t.Errorf("replay: %s", clip(b))
				}
			}})
		v.do(t, e, exchange{name: "replay a missing delivery", method: "POST", path: one + "/deliveries/" + missing + "/replay", key: k, status: 404})

		v.do(t, e, exchange{name: "delete webhook", method: "DELETE", path: one, key: k, status: 204})
		v.do(t, e, exchange{name: "delete webhook again", method: "DELETE", path: one, key: k, status: 404})
	})

	t.Run("me, usage, health and the document", func(t *testing.T) {
		k := e.keyA
		v.do(t, e, exchange{name: "me", method: "GET", path: "/api/v1/me", key: k, status: 200,
			check: func(t *testing.T, _ int, _ http.Header, b []byte) {
				if !strings.Contains(string(b), `"rate_limit_state"`) {
					t.Errorf("no rate_limit_state: %s", clip(b))
				}
			}})
		v.do(t, e, exchange{name: "me with a parameter", method: "GET", path: "/api/v1/me?x=1", key: k, status: 400, valid: reqEither})
		for _, by := range []string{"day", "key", "route", "status"} {
			v.do(t, e, exchange{name: "usage by " + by, method: "GET", path: "/api/v1/usage?group_by=" + by, key: k, status: 200})
		}
		v.do(t, e, exchange{name: "usage bad group", method: "GET", path: "/api/v1/usage?group_by=week", key: k, status: 400, valid: reqInvalid})
		v.do(t, e, exchange{name: "usage logs", method: "GET", key: k, status: 200,
			path: "/api/v1/usage/logs?limit=2&key_id=" + e.keyAID + "&from=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339))})
		v.do(t, e, exchange{name: "usage logs bad status", method: "GET", path: "/api/v1/usage/logs?status=99", key: k, status: 400, valid: reqInvalid})
		v.do(t, e, exchange{name: "usage logs bad key id", method: "GET", path: "/api/v1/usage/logs?key_id=nope", key: k, status: 400, valid: reqEither})
		v.do(t, e, exchange{name: "health", method: "GET", path: api.HealthPath, status: 200})
		v.do(t, e, exchange{name: "document", method: "GET", path: api.OpenAPIPath, status: 200})
		v.do(t, e, exchange{name: "document for a key", method: "GET", path: api.OpenAPIPath, key: k, status: 200})
		v.do(t, e, exchange{name: "document with a parameter", method: "GET", path: api.OpenAPIPath + "?v=2", status: 400, valid: reqEither})
		v.do(t, e, exchange{name: "document for a revoked key", method: "GET", path: api.OpenAPIPath, key: e.revoked, status: 410})
		v.do(t, e, exchange{name: "document for a limited key", method: "GET", path: api.OpenAPIPath, key: limitedRaw, status: 429})
		v.do(t, e, exchange{name: "document for an unknown key", method: "GET", path: api.OpenAPIPath, key: store.KeyPrefix + strings.Repeat("z", 40), status: 401})
	})

	// Every documented operation answered at least once with success and
	// once with an error (the health check cannot fail on request), and
	// every documented error status came up.
	t.Run("coverage", func(t *testing.T) {
		for _, item := range v.doc.Paths.Map() {
			for _, op := range item.Operations() {
				id := op.OperationID
				if v.success[id] == 0 {
					t.Errorf("%s: no successful request validated", id)
				}
				if v.failure[id] == 0 && id != "get_health" {
					t.Errorf("%s: no failing request validated", id)
				}
			}
		}
		for _, st := range []int{200, 201, 204, 400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 500} {
			if v.statuses[st] == 0 {
				t.Errorf("no response with status %d validated", st)
			}
		}
		var seen []int
		for st := range v.statuses {
			seen = append(seen, st)
		}
		slices.Sort(seen)
		t.Logf("validated responses by status: %v", seen)
	})
}
