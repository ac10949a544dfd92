package api

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

//go:embed docs/page.html.tmpl docs/hustack.css docs/overview.md
var docsFiles embed.FS

var (
	docsTemplate = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{"filterPairs": filterPairs}).
			ParseFS(docsFiles, "docs/page.html.tmpl"))
	docsCSS = must(docsFiles.ReadFile("docs/hustack.css"))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// docsCSP lets the documentation page load its own style sheet and nothing
// else: no scripts, no inline styles, no other origins.
const docsCSP = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// The documents without a key are the same for every caller: built once.
// Those of a key are kept for a while, as keys ask for them again.
var (
	publicOpenAPI = sync.OnceValue(func() []byte { return OpenAPIJSON(nil) })
	publicDocs    = sync.OnceValue(func() []byte { return must(renderDocs(buildOpenAPI(nil))) })
	keyOpenAPI    = &docCache{build: func(p *store.Principal) ([]byte, error) { return OpenAPIJSON(p), nil }}
	keyDocs       = &docCache{build: func(p *store.Principal) ([]byte, error) { return renderDocs(buildOpenAPI(p)) }}
)

// docCache keeps the documents of recently seen keys. Everything a
// document shows of its key (id, name, prefix, scopes, filter) is in the
// cache key, so a changed key gets a new document.
type docCache struct {
	build func(p *store.Principal) ([]byte, error)
	mu    sync.Mutex
	docs  map[string][]byte
}

// maxCachedDocs bounds a docCache; when it is full it starts over.
const maxCachedDocs = 256

func (dc *docCache) get(p *store.Principal) ([]byte, error) {
	var k strings.Builder
	for _, part := range []string{p.KeyID, p.KeyName, p.KeyPrefix} {
		k.WriteString(strconv.Itoa(len(part)) + ":" + part)
	}
	for _, sc := range p.Scopes {
		k.WriteString("," + string(sc))
	}
	for _, f := range slices.Sorted(maps.Keys(p.Filter)) {
		v := p.Filter[f]
		k.WriteString(";" + strconv.Itoa(len(f)) + ":" + f + strconv.Itoa(len(v)) + ":" + v)
	}
	dc.mu.Lock()
	b, ok := dc.docs[k.String()]
	dc.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := dc.build(p)
	if err != nil {
		return nil, err
	}
	dc.mu.Lock()
	if dc.docs == nil || len(dc.docs) >= maxCachedDocs {
		dc.docs = map[string][]byte{}
	}
	dc.docs[k.String()] = b
	dc.mu.Unlock()
	return b, nil
}

// filterPair is one field of a record filter, for the HTML page.
type filterPair struct{ Name, Value string }

// filterPairs lists a record filter's fields in name order.
func filterPairs(f map[string]string) []filterPair {
	var out []filterPair
	for _, k := range slices.Sorted(maps.Keys(f)) {
		out = append(out, filterPair{k, f[k]})
	}
	return out
}

// registerDocs serves the OpenAPI document and its HTML page. Both are
// public; a request that carries a key (in the Authorization header, or
// refused in the query string) goes through the authenticated chain and
// gets the document of that key's operations.
func registerDocs(r gin.IRouter, s *server) {
	keyed := []gin.HandlerFunc{s.authenticate, s.recordUsage(store.TransportREST), s.recovery, s.rateLimit}
	serve := func(public func() []byte, forKey func(p *store.Principal) ([]byte, error), contentType string) []gin.HandlerFunc {
		write := func(c *gin.Context, body []byte) {
			if contentType != gin.MIMEJSON {
				c.Header("Content-Security-Policy", docsCSP)
			}
			c.Data(http.StatusOK, contentType+"; charset=utf-8", body)
		}
		anonymous := func(c *gin.Context) {
			if len(c.Request.Header.Values("Authorization")) > 0 || keyInQuery(c.Request.URL.RawQuery) {
				return // on to the authenticated chain
			}
			c.Abort()
			if _, err := parseQuery(c.Request.URL.RawQuery, nil); err != nil {
				s.writeError(c, err)
				return
			}
			write(c, public())
		}
		withKey := func(c *gin.Context) {
			if _, err := parseQuery(c.Request.URL.RawQuery, nil); err != nil {
				s.writeError(c, err)
				return
			}
			p, _ := store.PrincipalFromContext(c.Request.Context())
			body, err := forKey(&p)
			if err != nil {
				s.writeError(c, err)
				return
			}
			write(c, body)
		}
		return slices.Concat([]gin.HandlerFunc{anonymous}, keyed, []gin.HandlerFunc{withKey})
	}
	r.GET(OpenAPIPath, serve(publicOpenAPI, keyOpenAPI.get, gin.MIMEJSON)...)
	r.GET(DocsPath, serve(publicDocs, keyDocs.get, gin.MIMEHTML)...)
	r.GET(DocsCSSPath, func(c *gin.Context) {
		c.Data(http.StatusOK, "text/css; charset=utf-8", docsCSS)
	})
}

