package server

import (
	"bufio"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// BenchmarkHeartbeatFleet measures the server's CPU time (user + system,
// this process only: the agents run in a child process) per heartbeat from
// a fleet of connected agents, each sending a heartbeat every 100 ms (the
// bench's 10k agents × 1/s in message rate), for Steward's server and
// opamp-go's. STEWARD_BENCH_CONNS sets the fleet (default 1000),
// STEWARD_BENCH_EVERY the interval (0: each agent sends its next heartbeat
// when the reply to its last has arrived); pin the benchmark and
// its child apart to compare like the bench does, e.g.
// `taskset -c 0 go test ...` with STEWARD_BENCH_CLIENT_CPUS=1.
func BenchmarkHeartbeatFleet(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("STEWARD_BENCH_CONNS")); err == nil && v > 0 {
		n = v
	}
	b.Run("steward", func(b *testing.B) { measureHeartbeats(b, n, startStewardIdle) })
	b.Run("opamp-go", func(b *testing.B) { measureHeartbeats(b, n, startOpampGoIdle) })
}

func measureHeartbeats(b *testing.B, n int, start func(*testing.B) idleServer) {
	srv := start(b)
	defer srv.stop()
	every := os.Getenv("STEWARD_BENCH_EVERY")
	if every == "" {
		every = "100ms"
	}
	args := []string{os.Args[0], "-test.run=^$"}
	if cpus := os.Getenv("STEWARD_BENCH_CLIENT_CPUS"); cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), idleClientsEnv+"="+strconv.Itoa(n), "STEWARD_IDLE_ADDR="+srv.addr, heartbeatEnv+"="+every)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("client helper: %q %v", line, err)
	}
	// Warm up, then count b.N heartbeats.
	m0 := srv.messages()
	eventually(b, "heartbeats flowing", func() bool { return srv.messages() > m0+int64(n) })
	b.ResetTimer()
	m0, cpu0 := srv.messages(), cpuNanos()
	eventually(b, "b.N heartbeats", func() bool { return srv.messages() >= m0+int64(b.N) })
	m1, cpu1 := srv.messages(), cpuNanos()
	b.StopTimer()
	b.ReportMetric(float64(cpu1-cpu0)/float64(m1-m0)/1e3, "cpu-µs/msg")
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// heartbeatEnv makes the idle helper's agents heartbeat at the interval
// it holds (0: in a closed loop, each message sent when the reply to the
// last has arrived).
const heartbeatEnv = "STEWARD_IDLE_HEARTBEAT"

// heartbeatLoop sends c's heartbeat every interval and reads the reply,
// until the connection fails; the first waits a random part of it.
func heartbeatLoop(c net.Conn, every time.Duration) {
	msg, _ := opamp.AppendWS(nil, status(2))
	frame := websocket.AppendFrame(nil, true, websocket.Binary, msg, true, [4]byte{7, 7, 7, 7})
	ws := websocket.NewConn(c, true, nil, 0)
	if _, _, err := ws.ReadMessage(); err != nil { // the reply to the connect
		return
	}
	next := time.Now().Add(time.Duration(rand.Int64N(int64(every) + 1)))
	for {
		if every > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(every)
		}
		if _, err := c.Write(frame); err != nil {
			return
		}
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
	}
}
