// Package testserver is a small OpAMP server for the supervisor's
// end-to-end tests: it records what each agent reports and lets a test push
// remote configs, restart commands and own-telemetry offers. It runs
// opamp-go's server as an interoperability peer; the tests use only the
// methods below, so it can be swapped for Steward's control plane.
package testserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	opampserver "github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
	"github.com/stewardhq/steward"
	"google.golang.org/protobuf/proto"
)

// Agent is what the server last heard from one agent.
type Agent struct {
	Description         *protobufs.AgentDescription
	Capabilities        uint64
	Health              *protobufs.ComponentHealth
	EffectiveConfig     *protobufs.EffectiveConfig
	RemoteConfigStatus  *protobufs.RemoteConfigStatus
	AvailableComponents *protobufs.AvailableComponents
	ConnectionStatus    *protobufs.ConnectionSettingsStatus
	// Statuses is every remote config status reported, in order.
	Statuses  []*protobufs.RemoteConfigStatus
	Connected bool
	Messages  int
}

// Server is a running test server.
type Server struct {
	// URL is the ws:// endpoint agents connect to.
	URL string
	srv opampserver.OpAMPServer

	mu      sync.Mutex
	agents  map[steward.InstanceUID]*Agent
	conns   map[steward.InstanceUID]types.Connection
	desired map[steward.InstanceUID]*protobufs.AgentRemoteConfig
}

// Start listens on 127.0.0.1 at a random port; the server stops when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{
		URL:     "ws://" + addr + "/v1/opamp",
		srv:     opampserver.New(nil),
		agents:  map[steward.InstanceUID]*Agent{},
		conns:   map[steward.InstanceUID]types.Connection{},
		desired: map[steward.InstanceUID]*protobufs.AgentRemoteConfig{},
	}
	err = s.srv.Start(opampserver.StartSettings{
		ListenEndpoint: addr,
		Settings: opampserver.Settings{Callbacks: types.Callbacks{
			OnConnecting: func(*http.Request) types.ConnectionResponse {
				return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
					OnMessage:         s.onMessage,
					OnConnectionClose: s.onClose,
				}}
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Stop(ctx)
	})
	return s
}

const serverCaps = uint64(protobufs.ServerCapabilities_ServerCapabilities_AcceptsStatus |
	protobufs.ServerCapabilities_ServerCapabilities_OffersRemoteConfig |
	protobufs.ServerCapabilities_ServerCapabilities_AcceptsEffectiveConfig |
	protobufs.ServerCapabilities_ServerCapabilities_OffersConnectionSettings)

func (s *Server) onMessage(_ context.Context, c types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
	uid, err := steward.InstanceUIDFromBytes(m.InstanceUid)
	reply := &protobufs.ServerToAgent{InstanceUid: m.InstanceUid, Capabilities: serverCaps}
	if err != nil {
		reply.ErrorResponse = &protobufs.ServerErrorResponse{ErrorMessage: err.Error()}
		return reply
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[uid]
	if a == nil {
		a = &Agent{}
		s.agents[uid] = a
		reply.Flags = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
	}
	s.conns[uid] = c
	a.Connected = m.AgentDisconnect == nil
	a.Messages++
	if m.Capabilities != 0 {
		a.Capabilities = m.Capabilities
	}
	if m.AgentDescription != nil {
		a.Description = m.AgentDescription
	}
	if m.Health != nil {
		a.Health = m.Health
	}
	if m.EffectiveConfig != nil {
		a.EffectiveConfig = m.EffectiveConfig
	}
	if ac := m.AvailableComponents; ac != nil {
		if len(ac.Components) > 0 {
			a.AvailableComponents = ac
		} else if a.AvailableComponents == nil || string(a.AvailableComponents.Hash) != string(ac.Hash) {
			reply.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents)
		}
	}
	if m.ConnectionSettingsStatus != nil {
		a.ConnectionStatus = m.ConnectionSettingsStatus
	}
	if st := m.RemoteConfigStatus; st != nil && !proto.Equal(st, a.RemoteConfigStatus) {
		a.RemoteConfigStatus = st
		a.Statuses = append(a.Statuses, st)
	}
	// Offer the desired config until the agent reports on it.
	if d := s.desired[uid]; d != nil && (a.RemoteConfigStatus == nil || string(a.RemoteConfigStatus.LastRemoteConfigHash) != string(d.ConfigHash)) {
		reply.RemoteConfig = d
	}
	return reply
}

func (s *Server) onClose(c types.Connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, cc := range s.conns {
		if cc == c {
			delete(s.conns, uid)
			if a := s.agents[uid]; a != nil {
				a.Connected = false
			}
		}
	}
}

// Agent returns a copy of what the server knows of uid (nil if unknown).
func (s *Server) Agent(uid steward.InstanceUID) *Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[uid]
	if a == nil {
		return nil
	}
	c := *a
	c.Statuses = append([]*protobufs.RemoteConfigStatus(nil), a.Statuses...)
	return &c
}

// Agents returns the instance UIDs the server has heard from.
func (s *Server) Agents() []steward.InstanceUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []steward.InstanceUID
	for uid := range s.agents {
		out = append(out, uid)
	}
	return out
}

// PushConfig makes files uid's remote config and sends it if the agent is
// connected; it returns the config hash.
func (s *Server) PushConfig(uid steward.InstanceUID, files map[string]string) []byte {
	cm := steward.ConfigMap{}
	pm := &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{}}
	for k, v := range files {
		cm[k] = steward.ConfigFile{Body: []byte(v), ContentType: "text/yaml"}
		pm.ConfigMap[k] = &protobufs.AgentConfigFile{Body: []byte(v), ContentType: "text/yaml"}
	}
	rc := &protobufs.AgentRemoteConfig{Config: pm, ConfigHash: cm.Hash()}
	s.mu.Lock()
	s.desired[uid] = rc
	c := s.conns[uid]
	s.mu.Unlock()
	if c != nil {
		_ = c.Send(context.Background(), &protobufs.ServerToAgent{InstanceUid: uid[:], Capabilities: serverCaps, RemoteConfig: rc})
	}
	return rc.ConfigHash
}

// Send sends msg to a connected agent.
func (s *Server) Send(uid steward.InstanceUID, msg *protobufs.ServerToAgent) error {
	s.mu.Lock()
	c := s.conns[uid]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("agent %s is not connected", uid)
	}
	msg.InstanceUid = uid[:]
	msg.Capabilities = serverCaps
	return c.Send(context.Background(), msg)
}

// Restart sends the Restart command.
func (s *Server) Restart(uid steward.InstanceUID) error {
	return s.Send(uid, &protobufs.ServerToAgent{Command: &protobufs.ServerToAgentCommand{Type: protobufs.CommandType_CommandType_Restart}})
}

// Eventually polls cond (under no lock) until it holds or 60 s pass.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
