// Package sqlite implements steward.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go, no cgo).
//
// Writes go through a pool of exactly one connection and every write
// transaction starts with BEGIN IMMEDIATE, so concurrent writers in this
// process queue in Go instead of failing with SQLITE_BUSY; reads use a
// separate read-only pool and, thanks to WAL mode, never wait for writers.
// Another process writing the same file is covered by busy_timeout.
//
// Agent rows keep what the agent reported as a JSON document next to
// indexed columns (id, online, healthy, service name, host name, version,
// replica); last-seen times live in a narrow table of their own so that
// heartbeat batches do not rewrite whole agent rows. The Agents selector is evaluated in Go over the rows
// the column filters (online, healthy, search) leave, so a selector query
// reads and decodes every such row.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// DB is a steward.Store backed by SQLite. Create it with Open; it is safe for
// concurrent use.
type DB struct {
	path  string
	write *sql.DB // one connection
	read  *sql.DB // read-only; the same as write for ":memory:"
	now   func() time.Time
}

var _ steward.Store = (*DB)(nil)

// Open opens (creating it and its parent directories if needed) the SQLite
// database at path and applies pending schema migrations. ":memory:" opens a
// private in-memory database, which lives until Close. Errors: EINVALID for
// an empty path, EUNAVAILABLE when the file cannot be created or opened,
// EINTERNAL when a migration fails (nothing of that migration is applied).
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, steward.Errorf(steward.EINVALID, "sqlite: empty database path")
	}
	db := &DB{path: path, now: time.Now}
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	var err error
	if path == ":memory:" {
		// Each connection to ":memory:" is a separate database: use one.
		db.write, err = sql.Open("sqlite", "file::memory:?"+pragmas)
		if err != nil {
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open :memory:")
		}
		db.write.SetMaxOpenConns(1)
		db.write.SetMaxIdleConns(1)
		db.write.SetConnMaxLifetime(0)
		db.write.SetConnMaxIdleTime(0)
		db.read = db.write
	} else {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: create directory for %s", path)
			}
		}
		u := "file:" + (&url.URL{Path: path}).EscapedPath()
		db.write, err = sql.Open("sqlite", u+"?"+pragmas+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open %s", path)
		}
		db.write.SetMaxOpenConns(1)
		db.write.SetMaxIdleConns(1)
		db.write.SetConnMaxLifetime(0)
		db.write.SetConnMaxIdleTime(0)
		db.read, err = sql.Open("sqlite", u+"?"+pragmas+"&_pragma=query_only(1)")
		if err != nil {
			db.write.Close()
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open %s", path)
		}
		db.read.SetMaxOpenConns(8)
		db.read.SetMaxIdleConns(8)
	}
	if err := db.write.PingContext(ctx); err != nil {
		db.Close()
		return nil, wrap(err, "open %s", path)
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database; later calls fail with EUNAVAILABLE.
func (db *DB) Close() error {
	err := db.write.Close()
	if db.read != db.write {
		if err2 := db.read.Close(); err == nil {
			err = err2
		}
	}
	return err
}

// Path returns the path the database was opened with.
func (db *DB) Path() string { return db.path }

// wrap attaches a steward code to a driver error: EUNAVAILABLE when the
// database is closed, busy, cannot be opened or the context ended;
// ECONFLICT for constraint violations; EINTERNAL otherwise. Errors that
// already carry a code keep it.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *steward.Error
	if errors.As(err, &se) {
		return err
	}
	msg := "sqlite: " + fmt.Sprintf(format, args...)
	var e *sqlite3.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, sql.ErrConnDone), strings.Contains(err.Error(), "database is closed"):
		return record.Wrap(steward.EUNAVAILABLE, err, "%s", msg)
	case errors.As(err, &e):
		switch e.Code() & 0xff {
		case sqlite3lib.SQLITE_CONSTRAINT:
			return record.Wrap(steward.ECONFLICT, err, "%s", msg)
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED, sqlite3lib.SQLITE_CANTOPEN,
			sqlite3lib.SQLITE_IOERR, sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_READONLY:
			return record.Wrap(steward.EUNAVAILABLE, err, "%s", msg)
		}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE on the single writer
// connection), committing when fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
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

// Times are stored as Unix nanoseconds (INTEGER); the zero time as NULL.
// Times outside the years 1678-2262 are clamped to that range.
func toNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: nanos(t), Valid: true}
}

