package store

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"time"
)

// Service holds the backend and offers the operator's operations (workspaces
// and keys, used by the command line), authentication, and the scoped
// operations through Scoped.
type Service struct {
	backend Backend
	now     func() time.Time
	keys    *keyCache
	idemTTL time.Duration
	// Webhooks: where they may go, how replays reach the workers, and the
	// signal of new events in the outbox.
	targets  TargetPolicy
	dispatch Dispatcher
	changes  chan struct{}
	// claimTimeout overrides EventClaimTimeout when set.
	claimTimeout time.Duration
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock, for tests.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithKeyCacheTTL sets how long an authenticated key is remembered; 0 turns
// the cache off. A revocation is honoured after at most this long.
func WithKeyCacheTTL(d time.Duration) Option {
	return func(s *Service) { s.keys = newKeyCache(d) }
}

// DefaultKeyCacheTTL keeps revocations effective within a second.
const DefaultKeyCacheTTL = time.Second

// NewService returns a service over backend b.
func NewService(b Backend, opts ...Option) *Service {
	s := &Service{now: time.Now, keys: newKeyCache(DefaultKeyCacheTTL), idemTTL: DefaultIdempotencyTTL,
		changes: make(chan struct{}, 1)}
	s.backend = notifying{Backend: b, ch: s.changes}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Now returns the current time, truncated to milliseconds, in UTC: the
// precision every backend keeps.
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// Close closes the backend.
func (s *Service) Close() error { return s.backend.Close() }

// CreateWorkspace creates a workspace.
func (s *Service) CreateWorkspace(ctx context.Context, name string) (*Workspace, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, FieldError("name", "is required.")
	}
	if len(name) > shortText {
		return nil, FieldError("name", "must be at most %d characters.", shortText)
	}
	w := &Workspace{ID: NewID(), Name: name, CreatedAt: s.Now()}
	if err := s.backend.CreateWorkspace(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// FindWorkspaces lists all workspaces.
func (s *Service) FindWorkspaces(ctx context.Context) ([]*Workspace, error) {
	return s.backend.FindWorkspaces(ctx)
}

// FindWorkspaceByID returns one workspace.
func (s *Service) FindWorkspaceByID(ctx context.Context, id string) (*Workspace, error) {
	if !ValidID(id) {
		return nil, notFound("Workspace")
	}
	return s.backend.FindWorkspaceByID(ctx, id)
}

// KeyInput describes a key to create.
type KeyInput struct {
	WorkspaceID string
	Name        string
	Scopes      []Scope
	// Filter makes a vendor key: it sees only records with these field values.
	Filter    map[string]string
	ExpiresAt *time.Time
	RateLimit *RateLimit // nil: DefaultRateLimit
}

// CreateAPIKey creates a key and returns it with the raw key, which is never
// stored and cannot be shown again. The workspace's key policy applies.
func (s *Service) CreateAPIKey(ctx context.Context, in KeyInput) (*APIKey, string, error) {
	w, err := s.FindWorkspaceByID(ctx, in.WorkspaceID)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, "", FieldError("workspace", "no workspace with id %q.", in.WorkspaceID)
		}
		return nil, "", err
	}
	if err := w.Policy.checkExpiry(s.Now(), in.ExpiresAt); err != nil {
		return nil, "", err
	}
	return s.insertKey(ctx, w, in)
}

// insertKey validates and stores a new key of workspace w.
func (s *Service) insertKey(ctx context.Context, w *Workspace, in KeyInput) (*APIKey, string, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return nil, "", FieldError("name", "is required.")
	}
	if len(name) > shortText {
		return nil, "", FieldError("name", "must be at most %d characters.", shortText)
	}
	names := make([]string, len(in.Scopes))
	for i, sc := range in.Scopes {
		names[i] = string(sc)
	}
	scopes, err := NormalizeScopes(names)
	if err != nil {
		return nil, "", err
	}
	filter, err := normalizeKeyFilter(in.Filter, scopes)
	if err != nil {
		return nil, "", err
	}
	now := s.Now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, "", FieldError("expires_at", "must be in the future.")
	}
	limit := DefaultRateLimit
	if in.RateLimit != nil {
		limit = *in.RateLimit
	}
	raw := GenerateKey()
	k := &APIKey{
		ID:          NewID(),
		WorkspaceID: w.ID,
		Name:        name,
		Prefix:      displayPrefix(raw),
		Hash:        HashKey(raw),
		Scopes:      scopes,
		Filter:      filter,
		RateLimit:   limit,
		CreatedAt:   now,
		ExpiresAt:   truncTime(in.ExpiresAt),
	}
	if err := s.backend.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, raw, nil
}

func truncTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC().Truncate(time.Millisecond)
	return &v
}

// FindAPIKeys lists a workspace's keys.
func (s *Service) FindAPIKeys(ctx context.Context, workspaceID string) ([]*APIKey, error) {
	if _, err := s.FindWorkspaceByID(ctx, workspaceID); err != nil {
		return nil, err
	}
	return s.backend.FindAPIKeys(ctx, workspaceID)
}

// RevokeAPIKey revokes a key by id, in whatever workspace it is, and turns
// off the webhook subscriptions it created.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	if !ValidID(id) {
		return nil, notFound("API key")
	}
	k, err := s.backend.FindAPIKeyByIDUnscoped(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.revoke(ctx, k)
}

// revoke revokes k (unless it already is), forgets it in the key cache and
// turns off the webhook subscriptions it created; it returns the key as
// stored after.
func (s *Service) revoke(ctx context.Context, k *APIKey) (*APIKey, error) {
	if err := s.backend.RevokeAPIKey(ctx, k.WorkspaceID, k.ID, s.Now()); err != nil {
		return nil, err
	}
	s.keys.forget(k.Hash)
	k, err := s.backend.FindAPIKeyByID(ctx, k.WorkspaceID, k.ID)
	if err != nil {
		return nil, err
	}
	if err := s.disableWebhooksOf(ctx, k); err != nil {
		return nil, err
	}
	return k, nil
}

// Authenticate turns a raw key into a principal. Missing, malformed and
// unknown keys are unauthorized; revoked and expired keys say so.
func (s *Service) Authenticate(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrMissingKey
	}
	if !WellFormedKey(raw) {
		return Principal{}, ErrInvalidKey
	}
	hash := HashKey(raw)
	k, ok := s.keys.get(hash, s.now())
	if !ok {
		var err error
		k, err = s.backend.FindAPIKeyByHashUnscoped(ctx, hash)
		if ErrorCode(err) == ENOTFOUND {
			return Principal{}, ErrInvalidKey
		}
		if err != nil {
			return Principal{}, err
		}
		s.keys.put(hash, k, s.now())
	}
	if subtle.ConstantTimeCompare(k.Hash, hash) != 1 {
		return Principal{}, ErrInvalidKey
	}
	switch k.Status(s.now()) {
	case KeyRevoked:
		return Principal{}, ErrRevokedKey
	case KeyExpired:
		return Principal{}, ErrExpiredKey
	}
	return principalFromKey(k), nil
}

// RecordUsage stores a batch of usage events and advances the last-used time
// of their keys. It is idempotent: a batch stored twice adds no rows.
func (s *Service) RecordUsage(ctx context.Context, events []UsageEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := s.backend.InsertUsageEvents(ctx, events); err != nil {
		return err
	}
	last := map[string]time.Time{}
	for _, e := range events {
		if e.Time.After(last[e.KeyID]) {
			last[e.KeyID] = e.Time
		}
	}
	return s.backend.TouchAPIKeys(ctx, last)
}

// DeleteUsageBefore applies usage log retention.
func (s *Service) DeleteUsageBefore(ctx context.Context, before time.Time) (int64, error) {
	return s.backend.DeleteUsageBefore(ctx, before)
}

// keyCache remembers authenticated keys for a short time so that most
// requests need no database lookup. Entries expire after ttl, which bounds
// how long a revocation made elsewhere (another process) takes to apply.
type keyCache struct {
	ttl time.Duration
	mu  sync.RWMutex
	m   map[string]cachedKey
}

type cachedKey struct {
	key *APIKey
	at  time.Time
}

const keyCacheMax = 10_000

func newKeyCache(ttl time.Duration) *keyCache {
	return &keyCache{ttl: ttl, m: map[string]cachedKey{}}
}

func (c *keyCache) get(hash []byte, now time.Time) (*APIKey, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.m[string(hash)]
	c.mu.RUnlock()
	if !ok || now.Sub(e.at) >= c.ttl || now.Before(e.at) {
		return nil, false
	}
	return e.key, true
}

func (c *keyCache) put(hash []byte, k *APIKey, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= keyCacheMax {
		clear(c.m)
	}
	c.m[string(hash)] = cachedKey{key: k, at: now}
}

func (c *keyCache) forget(hash []byte) {
	c.mu.Lock()
	delete(c.m, string(hash))
	c.mu.Unlock()
}
