package controlplane_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// hub is an in-memory Broadcaster shared by replicas: every notice goes to
// every listener, as PostgreSQL's NOTIFY does; it counts notices by kind.
type hub struct {
	mu        sync.Mutex
	listeners []func(steward.Notice)
	sent      map[string]int
}

func (h *hub) Broadcast(ctx context.Context, n steward.Notice) error {
	h.mu.Lock()
	h.sent[n.Kind]++
	ls := append([]func(steward.Notice){}, h.listeners...)
	h.mu.Unlock()
	for _, fn := range ls {
		fn(n)
	}
	return nil
}

func (h *hub) Listen(ctx context.Context, fn func(steward.Notice)) error {
	h.mu.Lock()
	h.listeners = append(h.listeners, fn)
	h.mu.Unlock()
	fn(steward.Notice{Kind: steward.NoticeDesired})
	<-ctx.Done()
	return ctx.Err()
}

func (h *hub) count(kinds ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, k := range kinds {
		n += h.sent[k]
	}
	return n
}

// TestEventsReachOtherReplicasInBatches: every event of an agent
// connected to one replica reaches the other replica's live subscribers,
// and a burst of events travels in a few notices, not one per event (one
// database round trip per event starved a 100,000-agent connect storm of
// database connections).
func TestEventsReachOtherReplicasInBatches(t *testing.T) {
	ctx := context.Background()
	h := &hub{sent: map[string]int{}}
	open := func(name string) *controlplane.Service {
		st, err := sqlite.Open(ctx, ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Broadcaster: h, Replica: name, FlushInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(); st.Close() })
		return svc
	}
	r1, r2 := open("r1"), open("r2")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	local, remote := r1.Bus().Subscribe(sctx), r2.Bus().Subscribe(sctx)

	const n = 200
	uids := map[steward.InstanceUID]bool{}
	var ids []steward.InstanceUID
	for range n {
		uid := steward.NewInstanceUID()
		uids[uid] = true
		ids = append(ids, uid)
	}
	// Every event published on r1 about these agents arrives on r2, in order.
	var mu sync.Mutex
	var want, got []*steward.Event
	collect := func(ch <-chan *steward.Event, into *[]*steward.Event) {
		for e := range ch {
			if uids[e.AgentID] {
				mu.Lock()
				*into = append(*into, e)
				mu.Unlock()
			}
		}
	}
	go collect(local, &want)
	go collect(remote, &got)
	f := &fixture{t: t, ctx: ctx, svc: r1}
	for i, uid := range ids {
		f.send(f.connect(server.WebSocket), fullReport(uid, uint64(i), "prod"))
	}
	eventually(t, "r1's events of every agent, all on r2", func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[steward.InstanceUID]bool{}
		for _, e := range want {
			seen[e.AgentID] = true
		}
		return len(seen) == n && len(got) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if got[i].AgentID != want[i].AgentID || got[i].Type != want[i].Type {
			t.Fatalf("event %d on r2: %s %s, want %s %s", i, got[i].AgentID, got[i].Type, want[i].AgentID, want[i].Type)
		}
	}
	if notices := h.count(steward.NoticeEvent, steward.NoticeEvents); notices*5 > len(want) {
		t.Fatalf("%d events forwarded in %d notices, want batches (at most one notice per 5 events)", len(want), notices)
	}
}
