package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"google.golang.org/protobuf/proto"
)

// rawClient does not add or strip compression on its own.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: waitFor}

func post(t *testing.T, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", opamp.ContentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return resp, b
}

func decodeReply(t *testing.T, b []byte) *protobufs.ServerToAgent {
	t.Helper()
	m := &protobufs.ServerToAgent{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("reply body: %v", err)
	}
	return m
}

func marshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestHTTPPoll(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		if c.Transport() != HTTP || c.State() != "state:h1" {
			t.Errorf("transport %v state %v", c.Transport(), c.State())
		}
		if err := c.Send(&protobufs.ServerToAgent{}); err != ErrNotPushable {
			t.Errorf("Send on HTTP: %v", err)
		}
		switch msg.SequenceNum {
		case 2:
			return nil, nil
		case 3: // a reply worth compressing
			return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte("h"),
				Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{"": {Body: bytes.Repeat([]byte("a: 1\n"), 1000)}}}}}, nil
		}
		return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte("h")}}, nil
	}
	s, hs := startServer(t, h, Config{Capabilities: 0x5})
	url := hs.URL + opamp.DefaultPath
	resp, b := post(t, url, marshal(t, status(1)), map[string]string{"X-Agent": "h1"})
	r := decodeReply(t, b)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != opamp.ContentType || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if string(r.GetRemoteConfig().GetConfigHash()) != "h" || r.Capabilities != 0x5 || !bytes.Equal(r.InstanceUid, uid1) {
		t.Fatalf("reply %v", r)
	}
	// nil reply: an empty ServerToAgent with the instance_uid and capabilities.
	_, b = post(t, url, marshal(t, status(2)), map[string]string{"X-Agent": "h1"})
	if r = decodeReply(t, b); r.Capabilities != 0x5 || !bytes.Equal(r.InstanceUid, uid1) || r.RemoteConfig != nil {
		t.Fatalf("nil reply %v", r)
	}
	// gzip both ways.
	resp, b = post(t, url, gz(marshal(t, status(3))), map[string]string{"X-Agent": "h1", "Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("response not gzipped: %v", resp.Header)
	}
	if r = decodeReply(t, b); string(r.GetRemoteConfig().GetConfigHash()) != "h" || len(r.GetRemoteConfig().GetConfig().GetConfigMap()[""].GetBody()) != 5000 {
		t.Fatalf("gzip reply %v", r)
	}
	// A reply too short to gain from compression is sent as it is.
	resp, b = post(t, url, marshal(t, status(4)), map[string]string{"X-Agent": "h1", "Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("a %d-byte reply was compressed: %v", len(b), resp.Header)
	}
	if r = decodeReply(t, b); string(r.GetRemoteConfig().GetConfigHash()) != "h" {
		t.Fatalf("short reply %v", r)
	}
	if st := s.Stats(); st.Messages != 4 || st.Connections != 0 {
		t.Fatalf("stats %+v", st)
	}
	if c, _ := h.totalClosed(); c != 0 {
		t.Fatal("OnClose called for HTTP")
	}
}

func TestHTTPBadInput(t *testing.T) {
	h := newTestHandler()
	s, hs := startServer(t, h, Config{MaxMessageSize: 1 << 20})
	url := hs.URL + opamp.DefaultPath
	check := func(name string, resp *http.Response, b []byte, status int, msgPart string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d, want %d (%s)", name, resp.StatusCode, status, b)
		}
		e := decodeReply(t, b).GetErrorResponse()
		if e.GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest || !strings.Contains(e.GetErrorMessage(), msgPart) {
			t.Fatalf("%s: error response %v", name, e)
		}
	}
	resp, b := post(t, url, []byte{0xFF, 0xFF, 0xFF}, nil)
	check("garbage", resp, b, 400, "undecodable")
	resp, b = post(t, url, []byte("not gzip at all"), map[string]string{"Content-Encoding": "gzip"})
	check("bad gzip", resp, b, 400, "gzip")
	resp, b = post(t, url, gz(marshal(t, status(1)))[:20], map[string]string{"Content-Encoding": "gzip"})
	check("truncated gzip", resp, b, 400, "gzip")
	resp, b = post(t, url, marshal(t, status(1)), map[string]string{"Content-Encoding": "br"})
	check("unknown encoding", resp, b, 400, "Content-Encoding")
	resp, b = post(t, url, marshal(t, status(1)), map[string]string{"Content-Type": "application/json"})
	check("content type", resp, b, 415, "Content-Type")

	// Oversize, plain and compressed; and a gzip bomb (16 MiB of zeros in
	// ~16 KiB): 413 without inflating it all.
	big := make([]byte, 2<<20)
	rand.Read(big)
	resp, b = post(t, url, big, nil)
	check("oversize", resp, b, 413, "exceeds")
	resp, b = post(t, url, gz(big), map[string]string{"Content-Encoding": "gzip"})
	check("oversize compressed", resp, b, 413, "exceeds")
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 16; i++ {
		zw.Write(zeros)
	}
	zw.Close()
	resp, b = post(t, url, bomb.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	check("gzip bomb", resp, b, 413, "exceeds")

	if h.numMessages() != 0 {
		t.Fatalf("handler saw %d messages", h.numMessages())
	}
	if s.Stats().Errors != 8 {
		t.Fatalf("errors %d, want 8", s.Stats().Errors)
	}

	// Methods.
	for method, want := range map[string]int{"PUT": 405, "DELETE": 405, "GET": 426} {
		req, _ := http.NewRequest(method, url, nil)
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", method, resp.StatusCode, want)
		}
		if want == 405 && resp.Header.Get("Allow") != "GET, POST" {
			t.Fatalf("Allow %q", resp.Header.Get("Allow"))
		}
	}
}

