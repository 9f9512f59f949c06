package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/postgres/pgtest"
)

// buildSteward compiles cmd/steward once per test binary run.
var buildSteward = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "steward-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "steward")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/steward")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// replica is one `steward server` process.
type replica struct {
	name       string
	cmd        *exec.Cmd
	opamp, api string
	exited     chan struct{}
}

var runningRE = regexp.MustCompile(`steward server running"? opamp=ws://(\S+)/v1/opamp ui=http://(\S+)`)

func startReplica(t *testing.T, bin, dsn, name string) *replica {
	t.Helper()
	return startProcess(t, bin, name, "--postgres", dsn, "--replica", name, "--data-dir", t.TempDir(), "--replica-lease", "3s")
}

// startProcess starts `steward server` with args on free local ports and
// waits until it serves.
func startProcess(t *testing.T, bin, name string, args ...string) *replica {
	t.Helper()
	args = append([]string{"server", "--opamp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-password", "-", "--log-level", "info"}, args...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, cmd: cmd, exited: make(chan struct{})}
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := runningRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- [2]string{m[1], m[2]}
			}
			if testing.Verbose() {
				fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
			}
		}
	}()
	go func() { cmd.Wait(); close(r.exited) }()
	select {
	case a := <-found:
		r.opamp, r.api = a[0], "http://"+a[1]
	case <-r.exited:
		t.Fatalf("replica %s exited at start", name)
	case <-time.After(60 * time.Second):
		t.Fatalf("replica %s did not start", name)
	}
	t.Cleanup(func() { r.kill() })
	return r
}

// kill ends the process at once (SIGKILL): no graceful shutdown.
func (r *replica) kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

func (r *replica) server() *server { return &server{opamp: r.opamp, api: r.api} }

// balancer is a TCP load balancer: each new connection goes to the next
// backend that accepts it, as a cloud load balancer with health checks would.
type balancer struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
}

func newBalancer(t *testing.T, backends ...string) *balancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, backends: backends}
	go b.serve()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.proxy(c)
	}
}

