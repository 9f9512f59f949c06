package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

func TestWebSocketReplyAndPush(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		if c.Transport() != WebSocket || c.State() != "state:a1" || c.RemoteAddr() == "" {
			t.Errorf("conn: transport %v state %v remote %q", c.Transport(), c.State(), c.RemoteAddr())
		}
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	s, hs := startServer(t, h, Config{Capabilities: 0x7})
	a := dialAgent(t, hs, http.Header{"X-Agent": {"a1"}})
	a.send(status(1))
	r := a.recv()
	if r.Capabilities != 0x7 || !bytes.Equal(r.InstanceUid, uid1) || r.Flags != 1 {
		t.Fatalf("reply = %v", r)
	}
	// Push: the same message object to the connection; the transport adds
	// capabilities and instance_uid on the wire without modifying it.
	push := &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte("h1")}}
	if err := h.conn(0).Send(push); err != nil {
		t.Fatal(err)
	}
	r = a.recv()
	if string(r.GetRemoteConfig().GetConfigHash()) != "h1" || r.Capabilities != 0x7 || !bytes.Equal(r.InstanceUid, uid1) {
		t.Fatalf("push = %v", r)
	}
	if push.Capabilities != 0 || push.InstanceUid != nil {
		t.Fatal("Send modified the caller's message")
	}
	eventually(t, "stats", func() bool {
		st := s.Stats()
		return st.Connections == 1 && st.Messages == 1 && st.Sent == 2 && st.Accepted == 1 && st.BytesIn > 0 && st.BytesOut > 0
	})
	// A clean close from the agent: OnClose once, Send then fails.
	if err := a.ws.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	eventually(t, "OnClose", func() bool { return h.closedCount(h.conn(0)) == 1 })
	if err := h.conn(0).Send(push); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after close: %v", err)
	}
	eventually(t, "connection count 0", func() bool { return s.Stats().Connections == 0 })
}

func TestWebSocketOrderingOnePerConnection(t *testing.T) {
	h := newTestHandler()
	var mu sync.Mutex
	seen := map[Conn][]uint64{}
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		mu.Lock()
		seen[c] = append(seen[c], msg.SequenceNum)
		mu.Unlock()
		if msg.SequenceNum%7 == 0 {
			time.Sleep(time.Millisecond) // widen any overlap window
		}
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	_, hs := startServer(t, h, Config{Workers: 4})
	const agents, each = 8, 100
	var wg sync.WaitGroup
	for i := 0; i < agents; i++ {
		a := dialAgent(t, hs, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Write everything back to back (several messages per read on
			// the server), then read all replies in order.
			var batch []byte
			for n := uint64(1); n <= each; n++ {
				b, _ := opamp.AppendWS(nil, status(n))
				batch = websocket.AppendFrame(batch, true, websocket.Binary, b, true, [4]byte{1, 2, 3, 4})
			}
			if _, err := a.ws.NetConn().Write(batch); err != nil {
				t.Error(err)
				return
			}
			for n := uint64(1); n <= each; n++ {
				r, err := a.tryRecv()
				if err != nil {
					t.Error(err)
					return
				}
				if r.Flags != n {
					t.Errorf("reply %d has flags %d", n, r.Flags)
					return
				}
			}
		}()
	}
	wg.Wait()
	h.mu.Lock()
	overlap := h.overlap
	h.mu.Unlock()
	if overlap {
		t.Fatal("OnMessage ran concurrently for one connection")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != agents {
		t.Fatalf("%d connections seen", len(seen))
	}
	for _, seqs := range seen {
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("out of order: %v", seqs[:i+1])
			}
		}
	}
}

