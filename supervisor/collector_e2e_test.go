package supervisor

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/internal/testenv"
	"github.com/stewardhq/steward/supervisor/internal/testserver"
)

// collectorPIDs lists live processes whose command line mentions marker
// (the test's storage directory, which every collector run is given).
func collectorPIDs(marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(marker)) && !bytes.Contains(b, []byte("steward-supervisor")) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestCollectorEndToEnd runs the steward-supervisor binary in collector mode
// against a real OpAMP server and a real collector built by
// scripts/build-otelcol.sh (STEWARD_OTELCOL_BIN).
func TestCollectorEndToEnd(t *testing.T) {
	otelcol := testenv.Getenv(t, "STEWARD_OTELCOL_BIN",
		"build a collector with scripts/build-otelcol.sh and export STEWARD_OTELCOL_BIN=<the path it prints>")
	dir := t.TempDir()
	supBin := filepath.Join(dir, "steward-supervisor")
	if out, err := exec.Command("go", "build", "-o", supBin, "../cmd/steward-supervisor").CombinedOutput(); err != nil {
		t.Fatalf("build steward-supervisor: %v\n%s", err, out)
	}
	srv := testserver.Start(t)
	storage := filepath.Join(dir, "state")
	local := filepath.Join(dir, "local.yaml")
	writeFile(t, local, `
receivers: {nop: {}}
exporters: {nop: {}}
service:
  pipelines:
    traces: {receivers: [nop], exporters: [nop]}
`)
	cfgPath := filepath.Join(dir, "supervisor.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`
server:
  endpoint: %s
agent:
  mode: collector
  executable: %s
  local_config_files: [%s]
  config_apply_timeout: 60s
  bootstrap_timeout: 60s
  stop_timeout: 10s
  description:
    non_identifying_attributes: {deployment.environment: e2e}
storage:
  directory: %s
telemetry:
  logs: {level: debug}
`, srv.URL, otelcol, local, storage))
	var logBuf lockedBuffer
	cmd := exec.Command(supBin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("supervisor log:\n%s", logBuf.String())
		}
		_ = cmd.Process.Kill()
	}()

	var uid steward.InstanceUID
	eventually(t, "instance uid file", func() bool {
		b, err := os.ReadFile(filepath.Join(storage, "instance_uid"))
		if err != nil {
			return false
		}
		u, err := steward.ParseInstanceUID(strings.TrimSpace(string(b)))
		uid = u
		return err == nil
	})
	eventually(t, "collector healthy with description and components", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && a.Health.Healthy && a.Description != nil && a.AvailableComponents != nil
	})
	a := srv.Agent(uid)
	attrs := map[string]string{}
	for _, kv := range append(a.Description.IdentifyingAttributes, a.Description.NonIdentifyingAttributes...) {
		attrs[kv.Key] = kv.GetValue().GetStringValue()
	}
	if attrs["service.name"] == "" || attrs["deployment.environment"] != "e2e" {
		t.Errorf("description attributes = %v", attrs)
	}
	if _, ok := a.AvailableComponents.Components["receivers"]; !ok {
		t.Errorf("available components lack receivers: %v", a.AvailableComponents.Components)
	}

	good := srv.PushConfig(uid, map[string]string{"pipeline.yaml": `
exporters:
  debug: {verbosity: basic}
service:
  pipelines:
    traces: {receivers: [nop], exporters: [debug]}
`})
	eventually(t, "good config APPLIED", func() bool {
		return hasStatus(srv.Agent(uid), good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	})
	eventually(t, "effective config reported", func() bool {
		// The collector's own rendering (defaults filled in).
		e := effective(srv.Agent(uid))
		return strings.Contains(e, "sampling_initial:") && strings.Contains(e, "- debug")
	})
	// Own telemetry: the offer lands in service.telemetry and the collector
	// runs with it.
	otlpAddr := freePort(t)
	offerHash := []byte("offer-1")
	err := srv.Send(uid, &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
		Hash: offerHash,
		OwnMetrics: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://" + otlpAddr + "/v1/metrics",
			Headers: &protobufs.Headers{Headers: []*protobufs.Header{{Key: "authorization", Value: "Bearer t0ken"}}}},
		OwnLogs: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://" + otlpAddr + "/v1/logs"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "own telemetry APPLIED", func() bool {
		cs := srv.Agent(uid).ConnectionStatus
		return cs != nil && string(cs.LastConnectionSettingsHash) == string(offerHash) &&
			cs.Status == protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED
	})
	eventually(t, "effective config with own telemetry", func() bool {
		e := effective(srv.Agent(uid))
		return strings.Contains(e, otlpAddr+"/v1/metrics") && strings.Contains(e, otlpAddr+"/v1/logs")
	})
	if f := mustRead(t, filepath.Join(storage, "effective.yaml")); !strings.Contains(f, "Bearer t0ken") || !strings.Contains(f, "verbosity: basic") {
		t.Errorf("collector config file lacks the offered header or the remote config:\n%s", f)
	}
	goodEff := effective(srv.Agent(uid))
	goodFile := mustRead(t, filepath.Join(storage, "effective.yaml"))
	pids := collectorPIDs(storage)
	if len(pids) != 1 {
		t.Fatalf("collector processes after good config: %v", pids)
	}
	goodPID := pids[0]

	bad := srv.PushConfig(uid, map[string]string{"pipeline.yaml": `
service:
  pipelines:
    traces: {receivers: [nop], exporters: [otlp_grpc/missing]}
`})
	eventually(t, "bad config FAILED", func() bool {
		return hasStatus(srv.Agent(uid), bad, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	})
	if msg := srv.Agent(uid).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "invalid configuration") {
		t.Errorf("FAILED message = %q", msg)
	}
	eventually(t, "collector back on the good config and healthy", func() bool {
		b, _ := os.ReadFile(filepath.Join(storage, "effective.yaml"))
		a := srv.Agent(uid)
		p := collectorPIDs(storage)
		return string(b) == goodFile && len(p) == 1 && p[0] != goodPID && a.Health != nil && a.Health.Healthy
	})
	eventually(t, "effective config after rollback", func() bool { return effective(srv.Agent(uid)) == goodEff })

	// SIGTERM: the supervisor stops the collector and leaves no orphan.
	collector := collectorPIDs(storage)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("supervisor exit: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not exit on SIGTERM")
	}
	for _, pid := range collector {
		if alive(pid) {
			t.Errorf("collector %d outlived the supervisor", pid)
		}
	}
	if left := collectorPIDs(storage); len(left) != 0 {
		t.Errorf("processes left behind: %v", left)
	}
	eventually(t, "server sees the disconnect", func() bool { return !srv.Agent(uid).Connected })
}

// A collector with no local config and no remote config yet runs a nop
// pipeline with the opamp extension, healthy, instead of refusing the
// extension-only config ("no receiver configuration specified") in a crash
// loop; the first remote config replaces the nop pipeline.
func TestCollectorWithoutPipelineRunsNopPipeline(t *testing.T) {
	otelcol := testenv.Getenv(t, "STEWARD_OTELCOL_BIN",
		"build a collector with scripts/build-otelcol.sh and export STEWARD_OTELCOL_BIN=<the path it prints>")
	srv := testserver.Start(t)
	dir := t.TempDir()
	storage := filepath.Join(dir, "state")
	h := &genericHarness{t: t, dir: dir, cfgPath: filepath.Join(dir, "supervisor.yaml")}
	writeFile(t, h.cfgPath, fmt.Sprintf(`
server: {endpoint: %s}
agent:
  mode: collector
  executable: %s
  config_apply_timeout: 60s
  bootstrap_timeout: 60s
  restart: {initial_backoff: 100ms, max_backoff: 1s, crash_loop_count: 3}
storage: {directory: %s}
`, srv.URL, otelcol, storage))
	h.start()
	uid := h.sup.InstanceUID()
	eventually(t, "collector healthy before any remote config", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && a.Health.Healthy && a.Health.ComponentHealthMap["collector"] != nil
	})
	if f := mustRead(t, filepath.Join(storage, "effective.yaml")); !strings.Contains(f, "nop/steward_supervisor") {
		t.Fatalf("no nop pipeline in the collector's config:\n%s", f)
	}
	pids := collectorPIDs(storage)
	if len(pids) != 1 {
		t.Fatalf("collector processes: %v", pids)
	}

	port := freePort(t)
	good := srv.PushConfig(uid, map[string]string{"": fmt.Sprintf(`
receivers:
  otlp: {protocols: {http: {endpoint: "%s"}}}
exporters:
  debug: {}
service:
  pipelines:
    logs: {receivers: [otlp], exporters: [debug]}
`, port)})
	eventually(t, "remote config APPLIED", func() bool {
		a := srv.Agent(uid)
		return hasStatus(a, good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED) && a.Health.Healthy
	})
	if f := mustRead(t, filepath.Join(storage, "effective.yaml")); strings.Contains(f, nopComponent) {
		t.Fatalf("the nop pipeline outlived the remote config:\n%s", f)
	}
	conn, err := net.Dial("tcp", port)
	if err != nil {
		t.Fatalf("the remote config's OTLP receiver does not answer: %v", err)
	}
	conn.Close()
}
