package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
	"google.golang.org/protobuf/proto"
)

// Limits of one connection's write queue: a peer whose queue grows beyond
// them is disconnected.
const (
	maxQueueLen = 1024
)

// closeGrace bounds the closing handshake: a peer that does not answer our
// close frame within it is dropped.
const closeGrace = 3 * time.Second

// readBufSize is the size of the pooled buffers workers read into.
const readBufSize = 32 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// errPeerClosed stops parsing after the peer's close frame.
var errPeerClosed = errors.New("peer sent close")

// socket is what a connection with a reader goroutine uses of its socket
// (the hijacked net.Conn). An epoll-driven connection has none: it holds
// the bare descriptor (wsConn.fd).
type socket interface {
	io.ReadWriteCloser
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// wsConn is one WebSocket agent. Its reader side (parser, message
// handling) runs on one goroutine at a time: a worker while epoll-driven
// (busy guards it), or the connection's own goroutine otherwise.
//
// An epoll-driven connection's descriptor is in no Go netpoller: it is
// read by the worker holding busy, and written and closed only under mu
// by whoever sees finished unset, so a closed descriptor's number (which
// the kernel reuses) is never read, written or closed again.
type wsConn struct {
	s        *Server
	id       uint64
	nc       socket // nil when epoll-driven
	remote   string
	state    any
	lastRead atomic.Int64 // unix nanoseconds of the last bytes read
	parser   websocket.Parser

	mu    sync.Mutex
	out   *outQueue // what waits to be written; nil when nothing does
	uid   [16]byte  // instance_uid last seen from the agent (hasUID)
	grace *time.Timer

	// The small fields are together: a wsConn is kept per idle agent, so
	// padding costs memory per agent (TestWSConnFitsItsSizeClass).
	fd            int32
	greeted       bool // a message arrived (reader side only)
	failed        bool // parser failed; bytes are drained, not parsed (reader side)
	deflate       bool // permessage-deflate negotiated
	hasUID        bool
	writing       bool // epoll-driven: also, waiting for EPOLLOUT
	closeSent     bool // close frame queued: nothing else may be sent
	finishOnFlush bool // finish once the queue is written (close echoed)
	busy          bool // a reader is working on the connection
	again         bool // bytes arrived during the reader's turn (epoll)
	registered    bool // in the epoll set
	pendingFinish bool // finish when the reader is done
	finished      bool
}

func (c *wsConn) Transport() Transport { return WebSocket }
func (c *wsConn) RemoteAddr() string   { return c.remote }
func (c *wsConn) State() any           { return c.state }

// LastReceived returns when bytes from the agent last arrived; see Conn.
func (c *wsConn) LastReceived() time.Time {
	if c.unread() > 0 {
		return time.Now()
	}
	return time.Unix(0, c.lastRead.Load())
}

// unread returns how many received bytes wait unread in the socket (0
// when that is not known or the connection has ended).
func (c *wsConn) unread() int {
	if c.nc == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.finished {
			return 0
		}
		return unreadFD(int(c.fd))
	}
	return fdValue(c.rawConn(), unreadFD)
}

// fdValue returns f of the descriptor under rc (0 when rc is nil or the
// socket is closed).
func fdValue(rc syscall.RawConn, f func(fd int) int) int {
	if rc == nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) { n = f(int(fd)) })
	return n
}

