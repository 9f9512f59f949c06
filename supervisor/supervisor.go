// Package supervisor runs an agent process and manages it over OpAMP on
// behalf of a Steward server: it applies remote configs (with health-checked
// rollback), reports status, effective config and health, restarts the agent
// on command or crash, and in collector mode drives an OpenTelemetry
// Collector through its opamp extension. See docs/supervisor.md.
package supervisor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/internal/yamlmerge"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/supervisor/agentproc"
)

// PackageManager handles agent packages (downloading, verifying and
// installing what the server offers). The built-in one is enabled by
// packages.trusted_keys (see packages.go); with none the supervisor does
// not declare AcceptsPackages.
type PackageManager interface {
	// Sync brings installed packages in line with what the server offers
	// and reports progress through report. It is called from the
	// supervisor's work loop, one offer at a time.
	Sync(ctx context.Context, offer *protobufs.PackagesAvailable, report func(*protobufs.PackageStatuses)) error
}

// upstream is the connection to the Steward server; *client.Client
// implements it.
type upstream interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	SetHealth(*protobufs.ComponentHealth) error
	SetRemoteConfigStatus(*protobufs.RemoteConfigStatus) error
	UpdateEffectiveConfig(ctx context.Context) error
	SetAgentDescription(*protobufs.AgentDescription) error
	SetAvailableComponents(*protobufs.AvailableComponents) error
	SetConnectionSettingsStatus(*protobufs.ConnectionSettingsStatus) error
	SetPackageStatuses(*protobufs.PackageStatuses) error
}

// Options are the supervisor's collaborators.
type Options struct {
	// Logger receives the supervisor's log and the agent's output; nil
	// logs to stderr at the config's level.
	Logger *slog.Logger
	// Packages handles package offers; nil: packages are not accepted.
	Packages PackageManager
}

// Supervisor runs one agent. Create it with New and call Run once.
type Supervisor struct {
	cfg   *Config
	log   *slog.Logger
	store *Storage
	pkgs  PackageManager
	// pkgMgr is the built-in PackageManager (packages.trusted_keys set);
	// the agent then runs from its current link.
	pkgMgr *packageManager
	caps   protobufs.AgentCapabilities
	client upstream
	// newUpstream makes the server connection (tests replace it).
	newUpstream func(client.Settings) (upstream, error)
	runner      *agentproc.Runner
	local       *localServer // collector mode
	// configPath is where the agent's effective config is written.
	configPath string

	wake chan struct{} // pending work

	mu        sync.Mutex
	uid       steward.InstanceUID
	state     *State
	effective effectiveFile // the effective config currently written
	pendingRC *protobufs.AgentRemoteConfig
	pendingTL *ownTelemetry
	pendingPK *protobufs.PackagesAvailable
	restart   bool
	telemetry *ownTelemetry // applied own-telemetry offers
	proc      procHealth
	probeErr  string // last HTTP probe error ("" ok)
	lastSent  *protobufs.ComponentHealth
	desc      *protobufs.AgentDescription
	// relayedEff is the collector's effective config last relayed.
	relayedEff *protobufs.EffectiveConfig
}

// procHealth is what the supervisor knows of the agent process.
type procHealth struct {
	waiting   bool // generic mode: not started, no config to run yet
	running   bool
	startedAt time.Time
	lastError string
}

// New checks cfg, opens the storage directory and loads the instance UID and
// saved state. It starts nothing.
func New(cfg *Config, opts Options) (*Supervisor, error) {
	log := opts.Logger
	if log == nil {
		var lvl slog.Level
		_ = lvl.UnmarshalText([]byte(cfg.Telemetry.Logs.Level))
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	store, err := OpenStorage(cfg.Storage.Directory)
	if err != nil {
		return nil, err
	}
	uid, err := store.InstanceUID()
	if err != nil {
		return nil, err
	}
	st, err := store.LoadState()
	if err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, log: log, store: store, pkgs: opts.Packages, uid: uid, state: st, wake: make(chan struct{}, 1)}
	if s.pkgs == nil && cfg.Packages.Enabled() {
		pm, err := newPackageManager(s)
		if err != nil {
			return nil, err
		}
		s.pkgs, s.pkgMgr = pm, pm
	}
	s.loadConnection()
	s.caps = s.capabilities()
	if cfg.Agent.Mode == ModeCollector {
		s.configPath = store.Path("effective.yaml")
	} else {
		s.configPath = cfg.Agent.ConfigFile
	}
	return s, nil
}

// InstanceUID returns the agent's current instance UID.
func (s *Supervisor) InstanceUID() steward.InstanceUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uid
}

