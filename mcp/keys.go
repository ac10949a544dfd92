package mcp

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// The key administration tools (scope admin:keys). Like every write tool,
// those that write take an idempotency_key; the result kept for it never
// holds a new key's secret (withoutSecret), so a replay shows key null.

// keyTool returns the input and output schemas and the description of a
// key administration operation's tool.
func keyTool(op store.Operation) (in, out schema, desc string, ok bool) {
	switch op.Action {
	case store.ActionListKeys:
		in = object(nil)
		out = object(props{{"data", arrayOf(keyInfoSchema().json())}}, "data")
		desc = op.Summary + "\n\nReturns {data: [key]}, oldest first: only the keys this API key could have created itself " +
			"(no scope it lacks, its record filter kept). Each key has name, prefix (the first characters of the key, to recognise it), " +
			"scopes, filter, rate_limit, created_at, expires_at, revoked_at, last_used_at, status (active, expiring within 7 days, " +
			"expired or revoked) and requests_7d (requests over the last 7 days)."
	case store.ActionGetKey:
		in = object(props{{"id", with(str("The key's id (a UUID), as returned by list_api_keys."), "format", "uuid")}}, "id")
		out = keyInfoSchema()
		desc = op.Summary + "\n\nReturns the key as list_api_keys shows it. A key this API key does not manage answers not_found."
	case store.ActionCreateKey:
		in = createKeyInput()
		out = withProps(keyInfoSchema(), prop{"key", rawKeySchema()})
		desc = op.Summary + "\n\nThe new key can only have scopes this API key has (admin:keys included only if it has it), keeps " +
			"this key's record filter, and its rate limit cannot exceed this key's. Returns the key's fields and, in key, " +
			"the secret key itself (hs_live_...): it is shown only this once and cannot be recovered, so hand it to the user " +
			"at once and tell them to store it safely. Every call creates another key."
	case store.ActionRevokeKey:
		in = object(props{{"id", with(str("The id of the key to revoke."), "format", "uuid")}}, "id")
		out = keyInfoSchema()
		desc = op.Summary + "\n\nEvery request made with the key is refused from now on (within about a second) and this cannot be " +
			"undone; the webhook subscriptions the key created are disabled. A key can revoke itself. Revoking a revoked key changes " +
			"nothing. Returns the key with status revoked. " +
			"To replace a key without an interruption, use rotate_api_key instead."
	case store.ActionRotateKey:
		in = object(props{
			{"id", with(str("The id of the key to rotate."), "format", "uuid")},
			{"expire_old_in", with(str("How long the old key keeps working: a duration such as 168h or 7d (at most 90 days), "+
				"or \"now\" to stop it at once. Defaults to 7d."), "default", "7d", "maxLength", 32)},
		}, "id")
		out = withProps(keyInfoSchema(), prop{"key", rawKeySchema()},
			prop{"old_key", nullable(keyInfoSchema().json())})
		desc = op.Summary + "\n\nReturns the new key's fields, the new secret key in key (shown only this once: hand it to the user " +
			"at once) and old_key, the old key with its new expires_at. Requests with the old key keep working until then and " +
			"are refused after, so the user has that long to switch. Only an active key can be rotated."
	case store.ActionGetPolicy:
		in = object(nil)
		out = keyPolicySchema()
		desc = op.Summary + "\n\nReturns {max_key_lifetime_days, require_expiry, disable_unused_after_days}; 0 or false means the rule is off."
	case store.ActionUpdatePolicy:
		in = keyPolicySchema()
		out = keyPolicySchema()
		desc = op.Summary + "\n\nPass the whole policy (call get_key_policy first to keep the current values): new keys must expire " +
			"within max_key_lifetime_days (0: no maximum), require_expiry refuses new keys without an expiry, and keys unused for " +
			"disable_unused_after_days are revoked by a periodic task (0: never). Existing keys are not changed. A key with a " +
			"record filter cannot change the policy. Returns the policy as stored."
	default:
		return in, out, "", false
	}
	return in, out, desc, true
}

