package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	steward "github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/opamp/server"
)

// stewardHandler is a minimal control plane behind Steward's own server
// transport: it records messages, offers one remote config and can refuse
// the first connection as unavailable.
type stewardHandler struct {
	refuseFirst atomic.Bool
	refused     atomic.Bool

	mu       sync.Mutex
	attempts []time.Time
	msgs     []*protobufs.AgentToServer
	conns    []server.Conn
}

func (h *stewardHandler) Accept(r *http.Request) (any, error) {
	h.mu.Lock()
	h.attempts = append(h.attempts, time.Now())
	h.mu.Unlock()
	if h.refuseFirst.Load() && h.refused.CompareAndSwap(false, true) {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "busy")
	}
	return nil, nil
}

func (h *stewardHandler) OnMessage(ctx context.Context, c server.Conn, m *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	h.mu.Lock()
	h.msgs = append(h.msgs, proto.Clone(m).(*protobufs.AgentToServer))
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	if m.AgentDescription != nil && m.RemoteConfigStatus == nil {
		return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte("steward-1")}}, nil
	}
	return nil, nil
}

func (h *stewardHandler) OnClose(c server.Conn) {}

func (h *stewardHandler) find(f func(*protobufs.AgentToServer) bool) *protobufs.AgentToServer {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if f(m) {
			return m
		}
	}
	return nil
}

// TestStewardServer runs the client against Steward's own server transport
// (opamp/server): report, remote config and its status, a pushed custom
// message (WebSocket), a refused first attempt retried after Retry-After,
// and agent_disconnect on Stop.
func TestStewardServer(t *testing.T) {
	transports(t, func(t *testing.T, scheme string) {
		h := &stewardHandler{}
		h.refuseFirst.Store(true)
		srv, err := server.New(server.Config{Handler: h, RetryAfter: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()

		const capability = "io.steward.test/v1"
		var c *client.Client
		var cp atomic.Pointer[client.Client]
		custom := make(chan *protobufs.CustomMessage, 1)
		c, err = client.New(client.Settings{
			Endpoint:           scheme + hs.URL[len("http"):] + "/v1/opamp",
			Description:        description("a"),
			CustomCapabilities: []string{capability},
			PollingInterval:    100 * time.Millisecond,
			Backoff:            client.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
			Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
				protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig,
			Callbacks: client.Callbacks{OnMessage: func(ctx context.Context, msg *client.MessageData) {
				if msg.RemoteConfig != nil {
					_ = cp.Load().SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
						LastRemoteConfigHash: msg.RemoteConfig.ConfigHash,
						Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
					})
				}
				if msg.CustomMessage != nil {
					custom <- msg.CustomMessage
				}
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		cp.Store(c)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = c.Stop(ctx)
		}()

		eventually(t, "remote config status", func() bool {
			return h.find(func(m *protobufs.AgentToServer) bool {
				return string(m.GetRemoteConfigStatus().GetLastRemoteConfigHash()) == "steward-1"
			}) != nil
		})
		h.mu.Lock()
		at := append([]time.Time(nil), h.attempts...)
		first := h.msgs[0]
		conn := h.conns[0]
		h.mu.Unlock()
		if d := at[1].Sub(at[0]); d < time.Second-50*time.Millisecond {
			t.Errorf("retried %v after a refusal with Retry-After 1s", d)
		}
		if first.AgentDescription == nil {
			t.Error("first message is not a full report")
		}
		if got := uint64(c.ServerCapabilities()); got != opamp.ServerCapabilities {
			t.Errorf("ServerCapabilities() = %#x, want %#x", got, opamp.ServerCapabilities)
		}

		if scheme == "ws" {
			if err := conn.Send(&protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Capability: capability, Type: "hello"}}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-custom:
				if m.Type != "hello" {
					t.Errorf("custom message %v", m)
				}
			case <-time.After(waitFor):
				t.Fatal("pushed custom message not delivered")
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "agent_disconnect", func() bool {
			return h.find(func(m *protobufs.AgentToServer) bool { return m.AgentDisconnect != nil }) != nil
		})
	})
}
