package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hustack/hustack/store"
)

// Paths of the API documentation.
const (
	// OpenAPIPath serves the OpenAPI 3.1 document of the API: all of it
	// without a key, and only the operations a key may call with one.
	OpenAPIPath = APIPrefix + "/openapi.json"
	// DocsPath serves the same document as an HTML page.
	DocsPath = "/docs"
	// DocsCSSPath serves the page's style sheet.
	DocsCSSPath = "/docs/hustack.css"
)

// OpenAPIVersion is the version of the OpenAPI specification the document
// follows.
const OpenAPIVersion = "3.1.0"

// Operation ids of the documented routes outside the operation table.
const (
	healthOperationID  = "get_health"
	openAPIOperationID = "get_openapi_document"
)

// bearerScheme is the name of the security scheme.
const bearerScheme = "bearerAuth"

// OpenAPIJSON returns the OpenAPI document of the API as JSON: every
// operation when p is nil, else only those p's scopes allow (plus the
// operations any key may call).
func OpenAPIJSON(p *store.Principal) []byte {
	b, err := json.Marshal(buildOpenAPI(p))
	if err != nil { // only strings, numbers, booleans and the types above
		panic(fmt.Sprintf("api: marshal OpenAPI document: %v", err))
	}
	return b
}

// docBuilder builds one document; schemas and headers are added to the
// components as operations first use them, so that a filtered document
// holds only what its operations need.
type docBuilder struct {
	doc     *oaDocument
	headers map[string]*oaHeader // every reusable header, by name
	ops     int                  // operations added so far
	// filter is the record filter of the key the document is made for.
	filter map[string]string
}

func buildOpenAPI(p *store.Principal) *oaDocument {
	b := &docBuilder{
		doc: &oaDocument{
			OpenAPI: OpenAPIVersion,
			Info: oaInfo{
				Title:       "Hustack API",
				Version:     "v1",
				Summary:     "Workspace-scoped CRM records for integrations: accounts, contacts, leads, deals, activities and notes.",
				Description: apiDescription,
			},
			Security: []oaSecurity{{bearerScheme: {}}},
			Components: oaComponents{
				SecuritySchemes: map[string]oaSecurityScheme{bearerScheme: {
					Type: "http", Scheme: "bearer", BearerFormat: "hs_live_ followed by 40 letters and digits",
					Description: "A workspace API key, sent as Authorization: Bearer hs_live_... . Keys are created " +
						"by the workspace operator with a set of scopes; each operation requires one scope (see x-required-scopes). " +
						"Keys in the query string are refused.",
				}},
			},
		},
		headers: reusableHeaders(),
	}
	if p != nil {
		scopes := make([]string, len(p.Scopes))
		for i, s := range p.Scopes {
			scopes[i] = string(s)
		}
		b.doc.Key = &oaKeyInfo{ID: p.KeyID, Name: p.KeyName, Prefix: p.KeyPrefix, Scopes: scopes, Filter: maps.Clone(p.Filter)}
		b.doc.Info.Description += fmt.Sprintf("\n\nThis document lists only the operations that the API key %q (%s...) may call, with its scopes: %s.",
			p.KeyName, p.KeyPrefix, strings.Join(scopes, ", "))
		if len(p.Filter) > 0 {
			b.filter = maps.Clone(p.Filter)
			b.doc.Info.Description += fmt.Sprintf(" The key carries the record filter %s: it reads only records with %s, "+
				"every record it creates is stamped with %s, and it cannot move a record out of the filter. "+
				"Record operations show the filter as `x-hustack-filter`.", filterText(p.Filter), filterText(p.Filter), filterText(p.Filter))
		}
	}

	used := map[string]bool{}
	for _, rt := range Routes() {
		if p != nil && rt.Operation.Scope != "" && !p.Has(rt.Operation.Scope) {
			continue
		}
		b.addOperation(b.routeOperation(rt))
		used[tagOf(rt.Operation)] = true
	}
	b.addOperation(b.healthOperation())
	b.addOperation(b.openAPIOperation())
	used["meta"] = true
	b.webhookEvents(p)

	for _, t := range allTags() {
		if used[t.Name] {
			b.doc.Tags = append(b.doc.Tags, t)
		}
	}
	return b.doc
}

// apiDescription is the document's introduction (CommonMark).
var apiDescription = strings.TrimSpace(string(must(docsFiles.ReadFile("docs/overview.md"))))

// allTags lists the document's tags in display order.
func allTags() []oaTag {
	var out []oaTag
	for _, r := range store.Resources {
		out = append(out, oaTag{Name: r.Name, Description: r.Description})
	}
	return append(out,
		oaTag{Name: "me", Description: "The calling API key and its workspace."},
		oaTag{Name: "usage", Description: "The workspace's API usage: request counts and the request log."},
		oaTag{Name: "keys", Description: "The workspace's API keys and key policy, for keys with the scope admin:keys."},
		oaTag{Name: "webhooks", Description: webhooksTagDescription},
		oaTag{Name: "meta", Description: "Health check and this documentation."},
	)
}

// tagOf returns the tag of an operation of the operation table.
func tagOf(op store.Operation) string {
	switch {
	case op.Resource != nil:
		return op.Resource.Name
	case op.Action == store.ActionWhoami:
		return "me"
	case op.Action == store.ActionUsageCounts || op.Action == store.ActionUsageLogs:
		return "usage"
	case op.Scope == store.ScopeAdminKeys:
		return "keys"
	case isWebhookOperation(op):
		return "webhooks"
	}
	return "meta"
}

func (b *docBuilder) addOperation(op *oaOperation) {
	slot := b.doc.Paths.item(op.path).slot(op.method)
	if slot == nil {
		panic("api: cannot document method " + op.method)
	}
	op.seq = b.ops
	b.ops++
	*slot = op
}

