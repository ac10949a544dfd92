package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/hustack/hustack/store"
)

const idemColumns = `workspace_id, key, fingerprint, state, status, body, created_at, expires_at`

func (db *DB) CreateIdempotencyKey(ctx context.Context, k *store.IdempotencyKey) error {
	_, err := db.stmt.createIdem.ExecContext(ctx, k.WorkspaceID, k.Key, k.Fingerprint, k.State,
		int64(k.Response.Status), k.Response.Body, ms(k.CreatedAt), ms(k.ExpiresAt))
	return translate(err, "create idempotency key", "Idempotency key")
}

func (db *DB) FindIdempotencyKey(ctx context.Context, workspaceID, key string) (*store.IdempotencyKey, error) {
	var k store.IdempotencyKey
	var status, created, expires int64
	err := db.stmt.findIdem.QueryRowContext(ctx, workspaceID, key).Scan(&k.WorkspaceID, &k.Key, &k.Fingerprint, &k.State,
		&status, &k.Response.Body, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("Idempotency key")
	}
	if err != nil {
		return nil, translate(err, "find idempotency key", "Idempotency key")
	}
	k.Response.Status, k.CreatedAt, k.ExpiresAt = int(status), fromMS(created), fromMS(expires)
	return &k, nil
}

func (db *DB) CompleteIdempotencyKey(ctx context.Context, workspaceID, key string, resp store.IdempotentResponse) error {
	return execOne(ctx, db.stmt.completeIdem, "complete idempotency key", "Idempotency key",
		store.IdempotencyCompleted, int64(resp.Status), resp.Body, workspaceID, key)
}

// DeleteIdempotencyKey deletes a key if it is the one created at createdAt;
// an unknown key is no error.
func (db *DB) DeleteIdempotencyKey(ctx context.Context, workspaceID, key string, createdAt time.Time) error {
	_, err := db.stmt.deleteIdem.ExecContext(ctx, workspaceID, key, ms(createdAt))
	return translate(err, "delete idempotency key", "Idempotency key")
}

// DeleteIdempotencyKeysBefore deletes, in all workspaces and in chunks, the
// keys that expired before the given time.
func (db *DB) DeleteIdempotencyKeysBefore(ctx context.Context, before time.Time) (int64, error) {
	n, err := deleteChunked(ctx, db.stmt.expireIdem, ms(before))
	return n, translate(err, "delete expired idempotency keys", "Idempotency key")
}
