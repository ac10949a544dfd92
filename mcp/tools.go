package mcp

import (
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/hustack/hustack/store"
)

// registeredTool is one tool of the registry: an operation of the table and
// its MCP definition.
type registeredTool struct {
	op  store.Operation
	def mcp.Tool
}

// registry holds one tool per operation of store.Operations, in table order.
// An operation whose action has no tool form is left out; the parity test
// fails on it.
var registry, registryByName = buildRegistry()

func buildRegistry() ([]registeredTool, map[string]registeredTool) {
	var list []registeredTool
	byName := map[string]registeredTool{}
	for _, op := range store.Operations {
		def, ok := toolFor(op)
		if !ok {
			continue
		}
		t := registeredTool{op: op, def: def}
		list = append(list, t)
		byName[op.Name] = t
	}
	return list, byName
}

// Tools returns the definition of every tool, in the order of the operation
// table, whatever the caller's scopes. The schemas are shared with the
// server: do not modify them.
func Tools() []mcp.Tool {
	out := make([]mcp.Tool, len(registry))
	for i, t := range registry {
		out[i] = t.def
	}
	return out
}

// ToolScope returns the scope a tool requires ("" for none) and whether the
// tool exists.
func ToolScope(name string) (store.Scope, bool) {
	t, ok := registryByName[name]
	return t.op.Scope, ok
}

// toolFor builds the definition of op's tool.
func toolFor(op store.Operation) (mcp.Tool, bool) {
	var in, out schema
	var desc string
	r := op.Resource
	about := ""
	if r != nil {
		about = resourceSentence(r)
	}
	switch op.Action {
	case store.ActionList:
		in = listInput()
		out = pageSchema(recordSchema(r))
		desc = fmt.Sprintf("%s %s\n\nReturns {data, pagination}: up to limit %s and pagination {limit, offset, has_more}. "+
			"When has_more is true, call again with offset increased by limit. Use get_%s for one %s by id.",
			op.Summary, about, r.Name, r.Singular, r.Singular)
	case store.ActionGet:
		in = getInput(r)
		out = recordSchema(r)
		desc = fmt.Sprintf("%s %s\n\nReturns the %s with all its fields (null when unset). "+
			"An id that does not exist in this workspace answers not_found.",
			op.Summary, about, r.Singular)
	case store.ActionCreate:
		in = createInput(r)
		out = recordSchema(r)
		desc = fmt.Sprintf("%s %s\n\nPass the %s's fields as arguments (%s). %s"+
			"Ids in reference fields must name records of this workspace; find them with the list_ and get_ tools. "+
			"Returns the new %s, including its id. Every call creates a new record: do not repeat a call that succeeded.",
			op.Summary, about, r.Singular, fieldSummary(r), oneOfSentence(r), r.Singular)
	case store.ActionWhoami:
		in = object(nil)
		out = meSchema()
		desc = op.Summary + " Call it first: you may only use the tools your key's scopes allow, " +
			"and every record you see or create belongs to this workspace."
	case store.ActionUsageCounts:
		in = usageCountsInput()
		out = object(props{
			{"data", arrayOf(usageCountSchema())},
			{"group_by", str("What the counts are grouped by.")},
		}, "data", "group_by")
		desc = op.Summary + "\n\nReturns {data: [{group, count, errors}], group_by}, ordered by group; errors counts responses " +
			"with status 400 or above. Filter by key_id and by a time range [from, to)."
	case store.ActionUsageLogs:
		in = usageLogsInput()
		out = pageSchema(usageEventSchema())
		desc = op.Summary + "\n\nEach entry is one authenticated request: method, route template, status, duration, " +
			"time, transport (rest or mcp) and the key that made it. Filter by key_id, status and a time range [from, to). " +
			"Paginated like the list tools: {data, pagination}."
	default:
		return mcp.Tool{}, false
	}
	in.strict = true
	if op.Scope != "" {
		desc += fmt.Sprintf(" Requires the %s scope.", op.Scope)
	}
	t := mcp.Tool{
		Name:         op.Name,
		Description:  desc,
		InputSchema:  mcp.ToolInputSchema(in.toolSchema()),
		OutputSchema: mcp.ToolOutputSchema(out.toolSchema()),
		Annotations:  annotations(op),
	}
	return t, true
}

// annotations sets every hint explicitly: unset hints default to
// destructive and open-world, which none of these tools is. Reads are
// idempotent; a create adds a new record on every call but never changes or
// removes existing data.
func annotations(op store.Operation) mcp.ToolAnnotation {
	return mcp.ToolAnnotation{
		Title:           title(op),
		ReadOnlyHint:    mcp.ToBoolPtr(op.ReadOnly),
		DestructiveHint: mcp.ToBoolPtr(false),
		IdempotentHint:  mcp.ToBoolPtr(op.ReadOnly),
		OpenWorldHint:   mcp.ToBoolPtr(false),
	}
}

