package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// maxFilterFields bounds a key's record filter.
const maxFilterFields = 5

// filterResources are the resources whose fields a record filter may name.
var filterResources = []*Resource{Leads, Contacts, Accounts, Deals}

// normalizeKeyFilter validates a record filter against the key's scopes and
// returns it normalized (nil when empty). Only filterable fields can be
// used, as every list through the key filters on them. Every resource the
// scopes reach must have every filtered field, so that the filter can apply
// to it; scopes that would escape the filter (usage logs) are refused.
func normalizeKeyFilter(filter map[string]string, scopes []Scope) (map[string]string, error) {
	if len(filter) == 0 {
		return nil, nil
	}
	if len(filter) > maxFilterFields {
		return nil, FieldError("filter", "may hold at most %d fields.", maxFilterFields)
	}
	out := make(map[string]string, len(filter))
	for _, name := range sortedKeys(filter) {
		var field *Field
		for _, r := range filterResources {
			if f, ok := r.Field(name); ok && f.Filterable && f.Type != FieldNumber && f.Type != FieldDate && name != ExternalIDField {
				field = &f
				break
			}
		}
		if field == nil {
			return nil, FieldError("filter", "%q is not a filterable text field of leads, contacts, accounts or deals.", name)
		}
		v, err := field.normalize(filter[name])
		if err != nil {
			return nil, FieldError("filter", "%s", strings.TrimPrefix(ErrorMessage(err), name+": "))
		}
		if v == nil {
			return nil, FieldError("filter", "the value of %q must not be empty.", name)
		}
		out[name] = v.(string)
	}
	for _, sc := range scopes {
		if sc == ScopeUsage {
			return nil, FieldError("scopes", "read:usage cannot be given to a key with a record filter: usage covers the whole workspace.")
		}
		r := scopeResource(sc)
		if r == nil {
			continue
		}
		for name := range out {
			if f, ok := r.Field(name); !ok || !f.Filterable {
				return nil, FieldError("scopes", "%s: %s have no field %q, so a key filtered on it cannot reach them.", sc, r.Name, name)
			}
		}
	}
	return out, nil
}

// scopeResource returns the resource a read:/write: scope guards, or nil.
func scopeResource(sc Scope) *Resource {
	_, name, ok := strings.Cut(string(sc), ":")
	if !ok {
		return nil
	}
	r, _ := ResourceByName(name)
	return r
}

// FormatFilter writes a filter as field=value pairs, sorted.
func FormatFilter(f map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(f) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, f[k]))
	}
	return strings.Join(parts, ",")
}

// ParseOverlap reads how long a rotated key keeps working: "now", a Go
// duration ("168h") or days ("7d"), at most 90 days.
func ParseOverlap(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultRotationOverlap, nil
	}
	if s == "now" {
		return 0, nil
	}
	d, err := ParseDuration(s)
	if err != nil || d < 0 || d > 90*24*time.Hour {
		return 0, FieldError("expire_old_in", "must be \"now\" or a duration such as 168h or 7d, at most 90 days.")
	}
	return d, nil
}

// DefaultRotationOverlap is how long a rotated key keeps working by default.
const DefaultRotationOverlap = 7 * 24 * time.Hour

// ParseDuration reads a Go duration or a number of days such as "30d".
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days && n >= 0 && n <= 100_000 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return time.ParseDuration(s)
}

// KeyInfo is a key as administrators see it: never the raw key or its hash.
type KeyInfo struct {
	*APIKey
	Status string `json:"status"`
	// Requests7d counts the key's requests over the last 7 days.
	Requests7d int64 `json:"requests_7d"`
}

