package controlplane

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// The other replicas' unwritten states are kept until their origin wrote
// them (its NoticeWritten names their flush or a later one), the later
// state of an agent that moved counts, and a replica not heard from is
// forgotten.
func TestPeersKeepStatesUntilWritten(t *testing.T) {
	p := newPeers()
	now := time.Unix(1000, 0)
	a, b, c := steward.InstanceUID{1}, steward.InstanceUID{2}, steward.InstanceUID{3}
	held := func(want ...steward.InstanceUID) {
		t.Helper()
		var got []steward.InstanceUID
		for _, st := range p.snapshot(now.Add(-time.Minute)) {
			got = append(got, st.ID)
		}
		slices.SortFunc(got, func(x, y steward.InstanceUID) int { return int(x[0]) - int(y[0]) })
		if !slices.Equal(got, want) {
			t.Fatalf("held %v, want %v", got, want)
		}
	}
	p.pending("r1", []peerState{{ID: a, Gen: 5, At: 10}, {ID: b, Gen: 6, At: 10}}, now)
	p.pending("r2", []peerState{{ID: c, Gen: 5, At: 10}}, now)
	held(a, b, c)
	p.written("r1", 5, now) // r1's flush 5 wrote a; r2's flush 5 is r2's own
	held(b, c)
	// b moved to r2, which has a later state: r1 writing its older one
	// does not drop it; an older state from r1 does not replace it.
	p.pending("r2", []peerState{{ID: b, Gen: 7, At: 20}}, now)
	p.pending("r1", []peerState{{ID: b, Gen: 7, At: 15}}, now)
	p.written("r1", 9, now)
	if got := p.snapshot(now.Add(-time.Minute)); len(got) != 2 || got[0].origin != "r2" || got[1].origin != "r2" {
		t.Fatalf("after r1 wrote everything: %+v, want r2's b and c", got)
	}
	p.written("r2", 6, now) // c (flush 5), not b (flush 7)
	held(b)
	// A replica silent since before the cut-off is dropped with its states.
	p.pending("r1", []peerState{{ID: a, Gen: 10, At: 30}}, now.Add(-2*time.Minute))
	held(b)
	p.forget()
	held()
}

// summaryOf counts an agent held both here and by another replica once,
// in its later state.
func TestSummaryOfCountsAMovedAgentOnce(t *testing.T) {
	st := summaryStoreFunc(func(except []steward.InstanceUID) *steward.FleetSummary {
		if len(except) != 2 {
			t.Fatalf("except %v, want the two agents once each", except)
		}
		return steward.NewFleetSummary()
	})
	older, newer := time.Unix(10, 0), time.Unix(20, 0)
	here := []*steward.Agent{{ID: steward.InstanceUID{1}, Online: false, UpdatedAt: older}, {ID: steward.InstanceUID{2}, Online: true, UpdatedAt: newer}}
	there := []*peerState{{ID: steward.InstanceUID{1}, Online: true, At: newer.UnixNano(), Sync: steward.SyncInSync}, {ID: steward.InstanceUID{2}, Online: false, At: older.UnixNano()}}
	sum, err := summaryOf(t.Context(), st, here, there)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 2 || sum.Online != 2 {
		t.Fatalf("summary %+v: want 2 agents, both online (each in its later state)", sum)
	}
}

type summaryStoreFunc func(except []steward.InstanceUID) *steward.FleetSummary

func (f summaryStoreFunc) Summary(_ context.Context, except []steward.InstanceUID) (*steward.FleetSummary, error) {
	return f(except), nil
}