// openAPIPath turns a gin pattern (/accounts/:id) into an OpenAPI path
// template (/accounts/{id}).
func openAPIPath(ginPath string) string {
	segs := strings.Split(ginPath, "/")
	for i, s := range segs {
		if len(s) > 1 && (s[0] == ':' || s[0] == '*') {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// routeOperation documents one route of the operation table.
func (b *docBuilder) routeOperation(rt Route) *oaOperation {
	op := rt.Operation
	o := &oaOperation{
		OperationID: op.Name,
		Tags:        []string{tagOf(op)},
		Summary:     op.Summary,
		Description: operationDescription(rt, b.filter),
		Security:    []oaSecurity{{bearerScheme: {}}},
		method:      rt.Method,
		path:        openAPIPath(rt.Path),
	}
	o.RequiredScopes = []string{}
	if op.Scope != "" {
		o.RequiredScopes = []string{string(op.Scope)}
		o.Security = []oaSecurity{{bearerScheme: {string(op.Scope)}}}
	}
	for _, p := range rt.PathArgs {
		o.Parameters = append(o.Parameters, &oaParameter{Name: p.Name, In: "path", Required: true,
			Description: p.Description, Schema: paramSchema(p, true)})
	}
	for _, p := range rt.Query {
		o.Parameters = append(o.Parameters, &oaParameter{Name: p.Name, In: "query",
			Description: p.Description, Schema: paramSchema(p, false)})
	}
	if rt.Idempotent {
		o.Parameters = append(o.Parameters, b.idempotencyKeyParam())
	}
	if op.Resource != nil && len(b.filter) > 0 {
		o.Filter = maps.Clone(b.filter)
	}
	if kind := bodyKindOf(rt); kind != BodyNone {
		o.RequestBody = b.requestBody(op.Resource, kind)
		o.RequestBody.Required = !rt.BodyOptional
	}
	for _, r := range rt.Responses {
		o.Responses = append(o.Responses, b.response(rt, r))
	}
	slices.SortStableFunc(o.Responses, func(x, y *oaResponse) int { return x.status - y.status })
	return o
}

// bodyKindOf returns what the route's body holds: its BodyKind, or for a
// route that reads a body without saying what, the kind its action implies.
func bodyKindOf(rt Route) BodyKind {
	if rt.BodyKind != BodyNone || !rt.Body {
		return rt.BodyKind
	}
	switch rt.Operation.Action {
	case store.ActionCreate:
		return BodyRecord
	case store.ActionUpdate:
		return BodyPatch
	case store.ActionUpsert:
		return BodyUpsert
	case store.ActionBatchCreate:
		return BodyBatch
	case store.ActionBatchUpsert:
		return BodyBatchUpsert
	}
	return BodyNone
}

// operationDescription explains an operation beyond its summary: the scope
// it requires, what its action means for a client and, in the document of a
// vendor key, what its record filter does to the operation.
func operationDescription(rt Route, filter map[string]string) string {
	op := rt.Operation
	var parts []string
	if op.Scope != "" {
		parts = append(parts, fmt.Sprintf("Requires the scope `%s`.", op.Scope))
	} else {
		parts = append(parts, "Any valid API key may call it; it requires no scope.")
	}
	r := op.Resource
	switch op.Action {
	case store.ActionList:
		parts = append(parts, fmt.Sprintf("Newest first by default (`sort=-created_at`). Page with `cursor` (from `pagination.next_cursor`) or `offset`. "+
			"Filters: %s; `q` searches %s. Unknown parameters are refused with 400. "+
			"With `include_deleted=true`, deleted %s appear as tombstones (`{\"id\", \"deleted\": true, \"deleted_at\", ...}`).",
			codeList(r.FilterNames()), strings.Join(r.SearchFields, " and "), r.Name))
	case store.ActionGet:
		parts = append(parts, fmt.Sprintf("A deleted %s, or one of another workspace, answers 404.", r.Singular))
	case store.ActionCreate:
		parts = append(parts, requiredFieldsNote(r)+" Unknown fields are refused; server-managed fields (id, created_at, updated_at, created_via, api_key_id) are ignored.")
	case store.ActionUpdate:
		parts = append(parts, "Fields left out keep their values; `null` or \"\" clears an optional field; required fields cannot be cleared. `updated_at` advances.")
	case store.ActionDelete:
		parts = append(parts, fmt.Sprintf("The %s disappears from get and list; a tombstone stays visible to lists with `include_deleted=true` "+
			"for the tombstone retention period (30 days by default).", r.Singular))
		if refs := referencedBy(r); len(refs) > 0 {
			parts = append(parts, fmt.Sprintf("Answers 409 while live records reference it (%s); delete or reassign those first.", strings.Join(refs, ", ")))
		}
	case store.ActionUpsert:
		parts = append(parts, fmt.Sprintf("Creates the %s (201, the body must then be complete) or updates the live %s with this `external_id` (200, fields left out are kept). "+
			"An `external_id` in the body must equal the path's. Concurrent upserts of one external id yield one record.", r.Singular, r.Singular))
	case store.ActionBatchCreate:
		parts = append(parts, fmt.Sprintf("Each of 1 to %d records is validated and created on its own; the answer is 200 with one result per record, "+
			"in order: status 201 with `data`, or an error status with `error`.", store.MaxBatch))
	case store.ActionBatchUpsert:
		parts = append(parts, fmt.Sprintf("Each of 1 to %d records, each with its `external_id`, is upserted on its own; the answer is 200 with one result per record, "+
			"in order: status 201 (created) or 200 (updated) with `data`, or an error status with `error`.", store.MaxBatch))
	case store.ActionWhoami:
		parts = append(parts, "Use it as a connection test: it answers 200 for any valid key, with the key's scopes, record filter and rate limit.")
	case store.ActionListKeys, store.ActionGetKey:
		parts = append(parts, "A key sees the keys it manages: those of its workspace that it could have created itself "+
			"(no scope it lacks, its own record filter). Never shows a key itself, only its `prefix`; `status` is active, expiring (within 7 days), expired or revoked, "+
			"and `requests_7d` counts its requests over the last 7 days.")
	case store.ActionCreateKey:
		parts = append(parts, "The answer holds the key itself in `key`, this once only: store it safely. "+
			"No privilege escalation: the scopes must be among the calling key's (`admin:keys` included), a filtered caller's filter is kept, "+
			"and `rate_limit` may not exceed the caller's (by default the new key gets the caller's). Give `expires_at` or `expires_in`, not both; "+
			"the workspace's key policy may require one and cap it. A scope the caller lacks, an unknown scope or a filter that cannot apply answers 400.")
	case store.ActionRevokeKey:
		parts = append(parts, "The key stops working at once (within a second across processes): its requests answer 410 `revoked_key`, "+
			"and the webhook subscriptions it created are disabled (their `disabled_reason` says why). A key may revoke itself.")
	case store.ActionRotateKey:
		parts = append(parts, fmt.Sprintf("Creates a key with the same name, scopes, filter and rate limit, and returns it once in `key`. "+
			"The old key keeps working for `expire_old_in` (default %s, at most 90 days; \"now\" ends it at once), then answers 410 `expired_key`; "+
			"the webhook subscriptions it created keep working. The body may be left out.", "7 days"))
	case store.ActionGetPolicy:
		parts = append(parts, "Zero values impose nothing.")
	case store.ActionListWebhooks, store.ActionGetWebhook:
		parts = append(parts, "A key sees the subscriptions it manages: those of its workspace whose record filter includes its own "+
			"and whose every event it could receive itself (it holds the read scope of each event's resource, `admin:keys` for api_key "+
			"events). Any other subscription answers 404 like an unknown id, and lists leave it out. `status` is active, failing "+
			"(deliveries fail since `failing_since`), disabled (`disabled_reason` says why: turned off through the API, the key that "+
			"created it revoked, or deliveries failing for 3 days) or expired (past `expires_at`). The signing secret is never shown again.")
	case store.ActionCreateWebhook:
		parts = append(parts, "Subscribes `url` to `events`: event types ({account,contact,lead,deal,activity,note}.{created,updated,deleted}, "+
			"api_key.{created,revoked,expiring}), a group's wildcard such as `account.*`, or `*`. Each event needs the calling key's read scope "+
			"of its resource (`admin:keys` for api_key events); the subscription keeps the key's read scopes and record filter, so it never "+
			"receives what the key could not read. Revoking the key disables the subscription; a key that merely expires (the old key "+
			"of a rotation) keeps it. The URL must be https on a public address (the server "+
			"setting HUSTACK_WEBHOOK_ALLOW_INSECURE=true allows http and private addresses), checked again at every delivery. "+
			"The answer holds the signing secret `whsec_...` in `secret`, this once only: store it to verify `webhook-signature`. "+
			"Events arrive within seconds of a change, at least once and in no guaranteed order; see the webhooks of this document for "+
			"the body, headers and retry schedule. As a REST-hook subscribe endpoint, unsubscribe with DELETE on the `Location`.")
	case store.ActionUpdateWebhook:
		parts = append(parts, "Members left out keep their values; null is refused. The change applies to the subscription as stored "+
			"when it is written: one the server disabled meanwhile stays disabled unless the body has `enabled: true`. New `events` are "+
			"checked against the calling key's scopes, which become the subscription's; a new `url` is checked as on creation. "+
			"`enabled: false` stops the deliveries (pending ones are not sent); `enabled: true` resumes them and clears "+
			"`disabled_reason` and the failure streak.")
	case store.ActionDeleteWebhook:
		parts = append(parts, "Unsubscribes: the subscription and its delivery log are removed and pending deliveries are not sent. "+
			"A receiver that answers 410 Gone is unsubscribed the same way.")
	case store.ActionListDeliveries:
		parts = append(parts, "Newest first, paged with `limit` and `offset`, filtered by `status`. Each delivery names its event "+
			"(`event_id`, sent as `webhook-id`, and `event_type`) and has its `attempts`, their `history` (time, HTTP status or 0, latency, error), "+
			"`last_response_code`, `last_latency_ms` and `next_attempt_at` (null once finished).")
	case store.ActionReplayDelivery:
		parts = append(parts, "Sends the event of a finished delivery (delivered, failed or cancelled) again as a new delivery, with the same "+
			"`webhook-id`, so that a receiver that has it already can drop it. A pending delivery answers 409, as does one whose event type "+
			"the subscription no longer receives (its `events` were changed since). Follow the new delivery in the deliveries list.")
	case store.ActionTestWebhook:
		parts = append(parts, "Sends a `ping` event (`{\"webhook_id\": ...}` in `data`) to the subscription's URL, whatever its status, signed "+
			"like every delivery. Its outcome shows in the deliveries list within seconds.")
	case store.ActionUpdatePolicy:
		parts = append(parts, "The body is the whole policy; every field is required. `max_key_lifetime_days` caps the expiry of new keys (and makes one mandatory), "+
			"`require_expiry` refuses keys without one, `disable_unused_after_days` lets a periodic task revoke keys unused that long (0: off). "+
			"Existing keys are not changed. A key with a record filter cannot change the policy (403).")
	}
	if len(filter) > 0 && r != nil {
		parts = append(parts, filterNote(op.Action, r, filter))
	}
	if rt.Idempotent {
		parts = append(parts, "Send an `Idempotency-Key` header to retry safely.")
	}
	return strings.Join(parts, " ")
}

// filterText writes a record filter for people: source = "Vendor XYZ" and
// country = "DE".
func filterText(f map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, fmt.Sprintf("`%s` = %q", k, f[k]))
	}
	return strings.Join(parts, " and ")
}

// filterNote says what a vendor key's record filter does to an operation.
func filterNote(a store.Action, r *store.Resource, f map[string]string) string {
	ft := filterText(f)
	head := "Through this API key (record filter " + ft + "): "
	switch a {
	case store.ActionList:
		return head + fmt.Sprintf("only %s with %s are listed.", r.Name, ft)
	case store.ActionGet, store.ActionDelete:
		return head + fmt.Sprintf("%s %s without %s answers 404.", strings.ToUpper(article(r.Singular)[:1])+article(r.Singular)[1:], r.Singular, ft)
	case store.ActionUpdate:
		return head + fmt.Sprintf("a %s without %s answers 404, and the filtered fields cannot be changed or cleared (400).", r.Singular, ft)
	case store.ActionCreate, store.ActionBatchCreate:
		return head + fmt.Sprintf("new %s are stamped with %s; another value is refused with 400.", r.Name, ft)
	case store.ActionUpsert, store.ActionBatchUpsert:
		return head + fmt.Sprintf("new %s are stamped with %s; another value is refused with 400, "+
			"and an external_id of a record outside the filter is a conflict (409).", r.Name, ft)
	}
	return head + "it applies."
}

// referencedBy lists the fields of other resources that refer to r.
func referencedBy(r *store.Resource) []string {
	var out []string
	for _, ref := range r.ReferencedBy() {
		out = append(out, ref.Resource.Name+"."+ref.Field)
	}
	return out
}

func requiredFieldsNote(r *store.Resource) string {
	var req []string
	for _, f := range r.Fields {
		if f.Required {
			req = append(req, f.Name)
		}
	}
	var parts []string
	if len(req) > 0 {
		parts = append(parts, "Required: "+codeList(req)+".")
	}
	if len(r.OneOfRequired) > 0 {
		parts = append(parts, "At least one of "+codeList(r.OneOfRequired)+" is required.")
	}
	return strings.Join(parts, " ")
}

func codeList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}

