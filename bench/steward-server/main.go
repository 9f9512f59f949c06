// Command steward-server is Steward's server as the benchmarks run it: the
// same parts `steward server` wires (embedded SQLite store, or PostgreSQL
// with -postgres; control plane, epoll-based OpAMP transport, REST API)
// without the web UI, plus GET /debug/stats on the API listener reporting
// memory, goroutines, CPU time and transport counters (see
// loadgen.ProcStats).
//
// The REST API accepts the bearer token given by -token. With -cpuprofile
// the process's CPU profile, from its start (or the last SIGUSR2) until
// SIGUSR1 or SIGTERM, is written to that file (the storm scenario sends
// SIGUSR1 once every agent is back: the profile is the connect storm's;
// the rollout scenario profiles the timed change, see startCPUProfile).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	pprofrt "runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/internal/gcpolicy"
	"github.com/stewardhq/steward/loadgen"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4320", "OpAMP listen address (path /v1/opamp)")
	api := flag.String("api", "127.0.0.1:6060", "REST API and /debug/stats listen address")
	db := flag.String("db", "bench-steward.db", "SQLite database file")
	pg := flag.String("postgres", "", "PostgreSQL DSN: store there instead of in the SQLite file")
	token := flag.String("token", "bench", "REST API bearer token")
	heartbeat := flag.Duration("heartbeat", 30*time.Second, "heartbeat interval expected of agents")
	budget := flag.Int("push-budget", envInt("STEWARD_PUSH_BUDGET", 0), "MiB of large messages in flight to agents (server.Config.PushBudget; 0: its default, -1: no bound); env STEWARD_PUSH_BUDGET")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile from the start until SIGUSR1 or SIGTERM to this file")
	var level slog.Level = slog.LevelWarn
	flag.TextVar(&level, "log-level", level, "least level logged to stderr: debug, info, warn or error")
	flag.Parse()
	gcpolicy.Apply() // as `steward server` runs
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			log.Fatalf("cpu profile: %v", err)
		}
		defer stop()
	}
	if _, err := loadgen.RaiseFileLimit(); err != nil {
		log.Printf("raising the file limit: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, err := openStore(ctx, *db, *pg)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	cp, err := controlplane.New(ctx, controlplane.Config{Store: store, Replica: "bench", HeartbeatInterval: *heartbeat, Logger: logger})
	if err != nil {
		log.Fatalf("control plane: %v", err)
	}
	pushBudget := int64(*budget) << 20
	if *budget < 0 {
		pushBudget = -1
	}
	transport, err := server.New(server.Config{Handler: cp, Capabilities: opamp.ServerCapabilities, PushBudget: pushBudget, Logger: logger})
	if err != nil {
		log.Fatalf("transport: %v", err)
	}
	apiHandler := stewardhttp.NewServer(stewardhttp.Options{
		Agents: cp, Configs: cp, Rollouts: cp, Previews: cp, Events: cp.Bus(), EventLog: cp.Events,
		APITokens: []string{*token}, Logger: logger,
	})
	mux := http.NewServeMux()
	mux.Handle("GET /debug/stats", loadgen.StatsHandler(func(p *loadgen.ProcStats) {
		s := transport.Stats()
		p.Connections = s.Connections
		p.Messages = s.Messages
		p.ConfigEncodings = s.ConfigEncodings
		p.Stuck = s.Stuck
		p.PendingWrites = cp.PendingWrites()
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("/", apiHandler)

	opampMux := http.NewServeMux()
	opampMux.Handle(opamp.DefaultPath, transport)
	opampSrv := &http.Server{Handler: opampMux, ReadHeaderTimeout: 10 * time.Second}
	apiSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	oln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	aln, err := net.Listen("tcp", *api)
	if err != nil {
		log.Fatalf("listen %s: %v", *api, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- opampSrv.Serve(oln) }()
	go func() { errc <- apiSrv.Serve(aln) }()
	log.Printf("steward server on ws://%s%s, API and stats on http://%s", oln.Addr(), opamp.DefaultPath, aln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Printf("serve: %v", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = apiSrv.Shutdown(sctx)
	_ = transport.Shutdown(sctx)
	_ = opampSrv.Shutdown(sctx)
	if err := cp.Close(); err != nil {
		log.Printf("control plane close: %v", err)
	}
}

// startCPUProfile profiles the process into file until SIGUSR1 or the
// returned stop is called. SIGUSR2 starts the profile over (the rollout
// scenario sends it when the timed change begins, SIGUSR1 once it is
// stored: the profile is that change's).
func startCPUProfile(file string) (stop func(), err error) {
	var (
		mu      sync.Mutex
		f       *os.File
		stopped bool
	)
	start := func() error {
		var err error
		if f, err = os.Create(file); err != nil {
			return err
		}
		if err := pprofrt.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		return nil
	}
	end := func() {
		pprofrt.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Printf("cpu profile: %v", err)
		}
	}
	if err := start(); err != nil {
		return nil, err
	}
	stop = func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			stopped = true
			end()
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGUSR1 {
				stop()
				return
			}
			mu.Lock()
			if !stopped {
				end()
				if err := start(); err != nil {
					log.Printf("cpu profile: %v", err)
					stopped = true
				}
			}
			mu.Unlock()
		}
	}()
	return stop, nil
}

// openStore opens PostgreSQL at dsn when it is set, else SQLite at path.
func openStore(ctx context.Context, path, dsn string) (steward.Store, error) {
	if dsn != "" {
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return st, nil
}

// envInt is the integer in environment variable name, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
