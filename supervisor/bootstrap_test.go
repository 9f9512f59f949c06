package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/supervisor/internal/testserver"
)

// pickyAgent is a small real generic agent, a shell script that behaves like
// syslog-ng on a missing config: it refuses an empty config file (exit 1),
// refuses one that says "fail", and otherwise runs until stopped. Every
// start appends its pid to the starts file. A config counts as applied
// once the script has stayed up 2 s (health.min_uptime): a shell exits in
// well under that even on a loaded machine.
const pickyAgent = `#!/bin/sh
config=$1 starts=$2
echo $$ >>"$starts"
if [ ! -s "$config" ]; then echo "Error: no configuration in $config" >&2; exit 1; fi
if grep -q '^fail' "$config"; then echo "Error: invalid configuration: $(cat "$config")" >&2; exit 1; fi
echo "running on: $(cat "$config")"
exec sleep 3600
`

type pickyHarness struct {
	*genericHarness
	starts string // one pid per line, per start
}

// newPicky starts a generic supervisor over pickyAgent with extra appended
// under agent: and no local config files.
func newPicky(t *testing.T, srv *testserver.Server, extra string) *pickyHarness {
	dir := t.TempDir()
	script := filepath.Join(dir, "picky.sh")
	writeFile(t, script, pickyAgent)
	h := &pickyHarness{genericHarness: &genericHarness{t: t, dir: dir, agentCf: filepath.Join(dir, "agent.conf")}, starts: filepath.Join(dir, "starts")}
	h.cfgPath = filepath.Join(dir, "supervisor.yaml")
	writeFile(t, h.cfgPath, fmt.Sprintf(`
server: {endpoint: %s}
agent:
  mode: generic
  executable: /bin/sh
  args: [%s, %s, %s]
  config_file: %s
  health: {min_uptime: 2s, interval: 200ms}
  config_apply_timeout: 20s
  stop_timeout: 5s
  restart: {initial_backoff: 50ms, max_backoff: 400ms, crash_loop_count: 3, crash_loop_window: 1m}
%s
storage: {directory: %s}
`, srv.URL, script, h.agentCf, h.starts, h.agentCf, extra, filepath.Join(dir, "state")))
	h.start()
	return h
}

// pids returns the pid of every start so far.
func (h *pickyHarness) pids() []int {
	b, _ := os.ReadFile(h.starts)
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// running reports whether the agent's latest start is alive.
func (h *pickyHarness) running() bool {
	p := h.pids()
	return len(p) > 0 && alive(p[len(p)-1])
}

func waiting(a *testserver.Agent) bool {
	return a != nil && a.Health != nil && !a.Health.Healthy && a.Health.Status == "waiting for a remote config" && a.Health.LastError == ""
}

// A generic agent with no config at all is not started (it would only exit,
// over and over, into a crash loop): the supervisor reports it waiting, and
// starts it with the first remote config. A first config that fails stops
// it again.
func TestGenericWaitsForFirstConfig(t *testing.T) {
	srv := testserver.Start(t)
	h := newPicky(t, srv, "")
	uid := h.sup.InstanceUID()
	eventually(t, "agent connected, waiting for a config", func() bool { return waiting(srv.Agent(uid)) })
	if p := h.pids(); len(p) != 0 {
		t.Fatalf("the agent was started without a config: starts %v, health %v", p, srv.Agent(uid).Health)
	}

	bad := srv.PushConfig(uid, map[string]string{"": "fail: please\n"})
	eventually(t, "bad first config FAILED", func() bool {
		return hasStatus(srv.Agent(uid), bad, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	})
	if msg := srv.Agent(uid).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "invalid configuration: fail: please") {
		t.Errorf("FAILED message = %q", msg)
	}
	eventually(t, "agent stopped and waiting again", func() bool { return waiting(srv.Agent(uid)) && !h.running() })

	good := srv.PushConfig(uid, map[string]string{"": "source: s_local\n"})
	eventually(t, "good config APPLIED, agent healthy", func() bool {
		a := srv.Agent(uid)
		return hasStatus(a, good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED) && a.Health.Healthy && h.running()
	})
	if a := srv.Agent(uid); a.Health.LastError != "" || a.Health.Status != "running" {
		t.Fatalf("health after the good config = %v", a.Health)
	}
}

// agent.initial_config_file is what a generic agent runs before its first
// remote config and returns to when a remote config fails with no earlier
// good one; a remote config replaces it (it is not merged under it).
func TestGenericInitialConfig(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	initial := filepath.Join(dir, "initial.conf")
	writeFile(t, initial, "source: initial\n")
	h := newPicky(t, srv, "  initial_config_file: "+initial+"\n")
	uid := h.sup.InstanceUID()
	eventually(t, "healthy on the initial config", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && a.Health.Healthy && h.running() && strings.Contains(mustRead(t, h.agentCf), "source: initial")
	})
	first := h.pids()

	bad := srv.PushConfig(uid, map[string]string{"": "fail: please\n"})
	eventually(t, "bad config FAILED", func() bool {
		return hasStatus(srv.Agent(uid), bad, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	})
	eventually(t, "back on the initial config, healthy", func() bool {
		a := srv.Agent(uid)
		return a.Health.Healthy && h.running() && len(h.pids()) > len(first) && strings.Contains(mustRead(t, h.agentCf), "source: initial")
	})

	good := srv.PushConfig(uid, map[string]string{"": "source: remote\n"})
	eventually(t, "remote config APPLIED", func() bool {
		return hasStatus(srv.Agent(uid), good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	})
	if f := mustRead(t, h.agentCf); !strings.Contains(f, "source: remote") || strings.Contains(f, "initial") {
		t.Fatalf("agent config after the remote config:\n%s", f)
	}
}

// A crash loop ends when a new config runs healthy: health is healthy with
// no crash-loop error. (That the next exit starts a new count is
// TestRunnerRestartEndsCrashLoop in agentproc.)
func TestGenericCrashLoopEndsWithGoodConfig(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	h := newGeneric(t, srv.URL, dir, "behavior: crash\nexit_code: 4\n",
		"  restart: {initial_backoff: 20ms, max_backoff: 100ms, crash_loop_count: 3, crash_loop_window: 1m}\n")
	uid := h.sup.InstanceUID()
	eventually(t, "crash loop", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && !a.Health.Healthy && strings.Contains(a.Health.LastError, "crash loop")
	})
	good := srv.PushConfig(uid, map[string]string{"": "behavior: run\npid_file: " + filepath.Join(dir, "pid") + "\n"})
	eventually(t, "good config APPLIED, healthy, no crash loop", func() bool {
		a := srv.Agent(uid)
		return hasStatus(a, good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED) &&
			a.Health.Healthy && a.Health.LastError == "" && alive(h.agentPID())
	})
}
