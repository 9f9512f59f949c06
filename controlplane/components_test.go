package controlplane_test

import (
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// An agent that reports only the hash of its available components (as
// steward-supervisor's client and opamp-go do first) is asked for the full
// map until it has sent it, and not asked again for a hash whose details
// are stored.
func TestHashOnlyAvailableComponentsAreRequested(t *testing.T) {
	f := newFixture(t)
	c := f.connect(server.WebSocket)
	uid := steward.NewInstanceUID()
	const flag = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents)
	hashOnly := func(seq uint64) *protobufs.AgentToServer {
		m := fullReport(uid, seq, "prod")
		m.Capabilities |= uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents)
		m.AvailableComponents = &protobufs.AvailableComponents{Hash: []byte("components-1")}
		return m
	}
	if r := f.send(c, hashOnly(0)); r.Flags&flag == 0 {
		t.Fatalf("first hash-only report: flags %#x lack ReportAvailableComponents", r.Flags)
	}
	if r := f.send(c, hashOnly(1)); r.Flags&flag == 0 {
		t.Fatalf("hash-only report again, details never sent: flags %#x lack ReportAvailableComponents", r.Flags)
	}
	full := hashOnly(2)
	full.AvailableComponents.Components = map[string]*protobufs.ComponentDetails{
		"receivers": {SubComponentMap: map[string]*protobufs.ComponentDetails{"otlp": {}}},
	}
	if r := f.send(c, full); r.Flags&flag != 0 {
		t.Fatalf("full report answered with ReportAvailableComponents")
	}
	if r := f.send(c, hashOnly(3)); r.Flags&flag != 0 {
		t.Fatalf("the stored hash again: flags %#x ask for the details again", r.Flags)
	}
	a, err := f.svc.Agent(f.ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if a.AvailableComponents == nil || a.AvailableComponents.Components["receivers"] == nil {
		t.Fatalf("available components = %+v", a.AvailableComponents)
	}
}
