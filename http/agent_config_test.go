package http_test

import (
	"context"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// report sends one more AgentToServer message for an agent connected with
// e.connect.
func (e *env) report(c *testConn, id steward.InstanceUID, seq uint64, fill func(*protobufs.AgentToServer)) {
	e.t.Helper()
	caps := steward.AgentReportsStatus | steward.AgentReportsHealth | steward.AgentAcceptsRemoteConfig |
		steward.AgentReportsRemoteConfig | steward.AgentReportsEffectiveConfig
	msg := &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: seq, Capabilities: uint64(caps)}
	fill(msg)
	if _, err := e.cp.OnMessage(context.Background(), c, msg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) agentConfig(t *testing.T, id steward.InstanceUID) stewardhttp.AgentConfigResponse {
	t.Helper()
	r := e.do("GET", "/api/v1/agents/"+id.String()+"/config", nil)
	if r.status != 200 {
		t.Fatalf("GET agent config: %d %s", r.status, r.body)
	}
	var out stewardhttp.AgentConfigResponse
	r.decode(t, &out)
	return out
}

func applied(hash []byte, effective string) func(*protobufs.AgentToServer) {
	return func(m *protobufs.AgentToServer) {
		m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED, LastRemoteConfigHash: hash}
		m.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"": {Body: []byte(effective), ContentType: "text/yaml"}}}}
	}
}