// paramSchema is the schema of a path or query parameter.
func paramSchema(p Param, inPath bool) *oaSchema {
	s := &oaSchema{}
	switch p.Type {
	case "integer":
		s.Type = oaTypes{"integer"}
	case "number":
		s.Type = oaTypes{"number"}
	case "boolean":
		s.Type = oaTypes{"boolean"}
	case "id":
		s.Type, s.Format = oaTypes{"string"}, "uuid"
	case "date-time":
		s.Type, s.Format = oaTypes{"string"}, "date-time"
	default:
		s.Type = oaTypes{"string"}
	}
	if inPath && s.Format == "" {
		s.MinLength = intp(1)
	}
	if p.MaxLength > 0 {
		s.MaxLength = intp(p.MaxLength)
	}
	if len(p.Enum) > 0 && s.Type[0] != "boolean" {
		for _, e := range p.Enum {
			s.Enum = append(s.Enum, e)
		}
	}
	if p.Default != "" {
		s.Default = typedValue(s.Type[0], p.Default)
	}
	// Bounds the route table states in words only.
	switch p.Name {
	case "limit":
		s.Minimum = floatp(1)
	case "offset":
		s.Minimum = floatp(0)
	case "status":
		if s.Type[0] == "integer" {
			s.Minimum, s.Maximum = floatp(100), floatp(599)
		}
	}
	return s
}

