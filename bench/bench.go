// Package bench runs the benchmark scenarios of docs/performance.md: it
// starts the server under test as a separate process (Steward's
// bench/steward-server or the opamp-go comparison peer
// bench/opampgo-server), drives a simulated fleet against it with package
// loadgen from this process, and measures the server through its
// /debug/stats endpoint (RSS, heap, goroutines, CPU time, counters).
//
// Scenarios:
//   - idle: memory and goroutines per connected idle agent;
//   - heartbeat: server CPU time per heartbeat at a steady rate;
//   - rollout: time for a config change to be acknowledged (APPLIED) by
//     every agent, checked on the server;
//   - storm: kill -9 of the server, restart on the same database, time
//     until every agent is back, and (Steward) the inventory is complete.
package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for Config.Postgres

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/loadgen"
	"github.com/stewardhq/steward/opamp"
)

// Servers under test.
const (
	Steward = "steward"
	OpAMPGo = "opampgo"
)

// Config configures one scenario run. Zero values take the defaults noted.
type Config struct {
	Scenario string // idle, heartbeat, rollout or storm
	Server   string // Steward or OpAMPGo
	// ServerBin is the server binary (built from bench/steward-server or
	// bench/opampgo-server).
	ServerBin string
	Agents    int
	// OpAMPAddr and APIAddr are the server's listen addresses; defaults
	// 127.0.0.1:4320 and 127.0.0.1:6060.
	OpAMPAddr, APIAddr string
	// DataDir holds the server's database and log; default a new
	// temporary directory.
	DataDir string
	// Heartbeat is the agents' heartbeat interval: default 30s, except in
	// the heartbeat scenario, where it is 1s.
	Heartbeat time.Duration
	// HTTP makes the agents poll over plain HTTP instead of holding a
	// WebSocket (idle and heartbeat scenarios).
	HTTP bool
	// ReconnectJitter spreads the agents' first reconnect attempt after
	// losing the server; default 1s (a storm).
	ReconnectJitter time.Duration
	// Window is how long the heartbeat scenario measures; default 20s.
	Window time.Duration
	// Settle is how long to wait after the fleet is connected before
	// measuring; default 5s.
	Settle time.Duration
	// Timeout bounds each waiting step; default 10 minutes.
	Timeout time.Duration
	// ConfigBytes pads the pushed config to this size (rollout and storm
	// scenarios); 0: the bare config of about 400 bytes.
	ConfigBytes int
	// Components makes every agent report that many available components
	// as a Collector does (see loadgen.Config.Components); 0: none.
	Components int
	// ServerCPUs pins the server process to these CPUs (taskset -c list,
	// e.g. "0"); "": not pinned.
	ServerCPUs string
	// CPUProfile, when set, makes Steward's server write its CPU profile
	// to this file, from its last start until it is stopped (in the storm
	// scenario: from the restart until every agent is back; in the
	// rollout scenario: the timed change, until it is stored); the peer is
	// not profiled.
	CPUProfile string
	// Postgres, when set, is the URL of a PostgreSQL server on which
	// Steward stores its state, in a database steward_bench created anew
	// for each run (dropped first if it exists), instead of SQLite.
	Postgres string
	// Log receives progress lines; default os.Stderr.
	Log io.Writer
}

