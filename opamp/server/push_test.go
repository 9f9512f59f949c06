package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
	"google.golang.org/protobuf/proto"
)

// pushConfig returns a remote config whose one file is body.
func pushConfig(body []byte) *protobufs.AgentRemoteConfig {
	h := sha256.Sum256(body)
	return &protobufs.AgentRemoteConfig{ConfigHash: h[:], Config: &protobufs.AgentConfigMap{
		ConfigMap: map[string]*protobufs.AgentConfigFile{"": {Body: body, ContentType: "text/yaml"}}}}
}

// agentUID is the instance uid of test agent i.
func agentUID(i int) []byte { return []byte(fmt.Sprintf("agent-%010d", i)) }

// One remote config pushed to many agents is marshalled once, and every
// agent decodes it with its own instance_uid and per-agent fields, over
// plain and compressed WebSockets (ours and gorilla's, which opamp-go's
// client uses) and plain HTTP.
func TestPushEncodesConfigOnce(t *testing.T) {
	h := newTestHandler()
	s, hs := startServer(t, h, Config{})
	body := bytes.Repeat([]byte("receivers: {otlp: {}}  # a compressible config line\n"), 5000) // 260 KB
	rc := pushConfig(body)

	type peer struct {
		uid  []byte
		recv func() *protobufs.ServerToAgent
	}
	var peers []peer
	for i := 0; i < 12; i++ {
		uid := agentUID(i)
		hello := status(1)
		hello.InstanceUid = uid
		switch i % 3 {
		case 0, 1: // ours, plain and compressed
			var hdr http.Header
			if i%3 == 1 {
				hdr = http.Header{"Sec-Websocket-Extensions": {websocket.DeflateOffer}}
			}
			a := dialAgent(t, hs, hdr)
			a.send(hello)
			peers = append(peers, peer{uid, a.recv})
		case 2: // gorilla with compression
			ws, resp, err := (&gorilla.Dialer{EnableCompression: true}).Dial(wsURL(hs), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
				t.Fatal("deflate not negotiated")
			}
			b, _ := opamp.AppendWS(nil, hello)
			if err := ws.WriteMessage(gorilla.BinaryMessage, b); err != nil {
				t.Fatal(err)
			}
			peers = append(peers, peer{uid, func() *protobufs.ServerToAgent {
				_ = ws.SetReadDeadline(time.Now().Add(waitFor))
				_, b, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("gorilla read: %v", err)
				}
				m := &protobufs.ServerToAgent{}
				if err := opamp.DecodeWS(b, m); err != nil {
					t.Fatalf("gorilla decode: %v", err)
				}
				return m
			}})
		}
	}
	eventually(t, "all agents greeted", func() bool { return h.numMessages() == len(peers) })
	for _, p := range peers {
		p.recv() // the reply to the hello
	}
	for i := 0; i < len(peers); i++ {
		c := h.conn(i)
		// The control plane's per-agent message: its uid (left out for
		// some: the transport adds it) and a per-agent flag.
		msg := &protobufs.ServerToAgent{RemoteConfig: rc, Flags: uint64(i)}
		if i%2 == 0 {
			msg.InstanceUid = h.message(i).InstanceUid
		}
		if err := c.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	byUID := map[string]uint64{}
	for i := 0; i < len(peers); i++ {
		byUID[string(h.message(i).InstanceUid)] = uint64(i)
	}
	for _, p := range peers {
		m := p.recv()
		if !bytes.Equal(m.InstanceUid, p.uid) {
			t.Fatalf("instance_uid %q, want %q", m.InstanceUid, p.uid)
		}
		if !proto.Equal(m.RemoteConfig, rc) {
			t.Fatalf("agent %q: remote config differs", p.uid)
		}
		if m.Flags != byUID[string(p.uid)] || m.Capabilities != opamp.ServerCapabilities {
			t.Fatalf("agent %q: flags %d capabilities %d", p.uid, m.Flags, m.Capabilities)
		}
	}
	// A plain-HTTP poll answered with the same config reuses the encoding.
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return &protobufs.ServerToAgent{RemoteConfig: rc}, nil
	}
	got := httpExchange(t, hs, agentUID(99))
	if !proto.Equal(got.RemoteConfig, rc) || !bytes.Equal(got.InstanceUid, agentUID(99)) {
		t.Fatalf("HTTP reply: uid %q, config equal %v", got.InstanceUid, proto.Equal(got.RemoteConfig, rc))
	}
	if n := s.Stats().ConfigEncodings; n != 1 {
		t.Fatalf("remote config marshalled %d times for %d agents, want once", n, len(peers)+1)
	}
}

