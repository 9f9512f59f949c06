package loadgen

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// maxPending bounds the bytes an agent queues for a server that does not
// read; beyond it the agent drops the connection.
const maxPending = 4 << 20

// maxMessage bounds a message from the server.
const maxMessage = 16 << 20

// loop is one epoll instance serving a share of the WebSocket agents. Its
// read buffer is shared by all of them: an idle agent holds no buffer.
type loop struct {
	g    *Generator
	epfd int
	buf  []byte
}

func (g *Generator) startWS() error {
	for range g.cfg.Workers {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			for _, l := range g.loops {
				l.close()
			}
			g.loops = nil
			return fmt.Errorf("loadgen: epoll_create: %w", err)
		}
		g.loops = append(g.loops, &loop{g: g, epfd: fd, buf: make([]byte, 256<<10)})
	}
	for _, l := range g.loops {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			l.run(g.ctx)
		}()
	}
	g.connectq = make(chan *agent, g.cfg.Dialers*4)
	for range g.cfg.Dialers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.ctx.Done():
					return
				case a := <-g.connectq:
					if g.limiter != nil {
						select {
						case <-g.limiter:
						case <-g.ctx.Done():
							return
						}
					}
					g.connect(a)
				}
			}
		}()
	}
	return nil
}

func (l *loop) close() { unix.Close(l.epfd) }

// run waits for socket events until ctx ends. The short epoll timeout lets
// it notice ctx without an extra wake-up descriptor.
func (l *loop) run(ctx context.Context) {
	events := make([]unix.EpollEvent, 1024)
	for ctx.Err() == nil {
		n, err := unix.EpollWait(l.epfd, events, 200)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.g.log.Error("loadgen: epoll_wait", "error", err)
			return
		}
		for _, ev := range events[:n] {
			a := l.g.agents[ev.Fd]
			a.mu.Lock()
			if a.state == stateConnected && a.connGen == uint32(ev.Pad) {
				if ev.Events&unix.EPOLLOUT != 0 && len(a.pending) > 0 {
					a.flushLocked()
				}
				if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && a.state == stateConnected {
					a.readLocked(l.buf)
				}
			}
			a.mu.Unlock()
		}
	}
}

// connect dials and performs the handshake for a waiting agent, then hands
// the socket to the agent's epoll loop and reports the full status. A
// failure schedules the next attempt with backoff (at least a 503's
// Retry-After).
func (g *Generator) connect(a *agent) {
	a.mu.Lock()
	if a.state != stateWaiting {
		a.mu.Unlock()
		return
	}
	a.state = stateConnecting
	ep := a.endpointLocked()
	a.mu.Unlock()

	fd, buffered, err := g.dialWS(ep)

	a.mu.Lock()
	defer a.mu.Unlock()
	if g.ctx.Err() != nil {
		if err == nil {
			unix.Close(fd)
		}
		a.state = stateClosed
		return
	}
	if err != nil {
		g.connectErrors.Add(1)
		a.state = stateWaiting
		a.failoverLocked()
		d := g.backoff(int(a.failures))
		if a.failures < 255 {
			a.failures++
		}
		var ra *retryAfterError
		if errors.As(err, &ra) && ra.d > d {
			d = ra.d + time.Duration(rand.Int64N(int64(g.cfg.BackoffMin)))
		}
		a.afterLocked(d)
		return
	}
	a.fd = int32(fd)
	a.connGen++
	a.state = stateConnected
	a.failures = 0
	a.parser = &websocket.Parser{MaxMessageSize: maxMessage}
	a.pending = nil
	a.loop = uint8(int(a.idx) % len(g.loops))
	l := g.loops[a.loop]
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: a.idx, Pad: int32(a.connGen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		g.log.Error("loadgen: epoll_ctl", "error", err)
		unix.Close(fd)
		a.fd = -1
		a.state = stateWaiting
		g.connectErrors.Add(1)
		a.afterLocked(g.backoff(0))
		return
	}
	g.connected.Add(1)
	g.connects.Add(1)
	a.sendLocked(a.fullLocked())
	if len(buffered) > 0 && a.state == stateConnected {
		a.feedLocked(buffered)
	}
	if a.state == stateConnected {
		// First heartbeat anywhere in the interval: an even load at once.
		a.afterLocked(time.Duration(rand.Int64N(int64(g.cfg.HeartbeatInterval))))
	}
}

// dialer binds to the next source address, if any, with
// IP_BIND_ADDRESS_NO_PORT: the port is then chosen at connect time for the
// whole 4-tuple (as without bind), which is fast even with most ports in
// use and lets TIME_WAIT ports of earlier runs be reused on loopback.
func (g *Generator) dialer() *net.Dialer {
	d := &net.Dialer{}
	if la := g.localAddr(); la != nil {
		d.LocalAddr = la
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}

// retryAfterError is a refused handshake or poll that named a Retry-After.
type retryAfterError struct {
	status int
	d      time.Duration
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("loadgen: server answered %d, retry after %s", e.status, e.d)
}

// statusError builds the error for a non-success HTTP status, keeping
// Retry-After when given in seconds.
func statusError(resp *http.Response) error {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		return &retryAfterError{status: resp.StatusCode, d: time.Duration(s) * time.Second}
	}
	return fmt.Errorf("loadgen: server answered %s", resp.Status)
}

