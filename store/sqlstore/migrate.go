package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"path"
	"sort"
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
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		panic(err)
	}
	type part struct {
		version int
		shared  bool
		name    string
	}
	var parts []part
	for _, e := range entries {
		name := e.Name()
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil || v < 1 {
			panic(fmt.Sprintf("sqlstore: migration file %s has no version number", name))
		}
		base := strings.TrimSuffix(name, ".sql")
		dialect := path.Ext(base)
		if dialect != "" && dialect != "."+d.Name {
			continue
		}
		parts = append(parts, part{v, dialect == "", name})
	}
	sort.SliceStable(parts, func(i, j int) bool {
		if parts[i].version != parts[j].version {
			return parts[i].version < parts[j].version
		}
		return parts[i].shared && !parts[j].shared
	})
	var out []string
	for _, p := range parts {
		b, err := migrationFiles.ReadFile("migrations/" + p.name)
		if err != nil {
			panic(err)
		}
		text := expandMacros(d, string(b))
		switch {
		case p.version == len(out):
			out[p.version-1] += "\n" + text
		case p.version == len(out)+1:
			out = append(out, text)
		default:
			panic(fmt.Sprintf("sqlstore: migration %s leaves a gap after version %d", p.name, len(out)))
		}
	}
	return out
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
	for i, m := range Migrations(db.d) {
		version := i + 1
		if err := db.migrateOne(ctx, conn, version, m); err != nil {
			return db.wrap(err, "migration %d", version)
		}
	}
	return nil
}

func (db *DB) migrateOne(ctx context.Context, conn *sql.Conn, version int, m string) error {
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