func (s *Supervisor) capabilities() protobufs.AgentCapabilities {
	c := s.cfg.Capabilities
	collector := s.cfg.Agent.Mode == ModeCollector
	on := func(p *bool, def bool) bool {
		if p == nil {
			return def
		}
		return *p
	}
	caps := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus
	for _, x := range []struct {
		v   bool
		bit protobufs.AgentCapabilities
	}{
		{on(c.AcceptsRemoteConfig, true), protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig},
		{on(c.ReportsRemoteConfig, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig},
		{on(c.ReportsEffectiveConfig, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig},
		{on(c.ReportsHealth, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth},
		{on(c.AcceptsRestartCommand, true), protobufs.AgentCapabilities_AgentCapabilities_AcceptsRestartCommand},
		{on(c.ReportsHeartbeat, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat},
		{collector && on(c.ReportsOwnMetrics, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics},
		{collector && on(c.ReportsOwnLogs, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnLogs},
		{collector && on(c.ReportsOwnTraces, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnTraces},
		{collector && on(c.ReportsAvailableComponents, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents},
		{(collector || s.cfg.Server.RequestCertificate) && on(c.ReportsConnectionSettingsStatus, true), protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus},
		{on(c.AcceptsOpAMPConnectionSettings, s.cfg.Server.RequestCertificate), protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings},
		{s.pkgs != nil, protobufs.AgentCapabilities_AgentCapabilities_AcceptsPackages | protobufs.AgentCapabilities_AgentCapabilities_ReportsPackageStatuses},
	} {
		if x.v {
			caps |= x.bit
		}
	}
	return caps
}

func (s *Supervisor) has(bit protobufs.AgentCapabilities) bool { return s.caps&bit != 0 }

// Run starts the agent on its last good config (or the local files alone),
// connects to the server and manages the agent until ctx ends; it then
// disconnects from the server and stops the agent (SIGTERM, then SIGKILL
// after agent.stop_timeout) before returning. Run fails only when the
// supervisor cannot start at all (e.g. the server TLS files are unreadable).
func (s *Supervisor) Run(ctx context.Context) error {
	a := &s.cfg.Agent
	args := append([]string(nil), a.Args...)
	if a.Mode == ModeCollector {
		ls, err := startLocalServer(s.log.With("component", "local-opamp"), s.InstanceUID, s.onLocalChange)
		if err != nil {
			return fmt.Errorf("local OpAMP endpoint: %w", err)
		}
		s.local = ls
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = ls.Shutdown(sctx)
		}()
		args = append(args, "--config", s.configPath)
		s.bootstrap(ctx)
	}
	s.desc = s.description()

	// The agent starts on its last good config, so a supervisor restart
	// with the server down keeps running what worked; before the first
	// remote config, on the initial config (generic mode) or the local
	// files, and a generic agent with none of them waits for the server.
	idle := s.nothingToRun()
	if idle {
		s.log.Info("no config to run yet: the agent starts with the first remote config")
		s.mu.Lock()
		s.proc = procHealth{waiting: true}
		s.mu.Unlock()
	} else {
		base, err := s.fallbackRemote()
		if err != nil {
			return err
		}
		eff, err := s.render(base, nil)
		if err != nil && base != nil {
			s.log.Error("last good config no longer renders; starting on local files only", "error", err)
			eff, err = s.render(nil, nil)
		}
		if err != nil {
			return err
		}
		if err := s.writeConfig(eff); err != nil {
			return err
		}
	}

	c, err := s.newClient()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.client = c
	s.mu.Unlock()
	s.reportInitialStatus()

	env := make([]string, 0, len(a.Env))
	for _, k := range sortedKeys(a.Env) {
		env = append(env, k+"="+a.Env[k])
	}
	s.runner = agentproc.NewRunner(agentproc.RunnerConfig{
		Command:         agentproc.Command{Path: s.executable(), Args: args, Env: env},
		StopTimeout:     a.StopTimeout,
		InitialBackoff:  a.Restart.InitialBackoff,
		MaxBackoff:      a.Restart.MaxBackoff,
		CrashLoopCount:  a.Restart.CrashLoopCount,
		CrashLoopWindow: a.Restart.CrashLoopWindow,
		StartIdle:       idle,
		Log:             s.log.With("component", "agent"),
		OnEvent:         s.onProcessEvent,
	})
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.runner.Run(runCtx) }()
	go func() { defer wg.Done(); s.healthLoop(runCtx) }()

	if err := c.Start(ctx); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	s.workLoop(ctx)

	stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stopCancel()
	if err := c.Stop(stopCtx); err != nil {
		s.log.Warn("opamp client stop", "error", err)
	}
	cancel()
	wg.Wait()
	return nil
}

func (s *Supervisor) newClient() (upstream, error) {
	srv := s.cfg.Server
	hdr := http.Header{}
	for k, v := range srv.Headers {
		hdr.Set(k, v)
	}
	tlsCfg, err := clientTLS(srv.TLS)
	if err != nil {
		return nil, err
	}
	settings := client.Settings{
		Endpoint:     srv.Endpoint,
		Header:       hdr,
		TLSConfig:    tlsCfg,
		InstanceUID:  s.InstanceUID(),
		Capabilities: s.caps,
		Description:  s.desc,
		Logger:       s.log.With("component", "opamp-client"),
		Callbacks: client.Callbacks{
			OnConnect: func(context.Context) { s.log.Info("connected to server", "endpoint", srv.Endpoint) },
			OnConnectFailed: func(_ context.Context, err error) {
				s.log.Debug("server connection failed", "error", err)
			},
			OnMessage:           s.onMessage,
			OnCommand:           s.onCommand,
			GetEffectiveConfig:  s.getEffectiveConfig,
			OnInstanceUIDChange: s.onInstanceUIDChange,
		},
	}
	if err := s.connectionSettings(&settings); err != nil {
		return nil, err
	}
	if s.newUpstream != nil {
		return s.newUpstream(settings)
	}
	return client.New(settings)
}

func clientTLS(t TLSConfig) (*tls.Config, error) {
	if t == (TLSConfig{}) {
		return nil, nil
	}
	c := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server.tls.ca_file %s: no PEM certificates", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// description is the agent description reported to the server: the
// collector's own (collector mode, once it reported) or one made from the
// executable and host, plus the configured attributes, which win.
func (s *Supervisor) description() *protobufs.AgentDescription {
	d := &protobufs.AgentDescription{}
	var col *protobufs.AgentDescription
	if s.local != nil {
		col = s.local.report().description
	}
	if col != nil {
		d.IdentifyingAttributes = append(d.IdentifyingAttributes, col.IdentifyingAttributes...)
		d.NonIdentifyingAttributes = append(d.NonIdentifyingAttributes, col.NonIdentifyingAttributes...)
	} else {
		host, _ := os.Hostname()
		d.IdentifyingAttributes = []*protobufs.KeyValue{
			strKV(steward.AttrServiceName, filepath.Base(s.cfg.Agent.Executable)),
			strKV(steward.AttrServiceInstanceID, s.InstanceUID().String()),
		}
		d.NonIdentifyingAttributes = []*protobufs.KeyValue{
			strKV(steward.AttrOSType, runtime.GOOS),
			strKV(steward.AttrHostArch, runtime.GOARCH),
			strKV(steward.AttrHostName, host),
		}
	}
	// The collector makes up a new service.instance.id on every start; the
	// instance UID is the stable identity.
	d.IdentifyingAttributes = setAttrs(d.IdentifyingAttributes, map[string]string{steward.AttrServiceInstanceID: s.InstanceUID().String()})
	d.IdentifyingAttributes = setAttrs(d.IdentifyingAttributes, s.cfg.Agent.Description.IdentifyingAttributes)
	d.NonIdentifyingAttributes = setAttrs(d.NonIdentifyingAttributes, s.cfg.Agent.Description.NonIdentifyingAttributes)
	return d
}

func strKV(k, v string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
}

func setAttrs(list []*protobufs.KeyValue, m map[string]string) []*protobufs.KeyValue {
	for _, k := range sortedKeys(m) {
		replaced := false
		for i, kv := range list {
			if kv.Key == k {
				list[i] = strKV(k, m[k])
				replaced = true
			}
		}
		if !replaced {
			list = append(list, strKV(k, m[k]))
		}
	}
	return list
}

func (s *Supervisor) reportInitialStatus() {
	s.mu.Lock()
	st := s.state
	var rcs *protobufs.RemoteConfigStatus
	switch {
	case st.Failed != nil:
		rcs = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: st.Failed.Hash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, ErrorMessage: st.Failed.Error}
	case st.Good != nil && st.Good.RemoteHash != nil:
		rcs = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: st.Good.RemoteHash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	}
	s.mu.Unlock()
	if rcs != nil && s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig) {
		_ = s.client.SetRemoteConfigStatus(rcs)
	}
	if s.pkgMgr != nil {
		// The server learns what is installed (and the all-packages hash
		// it offered last) before it decides what to offer.
		_ = s.client.SetPackageStatuses(s.pkgMgr.statuses())
	}
	s.reportConnectionStatus()
	s.updateHealth()
}

// fallbackRemote is what stands in for a remote config when none is being
// applied: the last good remote config, else (generic mode) the initial
// config file as a single file, else nothing.
func (s *Supervisor) fallbackRemote() (steward.ConfigMap, error) {
	s.mu.Lock()
	good := s.state.Good
	s.mu.Unlock()
	if good != nil {
		return good.Remote, nil
	}
	if path := s.cfg.Agent.InitialConfigFile; path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("agent.initial_config_file: %w", err)
		}
		return steward.ConfigMap{"": {Body: b}}, nil
	}
	return nil, nil
}

// nothingToRun reports whether a generic agent has no config at all: no
// good remote config, no initial config file and no local files. Such an
// agent is not started (an empty file would only make it exit) until a
// remote config arrives.
func (s *Supervisor) nothingToRun() bool {
	a := &s.cfg.Agent
	s.mu.Lock()
	good := s.state.Good
	s.mu.Unlock()
	return a.Mode == ModeGeneric && good == nil && a.InitialConfigFile == "" && len(a.LocalConfigFiles) == 0
}

// executable is the program the supervisor runs: agent.executable, or the
// current link of the package manager.
func (s *Supervisor) executable() string {
	if s.pkgMgr != nil {
		return s.pkgMgr.Executable()
	}
	return s.cfg.Agent.Executable
}

// render assembles the effective config from remote files and the given
// own-telemetry offers (nil: the applied ones).
func (s *Supervisor) render(remote steward.ConfigMap, tel *ownTelemetry) (effectiveFile, error) {
	in := renderInput{mode: s.cfg.Agent.Mode, localFiles: s.cfg.Agent.LocalConfigFiles, remote: remote}
	if s.local != nil {
		if tel == nil {
			s.mu.Lock()
			tel = s.telemetry
			s.mu.Unlock()
		}
		in.telemetry = tel
		in.opamp = s.local.extension(os.Getpid())
	}
	body, err := render(in)
	if err != nil {
		return effectiveFile{}, err
	}
	ct := renderedType(in)
	if ct == "" {
		ct = effectiveContentType(in.mode, body)
	}
	return effectiveFile{body: body, contentType: ct}, nil
}

// effectiveFile is an effective config the supervisor renders and writes,
// with the content type it reports it under.
type effectiveFile struct {
	body        []byte
	contentType string
}

func (s *Supervisor) writeConfig(eff effectiveFile) error {
	if dir := filepath.Dir(s.configPath); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(s.configPath, eff.body); err != nil {
		return err
	}
	s.mu.Lock()
	s.effective = eff
	s.mu.Unlock()
	return nil
}

// getEffectiveConfig returns, in collector mode, the effective config the
// running collector reported (its secrets redacted by the collector), and
// otherwise the file the supervisor wrote.
func (s *Supervisor) getEffectiveConfig(context.Context) (*protobufs.EffectiveConfig, error) {
	if ec := s.collectorEffective(); ec != nil {
		return ec, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"": {Body: bytes.Clone(s.effective.body), ContentType: s.effective.contentType},
	}}}, nil
}

// effectiveContentType labels, by its body, a file the supervisor wrote
// from a remote file that declares no content type: YAML in collector mode
// and whenever it is a YAML mapping; text/plain otherwise, such as a
// syslog-ng, TOML or INI file.
func effectiveContentType(mode string, body []byte) string {
	if mode == ModeCollector {
		return "text/yaml"
	}
	if m, err := yamlmerge.ParseMap("effective config", body); err != nil || len(m) == 0 {
		return "text/plain"
	}
	return "text/yaml"
}

func (s *Supervisor) onInstanceUIDChange(uid [16]byte) {
	s.mu.Lock()
	s.uid = uid
	s.mu.Unlock()
	if err := s.store.SetInstanceUID(uid); err != nil {
		s.log.Error("persist new instance uid", "error", err)
	}
	s.log.Info("server assigned a new instance uid", "instance_uid", steward.InstanceUID(uid).String())
}

// onMessage queues what the server offers; the work loop applies it.
func (s *Supervisor) onMessage(_ context.Context, m *client.MessageData) {
	s.noteHeartbeat(m)
	s.mu.Lock()
	if m.RemoteConfig != nil {
		s.pendingRC = m.RemoteConfig
	}
	if m.OwnMetrics != nil || m.OwnLogs != nil || m.OwnTraces != nil {
		t := &ownTelemetry{hash: m.ConnectionSettingsHash}
		if s.pendingTL != nil {
			*t = *s.pendingTL
		} else if s.telemetry != nil {
			*t = *s.telemetry
		}
		t.hash = m.ConnectionSettingsHash
		if m.OwnMetrics != nil {
			t.metrics = m.OwnMetrics
		}
		if m.OwnLogs != nil {
			t.logs = m.OwnLogs
		}
		if m.OwnTraces != nil {
			t.traces = m.OwnTraces
		}
		s.pendingTL = t
	}
	if m.PackagesAvailable != nil && s.pkgs != nil {
		s.pendingPK = m.PackagesAvailable
	}
	s.mu.Unlock()
	s.poke()
}

func (s *Supervisor) onCommand(_ context.Context, cmd *protobufs.ServerToAgentCommand) error {
	if cmd.GetType() != protobufs.CommandType_CommandType_Restart {
		return fmt.Errorf("unsupported command %v", cmd.GetType())
	}
	s.log.Info("restart requested by the server")
	s.mu.Lock()
	s.restart = true
	s.mu.Unlock()
	s.poke()
	return nil
}

func (s *Supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// workLoop applies queued work one item at a time until ctx ends.
func (s *Supervisor) workLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for ctx.Err() == nil {
			s.mu.Lock()
			tl, rc, pk, restart := s.pendingTL, s.pendingRC, s.pendingPK, s.restart
			s.pendingTL, s.pendingRC, s.pendingPK, s.restart = nil, nil, nil, false
			s.mu.Unlock()
			if tl == nil && rc == nil && pk == nil && !restart {
				break
			}
			if pk != nil {
				if err := s.pkgs.Sync(ctx, pk, func(ps *protobufs.PackageStatuses) { _ = s.client.SetPackageStatuses(ps) }); err != nil {
					s.log.Error("packages", "error", err)
				}
			}
			if tl != nil {
				s.applyTelemetry(ctx, tl)
			}
			if rc != nil {
				s.applyRemoteConfig(ctx, rc)
			}
			if restart {
				s.restartAgent(ctx)
			}
		}
	}
}

