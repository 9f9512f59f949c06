package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/sqlite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// t0 is a start on a minute boundary.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeAuth admits callers by header: "Bearer good" speaks for agent
// (and any service.instance.id that is not other), anything else is 401.
type fakeAuth struct{ agent, other steward.InstanceUID }

func (f fakeAuth) AuthenticateTelemetry(r *http.Request) (Caller, error) {
	if r.Header.Get("Authorization") != "Bearer good" {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "bad credentials")
	}
	return f, nil
}

func (f fakeAuth) Agent(_ context.Context, sid string) (steward.InstanceUID, error) {
	if sid == f.other.String() {
		return steward.InstanceUID{}, steward.Errorf(steward.EFORBIDDEN, "not yours")
	}
	return f.agent, nil
}

func newHub(t *testing.T, c *clock, store steward.TelemetryStore) *Hub {
	t.Helper()
	h, err := New(context.Background(), Options{Now: c.Now, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// metricsAt builds an export of one resource with a cumulative counter
// and a gauge at time at (the process started at start).
type point struct {
	name  string
	sum   bool
	delta bool
	value float64
	start time.Time
	at    time.Time
	attrs map[string]string
}

func export(sid string, pts ...point) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	if sid != "" {
		rm.Resource().Attributes().PutStr("service.instance.id", sid)
	}
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for _, p := range pts {
		m := ms.AppendEmpty()
		m.SetName(p.name)
		var dp pmetric.NumberDataPoint
		if p.sum {
			s := m.SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			if p.delta {
				s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			}
			dp = s.DataPoints().AppendEmpty()
		} else {
			dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
		}
		dp.SetDoubleValue(p.value)
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(p.start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(p.at))
		for k, v := range p.attrs {
			dp.Attributes().PutStr(k, v)
		}
	}
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

func post(t *testing.T, h http.Handler, path, ctype string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", path, bytes.NewReader(body))
	r.Header.Set("Content-Type", ctype)
	r.Header.Set("Authorization", "Bearer good")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func sendProto(t *testing.T, h http.Handler, req pmetricotlp.ExportRequest) pmetricotlp.ExportResponse {
	t.Helper()
	b, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	w := post(t, h, MetricsPath, "application/x-protobuf", b, nil)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	resp := pmetricotlp.NewExportResponse()
	if err := resp.UnmarshalProto(w.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	return resp
}

func setup(t *testing.T, store steward.TelemetryStore) (*clock, *Hub, http.Handler, fakeAuth) {
	c := &clock{t: t0}
	h := newHub(t, c, store)
	auth := fakeAuth{agent: steward.NewInstanceUID(), other: steward.NewInstanceUID()}
	mux := http.NewServeMux()
	NewReceiver(h, auth, 1<<16, nil).Register(mux)
	return c, h, mux, auth
}

// series returns the agent's values of one series over the last d.
func series(t *testing.T, h *Hub, id steward.InstanceUID, d time.Duration, name string) []float64 {
	t.Helper()
	at, err := h.AgentTelemetry(context.Background(), id, d)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, v := range at.Series[name] {
		if v == nil {
			out = append(out, math.NaN())
		} else {
			out = append(out, *v)
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

// TestCumulativeCounterBecomesRate: the first point of a long-running
// counter sets the baseline; the next ones give rates spread over the time
// between points; a reset counts the new value; a restarted collector's
// first point counts from its start.
func TestCumulativeCounterBecomesRate(t *testing.T) {
	c, h, mux, auth := setup(t, nil)
	start := t0.Add(-time.Hour)
	acc := func(v float64, st time.Time) point {
		return point{name: "otelcol_receiver_accepted_spans", sum: true, value: v, start: st, at: c.Now(), attrs: map[string]string{"receiver": "otlp"}}
	}
	sendProto(t, mux, export("", acc(5000, start))) // baseline only
	c.Add(10 * time.Second)
	sendProto(t, mux, export("", acc(5100, start))) // +100 over 10 s
	c.Add(20 * time.Second)
	sendProto(t, mux, export("", acc(5500, start))) // +400 over 20 s
	c.Add(10 * time.Second)
	restart := c.Now().Add(-5 * time.Second)
	sendProto(t, mux, export("", acc(30, restart))) // reset: 30 since the restart
	c.Add(10 * time.Second)
	got := series(t, h, auth.agent, 50*time.Second, "received")
	// Slots [t0, t0+10) … [t0+40, t0+50): the reset's 30 fell in the 5 s
	// since the restart; nothing after the last export.
	want := []float64{10, 20, 20, 3, math.NaN()}
	for i := range want {
		if !(near(got[i], want[i]) || math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			t.Fatalf("received rates = %v, want %v", got, want)
		}
	}
}

// TestDeltaCountersAndLevels: delta points are increases; levels keep the
// last value per 10 s and the highest per minute; the collector's own
// process metrics win over the generic ones sent alongside.
func TestDeltaCountersAndLevels(t *testing.T) {
	c, h, mux, auth := setup(t, nil)
	for i, q := range []float64{5, 50, 7} {
		now := c.Now()
		sendProto(t, mux, export("",
			point{name: "otelcol_exporter_sent_log_records", sum: true, delta: true, value: 60, start: now.Add(-10 * time.Second), at: now},
			point{name: "otelcol_exporter_queue_size", value: q, at: now, attrs: map[string]string{"exporter": "a"}},
			point{name: "otelcol_exporter_queue_size", value: 1, at: now, attrs: map[string]string{"exporter": "b"}},
			point{name: "otelcol_process_memory_rss", value: float64(100 + i), at: now},
			point{name: "process.memory.usage", value: 1e12, at: now},
		))
		c.Add(10 * time.Second)
	}
	// Each delta covers the 10 s before its export: slots t0-10 … t0+10.
	if got := series(t, h, auth.agent, 40*time.Second, "sent"); !near(got[0], 6) || !near(got[2], 6) || !math.IsNaN(got[3]) {
		t.Fatalf("sent = %v, want 6/s", got)
	}
	if got := series(t, h, auth.agent, 30*time.Second, "queue_size"); got[0] != 6 || got[1] != 51 || got[2] != 8 {
		t.Fatalf("queue_size = %v, want the sum over exporters 6, 51, 8", got)
	}
	if got := series(t, h, auth.agent, 30*time.Second, "memory_rss"); got[2] != 102 {
		t.Fatalf("memory_rss = %v, want the collector's own 102, not process.memory.usage", got)
	}
	c.Add(time.Minute)
	if got := series(t, h, auth.agent, 2*time.Hour, "queue_size"); got[len(got)-1] != 51 { // the minute of t0 is the last complete one
		t.Fatalf("minute queue_size = %v, want the highest, 51", got[len(got)-3:])
	}
}

// TestReceiverEncodingsAndErrors: protobuf, JSON and gzip are accepted;
// a resource the caller may not speak for is rejected with partial
// success; bad input gets a clear 4xx with a google.rpc.Status.
func TestReceiverEncodingsAndErrors(t *testing.T) {
	c, h, mux, auth := setup(t, nil)
	req := export(auth.agent.String(), point{name: "otelcol_process_memory_rss", value: 42, at: c.Now()})
	js, _ := req.MarshalJSON()
	if w := post(t, mux, MetricsPath, "application/json", js, nil); w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("JSON: %d %s %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	pb, _ := req.MarshalProto()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pb)
	zw.Close()
	if w := post(t, mux, MetricsPath, "application/x-protobuf", gz.Bytes(), map[string]string{"Content-Encoding": "gzip"}); w.Code != 200 {
		t.Fatalf("gzip: %d %s", w.Code, w.Body)
	}
	c.Add(10 * time.Second)
	if got := series(t, h, auth.agent, 10*time.Second, "memory_rss"); got[0] != 42 {
		t.Fatalf("memory_rss = %v", got)
	}

	// Two resources, one of another agent: partial success.
	md := export(auth.agent.String(), point{name: "otelcol_process_memory_rss", value: 1, at: c.Now()}).Metrics()
	export(auth.other.String(), point{name: "otelcol_process_memory_rss", value: 1, at: c.Now()},
		point{name: "x", value: 1, at: c.Now()}).Metrics().ResourceMetrics().At(0).CopyTo(md.ResourceMetrics().AppendEmpty())
	resp := sendProto(t, mux, pmetricotlp.NewExportRequestFromMetrics(md))
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 2 || ps.ErrorMessage() != "not yours" {
		t.Fatalf("partial success = %d %q, want 2 rejected, not yours", ps.RejectedDataPoints(), ps.ErrorMessage())
	}

	if agents, accepted, rejected := h.Stats(); agents != 1 || accepted != 3 || rejected != 2 {
		t.Fatalf("Stats = %d agents, %d accepted, %d rejected; want 1, 3, 2", agents, accepted, rejected)
	}

	bigBody := bytes.Repeat([]byte{0}, 1<<17)
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		hdr         map[string]string
		code        int
	}{
		{"garbage protobuf", "application/x-protobuf", []byte{0xff, 0xff, 0xff}, nil, 400},
		{"garbage JSON", "application/json", []byte("{"), nil, 400},
		{"bad gzip", "application/x-protobuf", pb, map[string]string{"Content-Encoding": "gzip"}, 400},
		{"unknown encoding", "application/x-protobuf", pb, map[string]string{"Content-Encoding": "br"}, 400},
		{"content type", "text/plain", pb, nil, 415},
		{"too large", "application/x-protobuf", bigBody, nil, 413},
		{"no credentials", "application/x-protobuf", pb, map[string]string{"Authorization": ""}, 401},
		{"only another agent's data", "application/x-protobuf", mustProto(export(auth.other.String(), point{name: "a", value: 1, at: c.Now()})), nil, 403},
	} {
		w := post(t, mux, MetricsPath, tc.ctype, tc.body, tc.hdr)
		if w.Code != tc.code {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.code, w.Body)
			continue
		}
		st := &status.Status{}
		unmarshal := proto.Unmarshal
		if tc.ctype == "application/json" {
			unmarshal = protojson.Unmarshal
		}
		if err := unmarshal(w.Body.Bytes(), st); err != nil || st.Message == "" {
			t.Errorf("%s: body is not a google.rpc.Status with a message: %v %q", tc.name, err, w.Body)
		}
	}
	// A gzip bomb is cut at the limit.
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte{0}, 1<<20))
	zw.Close()
	if w := post(t, mux, MetricsPath, "application/x-protobuf", bomb.Bytes(), map[string]string{"Content-Encoding": "gzip"}); w.Code != 413 {
		t.Fatalf("gzip bomb: %d, want 413", w.Code)
	}
}

func mustProto(r pmetricotlp.ExportRequest) []byte {
	b, _ := r.MarshalProto()
	return b
}

// TestLogsKeptBriefly: log records are kept, newest last, at most
// logsKept, bodies cut.
func TestLogsKeptBriefly(t *testing.T) {
	c, h, mux, auth := setup(t, nil)
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := range logsKept + 5 {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(c.Now().Add(time.Duration(i) * time.Second)))
		lr.SetSeverityText("INFO")
		lr.Body().SetStr(string(rune('a'+i%26)) + string(bytes.Repeat([]byte("x"), i*20)))
		lr.Attributes().PutStr("k", "v")
	}
	b, _ := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if w := post(t, mux, LogsPath, "application/x-protobuf", b, nil); w.Code != 200 {
		t.Fatalf("logs: %d %s", w.Code, w.Body)
	}
	logs, err := h.AgentTelemetryLogs(context.Background(), auth.agent)
	if err != nil || len(logs) != logsKept {
		t.Fatalf("%d logs, %v; want %d", len(logs), err, logsKept)
	}
	if last := logs[len(logs)-1]; last.Body[0] != byte('a'+(logsKept+4)%26) || len(last.Body) > maxLogBody+3 || last.Attrs["k"] != "v" {
		t.Fatalf("last log = %q (%d bytes) %v", last.Body[:1], len(last.Body), last.Attrs)
	}
}

// TestRollupsSurviveRestart: completed minutes are written to the store
// and a new Hub reloads them (the 10 s view starts empty).
func TestRollupsSurviveRestart(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, h, mux, auth := setup(t, db)
	start := t0.Add(-time.Hour)
	for i := range 13 { // two minutes of 10 s exports
		sendProto(t, mux, export("", point{name: "otelcol_process_cpu_seconds", sum: true, value: float64(i) * 5, start: start, at: c.Now()},
			point{name: "otelcol_process_memory_rss", value: 1000 + float64(i), at: c.Now()}))
		c.Add(10 * time.Second)
	}
	c.Add(3 * time.Minute)
	h.flush(context.Background())
	h.Close()

	h2 := newHub(t, c, db)
	cpu := series(t, h2, auth.agent, 2*time.Hour, "cpu")
	mem := series(t, h2, auth.agent, 2*time.Hour, "memory_rss")
	n := len(cpu)
	// Minutes t0 and t0+1m are complete: 0.5 cores (5 s per 10 s).
	if !near(cpu[n-5], 0.5) || !near(cpu[n-4], 0.5) || mem[n-5] != 1005 || mem[n-4] != 1011 {
		t.Fatalf("reloaded cpu %v memory %v", cpu[n-6:], mem[n-6:])
	}
	if fine := series(t, h2, auth.agent, time.Hour, "cpu"); !allNaN(fine) {
		t.Fatalf("10 s view after a restart is not empty: %v", fine)
	}
}

func allNaN(v []float64) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return false
		}
	}
	return true
}

// TestFleetSumsAndTopDrops: fleet series sum the agents; the top list
// orders agents by refused plus failed items.
func TestFleetSumsAndTopDrops(t *testing.T) {
	c := &clock{t: t0}
	h := newHub(t, c, nil)
	ids := []steward.InstanceUID{steward.NewInstanceUID(), steward.NewInstanceUID(), steward.NewInstanceUID()}
	for i, id := range ids {
		a := h.agent(id, true)
		b := newBatch()
		now := c.Now()
		rm := export("", point{name: "otelcol_exporter_send_failed_spans", sum: true, delta: true, value: float64(10 * i), start: now.Add(-10 * time.Second), at: now},
			point{name: "otelcol_exporter_sent_spans", sum: true, delta: true, value: 100, start: now.Add(-10 * time.Second), at: now}).Metrics().ResourceMetrics().At(0)
		a.addMetrics(b, rm)
		a.store(b, now)
	}
	c.Add(10 * time.Second)
	f, err := h.FleetTelemetry(context.Background(), 20*time.Second, 1) // the deltas cover [t0-10, t0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Agents != 3 || f.Series["sent"][0] == nil || *f.Series["sent"][0] != 30 || len(f.TopDrops) != 1 || f.TopDrops[0].AgentID != ids[2] || f.TopDrops[0].SendFailed != 20 {
		t.Fatalf("fleet = %d agents, sent %v, top %+v", f.Agents, *f.Series["sent"][0], f.TopDrops)
	}
	if _, err := h.FleetTelemetry(context.Background(), 8*24*time.Hour, 1); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("8 days: %v, want EINVALID", err)
	}
}
