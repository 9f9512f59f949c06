package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/supervisor/internal/testserver"
)

var testAgent string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "supervisor-test")
	if err != nil {
		panic(err)
	}
	testAgent = filepath.Join(dir, "testagent")
	out, err := exec.Command("go", "build", "-o", testAgent, "./internal/testagent").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build testagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var eventually = testserver.Eventually

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// genericHarness runs a generic-mode supervisor over the test agent.
type genericHarness struct {
	t       *testing.T
	dir     string
	cfgPath string
	agentCf string // the agent's config file
	pidFile string
	sup     *Supervisor
	cancel  context.CancelFunc
	done    chan error
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newGeneric writes a supervisor config (extra is appended under agent:)
// and starts the supervisor.
func newGeneric(t *testing.T, endpoint, dir, localCfg, extra string) *genericHarness {
	h := &genericHarness{t: t, dir: dir, agentCf: filepath.Join(dir, "agent.yaml"), pidFile: filepath.Join(dir, "pid")}
	if !strings.Contains(extra, "health:") {
		extra += "  health: {min_uptime: 300ms, interval: 200ms}\n"
	}
	if !strings.Contains(extra, "config_apply_timeout:") {
		extra += "  config_apply_timeout: 20s\n"
	}
	if !strings.Contains(extra, "restart:") {
		extra += "  restart: {initial_backoff: 50ms, max_backoff: 400ms}\n"
	}
	local := filepath.Join(dir, "local.yaml")
	writeFile(t, local, localCfg)
	h.cfgPath = filepath.Join(dir, "supervisor.yaml")
	writeFile(t, h.cfgPath, fmt.Sprintf(`
server:
  endpoint: %s
agent:
  mode: generic
  executable: %s
  args: [-config, %s]
  config_file: %s
  local_config_files: [%s]
  stop_timeout: 5s
%s
storage:
  directory: %s
`, endpoint, testAgent, h.agentCf, h.agentCf, local, extra, filepath.Join(dir, "state")))
	h.start()
	return h
}

func (h *genericHarness) start() {
	cfg, err := LoadConfig(h.cfgPath)
	if err != nil {
		h.t.Fatal(err)
	}
	sup, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(testWriter{h.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.sup, h.cancel, h.done = sup, cancel, make(chan error, 1)
	go func() { h.done <- sup.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *genericHarness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		h.t.Fatal("supervisor did not stop")
	}
	h.cancel = nil
}

// agentPID returns the pid the running test agent wrote.
func (h *genericHarness) agentPID() int {
	b, _ := os.ReadFile(h.pidFile)
	n, _ := strconv.Atoi(strings.Fields(string(b) + " 0")[0])
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func hasStatus(a *testserver.Agent, hash []byte, st protobufs.RemoteConfigStatuses) bool {
	if a == nil {
		return false
	}
	for _, s := range a.Statuses {
		if string(s.LastRemoteConfigHash) == string(hash) && s.Status == st {
			return true
		}
	}
	return false
}

func effective(a *testserver.Agent) string {
	if a == nil || a.EffectiveConfig == nil || a.EffectiveConfig.ConfigMap == nil {
		return ""
	}
	f := a.EffectiveConfig.ConfigMap.ConfigMap[""]
	if f == nil {
		return ""
	}
	return string(f.Body)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func TestGenericApplyRollbackAndRestart(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	healthAddr := freePort(t)
	h := newGeneric(t, srv.URL, dir, "greeting: local\npid_file: "+filepath.Join(dir, "pid")+"\n", "")
	uid := h.sup.InstanceUID()

	eventually(t, "agent connected and healthy", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && a.Health.Healthy && a.Description != nil
	})
	a := srv.Agent(uid)
	if a.Capabilities&uint64(protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig) == 0 ||
		a.Capabilities&uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics) != 0 {
		t.Fatalf("capabilities = %#x", a.Capabilities)
	}
	firstPID := h.agentPID()

	// A good config: local file merged under it, agent restarted, APPLIED.
	good := srv.PushConfig(uid, map[string]string{
		"b.yaml": "greeting: remote-b\nhealth_addr: " + healthAddr + "\n",
		"a.yaml": "greeting: remote-a\nexit_code: 7\n",
	})
	eventually(t, "APPLIED", func() bool {
		return hasStatus(srv.Agent(uid), good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	})
	a = srv.Agent(uid)
	if !hasStatus(a, good, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING) {
		t.Errorf("no APPLYING before APPLIED: %v", a.Statuses)
	}
	eventually(t, "effective config reported", func() bool { return strings.Contains(effective(srv.Agent(uid)), "remote-b") })
	eff := effective(srv.Agent(uid))
	for _, want := range []string{"greeting: remote-b", "exit_code: 7", "pid_file: ", "health_addr: " + healthAddr} {
		if !strings.Contains(eff, want) {
			t.Errorf("effective config lacks %q:\n%s", want, eff)
		}
	}
	onDisk, _ := os.ReadFile(h.agentCf)
	if string(onDisk) != eff {
		t.Errorf("agent config file differs from the reported effective config:\n%s\nvs\n%s", onDisk, eff)
	}
	goodPID := h.agentPID()
	if goodPID == firstPID || !alive(goodPID) || alive(firstPID) {
		t.Fatalf("agent not restarted on the new config: first %d (alive %v), now %d (alive %v)", firstPID, alive(firstPID), goodPID, alive(goodPID))
	}

	// A bad config: FAILED with the agent's error, rollback to the good one.
	bad := srv.PushConfig(uid, map[string]string{"a.yaml": "behavior: invalid\n"})
	eventually(t, "FAILED", func() bool {
		return hasStatus(srv.Agent(uid), bad, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	})
	a = srv.Agent(uid)
	if msg := a.RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "invalid configuration") {
		t.Errorf("FAILED error message = %q", msg)
	}
	eventually(t, "rolled back and healthy", func() bool {
		b, _ := os.ReadFile(h.agentCf)
		a := srv.Agent(uid)
		return string(b) == eff && alive(h.agentPID()) && h.agentPID() != goodPID && a.Health != nil && a.Health.Healthy
	})
	st, err := h.sup.store.LoadState()
	if err != nil || st.Failed == nil || string(st.Failed.Hash) != string(bad) || st.Good == nil || string(st.Good.RemoteHash) != string(good) {
		t.Fatalf("persisted state = %+v, %v", st, err)
	}

	// The same bad config again is not retried.
	rolledPID := h.agentPID()
	before := len(srv.Agent(uid).Statuses)
	h.sup.onMessage(context.Background(), clientMessage(bad, "behavior: invalid\n"))
	eventually(t, "FAILED re-reported", func() bool { return len(srv.Agent(uid).Statuses) >= before })
	time.Sleep(500 * time.Millisecond) // give a (wrong) retry the time to show
	if h.agentPID() != rolledPID {
		t.Fatalf("the failed config was retried: pid %d -> %d", rolledPID, h.agentPID())
	}

	// Restart command.
	if err := srv.Restart(uid); err != nil {
		t.Fatal(err)
	}
	eventually(t, "restarted", func() bool { p := h.agentPID(); return p != rolledPID && alive(p) })

	// A supervisor restart with the server down starts the last good config.
	h.stop()
	if alive(h.agentPID()) {
		t.Fatal("agent survived the supervisor")
	}
	os.Remove(h.agentCf)
	writeFile(t, h.cfgPath, strings.Replace(mustRead(t, h.cfgPath), srv.URL, "ws://"+freePort(t)+"/v1/opamp", 1))
	h.start()
	eventually(t, "agent on last good config", func() bool {
		b, _ := os.ReadFile(h.agentCf)
		return string(b) == eff && alive(h.agentPID())
	})
	if h.sup.InstanceUID() != uid {
		t.Fatalf("instance uid changed across restarts: %s -> %s", uid, h.sup.InstanceUID())
	}
}

func clientMessage(hash []byte, body string) *client.MessageData {
	return &client.MessageData{RemoteConfig: &protobufs.AgentRemoteConfig{ConfigHash: hash, Config: &protobufs.AgentConfigMap{
		ConfigMap: map[string]*protobufs.AgentConfigFile{"a.yaml": {Body: []byte(body)}}}}}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGenericCrashLoopReportsUnhealthy(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	h := newGeneric(t, srv.URL, dir, "behavior: crash\nexit_code: 4\n", "  restart: {initial_backoff: 20ms, max_backoff: 100ms, crash_loop_count: 3, crash_loop_window: 1m}\n")
	_ = h
	uid := h.sup.InstanceUID()
	eventually(t, "crash loop health", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && !a.Health.Healthy && strings.Contains(a.Health.LastError, "crash loop")
	})
	msg := srv.Agent(uid).Health.LastError
	if !strings.Contains(msg, "crashing with code 4") || !strings.Contains(msg, "exit status 4") {
		t.Fatalf("health error lacks the agent's output: %q", msg)
	}
}

func TestGenericSignalReloadAndHTTPProbe(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	healthAddr := freePort(t)
	h := newGeneric(t, srv.URL, dir, "pid_file: "+filepath.Join(dir, "pid")+"\nhealth_addr: "+healthAddr+"\n",
		"  reload: signal:SIGHUP\n  config_apply_timeout: 4s\n  health: {http_url: \"http://"+healthAddr+"/health\", interval: 200ms, timeout: 1s, min_uptime: 1s}\n")
	uid := h.sup.InstanceUID()
	eventually(t, "healthy", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && a.Health.Healthy && h.agentPID() != 0
	})
	pid := h.agentPID()
	hash := srv.PushConfig(uid, map[string]string{"": "greeting: via-sighup\n"})
	eventually(t, "APPLIED", func() bool {
		return hasStatus(srv.Agent(uid), hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	})
	if h.agentPID() != pid || !alive(pid) {
		t.Fatalf("agent was restarted (pid %d -> %d) instead of signalled", pid, h.agentPID())
	}
	// A config that makes the probe fail (500) is FAILED and rolled back.
	bad := srv.PushConfig(uid, map[string]string{"": "health_status: 500\n"})
	eventually(t, "FAILED", func() bool {
		return hasStatus(srv.Agent(uid), bad, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	})
	if msg := srv.Agent(uid).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "HTTP 500") {
		t.Fatalf("error = %q", msg)
	}
}

func TestNewInstanceUIDIsPersisted(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	h := newGeneric(t, srv.URL, dir, "greeting: x\n", "")
	uid := h.sup.InstanceUID()
	eventually(t, "connected", func() bool { a := srv.Agent(uid); return a != nil && a.Connected })
	newUID := steward.NewInstanceUID()
	if err := srv.Send(uid, &protobufs.ServerToAgent{AgentIdentification: &protobufs.AgentIdentification{NewInstanceUid: newUID[:]}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new uid persisted", func() bool {
		got, err := h.sup.store.InstanceUID()
		return err == nil && got == newUID && h.sup.InstanceUID() == newUID
	})
}

// A "collector" whose opamp extension never connects (the test agent) is
// reported unhealthy once bootstrap_timeout has passed.
func TestCollectorModeExtensionMissing(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "supervisor.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`
server: {endpoint: %s}
agent:
  mode: collector
  executable: %s
  bootstrap_timeout: 1s
  health: {interval: 200ms}
storage: {directory: %s}
`, srv.URL, testAgent, filepath.Join(dir, "state")))
	h := &genericHarness{t: t, dir: dir, cfgPath: cfgPath}
	h.start()
	uid := h.sup.InstanceUID()
	eventually(t, "unhealthy: extension did not connect", func() bool {
		a := srv.Agent(uid)
		return a != nil && a.Health != nil && !a.Health.Healthy &&
			strings.Contains(a.Health.LastError, "opamp extension did not connect within 1s")
	})
	a := srv.Agent(uid)
	if p := a.Health.ComponentHealthMap["process"]; p == nil || !p.Healthy {
		t.Fatalf("process health = %v", p)
	}
	// Without a bootstrap report the description is the supervisor's own.
	if a.Description == nil || len(a.Description.IdentifyingAttributes) == 0 ||
		a.Description.IdentifyingAttributes[0].GetValue().GetStringValue() != "testagent" {
		t.Fatalf("description = %v", a.Description)
	}
}