func title(op store.Operation) string {
	switch op.Action {
	case store.ActionWhoami:
		return "Who am I"
	case store.ActionUsageCounts:
		return "Usage counts"
	case store.ActionUsageLogs:
		return "Usage logs"
	}
	s := strings.ReplaceAll(op.Name, "_", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// resourceSentence says what a record of r is: "An account is a company
// or organisation you do business with."
func resourceSentence(r *store.Resource) string {
	article := "A"
	if strings.ContainsRune("aeiou", rune(r.Singular[0])) {
		article = "An"
	}
	d := r.Description
	return fmt.Sprintf("%s %s is %s%s", article, r.Singular, strings.ToLower(d[:1]), d[1:])
}

func fieldSummary(r *store.Resource) string {
	var parts []string
	for _, f := range r.Fields {
		if f.Required {
			parts = append(parts, f.Name+" (required)")
		} else {
			parts = append(parts, f.Name)
		}
	}
	return strings.Join(parts, ", ")
}

func oneOfSentence(r *store.Resource) string {
	if len(r.OneOfRequired) == 0 {
		return ""
	}
	return fmt.Sprintf("At least one of %s is required. ", strings.Join(r.OneOfRequired, ", "))
}

// schema is a JSON Schema object with its properties in a fixed order.
type schema struct {
	props    props
	required []string
	// strict refuses properties not listed (additionalProperties: false),
	// for input schemas.
	strict bool
}

type prop struct {
	name string
	def  map[string]any
}

type props []prop

func object(p props, required ...string) schema { return schema{props: p, required: required} }

// toolSchema converts s to mcp-go's schema type, keeping property order.
func (s schema) toolSchema() mcp.ToolArgumentsSchema {
	out := mcp.ToolArgumentsSchema{
		Type:          "object",
		Properties:    make(map[string]any, len(s.props)),
		Required:      s.required,
		PropertyOrder: make([]string, 0, len(s.props)),
	}
	for _, p := range s.props {
		out.Properties[p.name] = p.def
		out.PropertyOrder = append(out.PropertyOrder, p.name)
	}
	if s.strict {
		out.AdditionalProperties = false
	}
	return out
}

// json returns s as a plain JSON Schema value, for nesting.
func (s schema) json() map[string]any {
	ps := make(map[string]any, len(s.props))
	for _, p := range s.props {
		ps[p.name] = p.def
	}
	m := map[string]any{"type": "object", "properties": ps}
	if s.strict {
		m["additionalProperties"] = false
	}
	if len(s.required) > 0 {
		m["required"] = s.required
	}
	return m
}

func arrayOf(items schema) map[string]any {
	return map[string]any{"type": "array", "items": items.json()}
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

func nullable(def map[string]any) map[string]any {
	out := make(map[string]any, len(def))
	for k, v := range def {
		out[k] = v
	}
	out["type"] = []string{def["type"].(string), "null"}
	return out
}

func with(def map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		def[kv[i].(string)] = kv[i+1]
	}
	return def
}

// Input schemas mirror the REST validation; the operations validate again
// and their messages are what a caller sees.

func listInput() schema {
	return object(props{
		{"limit", map[string]any{"type": "integer", "minimum": 1, "maximum": store.MaxLimit, "default": store.DefaultLimit,
			"description": fmt.Sprintf("How many items to return, 1 to %d. Defaults to %d.", store.MaxLimit, store.DefaultLimit)}},
		{"offset", map[string]any{"type": "integer", "minimum": 0, "default": 0,
			"description": "How many items to skip, for the next page. Defaults to 0."}},
	})
}

func getInput(r *store.Resource) schema {
	return object(props{
		{"id", with(str(fmt.Sprintf("The %s's id (a UUID), as returned by list_%s or create_%s.", r.Singular, r.Name, r.Singular)),
			"format", "uuid")},
	}, "id")
}

func createInput(r *store.Resource) schema {
	var s schema
	for _, f := range r.Fields {
		s.props = append(s.props, prop{f.Name, fieldInput(f)})
		if f.Required {
			s.required = append(s.required, f.Name)
		}
	}
	return s
}

func fieldInput(f store.Field) map[string]any {
	def := str(f.Description)
	switch f.Type {
	case store.FieldNumber:
		return map[string]any{"type": "number", "minimum": 0, "description": f.Description}
	case store.FieldEmail:
		def["format"] = "email"
	case store.FieldCurrency:
		with(def, "pattern", "^[A-Za-z]{3}$")
	case store.FieldEnum:
		def["enum"] = f.Enum
	case store.FieldRef:
		def["format"] = "uuid"
	}
	if f.MaxLen > 0 && f.Type != store.FieldRef {
		def["maxLength"] = f.MaxLen
	}
	if f.Default != nil {
		def["default"] = f.Default
	}
	return def
}

func usageFilterProps() props {
	return props{
		{"key_id", with(str("Only requests made with this API key id."), "format", "uuid")},
		{"from", with(str("Only requests at or after this time, RFC 3339 such as 2025-01-31T00:00:00Z."), "format", "date-time")},
		{"to", with(str("Only requests before this time, RFC 3339."), "format", "date-time")},
	}
}

func usageCountsInput() schema {
	groups := []string{string(store.GroupByDay), string(store.GroupByKey), string(store.GroupByRoute), string(store.GroupByStatus)}
	p := props{{"group_by", map[string]any{"type": "string", "enum": groups, "default": string(store.GroupByDay),
		"description": "What to count requests by: day (UTC), key, route or status. Defaults to day."}}}
	return object(append(p, usageFilterProps()...))
}

func usageLogsInput() schema {
	p := append(usageFilterProps(),
		prop{"status", map[string]any{"type": "integer", "minimum": 100, "maximum": 599,
			"description": "Only requests answered with this HTTP status."}})
	return object(append(p, listInput().props...))
}

// Output schemas describe exactly what the REST API answers.

func recordSchema(r *store.Resource) schema {
	s := schema{props: props{{"id", with(str("The record's id (a UUID)."), "format", "uuid")}}}
	for _, f := range r.Fields {
		out := map[string]any{"type": "string", "description": f.Description}
		if f.Type == store.FieldNumber {
			out["type"] = "number"
		}
		if f.Type == store.FieldEnum {
			out["enum"] = append(append([]any{}, anySlice(f.Enum)...), nil)
		}
		s.props = append(s.props, prop{f.Name, nullable(out)})
	}
	s.props = append(s.props,
		prop{"created_at", with(str("When the record was created, RFC 3339 UTC."), "format", "date-time")},
		prop{"updated_at", with(str("When the record was last changed, RFC 3339 UTC."), "format", "date-time")},
		prop{"created_via", str(`How the record was created: "api" for the REST API and MCP.`)},
		prop{"api_key_id", str("Id of the API key that created the record.")},
	)
	for _, p := range s.props {
		s.required = append(s.required, p.name)
	}
	return s
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func pageSchema(item schema) schema {
	return object(props{
		{"data", arrayOf(item)},
		{"pagination", object(props{
			{"limit", map[string]any{"type": "integer", "description": "The page size used."}},
			{"offset", map[string]any{"type": "integer", "description": "How many items were skipped."}},
			{"has_more", map[string]any{"type": "boolean", "description": "Whether another page follows."}},
		}, "limit", "offset", "has_more").json()},
	}, "data", "pagination")
}

func meSchema() schema {
	scopes := make([]any, 0, len(store.AllScopes()))
	for _, s := range store.AllScopes() {
		scopes = append(scopes, string(s))
	}
	return object(props{
		{"workspace", object(props{
			{"id", str("The workspace's id.")},
			{"name", str("The workspace's name.")},
		}, "id", "name").json()},
		{"key", object(props{
			{"id", str("The key's id.")},
			{"name", str("The key's name.")},
			{"prefix", str("The first characters of the key, for recognising it.")},
			{"scopes", map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": scopes},
				"description": "What the key may do, such as read:accounts or write:notes."}},
			{"rate_limit", str("Requests allowed per period, such as 100/10s.")},
			{"created_at", with(str("When the key was created."), "format", "date-time")},
			{"expires_at", with(nullable(str("When the key expires; null if never.")), "format", "date-time")},
		}, "id", "name", "prefix", "scopes", "expires_at").json()},
	}, "workspace", "key")
}

func usageCountSchema() schema {
	return object(props{
		{"group", str("The group: a day (YYYY-MM-DD), key id, route or status.")},
		{"count", map[string]any{"type": "integer", "description": "Number of requests."}},
		{"errors", map[string]any{"type": "integer", "description": "Number of requests answered with status 400 or above."}},
	}, "group", "count", "errors")
}

func usageEventSchema() schema {
	return object(props{
		{"id", str("The entry's id.")},
		{"workspace_id", str("The workspace's id.")},
		{"key_id", str("Id of the API key that made the request.")},
		{"method", str("HTTP method.")},
		{"route", str("Route template, such as /api/v1/accounts/:id.")},
		{"status", map[string]any{"type": "integer", "description": "HTTP status of the response."}},
		{"duration_ms", map[string]any{"type": "number", "description": "Time taken, in milliseconds."}},
		{"time", with(str("When the request was made, RFC 3339."), "format", "date-time")},
		{"request_id", str("The request's id (X-Request-Id).")},
		{"transport", str("rest or mcp.")},
		{"user_agent", str("The client's User-Agent.")},
	}, "id", "key_id", "method", "route", "status", "time")
}