// rawConn returns the TCP connection under nc (also under TLS); nil when
// there is none.
func (c *wsConn) rawConn() syscall.RawConn {
	var nc any = c.nc
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// Send queues msg; see Conn.
func (c *wsConn) Send(msg *protobufs.ServerToAgent) error {
	f, err := c.encode(msg)
	if err != nil {
		return err
	}
	return c.enqueue(&f, false)
}

// Close starts the closing handshake (status 1000) and returns; OnClose
// follows when the connection has ended.
func (c *wsConn) Close() error {
	c.closeWith(websocket.CloseNormal, "")
	return nil
}

// outQueue is a connection's write queue. Most of the time nothing waits
// to be written (an epoll-driven connection writes a frame straight away),
// so a connection holds one only while something does: idle agents keep
// none (TestWSConnFitsItsSizeClass).
type outQueue struct {
	segs  []seg
	bytes int // in segs
	msgs  int // messages in segs
	// stall (epoll-driven) cuts off a peer that takes no byte for
	// WriteTimeout while the queue waits; progressed records bytes
	// written since it was set.
	stall      *time.Timer
	progressed bool
	// awaiting: the head message waits for room in the push budget
	// (pushBudget), nothing is written meanwhile; holding: the head
	// message took room, which it holds once written (pushBudget.written).
	awaiting, holding bool
}

// add appends frame pieces segs of n bytes, one message; hold: it needs
// its n bytes of the push budget before it is written.
func (q *outQueue) add(segs []seg, n int, hold bool) {
	i := len(q.segs)
	q.segs = append(q.segs, segs...)
	if hold {
		q.segs[i].hold = int32(n)
	}
	q.bytes += n
	q.msgs++
}

// queued returns the bytes waiting in q (none when q is nil).
func (q *outQueue) queued() int {
	if q == nil {
		return 0
	}
	return q.bytes
}

// seg is a piece of a queued frame. Pieces may be shared between
// connections (an encoded remote config) and are never written to; last
// marks the end of a message. hold, on a message's first piece, is the
// push budget it must take before it is written (0 once taken, or when it
// needs none).
type seg struct {
	b    []byte
	hold int32
	last bool
}

// frame is one encoded frame in up to three pieces.
type frame struct {
	segs [3]seg
	n    int // pieces used
}

func oneSeg(b []byte) frame { return frame{segs: [3]seg{{b: b, last: true}}, n: 1} }

// encode returns msg as one binary frame, in pieces: the frame header, the
// shared remote config (compressed once per config when the connection
// compresses, see sharedConfig), and the rest, encoded for this agent.
func (c *wsConn) encode(msg *protobufs.ServerToAgent) (frame, error) {
	c.mu.Lock()
	uidArr, hasUID := c.uid, c.hasUID
	c.mu.Unlock()
	var uid []byte
	if hasUID {
		uid = uidArr[:]
	}
	sc, msg, err := c.s.splitShared(msg)
	if err != nil {
		return frame{}, err
	}
	var shared []byte
	if sc != nil {
		shared = sc.plain
	}
	const room = 10 // the largest unmasked frame header
	size := 1 + proto.Size(msg) + 32
	compress := c.deflate && len(shared)+size >= minCompress
	var dst []byte
	var bp *[]byte
	if compress {
		bp = encodeBufs.Get().(*[]byte)
		defer func() { encodeBufs.Put(bp) }()
		dst = (*bp)[:0]
	} else {
		dst = make([]byte, room, room+size)
	}
	start := len(dst)
	if sc == nil {
		dst = append(dst, opamp.WSHeader) // else the shared prefix starts with it
	}
	dst, err = c.s.appendServerToAgent(dst, msg, uid)
	if compress {
		*bp = dst[:0] // keep the grown buffer
	}
	if err != nil {
		return frame{}, err
	}
	rest := dst[start:]
	if err := c.s.checkSize(len(shared) + len(rest)); err != nil { // before compression
		return frame{}, err
	}
	if compress {
		buf := make([]byte, room, room+len(rest)+16)
		if sc != nil {
			shared = sc.deflated()
		}
		if sc != nil && len(rest) <= maxStoredRest {
			dst = websocket.AppendDeflateStored(buf, rest)
		} else {
			dst = websocket.AppendDeflate(buf, rest)
		}
		rest = dst[room:]
	}
	var hb [room]byte
	hdr := websocket.AppendFrameHeader(hb[:0], true, websocket.Binary, len(shared)+len(rest), false, [4]byte{})
	if compress {
		hdr[0] |= websocket.RSV1
	}
	h := dst[room-len(hdr) : room]
	copy(h, hdr)
	if shared == nil {
		return oneSeg(dst[room-len(hdr):]), nil
	}
	return frame{segs: [3]seg{{b: h}, {b: shared}, {b: rest, last: true}}, n: 3}, nil
}

// maxStoredRest is the largest per-agent part of a message with a shared
// remote config sent in a stored block rather than compressed: running a
// compressor costs more than the few bytes it would save.
const maxStoredRest = 1024

// minCompress is the smallest message compressed when permessage-deflate
// is negotiated; smaller ones gain nothing.
const minCompress = 256

var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// enqueue adds a frame to the write queue and starts writing it. A close
// frame makes it the last one. ErrClosed once a close frame was queued.
//
// The queue is bounded (maxQueueLen messages, Server.maxQueue bytes): a
// peer that lets it grow beyond that is disconnected. A peer that reads
// slowly is not: it gets its messages later, and only one that accepts no
// byte for WriteTimeout is cut off (see flushBlocking).
func (c *wsConn) enqueue(f *frame, isClose bool) error {
	segs := f.segs[:f.n]
	n := 0
	for _, sg := range segs {
		n += len(sg.b)
	}
	c.mu.Lock()
	if c.finished || c.closeSent {
		c.mu.Unlock()
		return ErrClosed
	}
	if q := c.out; !isClose && q != nil && (q.msgs >= maxQueueLen || q.bytes+n > c.s.maxQueue) {
		c.mu.Unlock()
		c.s.errs.Add(1)
		c.s.log.Warn("opamp server: agent does not read; disconnecting", "remote", c.remote, "queued", q.bytes,
			"stuck_total", c.s.stuck.Add(1))
		c.finish()
		return ErrClosed
	}
	if isClose {
		c.closeSent = true
		c.grace = time.AfterFunc(closeGrace, c.finish)
	}
	hold := c.s.budget != nil && n >= largeMessage && !isClose
	if c.nc == nil {
		err := c.sendLocked(segs, n, hold)
		c.mu.Unlock()
		if err != nil {
			c.writeFailed(err)
		}
		return nil
	}
	if c.out == nil {
		c.out = &outQueue{}
	}
	c.out.add(segs, n, hold)
	if c.writing {
		c.mu.Unlock()
		return nil
	}
	c.writing = true // the queue is empty whenever no one is writing
	c.mu.Unlock()
	go c.flushBlocking()
	return nil
}

// sendLocked writes a frame of n bytes on an epoll-driven connection, or
// queues it behind a wait for the socket to take more (waitWritable) or
// for room in the push budget (hold); called with c.mu held. It returns
// the socket's error, if any.
func (c *wsConn) sendLocked(segs []seg, n int, hold bool) error {
	if c.writing {
		c.out.add(segs, n, hold)
		return nil
	}
	if hold {
		c.out = &outQueue{}
		c.out.add(segs, n, true)
		c.writing = true
		_, err := c.drainLocked() // (nothing to finish: no close frame is queued)
		return err
	}
	var iov [3][]byte
	for i, sg := range segs {
		iov[i] = sg.b
	}
	w, err := writevFD(int(c.fd), iov[:len(segs)])
	if err != nil && err != errWouldBlock {
		return err
	}
	c.s.bytesOut.Add(uint64(w))
	if w == n {
		c.s.sent.Add(1)
		return nil
	}
	left := n - w
	for w >= len(segs[0].b) {
		w -= len(segs[0].b)
		segs = segs[1:]
	}
	q := &outQueue{segs: append(make([]seg, 0, len(segs)+1), segs...), bytes: left, msgs: 1}
	q.segs[0].b = q.segs[0].b[w:]
	c.out = q
	return c.waitWritable()
}

// waitWritable starts a wait for the socket to take more bytes (EPOLLOUT
// in the epoll set, and the write timeout); called with c.mu held.
func (c *wsConn) waitWritable() error {
	c.writing = true
	q := c.out
	q.stall = time.AfterFunc(c.s.cfg.WriteTimeout, func() { c.checkStall(q) })
	if !c.registered {
		return nil // endBusy registers it, EPOLLOUT included
	}
	return c.s.poll.arm(c, false)
}

// onWritable runs when an epoll-driven connection waiting to write can
// take more: it writes what the socket takes, and ends the wait once the
// queue is empty.
func (c *wsConn) onWritable() {
	c.mu.Lock()
	if c.finished || !c.writing || c.out.awaiting {
		c.mu.Unlock()
		return
	}
	c.drainAndUnlock()
}

// drainAndUnlock is drainLocked, then c.mu released and the connection
// failed or finished as drainLocked found.
func (c *wsConn) drainAndUnlock() {
	fin, err := c.drainLocked()
	c.mu.Unlock()
	switch {
	case err != nil:
		c.writeFailed(err)
	case fin:
		c.finish()
	}
}

// drainLocked writes what the socket takes of an epoll-driven
// connection's queue, up to a message that finds no room in the push
// budget (which then waits in line, not counted as the agent's stall), and
// ends the wait to write once the queue is empty (fin: the connection is
// to be finished then). c.mu held, c.writing set.
func (c *wsConn) drainLocked() (fin bool, err error) {
	var iov [8][]byte
	q := c.out
	for len(q.segs) > 0 {
		if need := q.segs[0].hold; need > 0 {
			if !c.s.budget.take(c, int(need), nil) {
				q.awaiting = true
				if q.stall != nil {
					q.stall.Stop()
					q.stall = nil
				}
				return false, nil
			}
			q.segs[0].hold, q.holding = 0, true
		}
		bufs := headSegs(q, iov[:0])
		var n int
		if n, err = writevFD(int(c.fd), bufs); err != nil {
			break
		}
		q.progressed = true
		c.wroteLocked(n)
	}
	switch {
	case err == nil:
		c.writing = false
		if q.stall != nil {
			q.stall.Stop()
		}
		c.out = nil
		fin = c.finishOnFlush
		if c.registered {
			err = c.s.poll.arm(c, false) // EPOLLOUT out of the set
		}
	case err == errWouldBlock:
		err = nil
		if q.stall == nil { // the first wait, or the first since a wait for room
			err = c.waitWritable()
		}
	}
	return fin, err
}

// headSegs appends the queue's first pieces to bufs, as many as fit and
// not beyond a message that must first take push budget.
func headSegs(q *outQueue, bufs [][]byte) [][]byte {
	for i := 0; i < len(q.segs) && len(bufs) < cap(bufs); i++ {
		if i > 0 && q.segs[i].hold > 0 {
			break
		}
		bufs = append(bufs, q.segs[i].b)
	}
	return bufs
}

// checkStall runs WriteTimeout after a wait to write began, or after the
// last check: it disconnects a peer that took no byte since.
func (c *wsConn) checkStall(q *outQueue) {
	c.mu.Lock()
	if c.finished || c.out != q || q.awaiting { // the wait ended (another may have begun)
		c.mu.Unlock()
		return
	}
	if q.progressed {
		q.progressed = false
		q.stall.Reset(c.s.cfg.WriteTimeout)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.stalled()
}

// flushBlocking writes the queue, waiting for the peer to read. A write
// that makes progress within WriteTimeout goes on, however slowly the peer
// reads; one that moves no byte for WriteTimeout disconnects the peer.
func (c *wsConn) flushBlocking() {
	var iov [8][]byte
	for {
		bufs, ok := c.head(iov[:0])
		if !ok {
			return
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		nb := net.Buffers(bufs)
		n, err := nb.WriteTo(c.nc)
		c.wrote(int(n))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if n > 0 {
					continue // slow, not stuck
				}
				c.stalled()
				return
			}
			c.writeFailed(err)
			return
		}
	}
}

// head appends the first queued pieces to bufs, or reports the queue empty
// (and writing over, finishing the connection if that was due).
func (c *wsConn) head(bufs [][]byte) ([][]byte, bool) {
	c.mu.Lock()
	if q := c.out; q != nil && len(q.segs) > 0 && !c.finished {
		if need := q.segs[0].hold; need > 0 {
			ready := make(chan struct{})
			if !c.s.budget.take(c, int(need), ready) {
				q.awaiting = true
				c.mu.Unlock()
				<-ready // granted (hold cleared), or the connection ended
				return c.head(bufs)
			}
			q.segs[0].hold, q.holding = 0, true
		}
		bufs = headSegs(q, bufs)
		c.mu.Unlock()
		return bufs, true
	}
	c.writing = false
	c.out = nil
	fin := c.finishOnFlush
	c.mu.Unlock()
	if fin {
		c.finish()
	}
	return nil, false
}

// wrote accounts n bytes written from the head of the queue.
func (c *wsConn) wrote(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.wroteLocked(n)
	c.mu.Unlock()
}

// wroteLocked is wrote with c.mu held.
func (c *wsConn) wroteLocked(n int) {
	c.s.bytesOut.Add(uint64(n))
	q := c.out
	if q == nil {
		return // finished meanwhile (blocking write)
	}
	q.bytes -= n
	for n > 0 && len(q.segs) > 0 {
		h := &q.segs[0]
		if n < len(h.b) {
			h.b = h.b[n:]
			break
		}
		n -= len(h.b)
		if h.last {
			q.msgs--
			c.s.sent.Add(1)
			if q.holding {
				q.holding = false
				c.s.budget.written(c)
			}
		}
		q.segs[0] = seg{}
		q.segs = q.segs[1:]
	}
}

// stalled disconnects a peer that accepted nothing for WriteTimeout.
func (c *wsConn) stalled() {
	c.mu.Lock()
	done, queued := c.finished, c.out.queued()
	c.mu.Unlock()
	if !done {
		c.s.errs.Add(1)
		c.s.log.Warn("opamp server: agent read nothing within the write timeout; disconnecting", "remote", c.remote,
			"timeout", c.s.cfg.WriteTimeout, "queued", queued, "stuck_total", c.s.stuck.Add(1))
	}
	c.finish()
}

func (c *wsConn) writeFailed(err error) {
	c.mu.Lock()
	done := c.finished
	c.mu.Unlock()
	if !done {
		c.s.errs.Add(1)
		c.s.log.Debug("opamp server: write failed; disconnecting", "remote", c.remote, "err", err)
	}
	c.finish()
}

// closeWith starts the closing handshake with code and reason: nothing
// more is sent, incoming data messages are discarded until the peer's
// close frame arrives (or closeGrace passes), then the connection ends.
func (c *wsConn) closeWith(code int, reason string) {
	var buf [websocket.MaxControlPayload]byte
	payload := websocket.AppendClosePayload(buf[:0], code, reason)
	frame := websocket.AppendFrame(nil, true, websocket.Close, payload, false, [4]byte{})
	f := oneSeg(frame)
	_ = c.enqueue(&f, true)
}

// closing reports whether the close frame was queued.
func (c *wsConn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeSent || c.finished || c.pendingFinish
}

// process parses bytes read from the connection and handles what they
// complete. It runs on the connection's reader only.
func (c *wsConn) process(b []byte) {
	c.lastRead.Store(time.Now().UnixNano())
	if c.failed {
		return
	}
	err := c.parser.Feed(b, c.onFrame)
	if err == nil {
		return
	}
	c.failed = true
	if err == errPeerClosed {
		return
	}
	c.s.errs.Add(1)
	var pe *websocket.ProtocolError
	if errors.As(err, &pe) {
		c.s.log.Debug("opamp server: websocket protocol error", "remote", c.remote, "err", err)
		c.closeWith(pe.Code, pe.Reason)
		return
	}
	c.closeWith(websocket.CloseInternalError, "internal error")
}

func (c *wsConn) onFrame(op websocket.Opcode, payload []byte) error {
	switch op {
	case websocket.Text:
		return &websocket.ProtocolError{Code: websocket.CloseUnsupportedData, Reason: "text frames are not OpAMP messages"}
	case websocket.Ping:
		frame := websocket.AppendFrame(nil, true, websocket.Pong, payload, false, [4]byte{})
		f := oneSeg(frame)
		_ = c.enqueue(&f, false)
	case websocket.Pong:
	case websocket.Close:
		c.mu.Lock()
		sent := c.closeSent
		c.mu.Unlock()
		if sent {
			c.finish() // the answer to our close frame
		} else {
			code, _, _ := websocket.ParseClosePayload(payload)
			if code == websocket.CloseNoStatus {
				code = websocket.CloseNormal
			}
			c.mu.Lock()
			c.finishOnFlush = true
			c.mu.Unlock()
			c.closeWith(code, "")
		}
		return errPeerClosed
	case websocket.Binary:
		c.handle(payload)
	}
	return nil
}

// handle decodes and delivers one binary message.
func (c *wsConn) handle(payload []byte) {
	if c.closing() {
		return // after a close frame, data is discarded
	}
	s := c.s
	s.messages.Add(1)
	s.bytesIn.Add(uint64(len(payload)))
	if !c.greeted {
		c.greeted = true
		s.mu.Lock()
		s.unsilence(c.id)
		s.mu.Unlock()
	}
	if c.parser.Compressed() {
		bp := encodeBufs.Get().(*[]byte)
		out, err := websocket.Inflate((*bp)[:0], payload, s.cfg.MaxMessageSize)
		if err != nil {
			encodeBufs.Put(bp)
			s.errs.Add(1)
			pe := err.(*websocket.ProtocolError)
			c.closeWith(pe.Code, pe.Reason)
			return
		}
		defer func() {
			if cap(out) <= 1<<20 {
				*bp = out[:0]
				encodeBufs.Put(bp)
			}
		}()
		payload = out
	}
	msg := &protobufs.AgentToServer{}
	if err := opamp.DecodeWS(payload, msg); err != nil {
		s.errs.Add(1)
		var uid []byte
		c.mu.Lock()
		if c.hasUID {
			uid = append(uid, c.uid[:]...)
		}
		c.mu.Unlock()
		_ = c.Send(s.errorReply(uid, steward.Errorf(steward.EINVALID, "undecodable AgentToServer message: %v", err)))
		return
	}
	if err := validate(msg); err != nil {
		s.errs.Add(1)
		_ = c.Send(s.errorReply(msg.InstanceUid, err))
		return
	}
	c.mu.Lock()
	if len(msg.InstanceUid) > 0 {
		copy(c.uid[:], msg.InstanceUid) // 16 bytes (validate)
		c.hasUID = true
	}
	// The agent answered: what it was sent before has been read.
	freed := c.s.budget.anyHeld() && c.s.budget.answered(c)
	c.mu.Unlock()
	if freed {
		c.s.budget.wake()
	}
	reply, err := s.call(s.ctx, c, msg)
	if err != nil {
		reply = s.errorReply(msg.InstanceUid, err)
	}
	if reply != nil {
		if err := c.Send(reply); err != nil && err != ErrClosed && err != ErrMessageTooLarge {
			s.errs.Add(1)
			s.log.Error("opamp server: reply not sent", "remote", c.remote, "err", err)
		}
	}
	if msg.AgentDisconnect != nil {
		// The agent closes the connection after agent_disconnect; the
		// server does only if it has not within closeGrace. Closing first
		// races the agent's own shutdown: opamp-go's client, stopping
		// while its reader sees our close frame, reconnects
		// (TestInteropOpampGoWebSocketClient, about 1 run in 20 once the
		// server answered faster).
		time.AfterFunc(closeGrace, func() { c.closeWith(websocket.CloseNormal, "") })
	}
}

// call runs Handler.OnMessage, turning a panic into an internal error.
func (s *Server) call(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (reply *protobufs.ServerToAgent, err error) {
	s.inflight.Add(1)
	defer func() {
		s.inflight.Add(-1)
		if r := recover(); r != nil {
			s.errs.Add(1)
			s.log.Error("opamp server: handler panicked", "remote", c.RemoteAddr(), "panic", r)
			reply, err = nil, fmt.Errorf("handler panic: %v", r)
		}
	}()
	return s.handler.OnMessage(ctx, c, msg)
}

// finish ends the connection now (no further handshake): it leaves the
// epoll set and the server, closes the socket and calls OnClose, once. If
// a reader is busy with the connection, that reader finishes it when done.
func (c *wsConn) finish() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	if c.busy {
		c.pendingFinish = true
		c.mu.Unlock()
		if c.nc != nil {
			_ = c.nc.SetReadDeadline(time.Unix(1, 0)) // wake the reader goroutine
		}
		return
	}
	c.finished = true
	if c.grace != nil {
		c.grace.Stop()
	}
	if c.out != nil && c.out.stall != nil {
		c.out.stall.Stop()
	}
	inLine := c.s.budget.anyHeld() || (c.out != nil && c.out.awaiting)
	if inLine {
		c.s.budget.drop(c, c.out != nil && c.out.awaiting)
	}
	c.out = nil
	if c.registered {
		c.s.poll.del(int(c.fd))
		c.registered = false
	}
	if c.nc == nil {
		closeFD(int(c.fd)) // under mu: see wsConn
	}
	c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
	}
	if inLine {
		c.s.budget.wake()
	}
	defer c.s.removeConn(c) // after OnClose: Shutdown waits for both
	defer func() {
		if r := recover(); r != nil {
			c.s.errs.Add(1)
			c.s.log.Error("opamp server: OnClose panicked", "remote", c.remote, "panic", r)
		}
	}()
	c.s.handler.OnClose(c)
}

