package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/hustack/hustack/store"
)

// migrations bring the fixed part of the schema from version i to i+1; the
// version is kept in PRAGMA user_version. Append, never edit.
//
// Times are INTEGER unix milliseconds, UTC. The tables of the CRM resources
// are derived from store.Resources by resourceTable, addColumns and
// resourceIndexes instead, so that a field added to a resource becomes a
// column (and a filterable one an index) without a migration here; that is
// also how tables of schema version 1 gain deleted_at, external_id and the
// indexes of sorts and filters.
var migrations = [][]string{
	{
		`CREATE TABLE workspaces (
			id         TEXT PRIMARY KEY,
			name       TEXT NOT NULL,
			created_at INTEGER NOT NULL
		) STRICT`,
		`CREATE INDEX workspaces_created ON workspaces (created_at, id)`,

		`CREATE TABLE api_keys (
			id           TEXT PRIMARY KEY,
			workspace_id TEXT NOT NULL REFERENCES workspaces (id),
			name         TEXT NOT NULL,
			prefix       TEXT NOT NULL,
			hash         BLOB NOT NULL,
			scopes       TEXT NOT NULL,
			rate_limit   TEXT NOT NULL,
			created_at   INTEGER NOT NULL,
			expires_at   INTEGER,
			revoked_at   INTEGER,
			last_used_at INTEGER
		) STRICT`,
		`CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash)`,
		`CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at, id)`,

		`CREATE TABLE usage_logs (
			id          TEXT PRIMARY KEY,
			workspace_id TEXT NOT NULL,
			key_id      TEXT NOT NULL,
			method      TEXT NOT NULL,
			route       TEXT NOT NULL,
			status      INTEGER NOT NULL,
			duration_ms REAL NOT NULL,
			time        INTEGER NOT NULL,
			day         TEXT NOT NULL,
			request_id  TEXT NOT NULL,
			transport   TEXT NOT NULL,
			user_agent  TEXT NOT NULL
		) STRICT`,
		`CREATE INDEX usage_logs_workspace_time ON usage_logs (workspace_id, time DESC)`,
		`CREATE INDEX usage_logs_workspace_key_time ON usage_logs (workspace_id, key_id, time)`,
	},
	{
		// Idempotency keys, per workspace. body is the response replayed for
		// a repeated request; status 0 while the first request runs.
		`CREATE TABLE idempotency_keys (
			workspace_id TEXT NOT NULL,
			key          TEXT NOT NULL,
			fingerprint  TEXT NOT NULL,
			state        TEXT NOT NULL,
			status       INTEGER NOT NULL,
			body         BLOB,
			created_at   INTEGER NOT NULL,
			expires_at   INTEGER NOT NULL,
			PRIMARY KEY (workspace_id, key)
		) STRICT`,
		// Retention across all workspaces.
		`CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)`,
	},
	{
		// A vendor key's record filter, a JSON object of field names to
		// values; NULL for a key that sees the whole workspace.
		`ALTER TABLE api_keys ADD COLUMN record_filter TEXT`,
		// A workspace's key policy; zeros impose nothing.
		`ALTER TABLE workspaces ADD COLUMN policy_max_lifetime_days INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE workspaces ADD COLUMN policy_require_expiry INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE workspaces ADD COLUMN policy_disable_unused_days INTEGER NOT NULL DEFAULT 0`,
	},
	{
		// Webhook subscriptions. events is a JSON array of patterns, scopes
		// a comma-separated list as on api_keys, filter a JSON object (NULL
		// for none), enabled 0 or 1.
		`CREATE TABLE webhooks (
			workspace_id    TEXT NOT NULL,
			id              TEXT NOT NULL,
			url             TEXT NOT NULL,
			events          TEXT NOT NULL,
			description     TEXT NOT NULL,
			enabled         INTEGER NOT NULL,
			disabled_reason TEXT NOT NULL,
			failing_since   INTEGER,
			expires_at      INTEGER,
			scopes          TEXT NOT NULL,
			filter          TEXT,
			api_key_id      TEXT NOT NULL,
			secret          TEXT NOT NULL,
			created_at      INTEGER NOT NULL,
			updated_at      INTEGER NOT NULL,
			PRIMARY KEY (workspace_id, id)
		) STRICT`,
		`CREATE INDEX webhooks_workspace_created ON webhooks (workspace_id, created_at, id)`,

		// The outbox: events stored with the writes that made them, until a
		// relay has handed them on. An event waits in outbox, a table with
		// no index, so that storing it, part of every record write, appends
		// to one B-tree and changes as few pages as it can; rowid order is
		// the order events were stored in. A claim moves it to
		// outbox_claimed, stamped with the time of the claim, where it stays
		// until it is handed on, or until its claim goes stale and a later
		// claim takes it again. A claim so never walks past events it cannot
		// take, however many are claimed and not yet handed on: stale ones
		// come from the start of outbox_claimed_at, waiting ones from the
		// start of outbox.
		`CREATE TABLE outbox (
			id           TEXT NOT NULL,
			workspace_id TEXT NOT NULL,
			type         TEXT NOT NULL,
			created_at   INTEGER NOT NULL,
			data         BLOB NOT NULL
		) STRICT`,
		`CREATE TABLE outbox_claimed (
			id           TEXT PRIMARY KEY,
			workspace_id TEXT NOT NULL,
			type         TEXT NOT NULL,
			created_at   INTEGER NOT NULL,
			claimed_at   INTEGER NOT NULL,
			data         BLOB NOT NULL
		) STRICT, WITHOUT ROWID`,
		`CREATE INDEX outbox_claimed_at ON outbox_claimed (claimed_at)`,

		// Deliveries: one event sent to one subscription. history is a JSON
		// array of attempts; next_attempt_at is NULL once finished.
		`CREATE TABLE deliveries (
			workspace_id    TEXT NOT NULL,
			id              TEXT NOT NULL,
			webhook_id      TEXT NOT NULL,
			event_id        TEXT NOT NULL,
			event_type      TEXT NOT NULL,
			payload         BLOB NOT NULL,
			status          TEXT NOT NULL,
			attempts        INTEGER NOT NULL,
			history         TEXT NOT NULL,
			next_attempt_at INTEGER,
			replay_of       TEXT NOT NULL,
			created_at      INTEGER NOT NULL,
			updated_at      INTEGER NOT NULL,
			PRIMARY KEY (workspace_id, id)
		) STRICT`,
		// A subscription's log, newest first, and deleting a subscription's deliveries.
		`CREATE INDEX deliveries_webhook ON deliveries (workspace_id, webhook_id, created_at DESC, id DESC)`,
		// The worker's sweep of due deliveries, across workspaces.
		`CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending'`,
		// Retention of finished deliveries, across workspaces.
		`CREATE INDEX deliveries_finished ON deliveries (created_at) WHERE status <> 'pending'`,

		// When a key's coming expiry was announced (api_key.expiring), once.
		`ALTER TABLE api_keys ADD COLUMN expiring_announced_at INTEGER`,
	},
}

