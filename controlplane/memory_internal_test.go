package controlplane

import (
	"context"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stewardhq/steward"
)

// discardStore accepts agent writes and keeps nothing.
type discardStore struct{ steward.Store }

func (discardStore) PutAgents(context.Context, []*steward.Agent) error { return nil }

// After a burst of reports (a connect storm) is written, the group commit
// keeps nothing of it: its maps, which never shrink by themselves, are made
// anew once they are empty. (20,000 pending agents left about 1 MiB of map
// behind, held for as long as the server ran.)
func TestGroupCommitKeepsNothingAfterABurst(t *testing.T) {
	w := newAgentWrites(discardStore{}, 0, 1<<20, nil)
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for range 20000 {
		if _, err := w.put(ctx, &steward.Agent{ID: steward.NewInstanceUID()}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flushNow(ctx); err != nil {
		t.Fatal(err)
	}
	after := heap()
	if len(w.pending) != 0 {
		t.Fatalf("%d agents still pending", len(w.pending))
	}
	if after > before && after-before > 256<<10 {
		t.Errorf("the flushed group commit still holds %d KiB", (after-before)>>10)
	}
	runtime.KeepAlive(w)
}

// A session is kept per connected agent: it must fit the 240-byte size
// class (docs/performance.md, "Idle memory"). What few agents need goes in
// sessionExtra; a field added here costs every connected agent.
func TestSessionFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 240 {
		t.Errorf("session is %d bytes, more than the 240-byte size class", n)
	}
}
