package controlplane

import (
	"context"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// agentWrites is the group commit of agent state: every change to an
// agent (a report, an offline mark, labels) replaces the agent's pending
// state in memory, and a flusher writes all pending agents in batched
// transactions every interval. Reads of an agent see its pending state
// first, so the API shows a change as soon as it is made; the store has it
// at most one interval (plus the transaction) later.
//
// The queue is bounded: put waits while limit agents are pending and the
// agent is not one of them, so a connection whose reports outrun the
// database is read more slowly instead of growing memory or dropping
// anything.
//
// An agent whose changes since it was last stored are all state (what
// steward.AgentStateStore writes: connects, disconnects, config
// acknowledgements, sync states) is written by a narrow update when the
// store has one, instead of its whole row.
type agentWrites struct {
	store    steward.Store
	states   steward.AgentStateStore // nil: every write is whole
	interval time.Duration
	limit    int
	onFlush  func(n int, took time.Duration, err error)

	mu sync.Mutex
	// pending is the latest unwritten state of each agent, kept until a
	// flush has committed exactly that state.
	pending map[steward.InstanceUID]*steward.Agent
	// stateOnly lists the pending agents whose every change since they
	// were last stored was state only (see put).
	stateOnly map[steward.InstanceUID]struct{}
	// dirty lists pending agents not yet taken by a flush.
	dirty map[steward.InstanceUID]struct{}
	// next is the flush that will write what is dirty now; inflight the
	// one being written (nil between flushes).
	next     *flush
	inflight *flush
	// space is closed (and replaced) whenever a flush shrinks pending.
	space chan struct{}
	kick  chan struct{}
	// batch is the size of the next transaction: halved after one fails
	// (a database too slow for maxBatch rows within flushTimeout then
	// still commits in smaller steps), grown by an eighth after one
	// commits. Used by flushNow only, which runs one at a time.
	batch int
	// unpublished lists pending agents whose state was not yet taken by
	// takeUnpublished (the other replicas' view, peers.go); nil when
	// there are no other replicas to tell.
	unpublished map[steward.InstanceUID]struct{}
	// written is the generation of the last flush that committed all it
	// took: every state put before that flush started is stored, or
	// taken again by a later flush.
	written uint64
	// peak is the most agents pending since the maps were made: a Go map
	// keeps the room it once grew to, so maps a burst (a connect storm)
	// grew beyond shrinkAfter are made anew once a flush empties them.
	peak int
}

// shrinkAfter is the size beyond which an emptied pending map is replaced.
const shrinkAfter = 1024

// flush is one batch; done closes when it is committed (or failed: err).
type flush struct {
	// gen numbers the flushes of this process, from 1.
	gen  uint64
	done chan struct{}
	err  error
	// over closes when flushNow has finished with the batch, committed or
	// not (made when the flush starts).
	over chan struct{}
}

// maxBatch bounds the agents one transaction writes, minBatch the size a
// failing batch shrinks to; flushTimeout bounds one transaction.
const (
	maxBatch     = 2000
	minBatch     = 50
	flushTimeout = 30 * time.Second
)

func newAgentWrites(store steward.Store, interval time.Duration, limit int, onFlush func(int, time.Duration, error)) *agentWrites {
	states, _ := store.(steward.AgentStateStore)
	return &agentWrites{
		store: store, states: states, interval: interval, limit: limit, onFlush: onFlush, batch: maxBatch,
		pending:   make(map[steward.InstanceUID]*steward.Agent),
		stateOnly: make(map[steward.InstanceUID]struct{}),
		dirty:     make(map[steward.InstanceUID]struct{}),
		next:      &flush{gen: 1, done: make(chan struct{})},
		space:     make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
}

// get returns a copy of the agent's pending state, which the caller may
// change and put (nested values are shared: replace them, never modify).
func (w *agentWrites) get(id steward.InstanceUID) (*steward.Agent, bool) {
	w.mu.Lock()
	a, ok := w.pending[id]
	w.mu.Unlock()
	if !ok {
		return nil, false
	}
	cp := *a
	return &cp, true
}

// len returns how many agents have state not yet written.
func (w *agentWrites) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// isPending reports whether agent id has state not yet written.
func (w *agentWrites) isPending(id steward.InstanceUID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.pending[id]
	return ok
}

// snapshot returns every pending agent: the live state of each agent
// whose latest change is not yet known to be stored. The agents are
// shared, not copied: readers must not change them (a pending state is
// never changed once put; a flush replaces it to fill in CreatedAt).
func (w *agentWrites) snapshot() []*steward.Agent {
	w.mu.Lock()
	defer w.mu.Unlock()
	as := make([]*steward.Agent, 0, len(w.pending))
	for _, a := range w.pending {
		as = append(as, a)
	}
	return as
}

// takeUnpublished returns the pending states put since the last call,
// each with the generation of the flush that writes it (the one in flight
// for a state it took, else the next), and the generation of the last
// flush that committed everything (see written); with nothing pending,
// every state ever taken is written (or forgotten: a deleted agent), so
// that is the next flush's generation.
func (w *agentWrites) takeUnpublished() (states []*steward.Agent, gens []uint64, written uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		clear(w.unpublished)
		return nil, nil, w.next.gen
	}
	for id := range w.unpublished {
		a, ok := w.pending[id]
		if !ok {
			continue // written or forgotten meanwhile
		}
		gen := w.next.gen
		if _, dirty := w.dirty[id]; !dirty && w.inflight != nil {
			gen = w.inflight.gen
		}
		states, gens = append(states, a), append(gens, gen)
	}
	clear(w.unpublished)
	return states, gens, w.written
}

// put queues a as the agent's latest state and returns the flush that
// will write it. It waits while the queue is full (see agentWrites); it
// fails only when ctx ends first. a must not be changed afterwards.
// stateOnly tells that a differs from the agent's state as read (pending
// or stored) in its state only (steward.SameReport): the agent is written
// by a narrow update unless a change still pending was not state only.
func (w *agentWrites) put(ctx context.Context, a *steward.Agent, stateOnly bool) (*flush, error) {
	w.mu.Lock()
	for {
		if _, ok := w.pending[a.ID]; ok || len(w.pending) < w.limit {
			break
		}
		space := w.space
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
		select {
		case <-space:
		case <-ctx.Done():
			return nil, steward.Errorf(steward.EUNAVAILABLE, "agent %s: write queue full: %v", a.ID, ctx.Err())
		}
		w.mu.Lock()
	}
	_, wasPending := w.pending[a.ID]
	_, pendingStateOnly := w.stateOnly[a.ID]
	if stateOnly && (!wasPending || pendingStateOnly) {
		w.stateOnly[a.ID] = struct{}{}
	} else {
		delete(w.stateOnly, a.ID)
	}
	w.pending[a.ID] = a
	w.dirty[a.ID] = struct{}{}
	if w.unpublished != nil {
		w.unpublished[a.ID] = struct{}{}
	}
	w.peak = max(w.peak, len(w.pending))
	f := w.next
	full := len(w.dirty) >= maxBatch
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return f, nil
}

// forget drops agent id's unwritten state and waits for the flush in
// flight, if any (it may have taken the agent), so that an agent deleted
// from the store is not written back by the group commit. It fails only
// when ctx ends first.
func (w *agentWrites) forget(ctx context.Context, id steward.InstanceUID) error {
	w.mu.Lock()
	delete(w.pending, id)
	delete(w.stateOnly, id)
	delete(w.dirty, id)
	var over chan struct{}
	if w.inflight != nil {
		over = w.inflight.over
	}
	w.mu.Unlock()
	if over == nil {
		return nil
	}
	select {
	case <-over: // written or not, it will not write the agent again
		return nil
	case <-ctx.Done():
		return steward.Errorf(steward.EUNAVAILABLE, "agent %s: waiting for the agent write: %v", id, ctx.Err())
	}
}

// wait waits for f to commit.
func (f *flush) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return steward.Errorf(steward.EUNAVAILABLE, "waiting for the agent write: %v", ctx.Err())
	}
}

