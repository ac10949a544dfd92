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
}

// APIKey is a stored key. The raw key is never stored: only its SHA-256 hash
// and a short display prefix.
type APIKey struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspace_id"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Hash        []byte     `json:"-"`
	Scopes      []Scope    `json:"scopes"`
	RateLimit   RateLimit  `json:"rate_limit"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

// Status is "revoked", "expired" or "active" at time now.
func (k *APIKey) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	default:
		return "active"
	}
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