func TestWebSocketMalformedMessages(t *testing.T) {
	h := newTestHandler()
	s, hs := startServer(t, h, Config{MaxMessageSize: 1000})
	a := dialAgent(t, hs, nil)

	// Wrong header: answered with BAD_REQUEST, connection stays up.
	if err := a.ws.WriteMessage(websocket.Binary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	r := a.recv()
	if r.GetErrorResponse().GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest ||
		!strings.Contains(r.GetErrorResponse().GetErrorMessage(), "header") {
		t.Fatalf("bad header reply = %v", r)
	}
	// Header right, protobuf garbage.
	if err := a.ws.WriteMessage(websocket.Binary, []byte{0, 0xFF, 0xFF, 0xFF}); err != nil {
		t.Fatal(err)
	}
	r = a.recv()
	if r.GetErrorResponse().GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest ||
		!strings.Contains(r.GetErrorResponse().GetErrorMessage(), "malformed") {
		t.Fatalf("garbage reply = %v", r)
	}
	// Empty message: no header at all.
	if err := a.ws.WriteMessage(websocket.Binary, nil); err != nil {
		t.Fatal(err)
	}
	if r = a.recv(); r.GetErrorResponse() == nil {
		t.Fatalf("empty message reply = %v", r)
	}
	// Still usable.
	a.send(status(1))
	if r = a.recv(); r.GetErrorResponse() != nil || r.Capabilities == 0 {
		t.Fatalf("reply after errors = %v", r)
	}
	if h.numMessages() != 1 {
		t.Fatalf("handler saw %d messages, want 1", h.numMessages())
	}
	if s.Stats().Errors != 3 {
		t.Fatalf("errors = %d, want 3", s.Stats().Errors)
	}

	// A text frame is refused: close 1003.
	a2 := dialAgent(t, hs, nil)
	_ = a2.ws.WriteMessage(websocket.Text, []byte("hello"))
	if code := a2.recvClose(); code != websocket.CloseUnsupportedData {
		t.Fatalf("text frame: close %d", code)
	}
	// Oversize: close 1009.
	a3 := dialAgent(t, hs, nil)
	_ = a3.ws.WriteMessage(websocket.Binary, make([]byte, 1001))
	if code := a3.recvClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversize: close %d", code)
	}
	// An unmasked frame: close 1002, written raw.
	a4 := dialAgent(t, hs, nil)
	_, _ = a4.ws.NetConn().Write(websocket.AppendFrame(nil, true, websocket.Binary, []byte{0}, false, [4]byte{}))
	if code := a4.recvClose(); code != websocket.CloseProtocolError {
		t.Fatalf("unmasked: close %d", code)
	}
	eventually(t, "OnClose for the failed connections", func() bool { return s.Stats().Connections == 1 })
}

func TestWebSocketHandlerErrors(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		switch msg.SequenceNum {
		case 1:
			return nil, steward.Errorf(steward.EUNAVAILABLE, "database down")
		case 2:
			return nil, steward.Errorf(steward.EINVALID, "bad description")
		case 3:
			panic("handler bug")
		}
		return nil, nil // no reply on WebSocket
	}
	_, hs := startServer(t, h, Config{RetryAfter: 7 * time.Second})
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	e := a.recv().GetErrorResponse()
	if e.GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable ||
		e.GetRetryInfo().GetRetryAfterNanoseconds() != uint64(7*time.Second) || e.GetErrorMessage() != "database down" {
		t.Fatalf("EUNAVAILABLE reply = %v", e)
	}
	a.send(status(2))
	e = a.recv().GetErrorResponse()
	if e.GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest || e.GetErrorMessage() != "bad description" {
		t.Fatalf("EINVALID reply = %v", e)
	}
	a.send(status(3))
	if e = a.recv().GetErrorResponse(); e.GetErrorMessage() != "internal error" {
		t.Fatalf("panic reply = %v", e)
	}
	a.send(status(4)) // nil reply: nothing is sent
	a.send(status(1))
	if e = a.recv().GetErrorResponse(); e.GetErrorMessage() != "database down" {
		t.Fatalf("reply after the nil reply = %v", e)
	}
}