// typedValue converts a default written as text to the parameter's type.
func typedValue(typ, v string) any {
	switch typ {
	case "integer":
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	case "number":
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	case "boolean":
		if t, err := strconv.ParseBool(v); err == nil {
			return t
		}
	}
	return v
}

func (b *docBuilder) idempotencyKeyParam() *oaParameter {
	const name = "IdempotencyKey"
	if b.doc.Components.Parameters == nil {
		b.doc.Components.Parameters = map[string]*oaParameter{}
	}
	b.doc.Components.Parameters[name] = &oaParameter{
		Name: IdempotencyKeyHeader, In: "header",
		Description: "A key of your choice, 1 to 255 printable ASCII characters, that makes this write safe to retry: " +
			"the same key with the same request within 24 hours (by default) replays the first response (Idempotent-Replayed: true) instead of writing again.",
		Schema: &oaSchema{Type: oaTypes{"string"}, MinLength: intp(1), MaxLength: intp(255), Pattern: `^[\x20-\x7E]+$`},
	}
	return &oaParameter{Ref: "#/components/parameters/" + name}
}

func (b *docBuilder) requestBody(r *store.Resource, kind BodyKind) *oaRequestBody {
	var s *oaSchema
	var desc string
	switch kind {
	case BodyRecord:
		s, desc = b.createSchema(r), fmt.Sprintf("The new %s's fields.", r.Singular)
	case BodyPatch:
		s, desc = b.patchSchema(r), "The fields to change; null or \"\" clears an optional field."
	case BodyUpsert:
		s, desc = b.upsertSchema(r), fmt.Sprintf("The %s's fields: complete when it is created, only those to change when it is updated.", r.Singular)
	case BodyBatch:
		s, desc = b.batchRequestSchema(r, false), fmt.Sprintf("1 to %d new %s.", store.MaxBatch, r.Name)
	case BodyBatchUpsert:
		s, desc = b.batchRequestSchema(r, true), fmt.Sprintf("1 to %d %s to upsert, each with its external_id.", store.MaxBatch, r.Name)
	case BodyKeyCreate:
		s, desc = b.createKeySchema(), "The new key's name, scopes and optional filter, expiry and rate limit."
	case BodyKeyRotate:
		s, desc = b.rotateKeySchema(), "How long the old key keeps working; may be left out."
	case BodyKeyPolicy:
		s, desc = b.keyPolicySchema(), "The whole key policy."
	case BodyWebhookCreate:
		s, desc = b.createWebhookSchema(), "The URL, the events and optionally a description and an expiry."
	case BodyWebhookPatch:
		s, desc = b.updateWebhookSchema(), "The members to change."
	default:
		s, desc = &oaSchema{Type: oaTypes{"object"}}, "A JSON object."
	}
	return &oaRequestBody{Description: desc, Required: true, Content: jsonContent(s)}
}

func jsonContent(s *oaSchema) map[string]oaContent {
	return map[string]oaContent{"application/json": {Schema: s}}
}

// response documents one answer of a route.
func (b *docBuilder) response(rt Route, r Response) *oaResponse {
	out := &oaResponse{status: r.Status, Description: r.Description, codes: r.Codes}
	if out.Description == "" {
		out.Description = http.StatusText(r.Status)
	}
	out.desc = out.Description
	res := rt.Operation.Resource
	var s *oaSchema
	switch r.Body {
	case ResponseRecord:
		s = b.recordSchema(res)
	case ResponseRecordPage:
		s = b.pageSchema(res)
	case ResponseBatch:
		s = b.batchResponseSchema(res)
	case ResponseMe:
		s = b.meSchema()
	case ResponseUsageCounts:
		s = b.usageCountsSchema()
	case ResponseUsageLogs:
		s = b.usageLogPageSchema()
	case ResponseKeyList:
		s = b.keyListSchema()
	case ResponseKey:
		s = b.keyInfoSchema()
	case ResponseNewKey:
		s = b.newKeySchema()
	case ResponseRotatedKey:
		s = b.rotatedKeySchema()
	case ResponseKeyPolicy:
		s = b.keyPolicySchema()
	case ResponseWebhookList:
		s = b.webhookListSchema()
	case ResponseWebhook:
		s = b.webhookSchema()
	case ResponseNewWebhook:
		s = b.newWebhookSchema()
	case ResponseDelivery:
		s = b.deliverySchema()
	case ResponseDeliveries:
		s = b.deliveryPageSchema()
	case ResponseError:
		s = b.errorSchema(r.Codes)
		if len(r.Codes) > 0 {
			out.Description += " Codes: " + strings.Join(r.Codes, ", ") + "."
		}
	case ResponseEmpty:
	default:
		s = &oaSchema{Type: oaTypes{"object"}}
	}
	if s != nil {
		out.Content = jsonContent(s)
	}
	b.responseHeaders(out, rt.Idempotent, true)
	return out
}

