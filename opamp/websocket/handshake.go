package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns the Sec-WebSocket-Accept value for a request key.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// headerHasToken reports whether the comma-separated header h contains tok
// (case-insensitively).
func headerHasToken(h http.Header, name, tok string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// IsUpgrade reports whether r asks for a WebSocket upgrade (a GET with
// Upgrade: websocket). It does not validate the rest of the handshake.
func IsUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Upgrade", "websocket")
}

// CheckRequest validates an opening handshake request (RFC 6455 section
// 4.2.1) and returns the HTTP status to refuse it with (400, 405, or 426
// for an unsupported version) and an error wrapping ErrBadHandshake, or
// (0, nil) when it is valid.
func CheckRequest(r *http.Request) (status int, err error) {
	switch {
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, fmt.Errorf("%w: method %s, want GET", ErrBadHandshake, r.Method)
	case !r.ProtoAtLeast(1, 1):
		return http.StatusBadRequest, fmt.Errorf("%w: %s, want HTTP/1.1", ErrBadHandshake, r.Proto)
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return http.StatusBadRequest, fmt.Errorf("%w: missing Upgrade: websocket", ErrBadHandshake)
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return http.StatusBadRequest, fmt.Errorf("%w: missing Connection: Upgrade", ErrBadHandshake)
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return http.StatusUpgradeRequired, fmt.Errorf("%w: Sec-WebSocket-Version %q, want 13", ErrBadHandshake, r.Header.Get("Sec-WebSocket-Version"))
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return http.StatusBadRequest, fmt.Errorf("%w: invalid Sec-WebSocket-Key %q", ErrBadHandshake, key)
	}
	return 0, nil
}

// Hijack completes the server side of the opening handshake: it validates
// r (on failure it writes the refusal, status from CheckRequest, and
// returns the error), hijacks the connection and writes the 101 response
// with the extra header h. It returns the raw connection and any bytes the
// client sent after its request that were already read; the caller parses
// those before reading from nc.
func Hijack(w http.ResponseWriter, r *http.Request, h http.Header) (nc net.Conn, buffered []byte, err error) {
	if status, err := CheckRequest(r); err != nil {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodGet)
		}
		http.Error(w, err.Error(), status)
		return nil, nil, err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "websocket: connection cannot be hijacked", http.StatusInternalServerError)
		return nil, nil, fmt.Errorf("%w: response writer does not implement http.Hijacker", ErrBadHandshake)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: hijack: %w", err)
	}
	if n := brw.Reader.Buffered(); n > 0 {
		buffered, _ = brw.Reader.Peek(n)
		buffered = append([]byte(nil), buffered...)
	}
	var resp bytes.Buffer
	resp.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	resp.WriteString(AcceptKey(r.Header.Get("Sec-WebSocket-Key")))
	resp.WriteString("\r\n")
	_ = h.Write(&resp)
	resp.WriteString("\r\n")
	_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(resp.Bytes()); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("websocket: writing handshake response: %w", err)
	}
	_ = nc.SetDeadline(time.Time{}) // drop any the HTTP server had set
	return nc, buffered, nil
}

// AcceptOptions configures Accept.
type AcceptOptions struct {
	Header         http.Header // extra response headers
	MaxMessageSize int64       // <= 0: DefaultMaxMessageSize
}

// Accept upgrades an HTTP request to a blocking server-side Conn (see
// Hijack for the handshake and its errors).
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Conn, error) {
	if opts == nil {
		opts = &AcceptOptions{}
	}
	nc, buf, err := Hijack(w, r, opts.Header)
	if err != nil {
		return nil, err
	}
	return NewConn(nc, false, buf, opts.MaxMessageSize), nil
}