// rotate issues a new key with k's name, scopes, filter and limit, and lets
// k expire after overlap (or sooner, if it already expires sooner).
func (s *Service) rotate(ctx context.Context, w *Workspace, k *APIKey, overlap time.Duration) (*APIKey, string, error) {
	now := s.Now()
	if !k.usable(now) {
		return nil, "", Errorf(ECONFLICT, "Only an active key can be rotated; this one is %s.", k.Status(now))
	}
	var exp *time.Time
	if k.ExpiresAt != nil { // the new key gets the old one's lifetime, within policy
		e := now.Add(k.ExpiresAt.Sub(k.CreatedAt))
		if max := w.Policy.MaxLifetimeDays; max > 0 && e.After(now.AddDate(0, 0, max)) {
			e = now.AddDate(0, 0, max)
		}
		exp = &e
	} else if w.Policy.RequireExpiry || w.Policy.MaxLifetimeDays > 0 {
		// The old key never expired but policy now wants an expiry: the
		// maximum lifetime, or 90 days when the policy sets none.
		days := 90
		if w.Policy.MaxLifetimeDays > 0 {
			days = w.Policy.MaxLifetimeDays
		}
		e := now.AddDate(0, 0, days)
		exp = &e
	}
	limit := k.RateLimit
	nk, raw, err := s.insertKey(ctx, w, KeyInput{WorkspaceID: k.WorkspaceID, Name: k.Name, Scopes: k.Scopes,
		Filter: k.Filter, ExpiresAt: exp, RateLimit: &limit})
	if err != nil {
		return nil, "", err
	}
	oldExp := now.Add(overlap)
	if k.ExpiresAt != nil && k.ExpiresAt.Before(oldExp) {
		oldExp = *k.ExpiresAt
	}
	if err := s.backend.SetAPIKeyExpiry(ctx, k.WorkspaceID, k.ID, oldExp); err != nil {
		return nil, "", err
	}
	s.keys.forget(k.Hash)
	return nk, raw, nil
}

// RotateAPIKey rotates a key by id, in whatever workspace it is (operator).
func (s *Service) RotateAPIKey(ctx context.Context, id string, overlap time.Duration) (*APIKey, string, error) {
	if !ValidID(id) {
		return nil, "", notFound("API key")
	}
	k, err := s.backend.FindAPIKeyByIDUnscoped(ctx, id)
	if err != nil {
		return nil, "", err
	}
	w, err := s.backend.FindWorkspaceByID(ctx, k.WorkspaceID)
	if err != nil {
		return nil, "", err
	}
	return s.rotate(ctx, w, k, overlap)
}

// SetKeyPolicy replaces a workspace's key policy (operator).
func (s *Service) SetKeyPolicy(ctx context.Context, workspaceID string, p KeyPolicy) (*Workspace, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	w, err := s.FindWorkspaceByID(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if err := s.backend.UpdateWorkspacePolicy(ctx, w.ID, p); err != nil {
		return nil, err
	}
	w.Policy = p
	return w, nil
}

// DisableUnusedKeys revokes, in every workspace whose policy asks for it,
// the usable keys not used (or, if never used, created) for longer than the
// policy allows. It returns how many keys it revoked. Their webhook
// subscriptions stay on: a key that only subscribed is in use through them.
func (s *Service) DisableUnusedKeys(ctx context.Context) (int, error) {
	wss, err := s.backend.FindWorkspaces(ctx)
	if err != nil {
		return 0, err
	}
	now := s.Now()
	n := 0
	for _, w := range wss {
		if w.Policy.DisableUnusedDays <= 0 {
			continue
		}
		keys, err := s.backend.FindAPIKeys(ctx, w.ID)
		if err != nil {
			return n, err
		}
		cutoff := now.AddDate(0, 0, -w.Policy.DisableUnusedDays)
		for _, k := range keys {
			last := k.CreatedAt
			if k.LastUsedAt != nil {
				last = *k.LastUsedAt
			}
			if !k.usable(now) || !last.Before(cutoff) {
				continue
			}
			if err := s.backend.RevokeAPIKey(ctx, w.ID, k.ID, now); err != nil {
				return n, err
			}
			s.keys.forget(k.Hash)
			n++
		}
	}
	return n, nil
}

// manages reports whether the caller may see, revoke and rotate key k: a
// key of its workspace with no more scopes and no looser filter. A key with
// a larger rate limit is managed too (an admin sees every such key of the
// workspace), but not rotated: see RotateAPIKey.
func (sc *Scoped) manages(k *APIKey) bool {
	if k.WorkspaceID != sc.p.WorkspaceID {
		return false
	}
	for _, s := range k.Scopes {
		if !sc.p.Has(s) {
			return false
		}
	}
	for f, v := range sc.p.Filter {
		if k.Filter[f] != v {
			return false
		}
	}
	return true
}

func (sc *Scoped) keyInfo(ctx context.Context, keys []*APIKey) ([]KeyInfo, error) {
	now := sc.s.Now()
	counts, err := sc.s.backend.CountUsage(ctx, sc.p.WorkspaceID, UsageQuery{From: now.Add(-7 * 24 * time.Hour)}, GroupByKey)
	if err != nil {
		return nil, err
	}
	byKey := map[string]int64{}
	for _, c := range counts {
		byKey[c.Group] = c.Count
	}
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, KeyInfo{APIKey: k, Status: k.Status(now), Requests7d: byKey[k.ID]})
	}
	return out, nil
}

