package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// SelectorFleet is the number of agents BenchmarkAgentsSelector stores;
// SummaryFleet the number BenchmarkSummary stores.
const (
	SelectorFleet = 10_000
	SummaryFleet  = 100_000
)

// seedFleet stores n agents made by benchAgent (labels env=prod and
// region=r0…r3), from four goroutines.
func seedFleet(b *testing.B, s steward.Store, n int) { seedFleetWith(b, s, n, benchAgent) }

// seedFleetWith stores n agents made by mk, from four goroutines.
func seedFleetWith(b *testing.B, s steward.Store, n int, mk func(id steward.InstanceUID, i int) *steward.Agent) {
	b.Helper()
	ctx := context.Background()
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := s.PutAgent(ctx, mk(steward.NewInstanceUID(), i)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkAgentsSelector stores SelectorFleet agents, then measures the
// first page (50) of Agents with the label selector "region=r1", which a
// quarter of the fleet matches.
func BenchmarkAgentsSelector(b *testing.B, s steward.Store) {
	seedFleet(b, s, SelectorFleet)
	ctx := context.Background()
	b.Run("fleet=10k", func(b *testing.B) {
		b.ReportAllocs()
		for n := 0; n < b.N; n++ {
			page, total, err := s.Agents(ctx, steward.AgentFilter{Selector: "region=r1", Limit: 50})
			if err != nil {
				b.Fatal(err)
			}
			if len(page) != 50 || total != SelectorFleet/4 {
				b.Fatalf("got %d agents of %d, want 50 of %d", len(page), total, SelectorFleet/4)
			}
		}
	})
}

// BenchmarkSummary stores SummaryFleet agents, then measures Summary.
func BenchmarkSummary(b *testing.B, s steward.Store) {
	ss, ok := s.(steward.SummaryStore)
	if !ok {
		b.Fatalf("%T does not implement steward.SummaryStore", s)
	}
	seedFleet(b, s, SummaryFleet)
	ctx := context.Background()
	// except=2k leaves out 2,000 agents, as the control plane does for
	// those with a change not yet written (a group commit's worth).
	some, _, err := s.Agents(ctx, steward.AgentFilter{Limit: 2000})
	if err != nil {
		b.Fatal(err)
	}
	except := make([]steward.InstanceUID, len(some))
	for i, a := range some {
		except[i] = a.ID
	}
	for _, bc := range []struct {
		name   string
		except []steward.InstanceUID
	}{{"fleet=100k", nil}, {"fleet=100k/except=2k", except}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for n := 0; n < b.N; n++ {
				sum, err := ss.Summary(ctx, bc.except)
				if err != nil {
					b.Fatal(err)
				}
				if sum.Total != SummaryFleet-len(bc.except) {
					b.Fatalf("summary total %d, want %d", sum.Total, SummaryFleet-len(bc.except))
				}
			}
		})
	}
}

// QueryFleet is the number of agents BenchmarkAgentsQuery stores.
const QueryFleet = 100_000

// queryBenchAgent is benchAgent with the spread a fleet list filters on:
// one agent in ten failed its config, one in ten rolled back, one in ten
// is pending, the rest in sync; one in twenty reports unhealthy; one in
// four runs on arm64; last seen i seconds ago.
func queryBenchAgent(id steward.InstanceUID, i int, now time.Time) *steward.Agent {
	a := benchAgent(id, i)
	a.Sync = &steward.AgentSync{State: [10]steward.SyncState{steward.SyncFailed, steward.SyncRolledBack, steward.SyncPending,
		steward.SyncInSync, steward.SyncInSync, steward.SyncInSync, steward.SyncInSync, steward.SyncInSync, steward.SyncInSync, steward.SyncInSync}[i%10]}
	if i%20 == 1 {
		a.Health.Healthy = false
	}
	if i%4 == 2 {
		a.Description.NonIdentifyingAttributes[2].Value = "arm64"
	}
	a.LastSeen = now.Add(-time.Duration(i) * time.Second)
	return a
}

// BenchmarkAgentsQuery stores QueryFleet agents (see queryBenchAgent), then
// measures the first page (50) of the fleet list under the filters and
// sorts the console uses, each with its total count. settle, when not nil,
// runs after the load what the database's own maintenance would run after
// so many inserts (PostgreSQL's autovacuum: VACUUM ANALYZE, without which
// counts read every heap page the index points to).
func BenchmarkAgentsQuery(b *testing.B, s steward.Store, settle func(context.Context) error) {
	ctx := context.Background()
	now := time.Now().UTC()
	seedFleetWith(b, s, QueryFleet, func(id steward.InstanceUID, i int) *steward.Agent { return queryBenchAgent(id, i, now) })
	if settle != nil {
		if err := settle(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		f     steward.AgentFilter
		total int
	}{
		{"sync=failed", steward.AgentFilter{Sync: steward.SyncFailed}, QueryFleet / 10},
		{"sync=failed,sort=-last_seen", steward.AgentFilter{Sync: steward.SyncFailed, Sort: steward.SortLastSeen, Desc: true}, QueryFleet / 10},
		{"sort=sync", steward.AgentFilter{Sort: steward.SortSync}, QueryFleet},
		{"sort=-sync,offset=50000", steward.AgentFilter{Sort: steward.SortSync, Desc: true, Offset: QueryFleet / 2}, QueryFleet},
		{"health=unhealthy,sort=host", steward.AgentFilter{Health: steward.HealthUnhealthy, Sort: steward.SortHost}, QueryFleet / 20},
		{"sort=-last_seen", steward.AgentFilter{Sort: steward.SortLastSeen, Desc: true}, QueryFleet},
		{"attr.host.arch=arm64", steward.AgentFilter{Attributes: map[string]string{steward.AttrHostArch: "arm64"}}, QueryFleet / 4},
	}
	// The same listings with QueryLive agents not yet written (the group
	// commit's pending state during a fleet-wide change), made like the
	// stored ones, so each filter matches the same share of them.
	live := make([]*steward.Agent, QueryLive)
	for i := range live {
		live[i] = queryBenchAgent(steward.NewInstanceUID(), QueryFleet+i, now)
	}
	for _, withLive := range []bool{false, true} {
		for _, tc := range cases {
			name, pending, total := "fleet=100k/"+tc.name, []*steward.Agent(nil), tc.total
			if withLive {
				name, pending, total = "fleet=100k,live=10k/"+tc.name, live, tc.total+tc.total*QueryLive/QueryFleet
			}
			b.Run(name, func(b *testing.B) { benchAgentsPage(b, s, tc.f, pending, total) })
		}
	}
}

// QueryLive is the number of unwritten agents BenchmarkAgentsQuery lists
// with (AgentsWith).
const QueryLive = 10_000

// benchAgentsPage measures the first page (50) of AgentsWith(f, live),
// which must count want agents.
func benchAgentsPage(b *testing.B, s steward.Store, f steward.AgentFilter, live []*steward.Agent, want int) {
	ctx := context.Background()
	f.Limit = 50
	b.ReportAllocs()
	cpu := processCPU()
	for n := 0; n < b.N; n++ {
		page, total, err := s.AgentsWith(ctx, f, live)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) != 50 || total != want {
			b.Fatalf("got %d agents of %d, want 50 of %d", len(page), total, want)
		}
	}
	// On a shared machine wall time mostly measures the wait for a core;
	// the CPU this process spent is what an embedded SQLite query costs
	// (PostgreSQL's work is in its server).
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