// Result is what a scenario measured. Fields that do not apply are zero.
type Result struct {
	Scenario  string `json:"scenario"`
	Server    string `json:"server"`
	Transport string `json:"transport"`
	Agents    int    `json:"agents"`
	Store     string `json:"store,omitempty"` // Steward's: sqlite or postgres
	// Components is the available components each agent reports
	// (Config.Components), 0 for none.
	Components int `json:"components"`

	ConnectSeconds float64 `json:"connect_seconds,omitempty"` // time for all agents to connect
	ConnectRate    float64 `json:"connect_rate,omitempty"`    // agents per second

	// Server, per connected agent (idle scenario).
	RSSPerAgent        float64 `json:"rss_per_agent_bytes,omitempty"`
	HeapPerAgent       float64 `json:"heap_per_agent_bytes,omitempty"`
	GoroutinesPerAgent float64 `json:"goroutines_per_agent,omitempty"`
	ServerRSS          uint64  `json:"server_rss_bytes,omitempty"`
	// ConnectCPUUS is the server's CPU time per agent for accepting it and
	// handling its full status report (and the few heartbeats sent before
	// the measurement ends), microseconds.
	ConnectCPUUS float64 `json:"server_cpu_per_connect_us,omitempty"`
	// The load generator's own cost per simulated agent.
	LoadgenRSSPerAgent  float64 `json:"loadgen_rss_per_agent_bytes,omitempty"`
	LoadgenHeapPerAgent float64 `json:"loadgen_heap_per_agent_bytes,omitempty"`

	// Heartbeat scenario.
	MessagesPerSecond float64 `json:"messages_per_second,omitempty"`
	CPUPerMessageUS   float64 `json:"server_cpu_per_message_us,omitempty"`
	ServerCPUPercent  float64 `json:"server_cpu_percent,omitempty"` // of one core
	LoadgenCPUPerMsg  float64 `json:"loadgen_cpu_per_message_us,omitempty"`

	// Rollout scenario: from the change request to the last APPLIED.
	FirstRolloutSeconds float64 `json:"first_rollout_seconds,omitempty"`
	RolloutSeconds      float64 `json:"rollout_seconds,omitempty"`
	ServerApplied       int     `json:"server_applied,omitempty"` // agents the server reports APPLIED
	ConfigBytes         int     `json:"config_bytes,omitempty"`
	// RolloutCPUSeconds is the server's CPU time from the change request
	// until it shows every ack (Steward: in its API; the peer: in memory).
	RolloutCPUSeconds float64 `json:"rollout_server_cpu_seconds,omitempty"`
	// RolloutStoredCPUSeconds (Steward) is the server's CPU time from the
	// change request until every ack is also written to its store (the
	// group commit's queue empty), which may come after the API shows it.
	RolloutStoredCPUSeconds float64 `json:"rollout_server_cpu_stored_seconds,omitempty"`
	// APILagSeconds is from the last agent's APPLIED to the server showing
	// all of them.
	APILagSeconds float64 `json:"api_lag_seconds,omitempty"`
	// RolloutDisconnects counts connections lost during the change.
	RolloutDisconnects uint64 `json:"rollout_disconnects"`
	// RolloutDropped counts those of RolloutDisconnects the agents made
	// themselves (see loadgen.Stats.Dropped); the rest the server closed.
	RolloutDropped uint64 `json:"rollout_dropped_by_agents"`
	// ConfigEncodings is how often Steward marshalled a remote config
	// during the two changes (once per config version when encoded once).
	ConfigEncodings uint64 `json:"config_encodings,omitempty"`
	// ServerStuck is how many agents Steward's transport cut off for not
	// reading (the rest of the disconnects are the control plane's).
	ServerStuck uint64 `json:"server_stuck_disconnects"`

	// Storm scenario: from the restarted server process's start.
	ReconnectSeconds float64 `json:"reconnect_seconds,omitempty"`
	// StormCPUPer1k is the restarted server's CPU time until every agent
	// is back, per 1,000 connects, milliseconds.
	StormCPUPer1k float64 `json:"storm_server_cpu_per_1k_ms,omitempty"`
	InventoryOK   bool    `json:"inventory_ok,omitempty"`
	InventoryNote string  `json:"inventory_note,omitempty"`

	LoadgenErrors uint64 `json:"loadgen_connect_errors"`
	ServerErrors  uint64 `json:"server_error_responses"`
}

// run is one scenario in progress.
type run struct {
	cfg   Config
	log   io.Writer
	srv   *exec.Cmd
	srvLg *os.File
	// exited receives the server's exit status once.
	exited chan error
	stats  string
	api    *stewardhttp.Client
	pgDSN  string // Steward's PostgreSQL database (Config.Postgres), made once per run
}

