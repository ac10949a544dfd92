package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

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
		out, err := ts.run(ctx, t, req)
		if err != nil {
			return ts.toolError(ctx, req, err), nil
		}
		b, err := encode(out)
		if err != nil {
			return ts.toolError(ctx, req, fmt.Errorf("encode result: %w", err)), nil
		}
		return &mcp.CallToolResult{
			Content:              []mcp.Content{mcp.NewTextContent(string(b))},
			StructuredContent:    json.RawMessage(b),
			RawStructuredContent: b,
		}, nil
	}
}

// encode writes a result as JSON. Records and pages of records, the bulk
// of the traffic, are written by Record.MarshalJSON directly: encoding/json
// would re-scan every record's output.
func encode(out any) ([]byte, error) {
	switch v := out.(type) {
	case *store.Record:
		return v.MarshalJSON()
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

// run parses the arguments of a call to t and runs its operation for the
// caller. The operation checks scope and workspace itself.
func (ts *toolServer) run(ctx context.Context, t registeredTool, req mcp.CallToolRequest) (any, error) {
	args, err := arguments(req)
	if err != nil {
		return nil, err
	}
	op := t.op
	if op.Action != store.ActionCreate {
		// Create arguments are the record's fields, which the operation
		// checks with the same messages as REST.
		if err := checkNames(op.Name, args, t.def.InputSchema.PropertyOrder); err != nil {
			return nil, err
		}
	}
	ops := ts.caller(ctx).Ops
	switch op.Action {
	case store.ActionList:
		lp, err := listParams(args)
		if err != nil {
			return nil, err
		}
		return ops.FindRecords(ctx, op.Resource, lp)
	case store.ActionGet:
		id, err := stringArg(args, "id")
		if err != nil {
			return nil, err
		}
		if id == "" {
			return nil, store.FieldError("id", "is required.")
		}
		return ops.FindRecordByID(ctx, op.Resource, id)
	case store.ActionCreate:
		return ops.CreateRecord(ctx, op.Resource, args)
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
	v, ok := args[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", store.FieldError(name, "must be a string.")
	}
	return strings.TrimSpace(s), nil
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
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s, err := stringArg(args, f.name)
		if err != nil {
			return q, err
		}
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, store.FieldError(f.name, "must be an RFC 3339 time such as 2025-01-31T00:00:00Z, got %s.", shown(s))
		}
		*f.dst = t.UTC()
	}
	return q, nil
}