func configMapFromProto(m *protobufs.AgentConfigMap) steward.ConfigMap {
	out := steward.ConfigMap{}
	if m == nil {
		return out
	}
	for k, f := range m.ConfigMap {
		if f == nil {
			continue
		}
		out[k] = steward.ConfigFile{Body: f.Body, ContentType: f.ContentType}
	}
	return out
}

func (s *Supervisor) setRemoteStatus(hash []byte, st protobufs.RemoteConfigStatuses, msg string) {
	if !s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig) {
		return
	}
	_ = s.client.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash, Status: st, ErrorMessage: msg})
}

// applyRemoteConfig makes rc the agent's config: APPLYING, then APPLIED once
// the agent is healthy on it, or FAILED (with the reason) after rolling back
// to the last good config. A hash that already failed is not retried.
func (s *Supervisor) applyRemoteConfig(ctx context.Context, rc *protobufs.AgentRemoteConfig) {
	hash := rc.ConfigHash
	files := configMapFromProto(rc.Config)
	if len(hash) == 0 {
		hash = files.Hash()
	}
	s.mu.Lock()
	st := s.state
	st.Remote = &RemoteConfig{Files: files, Hash: hash}
	good, failed := st.Good, st.Failed
	s.mu.Unlock()
	s.saveState()
	log := s.log.With("config_hash", fmt.Sprintf("%x", hash))
	if good != nil && bytes.Equal(good.RemoteHash, hash) && failed == nil {
		s.setRemoteStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED, "")
		return
	}
	if failed != nil && bytes.Equal(failed.Hash, hash) {
		log.Info("remote config already failed; not retrying it", "error", failed.Error)
		s.setRemoteStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, failed.Error)
		return
	}
	log.Info("applying remote config", "files", len(files))
	s.setRemoteStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING, "")
	eff, err := s.render(files, nil)
	if err == nil {
		err = s.switchTo(ctx, eff)
	}
	if ctx.Err() != nil {
		return // shutting down: the outcome is unknown, report nothing
	}
	if err == nil {
		s.mu.Lock()
		st.Good = &GoodConfig{RemoteHash: hash, Remote: files, Effective: eff.body}
		st.Failed = nil
		s.mu.Unlock()
		s.saveState()
		log.Info("remote config applied")
		s.setRemoteStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED, "")
		s.reportEffectiveConfig(ctx)
		return
	}
	msg := err.Error()
	log.Warn("remote config failed; rolling back", "error", msg)
	s.mu.Lock()
	st.Failed = &FailedConfig{Hash: hash, Error: msg}
	s.mu.Unlock()
	s.saveState()
	s.setRemoteStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, msg)
	s.rollback(ctx)
}

