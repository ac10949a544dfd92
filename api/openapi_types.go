package api

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The subset of OpenAPI 3.1 that the generated document uses. Objects that
// are written with an order the reader cares about (schema properties,
// responses) are slices with their own MarshalJSON.

type oaDocument struct {
	OpenAPI  string       `json:"openapi"`
	Info     oaInfo       `json:"info"`
	Tags     []oaTag      `json:"tags"`
	Security []oaSecurity `json:"security"`
	Paths    oaPaths      `json:"paths"`
	// Webhooks are the requests the API sends: the event deliveries.
	Webhooks   oaPaths      `json:"webhooks,omitempty"`
	Components oaComponents `json:"components"`
	// Key is set on a document filtered for one API key.
	Key *oaKeyInfo `json:"x-hustack-key,omitempty"`
}

type oaInfo struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
}

// oaKeyInfo says which key a filtered document was made for.
type oaKeyInfo struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Prefix string   `json:"prefix"`
	Scopes []string `json:"scopes"`
	// Filter is the key's record filter (a vendor key), if any.
	Filter map[string]string `json:"filter,omitempty"`
}

type oaTag struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// oaSecurity is a security requirement: scheme name to required scopes (for
// an HTTP bearer scheme, OpenAPI 3.1 calls them role names).
type oaSecurity map[string][]string

// oaPaths is the paths object, in the order paths were added.
type oaPaths []oaPath

type oaPath struct {
	Path string
	Item *oaPathItem
}

func (ps oaPaths) MarshalJSON() ([]byte, error) {
	kv := make([]keyValue, len(ps))
	for i, p := range ps {
		kv[i] = keyValue{p.Path, p.Item}
	}
	return marshalOrdered(kv)
}

// item returns the path item of path, adding it if needed.
func (ps *oaPaths) item(path string) *oaPathItem {
	for _, p := range *ps {
		if p.Path == path {
			return p.Item
		}
	}
	it := &oaPathItem{}
	*ps = append(*ps, oaPath{Path: path, Item: it})
	return it
}

type oaPathItem struct {
	Get    *oaOperation `json:"get,omitempty"`
	Put    *oaOperation `json:"put,omitempty"`
	Post   *oaOperation `json:"post,omitempty"`
	Delete *oaOperation `json:"delete,omitempty"`
	Patch  *oaOperation `json:"patch,omitempty"`
}

// slot returns the field of the item that holds method's operation.
func (it *oaPathItem) slot(method string) **oaOperation {
	switch method {
	case "GET":
		return &it.Get
	case "PUT":
		return &it.Put
	case "POST":
		return &it.Post
	case "DELETE":
		return &it.Delete
	case "PATCH":
		return &it.Patch
	}
	return nil
}

type oaOperation struct {
	OperationID string         `json:"operationId"`
	Tags        []string       `json:"tags"`
	Summary     string         `json:"summary"`
	Description string         `json:"description,omitempty"`
	Parameters  []*oaParameter `json:"parameters,omitempty"`
	RequestBody *oaRequestBody `json:"requestBody,omitempty"`
	Responses   oaResponses    `json:"responses"`
	Security    []oaSecurity   `json:"security"`
	// RequiredScopes lists the scope the operation requires (none: any
	// valid key, or no key at all for the public operations).
	RequiredScopes []string `json:"x-required-scopes"`
	// Filter is the record filter that applies to the operation in a
	// document made for a vendor key: the field values every record it
	// reads must have and every record it writes is stamped with.
	Filter map[string]string `json:"x-hustack-filter,omitempty"`

	method, path string // for the HTML page
	seq          int    // the order operations were added in
}

type oaParameter struct {
	Ref         string    `json:"$ref,omitempty"`
	Name        string    `json:"name,omitempty"`
	In          string    `json:"in,omitempty"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required,omitempty"`
	Schema      *oaSchema `json:"schema,omitempty"`
}

type oaRequestBody struct {
	Description string               `json:"description,omitempty"`
	Required    bool                 `json:"required"`
	Content     map[string]oaContent `json:"content"`
}

type oaContent struct {
	Schema *oaSchema `json:"schema"`
}

type oaResponse struct {
	Description string               `json:"description"`
	Headers     oaHeaders            `json:"headers,omitempty"`
	Content     map[string]oaContent `json:"content,omitempty"`

	status int
	// key, when set, is written instead of status: a range such as 2XX,
	// or default.
	key   string
	codes []string // error codes, for the HTML page
	desc  string   // the description without the list of codes
}

// name is the response's key in its operation's responses.
func (r *oaResponse) name() string {
	if r.key != "" {
		return r.key
	}
	return strconv.Itoa(r.status)
}

type oaResponses []*oaResponse