// endBusy ends a reader's turn: the connection is finished if that was
// requested, otherwise (epoll-driven) registered with epoll the first
// time. It returns true instead, and the turn goes on, when bytes arrived
// during the turn and the reader may read more (canRead); when it may not,
// epoll is asked for a new event for what waits unread.
func (c *wsConn) endBusy(canRead bool) (readOn bool) {
	c.mu.Lock()
	if c.again && canRead && !c.pendingFinish {
		c.again = false
		c.mu.Unlock()
		return true
	}
	rearm := c.again || !canRead
	c.again = false
	c.busy = false
	if c.pendingFinish || c.nc != nil {
		c.mu.Unlock()
		c.finish()
		return false
	}
	var err error
	if !c.registered || rearm {
		err = c.s.poll.arm(c, !c.registered)
	}
	if err == nil {
		c.registered = true
	}
	c.mu.Unlock()
	if err != nil {
		c.s.errs.Add(1)
		c.s.log.Error("opamp server: epoll registration failed; disconnecting", "remote", c.remote, "err", err)
		c.finish()
	}
	return false
}

// runBlocking is the reader goroutine of a connection that is not
// epoll-driven (TLS, or no epoll on this system).
func (c *wsConn) runBlocking(buffered []byte) {
	if len(buffered) > 0 {
		c.process(buffered)
	}
	buf := make([]byte, 4096)
	for {
		c.mu.Lock()
		stop := c.pendingFinish
		c.mu.Unlock()
		if stop {
			break
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.process(buf[:n])
		}
		if err != nil {
			break
		}
	}
	c.endBusy(false)
}