func (b *balancer) proxy(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	n := len(b.backends)
	start := b.next
	b.next++
	b.mu.Unlock()
	var up net.Conn
	for i := 0; i < n && up == nil; i++ {
		b.mu.Lock()
		if len(b.backends) == 0 {
			b.mu.Unlock()
			return
		}
		// The list may have shrunk since n was read (a replica removed).
		addr := b.backends[(start+i)%len(b.backends)]
		b.mu.Unlock()
		up, _ = net.DialTimeout("tcp", addr, time.Second)
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func TestReplicasSharePostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin, err := buildSteward()
	if err != nil {
		t.Fatal(err)
	}
	reps := []*replica{startReplica(t, bin, dsn, "r0"), startReplica(t, bin, dsn, "r1"), startReplica(t, bin, dsn, "r2")}
	lb := newBalancer(t, reps[0].opamp, reps[1].opamp, reps[2].opamp)

	var agents []*agent
	for i := 0; i < 6; i++ {
		agents = append(agents, startAgent(t, "ws", "ws://"+lb.addr()+"/v1/opamp", "prod"))
	}
	for i := 0; i < 2; i++ {
		agents = append(agents, startAgent(t, "http", "http://"+lb.addr()+"/v1/opamp", "prod"))
	}
	api0, api2 := reps[0].server(), reps[2].server()
	held := map[string]int{}
	for _, a := range agents {
		eventually(t, "agent "+a.id()+" online", func() bool {
			var got steward.Agent
			if api0.call(t, "GET", "/api/v1/agents/"+a.id(), nil, nil) != 200 {
				return false
			}
			api0.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got)
			if got.Online {
				held[got.Replica]++
			}
			return got.Online
		})
	}
	t.Logf("agents per replica: %v", held)

	// A change made on replica 2 reaches agents held by every replica.
	start := time.Now()
	api2.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": "v: 1\n"}}}, &steward.Config{})
	api2.call(t, "PUT", "/api/v1/assignments/prod", map[string]any{"name": "prod", "config": "base", "selector": "env=prod"}, &steward.Assignment{})
	waitApplied(t, api0, agents, "v: 1\n")
	t.Logf("config change applied by %d agents on 3 replicas in %v", len(agents), time.Since(start))

	// Kill replica 1 mid-change: its agents reconnect through the balancer
	// to the others, and the next version reaches everyone.
	api0.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": "v: 2\n"}}}, &steward.Config{})
	reps[1].kill()
	lb.mu.Lock()
	lb.backends = []string{reps[0].opamp, reps[2].opamp}
	lb.mu.Unlock()
	waitApplied(t, api0, agents, "v: 2\n")
	for _, a := range agents {
		eventually(t, "agent "+a.id()+" online on a live replica", func() bool {
			var got steward.Agent
			api2.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got)
			return got.Online && got.Replica != "r1"
		})
	}
	// An agent that never comes back after its replica died is marked
	// offline once the dead replica's lease lapses.
	gone := startAgent(t, "ws", "ws://"+reps[2].opamp+"/v1/opamp", "dev")
	eventually(t, "late agent online", func() bool {
		var got steward.Agent
		return api0.call(t, "GET", "/api/v1/agents/"+gone.id(), nil, nil) == 200 &&
			api0.call(t, "GET", "/api/v1/agents/"+gone.id(), nil, &got) == 200 && got.Online
	})
	reps[2].kill()
	eventually(t, "agents of the killed replica marked offline", func() bool {
		var got steward.Agent
		api0.call(t, "GET", "/api/v1/agents/"+gone.id(), nil, &got)
		return !got.Online
	})
	var list struct{ Total int }
	api0.call(t, "GET", "/api/v1/agents", nil, &list)
	if list.Total != len(agents)+1 {
		t.Fatalf("inventory has %d agents, want %d", list.Total, len(agents)+1)
	}

	// A staged rollout started on one replica, which is killed at once:
	// another replica carries it through.
	r3 := startReplica(t, bin, dsn, "r3")
	lb.mu.Lock()
	lb.backends = []string{reps[0].opamp, r3.opamp}
	lb.mu.Unlock()
	api3 := r3.server()
	api0.call(t, "PUT", "/api/v1/assignments/prod", map[string]any{"name": "prod", "config": "base", "version": 2, "selector": "env=prod"}, &steward.Assignment{})
	api0.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": "v: 3\n"}}}, &steward.Config{})
	var ro steward.Rollout
	api0.call(t, "POST", "/api/v1/rollouts", map[string]any{"name": "to-v3", "assignment": "prod", "to_version": 3,
		"stages": []map[string]any{{"percent": 50}, {"percent": 100}}}, &ro)
	if ro.FromVersion != 2 || ro.State != steward.RolloutRunning {
		t.Fatalf("rollout started as %+v", ro)
	}
	reps[0].kill()
	lb.mu.Lock()
	lb.backends = []string{r3.opamp}
	lb.mu.Unlock()
	eventually(t, "rollout completed by the surviving replica", func() bool {
		api3.call(t, "GET", "/api/v1/rollouts/to-v3", nil, &ro)
		return ro.State == steward.RolloutCompleted
	})
	waitApplied(t, api3, agents, "v: 3\n")
	// The assignment is pinned to the new version just after the rollout is
	// stored as completed, in a write of its own (the rollout record decides
	// until then), so it may trail the state read above.
	var as steward.Assignment
	eventually(t, "assignment pinned to version 3 after the rollout", func() bool {
		api3.call(t, "GET", "/api/v1/assignments/prod", nil, &as)
		return as.Version == 3
	})
}

func waitApplied(t *testing.T, s *server, agents []*agent, body string) {
	t.Helper()
	for _, a := range agents {
		eventually(t, "agent "+a.id()+" applied "+body, func() bool {
			var got steward.Agent
			s.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got)
			return got.RemoteConfigStatus != nil && got.RemoteConfigStatus.Status == steward.RemoteConfigApplied &&
				got.EffectiveConfig != nil && string((*got.EffectiveConfig)["base"].Body) == body
		})
	}
}

var _ = context.Background
