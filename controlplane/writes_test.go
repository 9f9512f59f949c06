package controlplane_test

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// countingStore counts the agent rows written.
type countingStore struct {
	steward.Store
	mu      sync.Mutex
	written map[steward.InstanceUID]int
}

func (s *countingStore) PutAgents(ctx context.Context, as []*steward.Agent) error {
	s.mu.Lock()
	for _, a := range as {
		s.written[a.ID]++
	}
	s.mu.Unlock()
	return s.Store.PutAgents(ctx, as)
}

func (s *countingStore) PutAgent(ctx context.Context, a *steward.Agent) error {
	return s.PutAgents(ctx, []*steward.Agent{a})
}

func (s *countingStore) writes(id steward.InstanceUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written[id]
}

func richReport(uid steward.InstanceUID, seq uint64) *protobufs.AgentToServer {
	m := fullReport(uid, seq, "prod")
	m.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"": {Body: []byte("receivers: {otlp: {}}\n"), ContentType: "text/yaml"}}}}
	m.AvailableComponents = &protobufs.AvailableComponents{Hash: []byte{1, 2}, Components: map[string]*protobufs.ComponentDetails{
		"receivers": {SubComponentMap: map[string]*protobufs.ComponentDetails{"otlp": {}}}}}
	return m
}

const fullStateFlag = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)

// A full report equal to what is stored writes no agent row; a reconnect
// that continues the sequence (heartbeats in between included) is not
// asked for its full state.
func TestUnchangedReportsWriteNothing(t *testing.T) {
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st, written: map[steward.InstanceUID]int{}}
	f := newFixtureWith(t, cs)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, richReport(uid, 1))
	eventually(t, "the first report stored", func() bool { return cs.writes(uid) == 1 })

	for seq := uint64(2); seq <= 4; seq++ {
		if r := f.send(c, richReport(uid, seq)); r.Flags&fullStateFlag != 0 {
			t.Fatalf("an unchanged full report was asked for the full state")
		}
	}
	f.send(c, heartbeat(uid, 5))
	if err := f.svc.Close(); err != nil { // flushes what is pending
		t.Fatal(err)
	}
	if n := cs.writes(uid); n != 1 { // the offline mark at Close is one UPDATE of all (MarkOffline)
		t.Fatalf("%d agent writes, want 1: unchanged reports wrote the row", n)
	}
	a, err := st.Agent(f.ctx, uid)
	if err != nil || a.SequenceNum != 5 || a.EffectiveConfig == nil {
		t.Fatalf("stored: %+v (%v); want sequence 5 (from the heartbeat flush) and the effective config", a, err)
	}
}

// A reconnect continuing the stored sequence, after heartbeats that only
// touched the agent, gets no ReportFullState; one with a gap does.
func TestReconnectWithStoredStateIsNotAskedForFullState(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, richReport(uid, 1))
	f.send(c, heartbeat(uid, 2))
	f.send(c, heartbeat(uid, 3))
	c.Close()
	c = f.connect(server.WebSocket)
	if r := f.send(c, richReport(uid, 4)); r.Flags&fullStateFlag != 0 {
		t.Fatalf("a reconnect continuing the sequence was asked for its full state")
	}
	eventually(t, "heartbeats flushed", func() bool {
		a, err := f.store.Agent(f.ctx, uid)
		return err == nil && a.SequenceNum == 4
	})
	c.Close()
	c = f.connect(server.WebSocket)
	if r := f.send(c, heartbeat(uid, 9)); r.Flags&fullStateFlag == 0 {
		t.Fatalf("a reconnect with a sequence gap must be asked for its full state")
	}
}

