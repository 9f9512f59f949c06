package postgres_test

import (
	"context"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/postgres/pgtest"
	"github.com/stewardhq/steward/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) steward.Store { return pgtest.Open(t) })
}

func BenchmarkTouchAgents(b *testing.B)   { storetest.BenchmarkTouchAgents(b, pgtest.Open(b)) }
func BenchmarkPutAgent(b *testing.B)      { storetest.BenchmarkPutAgent(b, pgtest.Open(b)) }
func BenchmarkContribAgents(b *testing.B) { storetest.BenchmarkContribAgents(b, pgtest.Open(b)) }
func BenchmarkAppendEvents(b *testing.B)  { storetest.BenchmarkAppendEvents(b, pgtest.Open(b)) }
func BenchmarkPutAgentParallel(b *testing.B) {
	storetest.BenchmarkPutAgentParallel(b, pgtest.Open(b))
}

func TestBlobStore(t *testing.T) {
	storetest.TestBlobStore(t, pgtest.Open(t))
}

func BenchmarkAgentsSelector(b *testing.B) { storetest.BenchmarkAgentsSelector(b, pgtest.Open(b)) }
func BenchmarkSummary(b *testing.B)        { storetest.BenchmarkSummary(b, pgtest.Open(b)) }

// BenchmarkAgentsQuery runs VACUUM ANALYZE after the load, as autovacuum
// would after 100,000 inserts.
func BenchmarkAgentsQuery(b *testing.B) {
	db := pgtest.Open(b)
	storetest.BenchmarkAgentsQuery(b, db, func(ctx context.Context) error {
		_, err := db.SQL().ExecContext(ctx, "VACUUM ANALYZE")
		return err
	})
}
