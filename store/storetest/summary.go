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
	for _, a := range agents {
		must(t, s.PutAgent(c, a), "put")
	}
	check := func(what string) {
		t.Helper()
		got, err := ss.Summary(c)
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
	}
	check("initial")
	if got, _ := ss.Summary(c); got.Total != 4 || got.Online != 2 || got.ByConfigStatus["UNSET"] != 2 || got.ByType["otelcol"] != 2 {
		t.Fatalf("summary %+v", got)
	}
	agents[1].RemoteConfigStatus.Status = steward.RemoteConfigApplied
	must(t, s.PutAgent(c, agents[1]), "update")
	must(t, s.MarkOffline(c, "", agents[0].LastSeen), "mark offline")
	check("after updates")
}
