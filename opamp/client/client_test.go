package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/stewardhq/steward/opamp/client"
)

func TestNewValidation(t *testing.T) {
	for _, s := range []client.Settings{
		{},
		{Endpoint: "ftp://127.0.0.1/v1/opamp"},
		{Endpoint: "http://"},
		{Endpoint: "://bad"},
		{Endpoint: "ws://127.0.0.1:1/v1/opamp", Capabilities: 1 << 20},
		{Endpoint: "ws://127.0.0.1:1/v1/opamp", HeartbeatInterval: -time.Second},
		{Endpoint: "ws://127.0.0.1:1/v1/opamp", Backoff: client.Backoff{Min: time.Minute, Max: time.Second}},
	} {
		if _, err := client.New(s); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", s)
		}
	}
	c, err := client.New(client.Settings{Endpoint: "wss://127.0.0.1:1/v1/opamp"})
	if err != nil {
		t.Fatal(err)
	}
	if c.InstanceUID() == ([16]byte{}) {
		t.Error("no instance UID generated")
	}
	if u := c.InstanceUID(); u[6]>>4 != 7 {
		t.Errorf("generated UID is not v7: %x", u)
	}
	if err := c.Stop(context.Background()); !errors.Is(err, client.ErrNotStarted) {
		t.Errorf("Stop before Start = %v", err)
	}
}

func TestCapabilityGating(t *testing.T) {
	c, err := client.New(client.Settings{Endpoint: "ws://127.0.0.1:1/v1/opamp"})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{
		"SetHealth":                   c.SetHealth(&protobufs.ComponentHealth{Healthy: true}),
		"UpdateEffectiveConfig":       c.UpdateEffectiveConfig(context.Background()),
		"SetRemoteConfigStatus":       c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{}),
		"SetPackageStatuses":          c.SetPackageStatuses(&protobufs.PackageStatuses{}),
		"SetAvailableComponents":      c.SetAvailableComponents(&protobufs.AvailableComponents{Hash: []byte{1}}),
		"SetConnectionSettingsStatus": c.SetConnectionSettingsStatus(&protobufs.ConnectionSettingsStatus{}),
		"RequestConnectionSettings":   c.RequestConnectionSettings([]byte("csr")),
	}
	_, err = c.SendCustomMessage(&protobufs.CustomMessage{Capability: "io.steward.test"})
	checks["SendCustomMessage"] = err
	for name, err := range checks {
		if !errors.Is(err, client.ErrCapability) {
			t.Errorf("%s without its capability = %v, want ErrCapability", name, err)
		}
	}
}