// The agent's config view names every assignment that applies — by
// selector as well as by agent_id — and the config versions it should run
// and runs, resolving a running hash to a stored version or to
// unknown/local, with a diff of the effective config against the desired.
func TestAgentConfig(t *testing.T) {
	e := newEnv(t, nil)
	v1 := "receivers:\n  otlp: {}\nexporters:\n  debug: {}\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}\n"
	v2 := "receivers:\n  otlp: {}\nexporters:\n  otlphttp: {}\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\n"
	for _, body := range []string{v1, v2} {
		if r := e.do("PUT", "/api/v1/configs/collector", map[string]any{"files": map[string]any{"": map[string]string{"body": body, "content_type": "text/yaml"}}}); r.status >= 300 {
			t.Fatalf("PUT config: %d %s", r.status, r.body)
		}
	}
	if r := e.do("PUT", "/api/v1/configs/extra", `{"files":{"":{"body":"processors:\n  batch: {}\n"}}}`); r.status != 201 {
		t.Fatalf("PUT config: %d %s", r.status, r.body)
	}
	id, c := e.connect(agentSpec{name: "otelcol", caps: steward.AgentAcceptsRemoteConfig | steward.AgentReportsRemoteConfig | steward.AgentReportsEffectiveConfig})
	other, _ := e.connect(agentSpec{name: "fluentbit"})

	got := e.agentConfig(t, id)
	if len(got.Assignments) != 0 || got.Desired != nil || got.Running != nil || got.Diff != "" || got.DiffNote == "" {
		t.Errorf("nothing assigned: %+v", got)
	}

	if r := e.do("PUT", "/api/v1/assignments/otelcols", `{"config":"collector","selector":"service.name=otelcol"}`); r.status != 201 {
		t.Fatalf("PUT assignment: %d %s", r.status, r.body)
	}
	got = e.agentConfig(t, id)
	if len(got.Assignments) != 1 || got.Assignments[0].Name != "otelcols" || got.Assignments[0].Match != "selector" || got.Assignments[0].ConfigVersion != 2 {
		t.Fatalf("a selector assignment applies: %+v", got.Assignments)
	}
	if got.Desired == nil || !got.Desired.Known || got.Desired.Label != "collector@2" || string(got.Desired.Files["collector"].Body) != v2 {
		t.Errorf("desired: %+v", got.Desired)
	}
	if g := e.agentConfig(t, other); len(g.Assignments) != 0 {
		t.Errorf("an agent the selector does not match: %+v", g.Assignments)
	}

	// It runs the desired config; its effective config differs by a line.
	e.report(c, id, 2, applied(got.Desired.Hash, v2+"extensions:\n  health_check: {}\n"))
	got = e.agentConfig(t, id)
	if got.Running == nil || !got.Running.Known || got.Running.Label != "collector@2" {
		t.Errorf("running: %+v", got.Running)
	}
	if !strings.Contains(got.Diff, "--- desired/collector\n+++ effective\n") || !strings.Contains(got.Diff, "+extensions:\n+  health_check: {}\n") {
		t.Errorf("diff:\n%s", got.Diff)
	}

	// A direct assignment of higher priority joins: both are listed.
	if r := e.do("PUT", "/api/v1/assignments/this-one", `{"config":"extra","priority":10,"agent_id":"`+id.String()+`"}`); r.status != 201 {
		t.Fatalf("PUT assignment: %d %s", r.status, r.body)
	}
	got = e.agentConfig(t, id)
	if len(got.Assignments) != 2 || got.Assignments[0].Name != "this-one" || got.Assignments[0].Match != "agent_id" || got.Assignments[0].ConfigVersion != 1 ||
		got.Assignments[1].Name != "otelcols" {
		t.Errorf("two assignments: %+v", got.Assignments)
	}
	if got.Desired == nil || got.Desired.Label != "extra@1, collector@2" {
		t.Errorf("desired of two: %+v", got.Desired)
	}

	// A hash Steward never offered this agent but that is a stored
	// version offered alone resolves to that version.
	one, err := e.cp.Config(context.Background(), "collector", 1)
	if err != nil {
		t.Fatal(err)
	}
	e.report(c, id, 3, applied(one.RemoteConfigMap().Hash(), v1))
	if got = e.agentConfig(t, id); got.Running == nil || !got.Running.Known || got.Running.Label != "collector@1" {
		t.Errorf("running a stored version: %+v", got.Running)
	}
	// Anything else is unknown/local.
	e.report(c, id, 4, applied([]byte{9, 9, 9}, "local: true\n"))
	if got = e.agentConfig(t, id); got.Running == nil || got.Running.Known || got.Running.Label != stewardhttp.UnknownConfigLabel || got.Running.Hash.String() != "090909" {
		t.Errorf("running an unknown config: %+v", got.Running)
	}

	if r := e.do("GET", "/api/v1/agents/"+steward.NewInstanceUID().String()+"/config", nil); r.status != 404 {
		t.Errorf("unknown agent: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/agents/x/config", nil); r.status != 400 {
		t.Errorf("bad id: %d %s", r.status, r.body)
	}
}

// health_state is unknown for an offline agent, whatever it reported last,
// and an unhealthy agent says why (health_reason).
func TestAgentHealthState(t *testing.T) {
	e := newEnv(t, nil)
	id, c := e.connect(agentSpec{name: "otelcol", healthy: ptr(true)})
	get := func() map[string]any {
		t.Helper()
		var m map[string]any
		e.do("GET", "/api/v1/agents/"+id.String(), nil).decode(t, &m)
		return m
	}
	if m := get(); m["health_state"] != "healthy" || m["health_reason"] != nil {
		t.Errorf("healthy agent: %v %v", m["health_state"], m["health_reason"])
	}
	e.report(c, id, 2, func(m *protobufs.AgentToServer) {
		m.Health = &protobufs.ComponentHealth{Healthy: false, Status: "StatusRecoverableError", ComponentHealthMap: map[string]*protobufs.ComponentHealth{
			"pipeline:traces": {Healthy: false, ComponentHealthMap: map[string]*protobufs.ComponentHealth{
				"exporter:otlp": {Healthy: false, LastError: "connection refused", Status: "StatusRecoverableError"}}},
			"pipeline:logs": {Healthy: true}}}
	})
	if m := get(); m["health_state"] != "unhealthy" || m["health_reason"] != "pipeline:traces/exporter:otlp: connection refused" {
		t.Errorf("unhealthy agent: %v %v", m["health_state"], m["health_reason"])
	}
	var list stewardhttp.AgentsResponse
	e.do("GET", "/api/v1/agents", nil).decode(t, &list)
	if len(list.Agents) != 1 || list.Agents[0].HealthState() != steward.HealthUnhealthy {
		t.Errorf("list: %+v", list.Agents)
	}
	if r := e.do("GET", "/api/v1/agents", nil); !strings.Contains(string(r.body), `"health_state":"unhealthy"`) {
		t.Errorf("list body lacks health_state: %s", r.body)
	}

	e.cp.OnClose(c)
	eventually(t, "agent offline", func() bool { return get()["online"] == false })
	if m := get(); m["health_state"] != "unknown" || m["health_reason"] != nil {
		t.Errorf("offline agent: %v %v", m["health_state"], m["health_reason"])
	}
}