func TestHTTPErrorsAndOverload(t *testing.T) {
	h := newTestHandler()
	block := make(chan struct{})
	entered := make(chan struct{}, 1)
	h.accept = func(r *http.Request) (any, error) {
		if r.Header.Get("X-Agent") == "anon" {
			return nil, steward.Errorf(steward.EUNAUTHORIZED, "no token")
		}
		return nil, nil
	}
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		switch msg.SequenceNum {
		case 1:
			return nil, steward.Errorf(steward.EUNAVAILABLE, "try later")
		case 2:
			return nil, steward.Errorf(steward.EINVALID, "nope")
		case 3:
			entered <- struct{}{}
			<-block
		}
		return nil, nil
	}
	_, hs := startServer(t, h, Config{MaxInFlight: 1, RetryAfter: 3 * time.Second})
	url := hs.URL + opamp.DefaultPath

	resp, b := post(t, url, marshal(t, status(1)), nil)
	e := decodeReply(t, b).GetErrorResponse()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" ||
		e.GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable ||
		e.GetRetryInfo().GetRetryAfterNanoseconds() != uint64(3*time.Second) {
		t.Fatalf("EUNAVAILABLE: %d %v %v", resp.StatusCode, resp.Header, e)
	}
	resp, b = post(t, url, marshal(t, status(2)), nil)
	if e = decodeReply(t, b).GetErrorResponse(); resp.StatusCode != 400 || e.GetErrorMessage() != "nope" {
		t.Fatalf("EINVALID: %d %v", resp.StatusCode, e)
	}
	resp, _ = post(t, url, marshal(t, status(9)), map[string]string{"X-Agent": "anon"})
	if resp.StatusCode != 401 {
		t.Fatalf("unauthorized: %d", resp.StatusCode)
	}

	// Overload: one request holds the only in-flight slot.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, _ := post(t, url, marshal(t, status(3)), nil)
		if resp.StatusCode != 200 {
			t.Errorf("blocked request: %d", resp.StatusCode)
		}
	}()
	<-entered
	resp, b = post(t, url, marshal(t, status(4)), nil)
	e = decodeReply(t, b).GetErrorResponse()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || e.GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable {
		t.Fatalf("overload: %d %v %v", resp.StatusCode, resp.Header, e)
	}
	close(block)
	wg.Wait()
	resp, _ = post(t, url, marshal(t, status(5)), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("after overload: %d", resp.StatusCode)
	}
}

func TestHTTPInstanceUIDAndReplyLimit(t *testing.T) {
	h := newTestHandler()
	h.onMessage = func(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
		return &protobufs.ServerToAgent{CustomMessage: &protobufs.CustomMessage{Data: make([]byte, 2000)}}, nil
	}
	s, hs := startServer(t, h, Config{MaxSendMessageSize: 1000})
	url := hs.URL + opamp.DefaultPath
	bad := status(1)
	bad.InstanceUid = nil
	resp, b := post(t, url, marshal(t, bad), nil)
	if e := decodeReply(t, b).GetErrorResponse(); resp.StatusCode != 400 || !strings.Contains(e.GetErrorMessage(), "16 bytes") {
		t.Fatalf("missing instance_uid: %d %v", resp.StatusCode, e)
	}
	resp, b = post(t, url, marshal(t, status(1)), nil)
	r := decodeReply(t, b)
	if resp.StatusCode != 500 || r.CustomMessage != nil || r.GetErrorResponse().GetType() != protobufs.ServerErrorResponseType_ServerErrorResponseType_Unknown {
		t.Fatalf("oversize reply: %d %v", resp.StatusCode, r.GetErrorResponse())
	}
	if s.Stats().Discarded != 1 || h.numMessages() != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
}
