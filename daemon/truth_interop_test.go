package daemon_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	opampclient "github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/daemon"
)

// startServerWith runs `steward server` with o — loopback listeners on
// random ports, no admin password and replica "test" unless o says
// otherwise — and waits until it listens.
func startServerWith(t *testing.T, o daemon.Options) *server {
	t.Helper()
	if o.OpAMPAddr == "" {
		o.OpAMPAddr = "127.0.0.1:0"
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:0"
	}
	if o.AdminPassword == "" {
		o.AdminPassword = "-"
	}
	if o.Replica == "" {
		o.Replica = "test"
	}
	scheme := "http://"
	if o.HTTPTLSCertFile != "" {
		scheme = "https://"
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]net.Addr, 1)
	s := &server{cancel: cancel, done: make(chan error, 1)}
	o.Ready = func(op, h net.Addr) { ready <- [2]net.Addr{op, h} }
	go func() { s.done <- daemon.Run(ctx, o) }()
	select {
	case a := <-ready:
		s.opamp, s.api = a[0].String(), scheme+a[1].String()
	case err := <-s.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start in time")
	}
	t.Cleanup(s.stop)
	return s
}

// settingsAgent is an opamp-go client that takes connection settings: own
// metrics and OpAMP settings, like the upstream opampsupervisor (which does
// not report ConnectionSettingsStatus), or with that status when reports is
// set. It records every offer it receives.
type settingsAgent struct {
	client opampclient.OpAMPClient
	mu     sync.Mutex
	opamp  []*protobufs.OpAMPConnectionSettings
	own    []*protobufs.TelemetryConnectionSettings
}

func startSettingsAgent(t *testing.T, url string, uid types.InstanceUid, reports bool) *settingsAgent {
	t.Helper()
	a := &settingsAgent{}
	ws := url[:2] == "ws"
	if ws {
		a.client = opampclient.NewWebSocket(nil)
	} else {
		hc := opampclient.NewHTTP(nil)
		hc.SetPollingInterval(100 * time.Millisecond)
		a.client = hc
	}
	if err := a.client.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{Key: "service.name",
		Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "io.opentelemetry.collector"}}}}}); err != nil {
		t.Fatal(err)
	}
	caps := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings
	if ws {
		// Over HTTP the offered heartbeat would become the polling interval.
		caps |= protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat
	}
	if reports {
		caps |= protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus
	}
	err := a.client.Start(context.Background(), types.StartSettings{
		OpAMPServerURL: url, InstanceUid: uid, Capabilities: caps,
		Callbacks: types.Callbacks{
			OnOpampConnectionSettings: func(_ context.Context, s *protobufs.OpAMPConnectionSettings) error {
				a.mu.Lock()
				defer a.mu.Unlock()
				a.opamp = append(a.opamp, s)
				return nil
			},
			OnMessage: func(_ context.Context, m *types.MessageData) {
				if m.OwnMetricsConnSettings != nil {
					a.mu.Lock()
					a.own = append(a.own, m.OwnMetricsConnSettings)
					a.mu.Unlock()
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.stop() })
	return a
}

func (a *settingsAgent) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.client.Stop(ctx)
}

// offers returns how many OpAMP and own-metrics offers arrived, and the
// last OpAMP one.
func (a *settingsAgent) offers() (opamp, own int, last *protobufs.OpAMPConnectionSettings) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.opamp) > 0 {
		last = a.opamp[len(a.opamp)-1]
	}
	return len(a.opamp), len(a.own), last
}

func putHeartbeatAndMetrics(t *testing.T, srv *server) {
	t.Helper()
	srv.call(t, "PUT", "/api/v1/connection-settings/all", map[string]any{"name": "all", "selector": "",
		"heartbeat_interval_seconds": 5, "own_metrics": map[string]any{"endpoint": "http://127.0.0.1:4318/v1/metrics"}}, &steward.ConnectionSettings{})
}

