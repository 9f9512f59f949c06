package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/sqlstore"
)

func TestOpenReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b", "steward.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	id := steward.NewInstanceUID()
	if err := db.PutAgent(ctx, &steward.Agent{ID: id, Labels: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := db.read.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
	var fk int
	if err := db.write.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys %d (%v), want 1", fk, err)
	}
	var ckpt int
	if err := db.write.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&ckpt); err != nil || ckpt != 8000 {
		t.Fatalf("wal_autocheckpoint %d (%v), want 8000", ckpt, err)
	}
	var busy int
	if err := db.read.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy < 1000 {
		t.Fatalf("busy_timeout %d (%v)", busy, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ { // migrations are idempotent
		db, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		v, err := db.SchemaVersion(ctx)
		if err != nil || v != len(sqlstore.Migrations(Dialect)) {
			t.Fatalf("schema version %d (%v), want %d", v, err, len(sqlstore.Migrations(Dialect)))
		}
		var n int
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(sqlstore.Migrations(Dialect)) {
			t.Fatalf("%d migration rows (%v)", n, err)
		}
		a, err := db.Agent(ctx, id)
		if err != nil || a.Labels["k"] != "v" {
			t.Fatalf("agent after reopen: %+v, %v", a, err)
		}
		db.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, "")
	if steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("Open(\"\"): %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A parent that is a file: the directory cannot be created.
	_, err = Open(ctx, filepath.Join(file, "steward.db"))
	if steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Fatalf("Open(under a file): %v (code %q)", err, steward.ErrorCode(err))
	}
	// Not a database.
	notDB := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 512)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = Open(ctx, notDB); err == nil {
		t.Fatalf("Open(garbage) succeeded")
	}
}

func TestCorruptRowsGiveErrorsNamingThem(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	good, bad := steward.NewInstanceUID(), steward.NewInstanceUID()
	for _, id := range []steward.InstanceUID{good, bad} {
		if err := db.PutAgent(ctx, &steward.Agent{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE agents SET doc = '{"description": 17' WHERE id = ?`, bad.String()); err != nil {
		t.Fatal(err)
	}
	_, err := db.Agent(ctx, bad)
	if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("Agent(corrupt): %v", err)
	}
	if _, err := db.Agent(ctx, good); err != nil {
		t.Fatalf("Agent(good): %v", err)
	}
	_, _, err = db.Agents(ctx, steward.AgentFilter{})
	if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("Agents with a corrupt row: %v", err)
	}
	// An attribute value with an unknown type tag.
	if _, err := db.write.ExecContext(ctx, `UPDATE agents SET doc = '{"description":{"identifying":[{"k":"x","v":{"q":1}}]}}' WHERE id = ?`, bad.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Agent(ctx, bad); steward.ErrorCode(err) != steward.EINTERNAL {
		t.Fatalf("Agent(unknown value type): %v", err)
	}

	if _, err := db.PutConfig(ctx, &steward.Config{Name: "c", Files: steward.ConfigMap{"": {Body: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE config_bodies SET files = 'nope' WHERE hash = (SELECT hash FROM configs WHERE name = 'c')`); err != nil {
		t.Fatal(err)
	}
	_, err = db.Config(ctx, "c", 0)
	if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("Config(corrupt): %v", err)
	}
	_, err = db.Configs(ctx)
	if steward.ErrorCode(err) != steward.EINTERNAL {
		t.Fatalf("Configs(corrupt): %v", err)
	}

	if err := db.AppendEvents(ctx, &steward.Event{Type: "t", AgentID: good, Details: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE events SET details = '{'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Events(ctx, steward.EventFilter{}); steward.ErrorCode(err) != steward.EINTERNAL {
		t.Fatalf("Events(corrupt): %v", err)
	}
}

// Two DB values on one file are two processes' worth of writers: WAL and
// busy_timeout must let both write without SQLITE_BUSY errors.
func TestTwoHandlesOnOneFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			db := dbs[w%2]
			for i := 0; i < 20; i++ {
				if err := db.PutAgent(ctx, &steward.Agent{ID: steward.NewInstanceUID()}); err != nil {
					errs <- err
					return
				}
				if _, err := db.PutConfig(ctx, &steward.Config{Name: "shared", Files: steward.ConfigMap{"": {Body: []byte(fmt.Sprintf("%d-%d", w, i))}}}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	_, total, err := dbs[1].Agents(ctx, steward.AgentFilter{})
	if err != nil || total != 80 {
		t.Fatalf("total %d (%v), want 80", total, err)
	}
	hist, err := dbs[0].ConfigHistory(ctx, "shared")
	if err != nil || len(hist) != 80 || hist[0].Version != 80 {
		t.Fatalf("history: %d versions (%v)", len(hist), err)
	}
}