// The server closes a connection whose agent sent agent_disconnect but
// did not close it itself (after closeGrace).
func TestWebSocketAgentDisconnect(t *testing.T) {
	h := newTestHandler()
	_, hs := startServer(t, h, Config{})
	a := dialAgent(t, hs, nil)
	msg := status(1)
	msg.AgentDisconnect = &protobufs.AgentDisconnect{}
	a.send(msg)
	if code := a.recvClose(); code != websocket.CloseNormal {
		t.Fatalf("close code %d", code)
	}
	eventually(t, "OnClose", func() bool { return h.numConns() == 1 && h.closedCount(h.conn(0)) == 1 })
	if h.numMessages() != 1 || h.messages[0].AgentDisconnect == nil {
		t.Fatal("agent_disconnect message not delivered")
	}
}

func TestWebSocketAcceptRefusals(t *testing.T) {
	h := newTestHandler()
	h.accept = func(r *http.Request) (any, error) {
		switch r.Header.Get("X-Agent") {
		case "anon":
			return nil, steward.Errorf(steward.EUNAUTHORIZED, "no token")
		case "banned":
			return nil, steward.Errorf(steward.EFORBIDDEN, "banned")
		case "busy":
			return nil, steward.Errorf(steward.EUNAVAILABLE, "busy")
		case "odd":
			return nil, errors.New("something internal")
		}
		return nil, nil
	}
	_, hs := startServer(t, h, Config{RetryAfter: 1500 * time.Millisecond, MaxConnections: 2})
	for who, want := range map[string]int{"anon": 401, "banned": 403, "busy": 503, "odd": 400} {
		_, resp, err := websocket.Dial(context.Background(), wsURL(hs), &websocket.DialOptions{Header: http.Header{"X-Agent": {who}}})
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Fatalf("%s: err %v resp %v, want %d", who, err, resp, want)
		}
		if want == 503 && resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	// MaxConnections: the third is refused with 503 + Retry-After.
	dialAgent(t, hs, nil)
	dialAgent(t, hs, nil)
	_, resp, err := websocket.Dial(context.Background(), wsURL(hs), nil)
	if err == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over MaxConnections: err %v resp %v", err, resp)
	}
}

func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	s, hs := startServer(t, h, Config{Workers: 1, WriteTimeout: 300 * time.Millisecond})
	slow := dialAgent(t, hs, nil)
	slow.send(status(1))
	slow.recv()
	fast := dialAgent(t, hs, nil)
	fast.send(status(1))
	fast.recv()
	slowConn := h.conn(0)
	// Push far more than the socket buffers hold to the agent that never
	// reads. Send never blocks; the agent gets cut off.
	big := &protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Data: make([]byte, 1<<20)}}
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		for i := 0; i < 200; i++ {
			if slowConn.Send(big) != nil {
				return
			}
		}
	}()
	// Meanwhile the other agent is served promptly by the single worker.
	for n := uint64(2); n < 50; n++ {
		fast.send(status(n))
		if r := fast.recv(); r.Flags != n {
			t.Fatalf("fast agent got flags %d, want %d", r.Flags, n)
		}
	}
	<-pushDone
	eventually(t, "slow agent cut off", func() bool { return h.closedCount(slowConn) == 1 })
	if h.closedCount(h.conn(1)) != 0 {
		t.Fatal("fast agent was closed")
	}
	if s.Stats().Errors == 0 {
		t.Fatal("write timeout not counted as an error")
	}
}

