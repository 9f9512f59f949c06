package controlplane_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// testConn stands in for a transport connection: it records what the
// control plane pushes. The transport itself is tested in opamp/server and
// end to end in the interop tests.
type testConn struct {
	transport server.Transport
	addr      string
	state     any
	mu        sync.Mutex
	sent      []*protobufs.ServerToAgent
	closed    bool
	onClose   func()
	// received, when set, is what LastReceived returns (else the zero
	// time: nothing known beyond the messages handled).
	received func() time.Time
	// hold, when set, is called by Send before it records a message (a
	// test holds a push there).
	hold func()
}

func (c *testConn) Send(m *protobufs.ServerToAgent) error {
	if c.hold != nil {
		c.hold()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.transport == server.HTTP {
		return server.ErrNotPushable
	}
	if c.closed {
		return server.ErrClosed
	}
	c.sent = append(c.sent, m)
	return nil
}
func (c *testConn) Close() error {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	f := c.onClose
	c.mu.Unlock()
	if !was && f != nil {
		f()
	}
	return nil
}
func (c *testConn) Transport() server.Transport { return c.transport }
func (c *testConn) RemoteAddr() string {
	if c.addr != "" {
		return c.addr
	}
	return "127.0.0.1:5555"
}
func (c *testConn) State() any { return c.state }
func (c *testConn) LastReceived() time.Time {
	if c.received != nil {
		return c.received()
	}
	return time.Time{}
}
func (c *testConn) pushed() []*protobufs.ServerToAgent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*protobufs.ServerToAgent(nil), c.sent...)
}
func (c *testConn) isClosed() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.closed }

type fixture struct {
	t     testing.TB
	ctx   context.Context
	store steward.Store
	svc   *controlplane.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, st)
}

// newResyncingFixture is newFixture for replica, with its periodic pass
// (resync) every 50 ms; it returns the store too.
func newResyncingFixture(t *testing.T, replica string) (*fixture, *sqlite.DB) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: replica,
		FlushInterval: 20 * time.Millisecond, ResyncInterval: 50 * time.Millisecond})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	return &fixture{t: t, ctx: ctx, store: st, svc: svc}, st
}

func newFixtureWith(t testing.TB, st steward.Store) *fixture {
	ctx := context.Background()
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	return &fixture{t: t, ctx: ctx, store: st, svc: svc}
}

func (f *fixture) connect(tr server.Transport) *testConn {
	st, err := f.svc.Accept(&http.Request{})
	if err != nil {
		f.t.Fatal(err)
	}
	c := &testConn{transport: tr, state: st}
	if tr == server.WebSocket {
		c.onClose = func() { f.svc.OnClose(c) }
	}
	return c
}

func (f *fixture) send(c *testConn, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
	f.t.Helper()
	r, err := f.svc.OnMessage(f.ctx, c, m)
	if err != nil {
		f.t.Fatalf("OnMessage: %v", err)
	}
	return r
}

const caps = uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
	protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
	protobufs.AgentCapabilities_AgentCapabilities_AcceptsRestartCommand |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat)

func str(k, v string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
}

func fullReport(uid steward.InstanceUID, seq uint64, env string) *protobufs.AgentToServer {
	return &protobufs.AgentToServer{
		InstanceUid:  uid[:],
		SequenceNum:  seq,
		Capabilities: caps,
		AgentDescription: &protobufs.AgentDescription{
			IdentifyingAttributes:    []*protobufs.KeyValue{str("service.name", "otelcol"), str("service.version", "0.149.0")},
			NonIdentifyingAttributes: []*protobufs.KeyValue{str("env", env), str("host.name", "node-1")},
		},
		Health: &protobufs.ComponentHealth{Healthy: true, Status: "running", ComponentHealthMap: map[string]*protobufs.ComponentHealth{
			"pipeline:traces": {Healthy: true, Status: "StatusOK"},
		}},
		RemoteConfigStatus: &protobufs.RemoteConfigStatus{Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_UNSET},
	}
}

