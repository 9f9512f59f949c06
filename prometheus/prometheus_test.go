package prometheus_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/prometheus"
)

// watched returns a Metrics whose levels report one active rollout, so
// every family has at least one series.
func watched(t *testing.T, err error) *prometheus.Metrics {
	t.Helper()
	m := prometheus.New(nil)
	m.Watch(func(ctx context.Context) (controlplane.Stats, error) {
		return controlplane.Stats{WebSocketAgents: 3, HTTPAgents: 1, EventQueue: 7, EventQueueCapacity: 100, EventsDropped: 2,
			Rollouts: []*steward.Rollout{{Name: "r1", Assignment: "prod", Stage: 1, State: steward.RolloutRunning,
				Progress: &steward.RolloutProgress{Targeted: 10, Applied: 4, Failed: 1}}}}, err
	})
	m.WatchTransport(func() server.Stats { return server.Stats{PushInFlight: 1 << 20, PushPaced: 5} })
	return m
}

// families gathers the registry: name → type.
func families(t *testing.T, m *prometheus.Metrics) map[string]string {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range fams {
		out[f.GetName()] = f.GetType().String()
	}
	return out
}

// The per-message path must not allocate for metrics.
func TestMessagePathDoesNotAllocate(t *testing.T) {
	m := prometheus.New(nil)
	allocs := testing.AllocsPerRun(1000, func() {
		m.MessageReceived(server.WebSocket)
		m.MessageSent(server.HTTP)
		m.MessageHandled(3 * time.Microsecond)
		m.StoreCall(controlplane.StorePutAgent, time.Millisecond)
		m.ConfigAcknowledged(true, time.Second)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message, want 0", allocs)
	}
}

var metricName = regexp.MustCompile(`\b(steward|go|process)_[a-z0-9_]+\b`)

// The Grafana dashboard is valid JSON and every metric it queries exists
// in the registry (histograms through their _bucket, _count and _sum).
func TestGrafanaDashboardQueriesExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/steward.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/steward.json: %v", err)
	}
	have := families(t, watched(t, nil))
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	used := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used++
			if typ, ok := have[name]; ok && typ != "HISTOGRAM" {
				continue
			}
			base, ok := "", false
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, cut := strings.CutSuffix(name, suffix); cut {
					base, ok = b, true
				}
			}
			if !ok || have[base] != "HISTOGRAM" {
				t.Errorf("the dashboard queries %s (in %q), which the registry does not have", name, e)
			}
		}
	}
	if used < 15 {
		t.Fatalf("found only %d metric references in the dashboard", used)
	}
}

// docs/metrics.md describes every steward_ metric.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	have := families(t, watched(t, nil))
	var names []string
	for name := range have {
		if strings.HasPrefix(name, "steward_") {
			names = append(names, name)
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("docs/metrics.md does not list %s", name)
			}
		}
	}
	if len(names) < 11 {
		slices.Sort(names)
		t.Fatalf("only %d steward metrics: %v", len(names), names)
	}
}

// Levels read at scrape time carry the control plane's Stats; when the
// rollouts cannot be read the scrape still carries the other levels and
// reports the failure.
func TestLevelsAtScrapeTime(t *testing.T) {
	fams, err := watched(t, nil).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if m.Gauge != nil {
				got[key] = m.Gauge.GetValue()
			}
			if m.Counter != nil {
				got[key] = m.Counter.GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"steward_agent_connections,transport=websocket":                       3,
		"steward_agent_connections,transport=http":                            1,
		"steward_event_queue_depth":                                           7,
		"steward_event_queue_capacity":                                        100,
		"steward_events_dropped_total":                                        2,
		"steward_rollout_agents,assignment=prod,progress=applied,rollout=r1":  4,
		"steward_rollout_agents,assignment=prod,progress=targeted,rollout=r1": 10,
		"steward_rollout_stage,assignment=prod,rollout=r1,state=running":      1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}

	_, err = watched(t, errors.New("database down")).Registry().Gather()
	if err == nil || !strings.Contains(err.Error(), "database down") {
		t.Fatalf("gather with a failing store: %v, want the store's error", err)
	}
}

// BenchmarkMessageMetrics is what the metrics add to one agent message:
// the counters in and out, the handling histogram and the clock read for it.
func BenchmarkMessageMetrics(b *testing.B) {
	m := prometheus.New(nil)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		m.MessageReceived(server.WebSocket)
		m.MessageSent(server.WebSocket)
		m.MessageHandled(time.Since(start))
	}
}

// The own-telemetry receiver's figures are read at scrape time.
func TestTelemetryFigures(t *testing.T) {
	m := prometheus.New(nil)
	m.WatchTelemetry(func() (int, int64, int64) { return 3, 1200, 7 })
	scrapedFigures(t, m, map[string]float64{"steward_telemetry_agents": 3,
		"steward_telemetry_points_accepted_total": 1200, "steward_telemetry_points_rejected_total": 7})
}

// scrapedFigures checks that a scrape of m carries each metric of want
// once, with its value, and that docs/metrics.md lists it.
func scrapedFigures(t *testing.T, m *prometheus.Metrics, want map[string]float64) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		w, ok := want[f.GetName()]
		if !ok {
			continue
		}
		delete(want, f.GetName())
		if got := f.Metric[0].GetGauge().GetValue() + f.Metric[0].GetCounter().GetValue(); len(f.Metric) != 1 || got != w {
			t.Errorf("%s = %v, want %v", f.GetName(), got, w)
		}
		if !strings.Contains(string(doc), "`"+f.GetName()+"`") {
			t.Errorf("docs/metrics.md does not list %s", f.GetName())
		}
	}
	if len(want) > 0 {
		t.Errorf("missing: %v", want)
	}
}

// The transport's figures are read at scrape time.
func TestTransportFigures(t *testing.T) {
	m := prometheus.New(nil)
	m.WatchTransport(func() server.Stats { return server.Stats{PushInFlight: 3 << 20, PushPaced: 41, Stuck: 2} })
	scrapedFigures(t, m, map[string]float64{"steward_opamp_push_inflight_bytes": 3 << 20,
		"steward_opamp_push_paced_total": 41, "steward_opamp_stuck_disconnects_total": 2})
}
