package controlplane

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// Other replicas' unwritten state. The fleet summary counts this
// replica's unwritten changes from memory (summaryOf), but another
// replica's only once its group commit has written them, which on a
// loaded database is many seconds after the acks (docs/controlplane.md,
// "What one replica's API shows of another replica's changes"). So every
// replica publishes the summary state of the agents it has not yet
// written (NoticePending, every write interval, tagged with the flush
// that writes each) and, once a flush has committed everything it took,
// that flush's generation (NoticeWritten); every replica keeps the
// others' states until written and counts them as its own. Notices are
// hints: nothing is acknowledged on them, and when they stop (a replica
// dies, LISTEN restarts) the store is the truth again.

// peerState is the summary state of one agent that replica Origin has not
// yet written.
type peerState struct {
	ID steward.InstanceUID `json:"i"`
	// Gen is the origin's flush that writes this state.
	Gen uint64 `json:"g"`
	// At is the agent's UpdatedAt (Unix ns): of two replicas' states of
	// an agent that moved, the later counts.
	At      int64                     `json:"t"`
	Online  bool                      `json:"o,omitempty"`
	Healthy bool                      `json:"h,omitempty"`
	Type    string                    `json:"n,omitempty"`
	Version string                    `json:"v,omitempty"`
	Config  steward.RemoteConfigState `json:"c"`
	Sync    steward.SyncState         `json:"s"`
	origin  string
}

func peerStateOf(a *steward.Agent, gen uint64) peerState {
	return peerState{ID: a.ID, Gen: gen, At: a.UpdatedAt.UnixNano(), Online: a.Online, Healthy: a.HealthState() == steward.HealthHealthy,
		Type: a.Attribute(steward.AttrServiceName), Version: a.Attribute(steward.AttrServiceVersion), Config: a.ConfigState(), Sync: a.SyncState()}
}

func (p *peerState) addTo(sum *steward.FleetSummary) {
	sum.AddState(p.Online, p.Healthy, p.Type, p.Version, p.Config, p.Sync)
}

// peers holds the other replicas' unwritten agent states.
type peers struct {
	mu      sync.Mutex
	agents  map[steward.InstanceUID]*peerState
	origins map[string]*peerOrigin
}

// peerOrigin is what is known of one other replica: when it was last
// heard from, and the agents of each of its flushes not yet written.
type peerOrigin struct {
	heard time.Time
	byGen map[uint64][]steward.InstanceUID
}

func newPeers() *peers {
	return &peers{agents: map[steward.InstanceUID]*peerState{}, origins: map[string]*peerOrigin{}}
}

func (p *peers) origin(name string, now time.Time) *peerOrigin {
	o := p.origins[name]
	if o == nil {
		o = &peerOrigin{byGen: map[uint64][]steward.InstanceUID{}}
		p.origins[name] = o
	}
	o.heard = now
	return o
}

// pending records states origin has not yet written; a state older than
// the one held for its agent (from another replica) is ignored.
func (p *peers) pending(origin string, states []peerState, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.origin(origin, now)
	for i := range states {
		st := &states[i]
		if cur := p.agents[st.ID]; cur != nil && cur.At > st.At {
			continue
		}
		st.origin = origin
		p.agents[st.ID] = st
		o.byGen[st.Gen] = append(o.byGen[st.Gen], st.ID)
	}
}

// written drops the states origin announced for flushes up to gen.
func (p *peers) written(origin string, gen uint64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.origin(origin, now)
	for g, ids := range o.byGen {
		if g > gen {
			continue
		}
		for _, id := range ids {
			if cur := p.agents[id]; cur != nil && cur.origin == origin && cur.Gen <= gen {
				delete(p.agents, id)
			}
		}
		delete(o.byGen, g)
	}
}

// forget drops every state: notices may have been missed (LISTEN
// restarted), so the store is the truth until new ones come.
func (p *peers) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.agents)
	clear(p.origins)
}

// snapshot returns the states held, after dropping those of replicas not
// heard from since silentAfter (dead, or cut off from the bus: their
// unwritten changes are lost or will be written, and the store shows
// them then).
func (p *peers) snapshot(silentAfter time.Time) []*peerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, o := range p.origins {
		if o.heard.Before(silentAfter) {
			for _, ids := range o.byGen {
				for _, id := range ids {
					if cur := p.agents[id]; cur != nil && cur.origin == name {
						delete(p.agents, id)
					}
				}
			}
			delete(p.origins, name)
		}
	}
	out := make([]*peerState, 0, len(p.agents))
	for _, st := range p.agents {
		out = append(out, st)
	}
	return out
}

// peerNoticeBytes bounds the data of one NoticePending (the store's
// notice limit, envelope included, is higher); peerWrittenEvery is how
// often a replica with unwritten agents repeats NoticeWritten, so that
// the others know it is alive while a slow flush runs.
const (
	peerNoticeBytes  = eventNoticeBytes
	peerWrittenEvery = 10 * time.Second
)

// publishPending tells the other replicas, every write interval, the
// state of the agents put since, and how far the group commit has
// written, until the service closes.
func (s *Service) publishPending() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.WriteInterval)
	defer t.Stop()
	var told uint64
	var toldAt time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		states, gens, written := s.writes.takeUnpublished()
		s.broadcastPending(states, gens)
		// written may go back (to the last full flush once something is
		// pending again after nothing was): what was told stays true.
		if written > told || (s.writes.len() > 0 && time.Since(toldAt) > peerWrittenEvery) {
			told, toldAt = max(told, written), time.Now()
			s.broadcast(steward.Notice{Kind: steward.NoticeWritten, Data: strconv.AppendUint(nil, told, 10)})
		}
	}
}

// broadcastPending sends states in notices of at most peerNoticeBytes.
func (s *Service) broadcastPending(states []*steward.Agent, gens []uint64) {
	batch := make([]byte, 0, peerNoticeBytes)
	send := func() {
		if len(batch) > 0 {
			s.broadcast(steward.Notice{Kind: steward.NoticePending, Data: append(batch, ']')})
			batch = batch[:0]
		}
	}
	for i, a := range states {
		b, err := json.Marshal(peerStateOf(a, gens[i]))
		if err != nil {
			continue
		}
		if len(batch)+len(b)+2 > peerNoticeBytes {
			send()
		}
		if len(batch) == 0 {
			batch = append(batch, '[')
		} else {
			batch = append(batch, ',')
		}
		batch = append(batch, b...)
	}
	send()
}

// onPeerNotice applies a NoticePending or NoticeWritten from another
// replica.
func (s *Service) onPeerNotice(n steward.Notice) {
	now := time.Now()
	switch n.Kind {
	case steward.NoticePending:
		var states []peerState
		if json.Unmarshal(n.Data, &states) == nil {
			s.peers.pending(n.Origin, states, now)
		}
	case steward.NoticeWritten:
		if gen, err := strconv.ParseUint(string(n.Data), 10, 64); err == nil {
			s.peers.written(n.Origin, gen, now)
		}
	}
}

// peerSnapshot returns the other replicas' unwritten states (none
// without other replicas).
func (s *Service) peerSnapshot() []*peerState {
	if s.peers == nil {
		return nil
	}
	return s.peers.snapshot(time.Now().Add(-s.cfg.ReplicaLease))
}
