package storetest

import (
	"sync"
	"testing"

	"github.com/stewardhq/steward"
)

// stateStore returns s as a steward.AgentStateStore, skipping the test
// when it is not one.
func stateStore(t *testing.T, s steward.Store) steward.AgentStateStore {
	t.Helper()
	ss, ok := s.(steward.AgentStateStore)
	if !ok {
		t.Skip("not an AgentStateStore")
	}
	return ss
}

// withNewState returns a copy of a with every field PutAgentStates writes
// changed.
func withNewState(a *steward.Agent) *steward.Agent {
	b := *a
	b.Online = false
	b.Replica = "replica-b"
	b.DisconnectedAt = ts(40, 4)
	b.UpdatedAt = ts(41, 5)
	b.LastSeen = ts(39, 3)
	b.SequenceNum = 77
	b.Transport = "http"
	b.RemoteAddr = "10.0.0.9:5000"
	b.ConnectedAt = ts(30, 2)
	b.RemoteConfigStatus = &steward.RemoteConfigStatus{LastRemoteConfigHash: []byte{9, 9}, Status: steward.RemoteConfigApplied}
	b.Sync = &steward.AgentSync{State: steward.SyncInSync, RunningHash: []byte{9, 9}, Since: ts(38, 1),
		History: []steward.KnownConfig{{Hash: []byte{9, 9}}}}
	b.Health = &steward.ComponentHealth{Healthy: false, StatusTime: ts(39, 9), Status: "StatusRecoverableError", LastError: "export failed"}
	b.EffectiveConfig = &steward.ConfigMap{"": {Body: []byte("receivers: {otlp: {}}\n"), ContentType: "text/yaml"}}
	return &b
}

func testAgentStates(t *testing.T, s steward.Store) {
	ss := stateStore(t, s)
	c := ctx(t)
	full := fullAgent()
	must(t, s.PutAgent(c, full), "PutAgent")

	// A narrow write after a whole one: the state changes, the rest stays.
	narrow := withNewState(fullAgent())
	narrow.Online = true // and back offline below: both ways
	must(t, ss.PutAgentStates(c, []*steward.Agent{narrow}), "PutAgentStates")
	if !narrow.CreatedAt.Equal(full.CreatedAt) || !narrow.UpdatedAt.Equal(ts(41, 5)) {
		t.Fatalf("written back CreatedAt %v UpdatedAt %v, want %v and %v", narrow.CreatedAt, narrow.UpdatedAt, full.CreatedAt, ts(41, 5))
	}
	got, err := s.Agent(c, full.ID)
	must(t, err, "Agent after the narrow write")
	sameJSON(t, got, narrow, "agent after a narrow write")
	offline := withNewState(fullAgent())
	must(t, ss.PutAgentStates(c, []*steward.Agent{offline}), "PutAgentStates offline")
	got, err = s.Agent(c, full.ID)
	must(t, err, "Agent after the second narrow write")
	sameJSON(t, got, offline, "agent after a second narrow write")
	// The columns the fleet queries read follow the state.
	list, total, err := s.Agents(c, steward.AgentFilter{Sync: steward.SyncOffline, ConfigStatus: steward.RemoteConfigApplied})
	must(t, err, "Agents by sync state")
	if total != 1 || len(list) != 1 {
		t.Fatalf("offline agents: %d (total %d), want 1", len(list), total)
	}
	sameJSON(t, list[0], offline, "agent listed after a narrow write")
	if ss, ok := s.(steward.SummaryStore); ok {
		sum, err := ss.Summary(c, nil)
		must(t, err, "Summary")
		if sum.Online != 0 || sum.ByConfigStatus[string(steward.RemoteConfigApplied)] != 1 {
			t.Fatalf("summary after a narrow write: %+v", sum)
		}
	}

	// A whole write after a narrow one replaces the state too (last seen
	// later: it never goes back).
	again := fullAgent()
	again.LastSeen = ts(50, 0)
	must(t, s.PutAgent(c, again), "PutAgent after the narrow write")
	got, err = s.Agent(c, full.ID)
	must(t, err, "Agent after the whole write")
	sameJSON(t, got, again, "agent after a whole write")

	// An agent not stored is written whole; several writes of one agent
	// in a batch store the last.
	other := withNewState(fullAgent())
	other.ID = uid(2)
	first := withNewState(fullAgent())
	first.ID, first.SequenceNum = uid(2), 1
	must(t, ss.PutAgentStates(c, []*steward.Agent{first, other}), "PutAgentStates of a new agent")
	got, err = s.Agent(c, uid(2))
	must(t, err, "Agent written by PutAgentStates")
	if other.CreatedAt.IsZero() {
		t.Fatalf("CreatedAt not written back: %+v", other)
	}
	sameJSON(t, got, other, "agent written whole by PutAgentStates")

	// An agent that reported no effective config keeps none.
	bare := &steward.Agent{ID: uid(3), Online: true}
	must(t, s.PutAgent(c, bare), "PutAgent without an effective config")
	bare.Online, bare.SequenceNum, bare.LastSeen = false, 4, ts(60, 0)
	must(t, ss.PutAgentStates(c, []*steward.Agent{bare}), "PutAgentStates without an effective config")
	got, err = s.Agent(c, uid(3))
	must(t, err, "Agent without an effective config")
	sameJSON(t, got, bare, "agent without an effective config after a narrow write")
}

// A narrow write racing a delete leaves the agent either deleted or whole,
// never a partial row, and neither fails.
func testAgentStatesDelete(t *testing.T, s steward.Store) {
	ss := stateStore(t, s)
	c := ctx(t)
	for i := 0; i < 20; i++ {
		must(t, s.PutAgent(c, fullAgent()), "PutAgent")
		narrow := withNewState(fullAgent())
		var wg sync.WaitGroup
		var putErr, delErr error
		wg.Add(2)
		go func() { defer wg.Done(); putErr = ss.PutAgentStates(c, []*steward.Agent{narrow}) }()
		go func() { defer wg.Done(); delErr = s.DeleteAgent(c, uid(1)) }()
		wg.Wait()
		must(t, putErr, "PutAgentStates racing a delete")
		if delErr != nil && steward.ErrorCode(delErr) != steward.ENOTFOUND {
			t.Fatalf("DeleteAgent racing a narrow write: %v", delErr)
		}
		got, err := s.Agent(c, uid(1))
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			continue
		}
		must(t, err, "Agent")
		want := withNewState(fullAgent())
		want.CreatedAt = got.CreatedAt // new when written whole again
		sameJSON(t, got, want, "agent after a narrow write racing a delete")
		must(t, s.DeleteAgent(c, uid(1)), "DeleteAgent")
	}
}
