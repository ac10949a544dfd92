package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

// Route is one REST route of the operation table. Routes are data so that
// tests can check that every operation is served and the API documentation
// can be generated from them.
type Route struct {
	Operation store.Operation
	Method    string
	Path      string  // gin pattern, such as /api/v1/accounts/:id
	PathArgs  []Param // the path's parameters (":id" is Param{Name: "id"}), in path order
	Query     []Param // accepted query parameters; any other is refused
	// Body reports whether the route reads a JSON object body; BodyKind
	// says what it holds (built from the fields of Operation.Resource).
	Body     bool
	BodyKind BodyKind
	// BodyOptional reports whether the body may be left out (no body, or
	// an empty one, means {}).
	BodyOptional bool
	// Idempotent reports whether the route honours an Idempotency-Key
	// header (every route that writes).
	Idempotent bool
	// Responses lists what the route can answer, success first, then the
	// errors in status order. Error bodies are ErrorBody.
	Responses []Response
	handle    handlerFunc
}

// Param describes a path or query parameter.
type Param struct {
	Name string
	// Type is "integer", "string", "number", "boolean", "id" (a UUID) or
	// "date-time" (RFC 3339).
	Type        string
	Enum        []string
	Default     string
	MaxLength   int // in characters; 0: no limit beyond the query's
	Description string
}

// BodyKind says what a route's request body holds.
type BodyKind string

const (
	// BodyNone: the route reads no body.
	BodyNone BodyKind = ""
	// BodyRecord: the fields of a new record of Operation.Resource; the
	// resource's required fields are required. Unknown fields are refused;
	// id, created_at, updated_at, created_via, api_key_id, workspace_id and
	// company_id are ignored.
	BodyRecord BodyKind = "record"
	// BodyPatch: some fields of Operation.Resource; null (or "") clears an
	// optional field, absent fields are left alone, required fields cannot
	// be cleared.
	BodyPatch BodyKind = "patch"
	// BodyUpsert: the fields of the record with the external id of the path:
	// BodyRecord when it is created, BodyPatch when it is updated. An
	// external_id in the body must equal the path's.
	BodyUpsert BodyKind = "upsert"
	// BodyBatch: BatchRequest, each item a BodyRecord.
	BodyBatch BodyKind = "batch"
	// BodyBatchUpsert: BatchRequest, each item a BodyUpsert whose
	// external_id is required.
	BodyBatchUpsert BodyKind = "batch_upsert"
	// BodyKeyCreate: CreateKeyRequest.
	BodyKeyCreate BodyKind = "key_create"
	// BodyKeyRotate: RotateKeyRequest.
	BodyKeyRotate BodyKind = "key_rotate"
	// BodyKeyPolicy: store.KeyPolicy, every field required.
	BodyKeyPolicy BodyKind = "key_policy"
	// BodyWebhookCreate: CreateWebhookRequest.
	BodyWebhookCreate BodyKind = "webhook_create"
	// BodyWebhookPatch: UpdateWebhookRequest.
	BodyWebhookPatch BodyKind = "webhook_patch"
)

// ResponseKind says what a response body holds.
type ResponseKind string

const (
	ResponseEmpty       ResponseKind = ""             // no body (204)
	ResponseRecord      ResponseKind = "record"       // one record of Operation.Resource (store.Record)
	ResponseRecordPage  ResponseKind = "record_page"  // store.Page of records; tombstones with include_deleted
	ResponseBatch       ResponseKind = "batch"        // BatchResponse
	ResponseMe          ResponseKind = "me"           // MeResponse
	ResponseUsageCounts ResponseKind = "usage_counts" // UsageCountsResponse
	ResponseUsageLogs   ResponseKind = "usage_logs"   // store.Page of store.UsageEvent
	ResponseKeyList     ResponseKind = "key_list"     // KeyListResponse
	ResponseKey         ResponseKind = "key"          // store.KeyInfo
	ResponseNewKey      ResponseKind = "new_key"      // NewKeyResponse
	ResponseRotatedKey  ResponseKind = "rotated_key"  // RotatedKeyResponse
	ResponseKeyPolicy   ResponseKind = "key_policy"   // store.KeyPolicy
	ResponseWebhookList ResponseKind = "webhook_list" // WebhookListResponse
	ResponseWebhook     ResponseKind = "webhook"      // store.Webhook
	ResponseNewWebhook  ResponseKind = "new_webhook"  // NewWebhookResponse
	ResponseDelivery    ResponseKind = "delivery"     // DeliveryInfo
	ResponseDeliveries  ResponseKind = "deliveries"   // store.Page of DeliveryInfo
	ResponseError       ResponseKind = "error"        // ErrorBody
)

