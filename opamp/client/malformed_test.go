package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/opamp/websocket"
)

// TestMalformedWebSocketMessages: a server sending garbage (a wrong
// header, an undecodable payload, a text message) is ignored message by
// message; the connection stays up and the next valid message is handled.
func TestMalformedWebSocketMessages(t *testing.T) {
	var upgrades atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		upgrades.Add(1)
		defer conn.Close()
		if _, _, err := conn.ReadMessage(); err != nil { // the first report
			return
		}
		good, _ := opamp.AppendWS(nil, &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: []byte("ok")}})
		for _, m := range []struct {
			op   websocket.Opcode
			data []byte
		}{
			{websocket.Binary, []byte{0x05, 0x0a, 0x00}},       // header 5
			{websocket.Binary, []byte{0x00, 0x0a, 0xff, 0xff}}, // truncated field
			{websocket.Binary, nil},                            // no header at all
			{websocket.Text, []byte("hello")},
			{websocket.Binary, good},
		} {
			if err := conn.WriteMessage(m.op, m.data); err != nil {
				return
			}
		}
		for { // keep reading until the client leaves
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	got := make(chan *protobufs.AgentRemoteConfig, 1)
	startClient(t, client.Settings{
		Endpoint:     "ws" + srv.URL[len("http"):] + "/v1/opamp",
		Description:  description("a"),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig,
		Callbacks: client.Callbacks{OnMessage: func(ctx context.Context, msg *client.MessageData) {
			if msg.RemoteConfig != nil {
				got <- msg.RemoteConfig
			}
		}},
	})
	select {
	case rc := <-got:
		if string(rc.ConfigHash) != "ok" {
			t.Fatalf("got %v", rc)
		}
	case <-time.After(waitFor):
		t.Fatal("valid message after garbage not delivered")
	}
	if n := upgrades.Load(); n != 1 {
		t.Fatalf("client reconnected (%d connections) because of malformed messages", n)
	}
}

// TestMalformedHTTPResponses: garbage, oversized and failing responses
// count as failed exchanges; the client retries and carries on, and the
// status lost with them is sent again. HeaderFunc runs per request.
func TestMalformedHTTPResponses(t *testing.T) {
	var mu sync.Mutex
	var reqs []*protobufs.AgentToServer
	var tokens []string
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m protobufs.AgentToServer
		if err := proto.Unmarshal(body, &m); err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs = append(reqs, &m)
		tokens = append(tokens, r.Header.Get("Authorization"))
		mu.Unlock()
		switch n.Add(1) {
		case 1:
			_, _ = w.Write([]byte{0x0a, 0xff, 0xff, 0xff}) // not a ServerToAgent
		case 2:
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write([]byte("not gzip"))
		case 3:
			_, _ = w.Write(make([]byte, 2048)) // over MaxMessageSize
		case 4:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			b, _ := proto.Marshal(&protobufs.ServerToAgent{})
			_, _ = w.Write(b)
		}
	}))
	defer srv.Close()

	var failures atomic.Int32
	var seq atomic.Int32
	startClient(t, client.Settings{
		Endpoint:        srv.URL + "/v1/opamp",
		Description:     description("a"),
		MaxMessageSize:  1024,
		PollingInterval: 50 * time.Millisecond,
		HeaderFunc: func(h http.Header) http.Header {
			h.Set("Authorization", fmt.Sprintf("Bearer %d", seq.Add(1)))
			return h
		},
		Callbacks: client.Callbacks{OnConnectFailed: func(ctx context.Context, err error) { failures.Add(1) }},
	})
	eventually(t, "polls after the bad answers", func() bool { return n.Load() >= 7 })
	if f := failures.Load(); f != 4 {
		t.Errorf("OnConnectFailed called %d times, want 4", f)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 5; i++ {
		if reqs[i].AgentDescription == nil {
			t.Errorf("request %d: status lost with a failed exchange was not sent again", i)
		}
	}
	if reqs[5].AgentDescription != nil {
		t.Error("description sent again after a successful exchange")
	}
	if tokens[0] == tokens[1] || tokens[0] == "" {
		t.Errorf("HeaderFunc not applied per request: %q", tokens[:2])
	}
}

// TestHTTP413NotRetried: a request refused with 413 is not sent again;
// polling continues.
func TestHTTP413NotRetried(t *testing.T) {
	var withDesc, polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m protobufs.AgentToServer
		if err := proto.Unmarshal(body, &m); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		polls.Add(1)
		if m.AgentDescription != nil {
			withDesc.Add(1)
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := proto.Marshal(&protobufs.ServerToAgent{})
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	var failures atomic.Int32
	startClient(t, client.Settings{
		Endpoint:        srv.URL + "/v1/opamp",
		Description:     description("a"),
		PollingInterval: 50 * time.Millisecond,
		Callbacks:       client.Callbacks{OnConnectFailed: func(ctx context.Context, err error) { failures.Add(1) }},
	})
	eventually(t, "polls after the 413", func() bool { return polls.Load() >= 5 })
	if n := withDesc.Load(); n != 1 {
		t.Fatalf("refused report sent %d times", n)
	}
	if f := failures.Load(); f != 0 {
		t.Errorf("413 reported as a connection failure %d times", f)
	}
}

// TestBackoffGrowsWhenServerDropsAtOnce: a server that completes the
// handshake but closes before answering does not reset the backoff, so
// the client retries ever more slowly instead of hammering it.
func TestBackoffGrowsWhenServerDropsAtOnce(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		_, _, _ = conn.ReadMessage()
		_ = conn.CloseWithCode(websocket.CloseMessageTooBig, "too big")
	}))
	defer srv.Close()
	startClient(t, client.Settings{
		Endpoint:    "ws" + srv.URL[len("http"):] + "/v1/opamp",
		Description: description("a"),
		Backoff:     client.Backoff{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond},
	})
	eventually(t, "six attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(at) >= 6 })
	mu.Lock()
	defer mu.Unlock()
	// The fifth wait is drawn from [200ms, 400ms]; with a reset backoff it
	// would be at most 50ms.
	if d := at[5].Sub(at[4]); d < 200*time.Millisecond {
		t.Fatalf("fifth retry after %v: backoff did not grow", d)
	}
}
