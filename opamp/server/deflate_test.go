package server

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	gorilla "github.com/gorilla/websocket"
	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// permessage-deflate, negotiated by gorilla/websocket (what opamp-go's
// client uses with EnableCompression): messages are compressed both ways.
func TestWebSocketCompressionWithGorilla(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return &protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Data: msg.GetCustomMessage().GetData()}}, nil
	}
	s, hs := startServer(t, h, Config{})
	d := gorilla.Dialer{EnableCompression: true}
	ws, resp, err := d.Dial(wsURL(hs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("not negotiated: %q", ext)
	}
	data := bytes.Repeat([]byte("compressible effective config line\n"), 30000) // ~1 MiB
	msg := status(1)
	msg.CustomMessage = &protobufs.CustomMessage{Capability: "x", Data: data}
	b, _ := opamp.AppendWS(nil, msg)
	for i := 0; i < 3; i++ {
		if err := ws.WriteMessage(gorilla.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		r := &protobufs.ServerToAgent{}
		if err := opamp.DecodeWS(got, r); err != nil || !bytes.Equal(r.GetCustomMessage().GetData(), data) {
			t.Fatalf("echo differs: %v", err)
		}
	}
	// Small messages too (sent uncompressed by us, compressed by gorilla).
	small, _ := opamp.AppendWS(nil, status(2))
	ws.WriteMessage(gorilla.BinaryMessage, small)
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.BytesIn > uint64(len(data)) || st.BytesOut > uint64(len(data)) {
		t.Fatalf("wire bytes in %d, out %d for 3 messages of %d bytes: not compressed", st.BytesIn, st.BytesOut, len(data))
	}
}

func TestWebSocketCompressedBombAndGarbage(t *testing.T) {
	h := newTestHandler()
	s, hs := startServer(t, h, Config{MaxMessageSize: 1 << 20})
	dial := func() *agent {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, wsURL(hs), &websocket.DialOptions{Header: http.Header{"Sec-WebSocket-Extensions": {websocket.DeflateOffer}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
			t.Fatal("deflate not negotiated")
		}
		t.Cleanup(func() { ws.NetConn().Close() })
		return &agent{t: t, ws: ws}
	}
	rawSend := func(a *agent, payload []byte) {
		f := websocket.AppendFrame(nil, true, websocket.Binary, payload, true, [4]byte{3, 1, 4, 1})
		f[0] |= websocket.RSV1
		if _, err := a.ws.NetConn().Write(f); err != nil {
			t.Fatal(err)
		}
	}
	// A compressed message that inflates fine, with a compressed reply.
	a := dial()
	m, _ := opamp.AppendWS(nil, status(7))
	rawSend(a, websocket.AppendDeflate(nil, m))
	if r := a.recv(); r.Flags != 7 {
		t.Fatalf("reply %v", r)
	}
	// 8 MiB of zeros in ~8 KiB: closed with 1009 after inflating 1 MiB.
	a = dial()
	rawSend(a, websocket.AppendDeflate(nil, make([]byte, 8<<20)))
	if code := a.recvClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("bomb: close %d", code)
	}
	// Not DEFLATE at all: 1007.
	a = dial()
	rawSend(a, []byte{0xff, 0xfe, 0xfd, 0xfc, 0x00, 0x13})
	if code := a.recvClose(); code != websocket.CloseInvalidPayload {
		t.Fatalf("garbage: close %d", code)
	}
	if h.numMessages() != 1 || s.Stats().Errors != 2 {
		t.Fatalf("handler saw %d, errors %d", h.numMessages(), s.Stats().Errors)
	}
}
