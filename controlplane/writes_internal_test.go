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
		if _, err := w.put(ctx, &steward.Agent{ID: steward.NewInstanceUID()}, false); err != nil {
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

// methodStore records how each agent was last written (whole or state),
// failing every write while down.
type methodStore struct {
	steward.Store
	mu   sync.Mutex
	down bool
	how  map[steward.InstanceUID]string
}

func (s *methodStore) record(as []*steward.Agent, how string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return steward.Errorf(steward.EUNAVAILABLE, "down")
	}
	for _, a := range as {
		s.how[a.ID] = how
	}
	return nil
}

func (s *methodStore) PutAgents(_ context.Context, as []*steward.Agent) error {
	return s.record(as, "whole")
}

func (s *methodStore) PutAgentStates(_ context.Context, as []*steward.Agent) error {
	return s.record(as, "state")
}

// An agent is written by a narrow update only when every change since it
// was last stored was state only: a whole change not yet written (or whose
// write failed) makes the next write whole too.
func TestGroupCommitWritesStateOnlyChangesNarrowly(t *testing.T) {
	ctx := context.Background()
	st := &methodStore{how: map[steward.InstanceUID]string{}}
	w := newAgentWrites(st, 0, 1<<20, nil)
	put := func(id steward.InstanceUID, stateOnly bool) {
		t.Helper()
		if _, err := w.put(ctx, &steward.Agent{ID: id}, stateOnly); err != nil {
			t.Fatal(err)
		}
	}
	stateOnly, wholeThenState, failedWhole := steward.NewInstanceUID(), steward.NewInstanceUID(), steward.NewInstanceUID()
	put(stateOnly, true)
	put(stateOnly, true)
	put(wholeThenState, false)
	put(wholeThenState, true)
	put(failedWhole, false)
	st.down = true
	if err := w.flushNow(ctx); err == nil {
		t.Fatal("flush did not fail")
	}
	st.down = false
	put(failedWhole, true) // after a failed whole write: whole still
	if err := w.flushNow(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[steward.InstanceUID]string{stateOnly: "state", wholeThenState: "whole", failedWhole: "whole"}
	for id, how := range want {
		if st.how[id] != how {
			t.Errorf("agent written %q, want %q", st.how[id], how)
		}
	}
	// Once stored, a state-only change is narrow again.
	put(failedWhole, true)
	if err := w.flushNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st.how[failedWhole] != "state" {
		t.Errorf("state-only change after the whole write written %q", st.how[failedWhole])
	}
}
