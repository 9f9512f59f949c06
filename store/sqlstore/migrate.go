package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFiles hold one numbered sequence of schema changes. Version N is
// every NNNN_*.sql file (shared by all dialects) followed by every
// NNNN_*.<dialect>.sql file; a dialect-specific file exists only where the
// SQL differs.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the migrations of d in order (index i is version i+1),
// macros expanded. It panics when the embedded files are misnumbered, which
// a test catches.
func Migrations(d *Dialect) []string {
	m, _ := embeddedMigrations(d)
	return m
}

// embeddedMigrations returns the migrations of d and their names.
func embeddedMigrations(d *Dialect) (migrations, names []string) {
	sub, _ := fs.Sub(migrationFiles, "migrations")
	return migrationsIn(sub, d)
}

// goSteps are the parts of migrations written in Go, by migration name:
// they run after the migration's SQL, in its transaction.
var goSteps = map[string]func(ctx context.Context, db *DB, tx *sql.Tx) error{
	"config_bodies":    moveEffectiveConfigs,
	"agent_components": moveComponents,
}

func migrationsIn(fsys fs.FS, d *Dialect) ([]string, []string) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		panic(err)
	}
	var shared, own, names []string // by version - 1
	for _, e := range entries {
		name := e.Name()
		num, rest, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v < 1 || v > len(shared)+1 {
			panic(fmt.Sprintf("sqlstore: migration file %s does not continue the sequence", name))
		}
		if v > len(shared) {
			shared, own, names = append(shared, ""), append(own, ""), append(names, strings.SplitN(rest, ".", 2)[0])
		} else if n := strings.SplitN(rest, ".", 2)[0]; n != names[v-1] {
			// Two changes took the same number (a merge of two branches):
			// one version must be one change, or a database that applied
			// one of them would never get the other.
			panic(fmt.Sprintf("sqlstore: migrations %q and %q share version %d: renumber the later one", names[v-1], n, v))
		}
		b, _ := fs.ReadFile(fsys, name)
		switch path.Ext(strings.TrimSuffix(name, ".sql")) {
		case "":
			shared[v-1] += string(b)
		case "." + d.Name:
			own[v-1] += string(b)
		}
	}
	for i := range shared {
		shared[i] = expandMacros(d, shared[i]+own[i])
	}
	return shared, names
}

func expandMacros(d *Dialect, s string) string {
	for k, v := range d.Macros {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

// migrate applies, in order and each in its own transaction, every migration
// schema_migrations does not list, on one connection holding the dialect's
// migration lock (if any) so that concurrent opens apply each once. Running
// it again is a no-op.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return db.wrap(err, "migrate")
	}
	defer conn.Close()
	if db.d.LockMigrations != nil {
		unlock, err := db.d.LockMigrations(ctx, conn)
		if err != nil {
			return db.wrap(err, "migrate: lock")
		}
		defer unlock()
	}
	if _, err := conn.ExecContext(ctx, expandMacros(db.d, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at {time} NOT NULL)`)); err != nil {
		return db.wrap(err, "create schema_migrations")
	}
	migrations, names := embeddedMigrations(db.d)
	for i, m := range migrations {
		version := i + 1
		if err := db.migrateOne(ctx, conn, version, m, goSteps[names[i]]); err != nil {
			return db.wrap(err, "migration %d", version)
		}
	}
	return nil
}

func (db *DB) migrateOne(ctx context.Context, conn *sql.Conn, version int, m string, step func(context.Context, *DB, *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, db.q(`SELECT count(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m); err != nil {
		return err
	}
	if step != nil {
		if err := step(ctx, db, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`), version, db.time(db.nowT())); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the number of the last applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := db.queryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, db.wrap(err, "schema version")
	}
	return int(v.Int64), nil
}
