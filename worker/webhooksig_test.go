package worker

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestSignKnownAnswer checks Sign against the test vector of the Standard
// Webhooks reference libraries.
func TestSignKnownAnswer(t *testing.T) {
	sig, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
		t.Fatalf("Sign = %s, want %s", sig, want)
	}
}

func TestVerify(t *testing.T) {
	secret := store.GenerateWebhookSecret()
	body := []byte(`{"id":"ev1","type":"deal.created"}`)
	now := time.Now()
	signed := func(id string, at time.Time, body []byte) http.Header {
		sig, err := Sign(secret, id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
		h.Set(HeaderWebhookSignature, sig)
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	good := signed("ev1", now, body)
	otherSig, _ := Sign(store.GenerateWebhookSecret(), "ev1", now, body)

	tests := []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		ok     bool
	}{
		{"signed with the secret", secret, good, body, true},
		{"another secret", store.GenerateWebhookSecret(), good, body, false},
		{"signed by another secret", secret, with(good, HeaderWebhookSignature, otherSig), body, false},
		{"tampered body", secret, good, []byte(`{"id":"ev1","type":"deal.deleted"}`), false},
		{"tampered timestamp", secret, with(good, HeaderWebhookTimestamp, strconv.FormatInt(now.Unix()-1, 10)), body, false},
		{"tampered id", secret, with(good, HeaderWebhookID, "ev2"), body, false},
		{"too old", secret, signed("ev1", now.Add(-6*time.Minute), body), body, false},
		{"too new", secret, signed("ev1", now.Add(6*time.Minute), body), body, false},
		{"a little skewed", secret, signed("ev1", now.Add(-4*time.Minute), body), body, true},
		{"one of several signatures", secret,
			with(good, HeaderWebhookSignature, "v2,"+strings.TrimPrefix(good.Get(HeaderWebhookSignature), "v1,")+" "+otherSig+" "+good.Get(HeaderWebhookSignature)), body, true},
		{"v1 signature under another version", secret,
			with(good, HeaderWebhookSignature, "v2,"+strings.TrimPrefix(good.Get(HeaderWebhookSignature), "v1,")), body, false},
		{"no signature", secret, with(good, HeaderWebhookSignature, ""), body, false},
		{"no id", secret, with(good, HeaderWebhookID, ""), body, false},
		{"no timestamp", secret, with(good, HeaderWebhookTimestamp, ""), body, false},
		{"timestamp not a number", secret, with(good, HeaderWebhookTimestamp, "soon"), body, false},
		{"signature not base64", secret, with(good, HeaderWebhookSignature, "v1,%%%"), body, false},
		{"secret not base64", "whsec_%%%", good, body, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, 0)
			if tc.ok && err != nil {
				t.Fatalf("Verify: %v, want ok", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("Verify: %v, want ErrInvalidSignature", err)
			}
		})
	}

	// A tolerance of one minute refuses what the default accepts.
	skewed := signed("ev1", now.Add(-2*time.Minute), body)
	if err := Verify(secret, skewed, body, 0); err != nil {
		t.Fatalf("default tolerance: %v", err)
	}
	if err := Verify(secret, skewed, body, time.Minute); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("one minute tolerance: %v, want ErrInvalidSignature", err)
	}
	if _, err := Sign("whsec_%%%", "ev1", now, body); err == nil {
		t.Fatal("Sign with a malformed secret succeeded")
	}
}

func TestParseRetrySchedule(t *testing.T) {
	got, err := ParseRetrySchedule(" 1s, 2s,5m ")
	if err != nil || !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second, 5 * time.Minute}) {
		t.Fatalf("ParseRetrySchedule = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1s,,2s", "0s", "-1s", "soon", strings.Repeat("1s,", MaxWebhookRetries) + "1s"} {
		if _, err := ParseRetrySchedule(bad); err == nil {
			t.Errorf("ParseRetrySchedule(%q) succeeded", bad)
		}
	}
	var total time.Duration
	for _, d := range DefaultWebhookRetrySchedule() {
		total += d
	}
	if total < 70*time.Hour || total > 74*time.Hour {
		t.Fatalf("the default schedule spans %v, want about three days", total)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"99999999", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"tomorrow", 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNextAttempt(t *testing.T) {
	h := &WebhookHandlers{cfg: Config{WebhookRetrySchedule: []time.Duration{10 * time.Second, time.Hour}}.withDefaults()}
	now := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 1000 {
		next, ok := h.nextAttempt(1, 0, now)
		if !ok {
			t.Fatal("no second attempt")
		}
		lo, hi = min(lo, next.Sub(now)), max(hi, next.Sub(now))
	}
	if lo < 8*time.Second || hi > 12*time.Second || hi-lo < 2*time.Second {
		t.Fatalf("waits after the first attempt span [%v, %v], want 10 s ±20%%", lo, hi)
	}
	// Retry-After beyond the schedule wins, rounded up to a whole second.
	next, ok := h.nextAttempt(1, 30*time.Second, now)
	if !ok || !next.Equal(now.Add(30*time.Second).Truncate(time.Second).Add(time.Second)) {
		t.Fatalf("with Retry-After 30 s: %v %v", next, ok)
	}
	// A shorter Retry-After leaves the schedule's wait.
	if next, _ := h.nextAttempt(2, time.Second, now); next.Sub(now) < 48*time.Minute {
		t.Fatalf("Retry-After shortened the schedule: %v", next.Sub(now))
	}
	if _, ok := h.nextAttempt(3, 0, now); ok {
		t.Fatal("an attempt after the schedule is used up")
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("héllo", 2); got != "h…" {
		t.Fatalf("truncate cut inside a rune: %q", got)
	}
	if got := truncate("short", 10); got != "short" {
		t.Fatalf("truncate changed a short string: %q", got)
	}
	if got := formatDuration(72 * time.Hour); got != "72h" {
		t.Fatalf("formatDuration(72h) = %q", got)
	}
	if got := formatDuration(90 * time.Second); got != "1m30s" {
		t.Fatalf("formatDuration(90s) = %q", got)
	}
}
