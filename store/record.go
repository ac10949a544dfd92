package store

import (
	"encoding/json"
	"fmt"
	"math"
	"net/mail"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeFormat is how every timestamp is written: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// CreatedViaAPI tags records created through the API (REST or MCP).
const CreatedViaAPI = "api"

// Record is one CRM record of any resource. Fields holds the resource's
// user-settable fields: string or float64 values only; an absent key is null.
type Record struct {
	Resource    *Resource
	ID          string
	WorkspaceID string
	Fields      map[string]any
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CreatedVia  string
	APIKeyID    string
	// DeletedAt is set on a tombstone: a deleted record, kept for a while so
	// that sync clients can see the deletion (include_deleted=true). Its
	// fields stay stored, so that filters still apply, but are not shown.
	DeletedAt *time.Time
}

// MarshalJSON writes the record flat, with every field of its resource
// (null when unset) in declaration order. The workspace id is not written:
// it is always the caller's own.
func (r Record) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.ID)
	if r.DeletedAt != nil {
		b = append(b, `,"deleted":true,"deleted_at":`...)
		b = appendJSONTime(b, *r.DeletedAt)
		b = append(b, `,"external_id":`...)
		b = appendJSON(b, r.Fields[ExternalIDField])
		b = append(b, `,"created_at":`...)
		b = appendJSONTime(b, r.CreatedAt)
		b = append(b, `,"updated_at":`...)
		b = appendJSONTime(b, r.UpdatedAt)
		return append(b, '}'), nil
	}
	if r.Resource != nil {
		for _, f := range r.Resource.Fields {
			b = append(b, `,"`...)
			b = append(b, f.Name...)
			b = append(b, `":`...)
			b = appendJSON(b, r.Fields[f.Name])
		}
	}
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, r.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendJSONTime(b, r.UpdatedAt)
	b = append(b, `,"created_via":`...)
	b = appendJSONString(b, r.CreatedVia)
	b = append(b, `,"api_key_id":`...)
	b = appendJSONString(b, r.APIKeyID)
	return append(b, '}'), nil
}

// appendJSON appends a field value as json.Marshal writes it.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	}
	out, err := json.Marshal(v)
	if err != nil { // only strings, float64 and nil are stored; cannot happen
		return append(b, "null"...)
	}
	return append(b, out...)
}

// appendJSONString appends s as json.Marshal writes it: as it is, quoted,
// when it holds only printable ASCII that JSON (with json.Marshal's HTML
// escaping) leaves alone, else through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			out, _ := json.Marshal(s) // a string always marshals
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime appends t in UTC as a quoted TimeFormat string.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeFormat)
	return append(b, '"')
}

// UnmarshalJSON reads a record written by MarshalJSON. Set Resource first to
// keep only that resource's fields; otherwise every other key lands in Fields.
func (r *Record) UnmarshalJSON(data []byte) error {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	str := func(k string) string { s, _ := m[k].(string); delete(m, k); return s }
	tm := func(k string) (time.Time, error) {
		s := str(k)
		if s == "" {
			return time.Time{}, nil
		}
		return time.Parse(time.RFC3339Nano, s)
	}
	r.ID = str("id")
	delete(m, "deleted")
	if s := str("deleted_at"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return err
		}
		r.DeletedAt = &t
	}
	r.CreatedVia = str("created_via")
	r.APIKeyID = str("api_key_id")
	var err error
	if r.CreatedAt, err = tm("created_at"); err != nil {
		return err
	}
	if r.UpdatedAt, err = tm("updated_at"); err != nil {
		return err
	}
	r.Fields = map[string]any{}
	for k, v := range m {
		if v == nil {
			continue
		}
		if r.Resource != nil {
			if _, ok := r.Resource.Field(k); !ok {
				continue
			}
		}
		r.Fields[k] = v
	}
	return nil
}

// ignoredInput are keys a client may send on create that are silently
// ignored: server-managed fields (often echoed back from a previous read)
// and tenant ids, which always come from the API key.
var ignoredInput = map[string]bool{
	"id": true, "created_at": true, "updated_at": true, "created_via": true, "api_key_id": true,
	"workspace_id": true, "company_id": true,
}

