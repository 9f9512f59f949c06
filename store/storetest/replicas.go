package storetest

import (
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// testReplicas checks ReplicaStore: a replica whose lease lapsed is reaped
// with its agents marked offline; live replicas and their agents are kept.
func testReplicas(t *testing.T, s steward.Store) {
	rs, ok := s.(steward.ReplicaStore)
	if !ok {
		t.Fatalf("%T does not implement steward.ReplicaStore", s)
	}
	c := ctx(t)
	a1 := agentWith(1, "otelcol", "h1", "1", nil, true, nil)
	a1.Replica = "dead"
	a2 := agentWith(2, "otelcol", "h2", "1", nil, true, nil)
	a2.Replica = "live"
	must(t, s.PutAgent(c, a1), "put a1")
	must(t, s.PutAgent(c, a2), "put a2")
	alive := func(name string, at time.Time, want bool) {
		t.Helper()
		renewed, err := rs.ReplicaAlive(c, name, at)
		must(t, err, "lease "+name)
		if renewed != want {
			t.Fatalf("ReplicaAlive(%s, %v) renewed = %v, want %v", name, at, renewed, want)
		}
	}
	alive("dead", ts(100, 0), false) // a first lease renews nothing
	alive("live", ts(100, 0), false)
	alive("live", ts(200, 0), true)
	alive("live", ts(150, 0), true) // an older renewal is ignored

	dead, err := rs.ReapReplicas(c, ts(180, 0))
	must(t, err, "reap")
	if len(dead) != 1 || dead[0] != "dead" {
		t.Fatalf("reaped %v, want [dead]", dead)
	}
	g1, _ := s.Agent(c, a1.ID)
	g2, _ := s.Agent(c, a2.ID)
	if g1.Online || !g2.Online {
		t.Fatalf("after reaping: dead replica's agent online=%v, live replica's agent online=%v", g1.Online, g2.Online)
	}
	if again, _ := rs.ReapReplicas(c, ts(180, 0)); len(again) != 0 {
		t.Fatalf("reaped twice: %v", again)
	}
	// A reaped replica that is still alive learns it held no lease.
	alive("dead", ts(210, 0), false)
	alive("dead", ts(220, 0), true)
	if again, _ := rs.ReapReplicas(c, ts(180, 0)); len(again) != 0 {
		t.Fatalf("the older lease of a renewed replica was reaped: %v", again)
	}
}

// testNotHeldBy checks HeldAgentStore: of the ids asked about, those
// stored offline or online on another replica; unknown ids are left out.
func testNotHeldBy(t *testing.T, s steward.Store) {
	hs, ok := s.(steward.HeldAgentStore)
	if !ok {
		t.Fatalf("%T does not implement steward.HeldAgentStore", s)
	}
	c := ctx(t)
	here := agentWith(1, "otelcol", "h1", "1", nil, true, nil)
	here.Replica = "r1"
	offline := agentWith(2, "otelcol", "h2", "1", nil, false, nil)
	offline.Replica = "r1"
	there := agentWith(3, "otelcol", "h3", "1", nil, true, nil)
	there.Replica = "r2"
	must(t, s.PutAgents(c, []*steward.Agent{here, offline, there}), "PutAgents")
	got, err := hs.NotHeldBy(c, "r1", []steward.InstanceUID{here.ID, offline.ID, there.ID, uid(9)})
	must(t, err, "NotHeldBy")
	want := map[steward.InstanceUID]bool{offline.ID: true, there.ID: true}
	if len(got) != len(want) || !want[got[0]] || !want[got[len(got)-1]] || got[0] == got[len(got)-1] {
		t.Fatalf("NotHeldBy(r1) = %v, want %s and %s", got, offline.ID, there.ID)
	}
	if got, err := hs.NotHeldBy(c, "r1", nil); err != nil || len(got) != 0 {
		t.Fatalf("NotHeldBy of no ids = %v, %v", got, err)
	}
}
