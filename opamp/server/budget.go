package server

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// largeMessage is the size from which a WebSocket message counts against
// Config.PushBudget: remote configs and package offers of some size, not
// the replies and heartbeats of every day.
const largeMessage = 64 << 10

// flightCheck is how often a connection holding budget is looked at;
// replyWait is how long a written message's bytes are held at most, and
// stillWriter how long a message being written to an agent that takes no
// byte of it holds them (the agent keeps its place in the queue, not the
// others' room: it is cut off only after WriteTimeout).
const (
	flightCheck = 250 * time.Millisecond
	replyWait   = 30 * time.Second
	stillWriter = time.Second
)

// pushBudget bounds the bytes of large messages in flight over all
// WebSocket connections: being written (to an agent that takes them), or
// written to an agent that has neither answered since nor had them all
// acknowledged by its kernel.
// A fleet-wide change of a large config is otherwise written into the
// sockets as fast as the server can: gigabytes of send (and, for agents on
// the same host, receive) buffers, which push the kernel's TCP memory into
// pressure, where it retransmits and stalls every connection on the host.
//
// A connection whose next large message finds no room waits in line
// (first come, first served) with everything queued behind it; the wait
// is not the agent's stall (WriteTimeout). One message always fits when
// nothing else is in flight, however large.
//
// Lock order: a connection's mu before the budget's.
type pushBudget struct {
	limit int

	mu      sync.Mutex
	used    int
	held    map[*wsConn]*holding
	waiting []waiter
	paced   uint64 // messages that waited for room
	// holders is len(held), read without mu: a connection looks the map
	// up (on each message, write and close) only while someone holds.
	holders atomic.Int32
}

// anyHeld reports whether any connection may hold budget now; false for
// a nil budget (no bound).
func (b *pushBudget) anyHeld() bool { return b != nil && b.holders.Load() > 0 }

// holding is what one connection holds of the budget.
type holding struct {
	writing int       // the message being written (at most one: taken at the queue's head)
	done    int       // written, not yet answered
	since   time.Time // when done last grew
	left    int       // bytes queued when the writing was last seen moving
	moved   time.Time // when that was
	timer   *time.Timer
}

// waiter is a connection whose queue's head waits for need bytes of room.
type waiter struct {
	c    *wsConn
	need int
	// ready is closed when a connection with a writer goroutine (not
	// epoll-driven) got its room or ended; nil for an epoll-driven one,
	// whose queue the granting goroutine writes.
	ready chan struct{}
}

func newPushBudget(limit int) *pushBudget {
	return &pushBudget{limit: limit, held: make(map[*wsConn]*holding)}
}

// take gives c need bytes for the message at the head of its queue, or
// puts c in line (with ready, see waiter) and returns false. c.mu held.
func (b *pushBudget) take(c *wsConn, need int, ready chan struct{}) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) == 0 && (b.used == 0 || b.used+need <= b.limit) {
		b.used += need
		b.writingLocked(c, need)
		return true
	}
	b.waiting = append(b.waiting, waiter{c: c, need: need, ready: ready})
	b.paced++
	return false
}

// writingLocked records that c took need bytes for the message it starts
// writing, and has it checked every flightCheck. b.mu and c.mu held.
func (b *pushBudget) writingLocked(c *wsConn, need int) {
	h := b.held[c]
	if h == nil {
		h = &holding{}
		b.held[c] = h
		b.holders.Store(int32(len(b.held)))
	}
	h.writing = need
	h.left, h.moved = -1, time.Now()
	if h.timer == nil {
		h.timer = time.AfterFunc(flightCheck, c.checkFlight)
	}
}

// written notes that c finished writing a message: what it held for it
// is held until the agent answers, its kernel has acknowledged every
// byte, or replyWait passes (check). c.mu held.
func (b *pushBudget) written(c *wsConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.held[c]
	if h == nil || h.writing == 0 {
		return
	}
	h.done += h.writing
	h.writing = 0
	h.since = time.Now()
}

// answered releases what c held for messages it has written, the agent
// having sent a message since; it reports whether room was freed. c.mu
// held; wake must follow once it is released.
func (b *pushBudget) answered(c *wsConn) (freed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.held[c]
	if h == nil {
		return false
	}
	freed = h.done > 0
	b.used -= h.done
	h.done = 0
	if h.writing == 0 {
		b.forgetLocked(c, h)
	}
	return freed
}