// FindAPIKeys lists the keys the caller manages, oldest first.
func (sc *Scoped) FindAPIKeys(ctx context.Context) ([]KeyInfo, error) {
	if err := sc.authorize(operationFor(ActionListKeys, nil)); err != nil {
		return nil, err
	}
	all, err := sc.s.backend.FindAPIKeys(ctx, sc.p.WorkspaceID)
	if err != nil {
		return nil, err
	}
	keys := slices.DeleteFunc(all, func(k *APIKey) bool { return !sc.manages(k) })
	return sc.keyInfo(ctx, keys)
}

func (sc *Scoped) findKey(ctx context.Context, id string) (*APIKey, error) {
	if !ValidID(id) {
		return nil, notFound("API key")
	}
	k, err := sc.s.backend.FindAPIKeyByID(ctx, sc.p.WorkspaceID, id)
	if ErrorCode(err) == ENOTFOUND || (err == nil && !sc.manages(k)) {
		return nil, notFound("API key")
	}
	return k, err
}

// FindAPIKeyByID returns one key the caller manages.
func (sc *Scoped) FindAPIKeyByID(ctx context.Context, id string) (*KeyInfo, error) {
	if err := sc.authorize(operationFor(ActionGetKey, nil)); err != nil {
		return nil, err
	}
	k, err := sc.findKey(ctx, id)
	if err != nil {
		return nil, err
	}
	infos, err := sc.keyInfo(ctx, []*APIKey{k})
	if err != nil {
		return nil, err
	}
	return &infos[0], nil
}

// CreateAPIKey creates a key in the caller's workspace. There is no privilege
// escalation: the new key's scopes are a subset of the caller's, its filter
// contains the caller's, and its rate is no higher than the caller's.
func (sc *Scoped) CreateAPIKey(ctx context.Context, in KeyInput) (*APIKey, string, error) {
	if err := sc.authorize(operationFor(ActionCreateKey, nil)); err != nil {
		return nil, "", err
	}
	in.WorkspaceID = sc.p.WorkspaceID
	for _, s := range in.Scopes {
		if ValidScope(s) && !sc.p.Has(s) {
			return nil, "", FieldError("scopes", "%s is not a scope of the calling key; a key can only grant its own scopes.", s)
		}
	}
	if len(sc.p.Filter) > 0 {
		f := maps.Clone(in.Filter)
		if f == nil {
			f = map[string]string{}
		}
		for name, v := range sc.p.Filter {
			if given, ok := f[name]; ok && given != v {
				return nil, "", FieldError("filter", "must keep the calling key's filter %s.", FormatFilter(sc.p.Filter))
			}
			f[name] = v
		}
		in.Filter = f
	}
	if in.RateLimit != nil && !withinLimit(*in.RateLimit, sc.p.RateLimit) {
		return nil, "", FieldError("rate_limit", "must not exceed the calling key's limit %s, in rate or in burst (%d requests).",
			sc.p.RateLimit, sc.p.RateLimit.Count)
	}
	if in.RateLimit == nil {
		limit := sc.p.RateLimit
		in.RateLimit = &limit
	}
	return sc.s.CreateAPIKey(ctx, in)
}