// ValidateCreate checks a create request body and returns the normalized
// field values. Errors are bad_request and name the offending field.
// References are checked for shape here and for existence by Scoped.
func (r *Resource) ValidateCreate(input map[string]any) (map[string]any, error) {
	if input == nil {
		return nil, Errorf(EBADREQUEST, "The request body must be a JSON object.")
	}
	if err := r.checkUnknown(input); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(r.Fields))
	for _, f := range r.Fields {
		v, err := f.normalize(input[f.Name])
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = f.Default
		}
		if v != nil {
			out[f.Name] = v
		}
	}
	if err := r.checkComplete(out); err != nil {
		return nil, err
	}
	return out, nil
}

// ValidatePatch checks a partial update. It returns the normalized values to
// set and the fields to clear (null or ""). Required fields cannot be
// cleared; whether the merged record is complete is checked by Scoped.
func (r *Resource) ValidatePatch(input map[string]any) (set map[string]any, clear []string, err error) {
	if input == nil {
		return nil, nil, Errorf(EBADREQUEST, "The request body must be a JSON object.")
	}
	if err := r.checkUnknown(input); err != nil {
		return nil, nil, err
	}
	set = map[string]any{}
	for _, f := range r.Fields {
		v, present := input[f.Name]
		if !present {
			continue
		}
		nv, err := f.normalize(v)
		if err != nil {
			return nil, nil, err
		}
		if nv == nil {
			if f.Required {
				return nil, nil, FieldError(f.Name, "is required and cannot be cleared.")
			}
			clear = append(clear, f.Name)
			continue
		}
		set[f.Name] = nv
	}
	return set, clear, nil
}

func (r *Resource) checkUnknown(input map[string]any) error {
	var unknown []string
	for k := range input {
		if _, ok := r.Field(k); !ok && !ignoredInput[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return &Error{Code: EBADREQUEST, Field: unknown[0],
		Message: fmt.Sprintf("Unknown field(s) for %s: %s.", r.Singular, strings.Join(quoteAll(unknown), ", "))}
}

// checkComplete checks the rules that span fields on a complete record.
func (r *Resource) checkComplete(fields map[string]any) error {
	for _, f := range r.Fields {
		if f.Required && fields[f.Name] == nil {
			return FieldError(f.Name, "is required.")
		}
	}
	if len(r.OneOfRequired) == 0 {
		return nil
	}
	for _, name := range r.OneOfRequired {
		if fields[name] != nil {
			return nil
		}
	}
	return FieldError(r.OneOfRequired[0], "at least one of %s is required.", strings.Join(r.OneOfRequired, ", "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// normalize validates one input value. It returns nil for an absent, null or
// empty value.
func (f Field) normalize(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if f.Type == FieldNumber {
		n, ok := v.(float64)
		if !ok {
			if jn, isNum := v.(json.Number); isNum {
				var err error
				if n, err = jn.Float64(); err != nil {
					return nil, FieldError(f.Name, "must be a number.")
				}
				ok = true
			}
		}
		if !ok {
			return nil, FieldError(f.Name, "must be a number, got %s.", JSONKind(v))
		}
		if math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
			return nil, FieldError(f.Name, "must be a number >= 0.")
		}
		return n, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, FieldError(f.Name, "must be a string, got %s.", JSONKind(v))
	}
	if !utf8.ValidString(s) {
		return nil, FieldError(f.Name, "must be valid UTF-8.")
	}
	if strings.ContainsRune(s, 0) {
		return nil, FieldError(f.Name, "must not contain NUL characters.")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if f.MaxLen > 0 && utf8.RuneCountInString(s) > f.MaxLen {
		return nil, FieldError(f.Name, "must be at most %d characters.", f.MaxLen)
	}
	switch f.Type {
	case FieldEmail:
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			return nil, FieldError(f.Name, "must be a valid email address.")
		}
	case FieldCurrency:
		s = strings.ToUpper(s)
		if len(s) != 3 || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return nil, FieldError(f.Name, "must be a three-letter ISO 4217 currency code such as USD.")
		}
	case FieldDate:
		if _, err := time.Parse("2006-01-02", s); err == nil {
			return s, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, FieldError(f.Name, "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp.")
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case FieldEnum:
		for _, e := range f.Enum {
			if strings.EqualFold(e, s) {
				return e, nil
			}
		}
		return nil, FieldError(f.Name, "must be one of %s.", strings.Join(f.Enum, ", "))
	case FieldRef:
		if !ValidID(s) {
			return nil, FieldError(f.Name, "is not a valid id.")
		}
	}
	return s, nil
}

// JSONKind names the JSON type of a decoded value, for messages: "a
// string", "an object", "null".
func JSONKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return "something else"
	}
}