func (s *Server) removeConn(c *wsConn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.unsilence(c.id)
	s.mu.Unlock()
	s.open.Add(-1)
}

// silence adds connection id, opened at unix nanoseconds opened, to the
// connections that have sent no message yet; s.mu held.
func (s *Server) silence(id uint64, opened int64) {
	s.silent[id] = opened
	s.silentPeak = max(s.silentPeak, len(s.silent))
}

// unsilence removes id from the silent connections; s.mu held. Once a
// burst of them (a connect storm) has all spoken, the map is made anew: a
// Go map keeps the room of its largest size, about 20 bytes per connection
// of the burst, for as long as the server runs.
func (s *Server) unsilence(id uint64) {
	delete(s.silent, id)
	if len(s.silent) == 0 && s.silentPeak > silentKeep {
		s.silent, s.silentPeak = make(map[uint64]int64), 0
	}
}

// silentKeep is the size of silent map that is kept once empty.
const silentKeep = 64

// serveWS accepts a WebSocket upgrade.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if status, err := websocket.CheckRequest(r); err != nil {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		s.errs.Add(1)
		http.Error(w, err.Error(), status)
		return
	}
	s.mu.Lock()
	down := s.shutting || s.stopped
	s.mu.Unlock()
	if down {
		s.refuse(w, errShuttingDown)
		return
	}
	n := s.open.Add(1)
	if max := s.cfg.MaxConnections; max > 0 && n > int64(max) {
		s.open.Add(-1)
		s.refuse(w, steward.Errorf(steward.EUNAVAILABLE, "too many connections"))
		return
	}
	state, err := s.handler.Accept(r)
	if err != nil {
		s.open.Add(-1)
		s.refuse(w, err)
		return
	}
	var hdr http.Header
	ext := websocket.NegotiateDeflate(r.Header)
	if ext != "" {
		hdr = http.Header{"Sec-Websocket-Extensions": {ext}}
	}
	nc, buffered, err := websocket.Hijack(w, r, hdr)
	if err != nil {
		s.open.Add(-1)
		s.errs.Add(1)
		return
	}
	c := &wsConn{s: s, nc: nc, remote: r.RemoteAddr, state: state, busy: true}
	c.parser.FromClient = true
	c.parser.MaxMessageSize = s.cfg.MaxMessageSize
	c.deflate = ext != ""
	c.parser.Deflate = c.deflate
	opened := time.Now().UnixNano()
	c.lastRead.Store(opened)
	if tcp, ok := nc.(*net.TCPConn); ok && s.poll != nil {
		if fd, err := socketFD(tcp); err == nil {
			c.fd, c.nc = int32(fd), nil
		}
	}
	s.mu.Lock()
	if s.stopped {
		// Shutdown has finished: the agent saw 101, so Accept's state
		// still gets its OnClose.
		s.mu.Unlock()
		s.open.Add(-1)
		if c.nc == nil {
			closeFD(int(c.fd))
		} else {
			c.nc.Close()
		}
		s.handler.OnClose(c)
		return
	}
	// Shutdown may have begun after the check above: it waits for every
	// registered connection, and this one closes itself below.
	shutting := s.shutting
	s.nextID++
	c.id = s.nextID
	s.conns[c.id] = c
	s.silence(c.id, opened)
	s.mu.Unlock()
	s.accepted.Add(1)
	if shutting {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	if c.nc != nil {
		go c.runBlocking(buffered)
		return
	}
	if len(buffered) > 0 {
		c.process(buffered)
	}
	c.endBusy(false) // registers with epoll: from here no goroutine holds c
}
