package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// handler returns the handler of tool t. It never returns a Go error: every
// failure becomes an isError result through toolError, so no raw error text
// reaches the client.
func (ts *toolServer) handler(t registeredTool) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
		defer func() {
			if v := recover(); v != nil {
				res, err = ts.toolError(ctx, req, fmt.Errorf("panic: %v\n%s", v, debug.Stack())), nil
			}
		}()
		args, err := arguments(req)
		if err != nil {
			return ts.toolError(ctx, req, err), nil
		}
		if takesIdempotencyKey(t.op) {
			key, given := present(args, idempotencyKeyArg)
			args = maps.Clone(args)
			delete(args, idempotencyKeyArg) // not a field of the record
			if given {
				return ts.idempotent(ctx, t, req, key, args), nil
			}
		}
		b, err := ts.runEncoded(ctx, t, args)
		if err != nil {
			return ts.toolError(ctx, req, err), nil
		}
		return structured(b), nil
	}
}

// runEncoded runs t and encodes its result.
func (ts *toolServer) runEncoded(ctx context.Context, t registeredTool, args map[string]any) ([]byte, error) {
	out, err := ts.run(ctx, t, args)
	if err != nil {
		return nil, err
	}
	b, err := encode(out)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return b, nil
}

func structured(b []byte) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		Content:              []mcp.Content{mcp.NewTextContent(string(b))},
		StructuredContent:    json.RawMessage(b),
		RawStructuredContent: b,
	}
}

// ReplayedMeta is the _meta field set to true on the result of a call
// that repeated an earlier call's idempotency_key and arguments: the result
// is the first call's, and nothing was written again. It is the
// counterpart of REST's Idempotent-Replayed header.
const ReplayedMeta = "hustack/idempotent_replayed"

// idempotent runs a write whose call carries an idempotency_key (args
// without it) through the caller's Idempotent, so that a repeat of it
// returns the first result: in process the key is kept with
// store.Scoped.Idempotent, remotely the REST API keeps it (Idempotency-Key
// header). The first result is kept whether
// it succeeded or was refused (isError), like a REST response with a 4xx
// status; an internal error is not kept, so a retry can succeed.
func (ts *toolServer) idempotent(ctx context.Context, t registeredTool, req mcp.CallToolRequest, keyArg any, args map[string]any) *mcp.CallToolResult {
	key, ok := keyArg.(string)
	if !ok || !store.ValidIdempotencyKey(key) {
		return ts.toolError(ctx, req, store.FieldError(idempotencyKeyArg,
			"%s Got %s.", store.IdempotencyKeyRule, shown(keyArg)))
	}
	caller := ts.caller(ctx)
	fp, err := fingerprint(caller.KeyID, t.op.Name, args)
	if err != nil {
		return ts.toolError(ctx, req, err)
	}
	var live []byte // the first result, when what is kept differs from it
	resp, replayed, err := caller.Ops.Idempotent(ctx, key, fp, func(ctx context.Context) (store.IdempotentResponse, error) {
		b, err := ts.runEncoded(ctx, t, args)
		code := store.ErrorCode(err)
		switch {
		case err == nil:
			kept, redacted, rerr := withoutSecret(t.op, b)
			if rerr != nil {
				return store.IdempotentResponse{}, rerr
			}
			if redacted {
				live = b
			}
			return store.IdempotentResponse{Status: http.StatusOK, Body: kept}, nil
		case code == store.EINTERNAL:
			return store.IdempotentResponse{}, err
		}
		body, _ := json.Marshal(errorBody{Error: code, Message: store.ErrorMessage(err)})
		return store.IdempotentResponse{Status: api.StatusOf(code), Body: body}, nil
	})
	if err != nil {
		return ts.toolError(ctx, req, err)
	}
	if !replayed && live != nil {
		resp.Body = live
	}
	var res *mcp.CallToolResult
	if resp.Status >= http.StatusBadRequest {
		res = &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(resp.Body))}, IsError: true}
	} else {
		res = structured(resp.Body)
	}
	if replayed {
		res.Meta = &mcp.Meta{AdditionalFields: map[string]any{ReplayedMeta: true}}
	}
	return res
}

// withoutSecret returns the result of op as it may be kept for its
// idempotency key: a new API key and a new subscription's signing secret
// are shown to the first call only and never stored, so a replay shows key
// (or secret) null, as REST does.
func withoutSecret(op store.Operation, b []byte) (kept []byte, redacted bool, err error) {
	var field string
	switch op.Action {
	case store.ActionCreateKey, store.ActionRotateKey:
		field = "key"
	case store.ActionCreateWebhook:
		field = "secret"
	default:
		return b, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, false, fmt.Errorf("redact %s result: %w", op.Name, err)
	}
	m[field] = json.RawMessage("null")
	kept, err = json.Marshal(m)
	return kept, true, err
}

