package supervisor

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"google.golang.org/protobuf/proto"
)

// localServer is the OpAMP endpoint on 127.0.0.1 that the collector's opamp
// extension reports to. It implements server.Handler and remembers what the
// collector last reported; onChange is called (outside any lock) whenever
// that changes.
type localServer struct {
	log      *slog.Logger
	uid      func() steward.InstanceUID
	onChange func()

	ln        net.Listener
	srv       *http.Server
	transport *server.Server
	url       string

	mu   sync.Mutex
	r    localReport
	uids map[steward.InstanceUID]bool // instance UIDs given to collectors
}

// localReport is the collector's last report.
type localReport struct {
	lastSeen     time.Time
	connected    bool
	description  *protobufs.AgentDescription
	components   *protobufs.AvailableComponents
	health       *protobufs.ComponentHealth
	healthAt     time.Time
	effective    *protobufs.EffectiveConfig
	effectiveAt  time.Time
	messageCount int
}

// startLocalServer listens on 127.0.0.1 at a random port and serves OpAMP
// (WebSocket; plain HTTP works too) through opamp/server.
func startLocalServer(log *slog.Logger, uid func() steward.InstanceUID, onChange func()) (*localServer, error) {
	s := &localServer{log: log, uid: uid, onChange: onChange}
	caps := uint64(protobufs.ServerCapabilities_ServerCapabilities_AcceptsStatus |
		protobufs.ServerCapabilities_ServerCapabilities_AcceptsEffectiveConfig)
	transport, err := server.New(server.Config{Handler: s, Capabilities: caps, Logger: log, Workers: 2, MaxConnections: 4})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln, s.transport = ln, transport
	mux := http.NewServeMux()
	mux.Handle(opamp.DefaultPath, transport)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.url = "ws://" + ln.Addr().String() + opamp.DefaultPath
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// extension returns the opamp extension settings for a collector config.
// The instance UID written there is accepted from then on (a collector
// keeps the UID it was started with when the server assigns a new one).
func (s *localServer) extension(ppid int) *opampExtension {
	uid := s.uid()
	s.mu.Lock()
	if s.uids == nil {
		s.uids = map[steward.InstanceUID]bool{}
	}
	s.uids[uid] = true
	s.mu.Unlock()
	return &opampExtension{endpoint: s.url, instanceUID: uid, ppid: ppid}
}

// Shutdown closes the collector's connection and the listener.
func (s *localServer) Shutdown(ctx context.Context) error {
	err := s.transport.Shutdown(ctx)
	if err2 := s.srv.Shutdown(ctx); err == nil {
		err = err2
	}
	return err
}

// Accept admits only loopback peers.
func (s *localServer) Accept(r *http.Request) (any, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, steward.Errorf(steward.EFORBIDDEN, "the supervisor's local OpAMP endpoint accepts loopback peers only")
	}
	return nil, nil
}

// OnMessage records the collector's report. It asks for the full component
// list when only a hash arrived, and for a full report when the message has
// no description yet.
func (s *localServer) OnMessage(ctx context.Context, c server.Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	uid, err := steward.InstanceUIDFromBytes(msg.InstanceUid)
	s.mu.Lock()
	known := err == nil && s.uids[uid]
	s.mu.Unlock()
	if !known {
		return nil, steward.Errorf(steward.EINVALID, "unexpected instance_uid: this endpoint serves the supervised collector only")
	}
	s.log.Debug("collector report", "description", msg.AgentDescription != nil, "components", msg.AvailableComponents != nil,
		"health", msg.Health != nil, "healthy", msg.GetHealth().GetHealthy(), "effective_config", msg.EffectiveConfig != nil,
		"disconnect", msg.AgentDisconnect != nil, "seq", msg.SequenceNum)
	var flags uint64
	s.mu.Lock()
	r := &s.r
	r.lastSeen = time.Now()
	r.connected = true
	r.messageCount++
	changed := false
	if msg.AgentDescription != nil && !proto.Equal(msg.AgentDescription, r.description) {
		r.description, changed = msg.AgentDescription, true
	}
	if ac := msg.AvailableComponents; ac != nil {
		if len(ac.Components) > 0 {
			if !proto.Equal(ac, r.components) {
				r.components, changed = ac, true
			}
		} else if r.components == nil || string(r.components.Hash) != string(ac.Hash) {
			flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents)
		}
	}
	if msg.Health != nil {
		if !proto.Equal(msg.Health, r.health) {
			changed = true
		}
		r.health, r.healthAt = msg.Health, time.Now()
	}
	if msg.EffectiveConfig != nil {
		if !proto.Equal(msg.EffectiveConfig, r.effective) {
			changed = true
		}
		r.effective, r.effectiveAt = msg.EffectiveConfig, time.Now()
	}
	if r.description == nil && msg.AgentDisconnect == nil {
		flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
	}
	if msg.AgentDisconnect != nil {
		r.connected, changed = false, true
	}
	s.mu.Unlock()
	if changed && s.onChange != nil {
		s.onChange()
	}
	if flags != 0 {
		return &protobufs.ServerToAgent{Flags: flags}, nil
	}
	return nil, nil
}

func (s *localServer) OnClose(server.Conn) {
	s.mu.Lock()
	s.r.connected = false
	s.mu.Unlock()
	if s.onChange != nil {
		s.onChange()
	}
}

// report returns a copy of the collector's last report.
func (s *localServer) report() localReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r
}

// resetHealth forgets the reported health and effective config (a new
// collector process starts).
func (s *localServer) resetHealth() {
	s.mu.Lock()
	s.r.health, s.r.healthAt = nil, time.Time{}
	s.r.effective, s.r.effectiveAt = nil, time.Time{}
	s.mu.Unlock()
}