// TestStatusReporting covers the first full report, sequence numbers,
// a remote config offer answered with its status and the effective config,
// status compression and ReportFullState.
func TestStatusReporting(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		cfg := &protobufs.AgentRemoteConfig{
			Config:     &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{"": {Body: []byte("receivers: {}"), ContentType: "text/yaml"}}},
			ConfigHash: []byte("hash-1"),
		}
		var sentConfig atomic.Bool
		var fullRequested atomic.Bool
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			switch {
			case !sentConfig.Load():
				sentConfig.Store(true)
				return &protobufs.ServerToAgent{RemoteConfig: cfg}
			case m.RemoteConfigStatus != nil && !fullRequested.Load():
				fullRequested.Store(true)
				return &protobufs.ServerToAgent{Flags: uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)}
			}
			return nil
		})
		var effective atomic.Value
		effective.Store([]byte("initial"))
		// The server's first reply can reach OnMessage before startClient
		// returns: the callback waits for the client it calls.
		var cp atomic.Pointer[client.Client]
		ready := make(chan struct{})
		var cbErr atomic.Value
		c := startClient(t, client.Settings{
			Endpoint:        p.url(scheme),
			Description:     description("collector"),
			PollingInterval: 100 * time.Millisecond,
			Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig,
			Callbacks: client.Callbacks{
				GetEffectiveConfig: func(ctx context.Context) (*protobufs.EffectiveConfig, error) {
					return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
						"": {Body: effective.Load().([]byte)},
					}}}, nil
				},
				OnMessage: func(ctx context.Context, msg *client.MessageData) {
					if msg.RemoteConfig == nil {
						return
					}
					effective.Store(msg.RemoteConfig.Config.ConfigMap[""].Body)
					select {
					case <-ready:
					case <-ctx.Done():
						return
					}
					c := cp.Load()
					if err := c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
						LastRemoteConfigHash: msg.RemoteConfig.ConfigHash,
						Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
					}); err != nil {
						cbErr.Store(err)
					}
					if err := c.UpdateEffectiveConfig(ctx); err != nil {
						cbErr.Store(err)
					}
				},
			},
		})
		cp.Store(c)
		close(ready)
		// The remote config status, then the full state the server asked for.
		eventually(t, "full state after ReportFullState", func() bool {
			return fullRequested.Load() && p.find(func(m *protobufs.AgentToServer) bool {
				return m.RemoteConfigStatus != nil && m.AgentDescription != nil && m.EffectiveConfig != nil
			}) != nil
		})
		if err, _ := cbErr.Load().(error); err != nil {
			t.Fatalf("callback: %v", err)
		}
		msgs := p.messages()
		first := msgs[0]
		if first.AgentDescription == nil || first.EffectiveConfig == nil {
			t.Fatalf("first message is not a full status report: %v", first)
		}
		if string(first.EffectiveConfig.ConfigMap.ConfigMap[""].Body) != "initial" {
			t.Errorf("first effective config = %q", first.EffectiveConfig.ConfigMap.ConfigMap[""].Body)
		}
		uid := c.InstanceUID()
		for i, m := range msgs {
			if !bytes.Equal(m.InstanceUid, uid[:]) {
				t.Errorf("message %d instance_uid = %x, want %x", i, m.InstanceUid, uid)
			}
			if m.Capabilities&uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus) == 0 ||
				m.Capabilities&uint64(protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig) == 0 {
				t.Errorf("message %d capabilities = %#x", i, m.Capabilities)
			}
			if i > 0 && m.SequenceNum != msgs[i-1].SequenceNum+1 {
				t.Errorf("message %d sequence_num = %d after %d", i, m.SequenceNum, msgs[i-1].SequenceNum)
			}
		}
		// The report of the applied config: compressed (no description),
		// carrying the status and the new effective config.
		var report *protobufs.AgentToServer
		for _, m := range msgs {
			if m.RemoteConfigStatus != nil {
				report = m
				break
			}
		}
		if report.AgentDescription != nil {
			t.Error("status compression: unchanged agent_description was sent again")
		}
		if !bytes.Equal(report.RemoteConfigStatus.LastRemoteConfigHash, []byte("hash-1")) ||
			report.RemoteConfigStatus.Status != protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED {
			t.Errorf("remote_config_status = %v", report.RemoteConfigStatus)
		}
		var ec *protobufs.AgentToServer
		for _, m := range msgs[1:] {
			if m.EffectiveConfig != nil {
				ec = m
				break
			}
		}
		if ec == nil || string(ec.EffectiveConfig.ConfigMap.ConfigMap[""].Body) != "receivers: {}" {
			t.Errorf("updated effective config not reported: %v", ec)
		}
	})
}

func TestInstanceUIDAdoption(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		newUID := [16]byte{0x01, 0x93, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x42}
		var assigned atomic.Bool
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			if assigned.CompareAndSwap(false, true) {
				return &protobufs.ServerToAgent{AgentIdentification: &protobufs.AgentIdentification{NewInstanceUid: newUID[:]}}
			}
			return nil
		})
		got := make(chan [16]byte, 1)
		c := startClient(t, client.Settings{
			Endpoint:        p.url(scheme),
			Description:     description("a"),
			PollingInterval: 100 * time.Millisecond,
			Callbacks:       client.Callbacks{OnInstanceUIDChange: func(u [16]byte) { got <- u }},
		})
		c.SetFlags(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid)
		select {
		case u := <-got:
			if u != newUID {
				t.Fatalf("OnInstanceUIDChange(%x), want %x", u, newUID)
			}
		case <-time.After(waitFor):
			t.Fatal("OnInstanceUIDChange not called")
		}
		if c.InstanceUID() != newUID {
			t.Fatalf("InstanceUID() = %x", c.InstanceUID())
		}
		if err := c.SetAgentDescription(description("b")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a message with the new instance_uid", func() bool {
			return p.find(func(m *protobufs.AgentToServer) bool {
				return bytes.Equal(m.InstanceUid, newUID[:]) && m.AgentDescription != nil
			}) != nil
		})
		m := p.find(func(m *protobufs.AgentToServer) bool { return bytes.Equal(m.InstanceUid, newUID[:]) })
		if m.Flags&uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid) != 0 {
			t.Error("RequestInstanceUid flag still set after a UID was assigned")
		}
	})
}

