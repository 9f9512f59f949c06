package uitest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestAgentTelemetryCharts: a real collector (the one CI builds) run by
// steward-supervisor takes the "send own telemetry to Steward" preset and
// exports its internal metrics to Steward's receiver while the test sends
// spans through it; the agent page's Telemetry tab charts them, with the
// spans received and sent, and the overview charts the fleet.
func TestAgentTelemetryCharts(t *testing.T) {
	otelcol := testenv.Getenv(t, "STEWARD_OTELCOL_BIN",
		"build a collector with scripts/build-otelcol.sh and export STEWARD_OTELCOL_BIN=<the path it prints>")
	b := startBrowser(t)
	s := startStack(t)
	ctx := context.Background()

	// The preset, turned on in the console.
	p := b.newPage(t, s.base, "light")
	p.goTo("/admin/connection-settings")
	login(t, p)
	p.click(`[data-testid="conn-new"]`)
	p.typeInto(`[data-testid="conn-name"]`, "own-telemetry")
	p.click(`[data-testid="conn-steward-telemetry"]`)
	p.waitFor(`document.querySelector('[data-testid="conn-own_metrics"]').closest('[hidden]')`, "the own-metrics editor hidden by the preset")
	p.click(`[data-testid="conn-dialog-submit"]`)
	p.waitFor(sel(`[data-testid="conn-row"][data-name="own-telemetry"] [data-testid="conn-steward-telemetry-on"]`), "the preset listed")
	if cs, err := s.cp.ConnectionSettings(ctx, "own-telemetry"); err != nil || !cs.StewardTelemetry || cs.OwnMetrics != nil {
		t.Fatalf("stored settings: %+v, %v", cs, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	otlpAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	local := filepath.Join(dir, "local.yaml")
	os.WriteFile(local, []byte(fmt.Sprintf("receivers:\n  otlp: {protocols: {http: {endpoint: %q}}}\nexporters:\n  debug: {verbosity: basic}\n"+
		"service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n", otlpAddr)), 0o644)
	sup, sctx := runSupervisor(t, fmt.Sprintf(`
server:
  endpoint: %s
agent:
  mode: collector
  executable: %s
  local_config_files: [%s]
  config_apply_timeout: 60s
  bootstrap_timeout: 60s
  stop_timeout: 10s
storage:
  directory: %s
`, s.opampURL, otelcol, local, filepath.Join(dir, "state")))

	// Spans through the collector until the test ends.
	traces := ptrace.NewTraces()
	spans := traces.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := range 25 {
		sp := spans.AppendEmpty()
		sp.SetName("span")
		sp.SetTraceID([16]byte{1, byte(i)})
		sp.SetSpanID([8]byte{2, byte(i)})
	}
	body, _ := ptraceotlp.NewExportRequestFromTraces(traces).MarshalProto()
	go func() {
		for sctx.Err() == nil {
			if resp, err := nethttp.Post("http://"+otlpAddr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body)); err == nil {
				resp.Body.Close()
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()

	id := sup.InstanceUID()
	waitAgent(t, s, id, "online with the own-telemetry settings applied", func(a *steward.Agent) bool {
		return a.Online && a.ConnectionStatus != nil && a.ConnectionStatus.Status == "APPLIED"
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		at, err := s.tel.AgentTelemetry(ctx, id, 5*time.Minute)
		if err == nil && nonNull(at.Series["received"]) && nonNull(at.Series["sent"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no received/sent spans in the agent's own telemetry after 2m: %+v %v", at, err)
		}
		time.Sleep(time.Second)
	}

	p.goTo("/agents/" + id.String() + "?tab=telemetry")
	p.waitFor(sel(`[data-testid="tab-panel-telemetry"]:not([hidden]) [data-testid="chart-throughput"]`), "the throughput chart on the Telemetry tab")
	p.waitFor(`Number(document.querySelector('[data-testid="telemetry-received-total"]').dataset.value) > 0 &&
		Number(document.querySelector('[data-testid="telemetry-sent-total"]').dataset.value) > 0`, "received and sent counts above zero")
	// Levels land in the slot being filled: memory shows one export later.
	p.waitFor(`document.querySelector('[data-testid="chart-memory"] .chart-key b').textContent !== '—'`, "the collector's memory on the chart")
	var shown struct {
		Received, Sent, Path, Label string
		Charts                      int
	}
	p.js(`({received: document.querySelector('[data-testid="telemetry-received-total"]').textContent,
		sent: document.querySelector('[data-testid="telemetry-sent-total"]').textContent,
		path: document.querySelector('[data-testid="chart-throughput"] [data-series="received"] path').getAttribute('d') || '',
		label: document.querySelector('[data-testid="chart-throughput"] svg').getAttribute('aria-label'),
		charts: document.querySelectorAll('[data-testid="agent-telemetry"] svg.chart').length})`, &shown)
	if shown.Charts != 5 || len(shown.Path) < 4 || shown.Received == "0" || shown.Sent == "0" {
		t.Fatalf("telemetry tab: %+v", shown)
	}
	t.Logf("Telemetry tab: received %s, sent %s; %s", shown.Received, shown.Sent, shown.Label)
	p.screenshot("agent-telemetry")

	p.goTo("/")
	p.waitFor(sel(`[data-testid="chart-fleet-throughput"] [data-series="sent"] path[d^="M"]`), "the fleet throughput chart on the overview")
	p.waitFor(sel(`[data-testid="top-drops-none"]`), "no agent listed by drops")
	p.screenshot("overview-telemetry")
	noJSErrors(t, p)
}

func nonNull(vs []*float64) bool {
	for _, v := range vs {
		if v != nil && *v > 0 {
			return true
		}
	}
	return false
}