// rollback returns the agent to the last good config (else the initial
// config or the local files alone) and restarts it there; a generic agent
// with nothing to return to is stopped and waits for the next config.
func (s *Supervisor) rollback(ctx context.Context) {
	if s.nothingToRun() {
		if err := s.runner.Idle(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("stop agent after a failed first config", "error", err)
		}
		s.mu.Lock()
		s.proc = procHealth{waiting: true}
		s.mu.Unlock()
		s.updateHealth()
		return
	}
	remote, err := s.fallbackRemote()
	var eff effectiveFile
	if err == nil {
		eff, err = s.render(remote, nil)
	}
	if err == nil {
		err = s.switchTo(ctx, eff)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("rollback to the last good config failed", "error", err)
	}
	s.reportEffectiveConfig(ctx)
}

func (s *Supervisor) reportEffectiveConfig(ctx context.Context) {
	if s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig) {
		if err := s.client.UpdateEffectiveConfig(ctx); err != nil {
			s.log.Warn("report effective config", "error", err)
		}
	}
}

func (s *Supervisor) saveState() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.store.SaveState(s.state); err != nil {
		s.log.Error("persist state", "error", err)
	}
}

// switchTo writes eff, makes the agent load it (restart, or the reload
// signal) and waits until it is healthy, within agent.config_apply_timeout.
// An unchanged config only waits for health.
func (s *Supervisor) switchTo(ctx context.Context, eff effectiveFile) error {
	s.mu.Lock()
	same := bytes.Equal(eff.body, s.effective.body)
	if same {
		s.effective.contentType = eff.contentType // only the label: nothing to reload
	}
	s.mu.Unlock()
	p := s.runner.Current()
	if same && p != nil {
		return s.waitHealthy(ctx, p, p.StartedAt())
	}
	if err := s.writeConfig(eff); err != nil {
		return err
	}
	if sig := s.cfg.Agent.ReloadSignal(); sig != 0 && p != nil {
		at := time.Now()
		if err := p.Signal(sig); err == nil {
			return s.waitHealthy(ctx, p, at)
		}
	}
	if s.local != nil {
		s.local.resetHealth()
	}
	p, err := s.runner.Restart(ctx)
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	return s.waitHealthy(ctx, p, p.StartedAt())
}