// responseHeaders adds the headers a response carries: the request id on
// every response; the rate limit state after authentication; Retry-After
// on 429; WWW-Authenticate on 401; Location on 201; Idempotent-Replayed on
// what a write may replay.
func (b *docBuilder) responseHeaders(r *oaResponse, idempotent, authenticated bool) {
	add := func(name string) {
		if b.doc.Components.Headers == nil {
			b.doc.Components.Headers = map[string]*oaHeader{}
		}
		b.doc.Components.Headers[name] = b.headers[name]
		r.Headers = append(r.Headers, oaNamedHeader{Name: name, Header: &oaHeader{Ref: "#/components/headers/" + name}})
	}
	add(RequestIDHeader)
	authFailed := r.status == http.StatusUnauthorized || r.status == http.StatusGone
	switch r.status {
	case http.StatusCreated:
		add("Location")
	case http.StatusUnauthorized:
		add("WWW-Authenticate")
	case http.StatusTooManyRequests:
		add("Retry-After")
	}
	if authenticated && !authFailed {
		add("X-RateLimit-Limit")
		add("X-RateLimit-Remaining")
		add("X-RateLimit-Reset")
	}
	if idempotent && r.status < 500 && !authFailed && r.status != http.StatusTooManyRequests {
		add(IdempotentReplayedHeader)
	}
}

// reusableHeaders are the response headers of components.headers.
func reusableHeaders() map[string]*oaHeader {
	str := func() *oaSchema { return &oaSchema{Type: oaTypes{"string"}} }
	seconds := func() *oaSchema { return &oaSchema{Type: oaTypes{"integer"}, Minimum: floatp(0)} }
	return map[string]*oaHeader{
		RequestIDHeader: {Required: true, Schema: str(),
			Description: "The request's id: the client's own X-Request-Id when it sent a sane one (1 to 128 of letters, digits and ._:-), else a new one. Error bodies repeat it as request_id."},
		"Location": {Required: true, Schema: &oaSchema{Type: oaTypes{"string"}, Format: "uri-reference"},
			Description: "The path of the new record, API key or webhook subscription."},
		"WWW-Authenticate": {Required: true, Schema: &oaSchema{Type: oaTypes{"string"}, Enum: []any{"Bearer"}},
			Description: "Always Bearer."},
		"Retry-After": {Required: true, Schema: &oaSchema{Type: oaTypes{"integer"}, Minimum: floatp(1)},
			Description: "Seconds to wait before retrying."},
		"X-RateLimit-Limit": {Schema: seconds(),
			Description: "Requests the key may make per period; present when rate limiting is enabled."},
		"X-RateLimit-Remaining": {Schema: seconds(),
			Description: "Requests left in the current period."},
		"X-RateLimit-Reset": {Schema: seconds(),
			Description: "Seconds until the limit is fully restored."},
		IdempotentReplayedHeader: {Schema: &oaSchema{Type: oaTypes{"string"}, Enum: []any{"true"}},
			Description: "true when this is the remembered response of an earlier request with the same Idempotency-Key."},
	}
}

// healthOperation documents the health check, which needs no key.
func (b *docBuilder) healthOperation() *oaOperation {
	ok := &oaResponse{status: http.StatusOK, Description: "The API is up.", desc: "The API is up.",
		Content: jsonContent(b.schema("Health", func() *oaSchema {
			return object("The health check's answer.",
				prop("status", "Always ok.", &oaSchema{Type: oaTypes{"string"}, Enum: []any{"ok"}}),
				prop("service", "The service's name.", strType()),
				prop("version", "The API version.", strType()),
			)
		}))}
	b.responseHeaders(ok, false, false)
	return &oaOperation{
		OperationID: healthOperationID, Tags: []string{"meta"},
		Summary:     "Check that the API is up.",
		Description: "Needs no API key.",
		Responses:   oaResponses{ok},
		Security:    []oaSecurity{}, RequiredScopes: []string{},
		method: http.MethodGet, path: HealthPath,
	}
}

// openAPIOperation documents this document's own route: public, or
// authenticated when a key is sent.
func (b *docBuilder) openAPIOperation() *oaOperation {
	o := &oaOperation{
		OperationID: openAPIOperationID, Tags: []string{"meta"},
		Summary: "Get this OpenAPI 3.1 document.",
		Description: "Without a key: every operation of the API. With a key: only the operations that key may call, " +
			"so that an integration gets the documentation of exactly its own access. The same document is readable as HTML at " + DocsPath + ".",
		Security: []oaSecurity{{}, {bearerScheme: {}}}, RequiredScopes: []string{},
		method: http.MethodGet, path: OpenAPIPath,
	}
	ok := &oaResponse{status: http.StatusOK, Description: "The OpenAPI document.", desc: "The OpenAPI document.",
		Content: jsonContent(&oaSchema{Type: oaTypes{"object"}, Required: []string{"openapi", "info", "paths"},
			Description: "An OpenAPI 3.1 document."})}
	b.responseHeaders(ok, false, true)
	o.Responses = append(o.Responses, ok)
	errs := []struct {
		codes []string
		desc  string
	}{
		{[]string{store.EBADREQUEST}, "An unknown query parameter."},
		{[]string{store.EUNAUTHORIZED}, "A key was sent but is invalid."},
		{[]string{store.EREVOKED, store.EEXPIRED}, "The key sent was revoked or has expired."},
		{[]string{store.ERATELIMITED}, "Too many requests with this key; see Retry-After."},
		{[]string{store.EINTERNAL}, "An unexpected error; the request id is logged."},
	}
	for _, e := range errs {
		r := &oaResponse{status: StatusOf(e.codes[0]), codes: e.codes, desc: e.desc,
			Description: e.desc + " Codes: " + strings.Join(e.codes, ", ") + ".",
			Content:     jsonContent(b.errorSchema(e.codes))}
		b.responseHeaders(r, false, true)
		o.Responses = append(o.Responses, r)
	}
	return o
}