func TestHeartbeats(t *testing.T) {
	t.Run("negotiated", func(t *testing.T) {
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		// The server shortens the interval to 1 s.
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			if m.AgentDescription != nil {
				return &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
					Opamp: &protobufs.OpAMPConnectionSettings{HeartbeatIntervalSeconds: 1},
				}}
			}
			return nil
		})
		startClient(t, client.Settings{
			Endpoint:          p.url("ws"),
			Description:       description("a"),
			Capabilities:      protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat,
			HeartbeatInterval: time.Hour,
		})
		eventually(t, "three heartbeats", func() bool { return p.count() >= 4 })
		for i, m := range p.messages()[1:] {
			if m.AgentDescription != nil || len(m.InstanceUid) != 16 {
				t.Errorf("heartbeat %d is not a bare heartbeat: %v", i, m)
			}
		}
	})
	t.Run("not declared", func(t *testing.T) {
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			return &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
				Opamp: &protobufs.OpAMPConnectionSettings{HeartbeatIntervalSeconds: 1},
			}}
		})
		c := startClient(t, client.Settings{
			Endpoint:          p.url("ws"),
			Description:       description("a"),
			HeartbeatInterval: 200 * time.Millisecond,
		})
		eventually(t, "the first report", func() bool { return p.count() >= 1 })
		// Nothing but the first report may arrive; a later status change
		// proves the connection is alive, and sequence numbers prove no
		// heartbeat was sent in between.
		time.Sleep(2500 * time.Millisecond)
		if err := c.SetAgentDescription(description("b")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the second report", func() bool { return p.count() >= 2 })
		msgs := p.messages()
		if len(msgs) != 2 || msgs[1].SequenceNum != msgs[0].SequenceNum+1 {
			t.Fatalf("heartbeats sent without ReportsHeartbeat: %d messages", len(msgs))
		}
	})
}

func TestRetryAfter(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		var refused atomic.Bool
		p := startPeer(t, &peer{refuse: func(r *http.Request) (int, map[string]string) {
			if refused.CompareAndSwap(false, true) {
				return http.StatusServiceUnavailable, map[string]string{"Retry-After": "2"}
			}
			return 0, nil
		}}, "127.0.0.1:0")
		var failures atomic.Int32
		startClient(t, client.Settings{
			Endpoint:    p.url(scheme),
			Description: description("a"),
			Callbacks:   client.Callbacks{OnConnectFailed: func(ctx context.Context, err error) { failures.Add(1) }},
		})
		eventually(t, "a report after the refusal", func() bool { return p.count() >= 1 })
		at := p.attemptTimes()
		if len(at) < 2 {
			t.Fatalf("%d attempts", len(at))
		}
		// Backoff alone would retry within 50 ms; Retry-After says 2 s.
		if d := at[1].Sub(at[0]); d < 2*time.Second-50*time.Millisecond {
			t.Fatalf("retried after %v, want >= 2s", d)
		}
		if failures.Load() < 1 {
			t.Error("OnConnectFailed not called")
		}
	})
	t.Run("429", func(t *testing.T) {
		var refused atomic.Bool
		p := startPeer(t, &peer{refuse: func(r *http.Request) (int, map[string]string) {
			if refused.CompareAndSwap(false, true) {
				return http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}
			}
			return 0, nil
		}}, "127.0.0.1:0")
		startClient(t, client.Settings{Endpoint: p.url("http"), Description: description("a")})
		eventually(t, "a report after the refusal", func() bool { return p.count() >= 1 })
		at := p.attemptTimes()
		if d := at[1].Sub(at[0]); d < time.Second-50*time.Millisecond {
			t.Fatalf("retried after %v, want >= 1s", d)
		}
	})
}

