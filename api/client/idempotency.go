package client

import (
	"context"
	"sync/atomic"

	"github.com/hustack/hustack/store"
)

// Headers of idempotent requests.
const (
	// IdempotencyKeyHeader carries the key of a write request.
	IdempotencyKeyHeader = "Idempotency-Key"
	// IdempotentReplayedHeader is "true" on a response that repeats the stored
	// response to an earlier request with the same key.
	IdempotentReplayedHeader = "Idempotent-Replayed"
)

type idempotencyKey struct{}

// idempotency is the key a context's write requests carry, and whether
// the server answered one of them with a replay.
type idempotency struct {
	key      string
	replayed atomic.Bool
}

// WithIdempotencyKey returns a copy of ctx whose write requests (every
// method but GET) carry the header Idempotency-Key: key. The server runs a
// request with a given key once per workspace and answers a repeat of it
// with the first response; the same key with a different request is
// refused (idempotency_key_reused), and so is one sent while the first is
// still running (idempotency_key_in_use). Use a new key, such as a random
// UUID, for every distinct write, and the same key for its retries.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, &idempotency{key: key})
}

// Idempotent runs fn with a context whose write requests carry key as their
// Idempotency-Key; fn is expected to make one write. The server does what
// store.Scoped.Idempotent does in process: it stores the first response and
// replays it. replayed reports whether the server said so
// (Idempotent-Replayed: true). The fingerprint is not sent: the server
// fingerprints the request itself (method, path and body), so a different
// request with the same key is refused there.
func (c *Client) Idempotent(ctx context.Context, key, fingerprint string, fn func(context.Context) (store.IdempotentResponse, error)) (resp store.IdempotentResponse, replayed bool, err error) {
	if !store.ValidIdempotencyKey(key) {
		// The header would be refused, or could not even be sent.
		return resp, false, store.FieldError("Idempotency-Key", store.IdempotencyKeyRule)
	}
	idem := &idempotency{key: key}
	resp, err = fn(context.WithValue(ctx, idempotencyKey{}, idem))
	return resp, idem.replayed.Load(), err
}