// Run runs the configured scenario and returns its result. The server
// process is stopped before Run returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Agents <= 0 {
		return nil, fmt.Errorf("bench: Agents must be > 0")
	}
	if cfg.Server != Steward && cfg.Server != OpAMPGo {
		return nil, fmt.Errorf("bench: unknown server %q, want %s or %s", cfg.Server, Steward, OpAMPGo)
	}
	if cfg.ServerBin == "" {
		return nil, fmt.Errorf("bench: ServerBin is required")
	}
	if cfg.OpAMPAddr == "" {
		cfg.OpAMPAddr = "127.0.0.1:4320"
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:6060"
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 30 * time.Second
		if cfg.Scenario == "heartbeat" {
			cfg.Heartbeat = time.Second
		}
	}
	if cfg.ReconnectJitter <= 0 {
		cfg.ReconnectJitter = time.Second
	}
	if cfg.HTTP && cfg.Scenario != "idle" && cfg.Scenario != "heartbeat" {
		return nil, fmt.Errorf("bench: HTTP agents are supported by the idle and heartbeat scenarios only")
	}
	if cfg.Window <= 0 {
		cfg.Window = 20 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	if cfg.DataDir == "" {
		d, err := os.MkdirTemp("", "steward-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		cfg.DataDir = d
	}
	if _, err := loadgen.RaiseFileLimit(); err != nil {
		fmt.Fprintf(cfg.Log, "raising the file limit: %v\n", err)
	}
	r := &run{cfg: cfg, log: cfg.Log, stats: "http://" + cfg.APIAddr + "/debug/stats"}
	if cfg.Server == Steward {
		r.api = stewardhttp.NewClient("http://"+cfg.APIAddr, "bench")
	}
	defer r.stopServer()
	res := &Result{Scenario: cfg.Scenario, Server: cfg.Server, Transport: "websocket", Agents: cfg.Agents, ConfigBytes: cfg.ConfigBytes, Components: cfg.Components}
	if cfg.Server == Steward {
		res.Store = "sqlite"
		if cfg.Postgres != "" {
			res.Store = "postgres"
			var err error
			if r.pgDSN, err = freshPostgres(ctx, cfg.Postgres, "steward_bench"); err != nil {
				return res, err
			}
		}
	}
	if cfg.HTTP {
		res.Transport = "http"
	}
	var err error
	switch cfg.Scenario {
	case "idle":
		err = r.idle(ctx, res)
	case "heartbeat":
		err = r.heartbeat(ctx, res)
	case "rollout":
		err = r.rollout(ctx, res)
	case "storm":
		err = r.storm(ctx, res)
	default:
		err = fmt.Errorf("bench: unknown scenario %q, want idle, heartbeat, rollout or storm", cfg.Scenario)
	}
	return res, err
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "%s [%s %s %d] %s\n", time.Now().Format("15:04:05.000"), r.cfg.Scenario, r.cfg.Server, r.cfg.Agents, fmt.Sprintf(format, args...))
}

