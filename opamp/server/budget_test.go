package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// bigMessage is a ServerToAgent of about n incompressible bytes.
func bigMessage(n int) *protobufs.ServerToAgent {
	data := make([]byte, n)
	_, _ = rand.Read(data)
	return &protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Capability: "x", Type: "y", Data: data}}
}

// A large push to many agents is written a budget at a time: the bytes in
// flight never exceed Config.PushBudget, the messages beyond it wait in
// line, and every agent gets its message — on epoll-driven connections
// and on those with a writer goroutine (TLS).
func TestPushBudgetPacesLargeMessages(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := "plain"
		if tlsOn {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			const size, agents = 100 << 10, 8
			const budget = 3*size + 3*1024 // three messages (and their headers)
			s, h, as := budgetServer(t, tlsOn, budget, agents)
			var peak atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					peak.Store(max(peak.Load(), s.Stats().PushInFlight))
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Microsecond):
					}
				}
			}()
			msg := bigMessage(size)
			for i := 0; i < agents; i++ {
				if err := h.conn(i).Send(msg); err != nil {
					t.Fatal(err)
				}
			}
			// Each agent reads its message and answers.
			for i, a := range as {
				m := a.recv()
				if m.CustomMessage == nil || len(m.CustomMessage.Data) != size {
					t.Fatalf("agent %d got %v", i, m)
				}
				a.send(status(2))
				a.recv()
			}
			eventually(t, "budget released", func() bool { return s.Stats().PushInFlight == 0 })
			close(stop)
			<-sampled
			st := s.Stats()
			if p := peak.Load(); p > budget || p == 0 {
				t.Fatalf("bytes in flight peaked at %d, budget %d", p, budget)
			}
			if st.PushPaced < agents-3 {
				t.Fatalf("%d messages waited for room, want at least %d", st.PushPaced, agents-3)
			}
			if st.Stuck != 0 || h.totalClosedConns() != 0 {
				t.Fatalf("agents disconnected: %+v", st)
			}
		})
	}
}

