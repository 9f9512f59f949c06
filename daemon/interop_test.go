package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	opampclient "github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/daemon"
)

// server runs a whole `steward server` on loopback ports.
type server struct {
	opamp, api string
	cancel     context.CancelFunc
	done       chan error
}

func startServer(t *testing.T, dir string) *server {
	t.Helper()
	return startServerWith(t, daemon.Options{DataDir: dir})
}

func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

func (s *server) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := nethttp.NewRequest(method, s.api+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// agent is an opamp-go client acting as a well-behaved agent: it applies
// every remote config it is offered and reports it.
type agent struct {
	uid       types.InstanceUid
	client    opampclient.OpAMPClient
	mu        sync.Mutex
	effective *protobufs.AgentConfigMap
	restarts  atomic.Int32
	custom    atomic.Value
}

func startAgent(t *testing.T, transport, url, env string) *agent {
	t.Helper()
	a := &agent{uid: types.InstanceUid(steward.NewInstanceUID()), effective: &protobufs.AgentConfigMap{}}
	if transport == "ws" {
		a.client = opampclient.NewWebSocket(nil)
	} else {
		hc := opampclient.NewHTTP(nil)
		hc.SetPollingInterval(100 * time.Millisecond)
		a.client = hc
	}
	str := func(k, v string) *protobufs.KeyValue {
		return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
	}
	if err := a.client.SetAgentDescription(&protobufs.AgentDescription{
		IdentifyingAttributes:    []*protobufs.KeyValue{str("service.name", "io.opentelemetry.collector"), str("service.version", "0.149.0")},
		NonIdentifyingAttributes: []*protobufs.KeyValue{str("env", env), str("host.name", "host-"+transport)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.client.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "StatusOK"}); err != nil {
		t.Fatal(err)
	}
	caps := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsRestartCommand
	ctx := context.Background()
	err := a.client.Start(ctx, types.StartSettings{
		OpAMPServerURL:    url,
		InstanceUid:       a.uid,
		Capabilities:      caps,
		EnableCompression: true,
		Callbacks: types.Callbacks{
			GetEffectiveConfig: func(ctx context.Context) (*protobufs.EffectiveConfig, error) {
				a.mu.Lock()
				defer a.mu.Unlock()
				return &protobufs.EffectiveConfig{ConfigMap: a.effective}, nil
			},
			OnMessage: func(ctx context.Context, msg *types.MessageData) {
				if msg.RemoteConfig != nil {
					a.mu.Lock()
					a.effective = msg.RemoteConfig.Config
					a.mu.Unlock()
					_ = a.client.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
						LastRemoteConfigHash: msg.RemoteConfig.ConfigHash,
						Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
					})
					_ = a.client.UpdateEffectiveConfig(ctx)
				}
				if msg.CustomMessage != nil {
					a.custom.Store(string(msg.CustomMessage.Data))
				}
			},
			OnCommand: func(ctx context.Context, c *protobufs.ServerToAgentCommand) error {
				if c.Type == protobufs.CommandType_CommandType_Restart {
					a.restarts.Add(1)
				}
				return nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.client.SetCustomCapabilities(&protobufs.CustomCapabilities{Capabilities: []string{"io.steward.test"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.client.Stop(ctx)
	})
	return a
}

func (a *agent) id() string { return steward.InstanceUID(a.uid).String() }

func TestOpAMPGoClientsAgainstStewardServer(t *testing.T) {
	srv := startServer(t, t.TempDir())
	ws := startAgent(t, "ws", "ws://"+srv.opamp+"/v1/opamp", "prod")
	hp := startAgent(t, "http", "http://"+srv.opamp+"/v1/opamp", "prod")
	other := startAgent(t, "ws", "ws://"+srv.opamp+"/v1/opamp", "dev")

	for _, a := range []*agent{ws, hp, other} {
		eventually(t, "agent "+a.id()+" in the inventory", func() bool {
			var got steward.Agent
			if srv.call(t, "GET", "/api/v1/agents/"+a.id(), nil, nil) != 200 {
				return false
			}
			srv.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got)
			return got.Online && got.Attribute("service.name") == "io.opentelemetry.collector" && got.Healthy()
		})
	}
	var list struct {
		Agents []steward.Agent `json:"agents"`
		Total  int             `json:"total"`
	}
	srv.call(t, "GET", "/api/v1/agents?selector=env%3Dprod", nil, &list)
	if list.Total != 2 {
		t.Fatalf("selector env=prod: %d agents", list.Total)
	}

	// Push a config to env=prod: both transports apply and report it.
	body := "receivers:\n  nop:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [nop]\n      exporters: [nop]\n"
	srv.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": body, "content_type": "text/yaml"}}}, &steward.Config{})
	srv.call(t, "PUT", "/api/v1/assignments/prod", map[string]any{"name": "prod", "config": "base", "selector": "env=prod"}, &steward.Assignment{})
	for _, a := range []*agent{ws, hp} {
		eventually(t, "agent "+a.id()+" APPLIED", func() bool {
			var got steward.Agent
			srv.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got)
			return got.RemoteConfigStatus != nil && got.RemoteConfigStatus.Status == steward.RemoteConfigApplied &&
				got.EffectiveConfig != nil && string((*got.EffectiveConfig)["base"].Body) == body
		})
	}
	var dev steward.Agent
	srv.call(t, "GET", "/api/v1/agents/"+other.id(), nil, &dev)
	if dev.RemoteConfigStatus != nil && len(dev.RemoteConfigStatus.LastRemoteConfigHash) > 0 {
		t.Fatalf("dev agent got a config: %+v", dev.RemoteConfigStatus)
	}

	// Restart and custom messages reach both transports.
	for _, a := range []*agent{ws, hp} {
		if code := srv.call(t, "POST", "/api/v1/agents/"+a.id()+"/restart", nil, nil); code >= 300 {
			t.Fatalf("restart %s: %d", a.id(), code)
		}
		eventually(t, "restart command at "+a.id(), func() bool { return a.restarts.Load() == 1 })
		code := srv.call(t, "POST", "/api/v1/agents/"+a.id()+"/custom-messages",
			map[string]any{"capability": "io.steward.test", "type": "ping", "data": []byte("hello")}, nil)
		if code >= 300 {
			t.Fatalf("custom message %s: %d", a.id(), code)
		}
		eventually(t, "custom message at "+a.id(), func() bool { v, _ := a.custom.Load().(string); return v == "hello" })
	}
}

func TestServerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	ws := startAgent(t, "ws", "ws://"+srv.opamp+"/v1/opamp", "prod")
	eventually(t, "agent online", func() bool {
		var got steward.Agent
		return srv.call(t, "GET", "/api/v1/agents/"+ws.id(), nil, nil) == 200 &&
			srv.call(t, "GET", "/api/v1/agents/"+ws.id(), nil, &got) == 200 && got.Online
	})
	srv.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": "a: 1\n"}}}, &steward.Config{})
	srv.call(t, "PUT", "/api/v1/assignments/all", map[string]any{"name": "all", "config": "base", "selector": "env"}, &steward.Assignment{})
	eventually(t, "APPLIED", func() bool {
		var got steward.Agent
		srv.call(t, "GET", "/api/v1/agents/"+ws.id(), nil, &got)
		return got.RemoteConfigStatus != nil && got.RemoteConfigStatus.Status == steward.RemoteConfigApplied
	})
	srv.stop()

	// Same data directory, same port: the agent reconnects by itself and
	// nothing is resent, since it already runs the desired config.
	host := srv.opamp
	srv2 := &server{}
	ctx, cancel := context.WithCancel(context.Background())
	srv2.cancel, srv2.done = cancel, make(chan error, 1)
	ready := make(chan net.Addr, 1)
	go func() {
		srv2.done <- daemon.Run(ctx, daemon.Options{OpAMPAddr: host, HTTPAddr: "127.0.0.1:0", DataDir: dir, AdminPassword: "-", Replica: "test",
			Ready: func(o, h net.Addr) { ready <- h }})
	}()
	select {
	case h := <-ready:
		srv2.opamp, srv2.api = host, "http://"+h.String()
	case err := <-srv2.done:
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(srv2.stop)
	var got steward.Agent
	srv2.call(t, "GET", "/api/v1/agents/"+ws.id(), nil, &got)
	if got.Online {
		t.Fatal("agent still marked online after the server stopped")
	}
	if got.RemoteConfigStatus == nil || got.RemoteConfigStatus.Status != steward.RemoteConfigApplied || got.Description == nil {
		t.Fatalf("state lost across restart: %+v", got)
	}
	eventually(t, "agent back online", func() bool {
		var a steward.Agent
		srv2.call(t, "GET", "/api/v1/agents/"+ws.id(), nil, &a)
		return a.Online
	})
	var events struct {
		Events []steward.Event `json:"events"`
	}
	srv2.call(t, "GET", "/api/v1/agents/"+ws.id()+"/events?limit=100", nil, &events)
	sent := 0
	for _, e := range events.Events {
		if e.Type == steward.EventRemoteConfigSent {
			sent++
		}
	}
	if sent != 1 {
		t.Fatalf("config offered %d times across the restart, want once: %v", sent, summarize(events.Events))
	}
}

func summarize(evs []steward.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %s %v; ", e.Type, e.Message, e.Details)
	}
	return b.String()
}
