// Package postgres implements steward.Store on PostgreSQL with pgx, for
// deployments running several Steward replicas against one database.
//
// The schema is the one of store/sqlite: agent rows keep what the agent
// reported as a JSON document next to indexed columns (id, online, healthy,
// service name, host name, version, replica); last-seen times live in a
// narrow table of their own so heartbeat batches do not rewrite whole agent
// rows. The Agents selector is evaluated in Go over the rows the column
// filters leave. Tables are
// created unqualified, in the first schema of the connection's search_path.
//
// Migrations run at Open under a session advisory lock, so replicas starting
// together apply each migration once. PutConfig assigns versions in a
// transaction guarded by the (name, version) primary key and retries when a
// concurrent writer took the same version; transactions that fail with a
// serialization failure or deadlock are retried too.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// DB is a steward.Store backed by PostgreSQL. Create it with Open; it is safe
// for concurrent use.
type DB struct {
	pool *pgxpool.Pool
	now  func() time.Time

	// channel is the NOTIFY channel of this schema (see Broadcast).
	channel string
}

var _ steward.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as pgx accepts) and applies pending migrations. Errors: EINVALID
// for a malformed dsn, EUNAVAILABLE when the server cannot be reached,
// EINTERNAL when a migration fails (that migration is rolled back).
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The error can echo the DSN, password included: do not wrap it.
		return nil, steward.Errorf(steward.EINVALID, "postgres: invalid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(err, "connect")
	}
	db := &DB{pool: pool, now: time.Now}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, wrap(err, "connect")
	}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	var schema string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		pool.Close()
		return nil, wrap(err, "current schema")
	}
	// One channel per schema, so that deployments (and tests) sharing a
	// database in separate schemas do not hear each other.
	db.channel = "steward_" + schema
	if len(db.channel) > 63 {
		db.channel = db.channel[:63]
	}
	return db, nil
}

// Pool returns the underlying connection pool (for LISTEN/NOTIFY and the
// like). It is closed by Close.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes every connection, waiting for those in use to be released.
// Later calls fail with EUNAVAILABLE. It always returns nil.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// wrap attaches a steward code to a driver error: EUNAVAILABLE when the
// server cannot be reached, the pool is closed, the context ended or the
// server refused for lack of resources; ECONFLICT for constraint violations;
// EINTERNAL otherwise. Errors that already carry a code keep it.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *steward.Error
	if errors.As(err, &se) {
		return err
	}
	msg := "postgres: " + fmt.Sprintf(format, args...)
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, puddle.ErrClosedPool), errors.As(err, &connErr), errors.As(err, &netErr),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return record.Wrap(steward.EUNAVAILABLE, err, "%s", msg)
	case errors.As(err, &pgErr):
		class := func(c string) bool { return strings.HasPrefix(pgErr.Code, c) }
		switch {
		case class("23"): // integrity constraint violation
			return record.Wrap(steward.ECONFLICT, err, "%s", msg)
		case class("08"), class("53"), class("57"), // connection, resources, operator intervention
			pgErr.Code == "40001", pgErr.Code == "40P01":
			return record.Wrap(steward.EUNAVAILABLE, err, "%s", msg)
		}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// retryable reports whether a transaction failed only because of another
// one: a serialization failure, a deadlock, or (for version assignment) a
// unique violation.
func retryable(err error, uniqueToo bool) bool {
	switch pgCode(err) {
	case "40001", "40P01":
		return true
	case "23505":
		return uniqueToo
	}
	return false
}

const maxAttempts = 100

// tx runs fn in a transaction and commits it, running it again (after a
// short random pause) when it failed with a serialization failure or a
// deadlock, or with a unique violation when retryUnique is set.
func (db *DB) tx(ctx context.Context, retryUnique bool, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, db.pool, fn)
		if err == nil || attempt == maxAttempts || !retryable(err, retryUnique) {
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

// ts returns t at the precision PostgreSQL keeps (microseconds), in UTC, or
// nil (NULL) for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Truncate(time.Microsecond).UTC()
}

// now returns the current time at microsecond precision.
func (db *DB) nowUS() time.Time { return db.now().Truncate(time.Microsecond).UTC() }