func TestShutdownClosesAllWith1001(t *testing.T) {
	base := numGoroutines()
	h := newTestHandler()
	s, err := New(Config{Handler: h, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	const n = 20
	agents := make([]*agent, n)
	for i := range agents {
		agents[i] = dialAgent(t, hs, nil)
		agents[i].send(status(uint64(i)))
		agents[i].recv()
	}
	codes := make(chan int, n)
	for _, a := range agents {
		go func(a *agent) {
			// Answer the close handshake like a real agent.
			_, _, err := a.ws.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				codes <- ce.Code
			} else {
				codes <- -1
			}
		}(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for i := 0; i < n; i++ {
		if c := <-codes; c != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", c)
		}
	}
	conns, calls := h.totalClosed()
	if conns != n || calls != n {
		t.Fatalf("OnClose: %d connections, %d calls; want %d each", conns, calls, n)
	}
	// New connections are refused after Shutdown.
	if _, resp, err := websocket.Dial(context.Background(), wsURL(hs), nil); err == nil || resp.StatusCode != 503 {
		t.Fatalf("dial after shutdown: %v", err)
	}
	hs.Close()
	for _, a := range agents {
		a.ws.NetConn().Close()
	}
	eventually(t, "goroutines back to baseline", func() bool { return numGoroutines() <= base })
}

func TestShutdownWithUnresponsivePeers(t *testing.T) {
	h := newTestHandler()
	release := make(chan struct{})
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		select { // a handler stuck until its context is cancelled
		case <-release:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}
	s, err := New(Config{Handler: h, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	b := dialAgent(t, hs, nil) // idle, never answers the close handshake
	_ = b
	eventually(t, "handler running", func() bool { return s.Stats().InFlight == 1 && s.Stats().Connections == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	close(release)
	conns, calls := h.totalClosed()
	if s.Stats().Connections != 0 || conns != 2 || calls != 2 {
		t.Fatalf("after forced shutdown: %d open, OnClose %d/%d", s.Stats().Connections, conns, calls)
	}
}

func TestIdleTimeout(t *testing.T) {
	h := newTestHandler()
	_, hs := startServer(t, h, Config{IdleTimeout: 300 * time.Millisecond})
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	if code := a.recvClose(); code != websocket.CloseNormal {
		t.Fatalf("close code %d", code)
	}
	eventually(t, "OnClose", func() bool { return h.numConns() == 1 && h.closedCount(h.conn(0)) == 1 })
}

// LastReceived is when the agent's bytes last arrived, also while its
// reader is still busy with an earlier message and they wait unread; once
// read and handled, it is the time they were read.
func TestLastReceivedCountsUnreadBytes(t *testing.T) {
	h := newTestHandler()
	release := make(chan struct{})
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		if msg.SequenceNum == 1 {
			<-release // a handler slow with the first message
		}
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	_, hs := startServer(t, h, Config{})
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	eventually(t, "the first message to reach the handler", func() bool { return h.numMessages() == 1 })
	c := h.conn(0)
	before := time.Now()
	a.send(status(2))
	eventually(t, "LastReceived to see the unread second message", func() bool { return c.LastReceived().After(before) })
	close(release)
	if a.recv().Flags != 1 || a.recv().Flags != 2 {
		t.Fatal("replies out of order")
	}
	read := c.LastReceived()
	time.Sleep(20 * time.Millisecond)
	if got := c.LastReceived(); !got.Equal(read) || !got.Before(time.Now()) {
		t.Fatalf("with nothing unread, LastReceived moved from %v to %v", read, got)
	}
}

func TestServerCloseAndPing(t *testing.T) {
	h := newTestHandler()
	_, hs := startServer(t, h, Config{})
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	eventually(t, "connection", func() bool { return h.numConns() == 1 })
	// Ping is answered by the transport.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := a.ws.Ping(ctx); err != nil {
			t.Errorf("ping: %v", err)
		}
		_ = h.conn(0).Close()
	}()
	if code := a.recvClose(); code != websocket.CloseNormal {
		t.Fatalf("close code %d", code)
	}
	eventually(t, "OnClose", func() bool { return h.closedCount(h.conn(0)) == 1 })
	_ = h.conn(0).Close() // harmless
	time.Sleep(10 * time.Millisecond)
	if h.closedCount(h.conn(0)) != 1 {
		t.Fatal("OnClose called twice")
	}
}

func TestFragmentedAndPipelinedFrames(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	_, hs := startServer(t, h, Config{})
	a := dialAgent(t, hs, nil)
	msg := status(42)
	msg.AgentDescription = &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{Key: "service.name", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: strings.Repeat("x", 100000)}}}}}
	b, _ := opamp.AppendWS(nil, msg)
	key := [4]byte{9, 9, 9, 9}
	var raw []byte
	raw = websocket.AppendFrame(raw, false, websocket.Binary, b[:10], true, key)
	raw = websocket.AppendFrame(raw, true, websocket.Ping, []byte("x"), true, key)
	raw = websocket.AppendFrame(raw, false, websocket.Continuation, b[10:70000], true, key)
	raw = websocket.AppendFrame(raw, true, websocket.Continuation, b[70000:], true, key)
	// Write byte-dribbled in pieces so the server sees partial frames.
	nc := a.ws.NetConn()
	for len(raw) > 0 {
		n := min(len(raw), 7777)
		if _, err := nc.Write(raw[:n]); err != nil {
			t.Fatal(err)
		}
		raw = raw[n:]
	}
	if r := a.recv(); r.Flags != 42 {
		t.Fatalf("reply = %v", r)
	}
}

