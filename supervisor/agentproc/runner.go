package agentproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// RunnerConfig configures a Runner. Zero durations and counts take the
// defaults noted.
type RunnerConfig struct {
	Command     Command
	StopTimeout time.Duration // SIGTERM to SIGKILL (10s)
	// Backoff between restarts after unrequested exits doubles from
	// InitialBackoff (1s) up to MaxBackoff (1m); it starts over once a
	// process has stayed up for ResetAfter, or on Restart.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// ResetAfter is how long a run must last for the backoff to start over
	// (default MaxBackoff).
	ResetAfter time.Duration
	// CrashLoopCount exits within CrashLoopWindow (5 in 5m) make the exit
	// event a crash loop.
	CrashLoopCount  int
	CrashLoopWindow time.Duration
	// StartIdle makes Run wait for the first Restart before starting a
	// process (an agent with nothing to run yet).
	StartIdle bool
	// TailLines is how many output lines each run keeps (100).
	TailLines int
	Log       *slog.Logger
	// OnEvent, if set, is called from the runner's goroutine for every
	// start, failed start and exit. It must not block for long or call
	// Restart.
	OnEvent func(Event)
}

// EventKind says what happened to the agent process.
type EventKind int

const (
	EventStarted     EventKind = iota + 1 // a process was started
	EventExited                           // a process exited without being asked to
	EventStartFailed                      // the program could not be started
)

func (k EventKind) String() string {
	switch k {
	case EventStarted:
		return "started"
	case EventExited:
		return "exited"
	case EventStartFailed:
		return "start failed"
	}
	return "unknown"
}

// Event reports a process start or an unrequested exit.
type Event struct {
	Kind    EventKind
	Process *Process // nil for EventStartFailed
	Err     error    // exit or start error (nil: exit status 0)
	Uptime  time.Duration
	// Backoff is the wait before the next start (exit and start-failed events).
	Backoff time.Duration
	// CrashLoop is set when the exits within the window reached the count.
	CrashLoop bool
	// Crashes is the number of exits within the crash-loop window.
	Crashes int
}

// Runner keeps one agent process running: it restarts it after exits with
// exponential backoff, detects crash loops, and restarts it on request.
type Runner struct {
	cfg       RunnerConfig
	restartCh chan request
	mu        sync.Mutex
	cur       *Process
	done      chan struct{} // closed when Run returns
}

type restartResult struct {
	p   *Process
	err error
}

// request asks Run to stop the running process and then start a new one,
// or, with idle, to start none until the next Restart.
type request struct {
	idle  bool
	reply chan restartResult
}

// NewRunner returns a Runner; call Run to start the agent.
func NewRunner(cfg RunnerConfig) *Runner {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.StopTimeout, 10*time.Second)
	def(&cfg.InitialBackoff, time.Second)
	def(&cfg.MaxBackoff, time.Minute)
	def(&cfg.CrashLoopWindow, 5*time.Minute)
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = cfg.InitialBackoff
	}
	def(&cfg.ResetAfter, cfg.MaxBackoff)
	if cfg.CrashLoopCount <= 0 {
		cfg.CrashLoopCount = 5
	}
	if cfg.TailLines <= 0 {
		cfg.TailLines = 100
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, restartCh: make(chan request), done: make(chan struct{})}
}

// Current returns the running process, or nil between runs.
func (r *Runner) Current() *Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *Runner) setCurrent(p *Process) {
	r.mu.Lock()
	r.cur = p
	r.mu.Unlock()
}

// Signal sends sig to the running process; an error when none runs.
func (r *Runner) Signal(sig os.Signal) error {
	p := r.Current()
	if p == nil {
		return errors.New("agent is not running")
	}
	return p.Signal(sig)
}

// ErrNotRunning is returned by Restart when Run has returned or not started.
var ErrNotRunning = errors.New("agent runner is not running")

// Restart stops the running process (gracefully) or cuts short the backoff
// wait, resets the backoff and starts a new process at once. It returns the
// new process, or the start error. It fails with ctx's error or
// ErrNotRunning if Run is not running.
//
// A Restart also ends a crash loop: the exits counted towards it belonged to
// what ran before (usually an earlier config).
func (r *Runner) Restart(ctx context.Context) (*Process, error) {
	return r.ask(ctx, false)
}