// recordColumns are the columns every resource table has besides its
// fields. deleted_at is set on tombstones (deleted records kept for a while).
var recordColumns = []string{"id", "workspace_id", "created_at", "updated_at", "created_via", "api_key_id", "deleted_at"}

// systemColumns are the columns of recordColumns that were added after the
// first schema, with their types; addColumns adds them to older tables.
var systemColumns = []struct{ name, typ string }{{"deleted_at", "INTEGER"}}

var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// quote quotes an identifier taken from the resource schema (never from user
// input); checkResource has made sure it is a plain lower-case name.
func quote(name string) string { return `"` + name + `"` }

// columnType is the SQLite type of a field's column.
func columnType(f store.Field) string {
	if f.Type == store.FieldNumber {
		return "REAL"
	}
	return "TEXT"
}

// checkResource makes sure r's names can be used as SQL identifiers and do
// not collide with the columns every record has.
func checkResource(r *store.Resource) error {
	if !identifier.MatchString(r.Name) {
		return fmt.Errorf("resource name %q is not a plain identifier", r.Name)
	}
	seen := map[string]bool{}
	for _, c := range recordColumns {
		seen[c] = true
	}
	for _, f := range r.Fields {
		if !identifier.MatchString(f.Name) {
			return fmt.Errorf("field %s.%s is not a plain identifier", r.Name, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("field %s.%s collides with another column", r.Name, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// resourceTable returns the statement that creates r's table if it does
// not exist.
func resourceTable(r *store.Resource) string {
	var cols strings.Builder
	cols.WriteString("id TEXT NOT NULL, workspace_id TEXT NOT NULL")
	for _, f := range r.Fields {
		fmt.Fprintf(&cols, ", %s %s", quote(f.Name), columnType(f))
	}
	cols.WriteString(", created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_via TEXT NOT NULL, api_key_id TEXT NOT NULL")
	cols.WriteString(", deleted_at INTEGER")
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s) STRICT", quote(r.Name), cols.String())
}

// resourceIndexes returns the statements that create r's indexes if they do
// not exist. Every list sort and filter has one:
//
//   - (workspace_id, id), unique: get, update, delete;
//   - (workspace_id, created_at, id) and (workspace_id, updated_at, id): the
//     sort orders and their keyset positions, either direction;
//   - (workspace_id, field, created_at, id) for each filterable field: a
//     filter, ordered by created_at;
//   - (workspace_id, external_id), unique among live records: upserts;
//   - (deleted_at) over tombstones only: retention.
//
// Tombstones stay in the first indexes, so that lists with and without them
// use the same ones; "deleted_at IS NULL" is checked on the rows the index
// yields, which costs little as tombstones are few and short-lived.
func resourceIndexes(r *store.Resource) []string {
	t := quote(r.Name)
	stmts := []string{
		fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (workspace_id, id)", quote(r.Name+"_workspace_id"), t),
		fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (workspace_id, created_at DESC, id DESC)", quote(r.Name+"_workspace_created"), t),
		fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (workspace_id, updated_at DESC, id DESC)", quote(r.Name+"_workspace_updated"), t),
	}
	for _, f := range r.Fields {
		if f.Filterable {
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (workspace_id, %s, created_at DESC, id DESC)",
				quote(filterIndex(r, f.Name)), t, quote(f.Name)))
		}
	}
	if _, ok := r.Field(store.ExternalIDField); ok {
		stmts = append(stmts, fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (workspace_id, external_id) "+
			"WHERE deleted_at IS NULL AND external_id IS NOT NULL", quote(r.Name+"_external_id_live"), t))
	}
	return append(stmts, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (deleted_at) WHERE deleted_at IS NOT NULL",
		quote(r.Name+"_tombstones"), t))
}

