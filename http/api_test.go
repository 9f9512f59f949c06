package http_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

func TestAgents(t *testing.T) {
	e := newEnv(t, nil)
	idA, _ := e.connect(agentSpec{name: "otelcol", version: "1.0", host: "alpha", healthy: ptr(true), configStatus: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED})
	idB, _ := e.connect(agentSpec{name: "otelcol", version: "2.0", host: "beta", healthy: ptr(false)})
	idC, _ := e.connect(agentSpec{name: "fluentbit", version: "1.0", host: "gamma"})

	list := func(query string) stewardhttp.AgentsResponse {
		t.Helper()
		r := e.do("GET", "/api/v1/agents"+query, nil)
		if r.status != 200 {
			t.Fatalf("GET agents%s: %d %s", query, r.status, r.body)
		}
		var out stewardhttp.AgentsResponse
		r.decode(t, &out)
		return out
	}
	ids := func(resp stewardhttp.AgentsResponse) map[steward.InstanceUID]bool {
		m := map[steward.InstanceUID]bool{}
		for _, a := range resp.Agents {
			m[a.ID] = true
		}
		return m
	}
	all := list("")
	if all.Total != 3 || len(all.Agents) != 3 {
		t.Fatalf("all: total %d, %d agents", all.Total, len(all.Agents))
	}
	if got := ids(list("?selector=service.name%3Dotelcol")); len(got) != 2 || !got[idA] || !got[idB] {
		t.Errorf("selector: got %v", got)
	}
	if got := ids(list("?q=FLUENT")); len(got) != 1 || !got[idC] {
		t.Errorf("search: got %v", got)
	}
	if got := ids(list("?healthy=true")); len(got) != 1 || !got[idA] {
		t.Errorf("healthy=true: got %v", got)
	}
	if got := list("?online=false"); got.Total != 0 {
		t.Errorf("online=false: total %d", got.Total)
	}
	page := list("?offset=1&limit=1")
	if page.Total != 3 || len(page.Agents) != 1 || page.Agents[0].ID != all.Agents[1].ID {
		t.Errorf("page: total %d agents %v; want the second of %v", page.Total, page.Agents, all.Agents)
	}

	for _, q := range []string{"?online=maybe", "?healthy=1x", "?selector=a%20in%20(", "?limit=-1", "?offset=x"} {
		if r := e.do("GET", "/api/v1/agents"+q, nil); r.status != 400 || r.errorCode(t) != steward.EINVALID {
			t.Errorf("GET agents%s: %d %s, want 400 invalid", q, r.status, r.body)
		}
	}

	// One agent.
	r := e.do("GET", "/api/v1/agents/"+idA.String(), nil)
	var a steward.Agent
	r.decode(t, &a)
	if r.status != 200 || a.ID != idA || a.Attribute("host.name") != "alpha" || !a.Online {
		t.Errorf("GET agent: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/agents/not-a-uid", nil); r.status != 400 || r.errorCode(t) != steward.EINVALID {
		t.Errorf("bad id: %d %s", r.status, r.body)
	}
	unknown := steward.NewInstanceUID()
	if r := e.do("GET", "/api/v1/agents/"+unknown.String(), nil); r.status != 404 || r.errorCode(t) != steward.ENOTFOUND {
		t.Errorf("unknown id: %d %s", r.status, r.body)
	}

	// Labels.
	r = e.do("PUT", "/api/v1/agents/"+idB.String()+"/labels", map[string]any{"labels": map[string]string{"env": "prod"}})
	r.decode(t, &a)
	if r.status != 200 || a.Labels["env"] != "prod" {
		t.Fatalf("PUT labels: %d %s", r.status, r.body)
	}
	if got := ids(list("?selector=env%3Dprod")); len(got) != 1 || !got[idB] {
		t.Errorf("label selector: got %v", got)
	}
	r = e.do("PUT", "/api/v1/agents/"+idB.String()+"/labels", `{"lables":{"env":"dev"}}`)
	if r.status != 400 || !strings.Contains(r.errorMessage(t), `"lables"`) {
		t.Errorf("unknown field: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/v1/agents/"+unknown.String()+"/labels", `{"labels":{}}`); r.status != 404 {
		t.Errorf("labels of unknown agent: %d %s", r.status, r.body)
	}

	// Events of one agent (written asynchronously by the control plane).
	eventually(t, "agent.connected event", func() bool {
		r := e.do("GET", "/api/v1/agents/"+idA.String()+"/events?limit=10", nil)
		var ev stewardhttp.EventsResponse
		r.decode(t, &ev)
		for _, x := range ev.Events {
			if x.Type == steward.EventAgentConnected && x.AgentID == idA {
				return true
			}
		}
		return false
	})
	if r := e.do("GET", "/api/v1/agents/"+unknown.String()+"/events", nil); r.status != 404 {
		t.Errorf("events of unknown agent: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/agents/"+idA.String()+"/events?limit=5000", nil); r.status != 400 {
		t.Errorf("limit over max: %d", r.status)
	}

	// Delete.
	if r := e.do("DELETE", "/api/v1/agents/"+idC.String(), nil); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/agents/"+idC.String(), nil); r.status != 404 {
		t.Errorf("after DELETE: %d", r.status)
	}
}

func TestAgentCommands(t *testing.T) {
	e := newEnv(t, nil)
	idR, connR := e.connect(agentSpec{name: "otelcol", caps: steward.AgentAcceptsRestartCommand, customCaps: []string{"io.example.ping"}})
	idN, _ := e.connect(agentSpec{name: "otelcol"})

	if r := e.do("POST", "/api/v1/agents/"+idR.String()+"/restart", nil); r.status != 202 {
		t.Fatalf("restart: %d %s", r.status, r.body)
	}
	found := false
	for _, m := range connR.messages() {
		if m.Command != nil && m.Command.Type == protobufs.CommandType_CommandType_Restart {
			found = true
		}
	}
	if !found {
		t.Error("the agent was not sent a restart command")
	}
	if r := e.do("POST", "/api/v1/agents/"+idN.String()+"/restart", nil); r.status != 400 || r.errorCode(t) != steward.EINVALID {
		t.Errorf("restart of an agent without the capability: %d %s", r.status, r.body)
	}

	r := e.do("POST", "/api/v1/agents/"+idR.String()+"/custom-messages", map[string]any{"capability": "io.example.ping", "type": "ping", "data": []byte("hello")})
	if r.status != 202 {
		t.Fatalf("custom message: %d %s", r.status, r.body)
	}
	found = false
	for _, m := range connR.messages() {
		if cm := m.CustomMessage; cm != nil && cm.Capability == "io.example.ping" && cm.Type == "ping" && string(cm.Data) == "hello" {
			found = true
		}
	}
	if !found {
		t.Error("the agent was not sent the custom message")
	}
	r = e.do("POST", "/api/v1/agents/"+idR.String()+"/custom-messages", `{"capability":"io.other","type":"x"}`)
	if r.status != 400 {
		t.Errorf("undeclared capability: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/api/v1/agents/"+idR.String()+"/custom-messages", `{"capability":"io.example.ping","type":"x","data":"not base64!"}`)
	if r.status != 400 || r.errorCode(t) != steward.EINVALID {
		t.Errorf("bad base64: %d %s", r.status, r.body)
	}
}

func TestConfigsAndAssignments(t *testing.T) {
	e := newEnv(t, nil)
	put := func(body string) (int, steward.Config) {
		t.Helper()
		r := e.do("PUT", "/api/v1/configs/collector", body)
		var c steward.Config
		if r.status < 300 {
			r.decode(t, &c)
		}
		return r.status, c
	}
	v1 := `{"files":{"":{"body":"receivers:\n  otlp: {}\nexporters:\n  debug: {}\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}\n","content_type":"text/yaml"}},"comment":"first"}`
	v2 := `{"files":{"":{"body":"receivers:\n  otlp: {}\nexporters:\n  otlphttp: {}\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\n","content_type":"text/yaml"}},"comment":"second"}`
	if st, c := put(v1); st != 201 || c.Version != 1 || c.Comment != "first" || c.Author != "anonymous" || len(c.Hash) != 32 {
		t.Fatalf("first PUT: %d %+v", st, c)
	}
	if st, c := put(v1); st != 200 || c.Version != 1 {
		t.Fatalf("identical PUT: %d %+v", st, c)
	}
	if st, c := put(v2); st != 201 || c.Version != 2 {
		t.Fatalf("second PUT: %d %+v", st, c)
	}

	var list stewardhttp.ConfigsResponse
	e.do("GET", "/api/v1/configs", nil).decode(t, &list)
	if len(list.Configs) != 1 || list.Configs[0].Version != 2 {
		t.Errorf("configs: %+v", list.Configs)
	}
	var c steward.Config
	e.do("GET", "/api/v1/configs/collector?version=1", nil).decode(t, &c)
	if c.Version != 1 || !strings.Contains(string(c.Files[""].Body), "debug") {
		t.Errorf("version 1: %+v", c)
	}
	var hist stewardhttp.VersionsResponse
	e.do("GET", "/api/v1/configs/collector/versions", nil).decode(t, &hist)
	if len(hist.Versions) != 2 || hist.Versions[0].Version != 2 || hist.Versions[1].Version != 1 {
		t.Errorf("versions: %+v", hist.Versions)
	}

	var d stewardhttp.DiffResponse
	e.do("GET", "/api/v1/configs/collector/diff?from=1&to=2", nil).decode(t, &d)
	want := "--- collector@v1\n+++ collector@v2\n@@ -1,5 +1,5 @@\n receivers:\n   otlp: {}\n exporters:\n-  debug: {}\n-service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}\n+  otlphttp: {}\n+service: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\n"
	if d.Diff != want || d.From != 1 || d.To != 2 {
		t.Errorf("diff:\n%s\nwant:\n%s", d.Diff, want)
	}
	var d2 stewardhttp.DiffResponse
	e.do("GET", "/api/v1/configs/collector/diff", nil).decode(t, &d2)
	if d2 != d {
		t.Errorf("default diff %+v, want %+v", d2, d)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/v1/configs/-bad", "", 400},
		{"GET", "/api/v1/configs/missing", "", 404},
		{"GET", "/api/v1/configs/collector?version=x", "", 400},
		{"GET", "/api/v1/configs/collector?version=9", "", 404},
		{"GET", "/api/v1/configs/missing/versions", "", 404},
		{"GET", "/api/v1/configs/collector/diff?from=0&to=2", "", 400},
		{"GET", "/api/v1/configs/collector/diff?from=1&to=7", "", 404},
		{"PUT", "/api/v1/configs/empty", `{"files":{}}`, 400},
		{"PUT", "/api/v1/configs/x", `{"files":{"":{"body":"a"}},"author":"mallory"}`, 400},
		{"PUT", "/api/v1/configs/x", `{"files":{"":{"body":42}}}`, 400},
		{"PUT", "/api/v1/configs/x", `{"files":`, 400},
		{"PUT", "/api/v1/configs/x", ``, 400},
		{"PUT", "/api/v1/configs/x", `{"files":{"":{"body":"a"}}} {}`, 400},
	} {
		var body any
		if tc.method == "PUT" {
			body = tc.body
		}
		r := e.do(tc.method, tc.path, body)
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, r.status, r.body, tc.status)
		} else {
			r.errorCode(t)
		}
	}

	// Assignments.
	agent, _ := e.connect(agentSpec{name: "otelcol"})
	r := e.do("PUT", "/api/v1/assignments/all-otelcol", `{"config":"collector","selector":"service.name=otelcol"}`)
	var as steward.Assignment
	r.decode(t, &as)
	if r.status != 201 || as.Name != "all-otelcol" || as.ConfigName != "collector" {
		t.Fatalf("PUT assignment: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/v1/assignments/all-otelcol", `{"name":"all-otelcol","config":"collector","selector":"service.name=otelcol","priority":5}`); r.status != 200 {
		t.Errorf("replace assignment: %d %s", r.status, r.body)
	}
	e.do("GET", "/api/v1/assignments/all-otelcol", nil).decode(t, &as)
	if as.Priority != 5 {
		t.Errorf("assignment after replace: %+v", as)
	}
	var al stewardhttp.AssignmentsResponse
	e.do("GET", "/api/v1/assignments", nil).decode(t, &al)
	if len(al.Assignments) != 1 {
		t.Errorf("assignments: %+v", al.Assignments)
	}
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/api/v1/assignments/x", `{"config":"collector","selector":"a=b","agent_id":"` + agent.String() + `"}`, 400},
		{"/api/v1/assignments/x", `{"config":"collector"}`, 400},
		{"/api/v1/assignments/x", `{"config":"nope","selector":"a=b"}`, 404},
		{"/api/v1/assignments/x", `{"name":"y","config":"collector","selector":"a=b"}`, 400},
		{"/api/v1/assignments/x", `{"config":"collector","selector":"a in ("}`, 400},
		{"/api/v1/assignments/x", `{"config":"collector","agent_id":"zz"}`, 400},
	} {
		if r := e.do("PUT", tc.path, tc.body); r.status != tc.status {
			t.Errorf("PUT %s %s: %d %s, want %d", tc.path, tc.body, r.status, r.body, tc.status)
		} else {
			r.errorCode(t)
		}
	}

	// The agent's desired config now holds the assigned file.
	var dc stewardhttp.DesiredConfigResponse
	r = e.do("GET", "/api/v1/agents/"+agent.String()+"/desired-config", nil)
	r.decode(t, &dc)
	files, hash, err := e.cp.DesiredConfig(context.Background(), agent)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || len(dc.Files) != 1 || len(files) != 1 || !bytes.Equal(dc.Hash, hash) ||
		!bytes.Equal(dc.Files["collector"].Body, files["collector"].Body) || !strings.Contains(string(dc.Files["collector"].Body), "otlphttp") {
		t.Errorf("desired config: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/agents/"+steward.NewInstanceUID().String()+"/desired-config", nil); r.status != 404 {
		t.Errorf("desired config of unknown agent: %d", r.status)
	}

	if r := e.do("DELETE", "/api/v1/configs/collector", nil); r.status != 409 || r.errorCode(t) != steward.ECONFLICT {
		t.Errorf("delete assigned config: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/v1/assignments/all-otelcol", nil); r.status != 204 {
		t.Errorf("delete assignment: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/v1/assignments/all-otelcol", nil); r.status != 404 {
		t.Errorf("delete assignment twice: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/v1/configs/collector", nil); r.status != 204 {
		t.Errorf("delete config: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/configs/collector", nil); r.status != 404 {
		t.Errorf("deleted config: %d", r.status)
	}
}

func TestSummary(t *testing.T) {
	e := newEnv(t, nil)
	e.connect(agentSpec{name: "otelcol", version: "1.0", healthy: ptr(true), configStatus: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED})
	e.connect(agentSpec{name: "otelcol", version: "2.0", healthy: ptr(false), configStatus: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED})
	e.connect(agentSpec{name: "fluentbit", version: "1.0"})
	var s stewardhttp.SummaryResponse
	r := e.do("GET", "/api/v1/summary", nil)
	r.decode(t, &s)
	if r.status != 200 || s.Total != 3 || s.Online != 3 || s.Offline != 0 || s.Healthy != 1 || s.Unhealthy != 2 ||
		s.ByType["otelcol"] != 2 || s.ByType["fluentbit"] != 1 || s.ByVersion["1.0"] != 2 || s.ByVersion["2.0"] != 1 ||
		s.ByConfigStatus["APPLIED"] != 1 || s.ByConfigStatus["FAILED"] != 1 || s.ByConfigStatus["UNSET"] != 1 {
		t.Errorf("summary: %d %s", r.status, r.body)
	}
}

func TestFleetEvents(t *testing.T) {
	e := newEnv(t, nil)
	id, _ := e.connect(agentSpec{name: "otelcol"})
	e.do("PUT", "/api/v1/configs/c1", `{"files":{"":{"body":"a: 1\n"}}}`)
	eventually(t, "events in the log", func() bool {
		var ev stewardhttp.EventsResponse
		e.do("GET", "/api/v1/events?limit=50", nil).decode(t, &ev)
		var connected, changed bool
		for _, x := range ev.Events {
			connected = connected || (x.Type == steward.EventAgentConnected && x.AgentID == id)
			changed = changed || x.Type == steward.EventConfigChanged
		}
		return connected && changed
	})
	var ev stewardhttp.EventsResponse
	e.do("GET", "/api/v1/events?type="+steward.EventConfigChanged, nil).decode(t, &ev)
	if len(ev.Events) == 0 {
		t.Error("no events of the filtered type")
	}
	for _, x := range ev.Events {
		if x.Type != steward.EventConfigChanged {
			t.Errorf("type filter let through %q", x.Type)
		}
	}
	for _, q := range []string{"?limit=0", "?since=yesterday", "?agent=bad"} {
		if r := e.do("GET", "/api/v1/events"+q, nil); r.status != 400 {
			t.Errorf("events%s: %d", q, r.status)
		}
	}

	noLog := newEnv(t, func(o *stewardhttp.Options) { o.EventLog, o.Events = nil, nil })
	if r := noLog.do("GET", "/api/v1/events", nil); r.status != 501 || r.errorCode(t) != steward.ENOTIMPLEMENTED {
		t.Errorf("without event log: %d %s", r.status, r.body)
	}
	if r := noLog.do("GET", "/api/v1/events/stream", nil); r.status != 501 {
		t.Errorf("stream without bus: %d %s", r.status, r.body)
	}
}

// failingAgents is the real service with one method made to fail or panic,
// to test how the server reports failures it cannot explain.
type failingAgents struct {
	steward.AgentService
	panicOnAgent bool
}

func (f failingAgents) Agents(ctx context.Context, flt steward.AgentFilter) ([]*steward.Agent, int, error) {
	return nil, 0, fmt.Errorf("database password is hunter2")
}

func (f failingAgents) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	if f.panicOnAgent {
		panic("boom")
	}
	return f.AgentService.Agent(ctx, id)
}

func TestErrors(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.Agents = failingAgents{AgentService: o.Agents, panicOnAgent: true} })

	r := e.do("GET", "/api/v1/agents", nil)
	if r.status != 500 || r.errorCode(t) != steward.EINTERNAL || strings.Contains(string(r.body), "hunter2") {
		t.Errorf("internal error: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/api/v1/agents/"+steward.NewInstanceUID().String(), nil)
	if r.status != 500 || r.errorCode(t) != steward.EINTERNAL || strings.Contains(string(r.body), "boom") {
		t.Errorf("panic: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/configs", nil); r.status != 200 {
		t.Errorf("after a panic the server still serves: %d", r.status)
	}

	if r := e.do("GET", "/api/v1/nothing", nil); r.status != 404 || r.errorCode(t) != steward.ENOTFOUND {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/api/v1/configs/x", "{}")
	if r.status != 405 || r.errorCode(t) != steward.EINVALID || r.header.Get("Allow") != "GET, PUT, DELETE" {
		t.Errorf("wrong method: %d %s Allow=%q", r.status, r.body, r.header.Get("Allow"))
	}

	big := `{"files":{"":{"body":"` + strings.Repeat("a", stewardhttp.MaxBodySize) + `"}}}`
	r = e.do("PUT", "/api/v1/configs/big", big)
	if r.status != http.StatusRequestEntityTooLarge || r.errorCode(t) != steward.EINVALID {
		t.Errorf("big body: %d %.200s", r.status, r.body)
	}
	// Same, without a Content-Length (chunked).
	req, _ := http.NewRequest("PUT", e.ts.URL+"/api/v1/configs/big", struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("big chunked body: %d", resp.StatusCode)
	}
	if r := e.do("GET", "/api/v1/configs/big", nil); r.status != 404 {
		t.Errorf("a rejected body was stored: %d", r.status)
	}

	if r := e.do("PUT", "/api/v1/configs/x", `{"files":{"":{"body":"a"}}}`, "Content-Type", "text/plain"); r.status != 400 {
		t.Errorf("wrong content type: %d %s", r.status, r.body)
	}
}

func TestHealthAndMounts(t *testing.T) {
	ready := fmt.Errorf("not yet")
	e := newEnv(t, func(o *stewardhttp.Options) {
		o.UI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ui:"+r.URL.Path) })
		o.OpAMP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "opamp") })
		o.Ready = func(ctx context.Context) error { return ready }
	})
	if r := e.do("GET", "/healthz", nil); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
	if r := e.do("GET", "/readyz", nil); r.status != 503 || r.errorCode(t) != steward.EUNAVAILABLE {
		t.Errorf("readyz when not ready: %d %s", r.status, r.body)
	}
	ready = nil
	if r := e.do("GET", "/readyz", nil); r.status != 200 {
		t.Errorf("readyz when ready: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/agents/x", nil); string(r.body) != "ui:/agents/x" {
		t.Errorf("UI mount: %s", r.body)
	}
	if r := e.do("POST", "/v1/opamp", "x"); string(r.body) != "opamp" {
		t.Errorf("OpAMP mount: %s", r.body)
	}
	if r := e.do("GET", "/api/v1/unknown", nil); r.status != 404 || r.errorCode(t) != steward.ENOTFOUND {
		t.Errorf("API 404 must not fall through to the UI: %d %s", r.status, r.body)
	}
}

// TestRolloutErrors checks that every rollout route's refusal reaches the
// client with its status and code (the actions once dropped their error and
// answered 200 with an empty body).
func TestRolloutErrors(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.Rollouts = o.Agents.(steward.RolloutService) })
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/api/v1/rollouts/nope", "", 404, steward.ENOTFOUND},
		{"POST", "/api/v1/rollouts/nope/pause", "", 404, steward.ENOTFOUND},
		{"POST", "/api/v1/rollouts/nope/resume", "", 404, steward.ENOTFOUND},
		{"POST", "/api/v1/rollouts/nope/rollback", "", 404, steward.ENOTFOUND},
		{"POST", "/api/v1/rollouts/-bad-/pause", "", 400, steward.EINVALID},
		{"POST", "/api/v1/rollouts", "{}", 400, steward.EINVALID},
		{"POST", "/api/v1/rollouts", `{"name":"r","assignment":"missing","to_version":2,"stages":[{"percent":100}]}`, 404, steward.ENOTFOUND},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		if r := e.do(c.method, c.path, body); r.status != c.status || r.errorCode(t) != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.status, r.body, c.status, c.code)
		}
	}

	without := newEnv(t, nil)
	if r := without.do("POST", "/api/v1/rollouts/nope/pause", nil); r.status != 501 || r.errorCode(t) != steward.ENOTIMPLEMENTED {
		t.Errorf("without a rollout service: %d %s, want 501", r.status, r.body)
	}
}
