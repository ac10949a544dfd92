package store

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// NewID returns a new UUIDv7 string: unique and ordered by creation time.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// ValidID reports whether s has the shape of an id (a UUID in canonical form).
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// Workspace is a tenant: every record and key belongs to exactly one.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Policy    KeyPolicy `json:"key_policy"`
}

// KeyPolicy is a workspace's rules for its API keys. Zero values impose
// nothing.
type KeyPolicy struct {
	// MaxLifetimeDays caps how far in the future a new key may expire.
	MaxLifetimeDays int `json:"max_key_lifetime_days"`
	// RequireExpiry refuses new keys without an expiry.
	RequireExpiry bool `json:"require_expiry"`
	// DisableUnusedDays revokes keys unused for that many days (0: off).
	DisableUnusedDays int `json:"disable_unused_after_days"`
}

const maxPolicyDays = 3660

func (p KeyPolicy) validate() error {
	switch {
	case p.MaxLifetimeDays < 0 || p.MaxLifetimeDays > maxPolicyDays:
		return FieldError("max_key_lifetime_days", "must be between 0 (no maximum) and %d.", maxPolicyDays)
	case p.DisableUnusedDays < 0 || p.DisableUnusedDays > maxPolicyDays:
		return FieldError("disable_unused_after_days", "must be between 0 (off) and %d.", maxPolicyDays)
	}
	return nil
}

// checkExpiry applies the policy to a new key's expiry.
func (p KeyPolicy) checkExpiry(now time.Time, expiresAt *time.Time) error {
	if expiresAt == nil {
		if p.RequireExpiry || p.MaxLifetimeDays > 0 {
			return FieldError("expires_at", "is required by the workspace's key policy.")
		}
		return nil
	}
	if p.MaxLifetimeDays > 0 && expiresAt.After(now.AddDate(0, 0, p.MaxLifetimeDays)) {
		return FieldError("expires_at", "is beyond the workspace's maximum key lifetime of %d days.", p.MaxLifetimeDays)
	}
	return nil
}

// APIKey is a stored key. The raw key is never stored: only its SHA-256 hash
// and a short display prefix.
type APIKey struct {
	ID          string  `json:"id"`
	WorkspaceID string  `json:"workspace_id"`
	Name        string  `json:"name"`
	Prefix      string  `json:"prefix"`
	Hash        []byte  `json:"-"`
	Scopes      []Scope `json:"scopes"`
	// Filter restricts the key to records whose fields have these values
	// (a vendor key); nil for a key that sees the whole workspace.
	Filter     map[string]string `json:"filter"`
	RateLimit  RateLimit         `json:"rate_limit"`
	CreatedAt  time.Time         `json:"created_at"`
	ExpiresAt  *time.Time        `json:"expires_at"`
	RevokedAt  *time.Time        `json:"revoked_at"`
	LastUsedAt *time.Time        `json:"last_used_at"`
}

// Key statuses.
const (
	KeyActive   = "active"
	KeyExpiring = "expiring" // active, but expires within ExpiringWindow
	KeyExpired  = "expired"
	KeyRevoked  = "revoked"
)

// ExpiringWindow is how close to its expiry a key counts as expiring.
const ExpiringWindow = 7 * 24 * time.Hour

// Status is the key's status at time now.
func (k *APIKey) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return KeyRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return KeyExpired
	case k.ExpiresAt != nil && k.ExpiresAt.Sub(now) <= ExpiringWindow:
		return KeyExpiring
	default:
		return KeyActive
	}
}

// usable reports whether the key authenticates at time now.
func (k *APIKey) usable(now time.Time) bool {
	st := k.Status(now)
	return st == KeyActive || st == KeyExpiring
}

// KeyPrefix starts every raw key.
const KeyPrefix = "hs_live_"

const (
	keyRandomLen  = 40 // base62 characters, about 238 bits
	displayLen    = len(KeyPrefix) + 6
	base62Letters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// GenerateKey returns a new raw key: "hs_live_" and 40 random base62 characters.
func GenerateKey() string {
	b := make([]byte, keyRandomLen)
	out := make([]byte, 0, len(KeyPrefix)+keyRandomLen)
	out = append(out, KeyPrefix...)
	for len(out) < cap(out) {
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		for _, c := range b {
			// Rejection sampling keeps the distribution uniform: 248 = 4*62.
			if c < 248 && len(out) < cap(out) {
				out = append(out, base62Letters[c%62])
			}
		}
	}
	return string(out)
}

// HashKey returns the SHA-256 hash under which a raw key is stored.
func HashKey(raw string) []byte {
	h := sha256.Sum256([]byte(raw))
	return h[:]
}

// WellFormedKey reports whether raw looks like a key at all, so that garbage
// is refused without a database lookup.
func WellFormedKey(raw string) bool {
	if !strings.HasPrefix(raw, KeyPrefix) || len(raw) < len(KeyPrefix)+32 || len(raw) > 128 {
		return false
	}
	for _, c := range raw[len(KeyPrefix):] {
		if !strings.ContainsRune(base62Letters, c) {
			return false
		}
	}
	return true
}

// displayPrefix is the part of a raw key that may be stored and shown.
func displayPrefix(raw string) string { return raw[:displayLen] }

// RateLimit is a number of requests allowed per period, such as 600/m.
type RateLimit struct {
	Count  int
	Period time.Duration
}

// DefaultRateLimit applies to keys created without one.
var DefaultRateLimit = RateLimit{Count: 100, Period: 10 * time.Second}

// ParseRateLimit parses "N/s", "N/m", "N/h" or "N/<duration>" such as "100/10s".
func ParseRateLimit(s string) (RateLimit, error) {
	bad := FieldError("rate_limit", "%q is not a rate limit; use N/s, N/m, N/h or N/<duration> such as 100/10s.", s)
	num, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return RateLimit{}, bad
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 1_000_000 {
		return RateLimit{}, bad
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d < time.Second || d > 24*time.Hour {
			return RateLimit{}, bad
		}
	}
	return RateLimit{Count: n, Period: d}, nil
}

// String formats the limit the way ParseRateLimit reads it.
func (r RateLimit) String() string {
	switch r.Period {
	case time.Second:
		return fmt.Sprintf("%d/s", r.Count)
	case time.Minute:
		return fmt.Sprintf("%d/m", r.Count)
	case time.Hour:
		return fmt.Sprintf("%d/h", r.Count)
	}
	return fmt.Sprintf("%d/%s", r.Count, shortDuration(r.Period))
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

func (r RateLimit) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r *RateLimit) UnmarshalText(b []byte) error {
	v, err := ParseRateLimit(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