func heartbeat(uid steward.InstanceUID, seq uint64) *protobufs.AgentToServer {
	return &protobufs.AgentToServer{InstanceUid: uid[:], SequenceNum: seq, Capabilities: caps}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func yamlConfig(body string) steward.ConfigMap {
	return steward.ConfigMap{"": {Body: []byte(body), ContentType: "text/yaml"}}
}

func TestAgentInventoryAndFullStateRequests(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)

	// First message without a description: the server asks for everything.
	r := f.send(c, heartbeat(uid, 0))
	if r == nil || r.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) == 0 {
		t.Fatalf("want ReportFullState on a first message without state, got %v", r)
	}
	if !bytes.Equal(r.InstanceUid, uid[:]) {
		t.Fatalf("reply instance_uid %x, want %x", r.InstanceUid, uid[:])
	}
	// The full report is stored.
	if r := f.send(c, fullReport(uid, 1, "prod")); r != nil && r.Flags != 0 {
		t.Fatalf("unexpected flags after full report: %v", r)
	}
	a, err := f.svc.Agent(f.ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Online || a.Transport != "websocket" || a.Replica != "r1" {
		t.Fatalf("connection state not recorded: %+v", a)
	}
	if a.Attribute("service.name") != "otelcol" || a.Attribute("env") != "prod" {
		t.Fatalf("description not stored: %+v", a.Description)
	}
	if !a.Healthy() || a.Health.Components["pipeline:traces"] == nil {
		t.Fatalf("health tree not stored: %+v", a.Health)
	}
	if !a.Capabilities.Has(steward.AgentAcceptsRemoteConfig) {
		t.Fatalf("capabilities not stored: %v", a.Capabilities.Names())
	}
	// A heartbeat in sequence is answered with an empty reply (the spec
	// requires a reply to every message).
	if r := f.send(c, heartbeat(uid, 2)); r == nil || r.Flags != 0 || r.RemoteConfig != nil || !bytes.Equal(r.InstanceUid, uid[:]) {
		t.Fatalf("heartbeat reply: %v", r)
	}
	// A gap in sequence numbers: ask for full state again.
	r = f.send(c, heartbeat(uid, 7))
	if r == nil || r.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) == 0 {
		t.Fatalf("want ReportFullState after a sequence gap, got %v", r)
	}
	// Last seen is flushed in batches.
	before := a.LastSeen
	time.Sleep(5 * time.Millisecond)
	f.send(c, heartbeat(uid, 8))
	eventually(t, "last_seen flush", func() bool {
		got, err := f.store.Agent(f.ctx, uid)
		return err == nil && got.LastSeen.After(before)
	})
	// Closing marks it offline and records the event.
	c.Close()
	a, _ = f.svc.Agent(f.ctx, uid)
	if a.Online {
		t.Fatal("agent still online after close")
	}
	eventually(t, "disconnect event", func() bool {
		evs, _ := f.svc.AgentEvents(f.ctx, uid, 10)
		return len(evs) > 0 && evs[0].Type == steward.EventAgentDisconnected
	})
}