// fingerprint identifies a tool call for its idempotency key: the calling
// API key, the tool and its arguments (without the idempotency key) as
// canonical JSON, whose object keys encoding/json sorts. Like REST's, it
// names the API key, so that another key (which may lack the scope) never
// gets this key's result replayed; and it cannot equal a REST fingerprint,
// so a key used over both is refused as reused.
func fingerprint(keyID, tool string, args map[string]any) (string, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return "", store.Errorf(store.EBADREQUEST, "The tool arguments must be a JSON object.")
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(keyID), []byte(tool), b} {
		_, _ = h.Write(strconv.AppendInt(nil, int64(len(part)), 10))
		_, _ = h.Write([]byte{':'})
		_, _ = h.Write(part)
	}
	return "mcp:" + hex.EncodeToString(h.Sum(nil)), nil
}

// encode writes a result as JSON. Records and pages of records, the bulk
// of the traffic, are written by Record.MarshalJSON directly: encoding/json
// would re-scan every record's output.
func encode(out any) ([]byte, error) {
	switch v := out.(type) {
	case *store.Record:
		return v.MarshalJSON()
	case upserted:
		rb, err := v.Data.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, `{"created":%t,"data":%s}`, v.Created, rb), nil
	case store.Page[*store.Record]:
		b := make([]byte, 0, 512*len(v.Data)+64)
		b = append(b, `{"data":[`...)
		for i, rec := range v.Data {
			if i > 0 {
				b = append(b, ',')
			}
			rb, err := rec.MarshalJSON()
			if err != nil {
				return nil, err
			}
			b = append(b, rb...)
		}
		b = append(b, `],"pagination":`...)
		pb, err := json.Marshal(v.Pagination)
		if err != nil {
			return nil, err
		}
		b = append(b, pb...)
		return append(b, '}'), nil
	}
	return json.Marshal(out)
}

// usageCounts is the result of get_usage, shaped like GET /usage.
type usageCounts struct {
	Data    []store.UsageCount `json:"data"`
	GroupBy string             `json:"group_by"`
}

// whoamiResult is the result of whoami, shaped like GET /me.
type whoamiResult struct {
	Workspace whoamiWorkspace `json:"workspace"`
	Key       store.MeKey     `json:"key"`
}

type whoamiWorkspace struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// upserted is the result of upsert_<singular>.
type upserted struct {
	Created bool
	Data    *store.Record
}

// deleted is the result of delete_<singular>.
type deleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// batchResults is the result of the batch tools, shaped like the REST
// answer {"results": [...]}.
type batchResults struct {
	Results []batchItem `json:"results"`
}

type batchItem struct {
	Index  int           `json:"index"`
	Status int           `json:"status"`
	Data   *store.Record `json:"data,omitempty"`
	Error  *errorBody    `json:"error,omitempty"`
}