var migrations = []string{
	// 1: initial schema.
	`CREATE TABLE agents (
		id              text COLLATE "C" PRIMARY KEY,
		doc             json NOT NULL,
		online          boolean NOT NULL DEFAULT false,
		healthy         boolean NOT NULL DEFAULT false,
		service_name    text NOT NULL DEFAULT '',
		host_name       text NOT NULL DEFAULT '',
		service_version text NOT NULL DEFAULT '',
		search          text NOT NULL DEFAULT '',
		replica         text NOT NULL DEFAULT '',
		disconnected_at timestamptz,
		created_at      timestamptz NOT NULL,
		updated_at      timestamptz NOT NULL
	);
	CREATE INDEX agents_online ON agents(online, replica);
	CREATE INDEX agents_service_name ON agents(service_name);
	CREATE INDEX agents_host_name ON agents(host_name);
	-- Heartbeats only touch this narrow table, not the wide agent rows.
	CREATE TABLE agent_seen (
		id        text COLLATE "C" PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
		last_seen timestamptz
	);

	CREATE TABLE configs (
		name       text COLLATE "C" NOT NULL,
		version    integer NOT NULL CHECK (version > 0),
		hash       bytea NOT NULL,
		files      json NOT NULL,
		comment    text NOT NULL DEFAULT '',
		author     text NOT NULL DEFAULT '',
		created_at timestamptz NOT NULL,
		PRIMARY KEY (name, version)
	);

	CREATE TABLE assignments (
		name        text COLLATE "C" PRIMARY KEY,
		config_name text NOT NULL,
		version     integer NOT NULL DEFAULT 0,
		selector    text NOT NULL DEFAULT '',
		agent_id    text,
		priority    integer NOT NULL DEFAULT 0,
		created_at  timestamptz NOT NULL,
		updated_at  timestamptz NOT NULL
	);
	CREATE INDEX assignments_config ON assignments(config_name);

	CREATE TABLE events (
		id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		type     text NOT NULL,
		agent_id text NOT NULL,
		message  text NOT NULL DEFAULT '',
		details  json,
		time     timestamptz NOT NULL
	);
	CREATE INDEX events_agent_time ON events(agent_id, time);
	CREATE INDEX events_time ON events(time);`,
	// 2: staged rollouts (a JSON document per rollout, compare-and-swap on revision).
	`CREATE TABLE rollouts (
		name       TEXT PRIMARY KEY,
		assignment TEXT NOT NULL,
		revision   INTEGER NOT NULL,
		doc        JSONB NOT NULL,
		updated_at TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX rollouts_assignment ON rollouts(assignment);`,
	// 3: replica leases (see steward.ReplicaStore).
	`CREATE TABLE replicas (
		name    TEXT PRIMARY KEY,
		seen_at TIMESTAMPTZ NOT NULL
	);`,
	// 4: packages (metadata), package assignments with one row per offered
	// package (the foreign key keeps an assigned version from being
	// deleted), the signing key every replica shares, and package content
	// in 1 MiB chunks (see BlobStore) so replicas share it too.
	`CREATE TABLE packages (
		name       TEXT NOT NULL,
		version    TEXT NOT NULL,
		hash       BYTEA NOT NULL,
		doc        JSONB NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		PRIMARY KEY (name, version)
	);
	CREATE INDEX packages_hash ON packages(hash);
	CREATE TABLE package_assignments (
		name       TEXT PRIMARY KEY,
		doc        JSONB NOT NULL,
		created_at TIMESTAMPTZ NOT NULL
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
		private_key BYTEA NOT NULL
	);
	CREATE TABLE package_blobs (
		hash BYTEA PRIMARY KEY,
		size BIGINT NOT NULL
	);
	CREATE TABLE package_blob_chunks (
		hash BYTEA NOT NULL REFERENCES package_blobs(hash) ON DELETE CASCADE,
		seq  INTEGER NOT NULL,
		data BYTEA NOT NULL,
		PRIMARY KEY (hash, seq)
	);`,
	// 5: agent credentials, API tokens, connection settings and the audit
	// log (see credentials.go); records are JSON documents next to the
	// columns they are looked up by.
	`CREATE TABLE api_tokens (
		id         TEXT PRIMARY KEY,
		hash       BYTEA NOT NULL UNIQUE,
		created_at TIMESTAMPTZ NOT NULL,
		doc        JSONB NOT NULL
	);
	CREATE TABLE enrollment_tokens (
		id         TEXT PRIMARY KEY,
		hash       BYTEA NOT NULL UNIQUE,
		created_at TIMESTAMPTZ NOT NULL,
		doc        JSONB NOT NULL
	);
	CREATE TABLE agent_certificates (
		serial     TEXT PRIMARY KEY,
		agent_id   TEXT NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		doc        JSONB NOT NULL
	);
	CREATE INDEX agent_certificates_agent ON agent_certificates(agent_id, created_at);
	CREATE TABLE connection_settings (
		name TEXT PRIMARY KEY,
		doc  JSONB NOT NULL
	);
	CREATE TABLE secrets (
		name  TEXT PRIMARY KEY,
		value BYTEA NOT NULL
	);
	CREATE TABLE audit_log (
		id      BIGSERIAL PRIMARY KEY,
		time    TIMESTAMPTZ NOT NULL,
		actor   TEXT NOT NULL,
		action  TEXT NOT NULL,
		target  TEXT NOT NULL,
		details JSONB
	);
	CREATE INDEX audit_log_time ON audit_log(time);`,
	// 6: the reported remote config status as a column, for Summary.
	`ALTER TABLE agents ADD COLUMN config_status TEXT NOT NULL DEFAULT 'UNSET';
	UPDATE agents SET config_status = COALESCE(doc->'remote_config_status'->>'status', 'UNSET');`,
	// 7: browser sessions of the REST API and UI (sessions.go).
	`CREATE TABLE sessions (
		hash       BYTEA PRIMARY KEY,
		name       TEXT NOT NULL,
		csrf       TEXT NOT NULL,
		epoch      TEXT NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		expires_at TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX sessions_expires ON sessions(expires_at);`,
}

// migrate applies, in order and each in its own transaction, every migration
// schema_migrations does not list, holding an advisory lock (one per schema)
// so that concurrent Opens wait for each other. Running it again is a no-op.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return wrap(err, "migrate")
	}
	defer conn.Release()
	const lockKey = `hashtext('steward.migrate.' || current_schema())`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`); err != nil {
		return wrap(err, "migrate: lock")
	}
	defer func() {
		// Unlock even when ctx has ended; a lost connection releases it anyway.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(`+lockKey+`)`); err != nil {
			conn.Conn().Close(uctx) // drop the session, and with it the lock
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL)`); err != nil {
		return wrap(err, "migrate")
	}
	for i, m := range migrations {
		version := i + 1
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES ($1, now())`, version)
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
	var v *int
	if err := db.pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, wrap(err, "schema version")
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
