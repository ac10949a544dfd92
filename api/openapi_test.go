package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// oasSchemaFile is the official JSON Schema of OpenAPI 3.1 documents,
// https://spec.openapis.org/oas/3.1/schema/2022-10-07 (Apache License 2.0).
const oasSchemaFile = "testdata/openapi/oas-3.1-schema-2022-10-07.json"

// loadOpenAPI parses and validates an OpenAPI document with kin-openapi, which
// applies the OpenAPI 3.1 rules to a 3.1 document.
func loadOpenAPI(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("load OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("document is OpenAPI %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaPatternValidation(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("OpenAPI document does not validate: %v", err)
	}
	return doc
}

// checkOASSchema validates a document against the official OpenAPI 3.1
// schema, and compiles each of its component schemas as JSON Schema 2020-12
// (which checks them against the 2020-12 meta-schema).
func checkOASSchema(t *testing.T, data []byte) {
	t.Helper()
	f, err := os.Open(oasSchemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	oas, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("read %s: %v", oasSchemaFile, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("https://spec.openapis.org/oas/3.1/schema/2022-10-07", oas); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("https://spec.openapis.org/oas/3.1/schema/2022-10-07")
	if err != nil {
		t.Fatalf("compile the OpenAPI 3.1 schema: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("document does not match the OpenAPI 3.1 schema: %v", err)
	}

	docURL := "https://hustack.invalid/openapi.json"
	dc := jsonschema.NewCompiler()
	dc.DefaultDraft(jsonschema.Draft2020)
	if err := dc.AddResource(docURL, inst); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Components.Schemas) == 0 {
		t.Fatal("document has no component schemas")
	}
	for name := range doc.Components.Schemas {
		if _, err := dc.Compile(docURL + "#/components/schemas/" + name); err != nil {
			t.Errorf("schema %s is not valid JSON Schema 2020-12: %v", name, err)
		}
	}
}

func getDoc(t *testing.T, e *env, path, key string) response {
	t.Helper()
	r := e.do(t, request{method: http.MethodGet, path: path, key: key})
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, r.status, clip(r.body))
	}
	return r
}

// TestOpenAPIDocument checks that the document served without a key is a
// valid OpenAPI 3.1 document, by kin-openapi and by the official schema.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	r := getDoc(t, e, api.OpenAPIPath, "")
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(r.body, api.OpenAPIJSON(nil)) {
		t.Error("served document differs from OpenAPIJSON(nil)")
	}
	loadOpenAPI(t, r.body)
	checkOASSchema(t, r.body)

	// Filtered documents are valid too.
	for _, scopes := range [][]store.Scope{{store.ReadScope("accounts")}, {store.ScopeUsage}, {store.WriteScope("notes"), store.ReadScope("deals")}, {store.ScopeAdminKeys}} {
		_, key := e.newKey(e.svc, e.wsA.ID, scopes, nil)
		body := getDoc(t, e, api.OpenAPIPath, key).body
		loadOpenAPI(t, body)
		checkOASSchema(t, body)
	}
	_, vendor := e.newFilteredKey(e.wsA.ID, []store.Scope{store.ReadScope("leads"), store.WriteScope("leads"), store.ScopeAdminKeys},
		map[string]string{"source": "Vendor XYZ"})
	body := getDoc(t, e, api.OpenAPIPath, vendor).body
	loadOpenAPI(t, body)
	checkOASSchema(t, body)
}