// withProps returns s with more properties, all required.
func withProps(s schema, more ...prop) schema {
	for _, p := range more {
		s.props = append(s.props, p)
		s.required = append(s.required, p.name)
	}
	return s
}

func scopeEnum() []string {
	var out []string
	for _, s := range store.AllScopes() {
		out = append(out, string(s))
	}
	return out
}

func createKeyInput() schema {
	return object(props{
		{"name", with(str("A name for the key, such as the tool or vendor that will use it."), "minLength", 1, "maxLength", 255)},
		{"scopes", map[string]any{"type": "array", "minItems": 1, "uniqueItems": true,
			"items":       map[string]any{"type": "string", "enum": scopeEnum()},
			"description": "What the key may do, such as [\"read:leads\", \"write:leads\"]; only scopes of the calling key."}},
		{"filter", map[string]any{"type": "object", "maxProperties": 5,
			"additionalProperties": map[string]any{"type": "string", "minLength": 1},
			"description": "Optional record filter making a vendor key, such as {\"source\": \"Vendor XYZ\"}: the key sees only " +
				"records with these field values, and records it creates get them. Fields of leads, contacts, accounts or deals; " +
				"the key's scopes may only name resources that have every filtered field, and not read:usage."}},
		{"expires_at", with(str("Optional: when the key stops working, RFC 3339 such as 2026-01-31T00:00:00Z. Not with expires_in."),
			"format", "date-time")},
		{"expires_in", with(str("Optional: how long the key works, such as 720h or 30d. Not with expires_at."), "maxLength", 32)},
		{"rate_limit", with(str("Optional: requests allowed per period, such as 600/m, 10/s or 100/10s; at most the calling "+
			"key's, which is the default."), "maxLength", 32)},
	}, "name", "scopes")
}

func keyPolicySchema() schema {
	days := func(desc string) map[string]any {
		return map[string]any{"type": "integer", "minimum": 0, "maximum": 3660, "description": desc}
	}
	return object(props{
		{"max_key_lifetime_days", days("New keys must expire within this many days; 0: no maximum.")},
		{"require_expiry", map[string]any{"type": "boolean", "description": "Whether new keys must have an expiry."}},
		{"disable_unused_after_days", days("Keys not used for this many days are revoked by a periodic task; 0: never.")},
	}, "max_key_lifetime_days", "require_expiry", "disable_unused_after_days")
}

func rawKeySchema() map[string]any {
	return with(nullable(str("The secret key, for the header Authorization: Bearer <key>. Shown only this once: "+
		"null when the result is replayed for a repeated idempotency_key.")), "pattern", "^"+store.KeyPrefix)
}

func keyInfoSchema() schema {
	ts := func(desc string) map[string]any { return with(nullable(str(desc)), "format", "date-time") }
	return object(props{
		{"id", with(str("The key's id."), "format", "uuid")},
		{"workspace_id", with(str("The workspace's id."), "format", "uuid")},
		{"name", str("The key's name.")},
		{"prefix", str("The first characters of the key, to recognise it; never the whole key.")},
		{"scopes", map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": scopeEnum()},
			"description": "What the key may do."}},
		{"filter", map[string]any{"type": []string{"object", "null"}, "additionalProperties": map[string]any{"type": "string"},
			"description": "The record filter of a vendor key (field -> value); null for a key that sees the whole workspace."}},
		{"rate_limit", str("Requests allowed per period, such as 100/10s.")},
		{"created_at", with(str("When the key was created, RFC 3339 UTC."), "format", "date-time")},
		{"expires_at", ts("When the key stops working; null if never.")},
		{"revoked_at", ts("When the key was revoked; null if it was not.")},
		{"last_used_at", ts("When the key was last used (updated within seconds); null if never.")},
		{"status", map[string]any{"type": "string", "enum": []string{store.KeyActive, store.KeyExpiring, store.KeyExpired, store.KeyRevoked},
			"description": "active, expiring (expires within 7 days), expired or revoked."}},
		{"requests_7d", map[string]any{"type": "integer", "minimum": 0, "description": "Requests made with the key over the last 7 days."}},
	}, "id", "workspace_id", "name", "prefix", "scopes", "filter", "rate_limit", "created_at", "expires_at", "revoked_at",
		"last_used_at", "status", "requests_7d")
}

