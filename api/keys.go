package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

// KeyListResponse is the body of GET /api/v1/keys.
type KeyListResponse struct {
	Data []store.KeyInfo `json:"data"`
}

// NewKeyResponse is the answer of a key creation: the new key as listings
// show it, and the key itself. Key is shown once: a request replayed for its
// Idempotency-Key answers with the same key information and Key null.
type NewKeyResponse struct {
	store.KeyInfo
	Key *string `json:"key"`
}

// RotatedKeyResponse is the answer of a rotation: the new key (as
// NewKeyResponse) and the old one, which keeps working until its expires_at.
type RotatedKeyResponse struct {
	NewKeyResponse
	OldKey store.KeyInfo `json:"old_key"`
}

// CreateKeyRequest is the body of POST /api/v1/keys. ExpiresAt and
// ExpiresIn are exclusive; RateLimit is N/s, N/m, N/h or N/<duration>.
type CreateKeyRequest struct {
	Name      string            `json:"name"`
	Scopes    []string          `json:"scopes"`
	Filter    map[string]string `json:"filter,omitempty"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
	ExpiresIn string            `json:"expires_in,omitempty"`
	RateLimit string            `json:"rate_limit,omitempty"`
}

// RotateKeyRequest is the body of POST /api/v1/keys/:id/rotate: how long the
// old key keeps working, "now" or a duration such as 168h or 7d (by default
// 7 days).
type RotateKeyRequest struct {
	ExpireOldIn string `json:"expire_old_in,omitempty"`
}

// Fields of the key administration bodies.
var (
	createKeyFields = []string{"name", "scopes", "filter", "expires_at", "expires_in", "rate_limit"}
	rotateKeyFields = []string{"expire_old_in"}
	keyPolicyFields = []string{"max_key_lifetime_days", "require_expiry", "disable_unused_after_days"}
)

// redactedBodyKey keeps, on the gin context, what an idempotent request
// remembers instead of its response when the response holds a secret.
const redactedBodyKey = "hustack.redacted_body"

// keyLocation is the path of an API key.
func keyLocation(id string) string { return KeysPath + "/" + id }

func listKeys(r *request) (int, any, error) {
	keys, err := r.sc.FindAPIKeys(r.ctx)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, KeyListResponse{Data: keys}, nil
}

func getKey(r *request) (int, any, error) {
	k, err := r.sc.FindAPIKeyByID(r.ctx, r.c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, k, nil
}

func createKey(r *request) (int, any, error) {
	obj, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	in, err := keyInput(obj, r.s.svc.Now())
	if err != nil {
		return 0, nil, err
	}
	k, raw, err := r.sc.CreateAPIKey(r.ctx, in)
	if err != nil {
		return 0, nil, err
	}
	out := NewKeyResponse{KeyInfo: store.KeyInfo{APIKey: k, Status: k.Status(r.s.svc.Now())}, Key: &raw}
	r.c.Set(redactedBodyKey, NewKeyResponse{KeyInfo: out.KeyInfo})
	r.c.Header("Location", keyLocation(k.ID))
	return http.StatusCreated, out, nil
}

func revokeKey(r *request) (int, any, error) {
	k, err := r.sc.RevokeAPIKey(r.ctx, r.c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, k, nil
}

func rotateKey(r *request) (int, any, error) {
	obj, err := decodeOptionalObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	if err := checkFields(obj, "a rotation", rotateKeyFields); err != nil {
		return 0, nil, err
	}
	in, _, err := stringField(obj, "expire_old_in")
	if err != nil {
		return 0, nil, err
	}
	overlap, err := store.ParseOverlap(in)
	if err != nil {
		return 0, nil, err
	}
	id := r.c.Param("id")
	k, raw, err := r.sc.RotateAPIKey(r.ctx, id, overlap)
	if err != nil {
		return 0, nil, err
	}
	old, err := r.sc.FindAPIKeyByID(r.ctx, id)
	if err != nil {
		return 0, nil, err
	}
	nk := NewKeyResponse{KeyInfo: store.KeyInfo{APIKey: k, Status: k.Status(r.s.svc.Now())}, Key: &raw}
	r.c.Set(redactedBodyKey, RotatedKeyResponse{NewKeyResponse: NewKeyResponse{KeyInfo: nk.KeyInfo}, OldKey: *old})
	r.c.Header("Location", keyLocation(k.ID))
	return http.StatusCreated, RotatedKeyResponse{NewKeyResponse: nk, OldKey: *old}, nil
}

func getKeyPolicy(r *request) (int, any, error) {
	p, err := r.sc.KeyPolicy(r.ctx)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}

func updateKeyPolicy(r *request) (int, any, error) {
	obj, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	p, err := keyPolicy(obj)
	if err != nil {
		return 0, nil, err
	}
	if p, err = r.sc.UpdateKeyPolicy(r.ctx, p); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}

// keyInput reads the body of a key creation. Values are checked here for
// shape (types, times, durations, rate limits) and by store for meaning
// (scopes, filter, policy, escalation).
func keyInput(obj map[string]any, now time.Time) (store.KeyInput, error) {
	var in store.KeyInput
	if err := checkFields(obj, "a key", createKeyFields); err != nil {
		return in, err
	}
	name, present, err := stringField(obj, "name")
	if err != nil {
		return in, err
	}
	if !present {
		return in, store.FieldError("name", "is required.")
	}
	in.Name = name
	scopes, present, err := stringsField(obj, "scopes")
	if err != nil {
		return in, err
	}
	if !present || len(scopes) == 0 {
		return in, store.FieldError("scopes", "is required: a list of at least one scope, such as [\"read:leads\"].")
	}
	for _, s := range scopes {
		in.Scopes = append(in.Scopes, store.Scope(s))
	}
	if in.Filter, _, err = stringMapField(obj, "filter"); err != nil {
		return in, err
	}
	at, hasAt, err := stringField(obj, "expires_at")
	if err != nil {
		return in, err
	}
	within, hasIn, err := stringField(obj, "expires_in")
	if err != nil {
		return in, err
	}
	switch {
	case hasAt && hasIn:
		return in, store.FieldError("expires_in", "cannot be combined with expires_at: give one of them.")
	case hasAt:
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return in, store.FieldError("expires_at", "must be an RFC 3339 time such as 2026-01-31T00:00:00Z, got %q.", clip(at))
		}
		in.ExpiresAt = &t
	case hasIn:
		d, err := store.ParseDuration(within)
		if err != nil || d <= 0 {
			return in, store.FieldError("expires_in", "must be a positive duration such as 720h or 30d, got %q.", clip(within))
		}
		t := now.Add(d)
		in.ExpiresAt = &t
	}
	limit, present, err := stringField(obj, "rate_limit")
	if err != nil {
		return in, err
	}
	if present {
		rl, err := store.ParseRateLimit(limit)
		if err != nil {
			return in, err
		}
		in.RateLimit = &rl
	}
	return in, nil
}

// keyPolicy reads a whole key policy: every field is required.
func keyPolicy(obj map[string]any) (store.KeyPolicy, error) {
	var p store.KeyPolicy
	if err := checkFields(obj, "a key policy", keyPolicyFields); err != nil {
		return p, err
	}
	for _, name := range keyPolicyFields {
		if v, ok := obj[name]; !ok || v == nil {
			return p, store.FieldError(name, "is required: the body is the whole policy, {%s}.", strings.Join(quoted(keyPolicyFields), ", "))
		}
	}
	var err error
	if p.MaxLifetimeDays, err = daysField(obj, "max_key_lifetime_days"); err != nil {
		return p, err
	}
	if p.DisableUnusedDays, err = daysField(obj, "disable_unused_after_days"); err != nil {
		return p, err
	}
	b, ok := obj["require_expiry"].(bool)
	if !ok {
		return p, store.FieldError("require_expiry", "must be true or false, got %s.", store.JSONKind(obj["require_expiry"]))
	}
	p.RequireExpiry = b
	return p, nil
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

// checkFields refuses the members of obj not named in allowed.
func checkFields(obj map[string]any, what string, allowed []string) error {
	var unknown []string
	for k := range obj {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	q := make([]string, len(unknown))
	for i, k := range unknown {
		q[i] = strconv.Quote(clip(k))
	}
	return &store.Error{Code: store.EBADREQUEST, Field: unknown[0],
		Message: fmt.Sprintf("Unknown field(s) in %s: %s. Accepted: %s.", what, strings.Join(q, ", "), strings.Join(allowed, ", "))}
}

// stringField reads an optional string member; null counts as absent.
func stringField(obj map[string]any, name string) (v string, present bool, err error) {
	raw, ok := obj[name]
	if !ok || raw == nil {
		return "", false, nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", false, store.FieldError(name, "must be a string, got %s.", store.JSONKind(raw))
	}
	return s, true, nil
}

// stringsField reads an optional array of strings; null counts as absent.
func stringsField(obj map[string]any, name string) ([]string, bool, error) {
	raw, ok := obj[name]
	if !ok || raw == nil {
		return nil, false, nil
	}
	items, ok := raw.([]any)
	if !ok {
		return nil, false, store.FieldError(name, "must be an array of strings, got %s.", store.JSONKind(raw))
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, false, store.FieldError(name, "must be an array of strings; item %d is %s.", i, store.JSONKind(it))
		}
		out[i] = s
	}
	return out, true, nil
}

// stringMapField reads an optional object whose values are strings; null
// counts as absent.
func stringMapField(obj map[string]any, name string) (map[string]string, bool, error) {
	raw, ok := obj[name]
	if !ok || raw == nil {
		return nil, false, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, false, store.FieldError(name, "must be an object of field names to text values, such as {\"source\": \"Vendor XYZ\"}, got %s.", store.JSONKind(raw))
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s, ok := m[k].(string)
		if !ok {
			return nil, false, store.FieldError(name, "the value of %q must be a string, got %s.", clip(k), store.JSONKind(m[k]))
		}
		out[k] = s
	}
	return out, true, nil
}

// daysField reads a whole number of days; its range is checked by store.
func daysField(obj map[string]any, name string) (int, error) {
	raw := obj[name]
	num, ok := raw.(json.Number)
	if !ok {
		return 0, store.FieldError(name, "must be a whole number of days, got %s.", store.JSONKind(raw))
	}
	n, err := strconv.Atoi(num.String())
	if err != nil || n < -1_000_000 || n > 1_000_000 {
		return 0, store.FieldError(name, "must be a whole number of days, got %s.", clip(num.String()))
	}
	return n, nil
}

// decodeOptionalObject is decodeObject for a body that may be left out: no
// body (or only white space) reads as {}.
func decodeOptionalObject(req *http.Request) (map[string]any, error) {
	if err := checkMediaType(req); err != nil {
		return nil, err
	}
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return map[string]any{}, nil
	}
	return decodeObject(req)
}

// redactedBody returns what an idempotent request remembers of its
// response: the body the handler chose to remember in place of one holding
// a secret, or body itself.
func redactedBody(c *gin.Context, body []byte) []byte {
	v, ok := c.Get(redactedBodyKey)
	if !ok {
		return body
	}
	b, err := json.Marshal(v)
	if err != nil { // the types above always marshal
		panic(fmt.Sprintf("api: marshal redacted response: %v", err))
	}
	return b
}