// withinLimit reports whether limit r allows no more than max: neither a
// higher sustained rate nor a larger burst (a key may spend its whole Count
// at once).
func withinLimit(r, max RateLimit) bool {
	return r.Count <= max.Count && ratePerSecond(r) <= ratePerSecond(max)
}

func ratePerSecond(r RateLimit) float64 {
	if r.Period <= 0 {
		return 0
	}
	return float64(r.Count) / r.Period.Seconds()
}

// RevokeAPIKey revokes a key the caller manages (possibly itself) and turns
// off the webhook subscriptions it created.
func (sc *Scoped) RevokeAPIKey(ctx context.Context, id string) (*KeyInfo, error) {
	if err := sc.authorize(operationFor(ActionRevokeKey, nil)); err != nil {
		return nil, err
	}
	k, err := sc.findKey(ctx, id)
	if err != nil {
		return nil, err
	}
	if k, err = sc.s.revoke(ctx, k); err != nil {
		return nil, err
	}
	infos, err := sc.keyInfo(ctx, []*APIKey{k})
	if err != nil {
		return nil, err
	}
	return &infos[0], nil
}

// RotateAPIKey replaces a key the caller manages with a new one and lets the
// old one expire after overlap.
func (sc *Scoped) RotateAPIKey(ctx context.Context, id string, overlap time.Duration) (*APIKey, string, error) {
	if err := sc.authorize(operationFor(ActionRotateKey, nil)); err != nil {
		return nil, "", err
	}
	k, err := sc.findKey(ctx, id)
	if err != nil {
		return nil, "", err
	}
	// Rotation hands out a raw key with k's rights: no more than the caller's.
	if !withinLimit(k.RateLimit, sc.p.RateLimit) {
		return nil, "", Errorf(EFORBIDDEN, "This key's rate limit %s is above the calling key's %s; "+
			"a key can only rotate keys whose limit is within its own.", k.RateLimit, sc.p.RateLimit)
	}
	w, err := sc.s.backend.FindWorkspaceByID(ctx, sc.p.WorkspaceID)
	if err != nil {
		return nil, "", err
	}
	return sc.s.rotate(ctx, w, k, overlap)
}

// KeyPolicy returns the workspace's key policy.
func (sc *Scoped) KeyPolicy(ctx context.Context) (KeyPolicy, error) {
	if err := sc.authorize(operationFor(ActionGetPolicy, nil)); err != nil {
		return KeyPolicy{}, err
	}
	w, err := sc.s.backend.FindWorkspaceByID(ctx, sc.p.WorkspaceID)
	if err != nil {
		return KeyPolicy{}, err
	}
	return w.Policy, nil
}

// UpdateKeyPolicy replaces the workspace's key policy. Keys with a record
// filter administer only their slice of the workspace and cannot change it.
func (sc *Scoped) UpdateKeyPolicy(ctx context.Context, p KeyPolicy) (KeyPolicy, error) {
	if err := sc.authorize(operationFor(ActionUpdatePolicy, nil)); err != nil {
		return KeyPolicy{}, err
	}
	if len(sc.p.Filter) > 0 {
		return KeyPolicy{}, Errorf(EFORBIDDEN, "A key with a record filter cannot change the workspace's key policy.")
	}
	w, err := sc.s.SetKeyPolicy(ctx, sc.p.WorkspaceID, p)
	if err != nil {
		return KeyPolicy{}, err
	}
	return w.Policy, nil
}