// Finding 1 of issue 12: OpAMPConnectionSettings offers carried an empty
// destination_endpoint, which the spec forbids and the upstream supervisor
// refuses ("server::endpoint must be specified"). It is now the URL the
// agent connected to, on both transports, or --opamp-public-url.
func TestOpAMPSettingsOfferCarriesDestinationEndpoint(t *testing.T) {
	srv := startServerWith(t, daemon.Options{DataDir: t.TempDir()})
	putHeartbeatAndMetrics(t, srv)
	for _, url := range []string{"ws://" + srv.opamp + "/v1/opamp", "http://" + srv.opamp + "/v1/opamp"} {
		a := startSettingsAgent(t, url, types.InstanceUid(steward.NewInstanceUID()), false)
		eventually(t, "OpAMP settings offered over "+url, func() bool { n, _, _ := a.offers(); return n > 0 })
		_, _, got := a.offers()
		if got.DestinationEndpoint != url {
			t.Errorf("destination_endpoint = %q, want %q (what the agent connected to)", got.DestinationEndpoint, url)
		}
		if got.HeartbeatIntervalSeconds != 5 {
			t.Errorf("heartbeat_interval_seconds = %d, want 5", got.HeartbeatIntervalSeconds)
		}
	}

	public := "wss://steward.example.com:4320/v1/opamp"
	srv2 := startServerWith(t, daemon.Options{DataDir: t.TempDir(), OpAMPPublicURL: public})
	putHeartbeatAndMetrics(t, srv2)
	a := startSettingsAgent(t, "ws://"+srv2.opamp+"/v1/opamp", types.InstanceUid(steward.NewInstanceUID()), false)
	eventually(t, "OpAMP settings offered", func() bool { n, _, _ := a.offers(); return n > 0 })
	if _, _, got := a.offers(); got.DestinationEndpoint != public {
		t.Errorf("destination_endpoint = %q, want --opamp-public-url %q", got.DestinationEndpoint, public)
	}
}

// Finding 2 of issue 12: connection settings were offered once per server
// process — an agent that reconnected (e.g. restarted without persisting
// them) was not offered them again, while after a server restart it was.
// Now the same rule holds before and after a restart: own telemetry is
// offered on every connection until the agent reports the hash; the OpAMP
// part, which an agent applies by reconnecting, once per value to an agent
// that cannot report it (no reconnect loop).
func TestConnectionSettingsOfferedOnEveryConnectionAlsoAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServerWith(t, daemon.Options{DataDir: dir})
	putHeartbeatAndMetrics(t, srv)
	url := "ws://" + srv.opamp + "/v1/opamp"
	uid := types.InstanceUid(steward.NewInstanceUID())

	first := startSettingsAgent(t, url, uid, false)
	eventually(t, "first offer", func() bool { n, own, _ := first.offers(); return n == 1 && own == 1 })
	first.stop()

	// The agent restarts without having kept the settings: a new process,
	// the same instance uid.
	second := startSettingsAgent(t, url, uid, false)
	eventually(t, "own metrics offered again on the new connection", func() bool { _, own, _ := second.offers(); return own == 1 })

	// The same after a server restart (same data, same port).
	srv.stop()
	srv2 := startServerWith(t, daemon.Options{DataDir: dir, OpAMPAddr: srv.opamp})
	eventually(t, "own metrics offered again after the server restart", func() bool { _, own, _ := second.offers(); return own == 2 })
	if n, _, _ := second.offers(); n != 0 {
		t.Fatalf("OpAMP settings offered %d times to an agent that already took them; it would reconnect each time", n)
	}
	_ = srv2

	// An agent that reports ConnectionSettingsStatus is offered them until
	// it reports their hash, then neither on reconnect nor after a restart.
	ruid := types.InstanceUid(steward.NewInstanceUID())
	r1 := startSettingsAgent(t, url, ruid, true)
	eventually(t, "reporting agent offered", func() bool { n, own, _ := r1.offers(); return n == 1 && own == 1 })
	id := steward.InstanceUID(ruid).String()
	eventually(t, "reporting agent's APPLIED stored", func() bool {
		var got steward.Agent
		srv2.call(t, "GET", "/api/v1/agents/"+id, nil, &got)
		return got.ConnectionStatus != nil && got.ConnectionStatus.Status == "APPLIED"
	})
	r1.stop()
	r2 := startSettingsAgent(t, url, ruid, true)
	srv2.stop()
	restarted := time.Now()
	srv3 := startServerWith(t, daemon.Options{DataDir: dir, OpAMPAddr: srv.opamp})
	eventually(t, "reporting agent reconnected to the restarted server", func() bool {
		var got steward.Agent
		srv3.call(t, "GET", "/api/v1/agents/"+id, nil, &got)
		return got.Online && got.ConnectedAt.After(restarted)
	})
	// Its first message is answered right after it is stored; give the
	// answer time to arrive before looking at what it carried.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n, own, _ := r2.offers(); n != 0 || own != 0 {
			t.Fatalf("settings the agent reported APPLIED were offered again (%d OpAMP, %d own metrics)", n, own)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rollbackAgent is an opamp-go client that handles remote config like the