// keyList is the result of list_api_keys, shaped like GET /keys.
type keyList struct {
	Data []store.KeyInfo `json:"data"`
}

// createdKey is the result of create_api_key, shaped like POST /keys.
type createdKey struct {
	store.KeyInfo
	Key *string `json:"key"`
}

// rotatedKey is the result of rotate_api_key, shaped like POST
// /keys/:id/rotate.
type rotatedKey struct {
	store.KeyInfo
	Key    *string        `json:"key"`
	OldKey *store.KeyInfo `json:"old_key"`
}

// oldKeyRotator is implemented by operations that learn the old key's state
// in the same call as a rotation (the REST client).
type oldKeyRotator interface {
	RotateAPIKeyWithOld(ctx context.Context, id string, overlap time.Duration) (*store.APIKey, string, *store.KeyInfo, error)
}

// runKeyTool runs a key administration tool; ok is false for other
// actions.
func (ts *toolServer) runKeyTool(ctx context.Context, op store.Operation, ops Operations, args map[string]any) (out any, ok bool, err error) {
	switch op.Action {
	case store.ActionListKeys:
		keys, err := ops.FindAPIKeys(ctx)
		if err != nil {
			return nil, true, err
		}
		if keys == nil {
			keys = []store.KeyInfo{}
		}
		return keyList{Data: keys}, true, nil
	case store.ActionGetKey, store.ActionRevokeKey:
		id, err := requiredString(args, "id")
		if err != nil {
			return nil, true, err
		}
		if op.Action == store.ActionGetKey {
			k, err := ops.FindAPIKeyByID(ctx, id)
			return k, true, err
		}
		k, err := ops.RevokeAPIKey(ctx, id)
		return k, true, err
	case store.ActionCreateKey:
		in, err := keyInput(args, time.Now())
		if err != nil {
			return nil, true, err
		}
		k, raw, err := ops.CreateAPIKey(ctx, in)
		if err != nil {
			return nil, true, err
		}
		return createdKey{KeyInfo: newKeyInfo(k), Key: rawKey(raw)}, true, nil
	case store.ActionRotateKey:
		id, err := requiredString(args, "id")
		if err != nil {
			return nil, true, err
		}
		s, err := stringArg(args, "expire_old_in")
		if err != nil {
			return nil, true, err
		}
		overlap, err := store.ParseOverlap(s)
		if err != nil {
			return nil, true, err
		}
		if r, isRotator := ops.(oldKeyRotator); isRotator {
			k, raw, old, err := r.RotateAPIKeyWithOld(ctx, id, overlap)
			if err != nil {
				return nil, true, err
			}
			return rotatedKey{KeyInfo: newKeyInfo(k), Key: rawKey(raw), OldKey: old}, true, nil
		}
		k, raw, err := ops.RotateAPIKey(ctx, id, overlap)
		if err != nil {
			return nil, true, err
		}
		// The new key is made: its raw value must reach the caller even if
		// the old key cannot be read back.
		old, err := ops.FindAPIKeyByID(ctx, id)
		if err != nil {
			ts.logger.WarnContext(ctx, "mcp rotate_api_key: cannot read the old key back", "key_id", id, "err", err)
			old = nil
		}
		return rotatedKey{KeyInfo: newKeyInfo(k), Key: rawKey(raw), OldKey: old}, true, nil
	case store.ActionGetPolicy:
		p, err := ops.KeyPolicy(ctx)
		return p, true, err
	case store.ActionUpdatePolicy:
		p, err := keyPolicyArg(args)
		if err != nil {
			return nil, true, err
		}
		p, err = ops.UpdateKeyPolicy(ctx, p)
		return p, true, err
	}
	return nil, false, nil
}

