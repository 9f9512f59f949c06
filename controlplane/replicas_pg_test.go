package controlplane_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/postgres/pgtest"
)

// heldPostgres holds agent writes while release is open (gatedStore for
// PostgreSQL).
type heldPostgres struct {
	*postgres.DB
	mu      sync.Mutex
	release chan struct{}
}

func (s *heldPostgres) hold() { s.mu.Lock(); s.release = make(chan struct{}); s.mu.Unlock() }
func (s *heldPostgres) open() { s.mu.Lock(); close(s.release); s.release = nil; s.mu.Unlock() }

func (s *heldPostgres) PutAgents(ctx context.Context, as []*steward.Agent) error {
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.DB.PutAgents(ctx, as)
}

func (s *heldPostgres) PutAgent(ctx context.Context, a *steward.Agent) error {
	return s.PutAgents(ctx, []*steward.Agent{a})
}

// The other replicas' unwritten changes reach a replica's summary over
// PostgreSQL's NOTIFY, as over the in-memory hub
// (TestSummaryCountsOtherReplicasUnwrittenChanges).
func TestSummaryCountsOtherPostgresReplicasUnwrittenChanges(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	open := func(name string, wrap func(*postgres.DB) steward.Store) (*controlplane.Service, *postgres.DB) {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := controlplane.New(ctx, controlplane.Config{Store: wrap(db), Broadcaster: db, Replica: name,
			WriteInterval: 20 * time.Millisecond, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(); db.Close() })
		return svc, db
	}
	held := &heldPostgres{}
	r1, _ := open("r1", func(db *postgres.DB) steward.Store { held.DB = db; return held })
	r2, db2 := open("r2", func(db *postgres.DB) steward.Store { return db })
	testSummaryAcrossReplicas(t, r1, r2, db2, held.hold, held.open)
}