func TestRemoteConfigReconciliation(t *testing.T) {
	f := newFixture(t)
	prod, dev := steward.NewInstanceUID(), steward.NewInstanceUID()
	cp, cd := f.connect(server.WebSocket), f.connect(server.WebSocket)
	f.send(cp, fullReport(prod, 1, "prod"))
	f.send(cd, fullReport(dev, 1, "dev"))

	cfg, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("receivers: {}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 1 {
		t.Fatalf("version %d", cfg.Version)
	}
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod-base", ConfigName: "base", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	// Only the matching agent gets it, pushed at once.
	pushed := cp.pushed()
	if len(pushed) != 1 || pushed[0].RemoteConfig == nil {
		t.Fatalf("prod agent: want one remote config push, got %v", pushed)
	}
	rc := pushed[0].RemoteConfig
	if string(rc.Config.ConfigMap["base"].Body) != "receivers: {}\n" {
		t.Fatalf("pushed config map %v", rc.Config.ConfigMap)
	}
	if len(cd.pushed()) != 0 {
		t.Fatalf("dev agent got %v", cd.pushed())
	}
	files, hash, err := f.svc.DesiredConfig(f.ctx, prod)
	if err != nil || !bytes.Equal(hash, rc.ConfigHash) || len(files) != 1 {
		t.Fatalf("DesiredConfig = %v %x %v; pushed hash %x", files, hash, err, rc.ConfigHash)
	}
	// Not offered twice while the agent works on it.
	if r := f.send(cp, heartbeat(prod, 2)); r != nil && r.RemoteConfig != nil {
		t.Fatal("config offered again before the agent reported")
	}
	// APPLYING then APPLIED; nothing resent.
	for i, st := range []protobufs.RemoteConfigStatuses{protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED} {
		m := heartbeat(prod, uint64(3+i))
		m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.ConfigHash, Status: st}
		if r := f.send(cp, m); r != nil && r.RemoteConfig != nil {
			t.Fatal("config resent after status report")
		}
	}
	a, _ := f.svc.Agent(f.ctx, prod)
	if a.RemoteConfigStatus == nil || a.RemoteConfigStatus.Status != steward.RemoteConfigApplied {
		t.Fatalf("status %+v", a.RemoteConfigStatus)
	}
	// Reconnect reporting the applied hash: nothing to send.
	cp.Close()
	cp2 := f.connect(server.WebSocket)
	m := fullReport(prod, 5, "prod")
	m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.ConfigHash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	if r := f.send(cp2, m); r != nil && r.RemoteConfig != nil {
		t.Fatal("config resent to an agent that runs it")
	}
	// A new version is pushed; a FAILED report is recorded and not retried.
	v2, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("receivers: {bad}\n")})
	if v2.Version != 2 {
		t.Fatalf("version %d", v2.Version)
	}
	p2 := cp2.pushed()
	if len(p2) != 1 || bytes.Equal(p2[0].RemoteConfig.ConfigHash, rc.ConfigHash) {
		t.Fatalf("want the new version pushed, got %v", p2)
	}
	m = heartbeat(prod, 6)
	m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: p2[0].RemoteConfig.ConfigHash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, ErrorMessage: "invalid configuration"}
	if r := f.send(cp2, m); r != nil && r.RemoteConfig != nil {
		t.Fatal("failed config offered again")
	}
	a, _ = f.svc.Agent(f.ctx, prod)
	if a.RemoteConfigStatus.Status != steward.RemoteConfigFailed || a.RemoteConfigStatus.ErrorMessage != "invalid configuration" {
		t.Fatalf("status %+v", a.RemoteConfigStatus)
	}
	// Unassigning offers an empty config.
	if err := f.svc.DeleteAssignment(f.ctx, "prod-base"); err != nil {
		t.Fatal(err)
	}
	p3 := cp2.pushed()
	if len(p3) != 2 || len(p3[1].RemoteConfig.Config.ConfigMap) != 0 || len(p3[1].RemoteConfig.ConfigHash) == 0 {
		t.Fatalf("want an empty config offered after unassigning, got %v", p3)
	}
	// Labels: the dev agent joins by label and gets a pinned version 1.
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "canary", ConfigName: "base", Version: 1, Selector: "ring=canary"}); err != nil {
		t.Fatal(err)
	}
	if len(cd.pushed()) != 0 {
		t.Fatal("dev agent matched before labelling")
	}
	if err := f.svc.SetAgentLabels(f.ctx, dev, map[string]string{"ring": "canary"}); err != nil {
		t.Fatal(err)
	}
	pd := cd.pushed()
	if len(pd) != 1 || !bytes.Equal(pd[0].RemoteConfig.ConfigHash, rc.ConfigHash) {
		t.Fatalf("dev agent: want version 1 pushed after labelling, got %v", pd)
	}
	if err := f.svc.SetAgentLabels(f.ctx, dev, map[string]string{"bad key": "x"}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("bad label: %v", err)
	}
	if err := f.svc.DeleteConfig(f.ctx, "base"); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("deleting an assigned config: %v", err)
	}
}

