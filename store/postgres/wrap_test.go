package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/internal/testenv"
)

// A backend terminated under a connection (server restart, failover) must
// surface as EUNAVAILABLE, for the statement that notices and for the ones
// after it.
func TestTerminatedBackendIsUnavailable(t *testing.T) {
	dsn := testenv.Getenv(t, "STEWARD_TEST_POSTGRES_DSN", "set it (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	victim, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(ctx)
	killer, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	var killed bool
	if err := killer.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, victim.PgConn().PID()).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate: %v %v", killed, err)
	}
	for i := 0; i < 2; i++ {
		_, err = victim.Exec(ctx, `SELECT 1`)
		if err == nil {
			t.Fatalf("statement %d on a terminated backend succeeded", i)
		}
		if code := code(err); code != steward.EUNAVAILABLE {
			t.Fatalf("statement %d: %v mapped to %q, want %q", i, err, code, steward.EUNAVAILABLE)
		}
	}
}
