package agentproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var testAgent string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentproc-test")
	if err != nil {
		panic(err)
	}
	testAgent = filepath.Join(dir, "testagent")
	out, err := exec.Command("go", "build", "-o", testAgent, "../internal/testagent").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build testagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func agentCmd(t *testing.T, config string) (Command, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return Command{Path: testAgent, Args: []string{"-config", path}}, dir
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func readPIDs(t *testing.T, path string) []int {
	var pids []int
	eventually(t, "pid file", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && len(b) > 0
	})
	b, _ := os.ReadFile(path)
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, n)
	}
	return pids
}

func TestStopKillsProcessGroup(t *testing.T) {
	cmd, dir := agentCmd(t, "")
	pidFile := filepath.Join(dir, "pids")
	os.WriteFile(cmd.Args[1], []byte("spawn_child: true\npid_file: "+pidFile+"\ngreeting: hello\n"), 0o644)
	p, err := Start(cmd, NewTail(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	pids := readPIDs(t, pidFile)
	if len(pids) != 2 || pids[0] != p.Pid() {
		t.Fatalf("pids = %v, process %d", pids, p.Pid())
	}
	eventually(t, "greeting in tail", func() bool { return strings.Contains(p.Tail().String(0), "greeting=hello") })
	p.Stop(context.Background(), 10*time.Second)
	if !p.Exited() {
		t.Fatal("process not exited after Stop")
	}
	// The child `sleep` ignores nothing: SIGTERM to the group ends it too.
	eventually(t, "child gone", func() bool { return !alive(pids[1]) })
	if !strings.Contains(p.Tail().String(0), "stopping on terminated") {
		t.Fatalf("agent did not see SIGTERM; output:\n%s", p.Tail().String(0))
	}
}

func TestStopKillsHungProcess(t *testing.T) {
	cmd, dir := agentCmd(t, "")
	pidFile := filepath.Join(dir, "pids")
	os.WriteFile(cmd.Args[1], []byte("behavior: hang\npid_file: "+pidFile+"\n"), 0o644)
	p, err := Start(cmd, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	readPIDs(t, pidFile) // signal handlers are installed
	p.Stop(context.Background(), 2*time.Second)
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("exit = %v, want killed by SIGKILL", err)
	}
	if !strings.Contains(p.Tail().String(0), "ignoring terminated") {
		t.Fatalf("output:\n%s", p.Tail().String(0))
	}
}

func TestStartFailure(t *testing.T) {
	if _, err := Start(Command{Path: "/nonexistent/agent"}, nil, nil); err == nil {
		t.Fatal("expected an error")
	}
}

func TestTail(t *testing.T) {
	tl := NewTail(3)
	if got := tl.Lines(0); len(got) != 0 {
		t.Fatalf("empty tail = %v", got)
	}
	for i := 1; i <= 5; i++ {
		tl.Add(strconv.Itoa(i))
	}
	if got := strings.Join(tl.Lines(0), ","); got != "3,4,5" {
		t.Fatalf("lines = %s", got)
	}
	if got := tl.String(2); got != "4\n5" {
		t.Fatalf("last 2 = %q", got)
	}
	tl.Reset()
	tl.Add("x")
	if got := strings.Join(tl.Lines(0), ","); got != "x" {
		t.Fatalf("after reset = %s", got)
	}
}

func TestLongLinesAreBounded(t *testing.T) {
	long := strings.Repeat("y", 3*maxLine)
	p, err := Start(Command{Path: "sh", Args: []string{"-c", "echo " + long + "; echo after"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	lines := p.Tail().Lines(0)
	if len(lines) != 2 || len(lines[0]) != maxLine || lines[1] != "after" {
		t.Fatalf("got %d lines, first %d bytes: %q", len(lines), len(lines[0]), lines[len(lines)-1])
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond}, {4, 500 * time.Millisecond}, {40, 500 * time.Millisecond}} {
		if got := Backoff(100*time.Millisecond, 500*time.Millisecond, c.n); got != c.want {
			t.Errorf("Backoff(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
func (r *recorder) exits() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Kind == EventExited {
			out = append(out, e)
		}
	}
	return out
}

func TestRunnerBacksOffAndDetectsCrashLoop(t *testing.T) {
	cmd, _ := agentCmd(t, "behavior: crash\nexit_code: 3\n")
	rec := &recorder{}
	r := NewRunner(RunnerConfig{Command: cmd, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		ResetAfter: time.Hour, CrashLoopCount: 3, CrashLoopWindow: time.Hour, OnEvent: rec.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	eventually(t, "5 exits", func() bool { return len(rec.exits()) >= 5 })
	cancel()
	<-done
	ex := rec.exits()
	wantBackoff := []time.Duration{10, 20, 40, 80, 80}
	for i := 0; i < 5; i++ {
		e := ex[i]
		if e.Backoff != wantBackoff[i]*time.Millisecond {
			t.Errorf("exit %d backoff = %v, want %v", i, e.Backoff, wantBackoff[i]*time.Millisecond)
		}
		if want := i >= 2; e.CrashLoop != want {
			t.Errorf("exit %d crash loop = %v, want %v", i, e.CrashLoop, want)
		}
		var ee *exec.ExitError
		if !errors.As(e.Err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("exit %d err = %v", i, e.Err)
		}
		if !strings.Contains(e.Process.Tail().String(0), "crashing with code 3") {
			t.Errorf("exit %d output = %q", i, e.Process.Tail().String(0))
		}
	}
	if _, err := r.Restart(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Restart after Run = %v", err)
	}
}

func TestRunnerRestart(t *testing.T) {
	cmd, dir := agentCmd(t, "")
	pidFile := filepath.Join(dir, "pids")
	os.WriteFile(cmd.Args[1], []byte("pid_file: "+pidFile+"\n"), 0o644)
	rec := &recorder{}
	r := NewRunner(RunnerConfig{Command: cmd, OnEvent: rec.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	eventually(t, "first process", func() bool { return r.Current() != nil })
	first := r.Current()
	readPIDs(t, pidFile)
	p, err := r.Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() == first.Pid() || !first.Exited() || p.Exited() {
		t.Fatalf("restart: first %d exited=%v, new %d exited=%v", first.Pid(), first.Exited(), p.Pid(), p.Exited())
	}
	if n := len(rec.exits()); n != 0 {
		t.Fatalf("requested restart reported %d exits", n)
	}
	os.Remove(pidFile)
	readPIDs(t, pidFile)
	if err := r.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reload", func() bool { return strings.Contains(p.Tail().String(0), "reloaded") })
	cancel()
	<-done
	if !p.Exited() || r.Current() != nil {
		t.Fatal("agent still running after Run returned")
	}
}

type countHandler struct {
	mu      sync.Mutex
	info    int
	dropped int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level == slog.LevelInfo {
		h.info++
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "dropped" {
			h.dropped += int(a.Value.Int64())
		}
		return true
	})
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func TestOutputLogIsRateLimited(t *testing.T) {
	h := &countHandler{}
	n := 3 * LogBurst
	// A burst far over the limit, then one line after a pause that lets the
	// bucket refill, so the dropped count is reported.
	script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo line $i; i=$((i+1)); done; sleep 0.5; echo last", n)
	p, err := Start(Command{Path: "sh", Args: []string{"-c", script}}, NewTail(10), slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.info >= n || h.info < LogBurst {
		t.Fatalf("logged %d of %d lines; want between %d and %d", h.info, n+1, LogBurst, n)
	}
	if h.info+h.dropped != n+1 {
		t.Fatalf("logged %d + dropped %d != %d lines", h.info, h.dropped, n+1)
	}
	if got := p.Tail().Lines(0); got[len(got)-1] != "last" || len(got) != 10 {
		t.Fatalf("tail = %v", got)
	}
}

func TestRunnerResetsBackoffAfterStableRun(t *testing.T) {
	cmd, _ := agentCmd(t, "behavior: crash\ncrash_after: 300ms\n")
	rec := &recorder{}
	r := NewRunner(RunnerConfig{Command: cmd, InitialBackoff: 10 * time.Millisecond, MaxBackoff: time.Second,
		ResetAfter: 200 * time.Millisecond, OnEvent: rec.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	eventually(t, "3 exits", func() bool { return len(rec.exits()) >= 3 })
	cancel()
	<-done
	for i, e := range rec.exits()[:3] {
		if e.Backoff != 10*time.Millisecond {
			t.Errorf("exit %d after %v: backoff %v, want the initial 10ms", i, e.Uptime, e.Backoff)
		}
	}
}

// A Restart (a new config) ends a crash loop: the exits before it are not
// counted towards the next one.
func TestRunnerRestartEndsCrashLoop(t *testing.T) {
	cmd, _ := agentCmd(t, "behavior: crash\nexit_code: 3\n")
	rec := &recorder{}
	r := NewRunner(RunnerConfig{Command: cmd, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		ResetAfter: time.Hour, CrashLoopCount: 3, CrashLoopWindow: time.Hour, OnEvent: rec.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "a crash loop", func() bool {
		ex := rec.exits()
		return len(ex) > 0 && ex[len(ex)-1].CrashLoop
	})
	if _, err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	before := len(rec.events)
	rec.mu.Unlock()
	var next Event
	eventually(t, "the first exit after the restart", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, e := range rec.events[before:] {
			if e.Kind == EventExited {
				next = e
				return true
			}
		}
		return false
	})
	if next.CrashLoop || next.Crashes != 1 {
		t.Fatalf("first exit after a restart: crash loop %v after %d exits, want no crash loop after 1", next.CrashLoop, next.Crashes)
	}
}

// A runner started idle starts nothing until Restart; Idle stops the agent
// and starts nothing until the next Restart.
func TestRunnerIdle(t *testing.T) {
	cmd, dir := agentCmd(t, "")
	pidFile := filepath.Join(dir, "pids")
	os.WriteFile(cmd.Args[1], []byte("pid_file: "+pidFile+"\n"), 0o644)
	rec := &recorder{}
	r := NewRunner(RunnerConfig{Command: cmd, StartIdle: true, OnEvent: rec.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := r.Idle(ctx); err != nil { // answered while idle: Run is listening
		t.Fatal(err)
	}
	rec.mu.Lock()
	n := len(rec.events)
	rec.mu.Unlock()
	if r.Current() != nil || n != 0 {
		t.Fatalf("an idle runner started a process (%d events)", n)
	}
	p, err := r.Restart(ctx)
	if err != nil || p == nil || p.Exited() {
		t.Fatalf("Restart from idle: %v, %v", p, err)
	}
	readPIDs(t, pidFile)
	if err := r.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || r.Current() != nil {
		t.Fatal("Idle left the agent running")
	}
	if n := len(rec.exits()); n != 0 {
		t.Fatalf("a requested stop reported %d exits", n)
	}
	p2, err := r.Restart(ctx)
	if err != nil || p2 == nil || p2.Pid() == p.Pid() {
		t.Fatalf("Restart after Idle: %v, %v", p2, err)
	}
}