// httpExchange posts one status report for uid and decodes the reply.
func httpExchange(t *testing.T, hs *httptest.Server, uid []byte) *protobufs.ServerToAgent {
	t.Helper()
	msg := status(1)
	msg.InstanceUid = uid
	b, _ := proto.Marshal(msg)
	resp, body := post(t, hs.URL+opamp.DefaultPath, b, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d", resp.StatusCode)
	}
	m := &protobufs.ServerToAgent{}
	if err := proto.Unmarshal(body, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (h *testHandler) message(i int) *protobufs.AgentToServer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.messages[i]
}

// An agent that reads slowly through a small receive window gets a 256 KiB
// config in full and stays connected, even when receiving it takes many
// times the write timeout.
func TestSlowReaderGetsLargeConfig(t *testing.T) {
	h := newTestHandler()
	const writeTimeout = 300 * time.Millisecond
	s, hs := startServerSmallSendBuffer(t, h, Config{WriteTimeout: writeTimeout})
	body := make([]byte, 256<<10) // incompressible
	_, _ = rand.Read(body)
	rc := pushConfig(body)

	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(hs), &websocket.DialOptions{NetDial: d.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.NetConn().Close()
	a := &agent{t: t, ws: ws}
	a.send(status(1))
	a.recv()
	if err := h.conn(0).Send(&protobufs.ServerToAgent{RemoteConfig: rc}); err != nil {
		t.Fatal(err)
	}
	// Read the message a few KiB at a time: about 2.5 s in all, eight
	// times the write timeout.
	start := time.Now()
	nc := ws.NetConn()
	var raw bytes.Buffer
	buf := make([]byte, 2048)
	for raw.Len() < len(body) {
		_ = nc.SetReadDeadline(time.Now().Add(waitFor))
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes, %v: %v (server: %+v)", raw.Len(), time.Since(start), err, s.Stats())
		}
		raw.Write(buf[:n])
		time.Sleep(20 * time.Millisecond)
	}
	if time.Since(start) < 2*writeTimeout {
		t.Fatalf("read in %v: the test did not read slowly", time.Since(start))
	}
	// Parse what arrived (the whole frame, then the rest of it if any).
	var p websocket.Parser
	var got []byte
	feed := func(b []byte) {
		if err := p.Feed(b, func(op websocket.Opcode, payload []byte) error {
			got = append([]byte(nil), payload...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	feed(raw.Bytes())
	for got == nil {
		_ = nc.SetReadDeadline(time.Now().Add(waitFor))
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		feed(buf[:n])
	}
	m := &protobufs.ServerToAgent{}
	if err := opamp.DecodeWS(got, m); err != nil || !proto.Equal(m.RemoteConfig, rc) {
		t.Fatalf("config not received intact: %v", err)
	}
	if h.closedCount(h.conn(0)) != 0 || s.Stats().Stuck != 0 {
		t.Fatalf("slow reader disconnected: stats %+v", s.Stats())
	}
}

// An agent that reads nothing of a large config is cut off after the
// write timeout, and counted.
func TestStuckReaderCutOff(t *testing.T) {
	h := newTestHandler()
	s, hs := startServer(t, h, Config{WriteTimeout: 200 * time.Millisecond})
	body := make([]byte, 8<<20) // more than the socket buffers hold
	_, _ = rand.Read(body)
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	a.recv()
	if err := h.conn(0).Send(&protobufs.ServerToAgent{RemoteConfig: pushConfig(body)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stuck agent cut off", func() bool { return h.closedCount(h.conn(0)) == 1 })
	if s.Stats().Stuck != 1 {
		t.Fatalf("Stuck = %d, want 1", s.Stats().Stuck)
	}
}

// startServerSmallSendBuffer is startServer with small socket send
// buffers, so that what an agent has not read stays in the server's queue
// (as under load) rather than in the loopback's generous kernel buffers.
func startServerSmallSendBuffer(t *testing.T, h Handler, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, h, cfg, smallSendBuffers{ln.(*net.TCPListener)})
}

type smallSendBuffers struct{ *net.TCPListener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err == nil {
		err = c.SetWriteBuffer(8 << 10)
	}
	return c, err
}
