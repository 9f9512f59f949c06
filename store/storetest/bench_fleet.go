package storetest

import (
	"context"
	"sync"
	"testing"

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
func seedFleet(b *testing.B, s steward.Store, n int) {
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
				if err := s.PutAgent(ctx, benchAgent(steward.NewInstanceUID(), i)); err != nil {
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
	b.Run("fleet=100k", func(b *testing.B) {
		b.ReportAllocs()
		for n := 0; n < b.N; n++ {
			sum, err := ss.Summary(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if sum.Total != SummaryFleet {
				b.Fatalf("summary total %d, want %d", sum.Total, SummaryFleet)
			}
		}
	})
}
