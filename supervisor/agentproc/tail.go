package agentproc

import (
	"strings"
	"sync"
)

// Tail keeps the last N lines written to it. It is safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewTail returns a Tail holding at most n lines (n >= 1).
func NewTail(n int) *Tail {
	if n < 1 {
		n = 1
	}
	return &Tail{lines: make([]string, n)}
}

// Add appends a line, dropping the oldest when full.
func (t *Tail) Add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines[t.next] = line
	t.next = (t.next + 1) % len(t.lines)
	if t.next == 0 {
		t.full = true
	}
}

// Lines returns up to the last n lines, oldest first (all when n <= 0).
func (t *Tail) Lines(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	if t.full {
		out = append(out, t.lines[t.next:]...)
	}
	out = append(out, t.lines[:t.next]...)
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// String returns the last n lines joined by newlines.
func (t *Tail) String(n int) string { return strings.Join(t.Lines(n), "\n") }

// Reset forgets every line.
func (t *Tail) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.lines)
	t.next, t.full = 0, false
}
