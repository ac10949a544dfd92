package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"

	"github.com/hustack/hustack/store"
)

// migrations bring the fixed part of the schema from version i to i+1; the
// version is kept in PRAGMA user_version. Append, never edit.
//
// Times are INTEGER unix milliseconds, UTC. The tables of the CRM resources
// are derived from store.Resources by resourceSchema instead, so that a
// field added to a resource becomes a column without a migration here.
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
}

// recordColumns are the columns every resource table has besides its fields.
var recordColumns = []string{"id", "workspace_id", "created_at", "updated_at", "created_via", "api_key_id"}

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

// resourceSchema returns the statements that create r's table and indexes
// if they do not exist.
func resourceSchema(r *store.Resource) []string {
	t := quote(r.Name)
	var cols strings.Builder
	cols.WriteString("id TEXT NOT NULL, workspace_id TEXT NOT NULL")
	for _, f := range r.Fields {
		fmt.Fprintf(&cols, ", %s %s", quote(f.Name), columnType(f))
	}
	cols.WriteString(", created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_via TEXT NOT NULL, api_key_id TEXT NOT NULL")
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s) STRICT", t, cols.String()),
		fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (workspace_id, id)", quote(r.Name+"_workspace_id"), t),
		fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (workspace_id, created_at DESC, id DESC)", quote(r.Name+"_workspace_created"), t),
	}
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

	for _, r := range store.Resources {
		for _, stmt := range resourceSchema(r) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("table %s: %w", r.Name, err)
			}
		}
		if err := addColumns(ctx, tx, r); err != nil {
			return fmt.Errorf("table %s: %w", r.Name, err)
		}
	}
	return tx.Commit()
}

// addColumns adds the columns of fields that r has gained since its table
// was created, and refuses a column whose type no longer fits its field.
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
	for _, f := range r.Fields {
		typ, ok := have[f.Name]
		switch {
		case !ok:
			stmt := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", quote(r.Name), quote(f.Name), columnType(f))
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		case typ != columnType(f):
			return fmt.Errorf("column %s is %s but field %s needs %s", f.Name, typ, f.Type, columnType(f))
		}
	}
	return nil
}