// dialTo dials hs, over TLS when tlsOn.
func dialTo(t *testing.T, hs *httptest.Server, tlsOn bool) *agent {
	if !tlsOn {
		return dialAgent(t, hs, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	url := "wss" + strings.TrimPrefix(hs.URL, "https") + opamp.DefaultPath
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{TLSConfig: &tls.Config{RootCAs: hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.NetConn().Close() })
	return &agent{t: t, ws: ws}
}

// budgetServer starts a server with push budget budget, over TLS when
// tlsOn, and n agents connected to it that have each sent a status and
// read the reply; all of it ends with the test (the agents' sockets closed
// first: no close handshake to wait for).
func budgetServer(t *testing.T, tlsOn bool, budget int64, n int) (*Server, *testHandler, []*agent) {
	h := newTestHandler()
	s, err := New(Config{Handler: h, Logger: quietLog, PushBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	if tlsOn {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	as := make([]*agent, n)
	t.Cleanup(func() {
		for _, a := range as {
			if a != nil {
				a.ws.NetConn().Close()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	for i := range as {
		as[i] = dialTo(t, hs, tlsOn)
		as[i].send(status(1))
		as[i].recv()
	}
	return s, h, as
}

func (h *testHandler) totalClosedConns() int {
	n, _ := h.totalClosed()
	return n
}

// An agent that takes nothing of a large message keeps its place in its
// own queue, not the others' room: after stillWriter the budget goes on
// to the next agent, long before the stuck one is cut off.
func TestStuckAgentDoesNotHoldPushBudget(t *testing.T) {
	h := newTestHandler()
	s, hs := startServerSmallSendBuffer(t, h, Config{PushBudget: 200 << 10, WriteTimeout: time.Minute})
	stuck := dialAgent(t, hs, nil)
	stuck.send(status(1))
	stuck.recv()
	reader := dialAgent(t, hs, nil)
	reader.send(status(1))
	reader.recv()
	if err := h.conn(0).Send(bigMessage(16 << 20)); err != nil { // more than the socket buffers hold
		t.Fatal(err)
	}
	eventually(t, "the stuck agent's message in flight", func() bool { return s.Stats().PushInFlight > 0 })
	start := time.Now()
	if err := h.conn(1).Send(bigMessage(100 << 10)); err != nil {
		t.Fatal(err)
	}
	if m := reader.recv(); m.CustomMessage == nil || len(m.CustomMessage.Data) != 100<<10 {
		t.Fatalf("reader got %v", m)
	}
	took := time.Since(start)
	st := s.Stats()
	if st.PushPaced != 1 || took < stillWriter/2 {
		t.Fatalf("the reader's message did not wait for the stuck one (paced %d, %v)", st.PushPaced, took)
	}
	if h.closedCount(h.conn(0)) != 0 || st.Stuck != 0 {
		t.Fatalf("stuck agent cut off before WriteTimeout: %+v", st)
	}
}

// Room goes to the connections in line in the order they came, a large
// message before a small one behind it; one that ends leaves the line.
func TestPushBudgetFirstComeFirstServed(t *testing.T) {
	s := &Server{budget: newPushBudget(100)}
	b := s.budget
	conn := func() *wsConn {
		p, q := net.Pipe()
		t.Cleanup(func() { p.Close(); q.Close() })
		return &wsConn{s: s, nc: p}
	}
	// wait queues a message of need bytes on c and asks for its room.
	wait := func(c *wsConn, need int) (chan struct{}, bool) {
		ready := make(chan struct{})
		c.mu.Lock()
		defer c.mu.Unlock()
		c.out = &outQueue{segs: []seg{{b: make([]byte, need), hold: int32(need), last: true}}, bytes: need, msgs: 1}
		if b.take(c, need, ready) {
			return nil, true
		}
		c.out.awaiting = true
		return ready, false
	}
	isClosed := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	a, bb, cc, d, e := conn(), conn(), conn(), conn(), conn()
	if _, ok := wait(a, 60); !ok {
		t.Fatal("the first message did not get room")
	}
	readyB, okB := wait(bb, 60)
	readyC, okC := wait(cc, 10) // fits, but comes after B
	if okB || okC {
		t.Fatalf("taken out of turn: B %v, C %v", okB, okC)
	}
	a.mu.Lock()
	b.written(a)
	freed := b.answered(a)
	a.mu.Unlock()
	if !freed {
		t.Fatal("an answer freed nothing")
	}
	b.wake()
	if !isClosed(readyB) || !isClosed(readyC) {
		t.Fatalf("not granted after the answer: B %v, C %v", isClosed(readyB), isClosed(readyC))
	}
	if used, paced := b.inUse(); used != 70 || paced != 2 {
		t.Fatalf("in use %d, paced %d; want 70, 2", used, paced)
	}
	readyD, okD := wait(d, 50)
	readyE, okE := wait(e, 10)
	if okD || okE {
		t.Fatal("taken beyond the budget")
	}
	d.mu.Lock()
	d.finished = true
	b.drop(d, true)
	d.mu.Unlock()
	b.wake()
	if !isClosed(readyD) || !isClosed(readyE) {
		t.Fatalf("D's writer not released (%v) or E not granted (%v)", isClosed(readyD), isClosed(readyE))
	}
	if used, _ := b.inUse(); used != 80 {
		t.Fatalf("in use %d, want 80", used)
	}
	for _, c := range []*wsConn{bb, cc, e} {
		c.mu.Lock()
		c.finished = true
		b.drop(c, false)
		c.mu.Unlock()
	}
	if used, _ := b.inUse(); used != 0 || b.anyHeld() {
		t.Fatalf("in use %d after every connection ended", used)
	}
}

// However agents leave — before reading, halfway through a message, after
// answering — every byte of the budget comes back and no one is left in
// line: a leak would hold every later large push forever.
func TestPushBudgetComesBackWhateverAgentsDo(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[tlsOn], func(t *testing.T) {
			const agents = 24
			s, h, as := budgetServer(t, tlsOn, 300<<10, agents)
			msgs := []*protobufs.ServerToAgent{bigMessage(100 << 10), bigMessage(200 << 10), {Flags: 7}, bigMessage(150 << 10)}
			for i := range as {
				for _, m := range msgs {
					if err := h.conn(i).Send(m); err != nil {
						t.Fatal(err)
					}
				}
			}
			done := make(chan struct{}, agents)
			for i, a := range as {
				go func() {
					defer func() { done <- struct{}{} }()
					nc := a.ws.NetConn()
					switch i % 4 {
					case 0: // leaves at once
						nc.Close()
					case 1: // leaves halfway through its first message
						buf := make([]byte, 50<<10)
						_, _ = io.ReadFull(nc, buf)
						nc.Close()
					case 2: // reads one message, answers, leaves
						if _, err := a.tryRecv(); err == nil {
							a.send(status(2))
						}
						nc.Close()
					default: // reads all and answers each
						for range msgs {
							if _, err := a.tryRecv(); err != nil {
								t.Errorf("agent %d: %v", i, err)
								return
							}
							a.send(status(2))
						}
					}
				}()
			}
			for range as {
				<-done
			}
			eventually(t, "the budget back whole", func() bool {
				s.budget.mu.Lock()
				defer s.budget.mu.Unlock()
				return s.budget.used == 0 && len(s.budget.waiting) == 0 && len(s.budget.held) == 0
			})
		})
	}
}
