package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/postgres/pgtest"
	"github.com/stewardhq/steward/store/sqlite"
)

// txCounter counts the agent-writing transactions and the rows they write.
type txCounter struct {
	steward.Store
	tx, rows atomic.Int64
}

func (s *txCounter) PutAgent(ctx context.Context, a *steward.Agent) error {
	s.tx.Add(1)
	s.rows.Add(1)
	return s.Store.PutAgent(ctx, a)
}

func (s *txCounter) PutAgentStates(ctx context.Context, as []*steward.Agent) error {
	s.tx.Add(1)
	s.rows.Add(int64(len(as)))
	return s.Store.(steward.AgentStateStore).PutAgentStates(ctx, as)
}

func (s *txCounter) PutAgents(ctx context.Context, as []*steward.Agent) error {
	s.tx.Add(1)
	s.rows.Add(int64(len(as)))
	return s.Store.(interface {
		PutAgents(context.Context, []*steward.Agent) error
	}).PutAgents(ctx, as)
}

// ackFleet is the agents of the write-path benchmark.
const ackFleet = 10000

// BenchmarkConfigAcks measures the agent-state write path: one op is
// 10,000 connected agents each acknowledging a remote config (status
// APPLIED and their 1 KiB effective config), handled by OnMessage, until
// every ack is stored. tx/op is the transactions that wrote agent rows,
// rows/op the rows they wrote. Run:
//
//	go test -run '^$' -bench BenchmarkConfigAcks -benchtime 3x ./controlplane/
//
// (PostgreSQL with STEWARD_TEST_POSTGRES_DSN set.)
func BenchmarkConfigAcks(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), b.TempDir()+"/steward.db")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchAcks(b, st)
	})
	b.Run("postgres", func(b *testing.B) { benchAcks(b, pgtest.Open(b)) })
}

func benchAcks(b *testing.B, st steward.Store) {
	ctx := context.Background()
	cs := &txCounter{Store: st}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: cs, Replica: "r1",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	effective := &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"": {Body: []byte(strings.Repeat("receivers: {otlp: {}}\n", 47)), ContentType: "text/yaml"}}}}
	type agent struct {
		uid  steward.InstanceUID
		conn *testConn
		seq  uint64
	}
	agents := make([]*agent, ackFleet)
	for i := range agents {
		st, err := svc.Accept(&http.Request{})
		if err != nil {
			b.Fatal(err)
		}
		a := &agent{uid: steward.NewInstanceUID(), conn: &testConn{transport: server.WebSocket, state: st}, seq: 1}
		m := fullReport(a.uid, a.seq, "prod")
		m.EffectiveConfig = effective
		if _, err := svc.OnMessage(ctx, a.conn, m); err != nil {
			b.Fatal(err)
		}
		agents[i] = a
	}
	waitRows := func(want int64) {
		for deadline := time.Now().Add(2 * time.Minute); cs.rows.Load() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d rows written", cs.rows.Load(), want)
			}
		}
	}
	waitRows(ackFleet)
	b.ReportAllocs()
	b.ResetTimer()
	tx0, rows0, cpu0 := cs.tx.Load(), cs.rows.Load(), cpuTime(b)
	for n := 0; n < b.N; n++ {
		hash := []byte{byte(n), byte(n >> 8), 1}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ { // a few connections' readers at once
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < len(agents); i += 4 {
					a := agents[i]
					a.seq++
					m := &protobufs.AgentToServer{InstanceUid: a.uid[:], SequenceNum: a.seq, Capabilities: caps,
						RemoteConfigStatus: &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash,
							Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED},
						EffectiveConfig: effective}
					if _, err := svc.OnMessage(ctx, a.conn, m); err != nil {
						b.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		waitRows(rows0 + int64(n+1)*ackFleet)
	}
	b.StopTimer()
	// CPU time of the process (the control plane and the store; the
	// agents' side is only OnMessage calls): on a shared machine a steadier
	// figure than the wall time.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(cs.tx.Load()-tx0)/float64(b.N), "tx/op")
	b.ReportMetric(float64(cs.rows.Load()-rows0)/float64(b.N), "rows/op")
}

// BenchmarkPutConfigFanout measures what PUT of a config costs the control
// plane with 10,000 connected agents it is assigned to: one op stores a
// new 256 KiB version and reconciles every agent (each gets the offer
// queued on its connection; the transport's encoding and writing are not
// part of it). Run:
//
//	go test -run '^$' -bench BenchmarkPutConfigFanout -benchtime 5x ./controlplane/
func BenchmarkPutConfigFanout(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/steward.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	conns := make([]*testConn, ackFleet)
	for i := range conns {
		cst, err := svc.Accept(&http.Request{})
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = &testConn{transport: server.WebSocket, state: cst}
		if _, err := svc.OnMessage(ctx, conns[i], fullReport(steward.NewInstanceUID(), 1, "prod")); err != nil {
			b.Fatal(err)
		}
	}
	body := []byte(strings.Repeat("# a large collector configuration line\n", 256<<10/40))
	if _, err := svc.PutConfig(ctx, &steward.Config{Name: "big", Files: steward.ConfigMap{"": {Body: body}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.PutAssignment(ctx, &steward.Assignment{Name: "all", ConfigName: "big", Selector: "env=prod"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for n := 0; n < b.N; n++ {
		body[0] = byte('a' + n%26) // a new version each time
		if _, err := svc.PutConfig(ctx, &steward.Config{Name: "big", Files: steward.ConfigMap{"": {Body: body}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	for _, c := range conns[:1] {
		if len(c.pushed()) < b.N {
			b.Fatalf("%d offers queued, want at least %d", len(c.pushed()), b.N)
		}
	}
}
