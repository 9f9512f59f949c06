package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// waitFor bounds every eventually: generous, for a loaded 2-core machine.
const waitFor = 30 * time.Second

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testHandler records what the transport delivers. Hooks default to
// accepting everything and replying with Flags = the sequence number.
type testHandler struct {
	accept    func(r *http.Request) (any, error)
	onMessage func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error)

	mu       sync.Mutex
	conns    []Conn
	messages []*protobufs.AgentToServer
	closed   map[Conn]int
	active   map[Conn]int // OnMessage calls in progress per connection
	overlap  bool         // two OnMessage calls of one connection overlapped
}

func newTestHandler() *testHandler {
	return &testHandler{closed: map[Conn]int{}, active: map[Conn]int{}}
}

func (h *testHandler) Accept(r *http.Request) (any, error) {
	if h.accept != nil {
		return h.accept(r)
	}
	return "state:" + r.Header.Get("X-Agent"), nil
}

func (h *testHandler) OnMessage(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	h.mu.Lock()
	if h.active[c] > 0 {
		h.overlap = true
	}
	h.active[c]++
	known := false
	for _, k := range h.conns {
		known = known || k == c
	}
	if !known {
		h.conns = append(h.conns, c)
	}
	h.messages = append(h.messages, msg)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.active[c]--
		h.mu.Unlock()
	}()
	if h.onMessage != nil {
		return h.onMessage(ctx, c, msg)
	}
	return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
}

func (h *testHandler) OnClose(c Conn) {
	h.mu.Lock()
	h.closed[c]++
	h.mu.Unlock()
}

func (h *testHandler) numMessages() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.messages)
}

func (h *testHandler) numConns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *testHandler) conn(i int) Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[i]
}

func (h *testHandler) closedCount(c Conn) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed[c]
}

func (h *testHandler) totalClosed() (conns, calls int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.closed {
		conns++
		calls += n
	}
	return
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startServer serves a new Server for h on 127.0.0.1 and shuts both down
// at the end of the test.
func startServer(t testing.TB, h Handler, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	return startServerOn(t, h, cfg, nil)
}

// startServerOn is startServer on ln (nil: a new loopback listener).
func startServerOn(t testing.TB, h Handler, cfg Config, ln net.Listener) (*Server, *httptest.Server) {
	t.Helper()
	cfg.Handler = h
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	if ln != nil {
		hs.Listener.Close()
		hs.Listener = ln
	}
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	return s, hs
}

func wsURL(hs *httptest.Server) string {
	return "ws" + strings.TrimPrefix(hs.URL, "http") + opamp.DefaultPath
}

// agent is a minimal OpAMP WebSocket agent over our websocket package.
type agent struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialAgent(t testing.TB, hs *httptest.Server, hdr http.Header) *agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(hs), &websocket.DialOptions{Header: hdr})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	a := &agent{t: t, ws: ws}
	t.Cleanup(func() { ws.NetConn().Close() })
	return a
}

func (a *agent) send(msg *protobufs.AgentToServer) {
	a.t.Helper()
	b, err := opamp.AppendWS(nil, msg)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.ws.WriteMessage(websocket.Binary, b); err != nil {
		a.t.Fatalf("write: %v", err)
	}
}

// recv reads the next ServerToAgent, failing the test on any error.
func (a *agent) recv() *protobufs.ServerToAgent {
	a.t.Helper()
	m, err := a.tryRecv()
	if err != nil {
		a.t.Fatalf("recv: %v", err)
	}
	return m
}

func (a *agent) tryRecv() (*protobufs.ServerToAgent, error) {
	_ = a.ws.SetReadDeadline(time.Now().Add(waitFor))
	op, b, err := a.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if op != websocket.Binary {
		return nil, errors.New("non-binary message from server")
	}
	m := &protobufs.ServerToAgent{}
	if err := opamp.DecodeWS(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// recvClose reads until the server's close frame and returns its code.
func (a *agent) recvClose() int {
	a.t.Helper()
	for {
		_, err := a.tryRecv()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			a.t.Fatalf("waiting for close: %v", err)
		}
	}
}

var uid1 = []byte("0123456789abcdef")

func status(seq uint64) *protobufs.AgentToServer {
	return &protobufs.AgentToServer{
		InstanceUid:  uid1,
		SequenceNum:  seq,
		Capabilities: uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus),
	}
}

func numGoroutines() int { return runtime.NumGoroutine() }
