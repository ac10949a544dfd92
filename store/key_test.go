package store_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	used := map[rune]bool{}
	for range 500 {
		k := store.GenerateKey()
		if !strings.HasPrefix(k, store.KeyPrefix) || len(k) != len(store.KeyPrefix)+40 {
			t.Fatalf("key %q: want %q and 40 characters", k, store.KeyPrefix)
		}
		for _, c := range k[len(store.KeyPrefix):] {
			if !strings.ContainsRune(base62, c) {
				t.Fatalf("key %q has non-base62 character %q", k, c)
			}
			used[c] = true
		}
		if !store.WellFormedKey(k) {
			t.Fatalf("generated key %q is not well formed", k)
		}
		if seen[k] {
			t.Fatalf("key %q generated twice", k)
		}
		seen[k] = true
	}
	// 20,000 random characters leave none of the 62 out unless the
	// generator is broken.
	if len(used) != 62 {
		t.Errorf("only %d of 62 base62 characters appeared in 500 keys", len(used))
	}
}

func TestWellFormedKey(t *testing.T) {
	body := strings.Repeat("aZ9", 11) // 33 characters
	cases := map[string]bool{
		store.KeyPrefix + body:                     true,
		store.KeyPrefix + body[:32]:                true,
		store.KeyPrefix + strings.Repeat("x", 120): true,
		store.KeyPrefix + body[:31]:                false, // too short
		store.KeyPrefix + strings.Repeat("x", 121): false, // too long
		"":                                    false,
		store.KeyPrefix:                       false,
		"hs_test_" + body:                     false,
		"HS_LIVE_" + body:                     false,
		" " + store.KeyPrefix + body:          false,
		store.KeyPrefix + body + " ":          false,
		store.KeyPrefix + body + "-":          false,
		store.KeyPrefix + body + "_":          false,
		store.KeyPrefix + body + "é":          false,
		store.KeyPrefix + body + "\x00":       false,
		store.KeyPrefix + `{"$gt":""}` + body: false,
		"Bearer " + store.KeyPrefix + body:    false,
	}
	for k, want := range cases {
		if got := store.WellFormedKey(k); got != want {
			t.Errorf("WellFormedKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestHashKey(t *testing.T) {
	raw := store.GenerateKey()
	h := store.HashKey(raw)
	want := sha256.Sum256([]byte(raw))
	if string(h) != string(want[:]) {
		t.Errorf("HashKey is not the SHA-256 of the raw key")
	}
	if string(store.HashKey(raw)) != string(h) {
		t.Error("HashKey is not deterministic")
	}
	if string(store.HashKey(raw+"x")) == string(h) {
		t.Error("different keys hash alike")
	}
	if strings.Contains(string(h), raw[len(store.KeyPrefix):]) {
		t.Error("the hash contains the key")
	}
}

func TestParseRateLimit(t *testing.T) {
	valid := []struct {
		in   string
		want store.RateLimit
		str  string
	}{
		{"100/s", store.RateLimit{Count: 100, Period: time.Second}, "100/s"},
		{"600/m", store.RateLimit{Count: 600, Period: time.Minute}, "600/m"},
		{"5000/h", store.RateLimit{Count: 5000, Period: time.Hour}, "5000/h"},
		{"100/10s", store.RateLimit{Count: 100, Period: 10 * time.Second}, "100/10s"},
		{"5/90m", store.RateLimit{Count: 5, Period: 90 * time.Minute}, "5/90m"},
		{"1/2h", store.RateLimit{Count: 1, Period: 2 * time.Hour}, "1/2h"},
		{"1/24h", store.RateLimit{Count: 1, Period: 24 * time.Hour}, "1/24h"},
		{"3/1.5s", store.RateLimit{Count: 3, Period: 1500 * time.Millisecond}, "3/1.5s"},
		{"7/60s", store.RateLimit{Count: 7, Period: time.Minute}, "7/m"},
		{"  42/m  ", store.RateLimit{Count: 42, Period: time.Minute}, "42/m"},
		{"1000000/s", store.RateLimit{Count: 1_000_000, Period: time.Second}, "1000000/s"},
	}
	for _, c := range valid {
		got, err := store.ParseRateLimit(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRateLimit(%q) = %v, %v; want %v", c.in, got, err, c.want)
			continue
		}
		if got.String() != c.str {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.str)
		}
		again, err := store.ParseRateLimit(got.String())
		if err != nil || again != got {
			t.Errorf("ParseRateLimit(%q) = %v, %v; want %v back", got.String(), again, err, got)
		}
	}
	if got := store.DefaultRateLimit.String(); got != "100/10s" {
		t.Errorf("default rate limit = %q", got)
	}

	invalid := []string{"", "100", "/s", "0/s", "-1/s", "1000001/s", "abc/s", "10/x", "10/500ms", "10/25h", "10/1d",
		"1.5/s", "10/s/s", "10 / s", `{"$gt":""}`}
	for _, in := range invalid {
		_, err := store.ParseRateLimit(in)
		var e *store.Error
		if !errors.As(err, &e) || e.Code != store.EBADREQUEST || e.Field != "rate_limit" {
			t.Errorf("ParseRateLimit(%q) = %v, want bad_request on rate_limit", in, err)
		}
	}
}

func TestRateLimitJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		L store.RateLimit `json:"l"`
	}{store.RateLimit{Count: 600, Period: time.Minute}})
	if err != nil || string(b) != `{"l":"600/m"}` {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
	var v struct {
		L store.RateLimit `json:"l"`
	}
	if err := json.Unmarshal([]byte(`{"l":"100/10s"}`), &v); err != nil || v.L != (store.RateLimit{Count: 100, Period: 10 * time.Second}) {
		t.Errorf("json.Unmarshal = %v, %v", v.L, err)
	}
	if err := json.Unmarshal([]byte(`{"l":"lots"}`), &v); err == nil {
		t.Error("json.Unmarshal of a malformed rate limit succeeded")
	}
}

func TestAPIKeyStatus(t *testing.T) {
	now := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	window, later := now.Add(store.ExpiringWindow), now.Add(store.ExpiringWindow+time.Second)
	cases := []struct {
		name             string
		expires, revoked *time.Time
		want             string
	}{
		{"no expiry", nil, nil, "active"},
		{"expires within the hour", &future, nil, "expiring"},
		{"expires at the end of the window", &window, nil, "expiring"},
		{"expires after the window", &later, nil, "active"},
		{"expired", &past, nil, "expired"},
		{"expires right now", &now, nil, "expired"},
		{"revoked", nil, &past, "revoked"},
		{"revoked and expired", &past, &past, "revoked"},
	}
	for _, c := range cases {
		k := store.APIKey{ExpiresAt: c.expires, RevokedAt: c.revoked}
		if got := k.Status(now); got != c.want {
			t.Errorf("%s: Status = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestValidID(t *testing.T) {
	id := store.NewID()
	if !store.ValidID(id) || len(id) != 36 {
		t.Errorf("NewID() = %q is not a valid id", id)
	}
	if id[14] != '7' {
		t.Errorf("NewID() = %q is not a version 7 UUID", id)
	}
	if a, b := store.NewID(), store.NewID(); a >= b {
		t.Errorf("ids are not ordered by creation: %q then %q", a, b)
	}
	for _, bad := range []string{"", "x", strings.ReplaceAll(id, "-", ""), "{" + id + "}", "urn:uuid:" + id, id + " ", `{"$gt":""}`,
		strings.Repeat("z", 36)} {
		if store.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}