// A reconnect after a sequence gap whose report carries everything the
// agent's capabilities report (heartbeats not yet flushed when the server
// was killed leave such a gap) is not asked for its full state; one whose
// report lacks part of it is.
func TestReconnectWithCompleteReportAfterGapIsNotAskedForFullState(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, richReport(uid, 1))
	c.Close()
	c = f.connect(server.WebSocket)
	if r := f.send(c, richReport(uid, 9)); r.Flags&fullStateFlag != 0 {
		t.Fatalf("a complete report after a gap was asked for the full state")
	}
	c.Close()
	c = f.connect(server.WebSocket)
	partial := richReport(uid, 15)
	partial.Health = nil // the agent reports health
	if r := f.send(c, partial); r.Flags&fullStateFlag == 0 {
		t.Fatalf("a report without the agent's health after a gap must be asked for the full state")
	}
}

// gatedStore holds every agent write while held, as a database busy with
// a long transaction does.
type gatedStore struct {
	*sqlite.DB
	mu      sync.Mutex
	release chan struct{} // nil while writes go through
	held    atomic.Int32  // agent writes waiting for open
	// whole and states count the agents written by PutAgents and
	// PutAgentStates.
	whole, states atomic.Int64
}

func (s *gatedStore) hold() {
	s.mu.Lock()
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *gatedStore) open() {
	s.mu.Lock()
	close(s.release)
	s.release = nil
	s.mu.Unlock()
}

// gate waits while writes are held.
func (s *gatedStore) gate(ctx context.Context) error {
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	if release == nil {
		return nil
	}
	s.held.Add(1)
	defer s.held.Add(-1)
	select {
	case <-release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *gatedStore) PutAgents(ctx context.Context, as []*steward.Agent) error {
	if err := s.gate(ctx); err != nil {
		return err
	}
	s.whole.Add(int64(len(as)))
	return s.DB.PutAgents(ctx, as)
}

func (s *gatedStore) PutAgentStates(ctx context.Context, as []*steward.Agent) error {
	if err := s.gate(ctx); err != nil {
		return err
	}
	s.states.Add(int64(len(as)))
	return s.DB.PutAgentStates(ctx, as)
}

func (s *gatedStore) PutAgent(ctx context.Context, a *steward.Agent) error {
	return s.PutAgents(ctx, []*steward.Agent{a})
}

// newGatedFixture is a fixture over an in-memory SQLite store whose agent
// writes the test can hold.
func newGatedFixture(t *testing.T) (*fixture, *gatedStore) {
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{DB: st}
	return newFixtureWith(t, gs), gs
}

// waitStored waits until every agent is in the store and nothing is
// left to write: a change put while a write of the same agent is still in
// flight joins that (whole) write's pending state.
func waitStored(t *testing.T, f *fixture, gs *gatedStore, agents ...*fleetAgent) {
	t.Helper()
	eventually(t, "the agents stored", func() bool {
		for _, a := range agents {
			if _, err := gs.DB.Agent(f.ctx, a.id); err != nil {
				return false
			}
		}
		return f.svc.PendingWrites() == 0
	})
}

// The fleet summary counts changes the group commit has not written yet,
// exactly and without waiting for the write: before, it waited for the
// pending agents to be written, so a busy database held it (here: until
// its context ended).
func TestSummaryCountsUnwrittenChangesAtOnce(t *testing.T) {
	f, gs := newGatedFixture(t)
	st := gs.DB
	stored := []*fleetAgent{f.join("prod", nil), f.join("prod", nil), f.join("prod", nil)}
	waitStored(t, f, gs, stored...)

	gs.hold()
	f.report(stored[0], []byte{7}, applied) // runs a config Steward never offered
	stored[1].conn.Close()                  // offline
	fresh := f.join("dev", nil)             // not stored at all
	fleet := append(stored, fresh)
	eventually(t, "the disconnect handled", func() bool {
		a, err := f.svc.Agent(f.ctx, stored[1].id)
		return err == nil && !a.Online
	})
	if a, err := st.Agent(f.ctx, stored[0].id); err != nil || a.ConfigState() != steward.RemoteConfigUnset {
		t.Fatalf("stored agent: %v, %v; want its state before the report (the write is held)", a, err)
	}

	want := func() *steward.FleetSummary {
		sum := steward.NewFleetSummary()
		for _, fa := range fleet {
			a, err := f.svc.Agent(f.ctx, fa.id)
			if err != nil {
				t.Fatal(err)
			}
			sum.Add(a)
		}
		return sum
	}
	check := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		defer cancel()
		got, err := f.svc.Summary(ctx)
		if err != nil {
			t.Fatalf("%s: summary: %v", what, err)
		}
		if w := want(); !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: summary %+v, the agents' live state counts %+v", what, got, w)
		}
	}
	check("writes held")
	if sum, _ := f.svc.Summary(f.ctx); sum.Total != 4 || sum.Online != 3 || sum.BySync[string(steward.SyncDrifted)] != 1 ||
		sum.BySync[string(steward.SyncOffline)] != 1 || sum.ByConfigStatus[string(steward.RemoteConfigApplied)] != 1 {
		t.Fatalf("summary %+v: want 4 agents, 3 online, 1 drifted (APPLIED), 1 offline", sum)
	}
	gs.open()
	eventually(t, "the held writes stored", func() bool {
		_, err := st.Agent(f.ctx, fresh.id)
		return err == nil
	})
	check("written")
}

