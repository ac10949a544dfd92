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
		in = listInput(r)
		out = pageSchema(listItemSchema(r))
		desc = fmt.Sprintf("%s %s\n\n"+
			"Returns {data, pagination}: up to limit %s, and pagination {limit, offset, has_more, next_cursor}. "+
			"To read further, call again with cursor set to next_cursor (null on the last page) and the same filters; "+
			"cursor paging neither skips nor repeats a record while others are added. "+
			"sort orders by created_at or updated_at, newest first with a leading minus (the default is -created_at). "+
			"Narrow the list with created_after, created_before, updated_after, updated_before (RFC 3339, exclusive), "+
			"with exact-match filters (%s) and with q, a case-insensitive search in %s. "+
			"To sync changes, sort by updated_at with updated_after set to the newest updated_at already seen, "+
			"and set include_deleted to also get recent deletions as {id, deleted: true, deleted_at}. "+
			"Use get_%s for one %s by id.",
			op.Summary, about, r.Name, strings.Join(r.FilterNames(), ", "), strings.Join(r.SearchFields, " and "),
			r.Singular, r.Singular)
	case store.ActionGet:
		in = idInput(fmt.Sprintf("The %s's id (a UUID), as returned by list_%s or create_%s.", r.Singular, r.Name, r.Singular))
		out = recordSchema(r)
		desc = fmt.Sprintf("%s %s\n\nReturns the %s with all its fields (null when unset). "+
			"An id that does not exist in this workspace answers not_found.",
			op.Summary, about, r.Singular)
	case store.ActionCreate:
		in = createInput(r)
		out = recordSchema(r)
		desc = fmt.Sprintf("%s %s\n\nPass the %s's fields as arguments (%s). %s"+
			"Ids in reference fields must name records of this workspace; find them with the list_ and get_ tools. "+
			"Returns the new %s, including its id. Every call creates a new record: do not repeat a call that succeeded, "+
			"and pass an idempotency_key to be able to retry one that may have failed. "+
			"To create or update a record kept in sync with another system, use upsert_%s.",
			op.Summary, about, r.Singular, fieldSummary(r), oneOfSentence(r), r.Singular, r.Singular)
	case store.ActionUpdate:
		in = updateInput(r)
		out = recordSchema(r)
		desc = fmt.Sprintf("%s %s\n\nPass the %s's id and only the fields to change (of %s). "+
			"A field set to null or \"\" is cleared; fields left out keep their values.%s "+
			"Returns the whole %s as updated. An id that does not exist in this workspace answers not_found.",
			op.Summary, about, r.Singular, fieldNames(r), notClearable(r), r.Singular)
	case store.ActionDelete:
		in = idInput(fmt.Sprintf("The id of the %s to delete.", r.Singular))
		out = deletedSchema(r)
		desc = fmt.Sprintf("%s %s\n\nThe %s disappears from get_%s and list_%s, and cannot be restored; "+
			"list_%s with include_deleted shows it as deleted for a while, so that sync clients notice. %s"+
			"Returns {id, deleted: true}. An id that does not exist in this workspace answers not_found.",
			op.Summary, about, r.Singular, r.Singular, r.Name, r.Name, referencedBy(r))
	case store.ActionUpsert:
		in = upsertInput(r)
		out = upsertedSchema(r)
		desc = fmt.Sprintf("%s %s\n\nFor one-way sync from another system: pass that system's id as external_id and "+
			"the fields. If no %s has this external_id, one is created, and the fields must be complete as for create_%s%s. "+
			"Otherwise only the fields given change, and null or \"\" clears an optional field. "+
			"Returns {created, data}: created is true when a new %s was made, data is the %s. "+
			"Repeating a call with the same arguments leaves the fields as they are (only updated_at advances).",
			op.Summary, about, r.Singular, r.Singular, requiredNote(r), r.Singular, r.Singular)
	case store.ActionBatchCreate:
		in = batchInput(createInput(r), fmt.Sprintf("The %s to create, 1 to %d, each an object with the fields of create_%s.",
			r.Name, store.MaxBatch, r.Singular))
		out = batchSchema(r)
		desc = fmt.Sprintf("%s %s\n\n%s A failed item does not stop the others: retry only the failed ones.",
			op.Summary, about, batchResultSentence(r, "201 when created"))
	case store.ActionBatchUpsert:
		in = batchInput(upsertInput(r), fmt.Sprintf("The %s to upsert, 1 to %d, each an object with external_id and "+
			"the fields, as the arguments of upsert_%s.", r.Name, store.MaxBatch, r.Singular))
		out = batchSchema(r)
		desc = fmt.Sprintf("%s %s\n\nEach record is created or updated by its external_id as upsert_%s does. %s",
			op.Summary, about, r.Singular, batchResultSentence(r, "201 when created, 200 when updated"))
	case store.ActionWhoami:
		in = object(nil)
		out = meSchema()
		desc = op.Summary + " Call it first: you may only use the tools your key's scopes allow, " +
			"and every record you see or create belongs to this workspace."
	case store.ActionUsageCounts:
		in = usageCountsInput()
		out = object(props{
			{"data", arrayOf(usageCountSchema().json())},
			{"group_by", str("What the counts are grouped by.")},
		}, "data", "group_by")
		desc = op.Summary + "\n\nReturns {data: [{group, count, errors}], group_by}, ordered by group; errors counts responses " +
			"with status 400 or above. Filter by key_id and by a time range [from, to)."
	case store.ActionUsageLogs:
		in = usageLogsInput()
		out = pageSchema(usageEventSchema().json())
		desc = op.Summary + "\n\nEach entry is one authenticated request: method, route template, status, duration, " +
			"time, transport (rest or mcp) and the key that made it. Filter by key_id, status and a time range [from, to). " +
			"Paginated like the list tools: {data, pagination}."
	default:
		var ok bool
		if in, out, desc, ok = keyTool(op); !ok {
			if in, out, desc, ok = webhookTool(op); !ok {
				return mcp.Tool{}, false
			}
		}
	}
	if takesIdempotencyKey(op) {
		in.props = append(in.props, prop{idempotencyKeyArg, idempotencyKeyInput()})
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

// idempotencyKeyArg is the argument of every write tool that makes a retry
// safe, like REST's Idempotency-Key header.
const idempotencyKeyArg = "idempotency_key"

// takesIdempotencyKey reports whether op's tool writes, and so takes an
// idempotency_key, as every REST route that writes takes an
// Idempotency-Key.
func takesIdempotencyKey(op store.Operation) bool { return !op.ReadOnly }

// annotations sets every hint explicitly: unset hints default to
// destructive, not idempotent and open-world. Reads change nothing. A
// create adds a record (or a key, a subscription) on every call but never
// changes existing data; so do a replay and a test, which add a delivery.
// An update or upsert may overwrite or clear fields, which is destructive
// in MCP's sense (not only additive), and repeating it changes nothing more
// (idempotent); so does a delete, which removes the record for good, a
// revocation, which ends a key for good, and a policy update, which
// replaces the policy. A rotation cuts the old key's life short
// (destructive) and makes another key on every call (not idempotent).
//
// Most tools stay inside the workspace (openWorld false). Those that send
// the workspace's data to a URL of the caller's choosing reach the open
// world: subscribing or changing a subscription, replaying a delivery and
// testing a subscription.
func annotations(op store.Operation) mcp.ToolAnnotation {
	var destructive, idempotent bool
	switch op.Action {
	case store.ActionCreate, store.ActionBatchCreate, store.ActionCreateKey, store.ActionCreateWebhook,
		store.ActionReplayDelivery, store.ActionTestWebhook:
	case store.ActionUpdate, store.ActionUpsert, store.ActionBatchUpsert, store.ActionDelete,
		store.ActionRevokeKey, store.ActionUpdatePolicy, store.ActionUpdateWebhook, store.ActionDeleteWebhook:
		destructive, idempotent = true, true
	case store.ActionRotateKey:
		destructive = true
	default:
		idempotent = op.ReadOnly
	}
	return mcp.ToolAnnotation{
		Title:           title(op),
		ReadOnlyHint:    mcp.ToBoolPtr(op.ReadOnly),
		DestructiveHint: mcp.ToBoolPtr(destructive),
		IdempotentHint:  mcp.ToBoolPtr(idempotent),
		OpenWorldHint:   mcp.ToBoolPtr(opensWorld(op)),
	}
}

// opensWorld reports whether op's tool sends data outside Hustack.
func opensWorld(op store.Operation) bool {
	switch op.Action {
	case store.ActionCreateWebhook, store.ActionUpdateWebhook, store.ActionReplayDelivery, store.ActionTestWebhook:
		return true
	}
	return false
}

func title(op store.Operation) string {
	switch op.Action {
	case store.ActionWhoami:
		return "Who am I"
	case store.ActionUsageCounts:
		return "Usage counts"
	case store.ActionUsageLogs:
		return "Usage logs"
	case store.ActionListKeys:
		return "List API keys"
	case store.ActionGetKey:
		return "Get API key"
	case store.ActionCreateKey:
		return "Create API key"
	case store.ActionRevokeKey:
		return "Revoke API key"
	case store.ActionRotateKey:
		return "Rotate API key"
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

func fieldNames(r *store.Resource) string {
	names := make([]string, len(r.Fields))
	for i, f := range r.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
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

// requiredNames returns the names of r's required fields.
func requiredNames(r *store.Resource) []string {
	var names []string
	for _, f := range r.Fields {
		if f.Required {
			names = append(names, f.Name)
		}
	}
	return names
}

// notClearable names the fields an update cannot clear.
func notClearable(r *store.Resource) string {
	names := requiredNames(r)
	switch {
	case len(names) == 1:
		return fmt.Sprintf(" %s cannot be cleared.", names[0])
	case len(names) > 1:
		return fmt.Sprintf(" %s cannot be cleared.", strings.Join(names, ", "))
	case len(r.OneOfRequired) > 0:
		return fmt.Sprintf(" At least one of %s must stay set.", strings.Join(r.OneOfRequired, ", "))
	}
	return ""
}

// requiredNote says which fields a new record needs: " (name is required)".
func requiredNote(r *store.Resource) string {
	names := requiredNames(r)
	switch {
	case len(names) == 1:
		return fmt.Sprintf(" (%s is required)", names[0])
	case len(names) > 1:
		return fmt.Sprintf(" (%s are required)", strings.Join(names, " and "))
	case len(r.OneOfRequired) > 0:
		return fmt.Sprintf(" (at least one of %s is required)", strings.Join(r.OneOfRequired, ", "))
	}
	return ""
}

// referencedBy says which records keep a record of r from being deleted.
func referencedBy(r *store.Resource) string {
	var refs []string
	for _, ref := range r.ReferencedBy() {
		refs = append(refs, ref.Resource.Name+" ("+ref.Field+")")
	}
	if len(refs) == 0 {
		return ""
	}
	return fmt.Sprintf("While %s still refer to it, the %s is not deleted and the answer is conflict: "+
		"delete those records or update them to point elsewhere first. ", strings.Join(refs, ", "), r.Singular)
}

func batchResultSentence(r *store.Resource, ok string) string {
	return fmt.Sprintf("Returns {results}: one entry per record, in the order given, with index (its position in records), "+
		"status (%s, or the HTTP status of its error, such as 400) and either data (the %s) or error ({error, message}, "+
		"as the single-record tool would answer).", ok, r.Singular)
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

func arrayOf(items map[string]any) map[string]any {
	return map[string]any{"type": "array", "items": items}
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

// nullable returns def accepting null as well.
func nullable(def map[string]any) map[string]any {
	out := make(map[string]any, len(def))
	for k, v := range def {
		out[k] = v
	}
	out["type"] = []string{def["type"].(string), "null"}
	if enum, ok := def["enum"].([]string); ok {
		out["enum"] = append(anySlice(enum), nil)
	}
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

func pageInput() schema {
	return object(props{
		{"limit", map[string]any{"type": "integer", "minimum": 1, "maximum": store.MaxLimit, "default": store.DefaultLimit,
			"description": fmt.Sprintf("How many items to return, 1 to %d. Defaults to %d.", store.MaxLimit, store.DefaultLimit)}},
		{"offset", map[string]any{"type": "integer", "minimum": 0, "default": 0,
			"description": "How many items to skip, for the next page. Defaults to 0."}},
	})
}

// listInput takes the query parameters of GET /api/v1/{resource}.
func listInput(r *store.Resource) schema {
	s := pageInput()
	s.props[1].def["description"] = "How many items to skip. Defaults to 0. Prefer cursor for reading page after page; " +
		"offset cannot be combined with it."
	s.props = append(s.props,
		prop{"cursor", with(str("pagination.next_cursor of the previous page, to get the page after it. "+
			"Pass the same sort (or leave it out) and the same filters as for that page."), "maxLength", 512)},
		prop{"sort", map[string]any{"type": "string", "enum": store.SortOrders, "default": store.SortOrders[0],
			"description": "Order of the results: -created_at (newest first, the default), created_at (oldest first), " +
				"-updated_at (most recently changed first) or updated_at (least recently changed first)."}},
	)
	for _, b := range []struct{ name, what, rel string }{
		{"created_after", "created", "after"}, {"created_before", "created", "before"},
		{"updated_after", "last changed", "after"}, {"updated_before", "last changed", "before"},
	} {
		s.props = append(s.props, prop{b.name, with(str(fmt.Sprintf("Only %s %s strictly %s this time, RFC 3339 such as 2025-01-31T00:00:00Z.",
			r.Name, b.what, b.rel)), "format", "date-time")})
	}
	for _, name := range r.FilterNames() {
		f, _ := r.Field(name)
		def := fieldInput(f)
		delete(def, "default")
		def["description"] = fmt.Sprintf("Only %s whose %s is exactly this value. %s", r.Name, f.Name, f.Description)
		s.props = append(s.props, prop{name, def})
	}
	s.props = append(s.props,
		prop{"q", with(str(fmt.Sprintf("Only %s whose %s contains this text, ignoring case (plain text, not a pattern).",
			r.Name, strings.Join(r.SearchFields, " or "))), "maxLength", 200)},
		prop{"include_deleted", map[string]any{"type": "boolean", "default": false,
			"description": fmt.Sprintf("Also return %s deleted recently (kept for 30 days unless the server is configured "+
				"otherwise), as {id, deleted: true, deleted_at, external_id, created_at, updated_at}, so that a sync can "+
				"delete them on its side too. Defaults to false.", r.Name)}},
	)
	return s
}

func idInput(desc string) schema {
	return object(props{{"id", with(str(desc), "format", "uuid")}}, "id")
}

func idempotencyKeyInput() map[string]any {
	return map[string]any{"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$",
		"description": "Optional: a unique string you choose for this write, such as a UUID (1 to 255 printable ASCII " +
			"characters). To retry a call that may have failed (a timeout, a lost connection), repeat it with the same " +
			"idempotency_key and the same arguments: the first call's result is returned and nothing is written twice. " +
			"A key is remembered for 24 hours in the workspace; using it again with different arguments answers " +
			"idempotency_key_reused, and while the first call still runs, idempotency_key_in_use."}
}

// updateInput takes the id and the fields to change: null clears an
// optional field.
func updateInput(r *store.Resource) schema {
	s := idInput(fmt.Sprintf("The id of the %s to update.", r.Singular))
	for _, f := range r.Fields {
		s.props = append(s.props, prop{f.Name, patchField(f)})
	}
	return s
}

// upsertInput takes the external id and the fields, set or cleared as by
// an update.
func upsertInput(r *store.Resource) schema {
	ext, _ := r.Field(store.ExternalIDField)
	def := fieldInput(ext)
	def["minLength"] = 1
	def["description"] = fmt.Sprintf("The %s's id in the other system: the %s with this external_id is updated, "+
		"or created with it if there is none.", r.Singular, r.Singular)
	s := object(props{{store.ExternalIDField, def}}, store.ExternalIDField)
	for _, f := range r.Fields {
		if f.Name != store.ExternalIDField {
			s.props = append(s.props, prop{f.Name, patchField(f)})
		}
	}
	return s
}

// patchField is f in an update: optional fields also take null, to clear
// them; nothing is filled in by default.
func patchField(f store.Field) map[string]any {
	def := fieldInput(f)
	delete(def, "default")
	if f.Required {
		return def
	}
	def = nullable(def)
	def["description"] = f.Description + " null clears it."
	return def
}

func batchInput(item schema, desc string) schema {
	item.strict = true
	return object(props{{"records", map[string]any{"type": "array", "minItems": 1, "maxItems": store.MaxBatch,
		"items": item.json(), "description": desc}}}, "records")
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
	return object(append(p, pageInput().props...))
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
			out["enum"] = append(anySlice(f.Enum), nil)
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

// listItemSchema is an entry of a record list: a record, or the tombstone
// of a deleted one (include_deleted).
func listItemSchema(r *store.Resource) map[string]any {
	return map[string]any{"anyOf": []any{recordSchema(r).json(), tombstoneSchema(r).json()}}
}

func tombstoneSchema(r *store.Resource) schema {
	return object(props{
		{"id", with(str(fmt.Sprintf("The deleted %s's id.", r.Singular)), "format", "uuid")},
		{"deleted", map[string]any{"type": "boolean", "const": true, "description": "Always true: the record was deleted."}},
		{"deleted_at", with(str("When the record was deleted, RFC 3339 UTC."), "format", "date-time")},
		{store.ExternalIDField, nullable(str("The external_id the record had."))},
		{"created_at", with(str("When the record was created, RFC 3339 UTC."), "format", "date-time")},
		{"updated_at", with(str("When the record was deleted, RFC 3339 UTC."), "format", "date-time")},
	}, "id", "deleted", "deleted_at", store.ExternalIDField, "created_at", "updated_at")
}

func deletedSchema(r *store.Resource) schema {
	return object(props{
		{"id", with(str(fmt.Sprintf("The deleted %s's id.", r.Singular)), "format", "uuid")},
		{"deleted", map[string]any{"type": "boolean", "const": true, "description": "Always true."}},
	}, "id", "deleted")
}

func upsertedSchema(r *store.Resource) schema {
	return object(props{
		{"created", map[string]any{"type": "boolean",
			"description": fmt.Sprintf("true when a new %s was created, false when an existing one was updated.", r.Singular)}},
		{"data", recordSchema(r).json()},
	}, "created", "data")
}

func errorSchema() schema {
	return object(props{
		{"error", str("The error code, such as bad_request, not_found or conflict.")},
		{"message", str("What went wrong, naming the offending field first when there is one.")},
	}, "error", "message")
}

func batchSchema(r *store.Resource) schema {
	item := object(props{
		{"index", map[string]any{"type": "integer", "minimum": 0, "description": "The record's position in records, from 0."}},
		{"status", map[string]any{"type": "integer",
			"description": "201 created, 200 updated, or the HTTP status of the error (400, 404, 409 ...)."}},
		{"data", recordSchema(r).json()},
		{"error", errorSchema().json()},
	}, "index", "status").json()
	item["oneOf"] = []any{
		map[string]any{"required": []string{"data"}},
		map[string]any{"required": []string{"error"}},
	}
	return object(props{{"results", arrayOf(item)}}, "results")
}

func pageSchema(item map[string]any) schema {
	return object(props{
		{"data", arrayOf(item)},
		{"pagination", object(props{
			{"limit", map[string]any{"type": "integer", "description": "The page size used."}},
			{"offset", map[string]any{"type": "integer", "description": "How many items were skipped."}},
			{"has_more", map[string]any{"type": "boolean", "description": "Whether another page follows."}},
			{"next_cursor", nullable(str("Pass as cursor to get the next page; null on the last page " +
				"(and for lists that page by offset only)."))},
		}, "limit", "offset", "has_more", "next_cursor").json()},
	}, "data", "pagination")
}

func meSchema() schema {
	return object(props{
		{"workspace", object(props{
			{"id", str("The workspace's id.")},
			{"name", str("The workspace's name.")},
		}, "id", "name").json()},
		{"key", object(props{
			{"id", str("The key's id.")},
			{"name", str("The key's name.")},
			{"prefix", str("The first characters of the key, for recognising it.")},
			{"scopes", map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": scopeEnum()},
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
