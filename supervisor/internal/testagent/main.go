// Command testagent is a small real agent for the supervisor's tests. It
// reads the YAML file named by -config and behaves as it says:
//
//	behavior: run       run until signalled (default)
//	          crash     exit with exit_code (default 1) after crash_after
//	          hang      ignore SIGTERM and run forever
//	          invalid   print "Error: invalid configuration: <reason>" to
//	                    stderr and exit 1 (like a collector refusing a config)
//	health_addr: 127.0.0.1:PORT   serve GET /health with health_status (200)
//	spawn_child: true             start a child `sleep` in the same group
//	pid_file: PATH                write "pid [childpid]" there once started
//	greeting: TEXT                printed to stdout at start
//
// On SIGHUP it re-reads the file and prints "reloaded <greeting>". A file
// that is not valid YAML is treated like behavior: invalid.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

type config struct {
	Behavior     string        `yaml:"behavior"`
	ExitCode     int           `yaml:"exit_code"`
	CrashAfter   time.Duration `yaml:"crash_after"`
	HealthAddr   string        `yaml:"health_addr"`
	HealthStatus int           `yaml:"health_status"`
	SpawnChild   bool          `yaml:"spawn_child"`
	PIDFile      string        `yaml:"pid_file"`
	Greeting     string        `yaml:"greeting"`
}

func load(path string) (*config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// status is what /health answers; a reload can change it.
var status atomic.Int32

func setStatus(c *config) {
	if c.HealthStatus == 0 {
		status.Store(http.StatusOK)
	} else {
		status.Store(int32(c.HealthStatus))
	}
}

func main() {
	path := flag.String("config", "", "config file")
	flag.Parse()
	c, err := load(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: invalid configuration: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("testagent started pid=%d greeting=%s\n", os.Getpid(), c.Greeting)
	switch c.Behavior {
	case "invalid":
		fmt.Fprintln(os.Stderr, "Error: invalid configuration: behavior says so")
		os.Exit(1)
	case "crash":
		time.Sleep(c.CrashAfter)
		fmt.Fprintf(os.Stderr, "testagent crashing with code %d\n", max(c.ExitCode, 1))
		os.Exit(max(c.ExitCode, 1))
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	setStatus(c)
	childPID := 0
	if c.SpawnChild {
		cmd := exec.Command("sleep", "3600")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "spawn child:", err)
			os.Exit(2)
		}
		childPID = cmd.Process.Pid
	}
	if c.HealthAddr != "" {
		ln, err := net.Listen("tcp", c.HealthAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(2)
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(int(status.Load()))
		}))
	}
	if c.PIDFile != "" {
		s := fmt.Sprint(os.Getpid())
		if childPID != 0 {
			s += fmt.Sprint(" ", childPID)
		}
		_ = os.WriteFile(c.PIDFile, []byte(s), 0o644)
	}
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			if nc, err := load(*path); err == nil {
				c = nc
				setStatus(c)
			}
			fmt.Printf("reloaded %s\n", c.Greeting)
		default:
			if c.Behavior == "hang" {
				fmt.Println("ignoring", sig)
				continue
			}
			fmt.Println("stopping on", sig)
			os.Exit(0)
		}
	}
}
