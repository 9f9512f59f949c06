package controlplane

import (
	"bytes"
	"context"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// Metrics receives the control plane's measurements as they happen. Its
// methods are called on the per-message path, concurrently: an
// implementation must be safe for concurrent use, cheap, and must not
// allocate (resolve label values once, up front). Levels (connected agents,
// event queue, rollouts) are not pushed here: a collector reads them when it
// is scraped, with Stats.
type Metrics interface {
	// MessageReceived counts one AgentToServer message on transport t.
	MessageReceived(t server.Transport)
	// MessageSent counts one ServerToAgent message on transport t: a reply
	// or a push.
	MessageSent(t server.Transport)
	// MessageHandled observes how long one agent message that carries a
	// report took to handle: admission, storing the report and
	// reconciling its desired state. Bare heartbeats are not timed.
	MessageHandled(d time.Duration)
	// ReconcilePass observes one pass that reconciles every connected
	// agent after a change (or the periodic resync).
	ReconcilePass(d time.Duration)
	// StoreCall observes one store call the control plane made.
	StoreCall(op StoreOp, d time.Duration)
	// ConfigAcknowledged observes the time from offering a remote config
	// to the agent reporting it APPLIED (applied) or FAILED (!applied).
	ConfigAcknowledged(applied bool, d time.Duration)
}

// StoreOp names a store call the control plane times.
type StoreOp uint8

// The store calls the control plane times: those of the message path, the
// background writers and the desired-state reload.
const (
	StoreGetAgent     StoreOp = iota // read an agent (report, offline)
	StorePutAgent                    // write an agent's merged report
	StoreTouchAgents                 // flush the batched last-seen times
	StoreAppendEvents                // store a batch of events
	StoreLoadDesired                 // load configs, assignments and rollouts
	StoreOps                         // the number of operations, not one
)

var storeOpNames = [StoreOps]string{"get_agent", "put_agent", "touch_agents", "append_events", "load_desired"}

// String returns the operation's metric label, e.g. "get_agent".
func (op StoreOp) String() string {
	if op < StoreOps {
		return storeOpNames[op]
	}
	return "unknown"
}

// noMetrics discards every measurement (Config.Metrics unset).
type noMetrics struct{}

func (noMetrics) MessageReceived(server.Transport)       {}
func (noMetrics) MessageSent(server.Transport)           {}
func (noMetrics) MessageHandled(time.Duration)           {}
func (noMetrics) ReconcilePass(time.Duration)            {}
func (noMetrics) StoreCall(StoreOp, time.Duration)       {}
func (noMetrics) ConfigAcknowledged(bool, time.Duration) {}

// Stats are the control plane's levels at one moment.
type Stats struct {
	// WebSocketAgents and HTTPAgents count the agents with a session on
	// this replica, by transport (an HTTP agent until it stops polling).
	WebSocketAgents, HTTPAgents int
	// EventQueue is how many events wait for the event writer, of
	// EventQueueCapacity; EventsDropped counts those not stored because
	// the queue was full.
	EventQueue, EventQueueCapacity int
	EventsDropped                  int64
	// Rollouts are the active (running or paused) rollouts, with their
	// progress; nil when the store keeps no rollouts.
	Rollouts []*steward.Rollout
}

// Stats returns the current levels. It walks the sessions (a lock per
// session) and reads the rollouts from the store; meant for a scrape, not
// for the message path. It fails only when the rollouts cannot be read, and
// then still returns the other levels.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	st := Stats{EventQueue: len(s.events), EventQueueCapacity: cap(s.events), EventsDropped: s.eventsDropped.Load()}
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.mu.Lock()
		switch {
		case ss.http:
			st.HTTPAgents++
		case ss.conn != nil && !ss.closed:
			st.WebSocketAgents++
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	rs, ok := s.store.(steward.RolloutStore)
	if !ok {
		return st, nil
	}
	all, err := rs.Rollouts(ctx)
	if err != nil {
		return st, err
	}
	for _, r := range all {
		if r.Active() {
			st.Rollouts = append(st.Rollouts, r)
		}
	}
	return st, nil
}

// flushed observes one group-commit batch of n agents, timed as
// StorePutAgent.
func (s *Service) flushed(n int, took time.Duration, err error) {
	s.metrics.StoreCall(StorePutAgent, took)
	if err != nil {
		s.log.Warn("agent state not stored; retrying with the next batch", "agents", n, "error", err)
	}
}

// acknowledged observes the config acknowledgement latency when the
// agent's report st answers the config last offered on this session
// (APPLIED or FAILED for the offered hash), once per offer. ss.mu is held.
func (s *Service) acknowledged(ss *session, st *steward.RemoteConfigStatus, now time.Time) {
	if ss.offeredAt == 0 || st == nil || !bytes.Equal(st.LastRemoteConfigHash, ss.offeredHash) {
		return
	}
	if st.Status != steward.RemoteConfigApplied && st.Status != steward.RemoteConfigFailed {
		return
	}
	s.metrics.ConfigAcknowledged(st.Status == steward.RemoteConfigApplied, now.Sub(time.Unix(0, ss.offeredAt)))
	ss.offeredAt = 0
}
