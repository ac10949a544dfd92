package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

const keyColumns = `id, workspace_id, name, prefix, hash, scopes, rate_limit, created_at, expires_at, revoked_at, last_used_at, record_filter`

// CreateAPIKey stores the key and its api_key.created event in one
// transaction.
func (db *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	filter, err := encodeFilter(k.Filter)
	if err != nil {
		return err
	}
	ev, err := store.NewKeyEvent(k, store.KindCreated, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create API key: %w", err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, db.stmt.createKey).ExecContext(ctx,
			k.ID, k.WorkspaceID, k.Name, k.Prefix, k.Hash, joinScopes(k.Scopes), k.RateLimit.String(),
			ms(k.CreatedAt), nullMS(k.ExpiresAt), nullMS(k.RevokedAt), nullMS(k.LastUsedAt), filter)
		if err != nil {
			return err
		}
		return db.insertEvent(ctx, tx, ev)
	})
	return translate(err, "create API key", "API key")
}

// returnedKey reads the key an UPDATE ... RETURNING changed, or nil when it
// changed none, and closes the rows.
func returnedKey(rows *sql.Rows, err error) (*store.APIKey, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	k, err := scanKey(rows)
	if err != nil {
		return nil, err
	}
	return k, rows.Close()
}

func (db *DB) FindAPIKeyByID(ctx context.Context, workspaceID, id string) (*store.APIKey, error) {
	return db.findKey(ctx, db.stmt.findWsKey, workspaceID, id)
}

func (db *DB) SetAPIKeyExpiry(ctx context.Context, workspaceID, id string, expiresAt time.Time) error {
	return execOne(ctx, db.stmt.setKeyExpiry, "set API key expiry", "API key", ms(expiresAt), workspaceID, id)
}

func (db *DB) FindAPIKeyByHashUnscoped(ctx context.Context, hash []byte) (*store.APIKey, error) {
	return db.findKey(ctx, db.stmt.findKeyByHash, hash)
}

func (db *DB) FindAPIKeyByIDUnscoped(ctx context.Context, id string) (*store.APIKey, error) {
	return db.findKey(ctx, db.stmt.findKeyByID, id)
}

func (db *DB) findKey(ctx context.Context, stmt *sql.Stmt, args ...any) (*store.APIKey, error) {
	k, err := scanKey(stmt.QueryRowContext(ctx, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("API key")
	}
	if err != nil {
		return nil, translate(err, "find API key", "API key")
	}
	return k, nil
}

func (db *DB) FindAPIKeys(ctx context.Context, workspaceID string) ([]*store.APIKey, error) {
	rows, err := db.stmt.findKeys.QueryContext(ctx, workspaceID)
	if err != nil {
		return nil, translate(err, "find API keys", "API key")
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, translate(err, "find API keys", "API key")
		}
		out = append(out, k)
	}
	return out, translate(rows.Err(), "find API keys", "API key")
}

// RevokeAPIKey revokes the key and stores its api_key.revoked event, made
// from the key as the UPDATE returns it, in one transaction.
func (db *DB) RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		k, err := returnedKey(tx.StmtContext(ctx, db.stmt.revokeKey).QueryContext(ctx, ms(at), workspaceID, id))
		if err != nil {
			return err
		}
		if k != nil {
			ev, err := store.NewKeyEvent(k, store.KindRevoked, at)
			if err != nil {
				return err
			}
			return db.insertEvent(ctx, tx, ev)
		}
		// Nothing changed: either the key is already revoked or it is not
		// in this workspace.
		var one int
		err = tx.StmtContext(ctx, db.stmt.keyExists).QueryRowContext(ctx, workspaceID, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("API key")
		}
		return err
	})
	if store.ErrorCode(err) == store.ENOTFOUND {
		return err
	}
	return translate(err, "revoke API key", "API key")
}

func (db *DB) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, db.stmt.touchKey)
		for id, t := range lastUsed {
			if _, err := stmt.ExecContext(ctx, ms(t), id, ms(t)); err != nil {
				return err
			}
		}
		return nil
	})
	return translate(err, "touch API keys", "API key")
}

func scanKey(s scanner) (*store.APIKey, error) {
	var (
		k                          store.APIKey
		scopes, limit              string
		created                    int64
		expires, revoked, lastUsed sql.NullInt64
		filter                     sql.NullString
	)
	err := s.Scan(&k.ID, &k.WorkspaceID, &k.Name, &k.Prefix, &k.Hash, &scopes, &limit,
		&created, &expires, &revoked, &lastUsed, &filter)
	if err != nil {
		return nil, err
	}
	if filter.Valid && filter.String != "" {
		if err := json.Unmarshal([]byte(filter.String), &k.Filter); err != nil {
			return nil, fmt.Errorf("API key %s has a malformed record filter: %w", k.ID, err)
		}
	}
	if k.RateLimit, err = store.ParseRateLimit(limit); err != nil {
		return nil, fmt.Errorf("API key %s has a malformed rate limit %q", k.ID, limit)
	}
	k.Scopes = splitScopes(scopes)
	k.CreatedAt = fromMS(created)
	k.ExpiresAt = fromNullMS(expires)
	k.RevokedAt = fromNullMS(revoked)
	k.LastUsedAt = fromNullMS(lastUsed)
	return &k, nil
}

// encodeFilter returns a key's record filter as stored: a JSON object, or
// NULL for none.
func encodeFilter(f map[string]string) (any, error) {
	if len(f) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode record filter: %w", err)
	}
	return string(b), nil
}

// Scopes are stored as one comma-separated text, the form ParseScopes reads.
func joinScopes(s []store.Scope) string {
	var b strings.Builder
	for i, sc := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(sc))
	}
	return b.String()
}

func splitScopes(s string) []store.Scope {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]store.Scope, len(parts))
	for i, p := range parts {
		out[i] = store.Scope(p)
	}
	return out
}