// Response is one answer a route can give.
type Response struct {
	Status int
	Body   ResponseKind
	// Codes are the error codes answered with this status (errors only).
	Codes       []string
	Description string
}

// request is what a route handler gets: the scoped operations of the
// caller, the validated query and the gin context for path and body.
type request struct {
	ctx   context.Context
	c     *gin.Context
	s     *server
	sc    *store.Scoped
	op    store.Operation
	query map[string]string
}

type handlerFunc func(r *request) (status int, body any, err error)

// APIPrefix starts every REST path.
const APIPrefix = "/api/v1"

// Paths of key administration.
const (
	KeysPath      = APIPrefix + "/keys"
	KeyPolicyPath = APIPrefix + "/key-policy"
)

var (
	pageParams = []Param{
		{Name: "limit", Type: "integer", Default: strconv.Itoa(store.DefaultLimit),
			Description: fmt.Sprintf("Page size, 1 to %d; larger values are clamped to %d.", store.MaxLimit, store.MaxLimit)},
		{Name: "offset", Type: "integer", Default: "0", Description: "Number of records to skip, >= 0. Cannot be combined with cursor."},
	}
	usageFilterParams = []Param{
		{Name: "key_id", Type: "id", Description: "Only requests made with this API key."},
		{Name: "from", Type: "date-time", Description: "Only requests at or after this RFC 3339 time."},
		{Name: "to", Type: "date-time", Description: "Only requests before this RFC 3339 time."},
	}
	groupByParam = Param{Name: "group_by", Type: "string", Enum: []string{"day", "key", "route", "status"}, Default: "day",
		Description: "What to group the counts by."}
	statusParam = Param{Name: "status", Type: "integer", Description: "Only requests answered with this HTTP status."}

	idParam         = Param{Name: "id", Type: "id", Description: "The record's id."}
	keyIDParam      = Param{Name: "id", Type: "id", Description: "The API key's id."}
	webhookIDParam  = Param{Name: "id", Type: "id", Description: "The webhook subscription's id."}
	deliveryIDParam = Param{Name: "delivery_id", Type: "id", Description: "The delivery's id, from the subscription's deliveries."}
	deliveryStatus  = Param{Name: "status", Type: "string", Enum: store.DeliveryStatuses(),
		Description: "Only deliveries in this state: pending (queued or waiting for a retry), delivered, failed (given up) or cancelled."}
	externalIDParam = Param{Name: store.ExternalIDField, Type: "string", MaxLength: 255,
		Description: "The record's id in another system, URL-encoded (a / is %2F)."}
)

