package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// Agent modes.
const (
	ModeCollector = "collector" // an OpenTelemetry Collector driven through its opamp extension
	ModeGeneric   = "generic"   // any program that reads a config file
)

// Config is the supervisor's own configuration file (see docs/supervisor.md).
type Config struct {
	Server       ServerConfig       `yaml:"server"`
	Agent        AgentConfig        `yaml:"agent"`
	Storage      StorageConfig      `yaml:"storage"`
	Telemetry    TelemetryConfig    `yaml:"telemetry"`
	Capabilities CapabilitiesConfig `yaml:"capabilities"`
	Packages     PackagesConfig     `yaml:"packages"`
}

// ServerConfig says how to reach the Steward (OpAMP) server.
type ServerConfig struct {
	// Endpoint is ws://, wss://, http:// or https:// (OpAMP over WebSocket
	// or plain HTTP), e.g. ws://127.0.0.1:4320/v1/opamp.
	Endpoint string            `yaml:"endpoint"`
	Headers  map[string]string `yaml:"headers"`
	TLS      TLSConfig         `yaml:"tls"`
	// RequestCertificate asks the server for a client certificate (a CSR
	// naming the instance uid) until one is stored; it is then used for
	// every connection and renewed by the server.
	RequestCertificate bool `yaml:"request_certificate"`
}

// TLSConfig configures the client side of TLS to the server.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// AgentConfig describes the supervised agent process.
type AgentConfig struct {
	Mode       string            `yaml:"mode"`
	Executable string            `yaml:"executable"`
	Args       []string          `yaml:"args"`
	Env        map[string]string `yaml:"env"`
	// ConfigFile is where generic mode writes the effective config (the
	// agent's args are expected to point at it). Collector mode writes its
	// own file in the storage directory and passes --config itself.
	ConfigFile string `yaml:"config_file"`
	// Reload is "restart" (default) or "signal:NAME" (e.g. signal:SIGHUP):
	// how a changed config is made effective. Collector mode always restarts.
	Reload string       `yaml:"reload"`
	Health HealthConfig `yaml:"health"`
	// ConfigApplyTimeout bounds how long a new config may take to become
	// healthy before it is declared FAILED and rolled back (default 30s).
	ConfigApplyTimeout time.Duration `yaml:"config_apply_timeout"`
	// BootstrapTimeout bounds the collector bootstrap run and how long the
	// opamp extension may take to connect (default 15s).
	BootstrapTimeout time.Duration `yaml:"bootstrap_timeout"`
	// StopTimeout is how long a stopping agent gets between SIGTERM and
	// SIGKILL (default 10s).
	StopTimeout time.Duration `yaml:"stop_timeout"`
	// LocalConfigFiles are merged, in order, under the remote config.
	LocalConfigFiles []string `yaml:"local_config_files"`
	// InitialConfigFile (generic mode) stands in for the remote config
	// until the first one has been applied: the agent starts on it (merged
	// over the local files) and returns to it when a remote config fails
	// with no earlier good one. Without it and without local files, a
	// generic agent is not started until a remote config arrives.
	InitialConfigFile string        `yaml:"initial_config_file"`
	Restart           RestartConfig `yaml:"restart"`
	// Description adds attributes to the agent description reported to
	// the server (generic mode reports only these plus host facts).
	Description DescriptionConfig `yaml:"description"`
}

// HealthConfig says how the supervisor decides the agent is healthy.
type HealthConfig struct {
	// HTTPURL, when set, is probed with GET; 2xx is healthy (generic mode).
	HTTPURL string `yaml:"http_url"`
	// Timeout bounds one probe (default 2s).
	Timeout time.Duration `yaml:"timeout"`
	// Interval between probes (default 5s).
	Interval time.Duration `yaml:"interval"`
	// MinUptime is how long a process must stay up, with no HTTP probe,
	// before a new config counts as applied (default 2s).
	MinUptime time.Duration `yaml:"min_uptime"`
}

