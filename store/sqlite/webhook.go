package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

const (
	webhookColumns = `workspace_id, id, url, events, description, enabled, disabled_reason, failing_since, expires_at,
		scopes, filter, api_key_id, secret, created_at, updated_at`
	deliveryColumns = `workspace_id, id, webhook_id, event_id, event_type, payload, status, attempts, history,
		next_attempt_at, replay_of, created_at, updated_at`
	eventColumns = `id, workspace_id, type, created_at, data`
)

// prepareWebhooks prepares the statements of subscriptions, the outbox and
// deliveries: w on the writer, r on the readers.
func (db *DB) prepareWebhooks(w, r func(string) *sql.Stmt) {
	s := &db.stmt
	s.createWebhook = w(`INSERT INTO webhooks (` + webhookColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	s.findWebhook = r(`SELECT ` + webhookColumns + ` FROM webhooks WHERE workspace_id = ? AND id = ?`)
	s.findWebhooks = r(`SELECT ` + webhookColumns + ` FROM webhooks WHERE workspace_id = ? ORDER BY created_at, id`)
	s.updateWebhook = w(`UPDATE webhooks SET url = ?, events = ?, description = ?, enabled = ?, disabled_reason = ?,
		failing_since = CASE WHEN enabled = 0 AND ? THEN NULL ELSE failing_since END,
		expires_at = ?, scopes = ?, updated_at = ? WHERE workspace_id = ? AND id = ? AND updated_at = ?`)
	s.deleteWebhook = w(`DELETE FROM webhooks WHERE workspace_id = ? AND id = ?`)
	s.deleteHookLog = w(`DELETE FROM deliveries WHERE workspace_id = ? AND webhook_id = ?`)
	s.setFailing = w(`UPDATE webhooks SET failing_since = ? WHERE workspace_id = ? AND id = ? AND failing_since IS NULL`)
	s.clearFailing = w(`UPDATE webhooks SET failing_since = NULL WHERE workspace_id = ? AND id = ?`)
	s.disableWebhook = w(`UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ?
		WHERE workspace_id = ? AND id = ? AND enabled = 1 AND (? IS NULL OR failing_since = ?)`)

	s.insertEvent = w(`INSERT INTO outbox (` + eventColumns + `) VALUES (?, ?, ?, ?, ?)`)
	// A claim takes the stale claimed events first, oldest claim first,
	// then moves the oldest waiting events to outbox_claimed (see
	// ClaimEvents).
	s.reclaimEvents = w(`UPDATE outbox_claimed SET claimed_at = ? WHERE id IN (
		SELECT id FROM outbox_claimed WHERE claimed_at < ? ORDER BY claimed_at, id LIMIT ?)
		RETURNING ` + eventColumns)
	// Should two waiting events have one id, the second merges into the
	// first rather than failing every claim ("WHERE true" tells SQLite's
	// parser that ON CONFLICT belongs to the INSERT).
	s.claimEvents = w(`INSERT INTO outbox_claimed (` + eventColumns + `, claimed_at)
		SELECT ` + eventColumns + `, ? FROM outbox WHERE true ORDER BY rowid LIMIT ?
		ON CONFLICT (id) DO UPDATE SET claimed_at = excluded.claimed_at
		RETURNING ` + eventColumns)
	s.deleteMoved = w(`DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox ORDER BY rowid LIMIT ?)`)
	s.deleteEvents = w(`DELETE FROM outbox_claimed WHERE id IN (SELECT value FROM json_each(?))`)

	s.insertDelivery = w(`INSERT INTO deliveries (` + deliveryColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`)
	s.findDelivery = r(`SELECT ` + deliveryColumns + ` FROM deliveries WHERE workspace_id = ? AND id = ?`)
	s.findDeliveries = r(`SELECT ` + deliveryColumns + ` FROM deliveries WHERE workspace_id = ? AND webhook_id = ?
		ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`)
	s.findByStatus = r(`SELECT ` + deliveryColumns + ` FROM deliveries WHERE workspace_id = ? AND webhook_id = ? AND status = ?
		ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`)
	s.updateDelivery = w(`UPDATE deliveries SET status = ?, attempts = ?, history = ?, next_attempt_at = ?, updated_at = ?
		WHERE workspace_id = ? AND id = ? AND attempts = ?`)
	s.deliveryExists = w(`SELECT 1 FROM deliveries WHERE workspace_id = ? AND id = ?`)
	// The condition on status is spelled as in the partial indexes, so
	// that SQLite can use them.
	s.dueDeliveries = r(`SELECT ` + deliveryColumns + ` FROM deliveries WHERE status = 'pending' AND next_attempt_at < ?
		ORDER BY next_attempt_at, id LIMIT ?`)
	s.expireDelivered = w(`DELETE FROM deliveries WHERE rowid IN (
		SELECT rowid FROM deliveries WHERE status <> 'pending' AND created_at < ? LIMIT ?)`)
}

// insertEvent stores ev in the outbox within tx, the transaction of the
// write it announces.
func (db *DB) insertEvent(ctx context.Context, tx *sql.Tx, ev store.Event) error {
	_, err := tx.StmtContext(ctx, db.stmt.insertEvent).ExecContext(ctx, ev.ID, ev.WorkspaceID, ev.Type, ms(ev.CreatedAt), []byte(ev.Data))
	return err
}

func (db *DB) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("sqlite: create webhook: %w", err)
	}
	filter, err := encodeFilter(w.Filter)
	if err != nil {
		return err
	}
	_, err = db.stmt.createWebhook.ExecContext(ctx, w.WorkspaceID, w.ID, w.URL, string(events), w.Description,
		w.Enabled, w.DisabledReason, nullMS(w.FailingSince), nullMS(w.ExpiresAt), joinScopes(w.Scopes), filter,
		w.APIKeyID, w.Secret, ms(w.CreatedAt), ms(w.UpdatedAt))
	return translate(err, "create webhook", "Webhook")
}

func (db *DB) FindWebhookByID(ctx context.Context, workspaceID, id string) (*store.Webhook, error) {
	w, err := scanWebhook(db.stmt.findWebhook.QueryRowContext(ctx, workspaceID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("Webhook")
	}
	if err != nil {
		return nil, translate(err, "find webhook", "Webhook")
	}
	return w, nil
}

func (db *DB) FindWebhooks(ctx context.Context, workspaceID string) ([]*store.Webhook, error) {
	rows, err := db.stmt.findWebhooks.QueryContext(ctx, workspaceID)
	if err != nil {
		return nil, translate(err, "find webhooks", "Webhook")
	}
	defer rows.Close()
	var out []*store.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, translate(err, "find webhooks", "Webhook")
		}
		out = append(out, w)
	}
	return out, translate(rows.Err(), "find webhooks", "Webhook")
}

func (db *DB) UpdateWebhook(ctx context.Context, w *store.Webhook, prevUpdatedAt time.Time) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("sqlite: update webhook: %w", err)
	}
	res, err := db.stmt.updateWebhook.ExecContext(ctx,
		w.URL, string(events), w.Description, w.Enabled, w.DisabledReason, w.Enabled, nullMS(w.ExpiresAt),
		joinScopes(w.Scopes), ms(w.UpdatedAt), w.WorkspaceID, w.ID, ms(prevUpdatedAt))
	if err != nil {
		return translate(err, "update webhook", "Webhook")
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return translate(err, "update webhook", "Webhook")
	}
	// Nothing matched: no such subscription, or changed since it was read.
	if _, err := db.FindWebhookByID(ctx, w.WorkspaceID, w.ID); err != nil {
		return err
	}
	return store.ErrStale
}

// DeleteWebhook removes the subscription and its delivery log in one
// transaction, so that no delivery outlives its subscription.
func (db *DB) DeleteWebhook(ctx context.Context, workspaceID, id string) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.stmt.deleteWebhook).ExecContext(ctx, workspaceID, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			return notFound("Webhook")
		}
		_, err = tx.StmtContext(ctx, db.stmt.deleteHookLog).ExecContext(ctx, workspaceID, id)
		return err
	})
	if store.ErrorCode(err) == store.ENOTFOUND {
		return err
	}
	return translate(err, "delete webhook", "Webhook")
}

func (db *DB) SetWebhookFailing(ctx context.Context, workspaceID, id string, at *time.Time) error {
	var err error
	if at == nil {
		_, err = db.stmt.clearFailing.ExecContext(ctx, workspaceID, id)
	} else {
		_, err = db.stmt.setFailing.ExecContext(ctx, ms(*at), workspaceID, id)
	}
	return translate(err, "set webhook failing", "Webhook")
}

func (db *DB) DisableWebhook(ctx context.Context, workspaceID, id, reason string, at time.Time, failingSince *time.Time) (bool, error) {
	since := nullMS(failingSince)
	res, err := db.stmt.disableWebhook.ExecContext(ctx, reason, ms(at), workspaceID, id, since, since)
	if err != nil {
		return false, translate(err, "disable webhook", "Webhook")
	}
	n, err := res.RowsAffected()
	return n > 0, translate(err, "disable webhook", "Webhook")
}

func scanWebhook(s scanner) (*store.Webhook, error) {
	var (
		w                store.Webhook
		events, scopes   string
		filter           sql.NullString
		failing, expires sql.NullInt64
		created, updated int64
	)
	err := s.Scan(&w.WorkspaceID, &w.ID, &w.URL, &events, &w.Description, &w.Enabled, &w.DisabledReason,
		&failing, &expires, &scopes, &filter, &w.APIKeyID, &w.Secret, &created, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("webhook %s has malformed events: %w", w.ID, err)
	}
	if filter.Valid && filter.String != "" {
		if err := json.Unmarshal([]byte(filter.String), &w.Filter); err != nil {
			return nil, fmt.Errorf("webhook %s has a malformed filter: %w", w.ID, err)
		}
	}
	w.Scopes = splitScopes(scopes)
	w.FailingSince = fromNullMS(failing)
	w.ExpiresAt = fromNullMS(expires)
	w.CreatedAt, w.UpdatedAt = fromMS(created), fromMS(updated)
	return &w, nil
}

// ClaimEvents takes, in one transaction, the stale claimed events first,
// those claimed longest ago, then the events that waited longest, which it
// moves from outbox to outbox_claimed: every event it reads is one it
// claims. RETURNING gives no order, so the events are sorted here.
func (db *DB) ClaimEvents(ctx context.Context, now, staleBefore time.Time, limit int) ([]store.Event, error) {
	var out []store.Event
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, db.stmt.reclaimEvents).QueryContext(ctx, ms(now), ms(staleBefore), limitArg(limit))
		if out, err = scanEvents(out, rows, err); err != nil {
			return err
		}
		stale, rest := len(out), -1
		if limit > 0 {
			if rest = limit - stale; rest == 0 {
				return nil
			}
		}
		rows, err = tx.StmtContext(ctx, db.stmt.claimEvents).QueryContext(ctx, ms(now), rest)
		if out, err = scanEvents(out, rows, err); err != nil || len(out) == stale {
			return err
		}
		// The same first rows of outbox: the transaction holds the writer.
		_, err = tx.StmtContext(ctx, db.stmt.deleteMoved).ExecContext(ctx, len(out)-stale)
		return err
	})
	if err != nil {
		return nil, translate(err, "claim events", "Event")
	}
	slices.SortFunc(out, func(a, b store.Event) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// scanEvents appends the events of rows, the result of a query that failed
// with err if not nil, to out, and closes the rows.
func scanEvents(out []store.Event, rows *sql.Rows, err error) ([]store.Event, error) {
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ev      store.Event
			created int64
			data    []byte
		)
		if err := rows.Scan(&ev.ID, &ev.WorkspaceID, &ev.Type, &created, &data); err != nil {
			return out, err
		}
		ev.CreatedAt, ev.Data = fromMS(created), data
		out = append(out, ev)
	}
	return out, errors.Join(rows.Err(), rows.Close())
}

// DeleteEvents deletes claimed events: only a claim hands an event on.
func (db *DB) DeleteEvents(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("sqlite: delete events: %w", err)
	}
	_, err = db.stmt.deleteEvents.ExecContext(ctx, string(list))
	return translate(err, "delete events", "Event")
}

// MarkAPIKeyExpiring sets expiring_announced_at unless it is set, and
// stores the api_key.expiring event of the key as updated.
func (db *DB) MarkAPIKeyExpiring(ctx context.Context, workspaceID, id string, at time.Time) (bool, error) {
	marked := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		k, err := returnedKey(tx.StmtContext(ctx, db.stmt.markExpiring).QueryContext(ctx, ms(at), workspaceID, id))
		if err != nil || k == nil {
			return err
		}
		ev, err := store.NewKeyEvent(k, store.KindExpiring, at)
		if err != nil {
			return err
		}
		marked = true
		return db.insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return false, translate(err, "mark API key expiring", "API key")
	}
	return marked, nil
}

// InsertDeliveries stores a batch in one transaction; ON CONFLICT DO
// NOTHING skips deliveries already stored.
func (db *DB) InsertDeliveries(ctx context.Context, ds []*store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	type row struct {
		d       *store.Delivery
		history string
	}
	rows := make([]row, len(ds))
	for i, d := range ds {
		h, err := encodeHistory(d.History)
		if err != nil {
			return fmt.Errorf("sqlite: insert deliveries: %w", err)
		}
		rows[i] = row{d, h}
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, db.stmt.insertDelivery)
		for _, r := range rows {
			d := r.d
			_, err := stmt.ExecContext(ctx, d.WorkspaceID, d.ID, d.WebhookID, d.EventID, d.EventType, []byte(d.Payload),
				d.Status, d.Attempts, r.history, nullMS(d.NextAttemptAt), d.ReplayOf, ms(d.CreatedAt), ms(d.UpdatedAt))
			if err != nil {
				return err
			}
		}
		return nil
	})
	return translate(err, "insert deliveries", "Delivery")
}

func (db *DB) FindDeliveryByID(ctx context.Context, workspaceID, id string) (*store.Delivery, error) {
	d, err := scanDelivery(db.stmt.findDelivery.QueryRowContext(ctx, workspaceID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("Delivery")
	}
	if err != nil {
		return nil, translate(err, "find delivery", "Delivery")
	}
	return d, nil
}

func (db *DB) FindDeliveries(ctx context.Context, workspaceID, webhookID string, q store.DeliveryQuery) ([]*store.Delivery, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if q.Status == "" {
		rows, err = db.stmt.findDeliveries.QueryContext(ctx, workspaceID, webhookID, limitArg(q.Limit), max(q.Offset, 0))
	} else {
		rows, err = db.stmt.findByStatus.QueryContext(ctx, workspaceID, webhookID, q.Status, limitArg(q.Limit), max(q.Offset, 0))
	}
	if err != nil {
		return nil, translate(err, "find deliveries", "Delivery")
	}
	return scanDeliveries(rows)
}

// UpdateDelivery is one conditional UPDATE; when it changes nothing, a
// second look tells a delivery updated meanwhile (stale) from one that is
// not there.
func (db *DB) UpdateDelivery(ctx context.Context, d *store.Delivery, prevAttempts int) error {
	history, err := encodeHistory(d.History)
	if err != nil {
		return fmt.Errorf("sqlite: update delivery: %w", err)
	}
	res, err := db.stmt.updateDelivery.ExecContext(ctx, d.Status, d.Attempts, history, nullMS(d.NextAttemptAt),
		ms(d.UpdatedAt), d.WorkspaceID, d.ID, prevAttempts)
	if err != nil {
		return translate(err, "update delivery", "Delivery")
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return translate(err, "update delivery", "Delivery")
	}
	var one int
	err = db.stmt.deliveryExists.QueryRowContext(ctx, d.WorkspaceID, d.ID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return notFound("Delivery")
	case err != nil:
		return translate(err, "update delivery", "Delivery")
	}
	return store.ErrStale
}

func (db *DB) FindDueDeliveriesUnscoped(ctx context.Context, before time.Time, limit int) ([]*store.Delivery, error) {
	rows, err := db.stmt.dueDeliveries.QueryContext(ctx, ms(before), limitArg(limit))
	if err != nil {
		return nil, translate(err, "find due deliveries", "Delivery")
	}
	return scanDeliveries(rows)
}

// DeleteDeliveriesBefore deletes in chunks so that other writers wait for
// one chunk at most.
func (db *DB) DeleteDeliveriesBefore(ctx context.Context, before time.Time) (int64, error) {
	n, err := deleteChunked(ctx, db.stmt.expireDelivered, ms(before))
	return n, translate(err, "delete deliveries", "Delivery")
}

// attempt is how an attempt is stored in a delivery's history: its time in
// unix milliseconds, like every other time.
type attempt struct {
	At         int64  `json:"at"`
	StatusCode int    `json:"status_code"`
	LatencyMS  int64  `json:"latency_ms"`
	Error      string `json:"error,omitempty"`
}

func encodeHistory(h []store.Attempt) (string, error) {
	out := make([]attempt, len(h))
	for i, a := range h {
		out[i] = attempt{At: ms(a.At), StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeHistory(s string) ([]store.Attempt, error) {
	var in []attempt
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, err
	}
	out := make([]store.Attempt, len(in))
	for i, a := range in {
		out[i] = store.Attempt{At: fromMS(a.At), StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error}
	}
	return out, nil
}

func scanDeliveries(rows *sql.Rows) ([]*store.Delivery, error) {
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, translate(err, "find deliveries", "Delivery")
		}
		out = append(out, d)
	}
	return out, translate(rows.Err(), "find deliveries", "Delivery")
}

func scanDelivery(s scanner) (*store.Delivery, error) {
	var (
		d                store.Delivery
		payload          []byte
		history          string
		next             sql.NullInt64
		created, updated int64
	)
	err := s.Scan(&d.WorkspaceID, &d.ID, &d.WebhookID, &d.EventID, &d.EventType, &payload, &d.Status, &d.Attempts,
		&history, &next, &d.ReplayOf, &created, &updated)
	if err != nil {
		return nil, err
	}
	if d.History, err = decodeHistory(history); err != nil {
		return nil, fmt.Errorf("delivery %s has a malformed history: %w", d.ID, err)
	}
	d.Payload = payload
	d.NextAttemptAt = fromNullMS(next)
	d.CreatedAt, d.UpdatedAt = fromMS(created), fromMS(updated)
	return &d, nil
}