// recordListParams are the query parameters of every record list, before
// the resource's field filters.
func recordListParams() []Param {
	return []Param{
		pageParams[0],
		pageParams[1],
		{Name: "cursor", Type: "string", MaxLength: 512,
			Description: "pagination.next_cursor of the previous page: the next page by keyset, stable under concurrent inserts. Carries its sort order."},
		{Name: "sort", Type: "string", Enum: store.SortOrders, Default: "-created_at",
			Description: "Order of the list: by created_at or updated_at, ascending, or descending with a leading -. Ties are broken by id."},
		{Name: "created_after", Type: "date-time", Description: "Only records created after this RFC 3339 time (exclusive)."},
		{Name: "created_before", Type: "date-time", Description: "Only records created before this RFC 3339 time (exclusive)."},
		{Name: "updated_after", Type: "date-time", Description: "Only records updated after this RFC 3339 time (exclusive); deletions count as updates."},
		{Name: "updated_before", Type: "date-time", Description: "Only records updated before this RFC 3339 time (exclusive)."},
		{Name: "q", Type: "string", MaxLength: 200,
			Description: "Only records whose name or title contains this text, ignoring case. Plain text: no wildcards or patterns."},
		{Name: "include_deleted", Type: "boolean", Enum: []string{"true", "false"}, Default: "false",
			Description: "Also list tombstones of deleted records ({id, deleted: true, deleted_at, external_id, created_at, updated_at}), kept for the tombstone retention period."},
	}
}

// filterParams are the exact-match filters of resource r.
func filterParams(r *store.Resource) []Param {
	var out []Param
	for _, name := range r.FilterNames() {
		f, _ := r.Field(name)
		p := Param{Name: name, Type: "string", MaxLength: f.MaxLen,
			Description: fmt.Sprintf("Only %s whose %s is exactly this value.", r.Name, name)}
		switch f.Type {
		case store.FieldNumber:
			p.Type = "number"
		case store.FieldRef:
			p.Type, p.MaxLength = "id", 0
		case store.FieldEnum:
			p.Enum = f.Enum
			p.Description = fmt.Sprintf("Only %s of this %s (any case).", r.Name, name)
		case store.FieldEmail:
			p.Description = fmt.Sprintf("Only %s with exactly this email address.", r.Name)
		case store.FieldCurrency:
			p.Description = fmt.Sprintf("Only %s in this ISO 4217 currency (any case).", r.Name)
		}
		out = append(out, p)
	}
	return out
}

var routes = buildRoutes()

// Routes returns the REST routes, one per operation of store.Operations, in
// the table's order.
func Routes() []Route { return slices.Clone(routes) }