// run flushes every interval (sooner when a batch is full) until ctx ends.
func (w *agentWrites) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		// A batch under way when ctx ends is finished, not abandoned
		// (Close writes what is left after run returns).
		w.flushNow(context.WithoutCancel(ctx))
	}
}

// flushNow writes what is dirty, in transactions of w.batch agents, each
// bounded by flushTimeout. When one fails, it and the rest stay pending and
// dirty for the next flush, which uses smaller transactions.
func (w *agentWrites) flushNow(ctx context.Context) error {
	w.mu.Lock()
	if len(w.dirty) == 0 {
		w.mu.Unlock()
		return nil
	}
	batch := make([]pendingWrite, 0, len(w.dirty))
	for id := range w.dirty {
		_, stateOnly := w.stateOnly[id]
		batch = append(batch, pendingWrite{w.pending[id], stateOnly})
	}
	clear(w.dirty)
	f := w.next
	w.next = &flush{gen: f.gen + 1, done: make(chan struct{})}
	w.inflight = f
	f.over = make(chan struct{})
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inflight = nil
		w.mu.Unlock()
		close(f.over)
	}()

	var firstErr error
	for len(batch) > 0 {
		n := min(len(batch), w.batch)
		part := batch[:n]
		batch = batch[n:]
		cps := copies(part)
		start := time.Now()
		tctx, cancel := context.WithTimeout(ctx, flushTimeout)
		err := w.write(tctx, part, cps)
		cancel()
		if w.onFlush != nil {
			w.onFlush(n, time.Since(start), err)
		}
		if err != nil {
			w.batch = max(w.batch/2, minBatch)
		} else {
			w.batch = min(w.batch+w.batch/8+1, maxBatch)
		}
		w.mu.Lock()
		if err != nil {
			for _, p := range batch {
				w.redirty(p.a.ID) // the rest waits for the next flush
			}
			batch = nil
		}
		for i, p := range part {
			a := p.a
			switch {
			case err != nil:
				w.redirty(a.ID) // retried with the next flush
			case w.pending[a.ID] == a:
				delete(w.pending, a.ID)
				delete(w.stateOnly, a.ID)
			default:
				// A newer state came in meanwhile; it keeps its own
				// creation time from the row just written, in a copy
				// (snapshot readers may hold it).
				if p := w.pending[a.ID]; p != nil && p.CreatedAt.IsZero() {
					cp := *p
					cp.CreatedAt = cps[i].CreatedAt
					w.pending[a.ID] = &cp
				}
			}
		}
		if len(w.pending) == 0 && w.peak > shrinkAfter {
			w.pending = make(map[steward.InstanceUID]*steward.Agent)
			// Subsets of pending: empty too.
			w.stateOnly = make(map[steward.InstanceUID]struct{})
			w.dirty = make(map[steward.InstanceUID]struct{})
			if w.unpublished != nil {
				w.unpublished = make(map[steward.InstanceUID]struct{}) // none pending: nothing left to publish
			}
			w.peak = 0
		}
		close(w.space)
		w.space = make(chan struct{})
		w.mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		// What failed is in the next flush; whoever waits for it now
		// waits for that one.
		w.mu.Lock()
		next := w.next
		w.mu.Unlock()
		go func() { <-next.done; f.err = next.err; close(f.done) }()
		return firstErr
	}
	w.mu.Lock()
	w.written = f.gen
	w.mu.Unlock()
	close(f.done)
	return nil
}

