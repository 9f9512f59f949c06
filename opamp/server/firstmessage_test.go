package server

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/opamp/websocket"
)

// A WebSocket that sends nothing after the upgrade is closed with 1008
// once FirstMessageTimeout has passed (epoll-driven plain TCP here; TLS in
// daemon TestSilentConnectionsClosed); one that sent its first message is
// not, however long it is quiet afterwards.
func TestFirstMessageTimeout(t *testing.T) {
	h := newTestHandler()
	srv, hs := startServer(t, h, Config{FirstMessageTimeout: 200 * time.Millisecond})
	talker := dialAgent(t, hs, nil)
	talker.send(status(1))
	talker.recv()
	silent := make([]*agent, 20)
	for i := range silent {
		silent[i] = dialAgent(t, hs, nil)
	}
	for i, a := range silent {
		if code := a.recvClose(); code != websocket.ClosePolicyViolation {
			t.Fatalf("silent connection %d closed with %d, want 1008", i, code)
		}
	}
	eventually(t, "the silent connections gone", func() bool { return srv.Stats().Connections == 1 })
	// The talker, quiet since its first message for longer than the
	// timeout, is still served.
	talker.send(status(2))
	if r := talker.recv(); r.Flags != 2 {
		t.Fatalf("talker reply %v", r)
	}
}