// DialOptions configures Dial.
type DialOptions struct {
	// Header holds extra request headers (e.g. Authorization). Setting
	// Sec-WebSocket-Extensions to DeflateOffer offers compression: if the
	// server accepts, the Conn inflates compressed messages it receives
	// (it always sends uncompressed).
	Header           http.Header
	TLSConfig        *tls.Config   // for wss://; nil: defaults
	MaxMessageSize   int64         // <= 0: DefaultMaxMessageSize
	HandshakeTimeout time.Duration // 0: 30s; also bounded by ctx
	// NetDial opens the TCP connection; nil: a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// maxErrorBody bounds how much of a refused handshake's body is kept.
const maxErrorBody = 64 << 10

// Dial opens a WebSocket client connection to a ws:// or wss:// URL. The
// *http.Response of the handshake is returned whenever one was read, also
// when the server refused the upgrade (then with an error wrapping
// ErrBadHandshake and a Body, up to 64 KiB, readable after the connection
// is closed), so a caller can honour a 503's Retry-After or a 401.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: %w", err)
	}
	var secure bool
	switch u.Scheme {
	case "ws":
	case "wss":
		secure = true
	default:
		return nil, nil, fmt.Errorf("websocket: unsupported URL scheme %q, want ws or wss", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		if secure {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	timeout := opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dial := (&net.Dialer{}).DialContext
	if opts.NetDial != nil {
		dial = opts.NetDial
	}
	nc, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: dial %s: %w", host, err)
	}
	raw := nc // the TCP conn; nc may become its TLS wrapper below
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	ok := false
	defer func() {
		if !ok {
			stop()
			nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		_ = nc.SetDeadline(dl)
	}
	if secure {
		cfg := opts.TLSConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("websocket: tls handshake: %w", err)
		}
		nc = tc
	}

	var kb [16]byte
	_, _ = rand.Read(kb[:])
	key := base64.StdEncoding.EncodeToString(kb[:])
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header),
		Host:       u.Host,
	}
	for k, vs := range opts.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	if h := opts.Header.Get("Host"); h != "" {
		req.Host = h
	}
	bw := bufio.NewWriter(nc)
	if err := req.Write(bw); err != nil {
		return nil, nil, fmt.Errorf("websocket: writing handshake: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, fmt.Errorf("websocket: writing handshake: %w", err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: reading handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil, resp, fmt.Errorf("%w: server answered %s", ErrBadHandshake, resp.Status)
	}
	resp.Body = http.NoBody
	switch {
	case !headerHasToken(resp.Header, "Upgrade", "websocket"):
		return nil, resp, fmt.Errorf("%w: response lacks Upgrade: websocket", ErrBadHandshake)
	case !headerHasToken(resp.Header, "Connection", "upgrade"):
		return nil, resp, fmt.Errorf("%w: response lacks Connection: Upgrade", ErrBadHandshake)
	case resp.Header.Get("Sec-WebSocket-Accept") != AcceptKey(key):
		return nil, resp, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrBadHandshake)
	case resp.Header.Get("Sec-WebSocket-Protocol") != "":
		return nil, resp, fmt.Errorf("%w: server chose a subprotocol that was not offered", ErrBadHandshake)
	}
	deflate := false
	if ext := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ","); ext != "" {
		// Only permessage-deflate, only when offered, and only without
		// server context takeover (each message inflates on its own).
		if req.Header.Get("Sec-WebSocket-Extensions") == "" || NegotiateDeflate(resp.Header) == "" ||
			!strings.Contains(ext, "server_no_context_takeover") || strings.Contains(ext, ",") {
			return nil, resp, fmt.Errorf("%w: unsupported extension response %q", ErrBadHandshake, ext)
		}
		deflate = true
	}
	var buffered []byte
	if n := br.Buffered(); n > 0 {
		buffered, _ = br.Peek(n)
		buffered = append([]byte(nil), buffered...)
	}
	if !stop() {
		return nil, resp, fmt.Errorf("websocket: handshake: %w", ctx.Err())
	}
	ok = true
	_ = nc.SetDeadline(time.Time{})
	c := NewConn(nc, true, buffered, opts.MaxMessageSize)
	c.p.Deflate = deflate
	return c, resp, nil
}