func TestHTTPAgentsGetChangesOnPoll(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	poll := func(m *protobufs.AgentToServer) *protobufs.ServerToAgent {
		r := f.send(f.connect(server.HTTP), m)
		if r == nil {
			t.Fatal("HTTP agents always get a reply")
		}
		return r
	}
	poll(fullReport(uid, 1, "prod"))
	a, _ := f.svc.Agent(f.ctx, uid)
	if !a.Online || a.Transport != "http" {
		t.Fatalf("http agent state %+v", a)
	}
	f.svc.PutConfig(f.ctx, &steward.Config{Name: "c", Files: yamlConfig("a: 1\n")})
	f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "by-id", ConfigName: "c", AgentID: &uid})
	d, err := f.svc.RestartAgent(f.ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != steward.DeliveryQueued || d.Until.IsZero() {
		t.Fatalf("restart of an HTTP agent: delivery %+v, want queued with an expiry", d)
	}
	r := poll(heartbeat(uid, 2))
	if r.RemoteConfig == nil || r.Command == nil || r.Command.Type != protobufs.CommandType_CommandType_Restart {
		t.Fatalf("poll reply lacks config or restart: %v", r)
	}
	r = poll(heartbeat(uid, 3))
	if r.RemoteConfig != nil || r.Command != nil {
		t.Fatalf("delivered twice: %v", r)
	}
	// Custom messages need the declared capability.
	if _, err := f.svc.SendCustomMessage(f.ctx, uid, steward.CustomMessage{Capability: "io.x.ping", Type: "ping"}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("undeclared capability: %v", err)
	}
	m := heartbeat(uid, 4)
	m.CustomCapabilities = &protobufs.CustomCapabilities{Capabilities: []string{"io.x.ping"}}
	poll(m)
	if _, err := f.svc.SendCustomMessage(f.ctx, uid, steward.CustomMessage{Capability: "io.x.ping", Type: "ping", Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	r = poll(heartbeat(uid, 5))
	if r.CustomMessage == nil || string(r.CustomMessage.Data) != "hi" {
		t.Fatalf("custom message not delivered: %v", r)
	}
	// Unknown agents: ENOTFOUND; known but not connected: EUNAVAILABLE.
	if _, err := f.svc.RestartAgent(f.ctx, steward.NewInstanceUID()); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("restart unknown: %v", err)
	}
}

func TestInstanceUIDAssignment(t *testing.T) {
	f := newFixture(t)
	c := f.connect(server.WebSocket)
	m := fullReport(steward.InstanceUID{}, 1, "prod")
	m.InstanceUid = nil
	r := f.send(c, m)
	if r == nil || r.AgentIdentification == nil || len(r.AgentIdentification.NewInstanceUid) != 16 {
		t.Fatalf("want a new instance uid, got %v", r)
	}
	newID, _ := steward.InstanceUIDFromBytes(r.AgentIdentification.NewInstanceUid)
	if _, err := f.svc.Agent(f.ctx, newID); err != nil {
		t.Fatalf("agent not stored under its new uid: %v", err)
	}
	// The agent switches to it on the same connection.
	f.send(c, heartbeat(newID, 2))
	// The flag also requests one.
	old := steward.NewInstanceUID()
	m = fullReport(old, 1, "prod")
	m.Flags = uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid)
	r = f.send(f.connect(server.WebSocket), m)
	if r == nil || r.AgentIdentification == nil || bytes.Equal(r.AgentIdentification.NewInstanceUid, old[:]) {
		t.Fatalf("RequestInstanceUid not honoured: %v", r)
	}
	// A uid of the wrong length is refused with EINVALID.
	_, err := f.svc.OnMessage(f.ctx, f.connect(server.WebSocket), &protobufs.AgentToServer{InstanceUid: []byte("short")})
	if steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("short uid: %v", err)
	}
}

