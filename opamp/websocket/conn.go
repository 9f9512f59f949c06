package websocket

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// CloseTimeout bounds how long Close waits for the peer's close frame.
const CloseTimeout = 3 * time.Second

// Conn is a blocking WebSocket connection. One goroutine may call
// ReadMessage while any number of others write; writes are serialised.
type Conn struct {
	nc     net.Conn
	client bool // frames we send are masked

	readMu  sync.Mutex
	p       Parser
	pre     []byte // bytes read during the handshake, parsed first
	rbuf    []byte
	pending []message
	readErr error

	wmu       sync.Mutex
	wbuf      []byte
	closeSent bool
	writeErr  error

	closeRecv     chan struct{} // closed when the peer's close frame arrives
	closeRecvOnce sync.Once
	pong          chan struct{}
	closed        atomic.Bool
}

type message struct {
	op   Opcode
	data []byte
}

// NewConn wraps nc, over which the opening handshake has completed. client
// selects the role: a client masks what it sends and expects unmasked
// frames. buffered holds bytes already read from nc after the handshake.
// maxMessageSize <= 0 means DefaultMaxMessageSize.
func NewConn(nc net.Conn, client bool, buffered []byte, maxMessageSize int64) *Conn {
	c := &Conn{
		nc:        nc,
		client:    client,
		pre:       buffered,
		closeRecv: make(chan struct{}),
		pong:      make(chan struct{}, 1),
	}
	c.p.FromClient = !client
	c.p.MaxMessageSize = maxMessageSize
	return c
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetReadDeadline sets the deadline for ReadMessage (see net.Conn).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for writes (see net.Conn).
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// ReadMessage blocks until a whole data message arrives and returns its
// opcode (Text or Binary) and payload, which the caller owns. Pings are
// answered and pongs consumed on the way. When the peer sends a close
// frame, the close is echoed and ReadMessage returns a *CloseError. Invalid
// frames fail the connection (a close frame with the matching status is
// sent, then the connection is closed) and return the *ProtocolError. Once
// an error is returned, every later call returns it again — except a
// read deadline expiring (a net.Error with Timeout()), after which reading
// may continue where it stopped.
func (c *Conn) ReadMessage() (Opcode, []byte, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.read()
}

func (c *Conn) read() (Opcode, []byte, error) {
	for {
		for len(c.pending) > 0 {
			m := c.pending[0]
			c.pending[0] = message{}
			c.pending = c.pending[1:]
			switch m.op {
			case Ping:
				if err := c.writeFrame(Pong, m.data); err != nil && !errors.Is(err, ErrCloseSent) {
					c.fail(err)
					return 0, nil, c.readErr
				}
			case Pong:
				select {
				case c.pong <- struct{}{}:
				default:
				}
			case Close:
				code, reason, _ := ParseClosePayload(m.data) // validated by the parser
				c.readErr = &CloseError{Code: code, Reason: reason}
				echo := code
				if echo == CloseNoStatus {
					echo = CloseNormal
				}
				_ = c.writeClose(echo, "")
				c.closeRecvOnce.Do(func() { close(c.closeRecv) })
				c.pending = nil
				c.shut()
				return 0, nil, c.readErr
			default:
				return m.op, m.data, nil
			}
		}
		if c.readErr != nil {
			return 0, nil, c.readErr
		}
		var chunk []byte
		var err error
		if len(c.pre) > 0 {
			chunk, c.pre = c.pre, nil
		} else {
			if c.rbuf == nil {
				c.rbuf = make([]byte, 4096)
			}
			var n int
			n, err = c.nc.Read(c.rbuf)
			chunk = c.rbuf[:n]
		}
		if len(chunk) > 0 {
			ferr := c.p.Feed(chunk, func(op Opcode, b []byte) error {
				if c.p.Compressed() {
					out, err := Inflate(nil, b, c.p.maxSize())
					if err != nil {
						return err
					}
					if op == Text && !utf8.Valid(out) {
						return &ProtocolError{Code: CloseInvalidPayload, Reason: "text message is not valid UTF-8"}
					}
					c.pending = append(c.pending, message{op, out})
					return nil
				}
				c.pending = append(c.pending, message{op, append([]byte(nil), b...)})
				return nil
			})
			if ferr != nil {
				// Deliver what came before the bad frame, then fail.
				c.readErr = ferr
				_ = c.writeClose(CloseCode(ferr), ferr.(*ProtocolError).Reason)
				c.shut()
				continue
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// A deadline is not fatal: the parser keeps its place.
				if len(c.pending) > 0 {
					continue // deliver what arrived first
				}
				return 0, nil, err
			}
			if errors.Is(err, io.EOF) {
				err = &CloseError{Code: CloseAbnormal, Reason: "connection closed without a close frame"}
			}
			c.readErr = err
		}
	}
}

func (c *Conn) fail(err error) {
	if c.readErr == nil {
		c.readErr = err
	}
	c.shut()
}

func (c *Conn) shut() {
	if c.closed.CompareAndSwap(false, true) {
		c.nc.Close()
	}
}

// WriteMessage sends one unfragmented message; op is Text, Binary, Ping or
// Pong (control payloads are limited to 125 bytes). It is safe to call
// concurrently with ReadMessage and other writers. After a close frame was
// sent it returns ErrCloseSent.
func (c *Conn) WriteMessage(op Opcode, data []byte) error {
	switch op {
	case Text, Binary:
	case Ping, Pong:
		if len(data) > MaxControlPayload {
			return errors.New("websocket: control frame payload exceeds 125 bytes")
		}
	default:
		return errors.New("websocket: WriteMessage with opcode " + op.String() + "; use Close or CloseWithCode")
	}
	return c.writeFrame(op, data)
}

func (c *Conn) writeFrame(op Opcode, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrCloseSent
	}
	return c.writeLocked(op, data)
}