// upstream opampsupervisor with automatic_config_rollback: a config whose
// body contains "bad" fails, is reported FAILED for its hash, and once the
// server has seen that, the agent reports APPLIED for the config it ran
// before.
type rollbackAgent struct {
	client  opampclient.OpAMPClient
	mu      sync.Mutex
	running *protobufs.RemoteConfigStatus
	failed  chan []byte
}

func startRollbackAgent(t *testing.T, url string, uid types.InstanceUid) *rollbackAgent {
	t.Helper()
	a := &rollbackAgent{client: opampclient.NewWebSocket(nil), failed: make(chan []byte, 4)}
	if err := a.client.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{Key: "service.name",
		Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "io.opentelemetry.collector"}}}}}); err != nil {
		t.Fatal(err)
	}
	err := a.client.Start(context.Background(), types.StartSettings{
		OpAMPServerURL: url, InstanceUid: uid,
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig,
		Callbacks: types.Callbacks{
			OnMessage: func(_ context.Context, m *types.MessageData) {
				if m.RemoteConfig == nil {
					return
				}
				body := ""
				for _, f := range m.RemoteConfig.Config.GetConfigMap() {
					body += string(f.Body)
				}
				a.mu.Lock()
				defer a.mu.Unlock()
				if strings.Contains(body, "bad") {
					_ = a.client.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{LastRemoteConfigHash: m.RemoteConfig.ConfigHash,
						Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, ErrorMessage: "'exporters' unknown type: \"bad\""})
					a.failed <- m.RemoteConfig.ConfigHash
					return
				}
				a.running = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: m.RemoteConfig.ConfigHash,
					Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
				_ = a.client.SetRemoteConfigStatus(a.running)
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.client.Stop(ctx)
	})
	return a
}

// rollBack reports APPLIED for the config the agent ran before the failure.
func (a *rollbackAgent) rollBack() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.client.SetRemoteConfigStatus(a.running)
}

func getAgent(t *testing.T, srv *server, id string) steward.Agent {
	t.Helper()
	var got steward.Agent
	srv.call(t, "GET", "/api/v1/agents/"+id, nil, &got)
	return got
}

func syncOf(a steward.Agent) steward.SyncState {
	if a.Sync == nil {
		return ""
	}
	return a.Sync.State
}

