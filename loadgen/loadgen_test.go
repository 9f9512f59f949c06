package loadgen_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	opampgoserver "github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/loadgen"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/opamp/websocket"
	"github.com/stewardhq/steward/store/sqlite"
)

// stack is a real Steward server on 127.0.0.1: SQLite, control plane and
// the OpAMP transport behind an http.Server.
type stack struct {
	store *sqlite.DB
	cp    *controlplane.Service
	tr    *server.Server
	hs    *http.Server
	addr  string
	done  chan struct{}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startStack serves on addr ("127.0.0.1:0" for a fresh port) with the
// database at db.
func startStack(t *testing.T, db, addr string) *stack {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "test", Logger: quiet})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	tr, err := server.New(server.Config{Handler: cp, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	// The port of a stopped server may take a moment to be free again.
	if err := eventually(10*time.Second, func() error {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(opamp.DefaultPath, tr)
	s := &stack{store: st, cp: cp, tr: tr, hs: &http.Server{Handler: mux}, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = s.hs.Serve(ln)
	}()
	return s
}

// stop shuts the server down as `steward server` does on SIGTERM.
func (s *stack) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.hs.Shutdown(ctx)
	if err := s.tr.Shutdown(ctx); err != nil {
		t.Errorf("transport shutdown: %v", err)
	}
	<-s.done
	if err := s.cp.Close(); err != nil {
		t.Errorf("control plane close: %v", err)
	}
	if err := s.store.Close(); err != nil {
		t.Errorf("store close: %v", err)
	}
}

// eventually polls f until it succeeds or the timeout passes, returning the
// last error then.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inventory checks, on the server, that every agent of g is known, online
// and described.
func inventory(ctx context.Context, cp *controlplane.Service, g *loadgen.Generator) error {
	agents, total, err := cp.Agents(ctx, steward.AgentFilter{})
	if err != nil {
		return err
	}
	byID := make(map[steward.InstanceUID]*steward.Agent, total)
	for _, a := range agents {
		byID[a.ID] = a
	}
	for i, uid := range g.InstanceUIDs() {
		a := byID[steward.InstanceUID(uid)]
		switch {
		case a == nil:
			return fmt.Errorf("agent %d (%s) unknown to the server", i, steward.InstanceUID(uid))
		case !a.Online:
			return fmt.Errorf("agent %d offline", i)
		case a.Attribute("env") != g.Env(i) || a.Attribute(steward.AttrServiceName) != "io.opentelemetry.collector":
			return fmt.Errorf("agent %d: description not reported: %+v", i, a.Description)
		case !a.Capabilities.Has(steward.AgentAcceptsRemoteConfig | steward.AgentReportsHeartbeat):
			return fmt.Errorf("agent %d: capabilities %v", i, a.Capabilities.Names())
		}
	}
	if total != len(byID) || total != len(g.InstanceUIDs()) {
		return fmt.Errorf("server knows %d agents, want %d", total, len(g.InstanceUIDs()))
	}
	return nil
}

// rollout assigns a config holding marker to the agents with env=prod and
// waits until the load generator saw all of them report it APPLIED; it then
// checks the server's view: every prod agent APPLIED with the desired hash,
// and no other agent given the config.
func rollout(t *testing.T, ctx context.Context, s *stack, g *loadgen.Generator, n int, marker string) {
	t.Helper()
	r := g.TrackRollout([]byte(marker))
	body := "receivers:\n  otlp: {}\n# rollout " + marker + "\n"
	if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "collector", Files: steward.ConfigMap{"": {Body: []byte(body), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "collector", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := r.Wait(wctx, n, time.Time{}); err != nil {
		t.Fatal(err)
	}
	err := eventually(30*time.Second, func() error {
		agents, _, err := s.cp.Agents(ctx, steward.AgentFilter{})
		if err != nil {
			return err
		}
		applied := 0
		for _, a := range agents {
			want, hash, err := s.cp.DesiredConfig(ctx, a.ID)
			if err != nil {
				return err
			}
			rs := a.RemoteConfigStatus
			isProd := a.Attribute("env") == "prod"
			if isProd != (len(want) > 0) {
				return fmt.Errorf("agent %s (env %s): desired config %v", a.ID, a.Attribute("env"), want)
			}
			if !isProd {
				continue
			}
			if rs == nil || rs.Status != steward.RemoteConfigApplied || !bytes.Equal(rs.LastRemoteConfigHash, hash) {
				return fmt.Errorf("agent %s: remote config status %+v, want APPLIED %x", a.ID, rs, hash)
			}
			if a.EffectiveConfig == nil || !bytes.Contains((*a.EffectiveConfig)["collector"].Body, []byte(marker)) {
				return fmt.Errorf("agent %s: effective config %v lacks the rollout", a.ID, a.EffectiveConfig)
			}
			applied++
		}
		if applied != n {
			return fmt.Errorf("server: %d agents APPLIED, want %d", applied, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Applied() != n {
		t.Fatalf("loadgen counted %d APPLIED, want exactly %d", r.Applied(), n)
	}
}

func prodCount(g *loadgen.Generator, n int) int {
	c := 0
	for i := range n {
		if g.Env(i) == "prod" {
			c++
		}
	}
	return c
}

func TestWebSocketFleet(t *testing.T) {
	const n = 200
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "steward.db")
	s := startStack(t, db, "127.0.0.1:0")
	g := startGenerator(t, ctx, loadgen.Config{
		URL:               "ws://" + s.addr + opamp.DefaultPath,
		Agents:            n,
		HeartbeatInterval: 300 * time.Millisecond,
		BackoffMin:        50 * time.Millisecond,
		BackoffMax:        time.Second,
		Logger:            quiet,
	})
	defer g.Close()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := g.WaitConnected(wctx, n); err != nil {
		t.Fatalf("connected %d of %d: %v", g.Stats().Connected, n, err)
	}
	if err := eventually(30*time.Second, func() error { return inventory(ctx, s.cp, g) }); err != nil {
		t.Fatal(err)
	}

	// Heartbeats flow: every agent keeps sending and the server answers.
	before := g.Stats()
	if err := eventually(30*time.Second, func() error {
		if now := g.Stats(); now.Sent < before.Sent+2*n || now.Received < before.Received+2*n {
			return fmt.Errorf("sent %d received %d since, want >= %d", now.Sent-before.Sent, now.Received-before.Received, 2*n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	prod := prodCount(g, n)
	rollout(t, ctx, s, g, prod, "v1-"+steward.NewInstanceUID().String())
	// A second change reaches the same agents again.
	rollout(t, ctx, s, g, prod, "v2-"+steward.NewInstanceUID().String())

	// Restart the server on the same address and database: every agent
	// comes back and the inventory is complete.
	disc := g.Stats().Disconnects
	s.stop(t)
	if err := eventually(30*time.Second, func() error {
		if got := g.Stats().Disconnects - disc; got < n {
			return fmt.Errorf("%d of %d agents noticed the server going away", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s = startStack(t, db, s.addr)
	defer s.stop(t)
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	if err := g.WaitConnected(rctx, n); err != nil {
		t.Fatalf("after restart connected %d of %d: %v", g.Stats().Connected, n, err)
	}
	if err := eventually(30*time.Second, func() error { return inventory(ctx, s.cp, g) }); err != nil {
		t.Fatal(err)
	}
	rollout(t, ctx, s, g, prod, "v3-"+steward.NewInstanceUID().String())
	if st := g.Stats(); st.Malformed != 0 || st.ServerErrors != 0 {
		t.Fatalf("stats %+v: want no malformed messages or server errors", st)
	}
}

func TestHTTPFleet(t *testing.T) {
	const n = 60
	ctx := context.Background()
	s := startStack(t, filepath.Join(t.TempDir(), "steward.db"), "127.0.0.1:0")
	defer s.stop(t)
	g := startGenerator(t, ctx, loadgen.Config{
		URL:               "http://" + s.addr + opamp.DefaultPath,
		Agents:            n,
		HeartbeatInterval: 200 * time.Millisecond,
		Workers:           8,
		Logger:            quiet,
	})
	defer g.Close()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := g.WaitConnected(wctx, n); err != nil {
		t.Fatalf("polled %d of %d: %v", g.Stats().Connected, n, err)
	}
	if err := eventually(30*time.Second, func() error { return inventory(ctx, s.cp, g) }); err != nil {
		t.Fatal(err)
	}
	rollout(t, ctx, s, g, prodCount(g, n), "http-"+steward.NewInstanceUID().String())
	if st := g.Stats(); st.Malformed != 0 || st.ServerErrors != 0 || st.ConnectErrors != 0 {
		t.Fatalf("stats %+v: want no errors", st)
	}
}

// TestFailoverToNextEndpoint: agents given two replicas' endpoints spread
// over both, and when one replica goes away its agents connect to the
// other (as behind a load balancer), so the whole fleet is connected again.
func TestFailoverToNextEndpoint(t *testing.T) {
	const n = 60
	ctx := context.Background()
	a := startStack(t, filepath.Join(t.TempDir(), "a.db"), "127.0.0.1:0")
	b := startStack(t, filepath.Join(t.TempDir(), "b.db"), "127.0.0.1:0")
	defer b.stop(t)
	g := startGenerator(t, ctx, loadgen.Config{
		URLs:            []string{"ws://" + a.addr + opamp.DefaultPath, "ws://" + b.addr + opamp.DefaultPath},
		Agents:          n,
		BackoffMin:      20 * time.Millisecond,
		BackoffMax:      200 * time.Millisecond,
		ReconnectJitter: 100 * time.Millisecond,
		Logger:          quiet,
	})
	defer g.Close()
	conns := func(want map[*stack]int64) error {
		for s, w := range want {
			if got := s.tr.Stats().Connections; got != w {
				return fmt.Errorf("server %s holds %d connections, want %d", s.addr, got, w)
			}
		}
		return nil
	}
	if err := eventually(30*time.Second, func() error { return conns(map[*stack]int64{a: n / 2, b: n / 2}) }); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	if err := eventually(30*time.Second, func() error {
		if c := g.Stats().Connected; c != n {
			return fmt.Errorf("%d of %d agents connected", c, n)
		}
		return conns(map[*stack]int64{b: n})
	}); err != nil {
		t.Fatal(err)
	}
	if err := eventually(30*time.Second, func() error { return inventory(ctx, b.cp, g) }); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedHandshakeBacksOff(t *testing.T) {
	url := serveOpAMP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	g := startGenerator(t, context.Background(), loadgen.Config{URL: url, Agents: 3, Dialers: 1,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Logger: quiet})
	defer g.Close()
	// Agents keep retrying (with backoff) and never count as connected.
	if err := eventually(30*time.Second, func() error {
		if st := g.Stats(); st.ConnectErrors < 9 {
			return fmt.Errorf("%d connect errors so far", st.ConnectErrors)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.Connected != 0 || st.Connects != 0 {
		t.Fatalf("stats %+v: a refused agent counted as connected", st)
	}
}

func TestNewValidates(t *testing.T) {
	for _, c := range []loadgen.Config{
		{URL: "ws://127.0.0.1:1/v1/opamp"},
		{URL: "ftp://127.0.0.1/x", Agents: 1},
		{URL: "ws:///nohost", Agents: 1},
		{URL: "://", Agents: 1},
		{URLs: []string{"ws://127.0.0.1:1", "http://127.0.0.1:2"}, Agents: 1},
	} {
		if _, err := loadgen.New(c); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", c)
		}
	}
	g, err := loadgen.New(loadgen.Config{URL: "ws://127.0.0.1:1", Agents: 5})
	if err != nil {
		t.Fatal(err)
	}
	uids := g.InstanceUIDs()
	seen := map[[16]byte]bool{}
	for _, u := range uids {
		if u[6]>>4 != 7 || seen[u] {
			t.Fatalf("instance uid %x: want distinct UUID v7", u)
		}
		seen[u] = true
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// A server that closes an agent's connection and one that sends what the
// agent cannot parse are told apart: only the second counts as Dropped.
func TestDisconnectsByAgentAreCounted(t *testing.T) {
	var conns atomic.Int32
	url := serveOpAMP(t, func(w http.ResponseWriter, r *http.Request) {
		nc, _, err := websocket.Hijack(w, r, nil)
		if err != nil {
			return
		}
		if conns.Add(1) == 1 {
			nc.Close() // the server goes away: not the agent's doing
			return
		}
		nc.Write([]byte{0x8f, 0x00}) // FIN, reserved opcode 15: a protocol error
		time.Sleep(time.Second)
		nc.Close()
	})
	g := startGenerator(t, context.Background(), loadgen.Config{URL: url, Agents: 1, Dialers: 1,
		ReconnectJitter: time.Millisecond, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond, Logger: quiet})
	defer g.Close()
	if err := eventually(30*time.Second, func() error {
		if st := g.Stats(); st.Dropped < 1 || st.Disconnects < 2 {
			return fmt.Errorf("stats %+v: want the first disconnect the server's, the second the agent's", st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.Dropped >= st.Disconnects {
		t.Fatalf("stats %+v: the server's close counted as the agent's", st)
	}
}

// serveOpAMP serves h on the OpAMP path of a new local server, closed with
// the test, and returns its WebSocket URL.
func serveOpAMP(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc(opamp.DefaultPath, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "ws://" + ln.Addr().String() + opamp.DefaultPath
}

// startGenerator creates a generator with cfg and starts it; the caller
// closes it.
func startGenerator(t *testing.T, ctx context.Context, cfg loadgen.Config) *loadgen.Generator {
	t.Helper()
	g, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestAvailableComponents: with Components, agents report only the hash of
// their components on connect, Steward asks for the list
// (ReportAvailableComponents) and stores it: every agent ends with all N
// components, each having sent its list exactly once. Without Components
// nothing is reported and the capability is not claimed.
func TestAvailableComponents(t *testing.T) {
	for _, c := range []struct {
		name       string
		scheme     string
		components int
	}{
		{"websocket contrib", "ws", 225},
		{"http contrib", "http", 225},
		{"websocket few", "ws", 7},
		{"websocket none", "ws", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 40
			ctx := context.Background()
			s := startStack(t, filepath.Join(t.TempDir(), "steward.db"), "127.0.0.1:0")
			defer s.stop(t)
			g := startGenerator(t, ctx, loadgen.Config{
				URL:               c.scheme + "://" + s.addr + opamp.DefaultPath,
				Agents:            n,
				HeartbeatInterval: 200 * time.Millisecond,
				Workers:           4,
				Components:        c.components,
				Logger:            quiet,
			})
			defer g.Close()
			if err := eventually(30*time.Second, func() error { return inventory(ctx, s.cp, g) }); err != nil {
				t.Fatal(err)
			}
			if err := eventually(30*time.Second, func() error { return storedComponents(ctx, s.store, g, c.components) }); err != nil {
				t.Fatal(err)
			}
			want := uint64(n)
			if c.components == 0 {
				want = 0
			}
			if st := g.Stats(); st.ComponentLists != want || st.ServerErrors != 0 || st.FullStates != 0 {
				t.Fatalf("stats %+v: want %d component lists sent (one per agent, on request), no errors", st, want)
			}
		})
	}
}

// storedComponents checks that the store holds, for every agent of g, the
// capability and want available components (kind -> component) under one
// 32-byte hash; for want 0, neither.
func storedComponents(ctx context.Context, st steward.Store, g *loadgen.Generator, want int) error {
	var hash steward.Hash
	for i, uid := range g.InstanceUIDs() {
		a, err := st.Agent(ctx, steward.InstanceUID(uid))
		if err != nil {
			return fmt.Errorf("agent %d: %w", i, err)
		}
		ac, claims := a.AvailableComponents, a.Capabilities.Has(steward.AgentReportsAvailableComponents)
		if want == 0 {
			if ac != nil || claims {
				return fmt.Errorf("agent %d: components %v, capability %v: want none", i, ac, claims)
			}
			continue
		}
		if !claims || ac == nil || len(ac.Hash) != 32 || hash != nil && !bytes.Equal(hash, ac.Hash) {
			return fmt.Errorf("agent %d: capability %v, components %+v: want a 32-byte hash shared by all", i, claims, ac)
		}
		hash = ac.Hash
		if got := leafComponents(ac); got != want || len(ac.Components) != 5 {
			return fmt.Errorf("agent %d: %d components in %d kinds, want %d in 5", i, got, len(ac.Components), want)
		}
	}
	return nil
}

// leafComponents counts the components under the kinds of d.
func leafComponents(d *steward.ComponentDetails) int {
	n := 0
	for _, kind := range d.Components {
		for _, c := range kind.Components {
			if len(c.Metadata) == 1 && c.Metadata[0].Key == "code.namespace" {
				n++
			}
		}
	}
	return n
}

// An OpAMP server that never sets ReportAvailableComponents (opamp-go's
// server sets no flags by itself) gets the hash in every agent's first
// report and never the list.
func TestComponentsListOnlyOnRequest(t *testing.T) {
	const n = 10
	var firsts, lists, msgs atomic.Int64
	srv := opampgoserver.New(nil)
	h, _, err := srv.Attach(opampgoserver.Settings{Callbacks: types.Callbacks{
		OnConnecting: func(*http.Request) types.ConnectionResponse {
			return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
				OnMessage: func(_ context.Context, _ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
					msgs.Add(1)
					if ac := m.AvailableComponents; ac != nil && len(ac.Hash) == 32 && m.AgentDescription != nil {
						firsts.Add(1)
					}
					if len(m.AvailableComponents.GetComponents()) > 0 {
						lists.Add(1)
					}
					return &protobufs.ServerToAgent{InstanceUid: m.InstanceUid}
				},
			}}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	g := startGenerator(t, context.Background(), loadgen.Config{URL: serveOpAMP(t, http.HandlerFunc(h)), Agents: n,
		HeartbeatInterval: 100 * time.Millisecond, Components: 225, Logger: quiet})
	defer g.Close()
	if err := eventually(30*time.Second, func() error {
		if firsts.Load() < n || msgs.Load() < 5*n {
			return fmt.Errorf("%d first reports with the hash, %d messages", firsts.Load(), msgs.Load())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if lists.Load() != 0 || g.Stats().ComponentLists != 0 {
		t.Fatalf("%d component lists received (%d sent) though none was asked for", lists.Load(), g.Stats().ComponentLists)
	}
}
