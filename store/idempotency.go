package store

import (
	"context"
	"strings"
	"time"
)

// DefaultIdempotencyTTL is how long an idempotency key is remembered.
const DefaultIdempotencyTTL = 24 * time.Hour

// idempotencyLease is how long a key stays "in progress": a request that has
// not finished by then is taken to have died, and its key may be used again.
const idempotencyLease = time.Minute

// WithIdempotencyTTL sets how long idempotency keys are remembered.
func WithIdempotencyTTL(d time.Duration) Option { return func(s *Service) { s.idemTTL = d } }

// ValidIdempotencyKey reports whether key is 1 to 255 printable ASCII
// characters. Idempotency keys are stored as given, so one holding an API key
// (a client mixing up its headers) is refused: raw keys never reach the
// database.
func ValidIdempotencyKey(key string) bool {
	if len(key) < 1 || len(key) > 255 || strings.Contains(key, KeyPrefix) {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// IdempotencyKeyRule says what ValidIdempotencyKey accepts.
const IdempotencyKeyRule = "must be 1 to 255 printable ASCII characters, and not an API key."

// Idempotent runs fn at most once for a workspace's idempotency key. The
// first response is stored and returned again (replayed is true) for the same
// key and fingerprint; a different fingerprint is refused with
// idempotency_key_reused, and a key whose first request is still running with
// idempotency_key_in_use. Responses with status 500 or more, and errors from
// fn, are not remembered, so that a retry can succeed.
//
// fn does its own authorization: Idempotent only needs a valid key.
func (sc *Scoped) Idempotent(ctx context.Context, key, fingerprint string, fn func(context.Context) (IdempotentResponse, error)) (resp IdempotentResponse, replayed bool, err error) {
	if !sc.p.Authenticated() {
		return resp, false, ErrMissingKey
	}
	if !ValidIdempotencyKey(key) {
		return resp, false, FieldError("Idempotency-Key", IdempotencyKeyRule)
	}
	b := sc.s.backend
	ws := sc.p.WorkspaceID
	var held *IdempotencyKey
	for attempt := 0; held == nil; attempt++ {
		now := sc.s.Now()
		k := &IdempotencyKey{WorkspaceID: ws, Key: key, Fingerprint: fingerprint, State: IdempotencyInProgress,
			CreatedAt: now, ExpiresAt: now.Add(sc.s.idemTTL)}
		err := b.CreateIdempotencyKey(ctx, k)
		if err == nil {
			held = k
			break
		}
		if ErrorCode(err) != ECONFLICT || attempt > 2 {
			return resp, false, err
		}
		prev, err := b.FindIdempotencyKey(ctx, ws, key)
		if ErrorCode(err) == ENOTFOUND {
			continue // forgotten meanwhile: try again
		}
		if err != nil {
			return resp, false, err
		}
		abandoned := prev.State == IdempotencyInProgress && now.Sub(prev.CreatedAt) > idempotencyLease
		if !now.Before(prev.ExpiresAt) || abandoned {
			if err := b.DeleteIdempotencyKey(ctx, ws, key, prev.CreatedAt); err != nil {
				return resp, false, err
			}
			continue
		}
		if prev.Fingerprint != fingerprint {
			return resp, false, Errorf(EIDEMPOTENCYREUSED,
				"This Idempotency-Key was already used with a different request; use a new key for a new request.")
		}
		if prev.State != IdempotencyCompleted {
			return resp, false, Errorf(EIDEMPOTENCYINUSE,
				"A request with this Idempotency-Key is still being processed; retry after it has finished.")
		}
		return prev.Response, true, nil
	}
	resp, err = fn(ctx)
	if err != nil || resp.Status >= 500 {
		// Forget the key so a retry can succeed; the request's own error wins.
		// A detached context: the caller's may be cancelled already.
		_ = b.DeleteIdempotencyKey(context.WithoutCancel(ctx), ws, key, held.CreatedAt)
		return resp, false, err
	}
	if err := b.CompleteIdempotencyKey(context.WithoutCancel(ctx), ws, key, resp); err != nil {
		return resp, false, err
	}
	return resp, false, nil
}

// PurgeExpired applies retention to tombstones (deleted before now minus
// tombstoneTTL) and idempotency keys (expired). It returns how many of each
// were removed.
func (s *Service) PurgeExpired(ctx context.Context, tombstoneTTL time.Duration) (tombstones, keys int64, err error) {
	now := s.Now()
	if tombstones, err = s.backend.PurgeTombstones(ctx, now.Add(-tombstoneTTL)); err != nil {
		return 0, 0, err
	}
	keys, err = s.backend.DeleteIdempotencyKeysBefore(ctx, now)
	return tombstones, keys, err
}
