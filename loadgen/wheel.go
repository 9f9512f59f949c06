package loadgen

import (
	"context"
	"sync"
	"time"
)

// entry is one pending timer of an agent. tok must equal the agent's timer
// token when it fires, so rescheduling an agent simply makes its older
// entries stale instead of searching for them.
type entry struct {
	a   *agent
	tok uint32
}

// wheel is a hashed timing wheel: one goroutine and one ticker drive every
// agent's heartbeat and reconnect timers. Delays are rounded up to the tick
// and capped at the wheel's span.
type wheel struct {
	tick time.Duration

	mu    sync.Mutex
	slots [][]entry
	pos   int
}

func newWheel(tick, span time.Duration) *wheel {
	return &wheel{tick: tick, slots: make([][]entry, int(span/tick)+2)}
}

// add schedules e to fire after about d.
func (w *wheel) add(e entry, d time.Duration) {
	k := int((d + w.tick - 1) / w.tick)
	w.mu.Lock()
	k = min(max(k, 1), len(w.slots)-1)
	i := (w.pos + k) % len(w.slots)
	w.slots[i] = append(w.slots[i], e)
	w.mu.Unlock()
}

// run advances the wheel once per tick until ctx ends, calling fire for
// every due entry, outside the wheel's lock. Ticks missed while firing are
// caught up, so timers do not drift under load.
func (w *wheel) run(ctx context.Context, fire func(entry)) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	start := time.Now()
	done := 0
	var spare []entry
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(time.Since(start) / w.tick)
		for ; done < due; done++ {
			w.mu.Lock()
			w.pos = (w.pos + 1) % len(w.slots)
			list := w.slots[w.pos]
			w.slots[w.pos] = spare[:0]
			w.mu.Unlock()
			for _, e := range list {
				if ctx.Err() != nil {
					return
				}
				fire(e)
			}
			clear(list)
			spare = list
		}
	}
}
