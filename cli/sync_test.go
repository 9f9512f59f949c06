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

// 'agents show' names every assignment that applies (a selector one too),
// the running config as unknown/local when its hash is no stored version,
// the diff of the effective config, and health unknown once the agent is
// offline (issue 13).
func TestAgentShowConfigAndHealth(t *testing.T) {
	e := newEnv(t)
	id := e.connect("otelcol", "0.120.0", "web-1", steward.AgentAcceptsRemoteConfig)
	ctx := context.Background()
	if _, err := e.cp.PutConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("a: 1\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cp.PutAssignment(ctx, &steward.Assignment{Name: "all", ConfigName: "base", Selector: "service.name=otelcol"}); err != nil {
		t.Fatal(err)
	}
	caps := uint64(steward.AgentReportsStatus | steward.AgentReportsHealth | steward.AgentAcceptsRemoteConfig | steward.AgentReportsEffectiveConfig | steward.AgentReportsRemoteConfig)
	if err := e.send(id, &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: 2, Capabilities: caps,
		Health: &protobufs.ComponentHealth{Healthy: false, LastError: "exporter otlp: connection refused"},
		RemoteConfigStatus: &protobufs.RemoteConfigStatus{LastRemoteConfigHash: []byte{0xab, 0xcd},
			Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED},
		EffectiveConfig: &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"": {Body: []byte("a: 2\n"), ContentType: "text/yaml"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("agents", "show", id.String())
	for _, want := range []string{
		"Health:         unhealthy: exporter otlp: connection refused",
		"Desired:        base@1 (assignment all)",
		"Running:        unknown/local (not from Steward), hash abcd",
		"Assignments:    all: base@1, priority 0 (selector service.name=otelcol)",
		"Desired -> effective:\n  --- desired/base\n  +++ effective\n  @@ -1 +1 @@\n  -a: 1\n  +a: 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}

	e.cp.OnClose(e.conns[id])
	out = e.mustRun("agents", "show", id.String())
	if !strings.Contains(out, "Health:         unknown (offline; last reported unhealthy: exporter otlp: connection refused)") {
		t.Errorf("offline agent's health:\n%s", out)
	}
	if out := e.mustRun("agents", "list"); !strings.Contains(out, "unknown") || strings.Contains(out, "unhealthy") {
		t.Errorf("agents list shows an offline agent's last health:\n%s", out)
	}
}
