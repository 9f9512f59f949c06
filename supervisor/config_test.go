package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const fullConfig = `
server:
  endpoint: wss://steward.example:4320/v1/opamp
  headers: {Authorization: "Bearer x"}
  tls: {ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/k.pem}
agent:
  mode: generic
  executable: /usr/bin/agent
  args: [--config, /etc/agent.yaml]
  env: {A: "1"}
  config_file: /etc/agent.yaml
  reload: signal:SIGHUP
  health: {http_url: "http://127.0.0.1:8080/health", timeout: 3s}
  config_apply_timeout: 45s
  local_config_files: [/etc/base.yaml]
storage:
  directory: /var/lib/steward-supervisor
telemetry:
  logs: {level: debug}
capabilities:
  accepts_restart_command: false
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Headers["Authorization"] != "Bearer x" || c.Server.TLS.KeyFile != "/etc/k.pem" {
		t.Errorf("server = %+v", c.Server)
	}
	a := c.Agent
	if a.Mode != ModeGeneric || a.ReloadSignal() != syscall.SIGHUP || a.Health.Timeout != 3*time.Second ||
		a.ConfigApplyTimeout != 45*time.Second || a.Env["A"] != "1" || len(a.LocalConfigFiles) != 1 {
		t.Errorf("agent = %+v", a)
	}
	// Defaults.
	if a.BootstrapTimeout != 15*time.Second || a.StopTimeout != 10*time.Second || a.Restart.CrashLoopCount != 5 || a.Health.MinUptime != 2*time.Second {
		t.Errorf("defaults = %+v", a)
	}
	if c.Capabilities.AcceptsRestartCommand == nil || *c.Capabilities.AcceptsRestartCommand {
		t.Errorf("capabilities = %+v", c.Capabilities)
	}
}

func TestParseConfigErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "server:\n  endpoint: ws://h/v1/opamp\n  endpont: x\n", "line 3: field endpont not found"},
		{"bad mode", "server: {endpoint: ws://h/x}\nagent:\n  executable: /a\n  mode: daemon\nstorage: {directory: /s}\n", `line 4: agent.mode: must be "collector" or "generic", not "daemon"`},
		{"bad scheme", "server:\n  endpoint: ftp://h/x\nagent: {executable: /a}\nstorage: {directory: /s}\n", "line 2: server.endpoint: scheme must be ws, wss, http or https"},
		{"generic needs config_file", "server: {endpoint: ws://h/x}\nagent:\n  mode: generic\n  executable: /a\nstorage: {directory: /s}\n", "agent.config_file: is required in generic mode"},
		{"bad reload", "server: {endpoint: ws://h/x}\nagent:\n  mode: generic\n  executable: /a\n  config_file: /c\n  reload: signal:SIGFOO\nstorage: {directory: /s}\n", "line 6: agent.reload"},
		{"collector cannot signal", "server: {endpoint: ws://h/x}\nagent:\n  executable: /a\n  reload: signal:HUP\nstorage: {directory: /s}\n", "collector mode always restarts"},
		{"missing storage", "server: {endpoint: ws://h/x}\nagent: {executable: /a}\n", "storage.directory: is required"},
		{"bad duration", "server: {endpoint: ws://h/x}\nagent:\n  executable: /a\n  config_apply_timeout: soon\nstorage: {directory: /s}\n", "line 4"},
		{"bad yaml", "server: [\n", "invalid YAML"},
		{"cert without key", "server:\n  endpoint: ws://h/x\n  tls: {cert_file: /c}\nagent: {executable: /a}\nstorage: {directory: /s}\n", "line 3: server.tls: cert_file and key_file must be set together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sup.yaml")
	os.WriteFile(path, []byte("bogus: 1\n"), 0o644)
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestDocsExampleParses(t *testing.T) {
	b, err := os.ReadFile("../docs/supervisor.md")
	if err != nil {
		t.Fatal(err)
	}
	// The first ```yaml block of the doc is the full example.
	s := string(b)
	i := strings.Index(s, "```yaml\n")
	if i < 0 {
		t.Fatal("no yaml example in docs/supervisor.md")
	}
	s = s[i+len("```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	if _, err := ParseConfig([]byte(s)); err != nil {
		t.Fatalf("docs example: %v", err)
	}
}
