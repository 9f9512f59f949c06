package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
	"google.golang.org/protobuf/proto"
)

const (
	// gzipThreshold: HTTP request bodies at least this large are gzipped.
	gzipThreshold = 1024
	// requestTimeout bounds one HTTP exchange and the WebSocket handshake.
	requestTimeout = 30 * time.Second
	// writeTimeout bounds one WebSocket write.
	writeTimeout = 10 * time.Second
	// readSlack is added to twice the heartbeat interval to form the
	// WebSocket read deadline that detects a dead server.
	readSlack = 5 * time.Second
	// finalSendTimeout bounds the agent_disconnect send on Stop when the
	// Stop context has no earlier deadline.
	finalSendTimeout = 5 * time.Second
)

// session is the outcome of one connection (WebSocket) or run of polls
// (HTTP).
type session struct {
	connected  bool          // the connection was established
	healthy    bool          // the server answered on it: resets the backoff
	err        error         // why it ended (nil: stopped or reconnecting)
	retryAfter time.Duration // server-requested delay before the next attempt
	now        bool          // reconnect at once (new connection settings)
}

// run is the transport goroutine: it connects, serves the connection until
// it fails, waits (backoff or the server's delay) and connects again, until
// ctx ends.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	c.mu.Lock()
	needEC := c.st.effectiveConfig == nil
	c.mu.Unlock()
	if needEC && c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig) && c.s.Callbacks.GetEffectiveConfig != nil {
		if err := c.UpdateEffectiveConfig(ctx); err != nil {
			c.log.Warn("opamp client: initial effective config", "err", err)
		}
	}
	bo := newBackoff(c.s.Backoff)
	var wait time.Duration
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		select { // a reconnect request is served by this new attempt
		case <-c.reconnect:
		default:
		}
		p, cand := c.params()
		var s session
		if p.endpoint.Scheme == "ws" || p.endpoint.Scheme == "wss" {
			s = c.serveWS(ctx, p, cand)
		} else {
			s = c.serveHTTP(ctx, p, cand)
		}
		if ctx.Err() != nil {
			return
		}
		if cand && !s.connected {
			c.settle(false, s.err)
			wait = 0
			continue
		}
		if s.healthy {
			bo.reset()
		}
		switch {
		case s.now && s.err == nil:
			wait = 0
		default:
			// The server's delay is a floor: the backoff still grows,
			// so that repeated refusals are retried ever more slowly.
			wait = max(s.retryAfter, bo.next())
		}
		if s.err != nil {
			c.log.Info("opamp client: connection ended; retrying", "err", s.err, "in", wait)
		}
	}
}

func (c *Client) onConnect() {
	if f := c.s.Callbacks.OnConnect; f != nil {
		c.cbq.push(func(ctx context.Context) { f(ctx) })
	}
}

func (c *Client) onConnectFailed(err error) {
	c.log.Debug("opamp client: connection failed", "err", err)
	if f := c.s.Callbacks.OnConnectFailed; f != nil {
		c.cbq.push(func(ctx context.Context) { f(ctx, err) })
	}
}

// drainWake empties the wake channel right before a message is built, so a
// change already included does not cause another send.
func (c *Client) drainWake() {
	select {
	case <-c.wake:
	default:
	}
}

// finalContext bounds the agent_disconnect send on Stop.
func (c *Client) finalContext() (context.Context, context.CancelFunc) {
	sc := c.stopContext()
	return context.WithTimeout(context.WithoutCancel(sc), finalTimeout(sc))
}

func finalTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(time.Until(dl), finalSendTimeout)
	}
	return finalSendTimeout
}

// ---- WebSocket ----

type readEnd struct {
	err error
	v   verdict
}

