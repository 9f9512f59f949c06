package http_test

import (
	"context"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

const collectorV1 = `receivers: {otlp: {protocols: {grpc: {}}}}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
`

// collectorV2 counts spans with the count connector, which the core
// distribution lacks.
const collectorV2 = `receivers: {otlp: {protocols: {grpc: {}}}}
connectors: {count: {}}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug, count]}
    metrics: {receivers: [count], exporters: [debug]}
`

// reportComponents makes a connected agent report its effective config and
// the components of a core collector (no connectors).
func (e *env) reportComponents(id steward.InstanceUID, c *testConn, effective string) {
	e.t.Helper()
	kinds := map[string][]string{"receivers": {"otlp", "nop"}, "exporters": {"debug", "otlp", "nop"}, "processors": {"batch"}, "extensions": {"health_check"}}
	ac := &protobufs.AvailableComponents{Hash: []byte("core-0.149"), Components: map[string]*protobufs.ComponentDetails{}}
	for kind, types := range kinds {
		k := &protobufs.ComponentDetails{SubComponentMap: map[string]*protobufs.ComponentDetails{}}
		for _, t := range types {
			k.SubComponentMap[t] = &protobufs.ComponentDetails{}
		}
		ac.Components[kind] = k
	}
	caps := steward.AgentReportsStatus | steward.AgentReportsHealth | steward.AgentAcceptsRemoteConfig |
		steward.AgentReportsEffectiveConfig | steward.AgentReportsAvailableComponents
	msg := &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: 2, Capabilities: uint64(caps), AvailableComponents: ac,
		EffectiveConfig: &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"": {Body: []byte(effective), ContentType: "text/yaml"}}}}}
	if _, err := e.cp.OnMessage(context.Background(), c, msg); err != nil {
		e.t.Fatal(err)
	}
}

func configBody(body string) map[string]any {
	return map[string]any{"files": map[string]any{"": map[string]string{"body": body, "content_type": "text/yaml"}}}
}

func TestPreviewAndValidationAPI(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) {})
	id, c := e.connect(agentSpec{name: "otelcol", version: "0.149.0", host: "edge-1", caps: steward.AgentAcceptsRemoteConfig})
	e.reportComponents(id, c, collectorV1)
	if r := e.do("PUT", "/api/v1/configs/gw", configBody(collectorV1)); r.status != 201 {
		t.Fatalf("PUT v1: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/v1/assignments/gw", map[string]any{"config": "gw", "selector": "service.name=otelcol"}); r.status != 201 {
		t.Fatalf("PUT assignment: %d %s", r.status, r.body)
	}

	t.Run("config preview lists the agent, its diff and what it lacks", func(t *testing.T) {
		r := e.do("POST", "/api/v1/configs/gw/preview", configBody(collectorV2))
		var p stewardhttp.PreviewResponse
		if r.status != 200 {
			t.Fatalf("preview: %d %s", r.status, r.body)
		}
		r.decode(t, &p)
		if p.Matched != 1 || p.Changed != 1 || !p.Blocked || p.Missing != 1 || p.Version != 2 {
			t.Fatalf("preview = %s", r.body)
		}
		if m := p.MissingAgents[0]; m.ID != id || m.Name != "otelcol" || len(m.Missing) != 1 || m.Missing[0] != (steward.Component{Kind: "connectors", ID: "count"}) {
			t.Errorf("missing agents = %+v", p.MissingAgents)
		}
		if d := p.Agents[0].Diff; !strings.Contains(d, "--- desired/gw\n+++ effective\n") || !strings.Contains(d, "-connectors: {count: {}}") {
			t.Errorf("agent diff:\n%s", d)
		}
		if !strings.Contains(p.ConfigDiff, "--- gw@v1\n+++ gw@v2\n") || !strings.Contains(p.ConfigDiff, "+connectors: {count: {}}") {
			t.Errorf("config diff:\n%s", p.ConfigDiff)
		}
	})

	t.Run("saving a blocked config is refused with 422 and the preview", func(t *testing.T) {
		r := e.do("PUT", "/api/v1/configs/gw", configBody(collectorV2))
		if r.status != 422 {
			t.Fatalf("PUT v2: %d %s", r.status, r.body)
		}
		var b stewardhttp.BlockedResponse
		r.decode(t, &b)
		if b.Error.Code != "validation_failed" || !strings.Contains(b.Error.Message, "otelcol "+id.String()+" (connector count)") || !b.Preview.Blocked {
			t.Errorf("422 body: %s", r.body)
		}
		var hist stewardhttp.VersionsResponse
		e.do("GET", "/api/v1/configs/gw/versions", nil).decode(t, &hist)
		if len(hist.Versions) != 1 {
			t.Errorf("a refused config was stored: %d versions", len(hist.Versions))
		}
	})

	t.Run("a syntax error is refused with its line", func(t *testing.T) {
		r := e.do("PUT", "/api/v1/configs/other", configBody("receivers:\n  otlp: {\nexporters: {}\n"))
		var b stewardhttp.BlockedResponse
		r.decode(t, &b)
		if r.status != 422 || len(b.Preview.Findings) != 1 || b.Preview.Findings[0].Line == 0 || !strings.Contains(b.Preview.Findings[0].Message, "YAML syntax") {
			t.Errorf("PUT bad YAML: %d %s", r.status, r.body)
		}
	})

	t.Run("non-YAML files are not checked as YAML", func(t *testing.T) {
		body := map[string]any{"files": map[string]any{"syslog-ng.conf": map[string]string{"body": "source s { tcp(port(601)); };\n", "content_type": "text/plain"}}}
		if r := e.do("PUT", "/api/v1/configs/syslog", body); r.status != 201 {
			t.Errorf("PUT syslog-ng config: %d %s", r.status, r.body)
		}
	})

	t.Run("an assignment that would give agents components they lack is refused", func(t *testing.T) {
		if r := e.do("PUT", "/api/v1/configs/counting?force=true", configBody(collectorV2)); r.status != 201 {
			t.Fatalf("PUT counting: %d %s", r.status, r.body)
		}
		r := e.do("PUT", "/api/v1/assignments/gw-pinned", map[string]any{"config": "counting", "selector": "host.name=edge-1", "priority": 5})
		if r.status != 422 {
			t.Fatalf("PUT assignment: %d %s", r.status, r.body)
		}
		if r := e.do("GET", "/api/v1/assignments/gw-pinned", nil); r.status != 404 {
			t.Errorf("refused assignment stored: %d", r.status)
		}
	})
	t.Run("force overrides and is audited", func(t *testing.T) {
		if r := e.do("PUT", "/api/v1/configs/gw?force=maybe", configBody(collectorV2)); r.status != 400 {
			t.Errorf("force=maybe: %d", r.status)
		}
		if r := e.do("PUT", "/api/v1/configs/gw?force=true", configBody(collectorV2)); r.status != 201 {
			t.Fatalf("forced PUT: %d %s", r.status, r.body)
		}
		var audit stewardhttp.AuditResponse
		e.do("GET", "/api/v1/audit?action=validation.override", nil).decode(t, &audit)
		if len(audit.Entries) != 1 || audit.Entries[0].Target != "/api/v1/configs/gw" || audit.Entries[0].Details["agents_missing_components"] != float64(1) {
			t.Errorf("audit: %+v", audit.Entries)
		}
	})

	t.Run("assignment preview counts the selector's agents", func(t *testing.T) {
		for sel, want := range map[string]int{"service.name=otelcol": 1, "host.name=edge-1": 1, "service.name=nope": 0} {
			var p stewardhttp.PreviewResponse
			r := e.do("POST", "/api/v1/assignments/new-one/preview", map[string]any{"config": "syslog", "selector": sel})
			r.decode(t, &p)
			if r.status != 200 || p.Matched != want {
				t.Errorf("selector %s: %d matched %d, want %d", sel, r.status, p.Matched, want)
			}
		}
		if r := e.do("POST", "/api/v1/assignments/new-one/preview", map[string]any{"config": "syslog", "selector": "a in ("}); r.status != 400 {
			t.Errorf("bad selector: %d", r.status)
		}
		if r := e.do("POST", "/api/v1/assignments/new-one/preview", map[string]any{"config": "nope", "selector": "a=b"}); r.status != 404 {
			t.Errorf("unknown config: %d", r.status)
		}
	})

}

