// Package agentproc runs an agent as a child process: it starts it in its own
// process group (killed with the supervisor on Linux), captures its output
// into a bounded tail and the supervisor's log, stops it gracefully (SIGTERM
// to the group, SIGKILL after a timeout) and, through Runner, keeps it alive
// with exponential backoff and crash-loop detection.
package agentproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Command describes the program to run.
type Command struct {
	Path string
	Args []string
	// Env is added to the supervisor's environment (later entries win).
	Env []string
	Dir string
}

// Process is one run of a Command.
type Process struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	err     error // exit error, valid after done
	tail    *Tail
	limit   logLimiter
	outWG   sync.WaitGroup
}

// Start starts c. Each output line (stdout and stderr) is appended to tail
// (a new 100-line Tail when nil; see Process.Tail) and logged to log at info level with the stream's name. The
// process gets its own process group, and on Linux is sent SIGKILL if the
// supervisor dies. Start fails if the program cannot be started.
func Start(c Command, tail *Tail, log *slog.Logger) (*Process, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if tail == nil {
		tail = NewTail(100)
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	p := &Process{cmd: cmd, started: time.Now(), done: make(chan struct{}), tail: tail}
	log = log.With("pid", cmd.Process.Pid)
	p.outWG.Add(2)
	go p.pump(stdout, "stdout", log)
	go p.pump(stderr, "stderr", log)
	go func() {
		// Wait for the pipes to drain first: cmd.Wait closes them.
		p.outWG.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// maxLine bounds one captured output line; the rest is dropped.
const maxLine = 4096

// Agent output reaches the supervisor's log at most at LogLinesPerSecond
// on average, in bursts of up to LogBurst lines; lines over the limit are
// counted and the count is logged once output is allowed again. (The tail
// keeps every line.)
const (
	LogLinesPerSecond = 200
	LogBurst          = 2000
)

// logLimiter is a token bucket shared by a process's stdout and stderr.
type logLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
}

// allow reports whether a line may be logged now, and how many lines were
// dropped since the last allowed one.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = LogBurst
	} else {
		l.tokens = min(LogBurst, l.tokens+now.Sub(l.last).Seconds()*LogLinesPerSecond)
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	d := l.dropped
	l.dropped = 0
	return true, d
}

func (p *Process) pump(r io.Reader, stream string, log *slog.Logger) {
	defer p.outWG.Done()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			s := string(line)
			p.tail.Add(s)
			if ok, dropped := p.limit.allow(time.Now()); ok {
				if dropped > 0 {
					log.Warn("agent output over the log rate limit; lines not logged", "dropped", dropped)
				}
				log.Info(s, "stream", stream)
			}
		}
		for isPrefix && err == nil { // discard the rest of an over-long line
			_, isPrefix, err = br.ReadLine()
		}
		if err != nil {
			return
		}
	}
}

// Tail returns the process's captured output lines.
func (p *Process) Tail() *Tail { return p.tail }

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// StartedAt returns when the process was started.
func (p *Process) StartedAt() time.Time { return p.started }

// Done is closed once the process has exited and its output is drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns the exit error (nil for exit status 0) once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return errors.New("process has exited")
	}
	return p.cmd.Process.Signal(sig)
}

// Stop asks the process group to terminate with SIGTERM and waits up to
// timeout (or until ctx ends) before killing the group with SIGKILL. It
// returns once the process has exited; the exit error of a stopped process
// is not reported.
func (p *Process) Stop(ctx context.Context, timeout time.Duration) {
	if p.Exited() {
		killGroup(p.Pid(), syscall.SIGKILL) // leftovers of the group, if any
		return
	}
	_ = signalGroup(p.Pid(), syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	case <-ctx.Done():
	}
	killGroup(p.Pid(), syscall.SIGKILL)
	<-p.done
}