// TestOpenAPIRoutes checks the document against the route table and the
// engine: every route is documented with its method, path, parameters,
// body, responses and scope; every documented operation is served.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t, api.OpenAPIJSON(nil))
	type docOp struct {
		method, path string
		op           *openapi3.Operation
	}
	ops := map[string]docOp{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if _, dup := ops[op.OperationID]; dup {
				t.Errorf("operationId %s used twice", op.OperationID)
			}
			ops[op.OperationID] = docOp{method, path, op}
		}
	}

	routes := api.Routes()
	for _, rt := range routes {
		name := rt.Operation.Name
		d, ok := ops[name]
		if !ok {
			t.Errorf("route %s %s (%s) is not documented", rt.Method, rt.Path, name)
			continue
		}
		delete(ops, name)
		wantPath := rt.Path
		for _, p := range rt.PathArgs {
			wantPath = strings.Replace(wantPath, ":"+p.Name, "{"+p.Name+"}", 1)
		}
		if d.method != rt.Method || d.path != wantPath {
			t.Errorf("%s documented as %s %s, served as %s %s", name, d.method, d.path, rt.Method, wantPath)
		}
		checkDocumentedOperation(t, rt, d.op)
	}
	for name, d := range ops {
		switch name {
		case "get_health":
			if d.method != http.MethodGet || d.path != api.HealthPath {
				t.Errorf("health documented as %s %s", d.method, d.path)
			}
		case "get_openapi_document":
			if d.method != http.MethodGet || d.path != api.OpenAPIPath {
				t.Errorf("OpenAPI document documented as %s %s", d.method, d.path)
			}
		default:
			t.Errorf("documented operation %s (%s %s) is not in the route table", name, d.method, d.path)
		}
	}

	// What the engine serves under /api/v1 is exactly what is documented.
	eng := api.New(api.Config{Service: store.NewService(sqliteBackend(t))}).(*gin.Engine)
	served := map[string]bool{}
	for _, ri := range eng.Routes() {
		if ri.Method == "HEAD" { // HEAD mirrors each GET route; it is not documented apart
			continue
		}
		if strings.HasPrefix(ri.Path, api.APIPrefix+"/") {
			p := ri.Path
			for seg := range strings.SplitSeq(ri.Path, "/") {
				if name, ok := strings.CutPrefix(seg, ":"); ok {
					p = strings.Replace(p, seg, "{"+name+"}", 1)
				}
			}
			served[ri.Method+" "+p] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
			if !served[method+" "+path] {
				t.Errorf("documented but not served: %s %s", method, path)
			}
		}
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("served but not documented: %s", k)
		}
	}
	for _, p := range []string{api.DocsPath, api.DocsCSSPath} {
		found := false
		for _, ri := range eng.Routes() {
			found = found || (ri.Method == http.MethodGet && ri.Path == p)
		}
		if !found {
			t.Errorf("GET %s is not served", p)
		}
	}
}

