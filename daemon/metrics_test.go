package daemon_test

import (
	"encoding/json"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stewardhq/steward"
)

// scrape GETs /metrics with token and parses it with the Prometheus text
// parser.
func (w *webServer) scrape(t *testing.T, token string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := w.request(t, "GET", "/metrics", nil, "Authorization", "Bearer "+token)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// sample returns the metric of family name whose labels include labels
// (name=value pairs), or nil.
func sample(families map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns a counter's or gauge's value, a histogram's sample count,
// or -1 when the series is missing.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := sample(families, name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// TestMetricsScrapedFromRealServer runs `steward server` with auth, connects
// opamp-go agents over both transports, pushes them a config and checks
// that /metrics, parsed by the Prometheus text parser, counted it all.
func TestMetricsScrapedFromRealServer(t *testing.T) {
	w := startWebServer(t)
	viewer := w.createToken(t, "prometheus", steward.RoleViewer)

	if resp, body := w.request(t, "GET", "/metrics", nil); resp.StatusCode != 401 {
		t.Fatalf("GET /metrics without credentials: %d %s, want 401", resp.StatusCode, body)
	}
	before := w.scrape(t, viewer)
	for _, tr := range []string{"websocket", "http"} {
		if got := value(before, "steward_agent_connections", "transport", tr); got != 0 {
			t.Fatalf("before any agent: steward_agent_connections{transport=%q} = %v, want 0", tr, got)
		}
	}
	if got := value(before, "steward_config_ack_duration_seconds", "status", "applied"); got != 0 {
		t.Fatalf("before any config: ack histogram count %v, want 0", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "steward_event_queue_capacity"} {
		if value(before, name) < 0 {
			t.Errorf("metric %s missing", name)
		}
	}

	ws := startAgent(t, "ws", "ws://"+w.opamp+"/v1/opamp", "prod")
	hp := startAgent(t, "http", "http://"+w.opamp+"/v1/opamp", "prod")
	body := "receivers:\n  nop:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [nop]\n      exporters: [nop]\n"
	admin := []string{"Authorization", "Bearer " + rootToken}
	if resp, b := w.request(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": body}}}, admin...); resp.StatusCode >= 300 {
		t.Fatalf("put config: %d %s", resp.StatusCode, b)
	}
	if resp, b := w.request(t, "PUT", "/api/v1/assignments/prod", map[string]any{"name": "prod", "config": "base", "selector": "env=prod"}, admin...); resp.StatusCode >= 300 {
		t.Fatalf("put assignment: %d %s", resp.StatusCode, b)
	}
	for _, a := range []*agent{ws, hp} {
		eventually(t, "agent "+a.id()+" APPLIED", func() bool {
			var got steward.Agent
			resp, b := w.request(t, "GET", "/api/v1/agents/"+a.id(), nil, admin...)
			return resp.StatusCode == 200 && jsonInto(b, &got) && got.RemoteConfigStatus != nil &&
				got.RemoteConfigStatus.Status == steward.RemoteConfigApplied
		})
	}

	// The acknowledgement is observed when the APPLIED report is handled,
	// before the agent shows APPLIED through the API; the connection gauge
	// is read at scrape time. Agent writes are observed when the group
	// commit stores them, up to a write interval after the API shows them.
	var after map[string]*dto.MetricFamily
	eventually(t, "the agent writes stored", func() bool {
		after = w.scrape(t, viewer)
		return value(after, "steward_store_duration_seconds", "op", "put_agent") >= 1
	})
	for _, tr := range []string{"websocket", "http"} {
		if got := value(after, "steward_agent_connections", "transport", tr); got != 1 {
			t.Errorf("steward_agent_connections{transport=%q} = %v, want 1", tr, got)
		}
		if got := value(after, "steward_opamp_messages_received_total", "transport", tr); got < 2 {
			t.Errorf("steward_opamp_messages_received_total{transport=%q} = %v, want ≥ 2", tr, got)
		}
		if got := value(after, "steward_opamp_messages_sent_total", "transport", tr); got < 2 {
			t.Errorf("steward_opamp_messages_sent_total{transport=%q} = %v, want ≥ 2", tr, got)
		}
	}
	if got := value(after, "steward_config_ack_duration_seconds", "status", "applied"); got != 2 {
		t.Errorf("ack histogram count %v, want 2 (one per agent)", got)
	}
	if got := value(after, "steward_config_ack_duration_seconds", "status", "failed"); got != 0 {
		t.Errorf("failed ack histogram count %v, want 0", got)
	}
	for _, op := range []string{"get_agent", "put_agent", "load_desired"} {
		if got := value(after, "steward_store_duration_seconds", "op", op); got < 1 {
			t.Errorf("steward_store_duration_seconds{op=%q} count %v, want ≥ 1", op, got)
		}
	}
	if got, was := value(after, "steward_reconcile_message_duration_seconds"), value(before, "steward_reconcile_message_duration_seconds"); got <= was {
		t.Errorf("steward_reconcile_message_duration_seconds count %v, was %v", got, was)
	}
	if got := value(after, "steward_reconcile_pass_duration_seconds"); got < 1 {
		t.Errorf("steward_reconcile_pass_duration_seconds count %v, want ≥ 1 (the assignment triggers a pass)", got)
	}
}

// TestProfilerNeedsAdmin: /debug/pprof/ is refused without credentials and
// to a viewer, and served to an admin.
func TestProfilerNeedsAdmin(t *testing.T) {
	w := startWebServer(t)
	viewer := w.createToken(t, "prometheus", steward.RoleViewer)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if resp, body := w.request(t, "GET", path, nil); resp.StatusCode != 401 {
			t.Errorf("GET %s without credentials: %d %s, want 401", path, resp.StatusCode, body)
		}
		if resp, body := w.request(t, "GET", path, nil, "Authorization", "Bearer "+viewer); resp.StatusCode != 403 {
			t.Errorf("GET %s as viewer: %d %s, want 403", path, resp.StatusCode, body)
		}
	}
	resp, body := w.request(t, "GET", "/debug/pprof/goroutine?debug=1", nil, "Authorization", "Bearer "+rootToken)
	if resp.StatusCode != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("GET /debug/pprof/goroutine as admin: %d %.200s", resp.StatusCode, body)
	}
	resp, body = w.request(t, "GET", "/debug/pprof/", nil, "Authorization", "Bearer "+rootToken)
	if resp.StatusCode != 200 || !strings.Contains(body, "heap") {
		t.Fatalf("GET /debug/pprof/ as admin: %d %.200s", resp.StatusCode, body)
	}
}

// jsonInto decodes body into out and reports whether it could.
func jsonInto(body string, out any) bool { return json.Unmarshal([]byte(body), out) == nil }
