package cli_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

type httpConn struct{ conn }

func (c *httpConn) Transport() server.Transport { return server.HTTP }

// Finding 6 of issue 12: for a plain-HTTP agent the CLI said "Restart
// command sent" although the command waits for the agent's next poll.
func TestRestartOfHTTPAgentSaysQueued(t *testing.T) {
	e := newEnv(t)
	id := steward.NewInstanceUID()
	st, _ := e.cp.Accept(httptest.NewRequest("POST", "/v1/opamp", nil))
	if _, err := e.cp.OnMessage(context.Background(), &httpConn{conn{st: st}}, &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: 1,
		Capabilities: uint64(steward.AgentReportsStatus | steward.AgentAcceptsRestartCommand),
		AgentDescription: &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{Key: "service.name",
			Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "otelcol"}}}}}}); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("agents", "restart", id.String())
	if !strings.Contains(out, "queued") || !strings.Contains(out, "next poll") || strings.Contains(out, "sent") {
		t.Fatalf("restart of an HTTP agent: %q", out)
	}
}

// The sync state is a column of 'agents list', a filter, and a few lines
// of 'agents show'.
func TestAgentSyncInListAndShow(t *testing.T) {
	e := newEnv(t)
	id := e.connect("otelcol", "0.120.0", "web-1", steward.AgentAcceptsRemoteConfig)
	ctx := context.Background()
	if _, err := e.cp.PutConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("a: 1\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cp.PutAssignment(ctx, &steward.Assignment{Name: "all", ConfigName: "base", Selector: "service.name"}); err != nil {
		t.Fatal(err)
	}
	// The agent reports again without acknowledging it: pending.
	if err := e.send(id, &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: 2,
		Capabilities: uint64(steward.AgentReportsStatus | steward.AgentReportsHealth | steward.AgentAcceptsRemoteConfig),
		Health:       &protobufs.ComponentHealth{Healthy: true}}); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("agents", "list", "--sync", "pending")
	if !strings.Contains(out, id.String()) || !strings.Contains(out, "SYNC") || !strings.Contains(out, "base@1") {
		t.Fatalf("agents list --sync pending:\n%s", out)
	}
	if out := e.mustRun("agents", "list", "--sync", "in_sync"); strings.Contains(out, id.String()) {
		t.Fatalf("agents list --sync in_sync lists a pending agent:\n%s", out)
	}
	out = e.mustRun("agents", "show", id.String())
	for _, want := range []string{"Sync:", "pending", "Desired:", "base@1 (assignment all)", "Running:", "no remote config reported"} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}
	if _, errs, code := e.run("agents", "list", "--sync", "APPLIED"); code == 0 || !strings.Contains(errs, "unknown sync state") {
		t.Errorf("--sync APPLIED: %d %s", code, errs)
	}
}