// rawKey is a new key's secret as a result shows it: null when the REST
// API replayed its answer for a repeated idempotency key.
func rawKey(raw string) *string {
	if raw == "" {
		return nil
	}
	return &raw
}

// newKeyInfo describes a key just made: it has served no request yet.
func newKeyInfo(k *store.APIKey) store.KeyInfo {
	return store.KeyInfo{APIKey: k, Status: k.Status(time.Now())}
}

// keyInput reads the arguments of create_api_key as REST reads the body of
// POST /keys.
func keyInput(args map[string]any, now time.Time) (store.KeyInput, error) {
	var in store.KeyInput
	var err error
	if in.Name, err = stringArg(args, "name"); err != nil {
		return in, err
	}
	v, ok := present(args, "scopes")
	if !ok {
		return in, store.FieldError("scopes", "is required: an array of scopes such as [\"read:leads\"].")
	}
	items, isArray := v.([]any)
	if !isArray {
		return in, store.FieldError("scopes", "must be an array of scopes such as [\"read:leads\"], got %s.", shown(v))
	}
	for _, it := range items {
		s, isString := it.(string)
		if !isString {
			return in, store.FieldError("scopes", "must be an array of strings, got %s.", shown(it))
		}
		in.Scopes = append(in.Scopes, store.Scope(strings.TrimSpace(s)))
	}
	if v, ok := present(args, "filter"); ok {
		m, isObject := v.(map[string]any)
		if !isObject {
			return in, store.FieldError("filter", "must be an object of field names and values, such as {\"source\": \"Vendor XYZ\"}.")
		}
		in.Filter = make(map[string]string, len(m))
		for _, name := range slices.Sorted(maps.Keys(m)) {
			s, isString := m[name].(string)
			if !isString {
				return in, store.FieldError("filter", "the value of %q must be a string, got %s.", name, shown(m[name]))
			}
			in.Filter[name] = s
		}
	}
	at, err := timeArg(args, "expires_at")
	if err != nil {
		return in, err
	}
	within, err := stringArg(args, "expires_in")
	if err != nil {
		return in, err
	}
	switch {
	case !at.IsZero() && within != "":
		return in, store.FieldError("expires_in", "cannot be combined with expires_at; give one of them.")
	case !at.IsZero():
		in.ExpiresAt = &at
	case within != "":
		d, err := store.ParseDuration(within)
		if err != nil || d <= 0 {
			return in, store.FieldError("expires_in", "must be a positive duration such as 720h or 30d, got %s.", shown(within))
		}
		t := now.Add(d)
		in.ExpiresAt = &t
	}
	rate, err := stringArg(args, "rate_limit")
	if err != nil {
		return in, err
	}
	if rate != "" {
		rl, err := store.ParseRateLimit(rate)
		if err != nil {
			return in, err
		}
		in.RateLimit = &rl
	}
	return in, nil
}

// keyPolicyArg reads the whole policy of update_key_policy.
func keyPolicyArg(args map[string]any) (store.KeyPolicy, error) {
	var p store.KeyPolicy
	for _, f := range []struct {
		name string
		dst  *int
	}{{"max_key_lifetime_days", &p.MaxLifetimeDays}, {"disable_unused_after_days", &p.DisableUnusedDays}} {
		v, ok := present(args, f.name)
		if !ok {
			return p, store.FieldError(f.name, "is required: a number of days, 0 for none.")
		}
		n, isInt := integer(v)
		if !isInt {
			return p, store.FieldError(f.name, "must be a whole number of days, got %s.", shown(v))
		}
		*f.dst = n
	}
	v, ok := present(args, "require_expiry")
	if !ok {
		return p, store.FieldError("require_expiry", "is required: true or false.")
	}
	b, isBool := v.(bool)
	if !isBool {
		return p, store.FieldError("require_expiry", "must be true or false, got %s.", shown(v))
	}
	p.RequireExpiry = b
	return p, nil
}