// Finding 3 of issue 12: an agent that rolled back showed APPLIED — with
// automatic rollback the upstream supervisor reports FAILED for the new
// hash, then APPLIED for the old one. It is now rolled_back, with what it
// should run (base@2), what it runs (base@1) and the failure, in the API,
// filterable, and the same after a server restart (which offers nothing).
func TestRolledBackAgentShowsRolledBack(t *testing.T) {
	dir := t.TempDir()
	srv := startServerWith(t, daemon.Options{DataDir: dir})
	url := "ws://" + srv.opamp + "/v1/opamp"
	uid := steward.NewInstanceUID()
	a := startRollbackAgent(t, url, types.InstanceUid(uid))
	id := uid.String()
	eventually(t, "agent online", func() bool { return srv.call(t, "GET", "/api/v1/agents/"+id, nil, nil) == 200 })

	good := "receivers:\n  nop:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [nop]\n      exporters: [nop]\n"
	srv.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": good}}}, &steward.Config{})
	srv.call(t, "PUT", "/api/v1/assignments/all", map[string]any{"name": "all", "config": "base", "selector": "service.name"}, &steward.Assignment{})
	eventually(t, "in_sync on base@1", func() bool {
		g := getAgent(t, srv, id)
		return syncOf(g) == steward.SyncInSync && g.Sync.Running != nil && g.Sync.Running.Configs.String() == "base@1"
	})

	srv.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": strings.ReplaceAll(good, "nop]\n", "bad]\n")}}}, &steward.Config{})
	select {
	case <-a.failed:
	case <-time.After(20 * time.Second):
		t.Fatal("the bad config was not offered")
	}
	eventually(t, "failed", func() bool { return syncOf(getAgent(t, srv, id)) == steward.SyncFailed })
	a.rollBack()
	eventually(t, "rolled_back", func() bool { return syncOf(getAgent(t, srv, id)) == steward.SyncRolledBack })

	check := func(srv *server) {
		t.Helper()
		g := getAgent(t, srv, id)
		s := g.Sync
		if s.State != steward.SyncRolledBack || s.Desired == nil || s.Desired.Configs.String() != "base@2" ||
			s.Running == nil || s.Running.Configs.String() != "base@1" || !strings.Contains(s.Error, "unknown type") {
			t.Fatalf("sync = %+v, want rolled_back, desired base@2, running base@1, with the error", s)
		}
		if g.RemoteConfigStatus.Status != steward.RemoteConfigApplied || g.RemoteConfigStatus.LastRemoteConfigHash.String() != s.Running.Hash.String() {
			t.Fatalf("reported %+v, running hash %s", g.RemoteConfigStatus, s.Running.Hash)
		}
		// One hash format: hex in the API.
		var raw map[string]any
		srv.call(t, "GET", "/api/v1/agents/"+id, nil, &raw)
		rcs, _ := raw["remote_config_status"].(map[string]any)
		if h, _ := rcs["last_remote_config_hash"].(string); h != s.Running.Hash.String() || len(h) != 64 {
			t.Fatalf("last_remote_config_hash in the API = %q, want the hex %s", h, s.Running.Hash)
		}
		var list struct {
			Agents []steward.Agent `json:"agents"`
			Total  int             `json:"total"`
		}
		srv.call(t, "GET", "/api/v1/agents?sync=rolled_back", nil, &list)
		if list.Total != 1 || list.Agents[0].ID.String() != id {
			t.Fatalf("?sync=rolled_back: %d agents", list.Total)
		}
		srv.call(t, "GET", "/api/v1/agents?sync=in_sync", nil, &list)
		if list.Total != 0 {
			t.Fatalf("?sync=in_sync lists the rolled-back agent")
		}
	}
	check(srv)
	if code := srv.call(t, "GET", "/api/v1/agents?sync=nonsense", nil, nil); code != 400 {
		t.Fatalf("?sync=nonsense: %d, want 400", code)
	}

	// A server restart derives the same state and does not offer the
	// failed config again.
	srv.stop()
	restarted := time.Now()
	srv2 := startServerWith(t, daemon.Options{DataDir: dir, OpAMPAddr: srv.opamp})
	eventually(t, "agent back", func() bool {
		g := getAgent(t, srv2, id)
		return g.Online && g.ConnectedAt.After(restarted)
	})
	check(srv2)
	select {
	case <-a.failed:
		t.Fatal("the failed config was offered again after the restart")
	case <-time.After(time.Second):
	}
}

// Finding 6 of issue 12: restart of a plain-HTTP agent said "sent" although
// the command waits for the agent's next poll. The API now says queued (with
// the deadline) for HTTP and sent for WebSocket, and the command arrives.
func TestRestartSaysQueuedForHTTPAgents(t *testing.T) {
	srv := startServerWith(t, daemon.Options{DataDir: t.TempDir()})
	for _, tc := range []struct{ transport, url, want string }{
		{"http", "http://" + srv.opamp + "/v1/opamp", steward.DeliveryQueued},
		{"ws", "ws://" + srv.opamp + "/v1/opamp", steward.DeliverySent},
	} {
		a := startAgent(t, tc.transport, tc.url, "prod")
		eventually(t, "agent online", func() bool {
			var got steward.Agent
			return srv.call(t, "GET", "/api/v1/agents/"+a.id(), nil, nil) == 200 && srv.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got) == 200 && got.Online
		})
		var d steward.Delivery
		srv.call(t, "POST", "/api/v1/agents/"+a.id()+"/restart", nil, &d)
		if d.Status != tc.want {
			t.Errorf("%s agent: restart %+v, want %s", tc.transport, d, tc.want)
		}
		if (tc.want == steward.DeliveryQueued) == d.Until.IsZero() {
			t.Errorf("%s agent: until = %v", tc.transport, d.Until)
		}
		eventually(t, "restart at the "+tc.transport+" agent", func() bool { return a.restarts.Load() == 1 })
	}
}
