package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hustack/hustack/store"
)

// parseQuery checks a query string against the parameters a route accepts
// and returns their values. Unknown names (including bracket forms such as
// limit[$gt]), repeated parameters, malformed escapes and invalid UTF-8 are
// bad requests.
func parseQuery(raw string, accepted []Param) (map[string]string, error) {
	if raw == "" {
		return nil, nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, store.Errorf(store.EBADREQUEST, "The query string is malformed: %s.", clip(err.Error()))
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	slices.Sort(names)
	var unknown []string
	out := make(map[string]string, len(vals))
	for _, k := range names {
		if !slices.ContainsFunc(accepted, func(p Param) bool { return p.Name == k }) {
			unknown = append(unknown, strconv.Quote(clip(k)))
			continue
		}
		vs := vals[k]
		if len(vs) > 1 {
			return nil, store.FieldError(k, "must be given only once.")
		}
		if !utf8.ValidString(vs[0]) {
			return nil, store.FieldError(k, "must be valid UTF-8.")
		}
		out[k] = vs[0]
	}
	if len(unknown) > 0 {
		var acc []string
		for _, p := range accepted {
			acc = append(acc, p.Name)
		}
		hint := "This route takes no query parameters."
		if len(acc) > 0 {
			hint = "Accepted: " + strings.Join(acc, ", ") + "."
		}
		return nil, &store.Error{Code: store.EBADREQUEST, Field: names[0],
			Message: fmt.Sprintf("Unknown query parameter(s): %s. %s", strings.Join(unknown, ", "), hint)}
	}
	return out, nil
}

// clip shortens client-supplied text quoted in an error message.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > 64 {
		s = truncateUTF8(s, 64) + "..."
	}
	return s
}

// listParams reads limit and offset. Limits above store.MaxLimit, however
// large, are clamped by store; anything that is not an integer is refused.
func listParams(q map[string]string) (store.ListParams, error) {
	lp := store.ListParams{Limit: store.DefaultLimit}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if ne := (*strconv.NumError)(nil); errors.As(err, &ne) && ne.Err == strconv.ErrRange && !strings.HasPrefix(v, "-") {
			n, err = store.MaxLimit, nil
		}
		if err != nil {
			return lp, store.FieldError("limit", "must be an integer between 1 and %d, got %q.", store.MaxLimit, clip(v))
		}
		lp.Limit = n
	}
	if v, ok := q["offset"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return lp, store.FieldError("offset", "must be an integer >= 0, got %q.", clip(v))
		}
		lp.Offset = n
	}
	return lp, nil
}

// recordListQuery reads the query parameters of a record list of resource
// r. Values are checked here for shape (integers, times, booleans) and by
// store for meaning (sort orders, cursors, filter values).
func recordListQuery(q map[string]string, r *store.Resource) (store.ListParams, error) {
	lp, err := listParams(q)
	if err != nil {
		return lp, err
	}
	lp.Sort, lp.Cursor, lp.Q = q["sort"], q["cursor"], q["q"]
	if _, ok := q["cursor"]; ok && lp.Cursor == "" {
		return lp, store.FieldError("cursor", "must not be empty; leave it out for the first page.")
	}
	if _, ok := q["sort"]; ok && lp.Sort == "" {
		return lp, store.FieldError("sort", "must be one of %s.", strings.Join(store.SortOrders, ", "))
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{
		{"created_after", &lp.CreatedAfter}, {"created_before", &lp.CreatedBefore},
		{"updated_after", &lp.UpdatedAfter}, {"updated_before", &lp.UpdatedBefore},
	} {
		if v, ok := q[b.name]; ok {
			t, err := parseTime(b.name, v)
			if err != nil {
				return lp, err
			}
			*b.dst = t
		}
	}
	if v, ok := q["include_deleted"]; ok {
		switch v {
		case "true":
			lp.IncludeDeleted = true
		case "false":
		default:
			return lp, store.FieldError("include_deleted", "must be true or false, got %q.", clip(v))
		}
	}
	for _, name := range r.FilterNames() {
		if v, ok := q[name]; ok {
			if lp.Filters == nil {
				lp.Filters = map[string]string{}
			}
			lp.Filters[name] = v
		}
	}
	return lp, nil
}

// parseTime reads an RFC 3339 time given as query parameter name.
func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, store.FieldError(name, "must be an RFC 3339 time such as 2025-01-31T00:00:00Z, got %q.", clip(v))
	}
	return t.UTC(), nil
}

// usageQuery reads the usage filters key_id, status, from and to.
func usageQuery(q map[string]string) (store.UsageQuery, error) {
	var uq store.UsageQuery
	uq.KeyID = q["key_id"]
	if v, ok := q["status"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			return uq, store.FieldError("status", "must be an HTTP status code, got %q.", clip(v))
		}
		uq.Status = n
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &uq.From}, {"to", &uq.To}} {
		v, ok := q[f.name]
		if !ok {
			continue
		}
		t, err := parseTime(f.name, v)
		if err != nil {
			return uq, err
		}
		*f.dst = t
	}
	return uq, nil
}

// decodeBatch reads the body of a batch request, {"records": [...]}, as
// store.BatchRecords does.
func decodeBatch(req *http.Request) (inputs []map[string]any, bad map[int]error, err error) {
	obj, err := decodeObject(req)
	if err != nil {
		return nil, nil, err
	}
	var unknown []string
	for k := range obj {
		if k != "records" {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, nil, &store.Error{Code: store.EBADREQUEST, Field: "records",
			Message: fmt.Sprintf("Unknown field(s) in a batch request: %s. The body is {\"records\": [...]}.", strings.Join(unknown, ", "))}
	}
	raw, ok := obj["records"]
	if !ok {
		return nil, nil, store.FieldError("records", "is required: the body is {\"records\": [...]} with 1 to %d records.", store.MaxBatch)
	}
	return store.BatchRecords(raw)
}

// decodeObject reads a request body that must be one JSON object in UTF-8.
// Numbers stay json.Number so that store sees exactly what was sent.
func decodeObject(req *http.Request) (map[string]any, error) {
	if err := checkMediaType(req); err != nil {
		return nil, err
	}
	if req.Body == nil {
		return nil, store.Errorf(store.EBADREQUEST, "The request body is empty. %s", errMessageBadReqBody)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, store.Errorf(store.EBADREQUEST, "The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, store.Errorf(store.EBADREQUEST, "The request body is empty. %s", errMessageBadReqBody)
	}
	if !utf8.Valid(body) {
		return nil, store.Errorf(store.EBADREQUEST, "The request body must be valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonSyntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, store.Errorf(store.EBADREQUEST, "The request body must hold a single JSON object, with nothing after it.")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, store.Errorf(store.EBADREQUEST, "%s Got %s.", errMessageBadReqBody, store.JSONKind(v))
	}
	return obj, nil
}

// checkMediaType refuses a Content-Type other than JSON in UTF-8; a body
// without one is read as JSON.
func checkMediaType(req *http.Request) error {
	ct := req.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &store.Error{Code: EUNSUPPORTEDMEDIA, Message: errMessageMediaType}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return &store.Error{Code: EUNSUPPORTEDMEDIA, Message: "The request body must be encoded as UTF-8."}
	}
	return nil
}

func jsonSyntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return store.Errorf(store.EBADREQUEST, "The request body is not valid JSON (at byte %d): %s.", se.Offset, clip(se.Error()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return store.Errorf(store.EBADREQUEST, "The request body is not valid JSON: it ends too early.")
	default:
		return store.Errorf(store.EBADREQUEST, "The request body is not valid JSON.")
	}
}