// schema returns a reference to the named component schema, adding it
// with build on first use.
func (b *docBuilder) schema(name string, build func() *oaSchema) *oaSchema {
	if !b.doc.Components.Schemas.has(name) {
		// Reserve the name first: a schema may refer to others.
		b.doc.Components.Schemas = append(b.doc.Components.Schemas, oaNamedSchema{Name: name})
		s := build()
		for i := range b.doc.Components.Schemas {
			if b.doc.Components.Schemas[i].Name == name {
				b.doc.Components.Schemas[i].Schema = s
			}
		}
	}
	return &oaSchema{Ref: "#/components/schemas/" + name}
}

func strType() *oaSchema { return &oaSchema{Type: oaTypes{"string"}} }

func dateTime(nullable bool) *oaSchema {
	s := &oaSchema{Type: oaTypes{"string"}, Format: "date-time"}
	if nullable {
		s.Type = oaTypes{"string", "null"}
	}
	return s
}

func uuidType() *oaSchema { return &oaSchema{Type: oaTypes{"string"}, Format: "uuid"} }

func intType(min int) *oaSchema {
	return &oaSchema{Type: oaTypes{"integer"}, Minimum: floatp(float64(min))}
}

// prop is a property; desc, when set, describes it where it is used.
func prop(name, desc string, s *oaSchema) oaProp {
	if desc != "" {
		s.Description = desc
	}
	return oaProp{Name: name, Schema: s}
}

// object is an object schema whose properties are all required.
func object(desc string, props ...oaProp) *oaSchema {
	s := &oaSchema{Type: oaTypes{"object"}, Description: desc, Properties: props}
	for _, p := range props {
		s.Required = append(s.Required, p.Name)
	}
	return s
}

func schemaName(r *store.Resource, suffix string) string {
	return strings.ToUpper(r.Singular[:1]) + r.Singular[1:] + suffix
}

// fieldSchema is the schema of a record field's value. Records hold
// canonical values: enums in their declared case, currencies upper case,
// dates as YYYY-MM-DD or RFC 3339 in UTC.
//
// A required enum field refers to a named schema of its values, shared by
// records and request bodies (ActivityType).
func (b *docBuilder) fieldSchema(r *store.Resource, f store.Field, nullable bool) *oaSchema {
	if f.Type == store.FieldEnum && !nullable {
		return b.schema(schemaName(r, pascal(f.Name)), func() *oaSchema {
			s := fieldSchema(f, false)
			s.Description += " Requests should use these values; the server also accepts them in any case."
			return s
		})
	}
	return fieldSchema(f, nullable)
}

func fieldSchema(f store.Field, nullable bool) *oaSchema {
	s := &oaSchema{Type: oaTypes{"string"}, Description: f.Description}
	switch f.Type {
	case store.FieldNumber:
		s.Type, s.Minimum = oaTypes{"number"}, floatp(0)
	case store.FieldEmail:
		s.Format = "email"
	case store.FieldCurrency:
		s.Pattern = "^[A-Z]{3}$"
	case store.FieldDate:
		s.Examples = []any{"2025-03-01", "2025-03-01T09:30:00Z"}
	case store.FieldEnum:
		for _, e := range f.Enum {
			s.Enum = append(s.Enum, e)
		}
	case store.FieldRef:
		s.Format = "uuid"
	}
	if f.MaxLen > 0 && f.Type != store.FieldRef {
		s.MaxLength = intp(f.MaxLen)
	}
	if f.Default != nil {
		s.Default = f.Default
	}
	if nullable {
		s.Type = append(s.Type, "null")
		if s.Enum != nil {
			s.Enum = append(s.Enum, nil)
		}
	}
	return s
}

// inputFieldSchema is the schema of a field's value in a request: what
// fieldSchema says, except that enums and currencies may be written in any
// case. Required fields must be non-empty.
func (b *docBuilder) inputFieldSchema(r *store.Resource, f store.Field, nullable bool) *oaSchema {
	s := b.fieldSchema(r, f, nullable)
	if s.Ref != "" {
		return s
	}
	switch f.Type {
	case store.FieldCurrency:
		s.Pattern = "^[A-Za-z]{3}$"
	case store.FieldEnum:
		s.Description += " Matched ignoring case."
	}
	if !nullable && s.Type[0] == "string" && s.Enum == nil {
		s.MinLength = intp(1)
	}
	return s
}

// recordSchema is a live record of r as the API writes it: every field,
// null when unset, and the server-managed fields.
func (b *docBuilder) recordSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, ""), func() *oaSchema {
		props := []oaProp{prop("id", "The record's id.", uuidType())}
		for _, f := range r.Fields {
			props = append(props, oaProp{Name: f.Name, Schema: b.fieldSchema(r, f, !f.Required)})
		}
		props = append(props,
			prop("created_at", "When the record was created (RFC 3339, UTC, milliseconds).", dateTime(false)),
			prop("updated_at", "When the record last changed.", dateTime(false)),
			prop("created_via", "How the record was created: api for the REST API and MCP.", strType()),
			prop("api_key_id", "The id of the API key that created the record.", strType()),
		)
		return object(r.Description, props...)
	})
}

// tombstoneSchema is a deleted record as lists show it with include_deleted.
func (b *docBuilder) tombstoneSchema() *oaSchema {
	return b.schema("Tombstone", func() *oaSchema {
		return object("A deleted record, listed with include_deleted=true for the tombstone retention period.",
			prop("id", "The deleted record's id.", uuidType()),
			prop("deleted", "Always true.", &oaSchema{Type: oaTypes{"boolean"}, Const: true}),
			prop("deleted_at", "When the record was deleted.", dateTime(false)),
			prop("external_id", "The record's external id when it was deleted.", &oaSchema{Type: oaTypes{"string", "null"}}),
			prop("created_at", "When the record was created.", dateTime(false)),
			prop("updated_at", "When the record last changed: its deletion.", dateTime(false)),
		)
	})
}

// inputProps are the properties of a request body for r.
func (b *docBuilder) inputProps(r *store.Resource, nullable func(store.Field) bool) oaProps {
	var props oaProps
	for _, f := range r.Fields {
		s := b.inputFieldSchema(r, f, nullable(f))
		if v, ok := b.filter[f.Name]; ok {
			s.Description = strings.TrimSpace(s.Description + fmt.Sprintf(" Through this API key always %q: set by the server, and another value is refused.", v))
		}
		props = append(props, oaProp{Name: f.Name, Schema: s})
	}
	return props
}