// check releases what c holds for written messages once its socket has
// nothing unacknowledged (unacked) or they were written replyWait ago, and
// for the message it writes when the agent took none of it (queued, the
// bytes c has queued, did not change) for stillWriter; it reports whether
// room was freed. c.mu held.
func (b *pushBudget) check(c *wsConn, queued int, unacked func() int) (freed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.held[c]
	if h == nil {
		return false
	}
	now := time.Now()
	if h.writing > 0 {
		if queued != h.left {
			h.left, h.moved = queued, now
		} else if now.Sub(h.moved) >= stillWriter {
			b.used -= h.writing
			h.writing = 0
			freed = true
		}
	}
	if h.done > 0 && (now.Sub(h.since) >= replyWait || unacked() == 0) {
		b.used -= h.done
		h.done = 0
		freed = true
	}
	if h.writing == 0 && h.done == 0 {
		b.forgetLocked(c, h)
	} else {
		h.timer.Reset(flightCheck)
	}
	return freed
}

// drop releases all c held and, when it waits (inLine), takes it out of
// line: it has ended. c.mu held; wake must follow.
func (b *pushBudget) drop(c *wsConn, inLine bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.held[c]; h != nil {
		b.used -= h.writing + h.done
		b.forgetLocked(c, h)
	}
	if !inLine {
		return
	}
	b.waiting = slices.DeleteFunc(b.waiting, func(w waiter) bool {
		if w.c == c && w.ready != nil {
			close(w.ready)
		}
		return w.c == c
	})
}

func (b *pushBudget) forgetLocked(c *wsConn, h *holding) {
	if h.timer != nil {
		h.timer.Stop()
	}
	delete(b.held, c)
	b.holders.Store(int32(len(b.held)))
}

// wake gives the room there is to the connections in line, in order.
// No connection's mu may be held.
func (b *pushBudget) wake() {
	for {
		b.mu.Lock()
		if len(b.waiting) == 0 || (b.used > 0 && b.used+b.waiting[0].need > b.limit) {
			b.mu.Unlock()
			return
		}
		w := b.waiting[0]
		b.waiting[0] = waiter{}
		b.waiting = b.waiting[1:]
		if len(b.waiting) == 0 {
			b.waiting = nil // a long line's array is not kept
		}
		b.used += w.need
		b.mu.Unlock()
		if !w.c.granted(w.need, w.ready) {
			b.mu.Lock()
			b.used -= w.need
			b.mu.Unlock()
		}
	}
}

// inUse returns the bytes held now and the messages that waited so far.
func (b *pushBudget) inUse() (used int, paced uint64) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.paced
}

// granted gives c the need bytes wake reserved for the message at the
// head of its queue, and writes on; false when c no longer waits (it
// ended), and the room goes back.
func (c *wsConn) granted(need int, ready chan struct{}) bool {
	c.mu.Lock()
	q := c.out
	if c.finished || q == nil || !q.awaiting || len(q.segs) == 0 {
		c.mu.Unlock()
		if ready != nil {
			close(ready) // (out of line already: drop did not close it)
		}
		return false
	}
	b := c.s.budget
	b.mu.Lock()
	b.writingLocked(c, need)
	b.mu.Unlock()
	q.awaiting = false
	q.segs[0].hold, q.holding = 0, true
	if ready != nil {
		close(ready) // its writer goroutine goes on
		c.mu.Unlock()
		return true
	}
	c.drainAndUnlock()
	return true
}

// checkFlight runs every flightCheck while c holds budget
// (pushBudget.check).
func (c *wsConn) checkFlight() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	freed := c.s.budget.check(c, c.out.queued(), c.unackedLocked)
	c.mu.Unlock()
	if freed {
		c.s.budget.wake()
	}
}

// unackedLocked returns the bytes written to c's socket that the agent's
// kernel has not acknowledged (0 when that is not known); c.mu held, c
// not finished.
func (c *wsConn) unackedLocked() int {
	if c.nc == nil {
		return unackedFD(int(c.fd))
	}
	return fdValue(c.rawConn(), unackedFD)
}