func (rs oaResponses) MarshalJSON() ([]byte, error) {
	kv := make([]keyValue, len(rs))
	for i, r := range rs {
		kv[i] = keyValue{r.name(), r}
	}
	return marshalOrdered(kv)
}

type oaHeader struct {
	Ref         string    `json:"$ref,omitempty"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required,omitempty"`
	Schema      *oaSchema `json:"schema,omitempty"`
}

// oaHeaders maps header names to headers, in the order they were added.
type oaHeaders []oaNamedHeader

type oaNamedHeader struct {
	Name   string
	Header *oaHeader
}

func (hs oaHeaders) MarshalJSON() ([]byte, error) {
	kv := make([]keyValue, len(hs))
	for i, h := range hs {
		kv[i] = keyValue{h.Name, h.Header}
	}
	return marshalOrdered(kv)
}

type oaComponents struct {
	Schemas         oaSchemas                   `json:"schemas"`
	Parameters      map[string]*oaParameter     `json:"parameters,omitempty"`
	Headers         map[string]*oaHeader        `json:"headers,omitempty"`
	SecuritySchemes map[string]oaSecurityScheme `json:"securitySchemes"`
}

// oaSchemas are the named schemas, in the order they were added.
type oaSchemas []oaNamedSchema

type oaNamedSchema struct {
	Name   string
	Schema *oaSchema
}

func (ss oaSchemas) MarshalJSON() ([]byte, error) {
	kv := make([]keyValue, len(ss))
	for i, s := range ss {
		kv[i] = keyValue{s.Name, s.Schema}
	}
	return marshalOrdered(kv)
}

func (ss oaSchemas) has(name string) bool {
	for _, s := range ss {
		if s.Name == name {
			return true
		}
	}
	return false
}

type oaSecurityScheme struct {
	Type         string `json:"type"`
	Scheme       string `json:"scheme"`
	BearerFormat string `json:"bearerFormat,omitempty"`
	Description  string `json:"description,omitempty"`
}

// oaSchema is a JSON Schema 2020-12 schema, as OpenAPI 3.1 uses it.
type oaSchema struct {
	Ref                  string        `json:"$ref,omitempty"`
	Type                 oaTypes       `json:"type,omitempty"`
	Format               string        `json:"format,omitempty"`
	Description          string        `json:"description,omitempty"`
	Enum                 []any         `json:"enum,omitempty"`
	Const                any           `json:"const,omitempty"`
	Default              any           `json:"default,omitempty"`
	MinLength            *int          `json:"minLength,omitempty"`
	MaxLength            *int          `json:"maxLength,omitempty"`
	Pattern              string        `json:"pattern,omitempty"`
	Minimum              *float64      `json:"minimum,omitempty"`
	Maximum              *float64      `json:"maximum,omitempty"`
	Items                *oaSchema     `json:"items,omitempty"`
	MinItems             *int          `json:"minItems,omitempty"`
	MaxItems             *int          `json:"maxItems,omitempty"`
	Properties           oaProps       `json:"properties,omitempty"`
	Required             []string      `json:"required,omitempty"`
	AdditionalProperties *oaAdditional `json:"additionalProperties,omitempty"`
	OneOf                []*oaSchema   `json:"oneOf,omitempty"`
	AnyOf                []*oaSchema   `json:"anyOf,omitempty"`
	Examples             []any         `json:"examples,omitempty"`
}

// oaTypes is a schema's type: one name, or a list such as ["string", "null"].
type oaTypes []string

func (t oaTypes) MarshalJSON() ([]byte, error) {
	if len(t) == 1 {
		return json.Marshal(t[0])
	}
	return json.Marshal([]string(t))
}

// oaProps are a schema's properties, in declaration order.
type oaProps []oaProp

type oaProp struct {
	Name   string
	Schema *oaSchema
}

func (ps oaProps) MarshalJSON() ([]byte, error) {
	kv := make([]keyValue, len(ps))
	for i, p := range ps {
		kv[i] = keyValue{p.Name, p.Schema}
	}
	return marshalOrdered(kv)
}

type keyValue struct {
	key   string
	value any
}

// marshalOrdered writes a JSON object with its members in the given order.
func marshalOrdered(kv []keyValue) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range kv {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.key)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// oaAdditional is a schema's additionalProperties: false (Schema nil), or
// the schema of every property's value.
type oaAdditional struct{ Schema *oaSchema }

func (a oaAdditional) MarshalJSON() ([]byte, error) {
	if a.Schema == nil {
		return []byte("false"), nil
	}
	return json.Marshal(a.Schema)
}

// noOtherProperties is additionalProperties: false.
func noOtherProperties() *oaAdditional { return &oaAdditional{} }

func intp(n int) *int           { return &n }
func floatp(f float64) *float64 { return &f }
