package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
)

// 'steward events' prints one line per event, naming the config version of
// config events; --details adds the details with hashes cut to 12 digits
// (issue 13: "messages wrap to 3-5 lines ... 64-character hashes").
func TestEventsOneLine(t *testing.T) {
	e := newEnv(t)
	id := e.connect("otelcol", "0.120.0", "web-1", steward.AgentAcceptsRemoteConfig)
	ctx := context.Background()
	if _, err := e.cp.PutConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("a: 1\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cp.PutAssignment(ctx, &steward.Assignment{Name: "all", ConfigName: "base", Selector: "service.name=otelcol"}); err != nil {
		t.Fatal(err)
	}
	_, hash, err := e.cp.DesiredConfig(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.send(id, &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: 2,
		Capabilities: uint64(steward.AgentReportsStatus | steward.AgentReportsHealth | steward.AgentAcceptsRemoteConfig | steward.AgentReportsRemoteConfig),
		RemoteConfigStatus: &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED,
			ErrorMessage: "error decoding 'exporters': unknown type: \"otlpx\"\nline two of the collector's error\nline three"}}); err != nil {
		t.Fatal(err)
	}
	full := steward.Hash(hash).String()
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) { // the event log is written asynchronously
		out = e.mustRun("events", "--agent", id.String(), "--type", "agent.config_status")
		if strings.Contains(out, "FAILED") || time.Now().After(deadline) {
			break
		}
	}
	if want := `remote config FAILED base@1: error decoding 'exporters': unknown type: "otlpx" …`; !strings.Contains(out, want) {
		t.Errorf("events lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "line two") || strings.Contains(out, full) {
		t.Errorf("events is not one line per event:\n%s", out)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 1 {
		t.Errorf("%d lines for one event (and the header):\n%s", n+1, out)
	}
	out = e.mustRun("events", "--agent", id.String(), "--type", "agent.config_status", "--details")
	for _, want := range []string{"    hash: " + full[:12] + "\n", "    error_message: error decoding", "      line two of the collector's error\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("events --details lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, full) {
		t.Errorf("events --details shows the whole hash:\n%s", out)
	}
	if _, errs, code := e.run("events", "--since", "soon"); code == 0 || !strings.Contains(errs, "--since") {
		t.Errorf("--since soon: %d %s", code, errs)
	}
}
