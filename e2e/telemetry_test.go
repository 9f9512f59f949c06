package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/e2e/e2eutil"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestCollectorOwnTelemetryToSteward: the "send own telemetry to Steward"
// preset, set through the REST API, reaches a real collector run by
// steward-supervisor; the collector exports its internal metrics to
// Steward's OTLP receiver on the OpAMP listener, and the agent's series —
// spans received and sent while the test sends traces through the
// collector, CPU, memory, queue — come back over the API.
func TestCollectorOwnTelemetryToSteward(t *testing.T) {
	otelcol := testenv.Getenv(t, "STEWARD_OTELCOL_BIN",
		"build a collector with scripts/build-otelcol.sh and export STEWARD_OTELCOL_BIN=<the path it prints>")
	st := e2eutil.StartSteward(t)
	s := st.API
	s.Call("PUT", "/api/v1/connection-settings/own-telemetry", map[string]any{"selector": "", "steward_telemetry": true}, &steward.ConnectionSettings{})

	// The collector: an OTLP/HTTP receiver on a free port, a debug exporter.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	otlpAddr := ln.Addr().String()
	ln.Close()
	id := e2eutil.StartCollectorSupervisor(t, st.WS(), otelcol, fmt.Sprintf(`receivers:
  otlp: {protocols: {http: {endpoint: "%s"}}}
exporters:
  debug: {verbosity: basic}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
`, otlpAddr), "").ID
	e2eutil.Eventually(t, "the collector applied the own-telemetry offer", 90*time.Second, func() bool {
		a := s.Agent(id)
		return a != nil && a.Online && a.Healthy() && a.ConnectionStatus != nil &&
			a.ConnectionStatus.Status == "APPLIED"
	})

	// Traffic through the collector, and its own telemetry in Steward.
	traces := ptrace.NewTraces()
	spans := traces.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := range 10 {
		sp := spans.AppendEmpty()
		sp.SetName(fmt.Sprintf("span-%d", i))
		sp.SetTraceID([16]byte{1, byte(i)})
		sp.SetSpanID([8]byte{2, byte(i)})
	}
	body, _ := ptraceotlp.NewExportRequestFromTraces(traces).MarshalProto()
	sent := 0
	var tel steward.AgentTelemetry
	total := func(name string) (sum float64, n int) {
		for _, v := range tel.Series[name] {
			if v != nil {
				sum += *v
				n++
			}
		}
		return
	}
	e2eutil.Eventually(t, "received and sent spans, CPU and memory in the agent's own telemetry", 120*time.Second, func() bool {
		resp, err := http.Post("http://"+otlpAddr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err == nil {
			if resp.StatusCode == 200 {
				sent += 10
			}
			resp.Body.Close()
		}
		time.Sleep(500 * time.Millisecond)
		s.Call("GET", "/api/v1/agents/"+id.String()+"/telemetry?window=5m", nil, &tel)
		rx, _ := total("received")
		tx, _ := total("sent")
		mem, _ := total("memory_rss")
		_, cpu := total("cpu")
		return rx > 0 && tx > 0 && mem > 0 && cpu > 0
	})
	rx, _ := total("received")
	tx, _ := total("sent")
	if refused, _ := total("refused"); refused != 0 {
		t.Errorf("refused %v spans/s, want none", refused)
	}
	// Each slot is a rate over 10 s: the slots' sum × 10 is the items
	// counted so far, at most what the test sent.
	if rx*10 > float64(sent)+0.5 || tx*10 > float64(sent)+0.5 {
		t.Errorf("received %.1f and sent %.1f spans in Steward's series, but only %d were sent to the collector", rx*10, tx*10, sent)
	}
	t.Logf("spans sent to the collector %d; in Steward: received %.1f, sent %.1f; last received %v", sent, rx*10, tx*10, tel.LastReceived)
	var fleet steward.FleetTelemetry
	s.Call("GET", "/api/v1/telemetry?window=5m", nil, &fleet)
	if fleet.Agents != 1 {
		t.Errorf("fleet telemetry counts %d agents, want 1", fleet.Agents)
	}
}