// filterIndex names the index of a filterable field.
func filterIndex(r *store.Resource, field string) string { return r.Name + "_by_" + field }

// eventViewColumns are the columns an insert view has besides those of its
// table: the created event's id, type, time and data. The leading
// underscore keeps them apart from field names, which start with a letter.
const eventViewColumns = "_event_id, _event_type, _event_created_at, _event_data"

// insertView returns the statements that create r's insert view: a view
// with the columns of r's table and of its created event, whose INSTEAD OF
// INSERT trigger stores the record and, in the outbox, the event. An
// INSERT into it is one statement, which SQLite applies whole or not at
// all, so a record is never stored without its event, nor an event
// without its record, and no explicit transaction is needed for it. The
// view selects no rows.
//
// The view's name ends with a hash of its statements, so that programs
// built with different fields (an older CLI next to a newer server on one
// file) each keep their own view instead of replacing each other's, which
// would break the other's prepared inserts.
func insertView(r *store.Resource) (name, view, trigger string) {
	t := newTable(r)
	sum := sha256.Sum256([]byte(t.columns))
	name = insertViewPrefix(r) + hex.EncodeToString(sum[:4])
	cols := strings.Split(t.columns, ", ")
	values := make([]string, len(cols))
	for i, c := range cols {
		values[i] = "NEW." + c
	}
	view = fmt.Sprintf("CREATE VIEW %s (%s, %s) AS SELECT %s WHERE 0", quote(name), t.columns, eventViewColumns,
		strings.TrimSuffix(strings.Repeat("NULL, ", len(cols)+4), ", "))
	trigger = fmt.Sprintf("CREATE TRIGGER %s INSTEAD OF INSERT ON %s BEGIN\n"+
		"INSERT INTO %s (%s) VALUES (%s);\n"+
		"INSERT INTO outbox (%s) VALUES (NEW._event_id, NEW.workspace_id, NEW._event_type, NEW._event_created_at, NEW._event_data);\n"+
		"END", quote(name+"_insert"), quote(name), t.name, t.columns, strings.Join(values, ", "), eventColumns)
	return name, view, trigger
}

