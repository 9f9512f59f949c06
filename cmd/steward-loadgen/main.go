// Command steward-loadgen simulates OpAMP agents against a server and runs
// the benchmark scenarios of docs/performance.md.
//
//	steward-loadgen run   -url ws://127.0.0.1:4320/v1/opamp -agents 10000
//	steward-loadgen run   -url ws://127.0.0.1:4320/v1/opamp,ws://127.0.0.1:4321/v1/opamp -agents 10000
//	steward-loadgen bench -scenario idle -server steward -agents 10000
//
// Run `steward-loadgen run -h` or `steward-loadgen bench -h` for flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	benchpkg "github.com/stewardhq/steward/bench"
	"github.com/stewardhq/steward/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: steward-loadgen run|bench [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "bench":
		err = bench(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want run or bench", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "steward-loadgen:", err)
		os.Exit(1)
	}
}

const componentsUsage = "available components each agent reports, as a Collector does (contrib: about 225; only the hash until the server asks for the list); 0: none"

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var cfg loadgen.Config
	urls := fs.String("url", "ws://127.0.0.1:4320/v1/opamp", "OpAMP endpoint: ws:// for WebSocket agents, http:// for plain-HTTP agents; several replicas' endpoints separated by commas (agents spread over them and fail over to the next)")
	fs.IntVar(&cfg.Agents, "agents", 1000, "number of simulated agents")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 30*time.Second, "heartbeat (HTTP: poll) interval")
	fs.Float64Var(&cfg.Jitter, "jitter", 0.1, "heartbeat jitter, fraction of the interval")
	fs.IntVar(&cfg.ConnectRate, "rate", 0, "max new connections per second (0: unlimited)")
	fs.IntVar(&cfg.Dialers, "dialers", 64, "parallel connection attempts")
	fs.DurationVar(&cfg.ReconnectJitter, "reconnect-jitter", 4*time.Second, "spread of the first reconnect after losing the server")
	fs.IntVar(&cfg.Components, "components", 0, componentsUsage)
	fs.IntVar(&cfg.SourceAddrs, "sources", 0, "source addresses 127.0.0.1..N (0: 1 + agents/10000)")
	token := fs.String("token", "", "bearer token for the OpAMP endpoint")
	every := fs.Duration("every", 5*time.Second, "stats print interval")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	_ = fs.Parse(args)
	cfg.URLs = strings.Split(*urls, ",")
	if *token != "" {
		cfg.Header = map[string][]string{"Authorization": {"Bearer " + *token}}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if lim, err := loadgen.RaiseFileLimit(); err != nil || lim < uint64(cfg.Agents)+64 {
		fmt.Fprintf(os.Stderr, "warning: RLIMIT_NOFILE is %d (%v); %d agents need about %d descriptors\n", lim, err, cfg.Agents, cfg.Agents+64)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	g, err := loadgen.New(cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := g.Start(ctx); err != nil {
		return err
	}
	defer g.Close()
	t := time.NewTicker(*every)
	defer t.Stop()
	prev, prevT := g.Stats(), start
	for {
		select {
		case <-ctx.Done():
			printStats(g.Stats(), prev, time.Since(prevT), time.Since(start))
			return nil
		case now := <-t.C:
			s := g.Stats()
			printStats(s, prev, now.Sub(prevT), now.Sub(start))
			prev, prevT = s, now
		}
	}
}

func printStats(s, prev loadgen.Stats, dt, total time.Duration) {
	sec := dt.Seconds()
	self := loadgen.SelfStats(false)
	var last int64 // unix milliseconds of the latest APPLIED report, 0 before the first
	if !s.LastApplied.IsZero() {
		last = s.LastApplied.UnixMilli()
	}
	fmt.Printf("t=%-6s connected=%d/%d connects/s=%.0f sent/s=%.0f recv/s=%.0f errors=%d disconnects=%d applied=%d last_applied_ms=%d server_errors=%d rss=%s goroutines=%d\n",
		total.Round(time.Second), s.Connected, s.Agents,
		float64(s.Connects-prev.Connects)/sec, float64(s.Sent-prev.Sent)/sec, float64(s.Received-prev.Received)/sec,
		s.ConnectErrors, s.Disconnects, s.Applied, last, s.ServerErrors, mib(self.RSS), self.Goroutines)
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var cfg benchpkg.Config
	fs.StringVar(&cfg.Scenario, "scenario", "idle", "idle, heartbeat, rollout or storm")
	fs.StringVar(&cfg.Server, "server", "steward", "server under test: steward, opampgo, or both (the same scenario on each, then their ratio)")
	fs.StringVar(&cfg.ServerBin, "bin", "", "server binary (default ./bin/steward-server or ./bin/opampgo-server; with -server both, the directory holding both)")
	fs.IntVar(&cfg.Agents, "agents", 1000, "number of simulated agents")
	fs.StringVar(&cfg.OpAMPAddr, "addr", "127.0.0.1:4320", "server OpAMP address")
	fs.StringVar(&cfg.APIAddr, "api", "127.0.0.1:6060", "server API / stats address")
	fs.StringVar(&cfg.DataDir, "data", "", "directory for the server database and log (default: a temporary one)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "agent heartbeat interval (default 30s; 1s in the heartbeat scenario)")
	fs.BoolVar(&cfg.HTTP, "http", false, "agents poll over plain HTTP (idle and heartbeat scenarios)")
	fs.DurationVar(&cfg.ReconnectJitter, "reconnect-jitter", time.Second, "spread of the agents' first reconnect after losing the server")
	fs.DurationVar(&cfg.Window, "window", 20*time.Second, "measurement window of the heartbeat scenario")
	fs.DurationVar(&cfg.Settle, "settle", 5*time.Second, "wait after connecting before measuring")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "bound of each waiting step")
	fs.IntVar(&cfg.ConfigBytes, "config-bytes", 0, "size the pushed config is padded to (rollout, storm)")
	fs.IntVar(&cfg.Components, "components", 0, componentsUsage)
	fs.StringVar(&cfg.ServerCPUs, "server-cpus", "", "pin the server to these CPUs (taskset -c), e.g. 0")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "Steward's server writes its CPU profile here, from its last start until stopped (storm: from the restart until every agent is back; rollout: the timed change, until stored)")
	fs.StringVar(&cfg.Postgres, "postgres", "", "Steward stores its state on this PostgreSQL server (URL), in a database steward_bench made anew for the run, instead of SQLite")
	_ = fs.Parse(args)
	if cfg.Server != "both" {
		if cfg.ServerBin == "" {
			cfg.ServerBin = "./bin/" + cfg.Server + "-server"
		}
		res, err := benchpkg.Run(ctx, cfg)
		if res != nil {
			fmt.Println(res.JSON())
		}
		return err
	}
	dir := cfg.ServerBin
	if dir == "" {
		dir = "./bin"
	}
	var results []*benchpkg.Result
	for _, srv := range []string{benchpkg.Steward, benchpkg.OpAMPGo} {
		c := cfg
		c.Server, c.ServerBin = srv, filepath.Join(dir, srv+"-server")
		res, err := benchpkg.Run(ctx, c)
		if res != nil {
			fmt.Println(res.JSON())
		}
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	ratio := benchpkg.Ratio(results[0], results[1])
	fmt.Println(ratio.JSON())
	fmt.Fprintln(os.Stderr, ratio.String())
	return nil
}
