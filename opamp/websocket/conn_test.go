package websocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer accepts WebSockets and echoes every message until the peer
// closes. Its handler goroutines are waited for on cleanup.
func echoServer(t *testing.T, max int64) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		c, err := Accept(w, r, &AcceptOptions{MaxMessageSize: max})
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		for {
			op, b, err := c.ReadMessage()
			if err != nil {
				c.Close()
				return
			}
			if string(b) == "close-please" {
				c.CloseWithCode(CloseGoingAway, "bye")
				return
			}
			if err := c.WriteMessage(op, b); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return c
}

func TestEchoAndCloseHandshake(t *testing.T) {
	url := echoServer(t, 0)
	c := dial(t, url)
	for _, n := range []int{0, 1, 125, 126, 65536, 1 << 20} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if err := c.WriteMessage(Binary, msg); err != nil {
			t.Fatal(err)
		}
		op, b, err := c.ReadMessage()
		if err != nil || op != Binary || !bytes.Equal(b, msg) {
			t.Fatalf("n=%d: op %v len %d err %v", n, op, len(b), err)
		}
	}
	if err := c.WriteMessage(Text, []byte("héllo")); err != nil {
		t.Fatal(err)
	}
	if op, b, err := c.ReadMessage(); err != nil || op != Text || string(b) != "héllo" {
		t.Fatalf("text echo: %v %q %v", op, b, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("read after close succeeded")
	}
	if err := c.WriteMessage(Binary, []byte("x")); !errors.Is(err, ErrCloseSent) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestServerInitiatedClose(t *testing.T) {
	c := dial(t, echoServer(t, 0))
	if err := c.WriteMessage(Binary, []byte("close-please")); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CloseGoingAway || ce.Reason != "bye" {
		t.Fatalf("err = %v, want CloseError 1001 bye", err)
	}
}

func TestConcurrentWritersAndPing(t *testing.T) {
	c := dial(t, echoServer(t, 0))
	defer c.Close()
	const writers, each = 4, 50
	received := make(chan []byte, writers*each)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			received <- b
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				msg := bytes.Repeat([]byte{byte(w)}, 1000+i)
				if err := c.WriteMessage(Binary, msg); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for i := 0; i < writers*each; i++ {
		select {
		case b := <-received:
			for _, x := range b {
				if x != b[0] {
					t.Fatal("interleaved frames from concurrent writers")
				}
			}
		case err := <-readErr:
			t.Fatal(err)
		case <-time.After(20 * time.Second):
			t.Fatal("timed out waiting for echoes")
		}
	}
}

func TestDialRefusedReturnsResponse(t *testing.T) {
	url := echoServer(t, 0)
	c, resp, err := Dial(context.Background(), url+"/refuse", nil)
	if c != nil || !errors.Is(err, ErrBadHandshake) {
		t.Fatalf("conn %v err %v", c, err)
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("resp = %+v", resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "busy") {
		t.Fatalf("body %q", body)
	}
}

func TestServerRejectsBadFrames(t *testing.T) {
	url := echoServer(t, 100)
	// Oversize message: the server closes with 1009.
	c := dial(t, url)
	if err := c.WriteMessage(Binary, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CloseMessageTooBig {
		t.Fatalf("oversize: err = %v, want close 1009", err)
	}
	// Unmasked frame from a client: 1002. Written raw.
	c = dial(t, url)
	c.wmu.Lock()
	_, _ = c.nc.Write(AppendFrame(nil, true, Binary, []byte("x"), false, [4]byte{}))
	c.wmu.Unlock()
	_, _, err = c.ReadMessage()
	if !errors.As(err, &ce) || ce.Code != CloseProtocolError {
		t.Fatalf("unmasked: err = %v, want close 1002", err)
	}
}

func TestHandshakeValidation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Accept(w, r, nil); err == nil {
			c.Close()
		}
	}))
	defer srv.Close()
	cases := []struct {
		name   string
		mod    func(h http.Header)
		status int
	}{
		{"no upgrade", func(h http.Header) { h.Del("Upgrade") }, 400},
		{"no connection", func(h http.Header) { h.Set("Connection", "keep-alive") }, 400},
		{"version 8", func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, 426},
		{"short key", func(h http.Header) { h.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, 400},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Connection", "keep-alive, Upgrade")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		tc.mod(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	if AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatal("AcceptKey does not match RFC 6455's example")
	}
}

func TestCloseWithoutPeerIsBounded(t *testing.T) {
	// A peer that completes the handshake, then never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			nc, _, err := Hijack(w, r, nil)
			if err != nil {
				return
			}
			<-hold
			nc.Close()
		})}
		_ = srv.Serve(ln)
	}()
	c := dial(t, "ws://"+ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case <-done:
	case <-time.After(CloseTimeout + 10*time.Second):
		t.Fatal("Close did not return")
	}
}

func TestReadDeadlineIsNotFatal(t *testing.T) {
	c := dial(t, echoServer(t, 0))
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err := c.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if err := c.WriteMessage(Binary, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.ReadMessage(); err != nil || string(b) != "again" {
		t.Fatalf("after timeout: %q %v", b, err)
	}
}