// insertViewPrefix starts the names of r's insert views.
func insertViewPrefix(r *store.Resource) string { return r.Name + "_with_event_" }

// createInsertView creates r's insert view and its trigger unless they
// exist. Views of other field lists are left to the programs using them.
func createInsertView(ctx context.Context, tx *sql.Tx, r *store.Resource) error {
	name, view, trigger := insertView(r)
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = ?", name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range []string{view, trigger} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// dropInsertViews drops every insert view (and so its trigger), before
// migrations that may rebuild or rename the tables the triggers name.
func dropInsertViews(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'view' AND name LIKE '%\\_with\\_event%' ESCAPE '\\'")
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		names = append(names, name)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := tx.ExecContext(ctx, "DROP VIEW "+quote(name)); err != nil {
			return err
		}
	}
	return nil
}

// migrate creates or upgrades the schema in one write transaction, so that
// two processes opening a new file at once do not both create it.
func migrate(ctx context.Context, db *sql.DB) error {
	for _, r := range store.Resources {
		if err := checkResource(r); err != nil {
			return err
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("the database has schema version %d; this program knows up to %d: upgrade hustack", version, len(migrations))
	}
	if version < len(migrations) {
		if err := dropInsertViews(ctx, tx); err != nil {
			return fmt.Errorf("drop insert views: %w", err)
		}
	}
	for i := version; i < len(migrations); i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
	}
	if version != len(migrations) {
		// PRAGMA takes no parameters; the value is a constant of this program.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
			return err
		}
	}

	// Tables first, then the columns they lack, then the indexes, which may
	// cover columns just added.
	for _, r := range store.Resources {
		if _, err := tx.ExecContext(ctx, resourceTable(r)); err != nil {
			return fmt.Errorf("table %s: %w", r.Name, err)
		}
		if err := addColumns(ctx, tx, r); err != nil {
			return fmt.Errorf("table %s: %w", r.Name, err)
		}
		for _, stmt := range resourceIndexes(r) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("table %s: %w", r.Name, err)
			}
		}
		if err := createInsertView(ctx, tx, r); err != nil {
			return fmt.Errorf("table %s: insert view: %w", r.Name, err)
		}
	}
	return tx.Commit()
}

// addColumns adds the columns of fields that r has gained since its table
// was created, and the system columns added since (deleted_at), and refuses
// a column whose type no longer fits its field.
func addColumns(ctx context.Context, tx *sql.Tx, r *store.Resource) error {
	rows, err := tx.QueryContext(ctx, "SELECT name, type FROM pragma_table_info(?)", r.Name)
	if err != nil {
		return err
	}
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return err
		}
		have[name] = strings.ToUpper(typ)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	add := func(name, typ string) error {
		stmt := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", quote(r.Name), quote(name), typ)
		_, err := tx.ExecContext(ctx, stmt)
		return err
	}
	for _, c := range systemColumns {
		typ, ok := have[c.name]
		switch {
		case !ok:
			if err := add(c.name, c.typ); err != nil {
				return err
			}
		case typ != c.typ:
			return fmt.Errorf("column %s is %s, want %s", c.name, typ, c.typ)
		}
	}
	for _, f := range r.Fields {
		typ, ok := have[f.Name]
		switch {
		case !ok:
			if err := add(f.Name, columnType(f)); err != nil {
				return err
			}
		case typ != columnType(f):
			return fmt.Errorf("column %s is %s but field %s needs %s", f.Name, typ, f.Type, columnType(f))
		}
	}
	return nil
}
