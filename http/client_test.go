package http_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

func TestClient(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.APITokens = []string{"secret"} })
	ctx := context.Background()
	c := stewardhttp.NewClient(e.ts.URL+"/", "secret")
	id, conn := e.connect(agentSpec{name: "otelcol", version: "1.2", caps: steward.AgentAcceptsRestartCommand, customCaps: []string{"io.x"}})

	agents, total, err := c.Agents(ctx, steward.AgentFilter{Selector: "service.name=otelcol", Online: ptr(true), Limit: 10})
	if err != nil || total != 1 || len(agents) != 1 || agents[0].ID != id || agents[0].Attribute("service.version") != "1.2" {
		t.Fatalf("Agents: %v %d %v", agents, total, err)
	}
	if !agents[0].Capabilities.Has(steward.AgentAcceptsRestartCommand) {
		t.Errorf("capabilities lost: %v", agents[0].Capabilities)
	}
	if err := c.SetAgentLabels(ctx, id, map[string]string{"env": "prod"}); err != nil {
		t.Fatal(err)
	}
	a, err := c.Agent(ctx, id)
	if err != nil || a.Labels["env"] != "prod" {
		t.Fatalf("Agent: %+v %v", a, err)
	}
	if d, err := c.RestartAgent(ctx, id); err != nil || d.Status != steward.DeliverySent {
		t.Errorf("RestartAgent: %+v, %v; want sent (a WebSocket agent)", d, err)
	}
	if d, err := c.SendCustomMessage(ctx, id, steward.CustomMessage{Capability: "io.x", Type: "t", Data: []byte{0, 1, 2}}); err != nil || d.Status != steward.DeliverySent {
		t.Errorf("SendCustomMessage: %+v, %v", d, err)
	}
	sentData := false
	for _, m := range conn.messages() {
		if m.CustomMessage != nil && string(m.CustomMessage.Data) == "\x00\x01\x02" {
			sentData = true
		}
	}
	if !sentData {
		t.Error("custom message data did not reach the agent")
	}

	stored, created, err := c.ApplyConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("a: 1\n"), ContentType: "text/yaml"}}, Comment: "c1"})
	if err != nil || !created || stored.Version != 1 || stored.Author != "token-1" {
		t.Fatalf("ApplyConfig: %+v %v %v", stored, created, err)
	}
	if _, created, err := c.ApplyConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("a: 1\n"), ContentType: "text/yaml"}}}); err != nil || created {
		t.Errorf("identical ApplyConfig: created=%v %v", created, err)
	}
	if _, err := c.PutConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("a: 2\n")}}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Config(ctx, "base", 1)
	if err != nil || string(got.Files[""].Body) != "a: 1\n" || got.Files[""].ContentType != "text/yaml" {
		t.Errorf("Config v1: %+v %v", got, err)
	}
	if cs, err := c.Configs(ctx); err != nil || len(cs) != 1 || cs[0].Version != 2 {
		t.Errorf("Configs: %v %v", cs, err)
	}
	if h, err := c.ConfigHistory(ctx, "base"); err != nil || len(h) != 2 {
		t.Errorf("ConfigHistory: %v %v", h, err)
	}
	d, err := c.ConfigDiff(ctx, "base", 1, 2)
	if err != nil || !strings.Contains(d.Diff, "-a: 1\n+a: 2\n") {
		t.Errorf("ConfigDiff: %+v %v", d, err)
	}
	as, err := c.PutAssignment(ctx, &steward.Assignment{Name: "one", ConfigName: "base", AgentID: &id})
	if err != nil || as.AgentID == nil || *as.AgentID != id {
		t.Fatalf("PutAssignment: %+v %v", as, err)
	}
	if as, err := c.Assignment(ctx, "one"); err != nil || as.ConfigName != "base" {
		t.Errorf("Assignment: %+v %v", as, err)
	}
	if l, err := c.Assignments(ctx); err != nil || len(l) != 1 {
		t.Errorf("Assignments: %v %v", l, err)
	}
	files, hash, err := c.DesiredConfig(ctx, id)
	if err != nil || string(files["base"].Body) != "a: 2\n" || len(hash) == 0 {
		t.Errorf("DesiredConfig: %v %x %v", files, hash, err)
	}
	if s, err := c.Summary(ctx); err != nil || s.Total != 1 || s.ByType["otelcol"] != 1 {
		t.Errorf("Summary: %+v %v", s, err)
	}
	eventually(t, "agent events", func() bool {
		evs, err := c.AgentEvents(ctx, id, 10)
		return err == nil && len(evs) > 0
	})
	if evs, err := c.Events(ctx, steward.EventFilter{AgentID: &id, Types: []string{steward.EventAgentConnected}, Limit: 5}); err != nil {
		t.Errorf("Events: %v", err)
	} else {
		for _, ev := range evs {
			if ev.AgentID != id || ev.Type != steward.EventAgentConnected {
				t.Errorf("Events filter let through %+v", ev)
			}
		}
	}

	// Errors come back as *steward.Error with the server's code.
	if err := c.DeleteConfig(ctx, "base"); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Errorf("DeleteConfig while assigned: %v", err)
	}
	if err := c.DeleteAssignment(ctx, "one"); err != nil {
		t.Error(err)
	}
	if err := c.DeleteConfig(ctx, "base"); err != nil {
		t.Error(err)
	}
	if _, err := c.Config(ctx, "base", 0); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("deleted config: %v", err)
	}
	if _, err := c.Config(ctx, "bad name", 0); steward.ErrorCode(err) != steward.EINVALID {
		t.Errorf("bad name: %v", err)
	}
	if err := c.DeleteAgent(ctx, id); err != nil {
		t.Error(err)
	}
	if _, err := c.Agent(ctx, id); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("deleted agent: %v", err)
	}
	bad := stewardhttp.NewClient(e.ts.URL, "wrong")
	if _, err := bad.Configs(ctx); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Errorf("wrong token: %v", err)
	}
}

func TestClientTransportErrors(t *testing.T) {
	ctx := context.Background()
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = stewardhttp.NewClient("http://"+addr, "").Configs(ctx)
	if steward.ErrorCode(err) != steward.EUNAVAILABLE || !strings.Contains(steward.ErrorMessage(err), addr) {
		t.Errorf("nothing listening: %v", err)
	}
	// A proxy answering with a non-JSON error.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer ts.Close()
	_, err = stewardhttp.NewClient(ts.URL, "").Configs(ctx)
	if steward.ErrorCode(err) != steward.EUNAVAILABLE || !strings.Contains(steward.ErrorMessage(err), "upstream down") {
		t.Errorf("non-JSON 502: %v", err)
	}
}
