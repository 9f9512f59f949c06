// Package pgtest gives tests an isolated PostgreSQL schema. The server comes
// from the environment variable STEWARD_TEST_POSTGRES_DSN, for example
//
//	STEWARD_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./store/...
//
// Without it the tests that need PostgreSQL are skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stewardhq/steward/internal/testenv"
	"github.com/stewardhq/steward/store/postgres"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "STEWARD_TEST_POSTGRES_DSN"

// DSN creates a fresh schema steward_test_<random> and returns a DSN whose
// search_path is that schema; the schema is dropped, with everything in it,
// when t ends. It skips t when EnvDSN is unset and fails it when the server
// cannot be reached.
func DSN(t testing.TB) string {
	t.Helper()
	base := testenv.Getenv(t, EnvDSN, "PostgreSQL tests need a server, e.g. "+EnvDSN+"='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "steward_test_" + hex.EncodeToString(rnd[:])
	exec(t, base, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { exec(t, base, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })
	return withSearchPath(t, base, schema)
}

// Open opens a postgres.DB on a fresh schema (see DSN), closed when t ends.
func Open(t testing.TB) *postgres.DB {
	t.Helper()
	dsn := DSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func withSearchPath(t testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("pgtest: %s is not a valid URL", EnvDSN)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}
