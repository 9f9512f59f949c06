package client_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward/opamp/client"
)

// waitFor is how long eventually polls before failing: generous, for a
// loaded 2-core machine.
const waitFor = 20 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// peer is opamp-go's server, used as an independent OpAMP implementation to
// test the client against. It records what it receives.
type peer struct {
	t    *testing.T
	srv  server.OpAMPServer
	addr string

	// reply, when set, answers a message (nil: an empty reply). It runs on
	// the server's goroutine for that connection.
	reply func(conn types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent
	// refuse, when set, may refuse an incoming connection or POST with an
	// HTTP status and headers.
	refuse func(r *http.Request) (status int, header map[string]string)

	mu       sync.Mutex
	msgs     []*protobufs.AgentToServer
	conns    []types.Connection
	attempts []time.Time
	headers  []http.Header
	certs    []string // client certificate CN per connection ("" if none)
	closed   int
}

// startPeer starts p on addr ("127.0.0.1:0" for any port).
func startPeer(t *testing.T, p *peer, addr string) *peer {
	t.Helper()
	return startPeerTLS(t, p, addr, nil)
}

// startPeerTLS starts p with TLS (nil: plain).
func startPeerTLS(t *testing.T, p *peer, addr string, tlsConfig *tls.Config) *peer {
	t.Helper()
	p.t = t
	srv := server.New(nil)
	err := srv.Start(server.StartSettings{
		ListenEndpoint: addr,
		TLSConfig:      tlsConfig,
		Settings: server.Settings{Callbacks: types.Callbacks{
			OnConnecting: func(r *http.Request) types.ConnectionResponse {
				p.mu.Lock()
				p.attempts = append(p.attempts, time.Now())
				p.headers = append(p.headers, r.Header.Clone())
				cn := ""
				if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
					cn = r.TLS.PeerCertificates[0].Subject.CommonName
				}
				p.certs = append(p.certs, cn)
				refuse := p.refuse
				p.mu.Unlock()
				if refuse != nil {
					if status, h := refuse(r); status != 0 {
						return types.ConnectionResponse{Accept: false, HTTPStatusCode: status, HTTPResponseHeader: h}
					}
				}
				return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
					OnConnected: func(ctx context.Context, conn types.Connection) {
						p.mu.Lock()
						p.conns = append(p.conns, conn)
						p.mu.Unlock()
					},
					OnMessage: func(ctx context.Context, conn types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
						p.mu.Lock()
						p.msgs = append(p.msgs, proto.Clone(m).(*protobufs.AgentToServer))
						reply := p.reply
						p.mu.Unlock()
						var r *protobufs.ServerToAgent
						if reply != nil {
							r = reply(conn, m)
						}
						if r == nil {
							r = &protobufs.ServerToAgent{}
						}
						return r
					},
					OnConnectionClose: func(conn types.Connection) {
						p.mu.Lock()
						p.closed++
						p.mu.Unlock()
					},
				}}
			},
		}},
	})
	if err != nil {
		t.Fatalf("start opamp-go server: %v", err)
	}
	p.srv = srv
	p.addr = srv.Addr().String()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *peer) stop() {
	if p.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.srv.Stop(ctx)
	p.srv = nil
	// opamp-go's Stop leaves hijacked WebSocket connections open; a real
	// server going away closes them.
	p.mu.Lock()
	conns := p.conns
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Disconnect()
	}
}

func (p *peer) url(scheme string) string { return scheme + "://" + p.addr + "/v1/opamp" }

func (p *peer) messages() []*protobufs.AgentToServer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*protobufs.AgentToServer(nil), p.msgs...)
}

func (p *peer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

func (p *peer) lastConn() types.Connection {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		return nil
	}
	return p.conns[len(p.conns)-1]
}

func (p *peer) setReply(f func(conn types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent) {
	p.mu.Lock()
	p.reply = f
	p.mu.Unlock()
}

func (p *peer) attemptTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.attempts...)
}

// find returns the first received message satisfying f, or nil.
func (p *peer) find(f func(*protobufs.AgentToServer) bool) *protobufs.AgentToServer {
	for _, m := range p.messages() {
		if f(m) {
			return m
		}
	}
	return nil
}

// startClient creates and starts a client; it is stopped at cleanup.
func startClient(t *testing.T, s client.Settings) *client.Client {
	t.Helper()
	if s.Backoff.Min == 0 {
		s.Backoff = client.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	}
	c, err := client.New(s)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func description(name string) *protobufs.AgentDescription {
	return &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{
		Key:   "service.name",
		Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: name}},
	}}}
}

// leftovers returns the stacks of goroutines still running code of the
// client, the websocket package or an HTTP client connection.
func leftovers() []string {
	buf := make([]byte, 4<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "steward/opamp/client.") || strings.Contains(g, "steward/opamp/websocket.") ||
			strings.Contains(g, "net/http.(*persistConn)") {
			out = append(out, g)
		}
	}
	return out
}

// transports runs a subtest per transport.
func transports(t *testing.T, f func(t *testing.T, scheme string)) {
	for _, scheme := range []string{"ws", "http"} {
		t.Run(scheme, func(t *testing.T) { f(t, scheme) })
	}
}