// serveWS dials and serves one WebSocket connection: a reader goroutine
// and this goroutine as the writer.
func (c *Client) serveWS(ctx context.Context, p connParams, cand bool) session {
	conn, resp, err := websocket.Dial(ctx, p.endpoint.String(), &websocket.DialOptions{
		Header:           c.header(p),
		TLSConfig:        p.tls,
		MaxMessageSize:   c.maxMsg,
		HandshakeTimeout: requestTimeout,
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return session{}
		}
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		c.onConnectFailed(err)
		return session{err: err, retryAfter: retryAfter(resp, time.Now())}
	}
	if cand {
		c.settle(true, nil)
	}
	c.markFull() // the first message on a connection is a full status report
	c.onConnect()

	ended := make(chan readEnd, 1)
	var answered atomic.Bool
	go c.readWS(conn, ended, &answered)
	// finish ends the session; the backoff is reset only if the server
	// answered without an error, so a server that accepts and drops or
	// refuses at once is retried ever more slowly.
	finish := func(s session) session {
		s.healthy = answered.Load()
		return s
	}

	hbTimer := time.NewTimer(time.Hour)
	defer hbTimer.Stop()
	resetHB := func() {
		hbTimer.Stop()
		if hb := c.heartbeat(); hb > 0 {
			hbTimer.Reset(hb)
		}
	}
	send := func(disconnect bool) error {
		c.drainWake()
		m, out := c.build(disconnect)
		data, err := opamp.AppendWS(nil, m)
		if err == nil && int64(len(data)) > c.maxMsg {
			err = fmt.Errorf("opamp client: message of %d bytes exceeds MaxMessageSize; discarded", len(data))
			c.log.Error(err.Error())
			c.afterSend(out, false, false)
			resetHB()
			return nil
		}
		if err != nil {
			c.afterSend(out, false, false)
			return fmt.Errorf("opamp client: encode: %w", err)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		err = conn.WriteMessage(websocket.Binary, data)
		c.afterSend(out, err == nil, true)
		resetHB()
		return err
	}
	// closeConn says goodbye (agent_disconnect, close handshake) within the
	// final-send budget, then waits for the reader.
	closeConn := func(final bool) {
		fctx, cancel := context.Background(), func() {}
		if final {
			fctx, cancel = c.finalContext()
		}
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := send(true); err != nil {
				c.log.Debug("opamp client: agent_disconnect not sent", "err", err)
			}
			_ = conn.Close()
		}()
		select {
		case <-done:
		case <-fctx.Done():
			_ = conn.NetConn().Close()
			<-done
		}
		<-ended
	}

	if err := send(false); err != nil {
		_ = conn.NetConn().Close()
		<-ended
		c.onConnectFailed(err)
		return finish(session{connected: true, err: err})
	}
	for {
		select {
		case <-ctx.Done():
			closeConn(true)
			return finish(session{connected: true})
		case <-c.reconnect:
			closeConn(false)
			return finish(session{connected: true, now: true})
		case r := <-ended:
			ended <- r // closeConn and the paths below wait on it
			if r.v.unavailable {
				closeConn(false)
				// Not "connected": repeated UNAVAILABLE grows the backoff.
				return session{err: errors.New("opamp client: server unavailable"), retryAfter: r.v.retryAfter}
			}
			_ = conn.NetConn().Close()
			<-ended
			c.onConnectFailed(r.err)
			return finish(session{connected: true, err: r.err})
		case <-c.wake:
			if err := send(false); err != nil {
				_ = conn.NetConn().Close()
				<-ended
				c.onConnectFailed(err)
				return finish(session{connected: true, err: err})
			}
		case <-hbTimer.C:
			if err := send(false); err != nil { // a heartbeat: pending fields, if any, ride along
				_ = conn.NetConn().Close()
				<-ended
				c.onConnectFailed(err)
				return finish(session{connected: true, err: err})
			}
		case <-c.hbChanged:
			resetHB()
		}
	}
}

// readWS reads ServerToAgent messages until the connection fails or the
// server answers UNAVAILABLE, and reports why on ended. With heartbeats on,
// a server silent for two intervals plus slack is considered dead.
func (c *Client) readWS(conn *websocket.Conn, ended chan<- readEnd, answered *atomic.Bool) {
	for {
		if hb := c.heartbeat(); hb > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(2*hb + readSlack))
		} else {
			_ = conn.SetReadDeadline(time.Time{})
		}
		op, data, err := conn.ReadMessage()
		if err != nil {
			ended <- readEnd{err: fmt.Errorf("opamp client: read: %w", err)}
			return
		}
		if op != websocket.Binary {
			c.log.Warn("opamp client: ignoring non-binary WebSocket message", "opcode", op.String())
			continue
		}
		var msg protobufs.ServerToAgent
		if err := opamp.DecodeWS(data, &msg); err != nil {
			c.log.Warn("opamp client: ignoring malformed message", "err", err)
			continue
		}
		if msg.ErrorResponse == nil {
			// Only a real answer resets the backoff: a server that
			// refuses every connection is retried ever more slowly.
			answered.Store(true)
		}
		if v := c.receive(&msg); v.unavailable {
			ended <- readEnd{v: v}
			return
		}
	}
}

// ---- plain HTTP ----

// httpStatusError is a non-200 answer to a POST.
type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("opamp client: server answered HTTP %d %s", e.code, http.StatusText(e.code))
}