// TestUnavailableRetryInfo: a WebSocket server answering UNAVAILABLE with
// RetryInfo makes the client say goodbye, wait and reconnect.
func TestUnavailableRetryInfo(t *testing.T) {
	var once atomic.Bool
	p := startPeer(t, &peer{}, "127.0.0.1:0")
	p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
		if m.AgentDisconnect == nil && once.CompareAndSwap(false, true) {
			return &protobufs.ServerToAgent{ErrorResponse: &protobufs.ServerErrorResponse{
				Type:    protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable,
				Details: &protobufs.ServerErrorResponse_RetryInfo{RetryInfo: &protobufs.RetryInfo{RetryAfterNanoseconds: uint64(1500 * time.Millisecond)}},
			}}
		}
		return nil
	})
	var errs atomic.Int32
	startClient(t, client.Settings{
		Endpoint:    p.url("ws"),
		Description: description("a"),
		Callbacks: client.Callbacks{OnError: func(ctx context.Context, e *protobufs.ServerErrorResponse) {
			if e.Type == protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable {
				errs.Add(1)
			}
		}},
	})
	eventually(t, "a second connection", func() bool { return len(p.attemptTimes()) >= 2 && p.count() >= 3 })
	at := p.attemptTimes()
	if d := at[1].Sub(at[0]); d < 1500*time.Millisecond {
		t.Fatalf("reconnected after %v, want >= 1.5s", d)
	}
	msgs := p.messages()
	if msgs[1].AgentDisconnect == nil {
		t.Errorf("no agent_disconnect before reconnecting: %v", msgs[1])
	}
	if msgs[2].AgentDescription == nil {
		t.Error("first message on the new connection is not a full report")
	}
	if errs.Load() != 1 {
		t.Errorf("OnError called %d times", errs.Load())
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		var connects atomic.Int32
		startClient(t, client.Settings{
			Endpoint:        p.url(scheme),
			Description:     description("a"),
			PollingInterval: 100 * time.Millisecond,
			Callbacks:       client.Callbacks{OnConnect: func(ctx context.Context) { connects.Add(1) }},
		})
		eventually(t, "the first report", func() bool { return p.count() >= 1 })
		addr := p.addr
		p.stop()
		p2 := startPeer(t, &peer{}, addr)
		// The new server knows nothing; WebSocket reconnects send the full
		// state, HTTP polls continue and the server asks for it.
		p2.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			if m.AgentDescription == nil {
				return &protobufs.ServerToAgent{Flags: uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)}
			}
			return nil
		})
		eventually(t, "a full report to the restarted server", func() bool {
			return p2.find(func(m *protobufs.AgentToServer) bool { return m.AgentDescription != nil }) != nil
		})
		if scheme == "ws" {
			eventually(t, "OnConnect twice", func() bool { return connects.Load() >= 2 })
		}
	})
}

func TestStopDisconnectsWithoutLeaks(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		c, err := client.New(client.Settings{
			Endpoint:          p.url(scheme),
			Description:       description("a"),
			Capabilities:      protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat,
			HeartbeatInterval: 100 * time.Millisecond,
			PollingInterval:   100 * time.Millisecond,
			Callbacks:         client.Callbacks{OnMessage: func(ctx context.Context, msg *client.MessageData) {}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); !errors.Is(err, client.ErrStarted) {
			t.Errorf("second Start = %v", err)
		}
		eventually(t, "a few messages", func() bool { return p.count() >= 3 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		msgs := p.messages()
		if last := msgs[len(msgs)-1]; last.AgentDisconnect == nil {
			t.Fatalf("last message has no agent_disconnect: %v", last)
		}
		n := len(msgs)
		p.stop()
		if len(p.messages()) != n {
			t.Error("messages sent after Stop returned")
		}
		var left []string
		eventually(t, "client goroutines to exit", func() bool { left = leftovers(); return len(left) == 0 })
		if err := c.Stop(ctx); err != nil {
			t.Errorf("second Stop = %v", err)
		}
	})
}

func TestCustomMessages(t *testing.T) {
	const capability = "io.steward.test/v1"
	transports(t, func(t *testing.T, scheme string) {
		var toAgent atomic.Bool
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			if m.CustomMessage != nil && toAgent.CompareAndSwap(false, true) {
				return &protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Capability: capability, Type: "pong", Data: m.CustomMessage.Data}}
			}
			return nil
		})
		got := make(chan *protobufs.CustomMessage, 4)
		c := startClient(t, client.Settings{
			Endpoint:           p.url(scheme),
			Description:        description("a"),
			CustomCapabilities: []string{capability},
			PollingInterval:    100 * time.Millisecond,
			Callbacks: client.Callbacks{OnMessage: func(ctx context.Context, msg *client.MessageData) {
				if msg.CustomMessage != nil {
					got <- msg.CustomMessage
				}
			}},
		})
		eventually(t, "the first report", func() bool { return p.count() >= 1 })
		if cc := p.messages()[0].CustomCapabilities; cc == nil || len(cc.Capabilities) != 1 || cc.Capabilities[0] != capability {
			t.Errorf("custom capabilities not reported: %v", cc)
		}
		if _, err := c.SendCustomMessage(&protobufs.CustomMessage{Capability: "io.other", Type: "x"}); !errors.Is(err, client.ErrCapability) {
			t.Errorf("undeclared custom capability: %v", err)
		}
		pending, err := c.SendCustomMessage(&protobufs.CustomMessage{Capability: capability, Type: "ping", Data: []byte("hello")})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-pending:
		case <-time.After(waitFor):
			t.Fatal("custom message never sent")
		}
		select {
		case m := <-got:
			if m.Type != "pong" || string(m.Data) != "hello" {
				t.Errorf("agent got %v", m)
			}
		case <-time.After(waitFor):
			t.Fatal("server's custom message not delivered")
		}
		if m := p.find(func(m *protobufs.AgentToServer) bool { return m.CustomMessage != nil }); m == nil ||
			m.CustomMessage.Type != "ping" || string(m.CustomMessage.Data) != "hello" {
			t.Errorf("server got %v", m)
		}
	})
}

