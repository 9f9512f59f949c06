package controlplane

import (
	"sync"
	"time"
)

// maxTracked bounds the entries kept by cooldowns and coalescer, so that a
// flood of distinct credentials or reasons cannot grow memory without
// bound; past it, expired entries are dropped and new keys go untracked.
const maxTracked = 100_000

// cooldowns remembers credentials (per host) that were refused: until a
// key's cool-down ends, its upgrades are answered 429 with Retry-After
// without looking at the store. Each refusal doubles the cool-down, from
// min to max; a key not refused for max after its cool-down ended is
// forgotten.
type cooldowns struct {
	min, max time.Duration

	mu sync.Mutex
	m  map[string]*cooldown
}

type cooldown struct {
	until time.Time
	next  time.Duration // the cool-down the next refusal starts
}

func newCooldowns(min, max time.Duration) *cooldowns {
	return &cooldowns{min: min, max: max, m: map[string]*cooldown{}}
}

// left returns how long key still cools down at now (0: not at all).
func (c *cooldowns) left(key string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil && now.Before(e.until) {
		return e.until.Sub(now)
	}
	return 0
}

// refused starts key's next cool-down at now and returns its length.
func (c *cooldowns) refused(key string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	if e == nil || now.Sub(e.until) > c.max {
		if len(c.m) >= maxTracked {
			c.sweepLocked(now)
			if len(c.m) >= maxTracked {
				return c.min
			}
		}
		e = &cooldown{next: c.min}
		c.m[key] = e
	}
	d := e.next
	e.until = now.Add(d)
	e.next = min(2*d, c.max)
	return d
}

// sweep forgets keys not refused for max after their cool-down.
func (c *cooldowns) sweep(now time.Time) {
	c.mu.Lock()
	c.sweepLocked(now)
	c.mu.Unlock()
}

func (c *cooldowns) sweepLocked(now time.Time) {
	for k, e := range c.m {
		if now.Sub(e.until) > c.max {
			delete(c.m, k)
		}
	}
}

// coalescer turns repeated identical records (same key) into one record
// per window with a count: the first occurrence is recorded at once; later
// ones within the window are counted, and recorded together (count, first
// and last time) by the next occurrence after the window or by flush.
type coalescer struct {
	window time.Duration

	mu sync.Mutex
	m  map[string]*coalesced
}

type coalesced struct {
	n           int       // occurrences not yet recorded
	first, last time.Time // of those occurrences
	recorded    time.Time // when a record for the key was last written
	record      func(n int, first, last time.Time)
}

func newCoalescer(window time.Duration) *coalescer {
	return &coalescer{window: window, m: map[string]*coalesced{}}
}

// note counts one occurrence of key at now; record writes a record for n
// occurrences between first and last, now or later (the latest record
// function given for a key is the one called).
func (c *coalescer) note(key string, now time.Time, record func(n int, first, last time.Time)) {
	c.mu.Lock()
	e := c.m[key]
	if e == nil {
		if len(c.m) >= maxTracked {
			c.dropLocked(now)
		}
		if len(c.m) < maxTracked {
			c.m[key] = &coalesced{recorded: now}
		}
		c.mu.Unlock()
		record(1, now, now)
		return
	}
	if e.n == 0 {
		e.first = now
	}
	e.n++
	e.last = now
	e.record = record
	if now.Sub(e.recorded) < c.window {
		c.mu.Unlock()
		return
	}
	n, first, last := e.n, e.first, e.last
	e.n, e.recorded, e.record = 0, now, nil
	c.mu.Unlock()
	record(n, first, last)
}

// flush records the counts of keys whose window has passed (all of them
// when all is set) and forgets keys quiet for a whole window.
func (c *coalescer) flush(now time.Time, all bool) {
	type due struct {
		n           int
		first, last time.Time
		record      func(n int, first, last time.Time)
	}
	var out []due
	c.mu.Lock()
	for k, e := range c.m {
		if !all && now.Sub(e.recorded) < c.window {
			continue
		}
		if e.n > 0 {
			out = append(out, due{e.n, e.first, e.last, e.record})
			e.n, e.recorded, e.record = 0, now, nil
		} else {
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
	for _, d := range out {
		d.record(d.n, d.first, d.last)
	}
}

// dropLocked forgets keys with nothing pending whose window has passed.
func (c *coalescer) dropLocked(now time.Time) {
	for k, e := range c.m {
		if e.n == 0 && now.Sub(e.recorded) >= c.window {
			delete(c.m, k)
		}
	}
}