// checkDocumentedOperation compares one documented operation with its route.
func checkDocumentedOperation(t *testing.T, rt api.Route, op *openapi3.Operation) {
	t.Helper()
	name := rt.Operation.Name
	if op.Summary != rt.Operation.Summary {
		t.Errorf("%s: summary %q, want %q", name, op.Summary, rt.Operation.Summary)
	}
	var scopes []string
	if raw, ok := op.Extensions["x-required-scopes"]; !ok {
		t.Errorf("%s: no x-required-scopes", name)
	} else if list, ok := raw.([]any); ok {
		for _, s := range list {
			scopes = append(scopes, s.(string))
		}
	} else {
		t.Errorf("%s: x-required-scopes is %T", name, raw)
	}
	want := []string{}
	if rt.Operation.Scope != "" {
		want = []string{string(rt.Operation.Scope)}
		if !strings.Contains(op.Description, string(rt.Operation.Scope)) {
			t.Errorf("%s: description does not name the scope %s", name, rt.Operation.Scope)
		}
	}
	if !slices.Equal(append([]string{}, scopes...), want) {
		t.Errorf("%s: x-required-scopes %v, want %v", name, scopes, want)
	}
	if op.Security == nil || len(*op.Security) != 1 || !slices.Equal((*op.Security)[0]["bearerAuth"], want) {
		t.Errorf("%s: security %v, want bearerAuth %v", name, op.Security, want)
	}

	params := map[string]*openapi3.Parameter{}
	for _, p := range op.Parameters {
		params[p.Value.In+":"+p.Value.Name] = p.Value
	}
	for _, p := range rt.PathArgs {
		if dp := params["path:"+p.Name]; dp == nil || !dp.Required {
			t.Errorf("%s: path parameter %s not documented as required", name, p.Name)
		}
		delete(params, "path:"+p.Name)
	}
	for _, p := range rt.Query {
		dp := params["query:"+p.Name]
		if dp == nil {
			t.Errorf("%s: query parameter %s not documented", name, p.Name)
			continue
		}
		delete(params, "query:"+p.Name)
		if dp.Description != p.Description {
			t.Errorf("%s: query parameter %s described %q, want %q", name, p.Name, dp.Description, p.Description)
		}
		if len(p.Enum) > 0 && p.Type != "boolean" && len(dp.Schema.Value.Enum) != len(p.Enum) {
			t.Errorf("%s: query parameter %s enum %v, want %v", name, p.Name, dp.Schema.Value.Enum, p.Enum)
		}
	}
	if rt.Idempotent {
		if params["header:Idempotency-Key"] == nil {
			t.Errorf("%s: Idempotency-Key header not documented", name)
		}
		delete(params, "header:Idempotency-Key")
	}
	for k := range params {
		t.Errorf("%s: documented parameter %s is not accepted", name, k)
	}
	if (op.RequestBody != nil) != rt.Body {
		t.Errorf("%s: request body documented %v, route reads one %v", name, op.RequestBody != nil, rt.Body)
	}
	if op.RequestBody != nil && (op.RequestBody.Value.Required == rt.BodyOptional || op.RequestBody.Value.Content.Get("application/json") == nil) {
		t.Errorf("%s: request body not JSON, or required %v while the route's is optional %v", name, op.RequestBody.Value.Required, rt.BodyOptional)
	}

	var statuses []int
	for code := range op.Responses.Map() {
		n := 0
		for _, c := range code {
			n = n*10 + int(c-'0')
		}
		statuses = append(statuses, n)
	}
	slices.Sort(statuses)
	var wantStatuses []int
	for _, r := range rt.Responses {
		wantStatuses = append(wantStatuses, r.Status)
		resp := op.Responses.Status(r.Status).Value
		if resp.Headers["X-Request-Id"] == nil {
			t.Errorf("%s: response %d without X-Request-Id", name, r.Status)
		}
		if r.Body == api.ResponseEmpty {
			if len(resp.Content) != 0 {
				t.Errorf("%s: response %d documents a body", name, r.Status)
			}
			continue
		}
		mt := resp.Content.Get("application/json")
		if mt == nil || mt.Schema == nil {
			t.Errorf("%s: response %d has no JSON schema", name, r.Status)
			continue
		}
		if r.Body == api.ResponseError {
			codes := mt.Schema.Value.Properties["error"].Value.Enum
			if len(codes) != len(r.Codes) {
				t.Errorf("%s: response %d codes %v, want %v", name, r.Status, codes, r.Codes)
			}
			for _, c := range r.Codes {
				if !slices.Contains(codes, any(c)) {
					t.Errorf("%s: response %d lacks code %s", name, r.Status, c)
				}
			}
		}
	}
	slices.Sort(wantStatuses)
	if !slices.Equal(statuses, wantStatuses) {
		t.Errorf("%s: documented statuses %v, route answers %v", name, statuses, wantStatuses)
	}
}

