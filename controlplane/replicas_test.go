package controlplane_test

import (
	"context"
	"reflect"
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

// onHub starts a replica with a store of its own on h.
func onHub(t *testing.T, h *hub, name string) *controlplane.Service {
	ctx := context.Background()
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
	r1, r2 := onHub(t, h, "r1"), onHub(t, h, "r2")
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
	// Both have subscribers now: each says so within a tick.
	eventually(t, "both replicas to say they are watching", func() bool { return h.count(steward.NoticeWatching) >= 2 })
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

// Events are forwarded only while another replica has live subscribers:
// a fleet-wide change made every replica decode every other replica's
// events whether anyone watched or not.
func TestEventsForwardedOnlyWhileWatched(t *testing.T) {
	ctx := context.Background()
	h := &hub{sent: map[string]int{}}
	r1, r2 := onHub(t, h, "r1"), onHub(t, h, "r2")
	f := &fixture{t: t, ctx: ctx, svc: r1}
	connect := func() steward.InstanceUID {
		uid := steward.NewInstanceUID()
		f.send(f.connect(server.WebSocket), fullReport(uid, 1, "prod"))
		return uid
	}
	for range 20 {
		connect()
	}
	time.Sleep(300 * time.Millisecond) // three forwarding ticks
	if n := h.count(steward.NoticeEvent, steward.NoticeEvents, steward.NoticeWatching); n != 0 {
		t.Fatalf("%d event or watching notices with nobody watching", n)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	remote := r2.Bus().Subscribe(sctx)
	eventually(t, "r2 to say it is watching", func() bool { return h.count(steward.NoticeWatching) == 1 })
	uid := connect()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-remote:
			if e.AgentID == uid && e.Type == steward.EventAgentConnected {
				return
			}
		case <-timeout:
			t.Fatal("r2's subscriber missed r1's event")
		}
	}
}

// A replica's summary counts another replica's unwritten changes at once:
// each replica publishes the summary state of the agents its group commit
// has not written (NoticePending) and how far it has written
// (NoticeWritten). Before, r2 counted r1's changes only once r1 wrote them
// (here: never while r1's writes are held).
func TestSummaryCountsOtherReplicasUnwrittenChanges(t *testing.T) {
	ctx := context.Background()
	h := &hub{sent: map[string]int{}}
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gs := &gatedStore{DB: st}
	open := func(name string, store steward.Store) *controlplane.Service {
		svc, err := controlplane.New(ctx, controlplane.Config{Store: store, Broadcaster: h, Replica: name, WriteInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		return svc
	}
	testSummaryAcrossReplicas(t, open("r1", gs), open("r2", st), st, gs.hold, gs.open)
	if h.count(steward.NoticeWritten) == 0 {
		t.Fatal("no NoticeWritten sent")
	}
}

// testSummaryAcrossReplicas changes agents on r1 while its writes are
// held (hold, open) and checks that r2's summary equals r1's, before and
// after they are written to st.
func testSummaryAcrossReplicas(t *testing.T, r1, r2 *controlplane.Service, st steward.Store, hold, open func()) {
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, svc: r1}
	stored := []*fleetAgent{f.join("prod", nil), f.join("prod", nil), f.join("prod", nil)}
	eventually(t, "r1's agents stored", func() bool { return r1.PendingWrites() == 0 })

	same := func() bool {
		s1, err1 := r1.Summary(ctx)
		s2, err2 := r2.Summary(ctx)
		return err1 == nil && err2 == nil && reflect.DeepEqual(s1, s2)
	}
	hold()
	f.report(stored[0], []byte{7}, applied) // runs a config Steward never offered
	stored[1].conn.Close()                  // offline
	fresh := f.join("dev", nil)             // not stored at all
	eventually(t, "the disconnect handled", func() bool {
		a, err := r1.Agent(ctx, stored[1].id)
		return err == nil && !a.Online
	})
	if _, err := st.Agent(ctx, fresh.id); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("fresh agent stored (%v): the writes were not held", err)
	}
	// r1 counts its own unwritten changes: r2 must count the same.
	eventually(t, "r2's summary equal to r1's with r1's writes held", same)
	if sum, _ := r2.Summary(ctx); sum.Total != 4 || sum.Online != 3 || sum.BySync[string(steward.SyncDrifted)] != 1 ||
		sum.BySync[string(steward.SyncOffline)] != 1 || sum.ByConfigStatus[string(steward.RemoteConfigApplied)] != 1 {
		t.Fatalf("r2's summary %+v: want 4 agents, 3 online, 1 drifted (APPLIED), 1 offline", sum)
	}

	open()
	eventually(t, "r1's writes stored", func() bool { return r1.PendingWrites() == 0 })
	eventually(t, "r2's summary equal to r1's once written", same)
}

// An agent connected here that the store shows offline (an offline mark
// of its earlier connection to another replica, written after this
// replica stored it online) is marked online here again by the periodic
// pass; one another replica holds and heard from later is left to it.
func TestConnectedAgentStoredOfflineIsMarkedOnlineAgain(t *testing.T) {
	f, st := newResyncingFixture(t, "r2")
	ctx := f.ctx
	lost, elsewhere := steward.NewInstanceUID(), steward.NewInstanceUID()
	for _, uid := range []steward.InstanceUID{lost, elsewhere} {
		f.send(f.connect(server.WebSocket), fullReport(uid, 1, "prod"))
	}
	stored := func(uid steward.InstanceUID) *steward.Agent {
		a, err := st.Agent(ctx, uid)
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			return &steward.Agent{} // not written yet
		} else if err != nil {
			t.Fatal(err)
		}
		return a
	}
	eventually(t, "both agents stored online here", func() bool {
		a, b := stored(lost), stored(elsewhere)
		return a.Online && b.Online && a.Replica == "r2" && b.Replica == "r2"
	})
	// What replica r1 writes late: lost marked offline by r1; elsewhere
	// held by r1, which heard from it after this replica did.
	a, b := stored(lost), stored(elsewhere)
	a.Online, a.Replica, a.DisconnectedAt = false, "r1", time.Now().UTC()
	b.Replica, b.LastSeen = "r1", time.Now().Add(time.Hour).UTC()
	if err := st.PutAgentStates(ctx, []*steward.Agent{a, b}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lost agent online here again", func() bool {
		a := stored(lost)
		return a.Online && a.Replica == "r2"
	})
	time.Sleep(200 * time.Millisecond) // several more passes
	if b := stored(elsewhere); !b.Online || b.Replica != "r1" {
		t.Fatalf("an agent another replica heard from later was taken: online %v replica %q", b.Online, b.Replica)
	}
}