func TestPreviewRolloutAPI(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.Rollouts = o.Agents.(steward.RolloutService) })
	id, c := e.connect(agentSpec{name: "otelcol", version: "0.149.0", host: "edge-1", caps: steward.AgentAcceptsRemoteConfig})
	e.reportComponents(id, c, collectorV1)
	e.do("PUT", "/api/v1/configs/gw", configBody(collectorV1))
	if r := e.do("PUT", "/api/v1/assignments/gw", map[string]any{"config": "gw", "version": 1, "selector": "service.name=otelcol"}); r.status != 201 {
		t.Fatalf("PUT assignment: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/v1/configs/gw?force=true", configBody(collectorV2)); r.status != 201 {
		t.Fatalf("PUT v2: %d %s", r.status, r.body)
	}
	ro := map[string]any{"name": "count", "assignment": "gw", "to_version": 2, "stages": []map[string]any{{"selector": "host.name=edge-1"}, {"percent": 100}}}
	var p stewardhttp.PreviewResponse
	r := e.do("POST", "/api/v1/rollouts/preview", ro)
	r.decode(t, &p)
	if r.status != 200 || p.Matched != 1 || p.Changed != 1 || !p.Blocked || p.Agents[0].ID != id {
		t.Fatalf("rollout preview: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/rollouts", ro); r.status != 422 {
		t.Fatalf("start blocked rollout: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/rollouts?force=true", ro); r.status != 201 {
		t.Fatalf("forced rollout: %d %s", r.status, r.body)
	}
}

func TestPreviewNotImplemented(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.Previews = nil })
	if r := e.do("POST", "/api/v1/configs/gw/preview", configBody(collectorV1)); r.status != 501 {
		t.Errorf("preview without a preview service: %d", r.status)
	}
	// Without previews, changes are not checked.
	if r := e.do("PUT", "/api/v1/configs/gw", configBody("receivers: [")); r.status != 201 {
		t.Errorf("PUT without previews: %d %s", r.status, r.body)
	}
}