// pendingWrite is an agent taken by a flush, and whether only its state
// changed since it was last stored.
type pendingWrite struct {
	a         *steward.Agent
	stateOnly bool
}

// copies returns copies of the agents of part: the store writes back
// CreatedAt/UpdatedAt, and readers of the pending state must never race
// with it.
func copies(part []pendingWrite) []*steward.Agent {
	cps := make([]*steward.Agent, len(part))
	for i, p := range part {
		cp := *p.a
		cps[i] = &cp
	}
	return cps
}

// write stores cps, the copies of part: the agents whose changes were
// state only by a narrow update (when the store has one), the others
// whole; in one transaction each.
func (w *agentWrites) write(ctx context.Context, part []pendingWrite, cps []*steward.Agent) error {
	if w.states == nil {
		return w.store.PutAgents(ctx, cps)
	}
	var whole, states []*steward.Agent
	for i, p := range part {
		if p.stateOnly {
			states = append(states, cps[i])
		} else {
			whole = append(whole, cps[i])
		}
	}
	if len(whole) > 0 {
		if err := w.store.PutAgents(ctx, whole); err != nil {
			return err
		}
	}
	if len(states) > 0 {
		return w.states.PutAgentStates(ctx, states)
	}
	return nil
}

// redirty marks agent id to be written by the next flush, unless its
// pending state was forgotten meanwhile. Called with w.mu held.
func (w *agentWrites) redirty(id steward.InstanceUID) {
	if _, ok := w.pending[id]; ok {
		w.dirty[id] = struct{}{}
	}
}

// getAgent returns agent id's latest state: pending in the group commit,
// else read from the store (timed as StoreGetAgent); with the last-seen
// time and sequence number of a heartbeat not yet flushed.
func (s *Service) getAgent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	if a, ok := s.writes.get(id); ok {
		s.withTouch(a)
		return a, nil
	}
	start := time.Now()
	a, err := s.store.Agent(ctx, id)
	s.metrics.StoreCall(StoreGetAgent, time.Since(start))
	if err == nil {
		s.withTouch(a)
	}
	return a, err
}

// PendingWrites returns how many agents have a state the group commit
// has not yet written to the store.
func (s *Service) PendingWrites() int { return s.writes.len() }

// putAgent queues a as the agent's state for the next group commit
// (above); a must not be changed afterwards.
func (s *Service) putAgent(ctx context.Context, a *steward.Agent) error {
	_, err := s.writes.put(ctx, a, false)
	return err
}

// putState is putAgent for an agent that differs from what getAgent
// returned in its state only (steward.SameReport): the group commit then
// writes it with a narrow update.
func (s *Service) putState(ctx context.Context, a *steward.Agent) error {
	_, err := s.writes.put(ctx, a, true)
	return err
}

// putReport is putAgent for a, changed from before (what getAgent
// returned) by a report: putState when the report changed only the
// agent's state.
func (s *Service) putReport(ctx context.Context, before, a *steward.Agent) error {
	_, err := s.writes.put(ctx, a, steward.SameReport(before, a))
	return err
}