func TestTLSFallbackConnections(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	s, err := New(Config{Handler: h, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(s)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	a := dialTo(t, hs, true)
	for n := uint64(1); n <= 20; n++ {
		a.send(status(n))
		if r := a.recv(); r.Flags != n {
			t.Fatalf("reply %v", r)
		}
	}
	if err := h.conn(0).Send(&protobufs.ServerToAgent{Flags: 99}); err != nil {
		t.Fatal(err)
	}
	if r := a.recv(); r.Flags != 99 {
		t.Fatalf("push %v", r)
	}
	code := make(chan int, 1)
	go func() { // answers the close handshake
		_, _, err := a.ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			code <- ce.Code
		} else {
			code <- -1
		}
	}()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != websocket.CloseGoingAway {
		t.Fatalf("close %d", c)
	}
	if h.closedCount(h.conn(0)) != 1 {
		t.Fatal("OnClose not called once")
	}
}

func TestInstanceUIDAndSendLimits(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		if msg.SequenceNum == 2 { // a reply over the send limit: not sent
			return &protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Data: make([]byte, 2000)}}, nil
		}
		return &protobufs.ServerToAgent{Flags: msg.SequenceNum}, nil
	}
	s, hs := startServer(t, h, Config{MaxSendMessageSize: 1000})
	a := dialAgent(t, hs, nil)
	bad := status(1)
	bad.InstanceUid = []byte("short")
	a.send(bad)
	e := a.recv().GetErrorResponse()
	if e.GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest || !strings.Contains(e.GetErrorMessage(), "16 bytes") {
		t.Fatalf("short instance_uid: %v", e)
	}
	a.send(status(2))
	a.send(status(3))
	if r := a.recv(); r.Flags != 3 {
		t.Fatalf("after the discarded reply got %v", r)
	}
	if err := h.conn(0).Send(&protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Data: make([]byte, 2000)}}); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Send over the limit: %v", err)
	}
	if err := h.conn(0).Send(&protobufs.ServerToAgent{Flags: 4}); err != nil {
		t.Fatal(err)
	}
	if r := a.recv(); r.Flags != 4 {
		t.Fatalf("after the refused Send got %v", r)
	}
	if st := s.Stats(); st.Discarded != 2 || h.numMessages() != 2 {
		t.Fatalf("discarded %d, handler saw %d messages", st.Discarded, h.numMessages())
	}
}

