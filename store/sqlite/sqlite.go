// Package sqlite is the embedded default store.Backend: one SQLite file in
// WAL mode, through the pure-Go driver modernc.org/sqlite.
//
// A DB keeps two connection pools on the file: one connection for writes
// (SQLite has one writer at a time; queuing in Go is cheaper than retrying on
// SQLITE_BUSY) and several read-only connections, which WAL lets run while
// the writer commits. Other processes, such as the command line, may open
// the same file at the same time; busy_timeout makes their writes wait for
// each other instead of failing.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hustack/hustack/store"
)

// BusyTimeout is how long a write waits for another connection or process
// holding the write lock before it fails.
const BusyTimeout = 10 * time.Second

// DB is a store.Backend on one SQLite file.
type DB struct {
	path  string
	write *sql.DB // exactly one connection
	read  *sql.DB // query_only connections

	tables map[*store.Resource]*table
	stmt   statements

	closeOnce sync.Once
	closeErr  error
}

var _ store.Backend = (*DB)(nil)

// Open opens the SQLite database at path, creating the file and its parent
// directory if they do not exist, and creates or migrates the schema.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: %q is not a file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	db := &DB{path: path}
	var err error
	if db.write, err = sql.Open("sqlite", dsn(path, false)); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)

	// Two processes creating the same new file at once can meet SQLITE_BUSY
	// while one of them switches it to WAL, which SQLite reports without
	// waiting for the busy timeout: try again, for as long as that timeout.
	for deadline := time.Now().Add(BusyTimeout); ; {
		err = migrate(ctx, db.write)
		if err == nil || !isBusy(err) || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}

	if db.read, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := max(4, 2*runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(readers)
	db.read.SetMaxIdleConns(readers)
	db.read.SetConnMaxLifetime(0)
	db.read.SetConnMaxIdleTime(0)

	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare statements: %w", err)
	}
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes both pools; calling it again does nothing. It lets SQLite
// refresh its query planner statistics first, as the SQLite documentation
// recommends before closing.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { db.closeErr = db.close() })
	return db.closeErr
}

func (db *DB) close() error {
	var errs []error
	if db.write != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = db.write.ExecContext(ctx, "PRAGMA optimize")
		cancel()
	}
	for _, p := range []*sql.DB{db.read, db.write} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", db.path, err)
	}
	return nil
}

// dsn returns the driver's data source name for a connection to path. Every
// connection gets the busy timeout first, then synchronous=NORMAL (durable
// in WAL mode except for the last commits on power loss), foreign keys, an
// in-memory temp store and a 16 MB page cache; the writer also switches the
// file to WAL and begins transactions IMMEDIATE, the readers are query_only.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16000)") // KiB per connection
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// BEGIN IMMEDIATE takes the write lock at the start of a transaction,
		// so a transaction never fails half way with SQLITE_BUSY.
		q.Set("_txlock", "immediate")
	}
	// A "file:" URI, so that any file name works; the characters URIs give a
	// meaning to are escaped.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	return "file:" + esc + "?" + q.Encode()
}

// notFound is the store's not_found error about what, such as "API key".
func notFound(what string) error { return store.Errorf(store.ENOTFOUND, "%s not found.", what) }

// execOne runs stmt, which changes at most one row; changing none is
// not_found about what. op names the operation in other errors.
func execOne(ctx context.Context, stmt *sql.Stmt, op, what string, args ...any) error {
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return translate(err, op, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return translate(err, op, what)
	}
	if n == 0 {
		return notFound(what)
	}
	return nil
}

// translate turns a driver error into the store's: unique and primary key
// violations are conflicts, the rest is wrapped with what was being done.
func translate(err error, op, what string) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return store.Errorf(store.ECONFLICT, "%s already exists.", what)
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// isBusy reports whether err is SQLite's SQLITE_BUSY, of any extended code.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// ms and fromMS convert between times and the stored unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// limitArg is the LIMIT for a query limit, where anything below 1 means none.
func limitArg(limit int) int {
	if limit < 1 {
		return -1
	}
	return limit
}

// inTx runs fn in a write transaction, committing if it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
