package server

import (
	"io"
	"net"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// FuzzConnInput feeds arbitrary bytes, as if read from an agent's socket
// in chunks, through a connection's parsing and message handling: nothing
// may panic, and the connection must end up either healthy or closing.
func FuzzConnInput(f *testing.F) {
	key := [4]byte{1, 2, 3, 4}
	good, _ := opamp.AppendWS(nil, status(1))
	f.Add(websocket.AppendFrame(nil, true, websocket.Binary, good, true, key), uint8(5))
	f.Add(websocket.AppendFrame(nil, true, websocket.Binary, []byte{0, 0xFF, 0x01}, true, key), uint8(2))
	f.Add(websocket.AppendFrame(nil, true, websocket.Binary, []byte{1, 2}, true, key), uint8(1))
	f.Add(websocket.AppendFrame(nil, true, websocket.Text, []byte("hi"), true, key), uint8(3))
	f.Add(websocket.AppendFrame(nil, true, websocket.Close, []byte{3, 0xE8}, true, key), uint8(9))
	disc, _ := opamp.AppendWS(nil, &protobufs.AgentToServer{AgentDisconnect: &protobufs.AgentDisconnect{}})
	f.Add(websocket.AppendFrame(nil, true, websocket.Binary, disc, true, key), uint8(4))
	comp := websocket.AppendFrame(nil, true, websocket.Binary, websocket.AppendDeflate(nil, good), true, key)
	comp[0] |= websocket.RSV1
	f.Add(comp, uint8(0x83))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		h := newTestHandler()
		s, err := New(Config{Handler: h, Logger: quietLog, MaxMessageSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		defer s.stop()
		srvSide, peer := net.Pipe()
		go io.Copy(io.Discard, peer)
		defer peer.Close()
		c := &wsConn{s: s, nc: srvSide, remote: "fuzz", busy: true}
		c.parser.FromClient = true
		c.parser.MaxMessageSize = s.cfg.MaxMessageSize
		c.deflate = chunk&0x80 != 0 // permessage-deflate negotiated
		c.parser.Deflate = c.deflate
		s.mu.Lock()
		s.nextID++
		c.id = s.nextID
		s.conns[c.id] = c
		s.mu.Unlock()
		s.open.Add(1)
		n := int(chunk%32) + 1
		in := append([]byte(nil), data...)
		for len(in) > 0 {
			k := min(n, len(in))
			c.process(in[:k])
			in = in[k:]
		}
		c.endBusy(false) // no epoll (rc == nil): ends the connection
		if h.closedCount(c) != 1 {
			t.Fatalf("OnClose called %d times", h.closedCount(c))
		}
	})
}
