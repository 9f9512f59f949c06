package sqlstore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/postgres/pgtest"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/store/sqlstore"
)

// Processes (or replicas) starting together on a new database: each
// migration applies once, every Open succeeds, and opening again is a no-op.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "new.db")
		concurrentOpen(t, func(ctx context.Context) (*sqlstore.DB, error) {
			db, err := sqlite.Open(ctx, path)
			if err != nil {
				return nil, err
			}
			return db.DB, nil
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		concurrentOpen(t, func(ctx context.Context) (*sqlstore.DB, error) {
			db, err := postgres.Open(ctx, dsn)
			if err != nil {
				return nil, err
			}
			return db.DB, nil
		})
	})
}

func concurrentOpen(t *testing.T, open func(context.Context) (*sqlstore.DB, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 5
	dbs := make([]*sqlstore.DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dbs[i], errs[i] = open(ctx)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	want := len(sqlstore.Migrations(dbs[0].Dialect()))
	var rows int
	if err := dbs[0].SQL().QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != want {
		t.Fatalf("%d migration rows (%v), want %d", rows, err, want)
	}
	db, err := open(ctx)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != want {
		t.Fatalf("reopened at version %d (%v), want %d", v, err, want)
	}
	db.Close()
}
