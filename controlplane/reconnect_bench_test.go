package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// reconnectFleet is the agents of the reconnect benchmark.
const reconnectFleet = 5000

// BenchmarkReconnect measures the connect path after a crash: agents whose
// state is stored (description, health, 1 KiB effective config, their
// config APPLIED) reconnect to a new control plane on the same database,
// as after kill -9 and a restart, each sending what an agent sends on a
// new connection — its full status, the next sequence number (every other
// agent skips one: a heartbeat not yet flushed when the server was
// killed). One op is
// starting the control plane and 5,000 reconnects, until their state is
// written; cpu-ms/1k-connects is the process CPU time of that (a steadier
// figure than the wall time on a shared machine), full-state-requests/op
// the replies that asked an agent for its full state again. Run:
//
//	go test -run '^$' -bench BenchmarkReconnect -benchtime 3x ./controlplane/
func BenchmarkReconnect(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/steward.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := controlplane.Config{Store: st, Replica: "r1", Logger: quiet}
	effective := &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"": {Body: []byte(strings.Repeat("receivers: {otlp: {}}\n", 47)), ContentType: "text/yaml"}}}}
	type agent struct {
		uid    steward.InstanceUID
		seq    uint64
		status *protobufs.RemoteConfigStatus
	}
	full := func(a *agent) *protobufs.AgentToServer {
		a.seq++
		m := fullReport(a.uid, a.seq, "prod")
		m.EffectiveConfig, m.RemoteConfigStatus = effective, a.status
		return m
	}
	connect := func(svc *controlplane.Service) *testConn {
		state, err := svc.Accept(&http.Request{})
		if err != nil {
			b.Fatal(err)
		}
		return &testConn{transport: server.WebSocket, state: state}
	}

	// The fleet before the crash: connected, config applied, all stored.
	svc, err := controlplane.New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.PutConfig(ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")}); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"}); err != nil {
		b.Fatal(err)
	}
	agents := make([]*agent, reconnectFleet)
	for i := range agents {
		a := &agent{uid: steward.NewInstanceUID()}
		c := connect(svc)
		r, err := svc.OnMessage(ctx, c, full(a))
		if err != nil || r.RemoteConfig == nil {
			b.Fatalf("first report: %v %v", r, err)
		}
		a.status = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: r.RemoteConfig.ConfigHash,
			Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
		a.seq++
		if _, err := svc.OnMessage(ctx, c, &protobufs.AgentToServer{InstanceUid: a.uid[:], SequenceNum: a.seq, Capabilities: caps,
			RemoteConfigStatus: a.status, EffectiveConfig: effective}); err != nil {
			b.Fatal(err)
		}
		agents[i] = a
	}
	if err := svc.Close(); err != nil { // writes everything
		b.Fatal(err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	fullRequests := 0
	for n := 0; n < b.N; n++ {
		svc, err := controlplane.New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ { // a few connections' readers at once
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < len(agents); i += 4 {
					if i%2 == 0 {
						agents[i].seq++ // the unflushed heartbeat
					}
					r, err := svc.OnMessage(ctx, connect(svc), full(agents[i]))
					if err != nil {
						b.Error(err)
						return
					}
					if r.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) != 0 {
						mu.Lock()
						fullRequests++
						mu.Unlock()
					}
				}
			}(w)
		}
		wg.Wait()
		// Close writes what the group commit holds (and marks the fleet
		// offline, as the next op's restart would).
		if err := svc.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Millisecond)/float64(b.N)/(reconnectFleet/1000), "cpu-ms/1k-connects")
	b.ReportMetric(float64(fullRequests)/float64(b.N), "full-state-requests/op")
}