// Idle stops the running process (gracefully) or cuts short the backoff
// wait, and starts nothing until the next Restart. It fails like Restart.
func (r *Runner) Idle(ctx context.Context) error {
	_, err := r.ask(ctx, true)
	return err
}

func (r *Runner) ask(ctx context.Context, idle bool) (*Process, error) {
	req := request{idle: idle, reply: make(chan restartResult, 1)}
	select {
	case r.restartCh <- req:
	case <-r.done:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := <-req.reply
	return res.p, res.err
}

// Run starts the agent and keeps it running until ctx ends; it then stops
// the agent (SIGTERM, SIGKILL after StopTimeout) and returns. Run must be
// called once.
func (r *Runner) Run(ctx context.Context) {
	var (
		consecutive int         // unrequested exits since the last stable run
		crashes     []time.Time // exit times within the window
		pending     *request
		idle        = r.cfg.StartIdle
	)
	stopCtx := context.WithoutCancel(ctx)
	defer close(r.done)
	for {
		for idle {
			select {
			case req := <-r.restartCh:
				if req.idle {
					req.reply <- restartResult{}
					continue
				}
				pending, idle = &req, false
			case <-ctx.Done():
				return
			}
		}
		p, err := Start(r.cfg.Command, NewTail(r.cfg.TailLines), r.cfg.Log)
		if pending != nil {
			pending.reply <- restartResult{p, err}
			pending = nil
		}
		var ev Event
		if err != nil {
			r.cfg.Log.Error("agent failed to start", "error", err)
			ev = Event{Kind: EventStartFailed, Err: err}
		} else {
			r.setCurrent(p)
			r.cfg.Log.Info("agent started", "pid", p.Pid())
			r.emit(Event{Kind: EventStarted, Process: p})
			select {
			case <-p.Done():
				r.setCurrent(nil)
				ev = Event{Kind: EventExited, Process: p, Err: p.Err(), Uptime: time.Since(p.StartedAt())}
				if ev.Uptime >= r.cfg.ResetAfter {
					consecutive, crashes = 0, nil
				}
			case req := <-r.restartCh:
				r.cfg.Log.Info("stopping agent for a restart", "pid", p.Pid(), "idle", req.idle)
				p.Stop(stopCtx, r.cfg.StopTimeout)
				r.setCurrent(nil)
				consecutive, crashes = 0, nil
				pending, idle = r.accept(req)
				continue
			case <-ctx.Done():
				r.cfg.Log.Info("stopping agent", "pid", p.Pid())
				p.Stop(stopCtx, r.cfg.StopTimeout)
				r.setCurrent(nil)
				return
			}
		}
		consecutive++
		now := time.Now()
		crashes = append(crashes, now)
		for len(crashes) > 0 && now.Sub(crashes[0]) > r.cfg.CrashLoopWindow {
			crashes = crashes[1:]
		}
		ev.Backoff = Backoff(r.cfg.InitialBackoff, r.cfg.MaxBackoff, consecutive)
		ev.Crashes = len(crashes)
		ev.CrashLoop = len(crashes) >= r.cfg.CrashLoopCount
		if ev.Kind == EventExited {
			r.cfg.Log.Warn("agent exited", "pid", ev.Process.Pid(), "error", errString(ev.Err),
				"uptime", ev.Uptime.Round(time.Millisecond), "restart_in", ev.Backoff, "crash_loop", ev.CrashLoop)
		}
		r.emit(ev)
		t := time.NewTimer(ev.Backoff)
		select {
		case <-t.C:
		case req := <-r.restartCh:
			t.Stop()
			consecutive, crashes = 0, nil
			pending, idle = r.accept(req)
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// accept takes a request once the old process is gone: an idle request is
// answered at once and leaves Run idle; a restart is answered by the next
// start.
func (r *Runner) accept(req request) (pending *request, idle bool) {
	if req.idle {
		req.reply <- restartResult{}
		return nil, true
	}
	return &req, false
}

func (r *Runner) emit(ev Event) {
	if r.cfg.OnEvent != nil {
		r.cfg.OnEvent(ev)
	}
}

// Backoff returns the wait before restart number n (n >= 1): initial
// doubled n-1 times, capped at max.
func Backoff(initial, max time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return fmt.Sprint(err)
}