// waitHealthy waits until p is healthy: in collector mode its opamp
// extension reports healthy (after since); in generic mode the process stays
// up for health.min_uptime after since and then, when configured, the HTTP
// probe answers 2xx. It fails when the process exits (with its last error
// output) or on the timeout.
func (s *Supervisor) waitHealthy(ctx context.Context, p *agentproc.Process, since time.Time) error {
	a := &s.cfg.Agent
	ctx, cancel := context.WithTimeout(ctx, a.ConfigApplyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("agent exited (%s): %s", exitString(p.Err()), lastErrorLine(p.Tail()))
		default:
		}
		switch {
		case s.local != nil:
			r := s.local.report()
			if r.health != nil && !r.healthAt.Before(since) {
				if r.health.Healthy {
					return nil
				}
				last = "collector reports unhealthy: " + healthError(r.health)
			} else {
				last = "the collector's opamp extension did not report health"
			}
		case time.Since(since) < a.Health.MinUptime:
			// Settle first: a signalled agent may not have reloaded yet,
			// and a bad config may take a moment to bring an agent down.
			last = "agent did not stay up"
		case a.Health.HTTPURL != "":
			err := s.probe(ctx)
			if err == nil {
				return nil
			}
			if ctx.Err() == nil { // not the deadline cutting the probe short
				last = err.Error()
			}
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("agent not healthy within %s: %s", a.ConfigApplyTimeout, last)
			}
			return ctx.Err()
		case <-p.Done():
		case <-tick.C:
		}
	}
}

