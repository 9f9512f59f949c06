package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// testTelemetryRollups: rollups read back from a time on, by minute then
// agent, with NaN for missing series; a second put of the same agent and
// minute replaces it; old minutes are deleted and counted.
func testTelemetryRollups(t *testing.T, s steward.Store) {
	ts, ok := s.(steward.TelemetryStore)
	if !ok {
		t.Fatalf("%T does not implement steward.TelemetryStore", s)
	}
	c := ctx(t)
	a, b := steward.NewInstanceUID(), steward.NewInstanceUID()
	if a.String() > b.String() {
		a, b = b, a
	}
	m0 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	roll := func(id steward.InstanceUID, m time.Time, cpu, mem float64) steward.TelemetryRollup {
		r := steward.TelemetryRollup{AgentID: id, Minute: m}
		for i := range r.Values {
			r.Values[i] = math.NaN()
		}
		r.Values[steward.TelemetryCPU], r.Values[steward.TelemetryMemory] = cpu, mem
		return r
	}
	in := []steward.TelemetryRollup{roll(b, m0.Add(time.Minute), 1.5, 2e9), roll(a, m0.Add(time.Minute), 0.25, 1e6), roll(a, m0, 3, 4)}
	if err := ts.PutTelemetryRollups(c, in); err != nil {
		t.Fatal(err)
	}
	if err := ts.PutTelemetryRollups(c, []steward.TelemetryRollup{roll(a, m0, 6, math.NaN())}); err != nil {
		t.Fatal(err)
	}
	got, err := ts.TelemetryRollups(c, m0)
	if err != nil {
		t.Fatal(err)
	}
	want := []steward.TelemetryRollup{roll(a, m0, 6, math.NaN()), roll(a, m0.Add(time.Minute), 0.25, 1e6), roll(b, m0.Add(time.Minute), 1.5, 2e9)}
	if len(got) != len(want) {
		t.Fatalf("got %d rollups, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.AgentID != w.AgentID || !g.Minute.Equal(w.Minute) {
			t.Fatalf("rollup %d = %s at %v, want %s at %v", i, g.AgentID, g.Minute, w.AgentID, w.Minute)
		}
		for k := range w.Values {
			if gv, wv := g.Values[k], w.Values[k]; gv != wv && !(math.IsNaN(gv) && math.IsNaN(wv)) {
				t.Fatalf("rollup %d series %s = %v, want %v", i, steward.TelemetrySeries(k), gv, wv)
			}
		}
	}
	if got, _ := ts.TelemetryRollups(c, m0.Add(time.Minute)); len(got) != 2 {
		t.Fatalf("rollups since the second minute: %d, want 2", len(got))
	}
	n, err := ts.DeleteTelemetryRollups(c, m0.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteTelemetryRollups = %d, %v; want 1", n, err)
	}
	if got, _ := ts.TelemetryRollups(c, m0.Add(-time.Hour)); len(got) != 2 {
		t.Fatalf("after delete: %d rollups, want 2", len(got))
	}
	many := make([]steward.TelemetryRollup, 1200)
	for i := range many {
		many[i] = roll(steward.NewInstanceUID(), m0.Add(-time.Duration(i+1)*time.Minute), float64(i), 1)
	}
	if err := ts.PutTelemetryRollups(c, many); err != nil {
		t.Fatalf("put %d rollups: %v", len(many), err)
	}
	if got, _ := ts.TelemetryRollups(c, m0.Add(-2*time.Hour)); len(got) != 2+120 {
		t.Fatalf("rollups of the last two hours: %d, want %d", len(got), 2+120)
	}
}