// An agent listing shows changes the group commit has not written yet,
// at once and exactly as it lists them once written (matches, order,
// total, page): before, it waited for the write (here: held, until the
// listing's context ended).
func TestListShowsUnwrittenChangesAtOnce(t *testing.T) {
	f, gs := newGatedFixture(t)
	stored := []*fleetAgent{f.join("prod", nil), f.join("prod", nil), f.join("prod", nil)}
	waitStored(t, f, gs, stored...)

	gs.hold()
	f.report(stored[0], []byte{7}, applied)
	stored[1].conn.Close() // offline
	fresh := f.join("dev", nil)
	eventually(t, "the disconnect handled", func() bool {
		a, err := f.svc.Agent(f.ctx, stored[1].id)
		return err == nil && !a.Online
	})
	filters := []steward.AgentFilter{
		{ConfigStatus: steward.RemoteConfigApplied},
		{Online: new(false)},
		{Sync: steward.SyncDrifted},
		{Search: fresh.id.String()[24:]}, // the random end of a v7 uid
		{Sort: steward.SortOnline, Desc: true, Offset: 1, Limit: 2},
		{Sort: steward.SortSync, Selector: "env=prod", Limit: 2},
		{Sort: steward.SortLastSeen, Offset: 3},
	}
	list := func() [][]steward.InstanceUID {
		t.Helper()
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		defer cancel()
		var out [][]steward.InstanceUID
		for _, lf := range filters {
			as, n, err := f.svc.Agents(ctx, lf)
			if err != nil {
				t.Fatalf("Agents(%+v): %v", lf, err)
			}
			ids := []steward.InstanceUID{}
			for _, a := range as {
				ids = append(ids, a.ID)
			}
			out = append(out, append(ids, steward.InstanceUID{byte(n)}))
		}
		return out
	}
	held := list()
	want := func(i int, agents ...*fleetAgent) {
		t.Helper()
		ids := []steward.InstanceUID{}
		for _, a := range agents {
			ids = append(ids, a.id)
		}
		ids = append(ids, steward.InstanceUID{byte(len(agents))})
		if !reflect.DeepEqual(held[i], ids) {
			t.Fatalf("Agents(%+v) with the writes held: %v, want %v (and the total)", filters[i], held[i], ids)
		}
	}
	want(0, stored[0])
	want(1, stored[1])
	want(2, stored[0]) // runs a config Steward never offered
	want(3, fresh)
	if _, err := gs.DB.Agent(f.ctx, fresh.id); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("fresh agent stored (%v): the writes were not held", err)
	}

	gs.open()
	eventually(t, "the held writes stored", func() bool { return f.svc.PendingWrites() == 0 })
	if written := list(); !reflect.DeepEqual(held, written) {
		t.Fatalf("listings with the writes held %v, once written %v", held, written)
	}
}

