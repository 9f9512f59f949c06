package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/users"
)

// env is a Server in front of the real control plane over an in-memory
// SQLite store, listening on 127.0.0.1.
type env struct {
	t   testing.TB
	cp  *controlplane.Service
	db  *sqlite.DB
	srv *stewardhttp.Server
	ts  *httptest.Server
}

func newEnv(t testing.TB, configure func(*stewardhttp.Options)) *env {
	t.Helper()
	return newEnvOn(t, nil, false, configure)
}

// newEnvOn is newEnv over db (a new in-memory database when nil, closed
// with the env), serving TLS when tls is set.
func newEnvOn(t testing.TB, db *sqlite.DB, tls bool, configure func(*stewardhttp.Options)) *env {
	t.Helper()
	ctx := context.Background()
	ownDB := db == nil
	if ownDB {
		var err error
		if db, err = sqlite.Open(ctx, ":memory:"); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	cp, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: "test", FlushInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	people, err := users.New(db, log)
	if err != nil {
		t.Fatal(err)
	}
	opts := stewardhttp.Options{Agents: cp, Configs: cp, Previews: cp, Events: cp.Bus(), EventLog: cp.Events, Credentials: cp, Users: people, Sessions: db, Logger: log}
	if configure != nil {
		configure(&opts)
	}
	e := &env{t: t, cp: cp, db: db, srv: stewardhttp.NewServer(opts)}
	if tls {
		e.ts = httptest.NewTLSServer(e.srv)
	} else {
		e.ts = httptest.NewServer(e.srv)
	}
	t.Cleanup(func() {
		e.ts.Close()
		cp.Close()
		if ownDB {
			db.Close()
		}
	})
	return e
}

// testConn is an OpAMP connection as the control plane sees it; it records
// what the control plane sends.
type testConn struct {
	mu   sync.Mutex
	sent []*protobufs.ServerToAgent
	st   any
}

func (c *testConn) Send(m *protobufs.ServerToAgent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, m)
	return nil
}
func (c *testConn) Close() error                { return nil }
func (c *testConn) Transport() server.Transport { return server.WebSocket }
func (c *testConn) RemoteAddr() string          { return "127.0.0.1:4321" }
func (c *testConn) State() any                  { return c.st }
func (c *testConn) LastReceived() time.Time     { return time.Time{} }
func (c *testConn) messages() []*protobufs.ServerToAgent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*protobufs.ServerToAgent(nil), c.sent...)
}

type agentSpec struct {
	name, version, host string
	healthy             *bool
	caps                steward.AgentCapabilities
	customCaps          []string
	configStatus        protobufs.RemoteConfigStatuses
}

// connect makes an agent report itself to the control plane over a test
// WebSocket connection and returns its id and connection.
func (e *env) connect(spec agentSpec) (steward.InstanceUID, *testConn) {
	e.t.Helper()
	id := steward.NewInstanceUID()
	st, err := e.cp.Accept(httptest.NewRequest("GET", "/v1/opamp", nil))
	if err != nil {
		e.t.Fatal(err)
	}
	c := &testConn{st: st}
	str := func(k, v string) *protobufs.KeyValue {
		return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
	}
	caps := spec.caps | steward.AgentReportsStatus | steward.AgentReportsHealth
	msg := &protobufs.AgentToServer{
		InstanceUid:  id[:],
		SequenceNum:  1,
		Capabilities: uint64(caps),
		AgentDescription: &protobufs.AgentDescription{
			IdentifyingAttributes:    []*protobufs.KeyValue{str("service.name", spec.name), str("service.version", spec.version)},
			NonIdentifyingAttributes: []*protobufs.KeyValue{str("host.name", spec.host)},
		},
	}
	if spec.healthy != nil {
		msg.Health = &protobufs.ComponentHealth{Healthy: *spec.healthy}
	}
	if spec.customCaps != nil {
		msg.CustomCapabilities = &protobufs.CustomCapabilities{Capabilities: spec.customCaps}
	}
	if spec.configStatus != 0 {
		msg.RemoteConfigStatus = &protobufs.RemoteConfigStatus{Status: spec.configStatus, LastRemoteConfigHash: []byte{1}}
	}
	if _, err := e.cp.OnMessage(context.Background(), c, msg); err != nil {
		e.t.Fatal(err)
	}
	return id, c
}

// response is a decoded HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the code of an error body, failing unless the body is
// exactly the documented error shape.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	var er stewardhttp.ErrorResponse
	if err := dec.Decode(&er); err != nil || er.Error.Code == "" || er.Error.Message == "" {
		t.Fatalf("status %d: not an error body: %s (%v)", r.status, r.body, err)
	}
	return er.Error.Code
}

func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	var er stewardhttp.ErrorResponse
	r.decode(t, &er)
	return er.Error.Message
}

// do sends a request with an optional body (string, []byte or JSON value)
// and header pairs.
func (e *env) do(method, path string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func ptr[T any](v T) *T { return &v }

// eventually polls cond until it holds or 20 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