func buildRoutes() []Route {
	var out []Route
	for _, op := range store.Operations {
		var rt Route
		var base string
		if op.Resource != nil {
			base = APIPrefix + "/" + op.Resource.Name
		}
		switch op.Action {
		case store.ActionList:
			rt = Route{Method: http.MethodGet, Path: base, Query: append(recordListParams(), filterParams(op.Resource)...),
				handle: listRecords, Responses: ok(http.StatusOK, ResponseRecordPage, "A page of "+op.Resource.Name+".")}
		case store.ActionGet:
			rt = Route{Method: http.MethodGet, Path: base + "/:id", PathArgs: []Param{idParam}, handle: getRecord,
				Responses: ok(http.StatusOK, ResponseRecord, "The "+op.Resource.Singular+".")}
		case store.ActionCreate:
			rt = Route{Method: http.MethodPost, Path: base, BodyKind: BodyRecord, handle: createRecord,
				Responses: ok(http.StatusCreated, ResponseRecord, "The new "+op.Resource.Singular+"; Location names it.")}
		case store.ActionUpdate:
			rt = Route{Method: http.MethodPatch, Path: base + "/:id", PathArgs: []Param{idParam}, BodyKind: BodyPatch,
				handle: updateRecord, Responses: ok(http.StatusOK, ResponseRecord, "The updated "+op.Resource.Singular+".")}
		case store.ActionDelete:
			rt = Route{Method: http.MethodDelete, Path: base + "/:id", PathArgs: []Param{idParam}, handle: deleteRecord,
				Responses: ok(http.StatusNoContent, ResponseEmpty, "Deleted; lists show a tombstone with include_deleted=true.")}
		case store.ActionUpsert:
			rt = Route{Method: http.MethodPut, Path: base + "/by-external-id/:" + store.ExternalIDField,
				PathArgs: []Param{externalIDParam}, BodyKind: BodyUpsert, handle: upsertRecord,
				Responses: []Response{
					{Status: http.StatusOK, Body: ResponseRecord, Description: "The existing " + op.Resource.Singular + ", updated."},
					{Status: http.StatusCreated, Body: ResponseRecord, Description: "The new " + op.Resource.Singular + "; Location names it."},
				}}
		case store.ActionBatchCreate:
			rt = Route{Method: http.MethodPost, Path: base + "/batch", BodyKind: BodyBatch, handle: batchCreate,
				Responses: ok(http.StatusOK, ResponseBatch, "One result per record, in order: status 201 with data, or an error.")}
		case store.ActionBatchUpsert:
			rt = Route{Method: http.MethodPost, Path: base + "/batch/upsert", BodyKind: BodyBatchUpsert, handle: batchUpsert,
				Responses: ok(http.StatusOK, ResponseBatch, "One result per record, in order: status 201 (created) or 200 (updated) with data, or an error.")}
		case store.ActionWhoami:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/me", handle: whoami,
				Responses: ok(http.StatusOK, ResponseMe, "The calling key, its workspace and its rate limit state.")}
		case store.ActionUsageCounts:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/usage",
				Query: append([]Param{groupByParam}, usageFilterParams...), handle: usageCounts,
				Responses: ok(http.StatusOK, ResponseUsageCounts, "Request counts by group.")}
		case store.ActionUsageLogs:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/usage/logs",
				Query: slices.Concat(usageFilterParams, []Param{statusParam}, pageParams), handle: usageLogs,
				Responses: ok(http.StatusOK, ResponseUsageLogs, "A page of request log entries, newest first.")}
		case store.ActionListKeys:
			rt = Route{Method: http.MethodGet, Path: KeysPath, handle: listKeys,
				Responses: ok(http.StatusOK, ResponseKeyList, "The keys the calling key manages, oldest first; never the keys themselves.")}
		case store.ActionGetKey:
			rt = Route{Method: http.MethodGet, Path: KeysPath + "/:id", PathArgs: []Param{keyIDParam}, handle: getKey,
				Responses: ok(http.StatusOK, ResponseKey, "The key; never the key itself.")}
		case store.ActionCreateKey:
			rt = Route{Method: http.MethodPost, Path: KeysPath, BodyKind: BodyKeyCreate, handle: createKey,
				Responses: ok(http.StatusCreated, ResponseNewKey, "The new key, with the key itself in key: shown this once only. Location names it.")}
		case store.ActionRevokeKey:
			rt = Route{Method: http.MethodPost, Path: KeysPath + "/:id/revoke", PathArgs: []Param{keyIDParam}, handle: revokeKey,
				Responses: ok(http.StatusOK, ResponseKey, "The revoked key (status revoked).")}
		case store.ActionRotateKey:
			rt = Route{Method: http.MethodPost, Path: KeysPath + "/:id/rotate", PathArgs: []Param{keyIDParam},
				BodyKind: BodyKeyRotate, BodyOptional: true, handle: rotateKey,
				Responses: ok(http.StatusCreated, ResponseRotatedKey, "The new key, with the key itself in key (shown this once only), and the old key in old_key. Location names the new key.")}
		case store.ActionGetPolicy:
			rt = Route{Method: http.MethodGet, Path: KeyPolicyPath, handle: getKeyPolicy,
				Responses: ok(http.StatusOK, ResponseKeyPolicy, "The workspace's key policy.")}
		case store.ActionUpdatePolicy:
			rt = Route{Method: http.MethodPut, Path: KeyPolicyPath, BodyKind: BodyKeyPolicy, handle: updateKeyPolicy,
				Responses: ok(http.StatusOK, ResponseKeyPolicy, "The workspace's new key policy.")}
		case store.ActionListWebhooks:
			rt = Route{Method: http.MethodGet, Path: WebhooksPath, handle: listWebhooks,
				Responses: ok(http.StatusOK, ResponseWebhookList, "The subscriptions the calling key manages, oldest first; never their secrets.")}
		case store.ActionGetWebhook:
			rt = Route{Method: http.MethodGet, Path: WebhooksPath + "/:id", PathArgs: []Param{webhookIDParam}, handle: getWebhook,
				Responses: ok(http.StatusOK, ResponseWebhook, "The subscription; never its secret.")}
		case store.ActionCreateWebhook:
			rt = Route{Method: http.MethodPost, Path: WebhooksPath, BodyKind: BodyWebhookCreate, handle: createWebhook,
				Responses: ok(http.StatusCreated, ResponseNewWebhook, "The new subscription, with its signing secret in secret: shown this once only. Location names it.")}
		case store.ActionUpdateWebhook:
			rt = Route{Method: http.MethodPatch, Path: WebhooksPath + "/:id", PathArgs: []Param{webhookIDParam},
				BodyKind: BodyWebhookPatch, handle: updateWebhook,
				Responses: ok(http.StatusOK, ResponseWebhook, "The updated subscription.")}
		case store.ActionDeleteWebhook:
			rt = Route{Method: http.MethodDelete, Path: WebhooksPath + "/:id", PathArgs: []Param{webhookIDParam}, handle: deleteWebhook,
				Responses: ok(http.StatusNoContent, ResponseEmpty, "Unsubscribed: the subscription and its deliveries are gone.")}
		case store.ActionListDeliveries:
			rt = Route{Method: http.MethodGet, Path: WebhooksPath + "/:id/deliveries", PathArgs: []Param{webhookIDParam},
				Query: slices.Concat([]Param{deliveryStatus}, pageParams), handle: listDeliveries,
				Responses: ok(http.StatusOK, ResponseDeliveries, "A page of the subscription's deliveries, newest first.")}
		case store.ActionReplayDelivery:
			rt = Route{Method: http.MethodPost, Path: WebhooksPath + "/:id/deliveries/:delivery_id/replay",
				PathArgs: []Param{webhookIDParam, deliveryIDParam}, handle: replayDelivery,
				Responses: ok(http.StatusAccepted, ResponseDelivery, "The new delivery of the same event, queued.")}
		case store.ActionTestWebhook:
			rt = Route{Method: http.MethodPost, Path: WebhooksPath + "/:id/test", PathArgs: []Param{webhookIDParam}, handle: testWebhook,
				Responses: ok(http.StatusAccepted, ResponseDelivery, "The delivery of a ping event, queued.")}
		default:
			continue // an operation without a route fails the route table test
		}
		rt.Operation = op
		rt.Body = rt.BodyKind != BodyNone
		rt.Idempotent = !op.ReadOnly
		rt.Responses = append(rt.Responses, errorResponses(rt)...)
		out = append(out, rt)
	}
	return out
}

