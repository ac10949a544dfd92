package store

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Principal is an authenticated API key: who is calling, in which workspace,
// with which scopes. Transports build it with Service.Authenticate and put it
// on the request context; operations read it through Scoped.
type Principal struct {
	WorkspaceID string
	KeyID       string
	KeyName     string
	KeyPrefix   string
	Scopes      []Scope
	// Filter restricts the principal to matching records (a vendor key).
	Filter    map[string]string
	RateLimit RateLimit
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// Has reports whether the principal carries scope s.
func (p Principal) Has(s Scope) bool { return slices.Contains(p.Scopes, s) }

// Authenticated reports whether p came from a valid key.
func (p Principal) Authenticated() bool { return p.WorkspaceID != "" && p.KeyID != "" }

func principalFromKey(k *APIKey) Principal {
	return Principal{
		WorkspaceID: k.WorkspaceID,
		KeyID:       k.ID,
		KeyName:     k.Name,
		KeyPrefix:   k.Prefix,
		Scopes:      slices.Clone(k.Scopes),
		Filter:      maps.Clone(k.Filter),
		RateLimit:   k.RateLimit,
		CreatedAt:   k.CreatedAt,
		ExpiresAt:   k.ExpiresAt,
	}
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal on ctx, if any.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