// run parses the arguments of a call to t and runs its operation for the
// caller. The operation checks scope and workspace itself.
func (ts *toolServer) run(ctx context.Context, t registeredTool, args map[string]any) (any, error) {
	op := t.op
	switch op.Action {
	case store.ActionCreate, store.ActionUpdate, store.ActionUpsert:
		// Their arguments are the record's fields, which the operation
		// checks with the same messages as REST.
	default:
		if err := checkNames(op.Name, args, t.def.InputSchema.PropertyOrder); err != nil {
			return nil, err
		}
	}
	ops := ts.caller(ctx).Ops
	if out, ok, err := ts.runKeyTool(ctx, op, ops, args); ok {
		return out, err
	}
	if out, ok, err := ts.runWebhookTool(ctx, op, ops, args); ok {
		return out, err
	}
	r := op.Resource
	switch op.Action {
	case store.ActionList:
		lp, err := recordListParams(r, args)
		if err != nil {
			return nil, err
		}
		return ops.FindRecords(ctx, r, lp)
	case store.ActionGet:
		id, err := requiredString(args, "id")
		if err != nil {
			return nil, err
		}
		return ops.FindRecordByID(ctx, r, id)
	case store.ActionCreate:
		return ops.CreateRecord(ctx, r, args)
	case store.ActionUpdate:
		id, err := requiredString(args, "id")
		if err != nil {
			return nil, err
		}
		fields := maps.Clone(args)
		delete(fields, "id")
		return ops.UpdateRecord(ctx, r, id, fields)
	case store.ActionDelete:
		id, err := requiredString(args, "id")
		if err != nil {
			return nil, err
		}
		if err := ops.DeleteRecord(ctx, r, id); err != nil {
			return nil, err
		}
		return deleted{ID: id, Deleted: true}, nil
	case store.ActionUpsert:
		ext, err := requiredString(args, store.ExternalIDField)
		if err != nil {
			return nil, err
		}
		rec, created, err := ops.UpsertRecord(ctx, r, ext, args)
		if err != nil {
			return nil, err
		}
		return upserted{Created: created, Data: rec}, nil
	case store.ActionBatchCreate, store.ActionBatchUpsert:
		records, bad, err := recordsArg(args)
		if err != nil {
			return nil, err
		}
		var results []store.BatchResult
		if op.Action == store.ActionBatchCreate {
			results, err = ops.CreateRecords(ctx, r, records)
		} else {
			results, err = ops.UpsertRecords(ctx, r, records)
		}
		if err != nil {
			return nil, err
		}
		for i := range results {
			if itemErr, isBad := bad[results[i].Index]; isBad {
				results[i].Record, results[i].Err = nil, itemErr
			}
		}
		return ts.batchResults(ctx, op, results), nil
	case store.ActionWhoami:
		me, err := ops.Whoami(ctx)
		if err != nil {
			return nil, err
		}
		return whoamiResult{Workspace: whoamiWorkspace{ID: me.Workspace.ID, Name: me.Workspace.Name}, Key: me.Key}, nil
	case store.ActionUsageCounts:
		q, err := usageQuery(args)
		if err != nil {
			return nil, err
		}
		by, err := stringArg(args, "group_by")
		if err != nil {
			return nil, err
		}
		if by == "" {
			by = string(store.GroupByDay)
		}
		counts, err := ops.CountUsage(ctx, q, store.UsageGroup(by))
		if err != nil {
			return nil, err
		}
		return usageCounts{Data: counts, GroupBy: by}, nil
	case store.ActionUsageLogs:
		q, err := usageQuery(args)
		if err != nil {
			return nil, err
		}
		lp, err := listParams(args)
		if err != nil {
			return nil, err
		}
		return ops.FindUsageLogs(ctx, q, lp)
	}
	return nil, fmt.Errorf("tool %s: no handler for action %s", op.Name, op.Action)
}

// batchResults shapes the outcome of a batch like REST does: each item has
// the status a single request would have had. An internal error of one
// item is logged here and shown with the generic message.
func (ts *toolServer) batchResults(ctx context.Context, op store.Operation, results []store.BatchResult) batchResults {
	out := batchResults{Results: make([]batchItem, len(results))}
	for i, res := range results {
		it := batchItem{Index: res.Index}
		switch {
		case res.Err != nil:
			code := store.ErrorCode(res.Err)
			it.Status = api.StatusOf(code)
			it.Error = &errorBody{Error: code, Message: store.ErrorMessage(res.Err)}
			if code == store.EINTERNAL {
				ts.logger.ErrorContext(ctx, "mcp batch item failed", "tool", op.Name, "index", res.Index, "err", res.Err)
			}
		case res.Created:
			it.Status, it.Data = http.StatusCreated, res.Record
		default:
			it.Status, it.Data = http.StatusOK, res.Record
		}
		out.Results[i] = it
	}
	return out
}

// recordsArg reads the records of a batch as store.BatchRecords does, so
// that a bad item fails on its own with the message REST gives.
func recordsArg(args map[string]any) (records []map[string]any, bad map[int]error, err error) {
	v, ok := present(args, "records")
	if !ok {
		return nil, nil, store.FieldError("records", "is required: an array of 1 to %d records.", store.MaxBatch)
	}
	return store.BatchRecords(v)
}

// arguments returns the call's arguments as an object; no arguments at all
// is an empty object.
func arguments(req mcp.CallToolRequest) (map[string]any, error) {
	switch a := req.Params.Arguments.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return a, nil
	default:
		// An in-process caller may pass any value that encodes as an object.
		var m map[string]any
		if b, err := json.Marshal(a); err == nil && json.Unmarshal(b, &m) == nil && m != nil {
			return m, nil
		}
		return nil, store.Errorf(store.EBADREQUEST, "The tool arguments must be a JSON object.")
	}
}