// oneOfRequired expresses Resource.OneOfRequired: at least one of the
// fields set.
func oneOfRequired(r *store.Resource) []*oaSchema {
	var out []*oaSchema
	for _, name := range r.OneOfRequired {
		out = append(out, &oaSchema{Required: []string{name},
			Properties: oaProps{{Name: name, Schema: &oaSchema{Type: oaTypes{"string"}, MinLength: intp(1)}}}})
	}
	return out
}

func (b *docBuilder) createSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, "Create"), func() *oaSchema {
		s := &oaSchema{Type: oaTypes{"object"}, AdditionalProperties: noOtherProperties(),
			Description: fmt.Sprintf("The fields of a new %s. Optional fields may be left out or null. %s",
				r.Singular, requiredFieldsNote(r)),
			Properties: b.inputProps(r, func(f store.Field) bool { return !f.Required }),
			AnyOf:      oneOfRequired(r)}
		for _, f := range r.Fields {
			if f.Required {
				s.Required = append(s.Required, f.Name)
			}
		}
		return s
	})
}

func (b *docBuilder) patchSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, "Patch"), func() *oaSchema {
		return &oaSchema{Type: oaTypes{"object"}, AdditionalProperties: noOtherProperties(),
			Description: fmt.Sprintf("Some fields of %s %s. Fields left out keep their values; null or \"\" clears an optional field; required fields cannot be cleared.",
				article(r.Singular), r.Singular),
			Properties: b.inputProps(r, func(f store.Field) bool { return !f.Required })}
	})
}

func (b *docBuilder) upsertSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, "Upsert"), func() *oaSchema {
		return &oaSchema{Type: oaTypes{"object"}, AdditionalProperties: noOtherProperties(),
			Description: fmt.Sprintf("The fields of the %s with the path's external_id: complete (as for a create) when it does not exist yet, "+
				"else the fields to change (as for an update). An external_id here must equal the path's.", r.Singular),
			Properties: b.inputProps(r, func(f store.Field) bool { return !f.Required })}
	})
}

func (b *docBuilder) batchUpsertItemSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, "BatchUpsertItem"), func() *oaSchema {
		return &oaSchema{Type: oaTypes{"object"}, AdditionalProperties: noOtherProperties(),
			Description: fmt.Sprintf("The fields of %s %s to upsert by its external_id, which is required: complete when it does not exist yet, else the fields to change.",
				article(r.Singular), r.Singular),
			Properties: b.inputProps(r, func(f store.Field) bool { return !f.Required && f.Name != store.ExternalIDField }),
			Required:   []string{store.ExternalIDField}}
	})
}

func (b *docBuilder) batchRequestSchema(r *store.Resource, upsert bool) *oaSchema {
	name, item := schemaName(r, "BatchCreateRequest"), (*oaSchema)(nil)
	if upsert {
		name = schemaName(r, "BatchUpsertRequest")
	}
	return b.schema(name, func() *oaSchema {
		if upsert {
			item = b.batchUpsertItemSchema(r)
		} else {
			item = b.createSchema(r)
		}
		records := &oaSchema{Type: oaTypes{"array"}, Items: item, MinItems: intp(1), MaxItems: intp(store.MaxBatch),
			Description: fmt.Sprintf("1 to %d records, each handled on its own.", store.MaxBatch)}
		s := object("A batch of "+r.Name+".", oaProp{Name: "records", Schema: records})
		s.AdditionalProperties = noOtherProperties()
		return s
	})
}

func (b *docBuilder) batchResponseSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, "BatchResponse"), func() *oaSchema {
		item := b.schema(schemaName(r, "BatchResult"), func() *oaSchema {
			s := object("The outcome of one record of a batch: data with status 201 (created) or 200 (updated), or error with an error status.",
				prop("index", "The record's position in the request, from 0.", intType(0)),
				prop("status", "The HTTP status this record would have had on its own.", &oaSchema{Type: oaTypes{"integer"}, Minimum: floatp(200), Maximum: floatp(599)}),
				prop("data", "The record, on success.", b.recordSchema(r)),
				prop("error", "What went wrong, on failure.", b.batchErrorSchema()),
			)
			s.Required = []string{"index", "status"}
			return s
		})
		return object("One result per record of the request, in its order.",
			oaProp{Name: "results", Schema: &oaSchema{Type: oaTypes{"array"}, Items: item}})
	})
}

func (b *docBuilder) batchErrorSchema() *oaSchema {
	return b.schema("BatchItemError", func() *oaSchema {
		return object("The error of one batch record; the batch's X-Request-Id identifies it in the log.",
			prop("error", "The error code.", strType()),
			prop("message", "What went wrong; names the offending field.", strType()),
		)
	})
}

func (b *docBuilder) paginationSchema() *oaSchema {
	return b.schema("Pagination", func() *oaSchema {
		return object("Where this page is in the list.",
			prop("limit", "The page size used.", intType(1)),
			prop("offset", "The offset used.", intType(0)),
			prop("has_more", "Whether more records follow this page.", &oaSchema{Type: oaTypes{"boolean"}}),
			prop("next_cursor", "Pass as cursor to get the next page; null on the last page (and always for usage logs).",
				&oaSchema{Type: oaTypes{"string", "null"}}),
		)
	})
}

func (b *docBuilder) pageSchema(r *store.Resource) *oaSchema {
	return b.schema(schemaName(r, "Page"), func() *oaSchema {
		items := &oaSchema{OneOf: []*oaSchema{b.recordSchema(r), b.tombstoneSchema()},
			Description: fmt.Sprintf("A live %s, or with include_deleted=true possibly a tombstone.", r.Singular)}
		return object("A page of "+r.Name+".",
			oaProp{Name: "data", Schema: &oaSchema{Type: oaTypes{"array"}, Items: items}},
			oaProp{Name: "pagination", Schema: b.paginationSchema()},
		)
	})
}

func (b *docBuilder) scopeSchema() *oaSchema {
	return b.schema("Scope", func() *oaSchema {
		s := &oaSchema{Type: oaTypes{"string"}, Description: "A permission of an API key: read:<resource>, write:<resource>, read:usage, admin:keys, read:webhooks or write:webhooks."}
		for _, sc := range store.AllScopes() {
			s.Enum = append(s.Enum, string(sc))
		}
		return s
	})
}