var minTime, maxTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// nanos returns t as Unix nanoseconds, clamped to what int64 holds.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var migrations = []string{
	// 1: initial schema.
	`CREATE TABLE agents (
		id              TEXT PRIMARY KEY,
		doc             BLOB NOT NULL,
		online          INTEGER NOT NULL DEFAULT 0,
		healthy         INTEGER NOT NULL DEFAULT 0,
		service_name    TEXT NOT NULL DEFAULT '',
		host_name       TEXT NOT NULL DEFAULT '',
		service_version TEXT NOT NULL DEFAULT '',
		search          TEXT NOT NULL DEFAULT '',
		replica         TEXT NOT NULL DEFAULT '',
		disconnected_at INTEGER,
		created_at      INTEGER NOT NULL,
		updated_at      INTEGER NOT NULL
	);
	CREATE INDEX agents_online ON agents(online, replica);
	CREATE INDEX agents_service_name ON agents(service_name);
	CREATE INDEX agents_host_name ON agents(host_name);
	-- Heartbeats only touch this narrow table, not the wide agent rows.
	CREATE TABLE agent_seen (
		id        TEXT PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
		last_seen INTEGER
	) WITHOUT ROWID;

	CREATE TABLE configs (
		name       TEXT NOT NULL,
		version    INTEGER NOT NULL,
		hash       BLOB NOT NULL,
		files      BLOB NOT NULL,
		comment    TEXT NOT NULL DEFAULT '',
		author     TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		PRIMARY KEY (name, version)
	);

	CREATE TABLE assignments (
		name        TEXT PRIMARY KEY,
		config_name TEXT NOT NULL,
		version     INTEGER NOT NULL DEFAULT 0,
		selector    TEXT NOT NULL DEFAULT '',
		agent_id    TEXT,
		priority    INTEGER NOT NULL DEFAULT 0,
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL
	);
	CREATE INDEX assignments_config ON assignments(config_name);

	CREATE TABLE events (
		id       INTEGER PRIMARY KEY AUTOINCREMENT,
		type     TEXT NOT NULL,
		agent_id TEXT NOT NULL,
		message  TEXT NOT NULL DEFAULT '',
		details  BLOB,
		time     INTEGER NOT NULL
	);
	CREATE INDEX events_agent_time ON events(agent_id, time);
	CREATE INDEX events_time ON events(time);`,
	// 2: staged rollouts (a JSON document per rollout, compare-and-swap on revision).
	`CREATE TABLE rollouts (
		name       TEXT PRIMARY KEY,
		assignment TEXT NOT NULL,
		revision   INTEGER NOT NULL,
		doc        BLOB NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX rollouts_assignment ON rollouts(assignment);`,
	// 3: replica leases (see steward.ReplicaStore).
	`CREATE TABLE replicas (
		name    TEXT PRIMARY KEY,
		seen_at INTEGER NOT NULL
	);`,
	// 4: packages (metadata; content is in a steward.BlobStore), package
	// assignments with one row per offered package (the foreign key keeps
	// an assigned version from being deleted), and the signing key.
	`CREATE TABLE packages (
		name       TEXT NOT NULL,
		version    TEXT NOT NULL,
		hash       BLOB NOT NULL,
		doc        BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (name, version)
	);
	CREATE INDEX packages_hash ON packages(hash);
	CREATE TABLE package_assignments (
		name       TEXT PRIMARY KEY,
		doc        BLOB NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE package_assignment_items (
		assignment TEXT NOT NULL REFERENCES package_assignments(name) ON DELETE CASCADE,
		package    TEXT NOT NULL,
		version    TEXT NOT NULL,
		PRIMARY KEY (assignment, package),
		FOREIGN KEY (package, version) REFERENCES packages(name, version)
	);
	CREATE INDEX package_assignment_items_pkg ON package_assignment_items(package, version);
	CREATE TABLE package_signing_key (
		id          INTEGER PRIMARY KEY CHECK (id = 1),
		private_key BLOB NOT NULL
	);`,
	// 5: agent credentials, API tokens, connection settings and the audit
	// log (see credentials.go); records are JSON documents next to the
	// columns they are looked up by.
	`CREATE TABLE api_tokens (
		id         TEXT PRIMARY KEY,
		hash       BLOB NOT NULL UNIQUE,
		created_at INTEGER NOT NULL,
		doc        BLOB NOT NULL
	);
	CREATE TABLE enrollment_tokens (
		id         TEXT PRIMARY KEY,
		hash       BLOB NOT NULL UNIQUE,
		created_at INTEGER NOT NULL,
		doc        BLOB NOT NULL
	);
	CREATE TABLE agent_certificates (
		serial     TEXT PRIMARY KEY,
		agent_id   TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		doc        BLOB NOT NULL
	);
	CREATE INDEX agent_certificates_agent ON agent_certificates(agent_id, created_at);
	CREATE TABLE connection_settings (
		name TEXT PRIMARY KEY,
		doc  BLOB NOT NULL
	);
	CREATE TABLE secrets (
		name  TEXT PRIMARY KEY,
		value BLOB NOT NULL
	);
	CREATE TABLE audit_log (
		id      INTEGER PRIMARY KEY AUTOINCREMENT,
		time    INTEGER NOT NULL,
		actor   TEXT NOT NULL,
		action  TEXT NOT NULL,
		target  TEXT NOT NULL,
		details BLOB
	);
	CREATE INDEX audit_log_time ON audit_log(time);`,
	// 6: the reported remote config status as a column, for Summary.
	`ALTER TABLE agents ADD COLUMN config_status TEXT NOT NULL DEFAULT 'UNSET';
	UPDATE agents SET config_status = COALESCE(json_extract(CAST(doc AS TEXT), '$.remote_config_status.status'), 'UNSET');`,
	// 7: browser sessions of the REST API and UI (sessions.go).
	`CREATE TABLE sessions (
		hash       BLOB PRIMARY KEY,
		name       TEXT NOT NULL,
		csrf       TEXT NOT NULL,
		epoch      TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX sessions_expires ON sessions(expires_at);`,
}

// migrate applies, in order and each in its own transaction, every migration
// the schema_migrations table does not list. Running it again is a no-op.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL)`); err != nil {
		return wrap(err, "create schema_migrations")
	}
	for i, m := range migrations {
		version := i + 1
		err := db.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, version, nanos(db.now()))
			return err
		})
		if err != nil {
			return wrap(err, "migration %d", version)
		}
	}
	return nil
}

// SchemaVersion returns the number of the last applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := db.read.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, wrap(err, "schema version")
	}
	return int(v.Int64), nil
}
