package storetest

import (
	"reflect"
	"testing"

	"github.com/stewardhq/steward"
)

// testSummary checks that the store's aggregate counts equal counting the
// agents one by one, including after updates.
func testSummary(t *testing.T, s steward.Store) {
	ss, ok := s.(steward.SummaryStore)
	if !ok {
		t.Fatalf("%T does not implement steward.SummaryStore", s)
	}
	c := ctx(t)
	yes, no := true, false
	agents := []*steward.Agent{
		agentWith(1, "otelcol", "h1", "0.149.0", nil, true, &yes),
		agentWith(2, "otelcol", "h2", "0.148.0", nil, false, &no),
		agentWith(3, "fluent-bit", "h3", "3.1", nil, true, nil),
		agentWith(4, "", "h4", "", nil, false, &yes),
	}
	agents[0].RemoteConfigStatus = &steward.RemoteConfigStatus{Status: steward.RemoteConfigApplied, LastRemoteConfigHash: []byte{1}}
	agents[1].RemoteConfigStatus = &steward.RemoteConfigStatus{Status: steward.RemoteConfigFailed, ErrorMessage: "bad"}
	agents[0].Sync = &steward.AgentSync{State: steward.SyncRolledBack}
	agents[2].Sync = &steward.AgentSync{State: steward.SyncInSync}
	for _, a := range agents {
		must(t, s.PutAgent(c, a), "put")
	}
	check := func(what string) {
		t.Helper()
		got, err := ss.Summary(c, nil)
		must(t, err, "summary")
		all, _, err := s.Agents(c, steward.AgentFilter{})
		must(t, err, "agents")
		want := steward.NewFleetSummary()
		for _, a := range all {
			want.Add(a)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Summary = %+v, counting agents gives %+v", what, got, want)
		}
		// Leaving out agents 1 and 3 (and an unknown one) counts the rest.
		except := []steward.InstanceUID{agents[0].ID, agents[2].ID, {0xee}}
		got, err = ss.Summary(c, except)
		must(t, err, "summary except")
		want = steward.NewFleetSummary()
		for _, a := range all {
			if a.ID != agents[0].ID && a.ID != agents[2].ID {
				want.Add(a)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Summary except 1 and 3 = %+v, counting agents gives %+v", what, got, want)
		}
	}
	check("initial")
	// Agent 4 last reported healthy but is offline: its health is unknown.
	if got, _ := ss.Summary(c, nil); got.Total != 4 || got.Online != 2 || got.Healthy != 1 || got.Unhealthy != 3 || got.ByConfigStatus["UNSET"] != 2 || got.ByType["otelcol"] != 2 ||
		got.BySync["rolled_back"] != 1 || got.BySync["in_sync"] != 1 || got.BySync["offline"] != 2 {
		t.Fatalf("summary %+v", got)
	}
	agents[1].RemoteConfigStatus.Status = steward.RemoteConfigApplied
	must(t, s.PutAgent(c, agents[1]), "update")
	must(t, s.MarkOffline(c, "", agents[0].LastSeen), "mark offline")
	check("after updates")
}

// testAgentsBySync checks the sync filter: the stored state of connected
// agents, offline for disconnected ones (also after MarkOffline), paged in
// the database.
func testAgentsBySync(t *testing.T, s steward.Store) {
	c := ctx(t)
	yes := true
	states := []steward.SyncState{steward.SyncFailed, steward.SyncRolledBack, steward.SyncFailed, steward.SyncInSync}
	for i, st := range states {
		a := agentWith(byte(i+1), "otelcol", "h", "1", nil, true, &yes)
		a.Sync = &steward.AgentSync{State: st}
		must(t, s.PutAgent(c, a), "put")
	}
	off := agentWith(9, "otelcol", "h", "1", nil, false, &yes)
	off.Sync = &steward.AgentSync{State: steward.SyncFailed} // its last state while connected
	must(t, s.PutAgent(c, off), "put offline")

	list := func(st steward.SyncState, offset, limit int) ([]byte, int) {
		t.Helper()
		as, n, err := s.Agents(c, steward.AgentFilter{Sync: st, Offset: offset, Limit: limit})
		must(t, err, "agents by sync")
		return ids(as), n
	}
	if got, n := list(steward.SyncFailed, 0, 0); n != 2 || string(got) != string([]byte{1, 3}) {
		t.Fatalf("sync=failed: %v (%d)", got, n)
	}
	if got, n := list(steward.SyncFailed, 1, 1); n != 2 || string(got) != string([]byte{3}) {
		t.Fatalf("sync=failed offset 1 limit 1: %v (%d)", got, n)
	}
	if got, n := list(steward.SyncOffline, 0, 0); n != 1 || string(got) != string([]byte{9}) {
		t.Fatalf("sync=offline: %v (%d)", got, n)
	}
	must(t, s.MarkOffline(c, "", ts(100, 0)), "mark offline")
	if _, n := list(steward.SyncOffline, 0, 0); n != 5 {
		t.Fatalf("sync=offline after MarkOffline: %d agents, want 5", n)
	}
	if _, n := list(steward.SyncFailed, 0, 0); n != 0 {
		t.Fatalf("sync=failed after MarkOffline: %d agents, want 0", n)
	}
}