// dialWS opens a TCP connection to endpoint u from the next source
// address, performs the client handshake and returns a duplicate of the socket (non-blocking,
// close-on-exec) that the caller owns, plus any bytes that arrived after
// the handshake response.
func (g *Generator) dialWS(u *url.URL) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.HandshakeTimeout)
	defer cancel()
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	c, err := g.dialer().DialContext(ctx, "tcp", host)
	if err != nil {
		return -1, nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var kb [16]byte
	_, _ = crand.Read(kb[:])
	key := base64.StdEncoding.EncodeToString(kb[:])
	var sb strings.Builder
	sb.WriteString("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n")
	for k, vs := range g.cfg.Header {
		for _, v := range vs {
			sb.WriteString(k + ": " + v + "\r\n")
		}
	}
	sb.WriteString("\r\n")
	if _, err := io.WriteString(c, sb.String()); err != nil {
		return -1, nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return -1, nil, fmt.Errorf("loadgen: reading handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		return -1, nil, statusError(resp)
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != websocket.AcceptKey(key) {
		return -1, nil, fmt.Errorf("loadgen: handshake: wrong Sec-WebSocket-Accept")
	}
	var buffered []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		buffered = append([]byte(nil), b...)
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, nil, err
	}
	nfd := -1
	var derr error
	if err := raw.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, nil, err
	}
	if derr != nil {
		return -1, nil, fmt.Errorf("loadgen: dup: %w", derr)
	}
	// The duplicate shares the socket's O_NONBLOCK; make sure of it.
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return -1, nil, err
	}
	return nfd, buffered, nil
}

// closeLocked drops the connection, if any. With reconnect the agent waits
// a random time below ReconnectJitter, then connects again; otherwise it is closed for
// good.
func (a *agent) closeLocked(reconnect bool) {
	g := a.g
	if a.state == stateConnected {
		if !g.http {
			unix.Close(int(a.fd))
		}
		a.fd = -1
		a.parser = nil
		a.pending = nil
		g.connected.Add(-1)
		g.disconnects.Add(1)
	}
	if !reconnect {
		a.state = stateClosed
		return
	}
	a.state = stateWaiting
	a.afterLocked(time.Duration(rand.Int64N(int64(g.cfg.ReconnectJitter))))
}

// readLocked drains the socket (edge-triggered) through the parser.
func (a *agent) readLocked(buf []byte) {
	for a.state == stateConnected {
		n, err := unix.Read(int(a.fd), buf)
		if n > 0 {
			a.feedLocked(buf[:n])
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err == unix.EINTR {
			continue
		}
		a.closeLocked(a.g.ctx.Err() == nil) // EOF or reset: the server is gone
		return
	}
}

var errPeerClosed = errors.New("peer closed")

// feedLocked parses bytes from the server and handles every message.
func (a *agent) feedLocked(b []byte) {
	err := a.parser.Feed(b, func(op websocket.Opcode, payload []byte) error {
		switch op {
		case websocket.Binary:
			var m protobufs.ServerToAgent
			if err := opamp.DecodeWS(payload, &m); err != nil {
				a.g.malformed.Add(1)
				return nil
			}
			for _, r := range a.handleLocked(&m) {
				a.sendLocked(r)
			}
		case websocket.Ping:
			a.writeFrameLocked(websocket.Pong, payload)
		case websocket.Close:
			a.writeFrameLocked(websocket.Close, payload)
			return errPeerClosed
		case websocket.Text:
			a.g.malformed.Add(1)
		}
		if a.state != stateConnected {
			return errPeerClosed
		}
		return nil
	})
	if err != nil && a.state == stateConnected {
		if err != errPeerClosed {
			a.g.malformed.Add(1)
			a.g.dropped.Add(1)
		}
		a.closeLocked(a.g.ctx.Err() == nil)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// sendLocked writes one message as a masked binary frame. Over HTTP it is
// not used (polls carry messages).
func (a *agent) sendLocked(m *protobufs.AgentToServer) {
	if a.state != stateConnected {
		return
	}
	pb := bufPool.Get().(*[]byte)
	payload, err := opamp.AppendWS((*pb)[:0], m)
	if err != nil {
		a.g.log.Error("loadgen: encoding message", "error", err)
		bufPool.Put(pb)
		return
	}
	*pb = payload
	a.writeFrameLocked(websocket.Binary, payload)
	bufPool.Put(pb)
	a.g.sent.Add(1)
}

// writeFrameLocked frames payload (masked, as from a client) and writes it,
// queueing what the socket does not take at once.
func (a *agent) writeFrameLocked(op websocket.Opcode, payload []byte) {
	var key [4]byte
	k := rand.Uint32()
	key[0], key[1], key[2], key[3] = byte(k), byte(k>>8), byte(k>>16), byte(k>>24)
	fb := bufPool.Get().(*[]byte)
	frame := websocket.AppendFrame((*fb)[:0], true, op, payload, true, key)
	a.writeLocked(frame)
	*fb = frame
	bufPool.Put(fb)
}

func (a *agent) writeLocked(b []byte) {
	if a.state != stateConnected {
		return
	}
	if len(a.pending) > 0 {
		if len(a.pending)+len(b) > maxPending {
			a.g.dropped.Add(1)
			a.closeLocked(true)
			return
		}
		a.pending = append(a.pending, b...)
		return
	}
	for len(b) > 0 {
		n, err := unix.Write(int(a.fd), b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			a.pending = append([]byte(nil), b...)
			return
		}
		a.closeLocked(a.g.ctx.Err() == nil)
		return
	}
}

// flushLocked writes queued bytes once the socket is writable again.
func (a *agent) flushLocked() {
	b := a.pending
	a.pending = nil
	a.writeLocked(b)
}
