package postgres_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/postgres/pgtest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Replicas are separate pools: version assignment must still be race-free.
func TestPutConfigAcrossReplicas(t *testing.T) {
	ctx := testCtx(t)
	dsn := pgtest.DSN(t)
	var dbs [3]*postgres.DB
	for i := range dbs {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	const writers, per = 9, 4
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions []int
	)
	errs := make(chan error, writers*per)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				c, err := dbs[w%len(dbs)].PutConfig(ctx, &steward.Config{Name: "fleet", Files: steward.ConfigMap{"": {Body: []byte(fmt.Sprintf("w%d i%d", w, i))}}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				versions = append(versions, c.Version)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PutConfig: %v", err)
	}
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v are not 1..%d", versions, writers*per)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	_, err := postgres.Open(ctx, "postgres://user:secret@127.0.0.1:5432/db?sslmode=bogus")
	if steward.ErrorCode(err) != steward.EINVALID || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open(bad dsn): %v", err)
	}
	// Nothing listens on port 1: connection refused.
	_, err = postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	if steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Fatalf("Open(refused): %v (code %q)", err, steward.ErrorCode(err))
	}
}

func TestCorruptRowsGiveErrorsNamingThem(t *testing.T) {
	ctx := testCtx(t)
	db := pgtest.Open(t)
	bad := steward.NewInstanceUID()
	if err := db.PutAgent(ctx, &steward.Agent{ID: bad}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE agents SET doc = '{"description": 17}' WHERE id = $1`, bad.String()); err != nil {
		t.Fatal(err)
	}
	_, err := db.Agent(ctx, bad)
	if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("Agent(corrupt): %v", err)
	}
	_, _, err = db.Agents(ctx, steward.AgentFilter{Selector: "x"})
	if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("Agents(corrupt): %v", err)
	}
	if _, err := db.PutConfig(ctx, &steward.Config{Name: "c", Files: steward.ConfigMap{"": {Body: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE config_bodies SET files = '[1]' WHERE hash = (SELECT hash FROM configs WHERE name = 'c')`); err != nil {
		t.Fatal(err)
	}
	_, err = db.ConfigHistory(ctx, "c")
	if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("ConfigHistory(corrupt): %v", err)
	}
}
