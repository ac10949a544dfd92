package api_test

import (
	"bytes"
	"errors"
	"html"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// TestDocsPage checks the HTML reference: self-contained, well formed, and
// listing every operation, scope, schema and error code of the document.
func TestDocsPage(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	r := getDoc(t, e, api.DocsPath, "")
	page := string(r.body)
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q allows scripts or inline content", csp)
	}
	checkHTML(t, r.body)
	if !strings.Contains(page, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
		t.Error("no viewport for phones")
	}

	doc := loadOpenAPI(t, api.OpenAPIJSON(nil))
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			i := strings.Index(page, `id="op-`+op.OperationID+`"`)
			if i < 0 {
				t.Errorf("operation %s not on the page", op.OperationID)
				continue
			}
			section := page[i:]
			if end := strings.Index(section, "</article>"); end > 0 {
				section = section[:end]
			}
			for _, want := range []string{method, html.EscapeString(path), html.EscapeString(op.Summary)} {
				if !strings.Contains(section, want) {
					t.Errorf("operation %s: %q not in its section", op.OperationID, want)
				}
			}
			for _, p := range op.Parameters {
				if !strings.Contains(section, "<code>"+p.Value.Name+"</code>") {
					t.Errorf("operation %s: parameter %s not listed", op.OperationID, p.Value.Name)
				}
			}
			for code := range op.Responses.Map() {
				if !strings.Contains(section, "<td>"+code+"</td>") {
					t.Errorf("operation %s: response %s not listed", op.OperationID, code)
				}
			}
			if raw, ok := op.Extensions["x-required-scopes"].([]any); ok && len(raw) > 0 {
				if !strings.Contains(section, "Scope: <code>"+raw[0].(string)+"</code>") {
					t.Errorf("operation %s: scope %v not shown", op.OperationID, raw[0])
				}
			}
		}
	}
	for name := range doc.Components.Schemas {
		if !strings.Contains(page, `id="schema-`+name+`"`) {
			t.Errorf("schema %s not on the page", name)
		}
	}
	for _, sc := range store.AllScopes() {
		if !strings.Contains(page, "<td><code>"+string(sc)+"</code></td>") {
			t.Errorf("scope %s not in the scope table", sc)
		}
	}
	for _, code := range []string{"bad_request", "unauthorized", "forbidden", "not_found", "conflict", "revoked_key", "expired_key",
		"payload_too_large", "unsupported_media_type", "idempotency_key_reused", "idempotency_key_in_use", "rate_limit_exceeded", "internal_server_error"} {
		if !strings.Contains(page, "<td><code>"+code+"</code></td>") {
			t.Errorf("error code %s not in the error table", code)
		}
	}
	for _, link := range hrefs(t, r.body) {
		if strings.HasPrefix(link, "#") {
			if !strings.Contains(page, `id="`+link[1:]+`"`) {
				t.Errorf("link %s leads nowhere", link)
			}
			continue
		}
		if link != api.DocsCSSPath && link != api.OpenAPIPath {
			t.Errorf("link to %q: the page must not load or link anything else", link)
		}
	}

	css := e.do(t, request{method: "GET", path: api.DocsCSSPath})
	if css.status != 200 || css.header.Get("Content-Type") != "text/css; charset=utf-8" || !bytes.Contains(css.body, []byte("@media")) {
		t.Errorf("style sheet: %d %q %s", css.status, css.header.Get("Content-Type"), clip(css.body))
	}
	if bytes.Contains(css.body, []byte("url(")) || bytes.Contains(css.body, []byte("@import")) {
		t.Error("the style sheet loads other resources")
	}
}

// TestDocsPageForKey checks the page of one key: only its operations, and
// the key's name escaped.
func TestDocsPageForKey(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	k, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wsA.ID, Name: `<script>alert("x")</script>`,
		Scopes: []store.Scope{store.ReadScope("accounts")}})
	if err != nil {
		t.Fatal(err)
	}
	r := getDoc(t, e, api.DocsPath, raw)
	page := string(r.body)
	checkHTML(t, r.body)
	if strings.Contains(page, "<script") {
		t.Error("the key's name is not escaped")
	}
	if !strings.Contains(page, html.EscapeString(k.Name)) || !strings.Contains(page, k.Prefix) {
		t.Error("the page does not name the key")
	}
	for _, op := range store.Operations {
		shown := strings.Contains(page, `id="op-`+op.Name+`"`)
		if want := op.Scope == "" || op.Scope == store.ReadScope("accounts"); shown != want {
			t.Errorf("operation %s shown %v, want %v", op.Name, shown, want)
		}
	}
	if r := e.do(t, request{method: "GET", path: api.DocsPath, key: e.revoked}); r.status != http.StatusGone {
		t.Errorf("revoked key: status %d", r.status)
	}
}

// checkHTML parses a page and checks that every element that must be
// closed is, in order, and that it holds no script or inline style.
func checkHTML(t *testing.T, page []byte) {
	t.Helper()
	void := map[string]bool{"meta": true, "link": true, "br": true, "hr": true, "img": true, "input": true, "wbr": true}
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	var stack []string
	for range 1_000_000 {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatalf("HTML: %v", z.Err())
			}
			if len(stack) > 0 {
				t.Fatalf("unclosed elements: %v", stack)
			}
			return
		case xhtml.StartTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			for hasAttr {
				var k []byte
				k, _, hasAttr = z.TagAttr()
				if a := string(k); a == "style" || strings.HasPrefix(a, "on") {
					t.Errorf("<%s> has an inline %s attribute", tag, a)
				}
			}
			if tag == "script" || tag == "style" || tag == "iframe" || tag == "img" {
				t.Errorf("the page has a <%s> element", tag)
			}
			if !void[tag] {
				stack = append(stack, tag)
			}
		case xhtml.EndTagToken:
			name, _ := z.TagName()
			if len(stack) == 0 || stack[len(stack)-1] != string(name) {
				t.Fatalf("</%s> closes %v", name, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
	t.Fatal("page too long to check")
}

// hrefs returns every href and src of a page.
func hrefs(t *testing.T, page []byte) []string {
	t.Helper()
	root, err := xhtml.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		for _, a := range n.Attr {
			if a.Key == "href" || a.Key == "src" {
				out = append(out, a.Val)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	slices.Sort(out)
	return slices.Compact(out)
}
