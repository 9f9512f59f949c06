// Package sqlite opens Steward's store (store/sqlstore) on an embedded SQLite
// database (modernc.org/sqlite, pure Go, no cgo) and holds what only SQLite
// needs: the connection pragmas, and the dialect.
//
// Writes go through a pool of exactly one connection and every write
// transaction starts with BEGIN IMMEDIATE, so concurrent writers in this
// process queue in Go instead of failing with SQLITE_BUSY; reads use a
// separate read-only pool and, thanks to WAL mode, never wait for writers.
// Another process writing the same file is covered by busy_timeout. Times
// are stored as Unix nanoseconds (INTEGER; times outside the years
// 1678-2262 are clamped to that range), booleans as 0 and 1.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
	"github.com/stewardhq/steward/store/sqlstore"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// DB is a steward.Store backed by SQLite. Create it with Open; it is safe for
// concurrent use.
type DB struct {
	*sqlstore.DB
	path  string
	write *sql.DB // one connection
	read  *sql.DB // read-only; the same as write for ":memory:"
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
	db := &DB{path: path}
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	var err error
	if path == ":memory:" {
		// Each connection to ":memory:" is a separate database: use one.
		if db.write, err = openPool("file::memory:?"+pragmas, 1); err != nil {
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open :memory:")
		}
		db.read = db.write
	} else {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: create directory for %s", path)
			}
		}
		u := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas
		// temp_store(MEMORY) on the writer keeps the statement journal
		// of each upsert in memory: spilled to a temporary file it was a
		// tenth of a batched agent write's CPU in write calls.
		// wal_autocheckpoint(8000) lets the log grow to 32 MiB (default 4)
		// before the writer copies it into the database: a page written
		// by several batches meanwhile (index pages, agent_seen, the
		// events' last page) is copied once, not once per 1000 pages
		// (BenchmarkConfigAcks: about 8% less CPU). The log is on disk,
		// not in the process's memory.
		if db.write, err = openPool(u+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(8000)", 1); err != nil {
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open %s", path)
		}
		if db.read, err = openPool(u+"&_pragma=query_only(1)", 8); err != nil {
			db.write.Close()
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open %s", path)
		}
		if err := connect(ctx, db.write); err != nil {
			db.write.Close()
			db.read.Close()
			return nil, record.Wrap(steward.EUNAVAILABLE, err, "sqlite: open %s", path)
		}
	}
	if db.DB, err = sqlstore.New(ctx, Dialect, db.write, db.read); err != nil {
		return nil, err
	}
	return db, nil
}

// connectTimeout bounds how long connect retries, as busy_timeout bounds
// a wait for another connection's lock.
const connectTimeout = 10 * time.Second

// connect makes the writer's connection, retrying while the database is
// busy. Switching a database to WAL takes a lock that SQLite does not wait
// for (it reports SQLITE_BUSY at once, whatever busy_timeout says), so
// processes opening a new database together would otherwise fail now and
// then (TestConcurrentOpenOfANewFile).
func connect(ctx context.Context, p *sql.DB) error {
	deadline := time.Now().Add(connectTimeout)
	for {
		err := p.PingContext(ctx)
		if err == nil || extendedCode(err)&0xff != sqlite3lib.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// openPool opens a pool of at most n connections kept open.
func openPool(dsn string, n int) (*sql.DB, error) {
	p, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	p.SetMaxOpenConns(n)
	p.SetMaxIdleConns(n)
	p.SetConnMaxLifetime(0)
	p.SetConnMaxIdleTime(0)
	return p, nil
}

// Path returns the path the database was opened with.
func (db *DB) Path() string { return db.path }

// Dialect is SQLite's: ? placeholders, times as clamped Unix nanoseconds,
// no row locks (a write transaction locks the database), no retries (the
// single writer connection and busy_timeout queue writers instead).
var Dialect = &sqlstore.Dialect{
	Name:          "sqlite",
	Precision:     time.Nanosecond,
	RowStatements: true,
	Time:          func(t time.Time) any { return nanos(t) },
	Macros: map[string]string{
		"time": "INTEGER", "bool": "INTEGER", "blob": "BLOB", "json": "BLOB", "jsonb": "BLOB",
		"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "bytewise": "", "without_rowid": " WITHOUT ROWID",
		"for_update": "", "for_share": "", "instr": "instr", "json_strings": "json_each",
		// The state is JSON text in a BLOB, which SQLite's JSON functions
		// would take for its binary JSONB: cast.
		"state_rcs": `CASE WHEN a.state IS NULL THEN NULL ELSE json_object('remote_config_status', CAST(a.state AS TEXT) -> '$.remote_config_status') END`,
	},
	Code: code,
	Unique: func(err error) bool {
		return extendedCode(err) == sqlite3lib.SQLITE_CONSTRAINT_UNIQUE || extendedCode(err) == sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	Retryable: func(error) bool { return false },
	TouchSeen: touchSeen,
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

func extendedCode(err error) int {
	var e *sqlite3.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return -1
}

// code is ECONFLICT for constraint violations and EUNAVAILABLE when the
// database is closed, busy, cannot be opened, written or grown.
func code(err error) string {
	if strings.Contains(err.Error(), "database is closed") {
		return steward.EUNAVAILABLE
	}
	switch extendedCode(err) & 0xff {
	case sqlite3lib.SQLITE_CONSTRAINT:
		return steward.ECONFLICT
	case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED, sqlite3lib.SQLITE_CANTOPEN,
		sqlite3lib.SQLITE_IOERR, sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_READONLY:
		return steward.EUNAVAILABLE
	}
	return ""
}

// touchSeen runs one prepared UPDATE per agent: with a single writer and no
// network, that is as fast as SQLite gets.
func touchSeen(ctx context.Context, tx *sql.Tx, ids []steward.InstanceUID, seen map[steward.InstanceUID]steward.Seen) error {
	st, err := tx.PrepareContext(ctx, `UPDATE agent_seen SET last_seen = max(coalesce(last_seen, ?1), ?1),
		sequence_num = CASE WHEN last_seen IS NULL OR ?1 > last_seen THEN ?3 ELSE sequence_num END WHERE id = ?2`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, id := range ids {
		if s := seen[id]; !s.At.IsZero() {
			if _, err := st.ExecContext(ctx, nanos(s.At), id.String(), int64(s.SequenceNum)); err != nil {
				return err
			}
		}
	}
	return nil
}
