package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/hustack/hustack/store"
)

// statements are prepared once at Open: writes on the writer pool, reads on
// the reader pool (database/sql prepares them again on each connection that
// runs them, once).
type statements struct {
	createWorkspace *sql.Stmt
	findWorkspace   *sql.Stmt
	findWorkspaces  *sql.Stmt
	updatePolicy    *sql.Stmt

	createKey     *sql.Stmt
	findKeyByHash *sql.Stmt
	findKeyByID   *sql.Stmt
	findWsKey     *sql.Stmt
	findKeys      *sql.Stmt
	setKeyExpiry  *sql.Stmt
	revokeKey     *sql.Stmt
	keyExists     *sql.Stmt
	touchKey      *sql.Stmt

	insertUsage *sql.Stmt
	deleteUsage *sql.Stmt

	createIdem   *sql.Stmt
	findIdem     *sql.Stmt
	completeIdem *sql.Stmt
	deleteIdem   *sql.Stmt
	expireIdem   *sql.Stmt

	markExpiring *sql.Stmt

	createWebhook   *sql.Stmt
	findWebhook     *sql.Stmt
	findWebhooks    *sql.Stmt
	updateWebhook   *sql.Stmt
	deleteWebhook   *sql.Stmt
	deleteHookLog   *sql.Stmt
	setFailing      *sql.Stmt
	clearFailing    *sql.Stmt
	disableWebhook  *sql.Stmt
	insertEvent     *sql.Stmt
	reclaimEvents   *sql.Stmt
	claimEvents     *sql.Stmt
	deleteMoved     *sql.Stmt
	deleteEvents    *sql.Stmt
	insertDelivery  *sql.Stmt
	findDelivery    *sql.Stmt
	findDeliveries  *sql.Stmt
	findByStatus    *sql.Stmt
	updateDelivery  *sql.Stmt
	deliveryExists  *sql.Stmt
	dueDeliveries   *sql.Stmt
	expireDelivered *sql.Stmt
}

type preparer struct {
	ctx context.Context
	err error
}

func (p *preparer) on(db *sql.DB, query string) *sql.Stmt {
	if p.err != nil {
		return nil
	}
	s, err := db.PrepareContext(p.ctx, query)
	if err != nil {
		p.err = fmt.Errorf("%s: %w", query, err)
	}
	return s
}

func (db *DB) prepare(ctx context.Context) error {
	p := &preparer{ctx: ctx}
	w := func(q string) *sql.Stmt { return p.on(db.write, q) }
	r := func(q string) *sql.Stmt { return p.on(db.read, q) }
	db.stmt = statements{
		createWorkspace: w(`INSERT INTO workspaces (` + workspaceColumns + `) VALUES (?, ?, ?, ?, ?, ?)`),
		findWorkspace:   r(`SELECT ` + workspaceColumns + ` FROM workspaces WHERE id = ?`),
		findWorkspaces:  r(`SELECT ` + workspaceColumns + ` FROM workspaces ORDER BY created_at, id`),
		updatePolicy: w(`UPDATE workspaces SET policy_max_lifetime_days = ?, policy_require_expiry = ?,
			policy_disable_unused_days = ? WHERE id = ?`),

		createKey:     w(`INSERT INTO api_keys (` + keyColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		findKeyByHash: r(`SELECT ` + keyColumns + ` FROM api_keys WHERE hash = ?`),
		findKeyByID:   r(`SELECT ` + keyColumns + ` FROM api_keys WHERE id = ?`),
		findWsKey:     r(`SELECT ` + keyColumns + ` FROM api_keys WHERE workspace_id = ? AND id = ?`),
		findKeys:      r(`SELECT ` + keyColumns + ` FROM api_keys WHERE workspace_id = ? ORDER BY created_at, id`),
		setKeyExpiry:  w(`UPDATE api_keys SET expires_at = ? WHERE workspace_id = ? AND id = ?`),
		// Returning the key as revoked, for its api_key.revoked event.
		revokeKey: w(`UPDATE api_keys SET revoked_at = ? WHERE workspace_id = ? AND id = ? AND revoked_at IS NULL
			RETURNING ` + keyColumns),
		keyExists: w(`SELECT 1 FROM api_keys WHERE workspace_id = ? AND id = ?`),
		// The condition keeps last_used_at from ever moving back, whatever
		// order batches arrive in.
		touchKey: w(`UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`),

		insertUsage: w(`INSERT INTO usage_logs (` + usageColumns + `, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`),
		// Retention deletes in bounded chunks so that other writers wait for
		// one chunk at most. Going through the workspace list lets it use the
		// (workspace_id, time) index; events are only recorded for keys of
		// existing workspaces, and workspaces are never deleted.
		deleteUsage: w(`DELETE FROM usage_logs WHERE rowid IN (
			SELECT rowid FROM usage_logs WHERE workspace_id IN (SELECT id FROM workspaces) AND time < ? LIMIT ?)`),

		createIdem:   w(`INSERT INTO idempotency_keys (` + idemColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		findIdem:     r(`SELECT ` + idemColumns + ` FROM idempotency_keys WHERE workspace_id = ? AND key = ?`),
		completeIdem: w(`UPDATE idempotency_keys SET state = ?, status = ?, body = ? WHERE workspace_id = ? AND key = ?`),
		deleteIdem:   w(`DELETE FROM idempotency_keys WHERE workspace_id = ? AND key = ? AND created_at = ?`),
		expireIdem: w(`DELETE FROM idempotency_keys WHERE rowid IN (
			SELECT rowid FROM idempotency_keys WHERE expires_at < ? LIMIT ?)`),

		markExpiring: w(`UPDATE api_keys SET expiring_announced_at = ?
			WHERE workspace_id = ? AND id = ? AND expiring_announced_at IS NULL RETURNING ` + keyColumns),
	}
	db.prepareWebhooks(w, r)
	if p.err != nil {
		return p.err
	}
	db.tables = make(map[*store.Resource]*table)
	for _, res := range store.Resources {
		t := newTable(res)
		t.insert = w(t.insertSQL())
		t.find = r(t.findSQL())
		if _, ok := res.Field(store.ExternalIDField); ok {
			t.findExt = r(t.findExtSQL())
		}
		t.update = w(t.updateSQL())
		t.del = w(t.deleteSQL())
		// On the writer, so that it sees the writer's latest commit.
		t.live = w(t.liveSQL())
		t.purge = w(t.purgeSQL())
		db.tables[res] = t
	}
	return p.err
}
