package e2eutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// CollectorSupervisor is steward-supervisor running a collector (collector
// mode) as a child process, started by StartCollectorSupervisor.
type CollectorSupervisor struct {
	Cmd     *exec.Cmd
	Storage string // its storage directory (the collector's command line names it)
	ID      steward.InstanceUID
	Logs    *LockedBuffer
	Exited  chan error // receives the process's exit
}

// StartCollectorSupervisor builds cmd/steward-supervisor (from a test in
// e2e/), configures it in collector mode — otelcol as the agent, local as
// its local config, agentExtra (YAML indented for the agent: section)
// appended — and starts it against the OpAMP endpoint; it returns once the
// supervisor has its instance uid. The process is killed when the test
// ends, its log printed if the test failed.
func StartCollectorSupervisor(t testing.TB, endpoint, otelcol, local, agentExtra string) *CollectorSupervisor {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "steward-supervisor")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/steward-supervisor").CombinedOutput(); err != nil {
		t.Fatalf("build steward-supervisor: %v\n%s", err, out)
	}
	localPath, cfgPath := filepath.Join(dir, "local.yaml"), filepath.Join(dir, "supervisor.yaml")
	s := &CollectorSupervisor{Storage: filepath.Join(dir, "supervisor"), Logs: &LockedBuffer{}, Exited: make(chan error, 1)}
	cfg := fmt.Sprintf(`
server:
  endpoint: %s
agent:
  mode: collector
  executable: %s
  local_config_files: [%s]
  config_apply_timeout: 60s
  bootstrap_timeout: 60s
  stop_timeout: 10s
%sstorage:
  directory: %s
`, endpoint, otelcol, localPath, agentExtra, s.Storage)
	if err := os.WriteFile(localPath, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Cmd = exec.Command(bin, "--config", cfgPath)
	s.Cmd.Stdout, s.Cmd.Stderr = s.Logs, s.Logs
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.Exited <- s.Cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("supervisor log:\n%s", s.Logs.String())
		}
		_ = s.Cmd.Process.Kill()
	})
	Eventually(t, "the supervisor's instance uid", 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(s.Storage, "instance_uid"))
		if err != nil {
			return false
		}
		s.ID, err = steward.ParseInstanceUID(strings.TrimSpace(string(b)))
		return err == nil
	})
	return s
}
