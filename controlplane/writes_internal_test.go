package controlplane

import (
	"context"
	"sync"
	"testing"

	"github.com/stewardhq/steward"
)

// slowStore times out every transaction of more than max agents, as a
// database under load does for batches too large to commit in time.
type slowStore struct {
	steward.Store
	max     int
	mu      sync.Mutex
	written map[steward.InstanceUID]bool
}

func (s *slowStore) PutAgents(_ context.Context, as []*steward.Agent) error {
	if len(as) > s.max {
		return context.DeadlineExceeded
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range as {
		s.written[a.ID] = true
	}
	return nil
}

// A batch that fails is retried smaller, so a database that cannot commit
// maxBatch rows in time still gets every agent; retried at the same size,
// as before, nothing was ever written (found with 100,000 agents over
// seven replicas on PostgreSQL).
func TestGroupCommitShrinksAFailingBatch(t *testing.T) {
	st := &slowStore{max: 300, written: map[steward.InstanceUID]bool{}}
	w := newAgentWrites(st, 0, 1<<20, nil)
	ctx := context.Background()
	const n = 1000
	for range n {
		if _, err := w.put(ctx, &steward.Agent{ID: steward.NewInstanceUID()}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20 && len(st.written) < n; i++ {
		_ = w.flushNow(ctx)
	}
	if len(st.written) != n {
		t.Fatalf("%d of %d agents written after 20 flushes", len(st.written), n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) != 0 || len(w.dirty) != 0 {
		t.Fatalf("after every agent was written: %d pending, %d dirty", len(w.pending), len(w.dirty))
	}
}