// renderDocs renders a document as a self-contained HTML page.
func renderDocs(doc *oaDocument) ([]byte, error) {
	var b bytes.Buffer
	if err := docsTemplate.Execute(&b, newDocsPage(doc)); err != nil {
		return nil, fmt.Errorf("api: render docs: %w", err)
	}
	return b.Bytes(), nil
}

// docsPage is what the HTML template shows, read from the document.
type docsPage struct {
	Title, Version, Summary string
	OpenAPIVersion          string
	OpenAPIPath, CSSPath    string
	Intro                   []docsText
	Key                     *oaKeyInfo
	Auth                    docsText
	Headers                 []docsHeader
	Tags                    []docsTag
	Events                  []docsEvent
	Scopes                  []docsScope
	Errors                  []docsError
	Schemas                 []docsSchema
}

// docsText is a paragraph: plain text with `code` spans.
type docsText []docsSpan

type docsSpan struct {
	Text string
	Code bool
}

// text splits s at backquotes into plain and code spans.
func text(s string) docsText {
	var out docsText
	for i, part := range strings.Split(s, "`") {
		if part != "" {
			out = append(out, docsSpan{Text: part, Code: i%2 == 1})
		}
	}
	return out
}

type docsTag struct {
	Name, Description string
	Ops               []docsOp
}

type docsOp struct {
	ID, Method, Path, Summary string
	Description               docsText
	Scopes                    []string
	Public                    bool // callable without a key
	Params                    []docsParam
	Body                      *docsBody
	Responses                 []docsResponse
}

// docsEvent is one webhook of the document: a group of events the API
// POSTs to a subscription's URL.
type docsEvent struct {
	Name, ID, Summary string
	Description       docsText
	Scopes            []string
	Params            []docsParam
	Body              *docsBody
	BodyProps         []docsProp // the members of the event
	Responses         []docsEventResponse
}

type docsEventResponse struct {
	Status      string
	Description docsText
	Headers     []string
}

type docsParam struct {
	Name, In    string
	Required    bool
	Type        docsType
	Description docsText
}

type docsBody struct {
	Description docsText
	Type        docsType
}

type docsResponse struct {
	Status      int
	Description docsText
	Type        docsType // success bodies
	Codes       []string // error codes
	Headers     []string // beyond those every response carries
}

type docsHeader struct {
	Name, In    string
	Description docsText
	Type        docsType
}

