package worker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// Headers of a webhook delivery (the Standard Webhooks scheme). The id is
// the event's: the same for every attempt, replay and subscription of one
// event, so that receivers can drop duplicates by it.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultSignatureTolerance is how far a delivery's timestamp may be from
// the receiver's clock, either way, for Verify to accept it.
const DefaultSignatureTolerance = 5 * time.Minute

// ErrInvalidSignature is what Verify returns, wrapped with the reason, for
// a delivery it does not accept.
var ErrInvalidSignature = errors.New("webhook: invalid signature")

// Sign returns the webhook-signature header of a delivery with the given
// event id, timestamp and body: "v1," and the standard base64 of the
// HMAC-SHA256, keyed with the secret (store.WebhookSecretKey), of
// "id.timestamp.body", timestamp in unix seconds.
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := store.WebhookSecretKey(secret)
	if err != nil || len(key) == 0 {
		return "", errors.New("webhook: the signing secret is not \"whsec_\" followed by base64")
	}
	return "v1," + base64.StdEncoding.EncodeToString(signature(key, id, timestamp.Unix(), body)), nil
}

func signature(key []byte, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver does: header holds its
// webhook-id, webhook-timestamp and webhook-signature, body is the raw
// request body. It accepts the delivery when the timestamp is within
// tolerance of now (DefaultSignatureTolerance when tolerance is not
// positive) and one of the space-separated v1 signatures is the one secret
// makes; signatures are compared in constant time. Otherwise it returns an
// error wrapping ErrInvalidSignature.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(secret, header, body, tolerance, time.Now())
}

func verifyAt(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	id, ts, sigs := header.Get(HeaderWebhookID), header.Get(HeaderWebhookTimestamp), header.Get(HeaderWebhookSignature)
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("%w: the %s, %s and %s headers are required", ErrInvalidSignature,
			HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not unix seconds", ErrInvalidSignature, HeaderWebhookTimestamp, ts)
	}
	at := time.Unix(unix, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: the timestamp %s is more than %v away from now", ErrInvalidSignature,
			at.UTC().Format(time.RFC3339), tolerance)
	}
	key, err := store.WebhookSecretKey(secret)
	if err != nil || len(key) == 0 {
		return fmt.Errorf("%w: the signing secret is not \"whsec_\" followed by base64", ErrInvalidSignature)
	}
	want := signature(key, id, unix, body)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrInvalidSignature)
}