// flakyStore fails writes while down is set, like a database that went away.
type flakyStore struct {
	steward.Store
	mu         sync.Mutex
	down       bool
	writesDown bool // only writes fail (a full disk, a lock held too long)
}

func (s *flakyStore) setDown(v bool) { s.mu.Lock(); s.down = v; s.mu.Unlock() }
func (s *flakyStore) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return steward.Errorf(steward.EUNAVAILABLE, "database unreachable")
	}
	return nil
}
func (s *flakyStore) PutAgent(ctx context.Context, a *steward.Agent) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.PutAgent(ctx, a)
}
func (s *flakyStore) PutAgents(ctx context.Context, as []*steward.Agent) error {
	s.mu.Lock()
	down := s.writesDown
	s.mu.Unlock()
	if down {
		return steward.Errorf(steward.EUNAVAILABLE, "database cannot write")
	}
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.PutAgents(ctx, as)
}
func (s *flakyStore) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Agent(ctx, id)
}

func TestDatabaseOutageLosesNothing(t *testing.T) {
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{Store: st}
	f := newFixtureWith(t, fs)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, fullReport(uid, 1, "prod"))
	eventually(t, "the report stored", func() bool { _, err := st.Agent(f.ctx, uid); return err == nil })

	// While the database cannot write, a change is taken (group commit),
	// shown at once, and written once the database is back.
	fs.mu.Lock()
	fs.writesDown = true
	fs.mu.Unlock()
	m := heartbeat(uid, 2)
	m.Health = &protobufs.ComponentHealth{Healthy: false, LastError: "exporter failing"}
	if _, err := f.svc.OnMessage(f.ctx, c, m); err != nil {
		t.Fatalf("a report while the database is down: %v", err)
	}
	if a, err := f.svc.Agent(f.ctx, uid); err != nil || a.Healthy() || a.Health.LastError != "exporter failing" {
		t.Fatalf("live state while the database is down: %+v (%v)", a, err)
	}
	time.Sleep(300 * time.Millisecond) // a few failed group commits
	if a, _ := st.Agent(f.ctx, uid); !a.Healthy() {
		t.Fatalf("stored while the database was down")
	}
	fs.mu.Lock()
	fs.writesDown = false
	fs.mu.Unlock()
	eventually(t, "the change stored after the outage", func() bool {
		a, err := st.Agent(f.ctx, uid)
		return err == nil && !a.Healthy() && a.Health.LastError == "exporter failing"
	})

	// A report that needs a read the database cannot answer fails, and
	// the next message is answered with a request for the full state.
	// (The batch that stored the change lets go of its pending state
	// right after its commit, which the loop above may have seen first.)
	time.Sleep(100 * time.Millisecond)
	fs.setDown(true)
	m = heartbeat(uid, 3)
	m.Health = &protobufs.ComponentHealth{Healthy: true}
	if _, err = f.svc.OnMessage(f.ctx, c, m); steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Fatalf("want EUNAVAILABLE while the database is down, got %v", err)
	}
	fs.setDown(false)
	r := f.send(c, heartbeat(uid, 4))
	if r == nil || r.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) == 0 {
		t.Fatalf("want ReportFullState after an outage, got %v", r)
	}
	full := fullReport(uid, 5, "prod")
	full.Health = m.Health
	f.send(c, full)
	if a, _ := f.svc.Agent(f.ctx, uid); !a.Healthy() {
		t.Fatalf("health after recovery %+v", a.Health)
	}
}