// An agent deleted while the group commit holds unwritten state of it, or
// is writing it, stays deleted: the flush does not write it back.
func TestDeletedAgentIsNotWrittenBack(t *testing.T) {
	f, gs := newGatedFixture(t)
	st := gs.DB
	queued, inflight, other := f.join("prod", nil), f.join("prod", nil), f.join("prod", nil)
	waitStored(t, f, gs, queued, inflight, other)
	gs.hold()
	f.report(inflight, []byte{7}, applied)
	eventually(t, "a flush writing the report", func() bool { return gs.held.Load() == 1 })
	f.report(queued, []byte{8}, applied)

	deleted := make(chan error, 2)
	for _, a := range []*fleetAgent{inflight, queued} {
		go func() { deleted <- f.svc.DeleteAgent(f.ctx, a.id) }()
	}
	time.Sleep(50 * time.Millisecond) // the deletes wait for the flush in flight
	gs.open()
	for range 2 {
		if err := <-deleted; err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	// Flushes are written in order: once a later report is stored, so is
	// anything queued before it.
	f.report(other, []byte{9}, applied)
	eventually(t, "a later report stored", func() bool {
		a, err := st.Agent(f.ctx, other.id)
		return err == nil && a.ConfigState() == steward.RemoteConfigApplied
	})
	for _, a := range []*fleetAgent{queued, inflight} {
		if got, err := st.Agent(f.ctx, a.id); steward.ErrorCode(err) != steward.ENOTFOUND {
			t.Errorf("agent %s after delete and flush: %v, %v; want ENOTFOUND", a.id, got, err)
		}
		if _, err := f.svc.Agent(f.ctx, a.id); steward.ErrorCode(err) != steward.ENOTFOUND {
			t.Errorf("API agent %s after delete: %v; want ENOTFOUND", a.id, err)
		}
	}
}

// A config acknowledgement and a disconnect change only the agent's state
// and are written narrowly; a new description is written whole. Both read
// back as reported.
func TestStateChangesAreWrittenNarrowly(t *testing.T) {
	f, gs := newGatedFixture(t)
	a := f.join("prod", nil)
	waitStored(t, f, gs, a)
	whole, states := gs.whole.Load(), gs.states.Load()
	f.report(a, []byte{7}, applied)
	eventually(t, "the ack stored", func() bool {
		got, err := gs.DB.Agent(f.ctx, a.id)
		return err == nil && got.ConfigState() == steward.RemoteConfigApplied && got.SequenceNum == a.seq
	})
	if gs.whole.Load() != whole || gs.states.Load() != states+1 {
		t.Fatalf("the ack written by %d whole and %d narrow writes, want 0 and 1", gs.whole.Load()-whole, gs.states.Load()-states)
	}
	a.seq++
	f.send(a.conn, fullReport(a.id, a.seq, "dev"))
	eventually(t, "the new description stored", func() bool {
		got, err := gs.DB.Agent(f.ctx, a.id)
		return err == nil && got.LabelSet()["env"] == "dev" && f.svc.PendingWrites() == 0
	})
	if gs.whole.Load() != whole+1 {
		t.Fatalf("the new description written by %d whole writes, want 1", gs.whole.Load()-whole)
	}
	states = gs.states.Load()
	a.conn.Close()
	eventually(t, "the disconnect stored", func() bool {
		got, err := gs.DB.Agent(f.ctx, a.id)
		return err == nil && !got.Online && got.LabelSet()["env"] == "dev"
	})
	if gs.whole.Load() != whole+1 || gs.states.Load() != states+1 {
		t.Fatalf("the disconnect written by %d whole and %d narrow writes, want 0 and 1", gs.whole.Load()-whole-1, gs.states.Load()-states)
	}
}
