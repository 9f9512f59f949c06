// Package sqlstore implements steward.Store once, over database/sql, for
// every SQL database Steward runs on: store/sqlite (modernc SQLite, embedded)
// and store/postgres (pgx's database/sql driver, for several replicas). Those
// packages open the connections and describe what really differs in a
// Dialect — placeholders, time encoding, row locking, error codes, how a
// heartbeat batch is written, how migrations are serialized — and add what
// only their database has (SQLite pragmas; PostgreSQL LISTEN/NOTIFY and
// package content in the database).
//
// Queries are written once with ? placeholders and a few {macros} (see
// Dialect.Macros); each is expanded for the dialect once and cached.
//
// Agent rows keep what the agent reported as a JSON document next to
// columns the fleet list filters and sorts on (id, online, healthy, health,
// sync state, config status, service name, host name, version, replica,
// the search text and the attributes text); last-seen times live in a
// narrow table of their own so heartbeat batches do not rewrite whole agent
// rows. Every Agents filter but the selector is SQL, and a page is found by
// its ids before documents are read (agentquery.go); the selector is
// evaluated in Go over the rows the SQL filters leave, so a selector query
// reads and decodes every such row.
//
// Writes that read before they write run in a transaction; a transaction
// that fails only because of another one (Dialect.Retryable: serialization
// failure, deadlock) runs again after a short random pause, and so does one
// that hit a unique violation where the retry picks a new key (config
// versions).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// Dialect is what differs between the SQL databases Steward supports.
type Dialect struct {
	// Name prefixes error messages and selects dialect-specific migration
	// files (NNNN_name.<Name>.sql).
	Name string
	// Numbered placeholders: ? becomes $1, $2, … (PostgreSQL).
	Numbered bool
	// RowStatements: a statement per row costs no round trip (an embedded
	// database), so a batch of narrow updates is written row by row
	// rather than by one multi-row statement.
	RowStatements bool
	// Precision is the finest time step a time column keeps; times are
	// truncated to it before they are stored and written back.
	Precision time.Duration
	// Time encodes a non-zero time for a time column (the zero time is
	// always NULL).
	Time func(time.Time) any
	// Macros replace {name} in queries and migrations: types ({time},
	// {bool}, {blob}, {json}, {jsonb}, {serial}, {C}, {without_rowid}),
	// row locks ({for_update}, {for_share}), {bytewise} (a collation
	// comparing bytes) and functions ({instr}; {json_strings}(?), the
	// table of the strings in a JSON array, as its column value;
	// {state_rcs}, the state document of agents row a reduced to its
	// remote_config_status, NULL when a has no state).
	Macros map[string]string
	// Code maps a driver error to a steward code (ECONFLICT for constraint
	// violations, EUNAVAILABLE when the database cannot answer), or "" for
	// EINTERNAL.
	Code func(error) string
	// Unique reports a unique-constraint violation.
	Unique func(error) bool
	// Retryable reports a transaction that failed only because of a
	// concurrent one (serialization failure, deadlock).
	Retryable func(error) bool
	// TouchSeen raises agent_seen.last_seen of each agent in ids (sorted)
	// to its non-zero time in seen, never lowering it, and sets
	// sequence_num with it (only when last_seen rises), inside tx.
	TouchSeen func(ctx context.Context, tx *sql.Tx, ids []steward.InstanceUID, seen map[steward.InstanceUID]steward.Seen) error
	// LockMigrations serializes migrations between processes on conn, the
	// connection they will run on; nil when transactions are enough.
	LockMigrations func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
}

// DB is a steward.Store over database/sql. Create it with New; it is safe for
// concurrent use.
type DB struct {
	d     *Dialect
	write *sql.DB
	read  *sql.DB
	now   func() time.Time
	// queries caches queries expanded for d; reads the statements
	// prepared on the read pool by readStmt.
	queries sync.Map
	reads   sync.Map
	bodies  bodies
	hashes  contentHashes
	sets    componentSets
}

var (
	_ steward.Store                   = (*DB)(nil)
	_ steward.SummaryStore            = (*DB)(nil)
	_ steward.RolloutStore            = (*DB)(nil)
	_ steward.ReplicaStore            = (*DB)(nil)
	_ steward.HeldAgentStore          = (*DB)(nil)
	_ steward.PackageStore            = (*DB)(nil)
	_ steward.CredentialStore         = (*DB)(nil)
	_ steward.AuditStore              = (*DB)(nil)
	_ steward.ConnectionSettingsStore = (*DB)(nil)
)