func TestSelectorAssignmentsMergeByPriority(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, fullReport(uid, 1, "prod"))
	f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("b: 1\n")})
	f.svc.PutConfig(f.ctx, &steward.Config{Name: "extra", Files: steward.ConfigMap{"x.yaml": {Body: []byte("x: 1\n")}, "y.yaml": {Body: []byte("y: 1\n")}}})
	f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "a1", ConfigName: "base", Selector: "service.name=otelcol"})
	f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "a2", ConfigName: "extra", Selector: "env in (prod,staging)", Priority: 10})
	files, _, err := f.svc.DesiredConfig(f.ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"base", "extra/x.yaml", "extra/y.yaml"} {
		if _, ok := files[k]; !ok {
			t.Fatalf("desired config lacks %q: %v", k, files)
		}
	}
	if len(files) != 3 {
		t.Fatalf("desired files %v", files)
	}
}

// One live connection speaks for a uid: a clone claiming it — from the
// same host or another — is given a uid of its own and the first
// connection is left alone; a connection silent for longer than the
// liveness window (1.5 heartbeat intervals) is taken for dead and replaced.
func TestDuplicateInstanceUID(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", FlushInterval: 50 * time.Millisecond,
		HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	f := &fixture{t: t, ctx: ctx, store: st, svc: svc}

	uid := steward.NewInstanceUID()
	first := f.connect(server.WebSocket)
	f.send(first, fullReport(uid, 1, "prod"))
	for i, addr := range []string{"127.0.0.2:6000", "127.0.0.1:6001"} {
		// The original is heard from just before each clone arrives, so it
		// is live (heard within 1.5 heartbeats) however slow the machine.
		f.send(first, heartbeat(uid, uint64(2+i)))
		clone := f.connect(server.WebSocket)
		clone.addr = addr
		r := f.send(clone, fullReport(uid, 1, "prod"))
		if r.AgentIdentification == nil || bytes.Equal(r.AgentIdentification.NewInstanceUid, uid[:]) {
			t.Fatalf("clone from %s: want a new uid, got %v", addr, r)
		}
		if first.isClosed() {
			t.Fatal("the original connection was closed")
		}
		newID, _ := steward.InstanceUIDFromBytes(r.AgentIdentification.NewInstanceUid)
		// The clone speaks for its new uid from now on.
		if r := f.send(clone, heartbeat(newID, 2)); r.AgentIdentification != nil || r.ErrorResponse != nil {
			t.Fatalf("clone's next message under its new uid: %v", r)
		}
		for _, id := range []steward.InstanceUID{uid, newID} {
			a, err := f.svc.Agent(f.ctx, id)
			if err != nil || !a.Online {
				t.Fatalf("agent %s: %+v %v", id, a, err)
			}
		}
	}
	// The first connection goes silent (a peer gone without closing): past
	// the liveness window a reconnect takes over the uid.
	time.Sleep(1600 * time.Millisecond)
	again := f.connect(server.WebSocket)
	r := f.send(again, fullReport(uid, 4, "prod"))
	if r.AgentIdentification != nil {
		t.Fatalf("reconnect after the old connection went silent got a new uid: %v", r)
	}
	eventually(t, "the replaced connection to close", first.isClosed)
	a, _ := f.svc.Agent(f.ctx, uid)
	if !a.Online {
		t.Fatal("agent offline after its replaced connection closed")
	}
}

// A WebSocket agent is closed as silent after three heartbeat intervals
// with nothing from it — but not while its heartbeats arrive and wait
// unread because the server is too busy to read them (closing it then only
// adds its reconnect to the load).
func TestExpireSparesAgentWhoseMessagesArriveUnread(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", FlushInterval: 20 * time.Millisecond,
		HeartbeatInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	f := &fixture{t: t, ctx: ctx, store: st, svc: svc}

	arriving := f.connect(server.WebSocket)
	arriving.received = time.Now // bytes keep arriving; none is handled
	f.send(arriving, fullReport(steward.NewInstanceUID(), 1, "prod"))
	quiet := f.connect(server.WebSocket)
	f.send(quiet, fullReport(steward.NewInstanceUID(), 1, "prod"))

	eventually(t, "the silent agent to be closed", quiet.isClosed)
	time.Sleep(100 * time.Millisecond) // several more expiry rounds
	if arriving.isClosed() {
		t.Fatal("an agent whose messages arrive but wait unread was closed as silent")
	}
}