func TestRestartCommand(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		var sent atomic.Bool
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		if scheme == "http" {
			p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
				if m.AgentDescription == nil && sent.CompareAndSwap(false, true) {
					return &protobufs.ServerToAgent{Command: &protobufs.ServerToAgentCommand{Type: protobufs.CommandType_CommandType_Restart}}
				}
				return nil
			})
		}
		cmds := make(chan *protobufs.ServerToAgentCommand, 2)
		startClient(t, client.Settings{
			Endpoint:        p.url(scheme),
			Description:     description("a"),
			Capabilities:    protobufs.AgentCapabilities_AgentCapabilities_AcceptsRestartCommand,
			PollingInterval: 100 * time.Millisecond,
			Callbacks: client.Callbacks{OnCommand: func(ctx context.Context, cmd *protobufs.ServerToAgentCommand) error {
				cmds <- cmd
				return nil
			}},
		})
		eventually(t, "the first report", func() bool { return p.count() >= 1 })
		if scheme == "ws" {
			// Pushed by the server, unprompted.
			uid := p.messages()[0].InstanceUid
			if err := p.lastConn().Send(context.Background(), &protobufs.ServerToAgent{
				InstanceUid: uid,
				Command:     &protobufs.ServerToAgentCommand{Type: protobufs.CommandType_CommandType_Restart},
			}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case cmd := <-cmds:
			if cmd.Type != protobufs.CommandType_CommandType_Restart {
				t.Errorf("command %v", cmd)
			}
		case <-time.After(waitFor):
			t.Fatal("restart command not delivered")
		}
	})
}

// TestConnectionSettingsOffer: the server offers new headers; the agent
// accepts; the client reconnects with them, and reports APPLIED.
func TestConnectionSettingsOffer(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		var offered atomic.Bool
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			if offered.CompareAndSwap(false, true) {
				return &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
					Hash: []byte("offer-1"),
					Opamp: &protobufs.OpAMPConnectionSettings{
						Headers: &protobufs.Headers{Headers: []*protobufs.Header{{Key: "Authorization", Value: "Bearer new"}}},
					},
				}}
			}
			return nil
		})
		var accepted atomic.Int32
		startClient(t, client.Settings{
			Endpoint:        p.url(scheme),
			Header:          http.Header{"Authorization": {"Bearer old"}},
			Description:     description("a"),
			PollingInterval: 100 * time.Millisecond,
			Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus,
			Callbacks: client.Callbacks{OnOpAMPConnectionSettings: func(ctx context.Context, s *protobufs.OpAMPConnectionSettings) error {
				accepted.Add(1)
				return nil
			}},
		})
		eventually(t, "APPLIED reported", func() bool {
			return p.find(func(m *protobufs.AgentToServer) bool {
				st := m.ConnectionSettingsStatus
				return st != nil && st.Status == protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED &&
					string(st.LastConnectionSettingsHash) == "offer-1"
			}) != nil
		})
		p.mu.Lock()
		headers := append([]http.Header(nil), p.headers...)
		p.mu.Unlock()
		if headers[0].Get("Authorization") != "Bearer old" || headers[len(headers)-1].Get("Authorization") != "Bearer new" {
			t.Errorf("Authorization first %q, last %q", headers[0].Get("Authorization"), headers[len(headers)-1].Get("Authorization"))
		}
		if accepted.Load() != 1 {
			t.Errorf("OnOpAMPConnectionSettings called %d times", accepted.Load())
		}
		if m := p.find(func(m *protobufs.AgentToServer) bool { return m.AgentDisconnect != nil }); m == nil {
			t.Error("no agent_disconnect before switching settings")
		}
	})
}