func (b *docBuilder) meSchema() *oaSchema {
	return b.schema("Me", func() *oaSchema {
		ws := b.schema("MeWorkspace", func() *oaSchema {
			return object("The key's workspace.",
				prop("id", "The workspace's id.", uuidType()),
				prop("name", "The workspace's name.", strType()))
		})
		key := b.schema("MeKey", func() *oaSchema {
			return object("The calling key; never the key itself.",
				prop("id", "The key's id.", uuidType()),
				prop("name", "The key's name.", strType()),
				prop("prefix", "The first characters of the key, for recognising it.", strType()),
				prop("scopes", "The key's scopes.", &oaSchema{Type: oaTypes{"array"}, Items: b.scopeSchema()}),
				prop("filter", "The key's record filter; null for a key that sees the whole workspace.", b.keyFilterSchema()),
				prop("rate_limit", "The key's rate limit, as requests per period: 100/10s, 600/m.", strType()),
				prop("created_at", "When the key was created.", dateTime(false)),
				prop("expires_at", "When the key expires; null if never.", dateTime(true)))
		})
		state := b.schema("RateLimitState", func() *oaSchema {
			return object("The key's rate limit state after this request, as in the X-RateLimit-* headers.",
				prop("limit", "Requests per period.", intType(0)),
				prop("remaining", "Requests left in the current period.", intType(0)),
				prop("reset_seconds", "Seconds until the limit is fully restored.", intType(0)))
		})
		s := object("The calling key and its workspace.",
			oaProp{Name: "workspace", Schema: ws},
			oaProp{Name: "key", Schema: key},
			prop("rate_limit_state", "Present when rate limiting is enabled.", state))
		s.Required = []string{"workspace", "key"}
		return s
	})
}

func (b *docBuilder) usageCountsSchema() *oaSchema {
	return b.schema("UsageCounts", func() *oaSchema {
		count := b.schema("UsageCount", func() *oaSchema {
			return object("The requests of one group.",
				prop("group", "The group: a day (YYYY-MM-DD), key id, route or status.", strType()),
				prop("count", "Requests in the group.", intType(0)),
				prop("errors", "Requests in the group answered with status 400 or more.", intType(0)))
		})
		return object("Request counts by group.",
			oaProp{Name: "data", Schema: &oaSchema{Type: oaTypes{"array"}, Items: count}},
			prop("group_by", "What the counts are grouped by.", &oaSchema{Type: oaTypes{"string"},
				Enum: []any{string(store.GroupByDay), string(store.GroupByKey), string(store.GroupByRoute), string(store.GroupByStatus)}}))
	})
}

func (b *docBuilder) usageLogPageSchema() *oaSchema {
	return b.schema("UsageLogPage", func() *oaSchema {
		ev := b.schema("UsageEvent", func() *oaSchema {
			return object("One authenticated API request. Never holds a key or a body.",
				prop("id", "The entry's id.", uuidType()),
				prop("workspace_id", "The workspace's id.", uuidType()),
				prop("key_id", "The id of the key that made the request.", uuidType()),
				prop("method", "The HTTP method, or the MCP method.", strType()),
				prop("route", "The route template, such as /api/v1/accounts/:id.", strType()),
				prop("status", "The response status.", intType(0)),
				prop("duration_ms", "How long the request took, in milliseconds.", &oaSchema{Type: oaTypes{"number"}, Minimum: floatp(0)}),
				prop("time", "When the request started.", dateTime(false)),
				prop("request_id", "The request id (X-Request-Id).", strType()),
				prop("transport", "rest or mcp.", &oaSchema{Type: oaTypes{"string"}, Enum: []any{store.TransportREST, store.TransportMCP}}),
				prop("user_agent", "The client's User-Agent, shortened.", strType()))
		})
		return object("A page of request log entries, newest first.",
			oaProp{Name: "data", Schema: &oaSchema{Type: oaTypes{"array"}, Items: ev}},
			oaProp{Name: "pagination", Schema: b.paginationSchema()})
	})
}

// errorSchema is the error body restricted to the given codes.
func (b *docBuilder) errorSchema(codes []string) *oaSchema {
	name := "Error"
	if len(codes) > 0 {
		var parts []string
		for _, c := range codes {
			parts = append(parts, pascal(c))
		}
		name = strings.Join(parts, "Or") + "Error"
	}
	return b.schema(name, func() *oaSchema {
		code := strType()
		code.Description = "The error code."
		for _, c := range codes {
			code.Enum = append(code.Enum, c)
		}
		desc := "An error."
		if len(codes) > 0 {
			desc = "An error with code " + strings.Join(codes, " or ") + "."
		}
		return object(desc,
			oaProp{Name: "error", Schema: code},
			prop("message", "What went wrong, for people; names the offending parameter or field.", strType()),
			prop("request_id", "The request's id, as in X-Request-Id.", strType()))
	})
}

// pascal turns snake_case into PascalCase.
func pascal(s string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// errorCodeDescriptions explains every error code, for the HTML page.
var errorCodeDescriptions = map[string]string{
	store.EBADREQUEST:        "Invalid input: an unknown or malformed query parameter, path parameter, header or body field. The message names it.",
	store.EUNAUTHORIZED:      "No API key, or one that does not exist. Send Authorization: Bearer hs_live_... .",
	store.EFORBIDDEN:         "The key lacks the scope the operation requires.",
	store.ENOTFOUND:          "No such record in the key's workspace (records of other workspaces are not found either), or no such route.",
	EMETHODNOTALLOWED:        "The path exists but not with this method; Allow lists the methods.",
	store.ECONFLICT:          "The write conflicts with other data: a duplicate external_id, references to a record being deleted, a record that kept changing under concurrent writes, a full set of webhook subscriptions or a delivery still pending.",
	store.EREVOKED:           "The key was revoked.",
	store.EEXPIRED:           "The key has expired.",
	EPAYLOADTOOLARGE:         "The body is larger than 1 MiB.",
	EUNSUPPORTEDMEDIA:        "The body is not application/json in UTF-8.",
	store.ERATELIMITED:       "Too many requests with this key; wait for Retry-After seconds.",
	store.EIDEMPOTENCYINUSE:  "A request with this Idempotency-Key is still running; retry later.",
	store.EIDEMPOTENCYREUSED: "This Idempotency-Key was already used with a different request.",
	store.EINTERNAL:          "An unexpected error. Nothing is remembered for the Idempotency-Key, so a retry may succeed; the request id is logged.",
}