// TestOpenAPIPerKey checks that a key gets the document of exactly its own
// operations, and that a key that is not valid is refused as usual.
func TestOpenAPIPerKey(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	publicOps := []string{"get_health", "get_openapi_document", "whoami"}
	opsOf := func(body []byte) []string {
		t.Helper()
		doc := loadOpenAPI(t, body)
		var out []string
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				out = append(out, op.OperationID)
			}
		}
		slices.Sort(out)
		return out
	}
	want := func(scopes ...store.Scope) []string {
		out := slices.Clone(publicOps)
		for _, op := range store.Operations {
			if op.Scope != "" && slices.Contains(scopes, op.Scope) {
				out = append(out, op.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	schemasOf := func(body []byte) map[string]bool {
		var d struct {
			Components struct {
				Schemas map[string]any `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for k := range d.Components.Schemas {
			out[k] = true
		}
		return out
	}

	t.Run("read:accounts", func(t *testing.T) {
		k, key := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ReadScope("accounts")}, nil)
		body := getDoc(t, e, api.OpenAPIPath, key).body
		got := opsOf(body)
		if w := []string{"get_account", "get_health", "get_openapi_document", "list_accounts", "whoami"}; !slices.Equal(got, w) {
			t.Fatalf("operations %v, want %v", got, w)
		}
		schemas := schemasOf(body)
		for _, s := range []string{"Account", "AccountPage", "Tombstone", "Me"} {
			if !schemas[s] {
				t.Errorf("schema %s missing", s)
			}
		}
		for _, s := range []string{"Contact", "AccountCreate", "AccountPatch", "UsageEvent", "AccountBatchResponse"} {
			if schemas[s] {
				t.Errorf("schema %s of an operation the key cannot call is included", s)
			}
		}
		var d struct {
			Info struct {
				Description string `json:"description"`
			} `json:"info"`
			Key struct {
				ID     string   `json:"id"`
				Scopes []string `json:"scopes"`
			} `json:"x-hustack-key"`
		}
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		if d.Key.ID != k.ID || !slices.Equal(d.Key.Scopes, []string{"read:accounts"}) {
			t.Errorf("x-hustack-key %+v", d.Key)
		}
		if !strings.Contains(d.Info.Description, "read:accounts") || strings.Contains(string(body), key) {
			t.Error("description does not name the key's scopes, or the document holds the raw key")
		}
	})
	t.Run("scope sets", func(t *testing.T) {
		for _, scopes := range [][]store.Scope{
			{store.ScopeUsage},
			{store.WriteScope("deals")},
			{store.ReadScope("notes"), store.WriteScope("notes"), store.ReadScope("leads")},
			store.AllScopes(),
		} {
			_, key := e.newKey(e.svc, e.wsA.ID, scopes, nil)
			if got, w := opsOf(getDoc(t, e, api.OpenAPIPath, key).body), want(scopes...); !slices.Equal(got, w) {
				t.Errorf("scopes %v: operations %v, want %v", scopes, got, w)
			}
		}
	})
	t.Run("each key its own document", func(t *testing.T) {
		// Two keys with the same scopes, each asked twice: the documents
		// (cached per key) name their own key.
		scopes := []store.Scope{store.ReadScope("deals")}
		k1, raw1 := e.newKey(e.svc, e.wsA.ID, scopes, nil)
		k2, raw2 := e.newKey(e.svc, e.wsB.ID, scopes, nil)
		for range 2 {
			for _, k := range []struct{ id, raw string }{{k1.ID, raw1}, {k2.ID, raw2}} {
				var d struct {
					Key struct {
						ID string `json:"id"`
					} `json:"x-hustack-key"`
				}
				if err := json.Unmarshal(getDoc(t, e, api.OpenAPIPath, k.raw).body, &d); err != nil || d.Key.ID != k.id {
					t.Errorf("document for key %s names key %q (%v)", k.id, d.Key.ID, err)
				}
				if page := string(getDoc(t, e, api.DocsPath, k.raw).body); !strings.Contains(page, k.raw[:14]) {
					t.Errorf("page for key %s does not show its prefix", k.id)
				}
			}
		}
	})
	t.Run("vendor key: the filter and the stamped values", func(t *testing.T) {
		filter := map[string]string{"source": "Vendor XYZ", "status": "New"}
		k, key := e.newFilteredKey(e.wsA.ID, []store.Scope{store.ReadScope("leads"), store.WriteScope("leads")}, filter)
		body := getDoc(t, e, api.OpenAPIPath, key).body
		doc := loadOpenAPI(t, body)
		var d struct {
			Info struct {
				Description string `json:"description"`
			} `json:"info"`
			Key struct {
				ID     string            `json:"id"`
				Filter map[string]string `json:"filter"`
			} `json:"x-hustack-key"`
		}
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		if d.Key.ID != k.ID || len(d.Key.Filter) != 2 || d.Key.Filter["source"] != "Vendor XYZ" || d.Key.Filter["status"] != "New" {
			t.Errorf("x-hustack-key %+v", d.Key)
		}
		if !strings.Contains(d.Info.Description, "`source` = \"Vendor XYZ\" and `status` = \"New\"") {
			t.Errorf("description does not show the filter: %s", d.Info.Description)
		}
		n := 0
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				if !strings.HasSuffix(op.OperationID, "lead") && !strings.HasSuffix(op.OperationID, "leads") {
					if _, ok := op.Extensions["x-hustack-filter"]; ok {
						t.Errorf("%s has x-hustack-filter", op.OperationID)
					}
					continue
				}
				n++
				f, _ := op.Extensions["x-hustack-filter"].(map[string]any)
				if len(f) != 2 || f["source"] != "Vendor XYZ" || f["status"] != "New" {
					t.Errorf("%s: x-hustack-filter %v", op.OperationID, op.Extensions["x-hustack-filter"])
				}
				if !strings.Contains(op.Description, `"Vendor XYZ"`) {
					t.Errorf("%s: description does not show the filter: %s", op.OperationID, op.Description)
				}
				if strings.HasPrefix(op.OperationID, "create") && !strings.Contains(op.Description, "stamped with") {
					t.Errorf("%s: description does not show the stamped values: %s", op.OperationID, op.Description)
				}
			}
		}
		if n != 8 {
			t.Errorf("%d lead operations, want 8", n)
		}
		create := doc.Components.Schemas["LeadCreate"].Value.Properties["source"].Value
		if !strings.Contains(create.Description, `always "Vendor XYZ"`) {
			t.Errorf("LeadCreate.source: %q", create.Description)
		}
		page := string(getDoc(t, e, api.DocsPath, key).body)
		if !strings.Contains(page, "record filter") || !strings.Contains(page, "<code>source</code> = <code>Vendor XYZ</code>") {
			t.Error("the page does not show the filter")
		}
		// An unfiltered key's document says nothing of filters.
		if plain := string(getDoc(t, e, api.OpenAPIPath, e.keyA).body); strings.Contains(plain, "x-hustack-filter") || strings.Contains(plain, "Through this API key") {
			t.Error("an unfiltered key's document shows a filter")
		}
	})
	t.Run("no key", func(t *testing.T) {
		if got, w := opsOf(getDoc(t, e, api.OpenAPIPath, "").body), want(store.AllScopes()...); !slices.Equal(got, w) {
			t.Errorf("operations %v, want %v", got, w)
		}
	})
	run(t, e, []group{
		{400, []scenario{
			{name: "unknown parameter", req: request{method: "GET", path: api.OpenAPIPath + "?format=yaml"}, msg: []string{`"format"`}},
			{name: "unknown parameter with key", req: request{method: "GET", path: api.OpenAPIPath + "?x=1", key: e.keyA}},
		}},
		{401, []scenario{
			{name: "invalid key", req: request{method: "GET", path: api.OpenAPIPath, key: store.KeyPrefix + strings.Repeat("A", 40)}, msg: []string{"Invalid API key."}},
			{name: "empty bearer", req: request{method: "GET", path: api.OpenAPIPath, header: map[string]string{"Authorization": "Bearer "}}},
			{name: "key in query", req: request{method: "GET", path: api.OpenAPIPath + "?api_key=" + e.keyA}, msg: []string{"query string"}},
			{name: "docs with invalid key", req: request{method: "GET", path: api.DocsPath, key: "garbage"}},
		}},
		{410, []scenario{
			{name: "revoked", req: request{method: "GET", path: api.OpenAPIPath, key: e.revoked}, code: "revoked_key"},
			{name: "expired", req: request{method: "GET", path: api.OpenAPIPath, key: e.expired}, code: "expired_key"},
		}},
	})
	t.Run("usage recorded for keyed requests only", func(t *testing.T) {
		e.usage.reset()
		getDoc(t, e, api.OpenAPIPath, "")
		getDoc(t, e, api.OpenAPIPath, e.keyA)
		evs := e.usage.wait(t, 1)
		if len(evs) != 1 || evs[0].Route != api.OpenAPIPath || evs[0].KeyID != e.keyAID {
			t.Errorf("usage events %+v", evs)
		}
	})
}

// TestOpenAPIWriteFile writes the full document to $HUSTACK_OPENAPI_OUT, for
// CI to generate a client from (.ci/openapi-client).
func TestOpenAPIWriteFile(t *testing.T) {
	out := os.Getenv("HUSTACK_OPENAPI_OUT")
	if out == "" {
		t.Skip("HUSTACK_OPENAPI_OUT not set")
	}
	data := api.OpenAPIJSON(nil)
	loadOpenAPI(t, data)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, data, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Clean(out), pretty.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOpenAPIForKey measures building the document of one key, which
// happens on every request for it with a key (the public one is built once).
func BenchmarkOpenAPIForKey(b *testing.B) {
	p := &store.Principal{WorkspaceID: store.NewID(), KeyID: store.NewID(), KeyName: "bench", KeyPrefix: "hs_live_abcdef",
		Scopes: []store.Scope{store.ReadScope("accounts"), store.WriteScope("accounts"), store.ReadScope("contacts")}}
	b.ReportAllocs()
	for b.Loop() {
		if len(api.OpenAPIJSON(p)) == 0 {
			b.Fatal("empty document")
		}
	}
}