func healthError(h *protobufs.ComponentHealth) string {
	if h.LastError != "" {
		return h.LastError
	}
	for _, k := range sortedKeys(h.ComponentHealthMap) {
		if c := h.ComponentHealthMap[k]; c != nil && !c.Healthy {
			return k + ": " + healthError(c)
		}
	}
	return h.Status
}

// lastErrorLine picks the agent's most telling output line: the last one
// that begins with an error word ("Error: invalid configuration: ..." from
// a collector, "Error parsing config, ..." from syslog-ng), else the last one
// mentioning an error anywhere, else the last line. The first rule keeps an
// agent that echoes the offending config (syslog-ng prints the lines around
// the mistake) from reporting a config line that merely contains "error".
func lastErrorLine(t *agentproc.Tail) string {
	lines := t.Lines(0)
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ToLower(strings.TrimSpace(lines[i]))
		if hasAnyPrefix(l, "error", "fatal", "panic", "invalid") {
			return lines[i]
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ToLower(lines[i])
		if strings.Contains(l, "error") || strings.Contains(l, "invalid") || strings.Contains(l, "fatal") || strings.Contains(l, "panic") {
			return lines[i]
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return "no output"
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (s *Supervisor) probe(ctx context.Context) error {
	h := s.cfg.Agent.Health
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.HTTPURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health probe %s: HTTP %d", h.HTTPURL, resp.StatusCode)
	}
	return nil
}

// restartAgent handles the server's Restart command.
func (s *Supervisor) restartAgent(ctx context.Context) {
	if s.local != nil {
		s.local.resetHealth()
	}
	p, err := s.runner.Restart(ctx)
	if err != nil {
		s.log.Error("restart agent", "error", err)
		return
	}
	if err := s.waitHealthy(ctx, p, p.StartedAt()); err != nil && ctx.Err() == nil {
		s.log.Warn("agent not healthy after restart", "error", err)
	}
	s.updateHealth()
}

// applyTelemetry applies own-telemetry offers (collector mode) and reports
// the outcome in ConnectionSettingsStatus; a failure restores the previous
// settings.
func (s *Supervisor) applyTelemetry(ctx context.Context, t *ownTelemetry) {
	report := func(st protobufs.ConnectionSettingsStatuses, msg string) {
		if s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus) {
			_ = s.client.SetConnectionSettingsStatus(&protobufs.ConnectionSettingsStatus{LastConnectionSettingsHash: t.hash, Status: st, ErrorMessage: msg})
		}
	}
	if s.local == nil {
		report(protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED, "own telemetry is supported in collector mode only")
		return
	}
	report(protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLYING, "")
	s.mu.Lock()
	prev := s.telemetry
	var remote steward.ConfigMap
	if s.state.Good != nil {
		remote = s.state.Good.Remote
	}
	s.mu.Unlock()
	eff, err := s.render(remote, t)
	if err == nil {
		err = s.switchTo(ctx, eff)
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.log.Warn("own telemetry settings failed; restoring previous ones", "error", err)
		report(protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED, err.Error())
		s.mu.Lock()
		s.telemetry = prev
		s.mu.Unlock()
		s.rollback(ctx)
		return
	}
	s.mu.Lock()
	s.telemetry = t
	s.mu.Unlock()
	s.saveTelemetry(t)
	report(protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED, "")
	s.reportEffectiveConfig(ctx)
}

func (s *Supervisor) onProcessEvent(ev agentproc.Event) {
	s.mu.Lock()
	switch ev.Kind {
	case agentproc.EventStarted:
		s.proc = procHealth{running: true, startedAt: ev.Process.StartedAt()}
	case agentproc.EventExited, agentproc.EventStartFailed:
		msg := ""
		if ev.Kind == agentproc.EventStartFailed {
			msg = "agent failed to start: " + ev.Err.Error()
		} else {
			msg = fmt.Sprintf("agent exited (%s): %s", exitString(ev.Err), lastErrorLine(ev.Process.Tail()))
		}
		if ev.CrashLoop {
			msg = fmt.Sprintf("crash loop: %d exits within %s, next restart in %s; %s", ev.Crashes, s.cfg.Agent.Restart.CrashLoopWindow, ev.Backoff, msg)
			if ev.Process != nil {
				msg += "\nlast output:\n" + ev.Process.Tail().String(10)
			}
		}
		s.proc = procHealth{lastError: msg}
	}
	s.mu.Unlock()
	s.updateHealth()
}

// collectorEffective returns the effective config reported by the running
// collector process, nil when there is none.
func (s *Supervisor) collectorEffective() *protobufs.EffectiveConfig {
	if s.local == nil {
		return nil
	}
	r := s.local.report()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if !p.running || r.effective == nil || r.effective.ConfigMap == nil || r.effectiveAt.Before(p.startedAt) {
		return nil
	}
	return r.effective
}

// upstreamConn returns the server connection, nil before Run made it.
func (s *Supervisor) upstreamConn() upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

func (s *Supervisor) onLocalChange() {
	c := s.upstreamConn()
	if c == nil {
		return // bootstrap: Run reads the report itself
	}
	r := s.local.report()
	if r.components != nil && s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents) {
		_ = c.SetAvailableComponents(r.components)
	}
	if ec := s.collectorEffective(); ec != nil && s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig) {
		s.mu.Lock()
		changed := !protoEqual(ec, s.relayedEff)
		s.relayedEff = ec
		s.mu.Unlock()
		if changed {
			_ = c.UpdateEffectiveConfig(context.Background())
		}
	}
	if r.description != nil {
		d := s.description()
		s.mu.Lock()
		changed := s.desc == nil || !protoEqual(d, s.desc)
		s.desc = d
		s.mu.Unlock()
		if changed {
			_ = c.SetAgentDescription(d)
		}
	}
	s.updateHealth()
}