func TestNoGoroutineLeakPerConnection(t *testing.T) {
	h := newTestHandler()
	// Plain (epoll) and TLS (goroutine per connection) servers.
	s, err := New(Config{Handler: h, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(s)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(s)
	defer tlsSrv.Close()
	defer s.Shutdown(context.Background())
	tlsCfg := &tls.Config{RootCAs: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	dialBoth := func() []*websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		a, _, err := websocket.Dial(ctx, wsURL(plain), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(tlsSrv.URL, "https")+opamp.DefaultPath, &websocket.DialOptions{TLSConfig: tlsCfg})
		if err != nil {
			t.Fatal(err)
		}
		return []*websocket.Conn{a, b}
	}
	exchange := func(ws *websocket.Conn) {
		a := &agent{t: t, ws: ws}
		a.send(status(1))
		a.recv()
	}
	// Warm up (TLS session machinery, http server goroutines), then count.
	for _, ws := range dialBoth() {
		exchange(ws)
		ws.Close()
	}
	eventually(t, "warm-up connections closed", func() bool { return s.Stats().Connections == 0 })
	plain.CloseClientConnections()
	tlsSrv.CloseClientConnections()
	base := numGoroutines()
	for round := 0; round < 10; round++ {
		conns := dialBoth()
		for _, ws := range conns {
			exchange(ws)
		}
		switch round % 3 {
		case 0: // agent closes
			for _, ws := range conns {
				ws.Close()
			}
		case 1: // server closes
			for i := 0; i < 2; i++ {
				c := h.conn(h.numConns() - 1 - i)
				c.Close()
			}
			for _, ws := range conns {
				ws.ReadMessage() // close frame, echoed
			}
		case 2: // agent drops TCP
			for _, ws := range conns {
				ws.NetConn().Close()
			}
		}
		eventually(t, "connections closed", func() bool { return s.Stats().Connections == 0 })
	}
	eventually(t, "goroutines back to baseline", func() bool { return numGoroutines() <= base })
	conns, calls := h.totalClosed()
	if conns != calls {
		t.Fatalf("OnClose: %d connections, %d calls", conns, calls)
	}
}

func TestLargeMessagesBothWays(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		body := msg.GetEffectiveConfig().GetConfigMap().GetConfigMap()[""].GetBody()
		return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{
			Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{"": {Body: body}}},
		}}, nil
	}
	_, hs := startServer(t, h, Config{})
	a := dialAgent(t, hs, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
	msg := status(1)
	msg.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{
		ConfigMap: map[string]*protobufs.AgentConfigFile{"": {Body: big}},
	}}
	for i := 0; i < 2; i++ {
		a.send(msg)
		r := a.recv()
		if !bytes.Equal(r.GetRemoteConfig().GetConfig().GetConfigMap()[""].GetBody(), big) {
			t.Fatalf("round %d: echoed body differs (%d bytes)", i, len(r.GetRemoteConfig().GetConfig().GetConfigMap()[""].GetBody()))
		}
	}
}

func TestFramesPipelinedWithHandshake(t *testing.T) {
	h := newTestHandler()
	_, hs := startServer(t, h, Config{})
	nc, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET " + opamp.DefaultPath + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	b1, _ := opamp.AppendWS(nil, status(1))
	b2, _ := opamp.AppendWS(nil, status(2))
	out := []byte(req)
	out = websocket.AppendFrame(out, true, websocket.Binary, b1, true, [4]byte{1, 1, 1, 1})
	out = websocket.AppendFrame(out, true, websocket.Binary, b2, true, [4]byte{2, 2, 2, 2})
	if _, err := nc.Write(out); err != nil { // one write: frames arrive with the request
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var rest []byte
	if n := br.Buffered(); n > 0 {
		rest, _ = br.Peek(n)
	}
	ws := websocket.NewConn(nc, true, append([]byte(nil), rest...), 0)
	a := &agent{t: t, ws: ws}
	for n := uint64(1); n <= 2; n++ {
		if r := a.recv(); r.Flags != n {
			t.Fatalf("reply %d: %v", n, r)
		}
	}
}