// commonHeaders are on (nearly) every response; the page lists them once.
var commonHeaders = []string{RequestIDHeader, "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

// headerOrder is the order of the page's header list.
var headerOrder = []string{RequestIDHeader, "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
	"Retry-After", IdempotentReplayedHeader, "Location", "WWW-Authenticate"}

// docsType describes a schema in words; parts with Href link to a named
// schema.
type docsType []docsTypePart

type docsTypePart struct {
	Text, Href string
}

type docsSchema struct {
	Name        string
	Description docsText
	Type        docsType // for schemas that are not objects
	Props       []docsProp
	Notes       []string
}

type docsProp struct {
	Name        string
	Required    bool
	Type        docsType
	Description docsText
}

type docsScope struct {
	Scope string
	Ops   []string
}

type docsError struct {
	Code        string
	Status      int
	Description docsText
}

func newDocsPage(doc *oaDocument) docsPage {
	p := docsPage{
		Title: doc.Info.Title, Version: doc.Info.Version, Summary: doc.Info.Summary,
		OpenAPIVersion: doc.OpenAPI, OpenAPIPath: OpenAPIPath, CSSPath: DocsCSSPath,
		Key: doc.Key,
	}
	for para := range strings.SplitSeq(doc.Info.Description, "\n\n") {
		p.Intro = append(p.Intro, text(para))
	}
	if sch, ok := doc.Components.SecuritySchemes[bearerScheme]; ok {
		p.Auth = text(sch.Description)
	}
	for _, prm := range doc.Components.Parameters {
		p.Headers = append(p.Headers, docsHeader{Name: prm.Name, In: "request", Description: text(prm.Description), Type: typeOf(prm.Schema)})
	}
	names := make([]string, 0, len(doc.Components.Headers))
	for name := range doc.Components.Headers {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(headerOrder, a), slices.Index(headerOrder, b)
		if ia != ib {
			if ia < 0 {
				return 1
			}
			if ib < 0 {
				return -1
			}
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		h := doc.Components.Headers[name]
		p.Headers = append(p.Headers, docsHeader{Name: name, In: "response", Description: text(h.Description), Type: typeOf(h.Schema)})
	}

	tags := map[string]*docsTag{}
	for _, t := range doc.Tags {
		p.Tags = append(p.Tags, docsTag{Name: t.Name, Description: t.Description})
	}
	for i := range p.Tags {
		tags[p.Tags[i].Name] = &p.Tags[i]
	}
	byScope := map[string][]string{}
	var anyKey, public []string
	var all []*oaOperation
	for _, path := range doc.Paths {
		it := path.Item
		for _, o := range []*oaOperation{it.Get, it.Put, it.Post, it.Delete, it.Patch} {
			if o != nil {
				all = append(all, o)
			}
		}
	}
	slices.SortFunc(all, func(a, b *oaOperation) int { return a.seq - b.seq })
	for _, o := range all {
		op := docsOpOf(doc, o)
		if t := tags[o.Tags[0]]; t != nil {
			t.Ops = append(t.Ops, op)
		}
		switch {
		case op.Public:
			public = append(public, o.OperationID)
		case len(o.RequiredScopes) == 0:
			anyKey = append(anyKey, o.OperationID)
		}
		for _, sc := range o.RequiredScopes {
			byScope[sc] = append(byScope[sc], o.OperationID)
		}
	}
	for _, sc := range store.AllScopes() {
		if ops := byScope[string(sc)]; len(ops) > 0 {
			p.Scopes = append(p.Scopes, docsScope{Scope: string(sc), Ops: ops})
		}
	}
	if len(anyKey) > 0 {
		p.Scopes = append(p.Scopes, docsScope{Scope: "any valid key", Ops: anyKey})
	}
	if len(public) > 0 {
		p.Scopes = append(p.Scopes, docsScope{Scope: "no key", Ops: public})
	}

	for code, st := range statusByCode {
		p.Errors = append(p.Errors, docsError{Code: code, Status: st, Description: text(errorCodeDescriptions[code])})
	}
	slices.SortFunc(p.Errors, func(a, b docsError) int {
		if a.Status != b.Status {
			return a.Status - b.Status
		}
		return strings.Compare(a.Code, b.Code)
	})

	for _, w := range doc.Webhooks {
		if o := w.Item.Post; o != nil {
			p.Events = append(p.Events, docsEventOf(doc, w.Path, o))
		}
	}

	for _, ns := range doc.Components.Schemas {
		p.Schemas = append(p.Schemas, docsSchemaOf(ns.Name, ns.Schema))
	}
	return p
}

// docsEventOf describes the webhook name, whose operation is o.
func docsEventOf(doc *oaDocument, name string, o *oaOperation) docsEvent {
	op := docsOpOf(doc, o)
	ev := docsEvent{Name: name, ID: o.OperationID, Summary: o.Summary, Description: op.Description,
		Scopes: o.RequiredScopes, Params: op.Params, Body: op.Body}
	if rb := o.RequestBody; rb != nil {
		if c, ok := rb.Content["application/json"]; ok && c.Schema != nil {
			ev.BodyProps = docsSchemaOf("", c.Schema).Props
		}
	}
	for _, r := range o.Responses {
		er := docsEventResponse{Status: r.name(), Description: text(r.Description)}
		for _, h := range r.Headers {
			er.Headers = append(er.Headers, h.Name)
		}
		ev.Responses = append(ev.Responses, er)
	}
	return ev
}

func docsOpOf(doc *oaDocument, o *oaOperation) docsOp {
	op := docsOp{ID: o.OperationID, Method: o.method, Path: o.path, Summary: o.Summary,
		Description: text(o.Description), Scopes: o.RequiredScopes}
	for _, req := range o.Security {
		if len(req) == 0 {
			op.Public = true
		}
	}
	if len(o.Security) == 0 {
		op.Public = true
	}
	for _, prm := range o.Parameters {
		if prm.Ref != "" {
			prm = doc.Components.Parameters[strings.TrimPrefix(prm.Ref, "#/components/parameters/")]
		}
		if prm == nil {
			continue
		}
		op.Params = append(op.Params, docsParam{Name: prm.Name, In: prm.In, Required: prm.Required,
			Type: typeOf(prm.Schema), Description: text(prm.Description)})
	}
	if rb := o.RequestBody; rb != nil {
		op.Body = &docsBody{Description: text(rb.Description), Type: typeOf(rb.Content["application/json"].Schema)}
	}
	for _, r := range o.Responses {
		desc := r.desc
		if desc == "" {
			desc = r.Description
		}
		dr := docsResponse{Status: r.status, Description: text(desc), Codes: r.codes}
		if c, ok := r.Content["application/json"]; ok && len(r.codes) == 0 {
			dr.Type = typeOf(c.Schema)
		}
		for _, h := range r.Headers {
			if !slices.Contains(commonHeaders, h.Name) {
				dr.Headers = append(dr.Headers, h.Name)
			}
		}
		op.Responses = append(op.Responses, dr)
	}
	return op
}

func docsSchemaOf(name string, s *oaSchema) docsSchema {
	ds := docsSchema{Name: name, Description: text(s.Description)}
	if len(s.Properties) == 0 {
		ds.Type = typeOf(&oaSchema{Type: s.Type, Format: s.Format, Enum: s.Enum, Pattern: s.Pattern,
			MinLength: s.MinLength, MaxLength: s.MaxLength, Minimum: s.Minimum, Maximum: s.Maximum,
			Items: s.Items, OneOf: s.OneOf, AnyOf: s.AnyOf, AdditionalProperties: s.AdditionalProperties})
	}
	for _, pr := range s.Properties {
		ds.Props = append(ds.Props, docsProp{Name: pr.Name, Required: slices.Contains(s.Required, pr.Name),
			Type: typeOf(pr.Schema), Description: text(pr.Schema.Description)})
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema == nil {
		ds.Notes = append(ds.Notes, "No other properties are accepted.")
	}
	if len(s.AnyOf) > 0 && len(s.Properties) > 0 {
		var names []string
		for _, alt := range s.AnyOf {
			names = append(names, alt.Required...)
		}
		ds.Notes = append(ds.Notes, "At least one of "+strings.Join(names, ", ")+" must be set.")
	}
	return ds
}

// typeOf describes a schema in a few words: its type or the schema it
// refers to, its format, and its constraints.
func typeOf(s *oaSchema) docsType {
	if s == nil {
		return nil
	}
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		return docsType{{Text: name, Href: "#schema-" + name}}
	}
	var t docsType
	add := func(text string) { t = append(t, docsTypePart{Text: text}) }
	alts := s.OneOf
	if len(alts) == 0 && len(s.Type) == 0 {
		alts = s.AnyOf
	}
	if len(alts) > 0 {
		for i, alt := range alts {
			if i > 0 {
				add(" or ")
			}
			t = append(t, typeOf(alt)...)
		}
		return t
	}
	for i, name := range s.Type {
		if i > 0 {
			add(" or ")
		}
		if name == "array" && s.Items != nil {
			add("array of ")
			t = append(t, typeOf(s.Items)...)
			continue
		}
		if name == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			add("object of ")
			t = append(t, typeOf(s.AdditionalProperties.Schema)...)
			continue
		}
		add(name)
		if name != "null" && s.Format != "" {
			add(" (" + s.Format + ")")
		}
	}
	var notes []string
	if len(s.Enum) > 0 {
		var vals []string
		for _, v := range s.Enum {
			if v == nil {
				continue
			}
			vals = append(vals, fmt.Sprint(v))
		}
		notes = append(notes, "one of "+strings.Join(vals, ", "))
	}
	if s.Const != nil {
		notes = append(notes, fmt.Sprintf("always %v", s.Const))
	}
	if s.MinLength != nil && s.MaxLength != nil {
		notes = append(notes, fmt.Sprintf("%d to %d characters", *s.MinLength, *s.MaxLength))
	} else if s.MaxLength != nil {
		notes = append(notes, fmt.Sprintf("at most %d characters", *s.MaxLength))
	} else if s.MinLength != nil {
		notes = append(notes, "not empty")
	}
	if s.Pattern != "" {
		notes = append(notes, "matching "+s.Pattern)
	}
	if s.Minimum != nil && s.Maximum != nil {
		notes = append(notes, fmt.Sprintf("%v to %v", *s.Minimum, *s.Maximum))
	} else if s.Minimum != nil {
		notes = append(notes, fmt.Sprintf("≥ %v", *s.Minimum))
	}
	if s.MinItems != nil && s.MaxItems != nil {
		notes = append(notes, fmt.Sprintf("%d to %d items", *s.MinItems, *s.MaxItems))
	}
	if s.Default != nil {
		notes = append(notes, fmt.Sprintf("default %v", s.Default))
	}
	if len(notes) > 0 {
		add("; " + strings.Join(notes, "; "))
	}
	return t
}