// New returns a store writing through write and reading through read (the
// same pool when the database has no read-only replica of its own), after
// applying pending migrations. It owns the pools from then on (Close closes
// them), also when it fails. Errors: EUNAVAILABLE when the database cannot be reached, EINTERNAL when a
// migration fails (nothing of that migration is applied).
func New(ctx context.Context, d *Dialect, write, read *sql.DB) (*DB, error) {
	db := &DB{d: d, write: write, read: read, now: time.Now}
	if err := write.PingContext(ctx); err != nil {
		db.Close()
		return nil, db.wrap(err, "connect")
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the pools; later calls fail with EUNAVAILABLE.
func (db *DB) Close() error {
	db.reads.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	err := db.write.Close()
	if db.read != db.write {
		if err2 := db.read.Close(); err == nil {
			err = err2
		}
	}
	return err
}

// SQL returns the pool writes go through.
func (db *DB) SQL() *sql.DB { return db.write }

// Dialect returns the dialect db was created with.
func (db *DB) Dialect() *Dialect { return db.d }

// q returns query expanded for the dialect: macros replaced and, for
// numbered dialects, ? turned into $1, $2, … (outside quoted text).
func (db *DB) q(query string) string {
	if v, ok := db.queries.Load(query); ok {
		return v.(string)
	}
	out := Expand(db.d, query)
	db.queries.Store(query, out)
	return out
}

// Expand replaces d's macros in query and, when d is numbered, its ?
// placeholders (outside quoted text) with $1, $2, ….
func Expand(d *Dialect, query string) string {
	if strings.Contains(query, "{") {
		query = expandMacros(d, query)
	}
	if !d.Numbered || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n, quote := 0, byte(0)
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// exec runs a statement on the write pool.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.write.ExecContext(ctx, db.q(query), args...)
}

// queryRow runs a query returning one row on the read pool.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return db.read.QueryRowContext(ctx, db.q(query), args...)
}

// queryRowPrepared is queryRow with the statement prepared once (on each
// read connection as it is used) and kept: for a read run per agent
// message, whose parse in SQLite costs about as much as the read itself.
func (db *DB) queryRowPrepared(ctx context.Context, query string, args ...any) (*sql.Row, error) {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// prepared returns query prepared on the read pool, preparing it on first
// use. Only for a fixed query text: every distinct one is kept until Close.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	st, ok := db.reads.Load(query)
	if !ok {
		prepared, err := db.read.PrepareContext(ctx, db.q(query))
		if err != nil {
			return nil, err
		}
		if st, ok = db.reads.LoadOrStore(query, prepared); ok {
			prepared.Close() // prepared meanwhile by another reader
		}
	}
	return st.(*sql.Stmt), nil
}

// each runs a query on the read pool and calls fn for every row.
func (db *DB) each(ctx context.Context, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.read.QueryContext(ctx, db.q(query), args...)
	return eachRow(rows, err, fn)
}

// eachPrepared is each with the statement prepared once (see
// queryRowPrepared): for a listing run per agent connect.
func (db *DB) eachPrepared(ctx context.Context, query string, args []any, fn func(*sql.Rows) error) error {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(ctx, args...)
	return eachRow(rows, err, fn)
}

// eachRow calls fn for every row of a query's result, then closes it.
func eachRow(rows *sql.Rows, err error, fn func(*sql.Rows) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Tx is a transaction whose statements are expanded for the dialect.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.db.q(query), args...)
}

// QueryRow runs a query returning one row in the transaction.
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.db.q(query), args...)
}

// Prepare prepares a statement for repeated use in the transaction (closed
// with it). A statement run once per row of a batch is parsed once, not
// per row: in SQLite the parse costs more than the row's write.
func (t *Tx) Prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.db.q(query))
}

// Strings runs a query returning one text column and collects it.
func (t *Tx) Strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := t.tx.QueryContext(ctx, t.db.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

const maxAttempts = 100

// tx runs fn in a write transaction and commits it, running it again (after
// a short random pause) when it failed only because of a concurrent
// transaction, or with a unique violation when retryUnique is set.
func (db *DB) tx(ctx context.Context, retryUnique bool, fn func(tx *Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.txOnce(ctx, fn)
		if err == nil || attempt == maxAttempts || !(db.d.Retryable(err) || retryUnique && db.d.Unique(err)) {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) * int64(min(attempt, 20))))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

func (db *DB) txOnce(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&Tx{tx: tx, db: db}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// wrap attaches a steward code to a driver error (see Dialect.Code;
// EUNAVAILABLE as well when the context ended or the pool is closed). Errors
// that already carry a code keep it.
func (db *DB) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *steward.Error
	if errors.As(err, &se) {
		return err
	}
	msg := db.d.Name + ": " + fmt.Sprintf(format, args...)
	code := db.d.Code(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") ||
		strings.Contains(err.Error(), "sql: statement is closed") { // a prepared read after Close
		code = steward.EUNAVAILABLE
	}
	if code != "" {
		return record.Wrap(code, err, "%s", msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// notFound is ENOTFOUND with the message when err is sql.ErrNoRows, and err
// wrapped with the message otherwise.
func (db *DB) notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return steward.Errorf(steward.ENOTFOUND, format+" not found", args...)
	}
	return db.wrap(err, format, args...)
}

// time encodes t for a time column: NULL for the zero time.
func (db *DB) time(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return db.d.Time(t)
}

// trunc returns t at the precision a time column keeps, in UTC.
func (db *DB) trunc(t time.Time) time.Time { return t.Truncate(db.d.Precision).UTC() }

// nowT returns the current time as a time column keeps it.
func (db *DB) nowT() time.Time { return db.trunc(db.now()) }

// timeCol scans a time column: NULL (the zero time), Unix nanoseconds
// (SQLite) or a time (PostgreSQL), always in UTC.
type timeCol struct{ time.Time }

func (c *timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		c.Time = time.Time{}
	case int64:
		c.Time = time.Unix(0, v).UTC()
	case time.Time:
		c.Time = v.UTC()
	default:
		return fmt.Errorf("time column holds a %T", src)
	}
	return nil
}

// deleteRow runs a DELETE of one keyed row; ENOTFOUND when none went.
func (db *DB) deleteRow(ctx context.Context, query, key, what string) error {
	res, err := db.exec(ctx, query, key)
	if err != nil {
		return db.wrap(err, "delete %s %q", what, key)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "%s %q not found", what, key)
	}
	return nil
}

// Transact runs fn in a write transaction for a backend's own tables (see
// tx for retries); statements in fn use ? placeholders and macros.
func (db *DB) Transact(ctx context.Context, retryUnique bool, fn func(tx *Tx) error) error {
	return db.tx(ctx, retryUnique, fn)
}

// Wrap attaches a steward code to a driver error, as the store does for its
// own errors; nil stays nil.
func (db *DB) Wrap(err error, format string, args ...any) error { return db.wrap(err, format, args...) }

// where collects the conditions of a filtered query and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// String is the WHERE clause, or "" without conditions.
func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