func (c *Conn) writeLocked(op Opcode, data []byte) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	var key [4]byte
	if c.client {
		_, _ = rand.Read(key[:])
	}
	c.wbuf = AppendFrame(c.wbuf[:0], true, op, data, c.client, key)
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil
	}
	if err != nil {
		c.writeErr = err
	}
	return err
}

// writeClose sends a close frame unless one was sent already.
func (c *Conn) writeClose(code int, reason string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	var buf [MaxControlPayload]byte
	_ = c.nc.SetWriteDeadline(time.Now().Add(CloseTimeout))
	return c.writeLocked(Close, AppendClosePayload(buf[:0], code, reason))
}

// Ping sends a ping and waits for a pong, or for ctx to end. Pongs are
// seen by ReadMessage, so another goroutine must be reading.
func (c *Conn) Ping(ctx context.Context) error {
	select {
	case <-c.pong: // drop a stale pong
	default:
	}
	if err := c.writeFrame(Ping, nil); err != nil {
		return err
	}
	select {
	case <-c.pong:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close performs the closing handshake with status 1000.
func (c *Conn) Close() error { return c.CloseWithCode(CloseNormal, "") }

// CloseWithCode sends a close frame with code and reason (cut to fit 125
// bytes), waits up to CloseTimeout for the peer's close frame (reading and
// discarding data itself unless another goroutine is in ReadMessage), then
// closes the connection. Calling it again is harmless and returns nil.
func (c *Conn) CloseWithCode(code int, reason string) error {
	if c.closed.Load() {
		return nil
	}
	werr := c.writeClose(code, reason)
	if werr == nil {
		if c.readMu.TryLock() {
			_ = c.nc.SetReadDeadline(time.Now().Add(CloseTimeout))
			for {
				if _, _, err := c.read(); err != nil {
					break
				}
			}
			c.readMu.Unlock()
		} else {
			t := time.NewTimer(CloseTimeout)
			select {
			case <-c.closeRecv:
			case <-t.C:
			}
			t.Stop()
		}
	}
	if c.closed.CompareAndSwap(false, true) {
		if err := c.nc.Close(); err != nil && werr == nil {
			return err
		}
	}
	if werr != nil && !errors.Is(werr, net.ErrClosed) {
		return werr
	}
	return nil
}
