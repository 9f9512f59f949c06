package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/stewardhq/steward"
)

// vmRSS is the process's resident memory in bytes (/proc/self/status).
func vmRSS(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	b.Skip("no VmRSS")
	return 0
}

// collectorExport is one export of a busy collector's own metrics with
// about points data points: per receiver and exporter the accepted,
// refused, sent and failed counters of three signals, queue gauges,
// process metrics, and histograms Steward does not keep.
func collectorExport(id steward.InstanceUID, points, seq int, start, at time.Time) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.instance.id", id.String())
	rm.Resource().Attributes().PutStr("service.name", "otelcol-contrib")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	counter := func(name, attr, val string, v float64) {
		m := ms.AppendEmpty()
		m.SetName(name)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := s.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetIntValue(int64(v))
		dp.Attributes().PutStr(attr, val)
		dp.Attributes().PutStr("transport", "http")
	}
	gauge := func(name, attr, val string, v float64) {
		m := ms.AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetDoubleValue(v)
		if attr != "" {
			dp.Attributes().PutStr(attr, val)
		}
	}
	counter("otelcol_process_cpu_seconds", "", "", float64(seq))
	gauge("otelcol_process_memory_rss", "", "", 200e6)
	n := 2
	for i := 0; n < points; i++ {
		comp := fmt.Sprintf("otlp/%d", i)
		for _, sig := range []string{"spans", "metric_points", "log_records"} {
			counter("otelcol_receiver_accepted_"+sig, "receiver", comp, float64(seq*1000))
			counter("otelcol_receiver_refused_"+sig, "receiver", comp, float64(seq))
			counter("otelcol_exporter_sent_"+sig, "exporter", comp, float64(seq*990))
			counter("otelcol_exporter_send_failed_"+sig, "exporter", comp, float64(seq))
			n += 4
		}
		gauge("otelcol_exporter_queue_size", "exporter", comp, float64(seq%100))
		gauge("otelcol_exporter_queue_capacity", "exporter", comp, 1000)
		// Histograms of the same exporter (not kept by Steward).
		m := ms.AppendEmpty()
		m.SetName("otelcol_exporter_send_duration")
		hdp := m.SetEmptyHistogram().DataPoints().AppendEmpty()
		hdp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		hdp.BucketCounts().FromRaw([]uint64{1, 2, 3, 4, 5})
		hdp.ExplicitBounds().FromRaw([]float64{1, 10, 100, 1000})
		hdp.Attributes().PutStr("exporter", comp)
		n += 3
	}
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

// BenchmarkAgentMemory measures the resident memory one agent's telemetry
// takes when both rings and its counter streams are full: VmRSS before and
// after 1,000 agents, no forced GC. Run it with -benchtime=1x (a second
// iteration reuses the freed heap and measures nothing).
func BenchmarkAgentMemory(b *testing.B) {
	const agents = 1000
	for range b.N {
		c := &clock{t: time.Now()}
		h, err := New(context.Background(), Options{Now: c.Now, MaxAgents: agents})
		if err != nil {
			b.Fatal(err)
		}
		before := vmRSS(b)
		start := c.Now().Add(-time.Hour)
		for i := range agents {
			id := steward.NewInstanceUID()
			a := h.agent(id, true)
			// Counter streams at their bound: 256 distinct attribute sets.
			md := pmetric.NewMetrics()
			ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
			for k := range maxStreams {
				m := ms.AppendEmpty()
				m.SetName("otelcol_exporter_sent_spans")
				s := m.SetEmptySum()
				s.SetIsMonotonic(true)
				s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				dp := s.DataPoints().AppendEmpty()
				dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
				dp.SetTimestamp(pcommon.NewTimestampFromTime(c.Now()))
				dp.SetIntValue(int64(i))
				dp.Attributes().PutStr("exporter", fmt.Sprintf("otlphttp/backend-%03d", k))
			}
			bt := newBatch()
			a.mu.Lock()
			a.addMetrics(bt, md.ResourceMetrics().At(0))
			a.store(bt, c.Now())
			a.mu.Unlock()
		}
		after := vmRSS(b)
		b.ReportMetric(float64(after-before)/agents, "rss-bytes/agent")
		b.ReportMetric(float64(AgentMemoryBound), "bound-bytes/agent")
		runtime.KeepAlive(h)
		h.Close()
	}
}

// benchIngest posts one export of points data points per operation, each
// from one of 100 agents in turn with its counters advancing, through the
// whole receiver (decoding, authentication, mapping, storing). It reports
// wall and CPU time (user + system, getrusage) per 1,000 data points.
func benchIngest(b *testing.B, points int, gz bool) {
	c := &clock{t: time.Now()}
	h, err := New(context.Background(), Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	const agents = 100
	ids := make([]steward.InstanceUID, agents)
	for i := range ids {
		ids[i] = steward.NewInstanceUID()
	}
	rc := NewReceiver(h, anyAgent{}, 0, nil)
	mux := http.NewServeMux()
	rc.Register(mux)
	const rounds = 8 // distinct exports per agent, replayed with advancing time
	bodies := make([][]byte, agents*rounds)
	start := c.Now().Add(-time.Hour)
	var real int
	for i := range bodies {
		req := collectorExport(ids[i%agents], points, i/agents+1, start, c.Now().Add(time.Duration(i/agents)*10*time.Second))
		real = req.Metrics().DataPointCount()
		body, _ := req.MarshalProto()
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
			body = buf.Bytes()
		}
		bodies[i] = body
	}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := httptest.NewRequest("POST", MetricsPath, bytes.NewReader(bodies[i%len(bodies)]))
		r.Header.Set("Content-Type", "application/x-protobuf")
		if gz {
			r.Header.Set("Content-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if i%len(bodies) == len(bodies)-1 {
			c.Add(80 * time.Second) // the next replay is later
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	per := float64(b.N) * float64(real) / 1000
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/1000pts")
	b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/1000pts")
	b.ReportMetric(float64(real), "points/op")
}

// anyAgent admits every request for the agent its service.instance.id
// names (the benchmark measures the receiver, not the credential checks).
type anyAgent struct{}

func (anyAgent) AuthenticateTelemetry(*http.Request) (Caller, error) { return anyAgent{}, nil }
func (anyAgent) Agent(_ context.Context, sid string) (steward.InstanceUID, error) {
	return steward.ParseInstanceUID(sid)
}

func BenchmarkIngest(b *testing.B) {
	for _, points := range []int{100, 1000} {
		b.Run(fmt.Sprintf("points=%d", points), func(b *testing.B) { benchIngest(b, points, false) })
		b.Run(fmt.Sprintf("points=%d/gzip", points), func(b *testing.B) { benchIngest(b, points, true) })
	}
}