// healthLoop refreshes health periodically: HTTP probes in generic mode, and
// the collector's opamp extension connection in collector mode.
func (s *Supervisor) healthLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Agent.Health.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.cfg.Agent.Health.HTTPURL != "" && s.local == nil {
			err := s.probe(ctx)
			s.mu.Lock()
			s.probeErr = ""
			if err != nil {
				s.probeErr = err.Error()
			}
			s.mu.Unlock()
		}
		s.updateHealth()
	}
}

// health computes the agent's health: the process, plus the HTTP probe
// (generic) or the collector's own report, which must arrive within
// agent.bootstrap_timeout of a start (collector).
func (s *Supervisor) health() *protobufs.ComponentHealth {
	s.mu.Lock()
	p, probeErr := s.proc, s.probeErr
	s.mu.Unlock()
	now := time.Now()
	h := &protobufs.ComponentHealth{StatusTimeUnixNano: uint64(now.UnixNano())}
	procH := &protobufs.ComponentHealth{Healthy: p.running, LastError: p.lastError, StatusTimeUnixNano: h.StatusTimeUnixNano}
	if p.running {
		procH.Status = "running"
		procH.StartTimeUnixNano = uint64(p.startedAt.UnixNano())
		h.StartTimeUnixNano = procH.StartTimeUnixNano
	} else if p.waiting {
		procH.Status = "waiting for a remote config"
	} else {
		procH.Status = "stopped"
	}
	h.ComponentHealthMap = map[string]*protobufs.ComponentHealth{"process": procH}
	h.Healthy, h.Status, h.LastError = procH.Healthy, procH.Status, procH.LastError
	if !p.running {
		return h
	}
	switch {
	case s.local != nil:
		r := s.local.report()
		switch {
		case r.health != nil && !r.healthAt.Before(p.startedAt):
			h.ComponentHealthMap["collector"] = r.health
			h.Healthy = r.health.Healthy
			h.Status = r.health.Status
			if !r.health.Healthy {
				h.LastError = healthError(r.health)
			}
			if !r.connected {
				h.Healthy, h.Status = false, "disconnected"
				h.LastError = "the collector's opamp extension stopped reporting"
			}
		case now.Sub(p.startedAt) > s.cfg.Agent.BootstrapTimeout:
			h.Healthy, h.Status = false, "unreported"
			h.LastError = fmt.Sprintf("the collector's opamp extension did not connect within %s", s.cfg.Agent.BootstrapTimeout)
		default:
			h.Healthy, h.Status = false, "starting"
		}
	case s.cfg.Agent.Health.HTTPURL != "" && probeErr != "":
		h.Healthy, h.Status, h.LastError = false, "probe failed", probeErr
	}
	return h
}

func (s *Supervisor) updateHealth() {
	c := s.upstreamConn()
	if c == nil || !s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth) {
		return
	}
	h := s.health()
	s.mu.Lock()
	same := s.lastSent != nil && healthKey(s.lastSent) == healthKey(h)
	if !same {
		s.lastSent = h
	}
	s.mu.Unlock()
	if !same {
		_ = c.SetHealth(h)
	}
}

// healthKey ignores timestamps that change on every computation.
func healthKey(h *protobufs.ComponentHealth) string {
	var b strings.Builder
	var walk func(name string, h *protobufs.ComponentHealth)
	walk = func(name string, h *protobufs.ComponentHealth) {
		fmt.Fprintf(&b, "%s|%v|%s|%s|%d;", name, h.Healthy, h.Status, h.LastError, h.StartTimeUnixNano)
		keys := make([]string, 0, len(h.ComponentHealthMap))
		for k := range h.ComponentHealthMap {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(name+"/"+k, h.ComponentHealthMap[k])
		}
	}
	walk("", h)
	return b.String()
}

// Health returns the health the supervisor last computed for the agent.
func (s *Supervisor) Health() *protobufs.ComponentHealth { return s.health() }