// RestartConfig tunes crash handling: exponential backoff between restarts
// and crash-loop detection (CrashLoopCount exits within CrashLoopWindow).
type RestartConfig struct {
	InitialBackoff  time.Duration `yaml:"initial_backoff"`  // default 1s
	MaxBackoff      time.Duration `yaml:"max_backoff"`      // default 1m
	CrashLoopCount  int           `yaml:"crash_loop_count"` // default 5
	CrashLoopWindow time.Duration `yaml:"crash_loop_window"`
}

// DescriptionConfig holds extra agent description attributes.
type DescriptionConfig struct {
	IdentifyingAttributes    map[string]string `yaml:"identifying_attributes"`
	NonIdentifyingAttributes map[string]string `yaml:"non_identifying_attributes"`
}

// StorageConfig locates the supervisor's persistent state.
type StorageConfig struct {
	Directory string `yaml:"directory"`
}

// TelemetryConfig configures the supervisor's own logs.
type TelemetryConfig struct {
	Logs struct {
		Level string `yaml:"level"` // debug, info (default), warn, error
	} `yaml:"logs"`
}

// CapabilitiesConfig turns OpAMP agent capabilities on or off. Unset fields
// take the defaults noted; ReportsStatus is always on.
type CapabilitiesConfig struct {
	AcceptsRemoteConfig             *bool `yaml:"accepts_remote_config"`              // true
	ReportsRemoteConfig             *bool `yaml:"reports_remote_config"`              // true
	ReportsEffectiveConfig          *bool `yaml:"reports_effective_config"`           // true
	ReportsHealth                   *bool `yaml:"reports_health"`                     // true
	AcceptsRestartCommand           *bool `yaml:"accepts_restart_command"`            // true
	ReportsOwnMetrics               *bool `yaml:"reports_own_metrics"`                // true in collector mode
	ReportsOwnLogs                  *bool `yaml:"reports_own_logs"`                   // true in collector mode
	ReportsOwnTraces                *bool `yaml:"reports_own_traces"`                 // true in collector mode
	ReportsAvailableComponents      *bool `yaml:"reports_available_components"`       // true in collector mode
	ReportsHeartbeat                *bool `yaml:"reports_heartbeat"`                  // true
	ReportsConnectionSettingsStatus *bool `yaml:"reports_connection_settings_status"` // true in collector mode or with server.request_certificate
	AcceptsOpAMPConnectionSettings  *bool `yaml:"accepts_opamp_connection_settings"`  // true with server.request_certificate
}

// ReloadSignal returns the signal named by Reload ("signal:SIGHUP"), or 0
// when the agent is restarted instead.
func (c *AgentConfig) ReloadSignal() syscall.Signal {
	name, ok := strings.CutPrefix(c.Reload, "signal:")
	if !ok {
		return 0
	}
	return signals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM,
}

// LoadConfig reads and validates the supervisor config at path. Errors name
// the file and, where possible, the line.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("supervisor config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a supervisor config strictly (unknown fields are
// errors), applies defaults and validates it. Errors name the line.
func ParseConfig(b []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var c Config
	dec = yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	c.setDefaults()
	if err := c.validate(&root); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	a := &c.Agent
	if a.Mode == "" {
		a.Mode = ModeCollector
	}
	if a.Reload == "" {
		a.Reload = "restart"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&a.ConfigApplyTimeout, 30*time.Second)
	def(&a.BootstrapTimeout, 15*time.Second)
	def(&a.StopTimeout, 10*time.Second)
	def(&a.Health.Timeout, 2*time.Second)
	def(&a.Health.Interval, 5*time.Second)
	def(&a.Health.MinUptime, 2*time.Second)
	def(&a.Restart.InitialBackoff, time.Second)
	def(&a.Restart.MaxBackoff, time.Minute)
	def(&a.Restart.CrashLoopWindow, 5*time.Minute)
	if a.Restart.CrashLoopCount == 0 {
		a.Restart.CrashLoopCount = 5
	}
	if c.Telemetry.Logs.Level == "" {
		c.Telemetry.Logs.Level = "info"
	}
}