// serveHTTP polls the server until an exchange fails, the server is
// unavailable, new connection settings are accepted or ctx ends. A status
// change is posted at once; otherwise the client polls every poll interval.
func (c *Client) serveHTTP(ctx context.Context, p connParams, cand bool) session {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = p.tls
	tr.DisableCompression = true // gzip is negotiated and decoded here
	hc := &http.Client{Transport: tr, Timeout: requestTimeout}
	defer tr.CloseIdleConnections()

	c.markFull()
	connected := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.drainWake()
		m, out := c.build(false)
		reply, ra, err := c.post(ctx, hc, p, m)
		var se *httpStatusError
		switch {
		case err != nil && ctx.Err() != nil:
			c.afterSend(out, false, true)
			if connected {
				c.finalHTTP(hc, p)
			}
			return session{connected: connected}
		case errors.Is(err, errTooLarge) || (errors.As(err, &se) && se.code == http.StatusRequestEntityTooLarge):
			// Too large for us or for the server: the spec forbids
			// retrying it. The exchange is over; polling goes on.
			c.log.Error("opamp client: status report dropped", "err", err)
			c.afterSend(out, false, false)
		case err != nil:
			c.afterSend(out, false, true)
			c.onConnectFailed(err)
			return session{connected: connected, healthy: connected, err: err, retryAfter: ra}
		default:
			v := c.receive(reply)
			switch {
			case v.unavailable:
				c.afterSend(out, false, true)
				return session{connected: false, err: errors.New("opamp client: server unavailable"), retryAfter: v.retryAfter}
			case v.badRequest:
				c.afterSend(out, false, false)
			default:
				c.afterSend(out, true, false)
			}
			if !connected {
				connected = true
				if cand {
					c.settle(true, nil)
				}
				c.onConnect()
			}
		}
		if c.pending() {
			continue
		}
		timer.Reset(c.pollInterval())
		select {
		case <-ctx.Done():
			c.finalHTTP(hc, p)
			return session{connected: true}
		case <-c.reconnect:
			c.finalHTTP(hc, p)
			return session{connected: true, now: true}
		case <-c.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// finalHTTP posts the last message, with agent_disconnect.
func (c *Client) finalHTTP(hc *http.Client, p connParams) {
	fctx, cancel := c.finalContext()
	defer cancel()
	m, out := c.build(true)
	_, _, err := c.post(fctx, hc, p, m)
	c.afterSend(out, err == nil, true)
	if err != nil {
		c.log.Debug("opamp client: agent_disconnect not delivered", "err", err)
	}
}

var (
	errTooLarge         = errors.New("opamp client: message exceeds MaxMessageSize")
	errResponseTooLarge = errors.New("opamp client: response exceeds MaxMessageSize")
)

// post sends one AgentToServer message and returns the reply, and the
// server's Retry-After delay on 503/429.
func (c *Client) post(ctx context.Context, hc *http.Client, p connParams, m *protobufs.AgentToServer) (*protobufs.ServerToAgent, time.Duration, error) {
	body, err := proto.Marshal(m)
	if err != nil {
		return nil, 0, fmt.Errorf("opamp client: encode: %w", err)
	}
	if int64(len(body)) > c.maxMsg {
		c.log.Error("opamp client: request discarded", "bytes", len(body), "err", errTooLarge)
		return nil, 0, errTooLarge
	}
	gz := len(body) >= gzipThreshold
	if gz {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(body)
		_ = w.Close()
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("opamp client: %w", err)
	}
	req.Header = c.header(p)
	req.Header.Set("Content-Type", opamp.ContentType)
	req.Header.Set("Accept-Encoding", "gzip")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if u, err := uuidFromBytes(m.InstanceUid); err == nil {
		req.Header.Set("OpAMP-Instance-UID", uuidString(u))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("opamp client: post: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, retryAfter(resp, time.Now()), &httpStatusError{code: resp.StatusCode}
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, 0, fmt.Errorf("opamp client: gzip response: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(io.LimitReader(r, c.maxMsg+1))
	if err != nil {
		return nil, 0, fmt.Errorf("opamp client: read response: %w", err)
	}
	if int64(len(data)) > c.maxMsg {
		c.log.Error("opamp client: response discarded", "err", errResponseTooLarge)
		return nil, 0, errResponseTooLarge
	}
	var reply protobufs.ServerToAgent
	if err := proto.Unmarshal(data, &reply); err != nil {
		return nil, 0, fmt.Errorf("opamp client: malformed response: %w", err)
	}
	return &reply, 0, nil
}

func uuidFromBytes(b []byte) ([16]byte, error) {
	var u [16]byte
	if len(b) != 16 {
		return u, errors.New("not 16 bytes")
	}
	copy(u[:], b)
	return u, nil
}