// Connections the transport closes after Close (its shutdown ran out of
// time, the store is closed next) log nothing: Close has marked every agent
// of the replica offline already.
func TestConnectionsClosedAfterCloseAreQuietAndOffline(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	log, logged := warnings()
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, store: st, svc: svc}
	var conns []*testConn
	var uids []steward.InstanceUID
	for range 3 {
		uid := steward.NewInstanceUID()
		c := f.connect(server.WebSocket)
		f.send(c, fullReport(uid, 1, "prod"))
		conns, uids = append(conns, c), append(uids, uid)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	for _, uid := range uids {
		if a, err := st.Agent(ctx, uid); err != nil || a.Online {
			t.Fatalf("agent %s after Close: %+v %v", uid, a, err)
		}
	}
	st.Close()
	for _, c := range conns {
		c.Close() // OnClose, as the transport calls it
	}
	if w := logged(); w != "" {
		t.Fatalf("closing connections after Close logged:\n%s", w)
	}
}

// warnings returns a logger of warnings and errors, and a function that
// returns what it logged so far.
func warnings() (*slog.Logger, func() string) {
	var logged bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return log, func() string {
		mu.Lock()
		defer mu.Unlock()
		return logged.String()
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestHTTPAgentDisconnectGoesOfflineAtOnce(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	f.send(f.connect(server.HTTP), fullReport(uid, 1, "prod"))
	m := heartbeat(uid, 2)
	m.AgentDisconnect = &protobufs.AgentDisconnect{}
	if r := f.send(f.connect(server.HTTP), m); r == nil {
		t.Fatal("an HTTP request always gets a reply")
	}
	eventually(t, "agent offline after agent_disconnect", func() bool {
		a, err := f.svc.Agent(f.ctx, uid)
		return err == nil && !a.Online
	})
}

// A replica whose lease lapsed while it was alive (its renewals too late
// under load) is reaped by another replica, which marks its agents offline.
// On its next renewal it finds its lease gone and marks the agents still
// connected to it online again, idle ones included.
func TestReapedReplicaMarksItsAgentsOnlineAgain(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, fullReport(uid, 0, "prod"))
	stored := func() bool {
		a, err := f.store.Agent(f.ctx, uid)
		return err == nil && a.Online && a.Replica == "r1"
	}
	eventually(t, "the agent stored online", stored)

	// Another replica reaps r1, as it does when r1's lease has lapsed.
	dead, err := f.store.(steward.ReplicaStore).ReapReplicas(f.ctx, time.Now().Add(time.Hour))
	if err != nil || len(dead) != 1 || dead[0] != "r1" {
		t.Fatalf("reap: %v, %v", dead, err)
	}
	if stored() {
		t.Fatal("the reaped replica's agent is still stored online")
	}
	eventually(t, "the idle agent stored online again", stored)
}

// slowLease is a store whose lease renewals, after the first, wait until
// their context ends (a store under load when the replica shuts down).
type slowLease struct {
	steward.Store
	calls atomic.Int32
}

func (s *slowLease) ReplicaAlive(ctx context.Context, replica string, at time.Time) (bool, error) {
	if s.calls.Add(1) > 1 {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return s.Store.(steward.ReplicaStore).ReplicaAlive(ctx, replica, at)
}

func (s *slowLease) ReapReplicas(ctx context.Context, before time.Time) ([]string, error) {
	return s.Store.(steward.ReplicaStore).ReapReplicas(ctx, before)
}

// A lease renewal that Close cuts short is not a failure to warn about:
// every shutdown of a replica on a busy database logged one.
func TestCloseDuringLeaseRenewalIsQuiet(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, logged := warnings()
	slow := &slowLease{Store: st}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: slow, Replica: "r1", Logger: log, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a renewal to be under way", func() bool { return slow.calls.Load() > 1 })
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if w := logged(); w != "" {
		t.Fatalf("Close during a lease renewal logged:\n%s", w)
	}
}
