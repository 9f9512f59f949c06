// Command steward-supervisor runs an agent (an OpenTelemetry Collector or any
// program) and manages it over OpAMP for a Steward server. See
// docs/supervisor.md.
//
//	steward-supervisor --config supervisor.yaml
//
// SIGTERM or SIGINT stops the agent gracefully and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stewardhq/steward/supervisor"
)

func main() {
	path := flag.String("config", "supervisor.yaml", "supervisor config file")
	check := flag.Bool("check", false, "validate the config file and what it names on this host (executable, files), then exit")
	flag.Parse()
	cfg, err := supervisor.LoadConfig(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "steward-supervisor:", err)
		os.Exit(2)
	}
	if *check {
		if err := cfg.Check(); err != nil {
			fmt.Fprintf(os.Stderr, "steward-supervisor: %s:\n%v\n", *path, err)
			os.Exit(2)
		}
		fmt.Println("config OK")
		return
	}
	sup, err := supervisor.New(cfg, supervisor.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "steward-supervisor:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := sup.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "steward-supervisor:", err)
		os.Exit(1)
	}
}
