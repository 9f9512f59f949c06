package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/storetest"
)

func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "nested", "dir", "steward.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) steward.Store { return openTemp(t) })
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) steward.Store {
		db, err := Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func BenchmarkTouchAgents(b *testing.B)    { storetest.BenchmarkTouchAgents(b, openTemp(b)) }
func BenchmarkPutAgent(b *testing.B)       { storetest.BenchmarkPutAgent(b, openTemp(b)) }
func BenchmarkPutAgentStates(b *testing.B) { storetest.BenchmarkPutAgentStates(b, openTemp(b)) }
func BenchmarkPutAgentParallel(b *testing.B) {
	storetest.BenchmarkPutAgentParallel(b, openTemp(b))
}
func BenchmarkAgentsSelector(b *testing.B) { storetest.BenchmarkAgentsSelector(b, openTemp(b)) }
func BenchmarkSummary(b *testing.B)        { storetest.BenchmarkSummary(b, openTemp(b)) }
func BenchmarkAgentsQuery(b *testing.B)    { storetest.BenchmarkAgentsQuery(b, openTemp(b), nil) }

func BenchmarkAppendEvents(b *testing.B) { storetest.BenchmarkAppendEvents(b, openTemp(b)) }
