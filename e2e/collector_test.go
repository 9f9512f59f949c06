package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/daemon"
	"github.com/stewardhq/steward/internal/testenv"
)

type api struct {
	t    *testing.T
	base string
}

func (a *api) call(method, path string, body, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := nethttp.NewRequest(method, a.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 && out != nil {
		a.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (a *api) agent(id steward.InstanceUID) *steward.Agent {
	var ag steward.Agent
	if a.call("GET", "/api/v1/agents/"+id.String(), nil, nil) != 200 {
		return nil
	}
	a.call("GET", "/api/v1/agents/"+id.String(), nil, &ag)
	return &ag
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// collectorsUnder lists live processes whose command line mentions marker.
func collectorsUnder(marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("steward-supervisor")) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && bytes.Contains(st, []byte(") Z ")) {
			continue // a zombie is already dead
		}
		out = append(out, pid)
	}
	return out
}

// TestCollectorUnderSupervisorWithSteward is the whole system: a Steward
// server, steward-supervisor in collector mode and a real collector. A good
// config pushed through the REST API runs; a bad one is reported FAILED,
// the previous config is restored and the collector keeps running; restart
// works; SIGTERM leaves no collector behind.
func TestCollectorUnderSupervisorWithSteward(t *testing.T) {
	otelcol := testenv.Getenv(t, "STEWARD_OTELCOL_BIN",
		"build a collector with scripts/build-otelcol.sh and export STEWARD_OTELCOL_BIN=<the path it prints>")
	dir := t.TempDir()
	supBin := filepath.Join(dir, "steward-supervisor")
	if out, err := exec.Command("go", "build", "-o", supBin, "../cmd/steward-supervisor").CombinedOutput(); err != nil {
		t.Fatalf("build steward-supervisor: %v\n%s", err, out)
	}

	// The Steward server.
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{OpAMPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "steward"),
			AdminPassword: "-", Replica: "e2e", Ready: func(o, h net.Addr) { ready <- [2]net.Addr{o, h} }})
	}()
	var addrs [2]net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("steward server: %v", err)
	}
	defer func() { cancel(); <-done }()
	s := &api{t: t, base: "http://" + addrs[1].String()}

	// The supervisor, with a local base config: a nop pipeline.
	storage := filepath.Join(dir, "supervisor")
	local := filepath.Join(dir, "local.yaml")
	os.WriteFile(local, []byte("receivers: {nop: {}}\nexporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [nop], exporters: [nop]}\n"), 0o644)
	cfgPath := filepath.Join(dir, "supervisor.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
server:
  endpoint: ws://%s/v1/opamp
agent:
  mode: collector
  executable: %s
  local_config_files: [%s]
  config_apply_timeout: 60s
  bootstrap_timeout: 60s
  stop_timeout: 10s
  description:
    non_identifying_attributes: {env: e2e}
storage:
  directory: %s
`, addrs[0], otelcol, local, storage)), 0o644)
	var logs lockedBuffer
	sup := exec.Command(supBin, "--config", cfgPath)
	sup.Stdout, sup.Stderr = &logs, &logs
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sup.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("supervisor log:\n%s", logs.String())
		}
		_ = sup.Process.Kill()
	}()

	var id steward.InstanceUID
	eventually(t, "the supervisor's instance uid", 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(storage, "instance_uid"))
		if err != nil {
			return false
		}
		id, err = steward.ParseInstanceUID(strings.TrimSpace(string(b)))
		return err == nil
	})
	eventually(t, "the collector in Steward's inventory, healthy", 90*time.Second, func() bool {
		a := s.agent(id)
		return a != nil && a.Online && a.Healthy() && a.Attribute("service.name") != "" && a.Attribute("env") == "e2e" &&
			a.Capabilities.Has(steward.AgentAcceptsRemoteConfig)
	})

	// A good config, assigned by label selector through the API.
	good := "exporters:\n  debug: {verbosity: basic}\nservice:\n  pipelines:\n    traces: {receivers: [nop], exporters: [debug]}\n"
	s.call("PUT", "/api/v1/configs/pipeline", map[string]any{"files": map[string]any{"": map[string]string{"body": good, "content_type": "text/yaml"}}}, &steward.Config{})
	s.call("PUT", "/api/v1/assignments/e2e", map[string]any{"name": "e2e", "config": "pipeline", "selector": "env=e2e"}, &steward.Assignment{})
	var goodHash []byte
	eventually(t, "good config APPLIED and running", 90*time.Second, func() bool {
		a := s.agent(id)
		if a == nil || a.RemoteConfigStatus == nil || a.RemoteConfigStatus.Status != steward.RemoteConfigApplied || a.EffectiveConfig == nil {
			return false
		}
		goodHash = a.RemoteConfigStatus.LastRemoteConfigHash
		for _, f := range *a.EffectiveConfig {
			if strings.Contains(string(f.Body), "debug") {
				return a.Healthy()
			}
		}
		return false
	})
	pids := collectorsUnder(storage)
	if len(pids) != 1 {
		t.Fatalf("want one collector running, found %v", pids)
	}

	// A bad config: FAILED with the collector's reason, previous config
	// restored, collector still running.
	bad := "exporters:\n  debug: {verbosity: nonsense}\nservice:\n  pipelines:\n    traces: {receivers: [nop], exporters: [debug]}\n"
	s.call("PUT", "/api/v1/configs/pipeline", map[string]any{"files": map[string]any{"": map[string]string{"body": bad, "content_type": "text/yaml"}}}, &steward.Config{})
	eventually(t, "bad config FAILED", 90*time.Second, func() bool {
		a := s.agent(id)
		return a != nil && a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigFailed &&
			!bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, goodHash)
	})
	a := s.agent(id)
	if a.RemoteConfigStatus.ErrorMessage == "" {
		t.Fatal("FAILED without a reason")
	}
	t.Logf("reported failure: %s", a.RemoteConfigStatus.ErrorMessage)
	eventually(t, "collector healthy again on the previous config", 90*time.Second, func() bool {
		a := s.agent(id)
		return a != nil && a.Healthy() && len(collectorsUnder(storage)) == 1
	})
	var events struct{ Events []steward.Event }
	s.call("GET", "/api/v1/agents/"+id.String()+"/events?limit=200", nil, &events)
	failed := 0
	for _, e := range events.Events {
		if e.Type == steward.EventRemoteConfigStatus && strings.Contains(e.Message, "FAILED") {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no FAILED status event in the agent's history")
	}

	// Restart through the API: a new collector process.
	before := collectorsUnder(storage)
	if code := s.call("POST", "/api/v1/agents/"+id.String()+"/restart", nil, nil); code >= 300 {
		t.Fatalf("restart: %d", code)
	}
	eventually(t, "a new collector process after restart", 90*time.Second, func() bool {
		now := collectorsUnder(storage)
		return len(now) == 1 && len(before) == 1 && now[0] != before[0]
	})
	eventually(t, "healthy after restart", 90*time.Second, func() bool { a := s.agent(id); return a != nil && a.Healthy() })

	// SIGTERM: the supervisor stops the collector, says goodbye, and exits.
	_ = sup.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not exit on SIGTERM")
	}
	if left := collectorsUnder(storage); len(left) != 0 {
		t.Fatalf("collector processes left behind: %v", left)
	}
	eventually(t, "agent offline in Steward", 30*time.Second, func() bool { a := s.agent(id); return a != nil && !a.Online })
}
