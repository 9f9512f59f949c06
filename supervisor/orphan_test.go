package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/supervisor/internal/testserver"
)

// TestKilledSupervisorLeavesNoOrphan kills steward-supervisor with SIGKILL
// (no chance to clean up): the kernel must take the agent down with it
// (Pdeathsig). Children of the agent itself are not covered: only a
// graceful stop reaches the whole process group.
func TestKilledSupervisorLeavesNoOrphan(t *testing.T) {
	dir := t.TempDir()
	supBin := filepath.Join(dir, "steward-supervisor")
	if out, err := exec.Command("go", "build", "-o", supBin, "../cmd/steward-supervisor").CombinedOutput(); err != nil {
		t.Fatalf("build steward-supervisor: %v\n%s", err, out)
	}
	srv := testserver.Start(t)
	pidFile := filepath.Join(dir, "pids")
	local := filepath.Join(dir, "local.yaml")
	writeFile(t, local, "pid_file: "+pidFile+"\n")
	agentCfg := filepath.Join(dir, "agent.yaml")
	cfgPath := filepath.Join(dir, "supervisor.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`
server: {endpoint: %s}
agent:
  mode: generic
  executable: %s
  args: [-config, %s]
  config_file: %s
  local_config_files: [%s]
storage: {directory: %s}
`, srv.URL, testAgent, agentCfg, agentCfg, local, filepath.Join(dir, "state")))
	cmd := exec.Command(supBin, "--config", cfgPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pids []int
	eventually(t, "agent started", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pids = nil
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		return len(pids) == 1 && alive(pids[0])
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	eventually(t, "agent gone", func() bool { return !alive(pids[0]) })
}

// A remote config that cannot be rendered is FAILED at once and the agent
// is left alone.
func TestUnrenderableConfigLeavesAgentAlone(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	h := newGeneric(t, srv.URL, dir, "pid_file: "+filepath.Join(dir, "pid")+"\n", "")
	uid := h.sup.InstanceUID()
	eventually(t, "healthy", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && a.Health.Healthy && h.agentPID() != 0
	})
	pid := h.agentPID()
	hash := srv.PushConfig(uid, map[string]string{"bad.yaml": "- not\n- a mapping\n"})
	eventually(t, "FAILED", func() bool {
		return hasStatus(srv.Agent(uid), hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	})
	if msg := srv.Agent(uid).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, `"bad.yaml"`) || !strings.Contains(msg, "mapping") {
		t.Errorf("error = %q", msg)
	}
	if h.agentPID() != pid || !alive(pid) {
		t.Fatalf("agent disturbed: pid %d -> %d", pid, h.agentPID())
	}
}