// checkNames refuses arguments the tool does not take, so that a misspelt
// name is reported instead of silently ignored.
func checkNames(tool string, args map[string]any, known []string) error {
	var unknown []string
	for k := range args {
		if !slices.Contains(known, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	accepted := "none"
	if len(known) > 0 {
		accepted = strings.Join(known, ", ")
	}
	return &store.Error{Code: store.EBADREQUEST, Field: strings.Trim(unknown[0], `"`),
		Message: fmt.Sprintf("Unknown argument(s) for %s: %s. Accepted arguments: %s.", tool, strings.Join(unknown, ", "), accepted)}
}

// listParams reads limit and offset like REST does: values above
// store.MaxLimit, however large, are clamped by the operation, which also
// checks the ranges.
func listParams(args map[string]any) (store.ListParams, error) {
	lp := store.ListParams{Limit: store.DefaultLimit}
	if v, ok := present(args, "limit"); ok {
		n, ok := integer(v)
		if !ok {
			if f, isNum := v.(float64); isNum && f == math.Trunc(f) && f > store.MaxLimit {
				n, ok = store.MaxLimit, true
			}
		}
		if !ok {
			return lp, store.FieldError("limit", "must be an integer between 1 and %d, got %s.", store.MaxLimit, shown(v))
		}
		lp.Limit = n
	}
	if v, ok := present(args, "offset"); ok {
		n, ok := integer(v)
		if !ok {
			return lp, store.FieldError("offset", "must be an integer >= 0, got %s.", shown(v))
		}
		lp.Offset = n
	}
	return lp, nil
}

// recordListParams reads the arguments of a record list: paging, sort,
// cursor, time bounds, the resource's filters, q and include_deleted. The
// operation checks them as it checks REST's query string.
func recordListParams(r *store.Resource, args map[string]any) (store.ListParams, error) {
	lp, err := listParams(args)
	if err != nil {
		return lp, err
	}
	if lp.Sort, err = stringArg(args, "sort"); err != nil {
		return lp, err
	}
	if lp.Cursor, err = stringArg(args, "cursor"); err != nil {
		return lp, err
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{
		{"created_after", &lp.CreatedAfter}, {"created_before", &lp.CreatedBefore},
		{"updated_after", &lp.UpdatedAfter}, {"updated_before", &lp.UpdatedBefore},
	} {
		if *b.dst, err = timeArg(args, b.name); err != nil {
			return lp, err
		}
	}
	for _, name := range r.FilterNames() {
		v, err := stringArg(args, name)
		if err != nil {
			return lp, err
		}
		if _, given := present(args, name); given {
			if lp.Filters == nil {
				lp.Filters = map[string]string{}
			}
			lp.Filters[name] = v
		}
	}
	if v, ok := present(args, "q"); ok {
		s, isString := v.(string)
		if !isString {
			return lp, store.FieldError("q", "must be a string.")
		}
		lp.Q = s
	}
	if v, ok := present(args, "include_deleted"); ok {
		switch v {
		case true, "true":
			lp.IncludeDeleted = true
		case false, "false":
		default:
			return lp, store.FieldError("include_deleted", "must be true or false, got %s.", shown(v))
		}
	}
	return lp, nil
}

// timeArg reads an RFC 3339 time; absent or null gives the zero time.
func timeArg(args map[string]any, name string) (time.Time, error) {
	s, err := stringArg(args, name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, store.FieldError(name, "must be an RFC 3339 time such as 2025-01-31T00:00:00Z, got %s.", shown(s))
	}
	return t.UTC(), nil
}

// present returns a non-null argument.
func present(args map[string]any, name string) (any, bool) {
	v, ok := args[name]
	return v, ok && v != nil
}

// integer reads a JSON number without a fraction, or a string of digits as
// in a REST query string.
func integer(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= math.MaxInt32 {
			return int(n), true
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32); err == nil {
			return int(i), true
		}
	}
	return 0, false
}

// shown renders a client's value for an error message, shortened.
func shown(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "an unsupported value"
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}

// stringArg reads a string argument; absent or null gives "".
func stringArg(args map[string]any, name string) (string, error) {
	v, ok := present(args, name)
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", store.FieldError(name, "must be a string.")
	}
	return strings.TrimSpace(s), nil
}

// requiredString reads a string argument that must be given.
func requiredString(args map[string]any, name string) (string, error) {
	s, err := stringArg(args, name)
	if err == nil && s == "" {
		err = store.FieldError(name, "is required.")
	}
	return s, err
}

// usageQuery reads the usage filters key_id, status, from and to, as REST
// reads its query string.
func usageQuery(args map[string]any) (store.UsageQuery, error) {
	var q store.UsageQuery
	var err error
	if q.KeyID, err = stringArg(args, "key_id"); err != nil {
		return q, err
	}
	if v, ok := present(args, "status"); ok {
		n, ok := integer(v)
		if !ok || n == 0 {
			return q, store.FieldError("status", "must be an HTTP status code, got %s.", shown(v))
		}
		q.Status = n
	}
	if q.From, err = timeArg(args, "from"); err != nil {
		return q, err
	}
	q.To, err = timeArg(args, "to")
	return q, err
}
