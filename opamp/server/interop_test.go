package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
)

// Interop: opamp-go's own clients (v0.23.0) against our server.

type nopLogger struct{}

func (nopLogger) Debugf(context.Context, string, ...any) {}
func (nopLogger) Errorf(context.Context, string, ...any) {}

type received struct {
	mu      sync.Mutex
	configs []string
	errors  []string
}

func (r *received) config() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.configs) == 0 {
		return ""
	}
	return r.configs[len(r.configs)-1]
}

func interopSettings(url string, rec *received) types.StartSettings {
	uid, _ := types.InstanceUid{}, 0
	copy(uid[:], uid1)
	return types.StartSettings{
		OpAMPServerURL:    url,
		InstanceUid:       uid,
		EnableCompression: true,
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth,
		Callbacks: types.Callbacks{
			OnMessage: func(ctx context.Context, m *types.MessageData) {
				if m.RemoteConfig != nil {
					rec.mu.Lock()
					rec.configs = append(rec.configs, string(m.RemoteConfig.GetConfig().GetConfigMap()[""].GetBody()))
					rec.mu.Unlock()
				}
			},
			OnError: func(ctx context.Context, e *protobufs.ServerErrorResponse) {
				rec.mu.Lock()
				rec.errors = append(rec.errors, e.GetErrorMessage())
				rec.mu.Unlock()
			},
		},
	}
}

func remoteConfig(body string) *protobufs.ServerToAgent {
	return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{
		ConfigHash: []byte("hash-" + body),
		Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"": {Body: []byte(body), ContentType: "text/yaml"},
		}},
	}}
}

func description(name string) *protobufs.AgentDescription {
	return &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{
		Key: "service.name", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: name}},
	}}}
}

// find returns the last message the handler received matching f.
func (h *testHandler) find(f func(*protobufs.AgentToServer) bool) *protobufs.AgentToServer {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.messages) - 1; i >= 0; i-- {
		if f(h.messages[i]) {
			return h.messages[i]
		}
	}
	return nil
}

func TestInteropOpampGoWebSocketClient(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return nil, nil
	}
	var extensions []string
	var emu sync.Mutex
	h.accept = func(r *http.Request) (any, error) {
		emu.Lock()
		extensions = append(extensions, r.Header.Get("Sec-WebSocket-Extensions"))
		emu.Unlock()
		return nil, nil
	}
	s, hs := startServer(t, h, Config{})
	rec := &received{}
	c := client.NewWebSocket(nopLogger{})
	if err := c.SetAgentDescription(description("interop-ws")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetHealth(&protobufs.ComponentHealth{Status: "starting"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background(), interopSettings(wsURL(hs), rec)); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Stop(context.Background())
		}
	}()
	// It connects and reports its description.
	eventually(t, "agent description", func() bool {
		return h.find(func(m *protobufs.AgentToServer) bool { return m.AgentDescription != nil }) != nil
	})
	first := h.find(func(m *protobufs.AgentToServer) bool { return m.AgentDescription != nil })
	if string(first.InstanceUid) != string(uid1) {
		t.Fatalf("instance uid %x", first.InstanceUid)
	}
	// With EnableCompression it offers permessage-deflate, which we
	// accept: everything below travels compressed.
	emu.Lock()
	if !strings.Contains(extensions[0], "permessage-deflate") {
		t.Fatalf("client offered extensions %q", extensions[0])
	}
	emu.Unlock()
	// A pushed remote config reaches it, and it reports applying it.
	if err := h.conn(0).Send(remoteConfig("receivers: {}")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "config delivered", func() bool { return rec.config() == "receivers: {}" })
	if err := c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
		LastRemoteConfigHash: []byte("hash-receivers: {}"),
		Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "config status", func() bool {
		return h.find(func(m *protobufs.AgentToServer) bool {
			return m.GetRemoteConfigStatus().GetStatus() == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED
		}) != nil
	})
	// Health status.
	if err := c.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "health", func() bool {
		return h.find(func(m *protobufs.AgentToServer) bool { return m.GetHealth().GetStatus() == "ok" }) != nil
	})
	// Stop: agent_disconnect is delivered, then the connection ends.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped = true
	eventually(t, "agent_disconnect and OnClose", func() bool {
		return h.find(func(m *protobufs.AgentToServer) bool { return m.AgentDisconnect != nil }) != nil &&
			h.closedCount(h.conn(0)) == 1
	})
	if s.Stats().Errors != 0 {
		t.Fatalf("errors: %d", s.Stats().Errors)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.conns) != 1 || h.overlap {
		t.Fatalf("%d connections, overlap %v", len(h.conns), h.overlap)
	}
}

func TestInteropOpampGoHTTPClient(t *testing.T) {
	h := newTestHandler()
	var mu sync.Mutex
	var encodings []string
	h.accept = func(r *http.Request) (any, error) {
		mu.Lock()
		encodings = append(encodings, r.Header.Get("Content-Encoding"))
		mu.Unlock()
		return nil, nil
	}
	var offer sync.Once
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		var reply *protobufs.ServerToAgent
		offer.Do(func() { reply = remoteConfig("exporters: {}") }) // on a poll reply
		return reply, nil
	}
	s, hs := startServer(t, h, Config{})
	rec := &received{}
	c := client.NewHTTP(nopLogger{})
	c.SetPollingInterval(50 * time.Millisecond)
	if err := c.SetAgentDescription(description("interop-http")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetHealth(&protobufs.ComponentHealth{Status: "starting"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background(), interopSettings(hs.URL+opamp.DefaultPath, rec)); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	eventually(t, "config delivered by poll reply", func() bool { return rec.config() == "exporters: {}" })
	if err := c.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "polling"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "health", func() bool {
		return h.find(func(m *protobufs.AgentToServer) bool { return m.GetHealth().GetStatus() == "polling" }) != nil
	})
	eventually(t, "several polls", func() bool { return h.numMessages() >= 3 })
	mu.Lock()
	gzipped := encodings[0] == "gzip"
	mu.Unlock()
	if !gzipped {
		t.Fatalf("compressed client sent Content-Encoding %q", encodings[0])
	}
	if st := s.Stats(); st.Errors != 0 || st.Connections != 0 {
		t.Fatalf("stats %+v", st)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errors) != 0 {
		t.Fatalf("client saw errors %v", rec.errors)
	}
}