// TestConnectionSettingsRevert: an offered endpoint that does not work is
// abandoned and the client returns to the old one, reporting FAILED.
func TestConnectionSettingsRevert(t *testing.T) {
	var offered atomic.Bool
	p := startPeer(t, &peer{}, "127.0.0.1:0")
	p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
		if offered.CompareAndSwap(false, true) {
			return &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
				Hash:  []byte("offer-bad"),
				Opamp: &protobufs.OpAMPConnectionSettings{DestinationEndpoint: "ws://127.0.0.1:1/v1/opamp"},
			}}
		}
		return nil
	})
	startClient(t, client.Settings{
		Endpoint:    p.url("ws"),
		Description: description("a"),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus,
		Callbacks: client.Callbacks{OnOpAMPConnectionSettings: func(ctx context.Context, s *protobufs.OpAMPConnectionSettings) error { return nil }},
	})
	eventually(t, "FAILED reported to the old server", func() bool {
		return p.find(func(m *protobufs.AgentToServer) bool {
			st := m.ConnectionSettingsStatus
			return st != nil && st.Status == protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED &&
				string(st.LastConnectionSettingsHash) == "offer-bad"
		}) != nil
	})
}

// TestHTTPGzip: large request bodies are gzipped, and opamp-go's server
// (which honours Content-Encoding) decodes them.
func TestHTTPGzip(t *testing.T) {
	var mu sync.Mutex
	var encodings []string
	p := startPeer(t, &peer{refuse: func(r *http.Request) (int, map[string]string) {
		mu.Lock()
		encodings = append(encodings, r.Header.Get("Content-Encoding")+"|"+r.Header.Get("Content-Type")+"|"+r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		return 0, nil
	}}, "127.0.0.1:0")
	big := description(strings.Repeat("x", 4000))
	startClient(t, client.Settings{Endpoint: p.url("http"), Description: big, PollingInterval: 100 * time.Millisecond})
	eventually(t, "two polls", func() bool { return p.count() >= 2 })
	m := p.messages()[0]
	if got := m.AgentDescription.IdentifyingAttributes[0].Value.GetStringValue(); got != strings.Repeat("x", 4000) {
		t.Fatalf("description mangled (%d bytes)", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	if encodings[0] != "gzip|application/x-protobuf|gzip" {
		t.Errorf("first request headers %q", encodings[0])
	}
	if encodings[1] != "|application/x-protobuf|gzip" {
		t.Errorf("small poll headers %q", encodings[1])
	}
}

// TestSlowCallbackKeepsHeartbeats: a callback blocked for a long time does
// not stop WebSocket heartbeats.
func TestSlowCallbackKeepsHeartbeats(t *testing.T) {
	p := startPeer(t, &peer{}, "127.0.0.1:0")
	p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
		return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte{1}}}
	})
	release := make(chan struct{})
	defer close(release)
	startClient(t, client.Settings{
		Endpoint:          p.url("ws"),
		Description:       description("a"),
		Capabilities:      protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat | protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig,
		HeartbeatInterval: 100 * time.Millisecond,
		Callbacks: client.Callbacks{OnMessage: func(ctx context.Context, msg *client.MessageData) {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}},
	})
	eventually(t, "heartbeats while the callback blocks", func() bool { return p.count() >= 5 })
}

// TestStopWhileDisconnected: Stop on a client that cannot reach its server
// returns promptly and leaves nothing running.
func TestStopWhileDisconnected(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		var failures atomic.Int32
		c, err := client.New(client.Settings{
			Endpoint:  scheme + "://127.0.0.1:1/v1/opamp", // nothing listens on port 1
			Backoff:   client.Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond},
			Callbacks: client.Callbacks{OnConnectFailed: func(ctx context.Context, err error) { failures.Add(1) }},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a few failed attempts", func() bool { return failures.Load() >= 3 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "client goroutines to exit", func() bool { return len(leftovers()) == 0 })
	})
}