// startServer starts the server process and waits for its stats endpoint.
func (r *run) startServer(ctx context.Context) error {
	args := []string{"-addr", r.cfg.OpAMPAddr}
	if r.cfg.Server == Steward {
		args = append(args, "-api", r.cfg.APIAddr, "-db", filepath.Join(r.cfg.DataDir, "steward.db"), "-heartbeat", r.cfg.Heartbeat.String())
		if r.cfg.CPUProfile != "" {
			args = append(args, "-cpuprofile", r.cfg.CPUProfile)
		}
		if r.pgDSN != "" {
			args = append(args, "-postgres", r.pgDSN)
		}
	} else {
		args = append(args, "-debug", r.cfg.APIAddr)
	}
	if _, err := loadgen.FetchStats(ctx, r.stats, false); err == nil {
		return fmt.Errorf("bench: something already serves %s; stop it first", r.stats)
	}
	lf, err := os.OpenFile(filepath.Join(r.cfg.DataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bin := r.cfg.ServerBin
	if r.cfg.ServerCPUs != "" {
		args = append([]string{"-c", r.cfg.ServerCPUs, bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The server must not outlive the benchmark.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("bench: start %s: %w", r.cfg.ServerBin, err)
	}
	r.srv, r.srvLg = cmd, lf
	exited := make(chan error, 1)
	r.exited = exited
	go func() { exited <- cmd.Wait() }()
	return r.until(ctx, 60*time.Second, "server ready", func() (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			return false, fmt.Errorf("server exited: %v (see %s)", err, lf.Name())
		default:
		}
		_, err := loadgen.FetchStats(ctx, r.stats, false)
		return err == nil, nil
	})
}

// freshPostgres creates database name anew on the PostgreSQL server at
// url (dropping it first, with its connections) and returns its URL.
func freshPostgres(ctx context.Context, url, name string) (string, error) {
	u, err := neturl.Parse(url)
	if err != nil {
		return "", fmt.Errorf("bench: postgres url: %w", err)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return "", fmt.Errorf("bench: postgres: %w", err)
	}
	defer db.Close()
	for _, q := range []string{`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`, `CREATE DATABASE ` + name} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("bench: postgres: %s: %w", q, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

// stopServer ends the server: SIGTERM, then SIGKILL after 30s.
func (r *run) stopServer() {
	if r.srv == nil {
		return
	}
	_ = r.srv.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		_ = r.srv.Process.Kill()
		<-r.exited
	}
	r.srvLg.Close()
	r.srv = nil
}

// kill ends the server with SIGKILL, as a crash would.
func (r *run) kill() {
	_ = r.srv.Process.Kill()
	<-r.exited
	r.srvLg.Close()
	r.srv = nil
}

// until polls cond every 10ms until it is true, fails, or timeout passes.
func (r *run) until(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	return r.untilEvery(ctx, 10*time.Millisecond, timeout, what, cond)
}

// untilEvery is until polling every interval.
func (r *run) untilEvery(ctx context.Context, every, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("bench: %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// fleet starts n simulated agents and waits until all are connected (HTTP:
// have polled) and the server holds them all and has handled their first
// reports; it records the connect time in res.
func (r *run) fleet(ctx context.Context, res *Result) (*loadgen.Generator, error) {
	scheme := "ws://"
	if r.cfg.HTTP {
		scheme = "http://"
	}
	g, err := loadgen.New(loadgen.Config{
		URL:               scheme + r.cfg.OpAMPAddr + opamp.DefaultPath,
		Agents:            r.cfg.Agents,
		HeartbeatInterval: r.cfg.Heartbeat,
		ReconnectJitter:   r.cfg.ReconnectJitter,
		Components:        r.cfg.Components,
		Logger:            slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := g.Start(ctx); err != nil {
		return nil, err
	}
	n := r.cfg.Agents
	err = r.until(ctx, r.cfg.Timeout, "agents connected", func() (bool, error) {
		return g.Stats().Connected >= int64(n), nil
	})
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("%w (connected %d of %d, %d connect errors)", err, g.Stats().Connected, n, g.Stats().ConnectErrors)
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	res.ConnectRate = float64(n) / res.ConnectSeconds
	r.logf("%d agents connected in %.2fs (%.0f/s)", n, res.ConnectSeconds, res.ConnectRate)
	err = r.until(ctx, r.cfg.Timeout, "server holds every agent", func() (bool, error) {
		st, err := loadgen.FetchStats(ctx, r.stats, false)
		held := st.Connections >= int64(n) || r.cfg.HTTP // HTTP agents hold no connection
		return err == nil && held && st.Messages >= uint64(n), nil
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (r *run) idle(ctx context.Context, res *Result) error {
	if err := r.startServer(ctx); err != nil {
		return err
	}
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	before, err := loadgen.FetchStats(ctx, r.stats, false) // VmRSS as it is: no forced GC
	if err != nil {
		return err
	}
	selfBefore := loadgen.SelfStats(false)
	g, err := r.fleet(ctx, res)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return err
	}
	after, err := loadgen.FetchStats(ctx, r.stats, false)
	if err != nil {
		return err
	}
	selfAfter := loadgen.SelfStats(false)
	n := float64(r.cfg.Agents)
	res.RSSPerAgent = (float64(after.RSS) - float64(before.RSS)) / n
	res.HeapPerAgent = (float64(after.HeapInuse) - float64(before.HeapInuse)) / n
	res.GoroutinesPerAgent = float64(after.Goroutines-before.Goroutines) / n
	res.ServerRSS = after.RSS
	res.ConnectCPUUS = float64(after.CPU-before.CPU) / n / 1e3
	res.LoadgenRSSPerAgent = (float64(selfAfter.RSS) - float64(selfBefore.RSS)) / n
	res.LoadgenHeapPerAgent = (float64(selfAfter.HeapInuse) - float64(selfBefore.HeapInuse)) / n
	st := g.Stats()
	res.LoadgenErrors, res.ServerErrors = st.ConnectErrors, st.ServerErrors
	r.logf("server before %s rss %s heap %d goroutines; after %s rss %s heap %d goroutines",
		mib(before.RSS), mib(before.HeapInuse), before.Goroutines, mib(after.RSS), mib(after.HeapInuse), after.Goroutines)
	return nil
}

func (r *run) heartbeat(ctx context.Context, res *Result) error {
	if err := r.startServer(ctx); err != nil {
		return err
	}
	g, err := r.fleet(ctx, res)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := sleep(ctx, r.cfg.Settle+r.cfg.Heartbeat); err != nil { // every agent past its first heartbeat
		return err
	}
	s1, err := loadgen.FetchStats(ctx, r.stats, false)
	if err != nil {
		return err
	}
	self1, g1, t1 := loadgen.SelfStats(false), g.Stats(), time.Now()
	if err := sleep(ctx, r.cfg.Window); err != nil {
		return err
	}
	s2, err := loadgen.FetchStats(ctx, r.stats, false)
	if err != nil {
		return err
	}
	self2, g2, t2 := loadgen.SelfStats(false), g.Stats(), time.Now()
	msgs := float64(s2.Messages - s1.Messages)
	if msgs == 0 {
		return fmt.Errorf("bench: the server handled no messages in the window")
	}
	dt := t2.Sub(t1).Seconds()
	res.MessagesPerSecond = msgs / dt
	res.CPUPerMessageUS = float64(s2.CPU-s1.CPU) / msgs / 1e3
	res.ServerCPUPercent = float64(s2.CPU-s1.CPU) / 1e9 / dt * 100
	if sent := float64(g2.Sent - g1.Sent); sent > 0 {
		res.LoadgenCPUPerMsg = float64(self2.CPU-self1.CPU) / sent / 1e3
	}
	res.LoadgenErrors, res.ServerErrors = g2.ConnectErrors, g2.ServerErrors
	r.logf("%.0f messages/s, server CPU %.1f%% of a core, %.1fµs per message", res.MessagesPerSecond, res.ServerCPUPercent, res.CPUPerMessageUS)
	return nil
}

// change makes config change number v, whose content carries marker: on
// Steward through the REST API (the config, and on the first change an
// assignment to every collector), on the opamp-go peer through its push
// endpoint.
func (r *run) change(ctx context.Context, v int, marker string) error {
	body := r.configBody(v, marker)
	if r.cfg.Server == OpAMPGo {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.cfg.APIAddr+"/debug/push", strings.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("bench: push: %s", resp.Status)
		}
		return nil
	}
	if _, err := r.api.PutConfig(ctx, &steward.Config{Name: "collector", Files: steward.ConfigMap{"": {Body: []byte(body), ContentType: "text/yaml"}}}); err != nil {
		return err
	}
	if v == 1 {
		_, err := r.api.PutAssignment(ctx, &steward.Assignment{Name: "all-collectors", ConfigName: "collector", Selector: "service.name=io.opentelemetry.collector"})
		return err
	}
	return nil
}

// serverAppliedCount is how many agents the server counts as running
// their desired config, cheaply: the peer's counter of the pushed hash,
// Steward's summary (in sync and APPLIED).
func (r *run) serverAppliedCount(ctx context.Context) (int, error) {
	if r.cfg.Server == OpAMPGo {
		st, err := loadgen.FetchStats(ctx, r.stats, false)
		return int(st.Applied), err
	}
	sum, err := r.api.Summary(ctx)
	if err != nil {
		return 0, err
	}
	return min(sum.BySync[string(steward.SyncInSync)], sum.ByConfigStatus[string(steward.RemoteConfigApplied)]), nil
}

// configBody is config version v carrying marker, padded with comment
// lines to Config.ConfigBytes.
func (r *run) configBody(v int, marker string) string {
	body := fmt.Sprintf("receivers:\n  otlp:\n    protocols:\n      grpc: {}\nprocessors:\n  batch: {}\nexporters:\n  otlphttp:\n    endpoint: https://collector.example:4318\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlphttp]\n# version %d %s\n", v, marker)
	var b strings.Builder
	b.WriteString(body)
	for i := 0; b.Len() < r.cfg.ConfigBytes; i++ {
		fmt.Fprintf(&b, "# padding line %08d of version %d, making the config as large as a real one\n", i, v)
	}
	return b.String()
}

// serverApplied counts the agents the server reports as running the
// config that carries marker.
func (r *run) serverApplied(ctx context.Context, marker string) (int, error) {
	if r.cfg.Server == OpAMPGo {
		st, err := loadgen.FetchStats(ctx, r.stats, false)
		return int(st.Applied), err
	}
	if r.cfg.ConfigBytes > 16<<10 {
		// Listing 10k agents with their effective configs is gigabytes:
		// the count has to do.
		return r.serverAppliedCount(ctx)
	}
	n := 0
	err := r.eachAgent(ctx, func(a *steward.Agent) {
		rs := a.RemoteConfigStatus
		if rs == nil || rs.Status != steward.RemoteConfigApplied || a.EffectiveConfig == nil {
			return
		}
		if f, ok := (*a.EffectiveConfig)["collector"]; ok && bytes.Contains(f.Body, []byte(marker)) {
			n++
		}
	})
	return n, err
}

// eachAgent calls f for every agent Steward's API lists, a page at a time.
func (r *run) eachAgent(ctx context.Context, f func(*steward.Agent)) error {
	// A page must stay well below the API client's 64 MiB response limit:
	// an agent lists as ~2 KiB, its effective config (base64) and ~160
	// bytes per available component (225 of them: 37.7 KB).
	size := 2<<10 + r.cfg.ConfigBytes*4/3 + 160*r.cfg.Components
	page := max(1, min(2000, (16<<20)/size))
	for off := 0; ; off += page {
		agents, total, err := r.api.Agents(ctx, steward.AgentFilter{Offset: off, Limit: page})
		if err != nil {
			return err
		}
		for _, a := range agents {
			f(a)
		}
		if off+len(agents) >= total || len(agents) == 0 {
			return nil
		}
	}
}

// rolloutMeasure is what one timed change measured.
type rolloutMeasure struct {
	acked       time.Duration // from the request to the last APPLIED at the agents
	applied     int           // agents the server shows APPLIED
	cpu         time.Duration // server CPU from the request until it shows every ack
	cpuStored   time.Duration // Steward: until every ack is also stored
	apiLag      time.Duration // from the last APPLIED to the server showing all
	disconnects uint64        // connections lost meanwhile
	dropped     uint64        // of them, closed by the agents
	encodings   uint64        // remote configs marshalled meanwhile
	stuck       uint64        // agents the transport cut off, in all
}

// timedRollout makes change v and waits until every agent applied it and
// the server shows that.
func (r *run) timedRollout(ctx context.Context, g *loadgen.Generator, v int) (*rolloutMeasure, error) {
	marker := fmt.Sprintf("rollout-%d-%s", v, steward.NewInstanceUID())
	ro := g.TrackRollout([]byte(marker))
	before, err := loadgen.FetchStats(ctx, r.stats, false)
	if err != nil {
		return nil, err
	}
	st0 := g.Stats()
	profiled := v == 2 && r.cfg.CPUProfile != "" && r.cfg.Server == Steward
	if profiled {
		_ = r.srv.Process.Signal(syscall.SIGUSR2) // the profile starts over
	}
	start := time.Now()
	if err := r.change(ctx, v, marker); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	d, err := ro.Wait(wctx, r.cfg.Agents, start)
	if err != nil {
		return nil, err
	}
	m := &rolloutMeasure{acked: d}
	// Every 100 ms, a cheap count (Steward: the summary); when it shows
	// every agent, the time and the CPU are taken, then the full check
	// confirms it is this change (a count could be of the last one).
	for {
		err = r.untilEvery(ctx, 100*time.Millisecond, r.cfg.Timeout, "server shows every agent APPLIED", func() (bool, error) {
			n, err := r.serverAppliedCount(ctx)
			return n >= r.cfg.Agents, err
		})
		if err != nil {
			return nil, err
		}
		m.apiLag = max(0, time.Since(start)-d)
		after, err := loadgen.FetchStats(ctx, r.stats, false)
		if err != nil {
			return nil, err
		}
		m.cpu = time.Duration(after.CPU - before.CPU)
		m.encodings = after.ConfigEncodings - before.ConfigEncodings
		m.stuck = after.Stuck
		if r.cfg.Server == Steward {
			err = r.untilEvery(ctx, 20*time.Millisecond, r.cfg.Timeout, "server stores every agent state", func() (bool, error) {
				after, err = loadgen.FetchStats(ctx, r.stats, false)
				return err == nil && after.PendingWrites == 0, err
			})
			if err != nil {
				return nil, err
			}
			m.cpuStored = time.Duration(after.CPU - before.CPU)
			if profiled {
				_ = r.srv.Process.Signal(syscall.SIGUSR1) // the change is stored
			}
		}
		if m.applied, err = r.serverApplied(ctx, marker); err != nil {
			return nil, err
		}
		if m.applied >= r.cfg.Agents {
			break
		}
		r.logf("the count showed every agent, the check %d: still waiting", m.applied)
		if err := sleep(ctx, 250*time.Millisecond); err != nil { // a full check costs the server

			return nil, err
		}
	}
	st := g.Stats()
	m.disconnects, m.dropped = st.Disconnects-st0.Disconnects, st.Dropped-st0.Dropped
	return m, nil
}

func (r *run) rollout(ctx context.Context, res *Result) error {
	if err := r.startServer(ctx); err != nil {
		return err
	}
	g, err := r.fleet(ctx, res)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return err
	}
	m1, err := r.timedRollout(ctx, g, 1)
	if err != nil {
		return err
	}
	res.FirstRolloutSeconds = m1.acked.Seconds()
	r.logf("first config (new assignment) applied by all in %.3fs", m1.acked.Seconds())
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return err
	}
	m, err := r.timedRollout(ctx, g, 2)
	if err != nil {
		return err
	}
	res.RolloutSeconds = m.acked.Seconds()
	res.ServerApplied = m.applied
	res.RolloutCPUSeconds = m.cpu.Seconds()
	res.RolloutStoredCPUSeconds = m.cpuStored.Seconds()
	res.APILagSeconds = m.apiLag.Seconds()
	res.RolloutDisconnects = m1.disconnects + m.disconnects
	res.RolloutDropped = m1.dropped + m.dropped
	res.ConfigEncodings = m1.encodings + m.encodings
	res.ServerStuck = m.stuck
	st := g.Stats()
	res.LoadgenErrors, res.ServerErrors = st.ConnectErrors, st.ServerErrors
	r.logf("config change applied by all in %.3fs; server shows %d APPLIED %.3fs later, server CPU %.2fs (%.2fs until stored), %d disconnects (%d by the agents)",
		m.acked.Seconds(), m.applied, m.apiLag.Seconds(), m.cpu.Seconds(), m.cpuStored.Seconds(), res.RolloutDisconnects, res.RolloutDropped)
	return nil
}

func (r *run) storm(ctx context.Context, res *Result) error {
	if err := r.startServer(ctx); err != nil {
		return err
	}
	g, err := r.fleet(ctx, res)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return err
	}
	if _, err := r.timedRollout(ctx, g, 1); err != nil {
		return err
	}
	if err := sleep(ctx, r.cfg.Settle); err != nil { // last-seen flush and event writes
		return err
	}
	disc := g.Stats().Disconnects
	r.logf("kill -9 of the server")
	r.kill()
	n := r.cfg.Agents
	if err := r.until(ctx, r.cfg.Timeout, "agents notice the crash", func() (bool, error) {
		return g.Stats().Disconnects-disc >= uint64(n), nil
	}); err != nil {
		return err
	}
	restart := time.Now()
	if err := r.startServer(ctx); err != nil {
		return err
	}
	err = r.until(ctx, r.cfg.Timeout, "every agent back", func() (bool, error) {
		if g.Stats().Connected < int64(n) {
			return false, nil
		}
		st, err := loadgen.FetchStats(ctx, r.stats, false)
		return err == nil && st.Connections >= int64(n), nil
	})
	if err != nil {
		return fmt.Errorf("%w (loadgen connected %d of %d)", err, g.Stats().Connected, n)
	}
	res.ReconnectSeconds = time.Since(restart).Seconds()
	if st, err := loadgen.FetchStats(ctx, r.stats, false); err == nil {
		res.StormCPUPer1k = float64(st.CPU) / 1e6 / (float64(n) / 1000)
	}
	if r.cfg.CPUProfile != "" && r.cfg.Server == Steward {
		_ = r.srv.Process.Signal(syscall.SIGUSR1) // the profile ends with the storm
	}
	r.logf("all %d agents back %.2fs after the restart began, server CPU %.1fms per 1k connects", n, res.ReconnectSeconds, res.StormCPUPer1k)
	st := g.Stats()
	res.LoadgenErrors, res.ServerErrors = st.ConnectErrors, st.ServerErrors
	if r.cfg.Server != Steward {
		res.InventoryNote = "no inventory (the opamp-go peer keeps none)"
		return nil
	}
	var problem string
	err = r.until(ctx, r.cfg.Timeout, "inventory complete", func() (bool, error) {
		problem, err = r.checkInventory(ctx, g)
		return problem == "", err
	})
	if err != nil {
		res.InventoryNote = problem
		return err
	}
	res.InventoryOK = true
	res.InventoryNote = "every agent known, online, described, APPLIED"
	return nil
}

// listed is what checkInventory reads of one listed agent; the agent
// itself is not kept (10k agents' component lists decode to gigabytes).
type listed struct {
	online     bool
	env        string
	status     *steward.RemoteConfigStatus
	components int // available components, under their kinds
}

// checkInventory compares the server's agents with the fleet: every
// instance uid present, online, with its description, the applied config
// and its available components (Config.Components). It returns a
// description of the first problem, or "".
func (r *run) checkInventory(ctx context.Context, g *loadgen.Generator) (string, error) {
	byID := map[steward.InstanceUID]listed{}
	err := r.eachAgent(ctx, func(a *steward.Agent) {
		l := listed{online: a.Online, env: a.Attribute("env"), status: a.RemoteConfigStatus}
		if ac := a.AvailableComponents; ac != nil {
			for _, kind := range ac.Components {
				l.components += len(kind.Components)
			}
		}
		byID[a.ID] = l
	})
	if err != nil {
		return "", err
	}
	if len(byID) != r.cfg.Agents {
		return fmt.Sprintf("server lists %d agents, want %d", len(byID), r.cfg.Agents), nil
	}
	for i, uid := range g.InstanceUIDs() {
		a, ok := byID[steward.InstanceUID(uid)]
		switch {
		case !ok:
			return fmt.Sprintf("agent %d missing", i), nil
		case !a.online:
			return fmt.Sprintf("agent %d offline", i), nil
		case a.env != g.Env(i):
			return fmt.Sprintf("agent %d: description lost", i), nil
		case a.status == nil || a.status.Status != steward.RemoteConfigApplied:
			return fmt.Sprintf("agent %d: remote config status %+v", i, a.status), nil
		case a.components != r.cfg.Components:
			return fmt.Sprintf("agent %d: %d available components, want %d", i, a.components, r.cfg.Components), nil
		}
	}
	return "", nil
}

// sleep waits for d or until ctx ends, returning ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// JSON renders a result as one line of JSON.
func (res *Result) JSON() string {
	b, _ := json.Marshal(res)
	return string(b)
}