// configError is a validation error at a YAML path.
func configError(root *yaml.Node, path string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := lineOf(root, strings.Split(path, ".")...); line > 0 {
		return fmt.Errorf("line %d: %s: %s", line, path, msg)
	}
	return fmt.Errorf("%s: %s", path, msg)
}

// lineOf returns the line of the value at path in a decoded document, or of
// the deepest existing ancestor key; 0 if nothing matches.
func lineOf(root *yaml.Node, path ...string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, p := range path {
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func (c *Config) validate(root *yaml.Node) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, configError(root, path, format, args...))
	}
	if c.Server.Endpoint == "" {
		bad("server.endpoint", "is required")
	} else if u, err := url.Parse(c.Server.Endpoint); err != nil || u.Host == "" {
		bad("server.endpoint", "%q is not a URL", c.Server.Endpoint)
	} else {
		switch u.Scheme {
		case "ws", "wss", "http", "https":
		default:
			bad("server.endpoint", "scheme must be ws, wss, http or https, not %q", u.Scheme)
		}
	}
	t := c.Server.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("server.tls", "cert_file and key_file must be set together")
	}
	a := &c.Agent
	switch a.Mode {
	case ModeCollector, ModeGeneric:
	default:
		bad("agent.mode", "must be %q or %q, not %q", ModeCollector, ModeGeneric, a.Mode)
	}
	if a.Executable == "" {
		bad("agent.executable", "is required")
	}
	if a.Mode == ModeGeneric && a.ConfigFile == "" {
		bad("agent.config_file", "is required in generic mode")
	}
	if a.Reload != "restart" && a.ReloadSignal() == 0 {
		bad("agent.reload", "must be \"restart\" or \"signal:NAME\" (HUP, USR1, USR2, INT, TERM), not %q", a.Reload)
	}
	if a.Mode == ModeCollector && a.InitialConfigFile != "" {
		bad("agent.initial_config_file", "is for generic mode; a collector without a pipeline runs a nop pipeline until its first remote config")
	}
	if a.Mode == ModeCollector && a.Reload != "restart" {
		bad("agent.reload", "collector mode always restarts the collector; remove the setting")
	}
	if a.Health.HTTPURL != "" {
		if u, err := url.Parse(a.Health.HTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("agent.health.http_url", "%q is not an http(s) URL", a.Health.HTTPURL)
		}
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{
		{"agent.config_apply_timeout", a.ConfigApplyTimeout},
		{"agent.bootstrap_timeout", a.BootstrapTimeout},
		{"agent.stop_timeout", a.StopTimeout},
		{"agent.health.timeout", a.Health.Timeout},
		{"agent.health.interval", a.Health.Interval},
		{"agent.health.min_uptime", a.Health.MinUptime},
		{"agent.restart.initial_backoff", a.Restart.InitialBackoff},
		{"agent.restart.max_backoff", a.Restart.MaxBackoff},
		{"agent.restart.crash_loop_window", a.Restart.CrashLoopWindow},
	} {
		if d.v < 0 {
			bad(d.path, "must not be negative")
		}
	}
	if a.Restart.MaxBackoff < a.Restart.InitialBackoff {
		bad("agent.restart.max_backoff", "must be at least initial_backoff (%s)", a.Restart.InitialBackoff)
	}
	if a.Restart.CrashLoopCount < 1 {
		bad("agent.restart.crash_loop_count", "must be at least 1")
	}
	if c.Storage.Directory == "" {
		bad("storage.directory", "is required")
	}
	for i, k := range c.Packages.TrustedKeys {
		if _, err := ParseTrustedKey(k); err != nil {
			bad("packages.trusted_keys", "key %d: %v", i+1, err)
		}
	}
	if c.Packages.MaxSize < 0 {
		bad("packages.max_size", "must not be negative")
	}
	if c.Packages.DownloadTimeout < 0 {
		bad("packages.download_timeout", "must not be negative")
	}
	switch c.Telemetry.Logs.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("telemetry.logs.level", "must be debug, info, warn or error, not %q", c.Telemetry.Logs.Level)
	}
	return errors.Join(errs...)
}
