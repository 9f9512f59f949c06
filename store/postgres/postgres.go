// Package postgres opens Steward's store (store/sqlstore) on PostgreSQL
// through pgx's database/sql driver, for deployments running several
// Steward replicas against one database, and holds what only PostgreSQL
// has: the dialect, LISTEN/NOTIFY between replicas (notify.go) and package
// content kept in the database so every replica serves it (blobs.go).
//
// Tables are created unqualified, in the first schema of the connection's
// search_path. Migrations run at Open under a session advisory lock, so
// replicas starting together apply each migration once. Rows read to be
// changed are locked (FOR UPDATE, FOR SHARE); transactions that fail with a
// serialization failure or deadlock are retried, and so is config version
// assignment when a concurrent writer took the same version.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/sqlstore"
)

// DB is a steward.Store backed by PostgreSQL. Create it with Open; it is safe
// for concurrent use.
type DB struct {
	*sqlstore.DB
	// channel is the NOTIFY channel of this schema (see Broadcast).
	channel string
	// maxConns is the size of the connection pool.
	maxConns int
}

var _ steward.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as pgx accepts, including pgxpool's pool_max_conns) and applies
// pending migrations. Errors: EINVALID for a malformed dsn, EUNAVAILABLE
// when the server cannot be reached, EINTERNAL when a migration fails (that
// migration is rolled back).
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The error can echo the DSN, password included: do not wrap it.
		return nil, steward.Errorf(steward.EINVALID, "postgres: invalid connection string")
	}
	pool := stdlib.OpenDB(*cfg.ConnConfig)
	pool.SetMaxOpenConns(int(cfg.MaxConns))
	pool.SetMaxIdleConns(int(cfg.MaxConns))
	pool.SetConnMaxLifetime(cfg.MaxConnLifetime)
	pool.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	db := &DB{maxConns: int(cfg.MaxConns)}
	if db.DB, err = sqlstore.New(ctx, Dialect, pool, pool); err != nil {
		return nil, err
	}
	var schema string
	if err := db.SQL().QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		db.Close()
		return nil, db.Wrap(err, "current schema")
	}
	// One channel per schema, so that deployments (and tests) sharing a
	// database in separate schemas do not hear each other.
	db.channel = "steward_" + schema
	if len(db.channel) > 63 {
		db.channel = db.channel[:63]
	}
	return db, nil
}

func (db *DB) String() string {
	return fmt.Sprintf("postgres store (pool of %d)", db.maxConns)
}

// Dialect is PostgreSQL's: $n placeholders, timestamptz at microsecond
// precision, row locks, retries on serialization failures and deadlocks.
var Dialect = &sqlstore.Dialect{
	Name:      "postgres",
	Numbered:  true,
	Precision: time.Microsecond,
	Time:      func(t time.Time) any { return t.Truncate(time.Microsecond).UTC() },
	Macros: map[string]string{
		"time": "timestamptz", "bool": "boolean", "blob": "bytea", "json": "json", "jsonb": "jsonb",
		"serial": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "bytewise": ` COLLATE "C"`, "without_rowid": "",
		"for_update": " FOR UPDATE", "for_share": " FOR SHARE", "instr": "strpos", "json_strings": "json_array_elements_text",
		"state_rcs": `CASE WHEN a.state IS NULL THEN NULL ELSE json_build_object('remote_config_status', a.state -> 'remote_config_status') END`,
	},
	Code:           code,
	Unique:         func(err error) bool { return pgCode(err) == "23505" },
	Retryable:      func(err error) bool { c := pgCode(err); return c == "40001" || c == "40P01" },
	TouchSeen:      touchSeen,
	LockMigrations: lockMigrations,
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// code is EUNAVAILABLE when the server cannot be reached or refused for
// lack of resources, or the transaction lost to a concurrent one;
// ECONFLICT for constraint violations.
func code(err error) string {
	var (
		connErr *pgconn.ConnectError
		netErr  net.Error
	)
	if errors.Is(err, driver.ErrBadConn) || errors.As(err, &connErr) || errors.As(err, &netErr) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return steward.EUNAVAILABLE
	}
	c := pgCode(err)
	switch {
	case strings.HasPrefix(c, "23"): // integrity constraint violation
		return steward.ECONFLICT
	case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"), strings.HasPrefix(c, "57"), // connection, resources, operator intervention
		c == "40001", c == "40P01":
		return steward.EUNAVAILABLE
	}
	return ""
}

// touchSeen updates every agent in one statement, from arrays.
func touchSeen(ctx context.Context, tx *sql.Tx, ids []steward.InstanceUID, seen map[steward.InstanceUID]steward.Seen) error {
	keys := make([]string, 0, len(ids))
	times := make([]time.Time, 0, len(ids))
	seqs := make([]int64, 0, len(ids))
	for _, id := range ids {
		if s := seen[id]; !s.At.IsZero() {
			keys, times = append(keys, id.String()), append(times, s.At.Truncate(time.Microsecond))
			seqs = append(seqs, int64(s.SequenceNum))
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE agent_seen s SET last_seen = GREATEST(s.last_seen, v.t),
		sequence_num = CASE WHEN s.last_seen IS NULL OR v.t > s.last_seen THEN v.n ELSE s.sequence_num END
		FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS v(id, t, n) WHERE s.id = v.id`, keys, times, seqs)
	return err
}

// lockMigrations takes a session advisory lock (one per schema) on conn.
func lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	const lockKey = `hashtext('steward.migrate.' || current_schema())`
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`); err != nil {
		return nil, err
	}
	return func() {
		// Unlock even when ctx has ended; should that fail, drop the
		// session, and with it the lock.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock(`+lockKey+`)`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}