// TestOffersGatedByCapability: only offers the agent declared it accepts
// reach OnMessage; package statuses and health flow back.
func TestOffersGatedByCapability(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		var offered atomic.Bool
		p := startPeer(t, &peer{}, "127.0.0.1:0")
		p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			if !offered.CompareAndSwap(false, true) {
				return nil
			}
			return &protobufs.ServerToAgent{
				RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte("rc")},
				PackagesAvailable: &protobufs.PackagesAvailable{AllPackagesHash: []byte("pk"), Packages: map[string]*protobufs.PackageAvailable{
					"plugin": {Version: "1.0.0"},
				}},
				ConnectionSettings: &protobufs.ConnectionSettingsOffers{
					Hash:             []byte("cs"),
					OwnMetrics:       &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://127.0.0.1:4318/v1/metrics"},
					OwnLogs:          &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://127.0.0.1:4318/v1/logs"},
					OtherConnections: map[string]*protobufs.OtherConnectionSettings{"x": {DestinationEndpoint: "http://127.0.0.1:9"}},
				},
			}
		})
		got := make(chan *client.MessageData, 4)
		c := startClient(t, client.Settings{
			Endpoint:        p.url(scheme),
			Description:     description("a"),
			PollingInterval: 100 * time.Millisecond,
			Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsPackages |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsPackageStatuses |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth,
			Callbacks: client.Callbacks{OnMessage: func(ctx context.Context, msg *client.MessageData) {
				if msg.PackagesAvailable != nil || msg.OwnMetrics != nil || msg.RemoteConfig != nil || msg.OwnLogs != nil {
					got <- msg
				}
			}},
		})
		var msg *client.MessageData
		select {
		case msg = <-got:
		case <-time.After(waitFor):
			t.Fatal("offer not delivered")
		}
		if msg.RemoteConfig != nil || msg.OwnLogs != nil || msg.OtherConnSettings != nil {
			t.Errorf("undeclared offers delivered: %+v", msg)
		}
		if msg.PackagesAvailable.GetPackages()["plugin"].GetVersion() != "1.0.0" ||
			msg.OwnMetrics.GetDestinationEndpoint() != "http://127.0.0.1:4318/v1/metrics" ||
			string(msg.ConnectionSettingsHash) != "cs" {
			t.Errorf("declared offers missing: %+v", msg)
		}
		if err := c.SetPackageStatuses(&protobufs.PackageStatuses{ServerProvidedAllPackagesHash: []byte("pk"), Packages: map[string]*protobufs.PackageStatus{
			"plugin": {Name: "plugin", AgentHasVersion: "1.0.0", Status: protobufs.PackageStatusEnum_PackageStatusEnum_Installed},
		}}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "running"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "package statuses and health", func() bool {
			return p.find(func(m *protobufs.AgentToServer) bool { return m.PackageStatuses != nil }) != nil &&
				p.find(func(m *protobufs.AgentToServer) bool { return m.GetHealth().GetStatus() == "running" }) != nil
		})
	})
}

// TestConnectionSettingsRejected: an offer the agent rejects is reported
// FAILED and the connection is kept.
func TestConnectionSettingsRejected(t *testing.T) {
	var offered atomic.Bool
	p := startPeer(t, &peer{}, "127.0.0.1:0")
	p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
		if offered.CompareAndSwap(false, true) {
			return &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
				Hash:  []byte("offer-x"),
				Opamp: &protobufs.OpAMPConnectionSettings{DestinationEndpoint: "ws://127.0.0.1:1/v1/opamp"},
			}}
		}
		return nil
	})
	startClient(t, client.Settings{
		Endpoint:    p.url("ws"),
		Description: description("a"),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus,
		Callbacks: client.Callbacks{OnOpAMPConnectionSettings: func(ctx context.Context, s *protobufs.OpAMPConnectionSettings) error {
			return errors.New("not from this server")
		}},
	})
	eventually(t, "FAILED reported", func() bool {
		return p.find(func(m *protobufs.AgentToServer) bool {
			st := m.ConnectionSettingsStatus
			return st != nil && st.Status == protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED &&
				st.ErrorMessage == "not from this server"
		}) != nil
	})
	if n := len(p.attemptTimes()); n != 1 {
		t.Errorf("%d connections; a rejected offer must not reconnect", n)
	}
	if m := p.find(func(m *protobufs.AgentToServer) bool { return m.AgentDisconnect != nil }); m != nil {
		t.Error("agent_disconnect sent for a rejected offer")
	}
}