// isWebhookOperation reports whether op is about webhook subscriptions.
func isWebhookOperation(op store.Operation) bool {
	return op.Scope == store.ScopeReadWebhooks || op.Scope == store.ScopeWriteWebhooks
}

func ok(status int, body ResponseKind, desc string) []Response {
	return []Response{{Status: status, Body: body, Description: desc}}
}

// errorResponses lists the errors route rt can answer.
func errorResponses(rt Route) []Response {
	op := rt.Operation
	type entry struct {
		codes []string
		desc  string
	}
	byStatus := map[int]*entry{}
	add := func(code, desc string) {
		st := StatusOf(code)
		e := byStatus[st]
		if e == nil {
			e = &entry{}
			byStatus[st] = e
		}
		if !slices.Contains(e.codes, code) {
			e.codes = append(e.codes, code)
		}
		switch {
		case desc == "":
		case e.desc == "":
			e.desc = desc
		default:
			e.desc += " " + desc
		}
	}
	add(store.EBADREQUEST, "Invalid input: an unknown or malformed query parameter, path parameter or body; the message names it.")
	add(store.EUNAUTHORIZED, "Missing or invalid API key.")
	if op.Scope != "" {
		add(store.EFORBIDDEN, "The API key lacks the scope "+string(op.Scope)+".")
	}
	if len(rt.PathArgs) > 0 && rt.PathArgs[0].Name == "id" {
		switch {
		case op.Resource != nil:
			add(store.ENOTFOUND, "No such "+op.Resource.Singular+" in the key's workspace.")
		case op.Action == store.ActionReplayDelivery:
			add(store.ENOTFOUND, "No such webhook subscription among those the calling key manages (those of its workspace with its "+
				"record filter, all of whose events it could receive), or no such delivery of it.")
		case isWebhookOperation(op):
			add(store.ENOTFOUND, "No such webhook subscription among those the calling key manages (those of its workspace with its "+
				"record filter, all of whose events it could receive).")
		default:
			add(store.ENOTFOUND, "No such API key among those the calling key manages (keys of its workspace with no more scopes and no looser filter).")
		}
	}
	switch op.Action {
	case store.ActionCreate, store.ActionUpdate, store.ActionUpsert:
		add(store.ECONFLICT, "Another "+op.Resource.Singular+" already has this external_id, or the record kept changing under concurrent writes.")
	case store.ActionDelete:
		add(store.ECONFLICT, "Other records still reference this "+op.Resource.Singular+".")
	case store.ActionRotateKey:
		add(store.ECONFLICT, "Only an active key can be rotated; this one is revoked or expired.")
	case store.ActionUpdatePolicy:
		add(store.EFORBIDDEN, "A key with a record filter cannot change the workspace's key policy.")
	case store.ActionCreateWebhook:
		add(store.ECONFLICT, fmt.Sprintf("The workspace already has %d webhook subscriptions, the most it can have.", store.MaxWebhooks))
	case store.ActionReplayDelivery:
		add(store.ECONFLICT, "The delivery is still pending (replay it once it is delivered, failed or cancelled), or the subscription "+
			"no longer receives its event type.")
	case store.ActionUpdateWebhook:
		add(store.ECONFLICT, "The subscription kept changing under concurrent updates; retry.")
	}
	if rt.Idempotent {
		add(store.EIDEMPOTENCYINUSE, "A request with this Idempotency-Key is still running.")
		add(store.EIDEMPOTENCYREUSED, "This Idempotency-Key was used with a different request.")
	}
	add(store.EREVOKED, "The API key was revoked or has expired.")
	add(store.EEXPIRED, "")
	if rt.BodyKind != BodyNone {
		add(EPAYLOADTOOLARGE, "The body is larger than 1 MiB.")
		add(EUNSUPPORTEDMEDIA, "The body is not application/json in UTF-8.")
	}
	add(store.ERATELIMITED, "Too many requests; see Retry-After.")
	add(store.EINTERNAL, "An unexpected error; the request id is logged.")

	statuses := make([]int, 0, len(byStatus))
	for st := range byStatus {
		statuses = append(statuses, st)
	}
	slices.Sort(statuses)
	out := make([]Response, 0, len(statuses))
	for _, st := range statuses {
		e := byStatus[st]
		out = append(out, Response{Status: st, Body: ResponseError, Codes: e.codes, Description: e.desc})
	}
	return out
}

// handle adapts a route handler to gin: it validates the query string,
// builds the caller's scoped operations and writes the result or the error.
// A nil body with a status answers without a body (204).
func (s *server) handle(rt Route) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := parseQuery(c.Request.URL.RawQuery, rt.Query)
		if err != nil {
			s.writeError(c, err)
			return
		}
		ctx := c.Request.Context()
		p, _ := store.PrincipalFromContext(ctx)
		status, body, err := rt.handle(&request{ctx: ctx, c: c, s: s, sc: s.svc.Scoped(p), op: rt.Operation, query: q})
		if err != nil {
			s.writeError(c, err)
			return
		}
		if body == nil {
			c.Status(status)
			return
		}
		c.JSON(status, body)
	}
}
