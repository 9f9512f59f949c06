package controlplane

import (
	"context"
	"maps"
	"slices"

	"github.com/stewardhq/steward"
)

// Who a change can reach. A preview, the guard before every change and a
// rollout's progress all weigh every agent an assignment selects. The
// agents online on this replica are taken from their sessions, as the push
// takes them, and not read: with a fleet on one replica, a change to
// 10,000 agents would otherwise read and decode 10,000 rows first.

// candidate is an agent a change can reach, as the push would see it: from
// the session this replica holds for it (agent nil until read), else as
// stored.
type candidate struct {
	id     steward.InstanceUID
	labels steward.Labeled
	caps   steward.AgentCapabilities
	// components is, for a held agent, the hash of its AvailableComponents,
	// nil when it reported none with details.
	components []byte
	// reported and outcome are the agent's remote config status (when
	// read: steward.ReadConfigStatus).
	reported []byte
	outcome  configOutcome
	agent    *steward.Agent
}

// configOutcome is what an agent reported of the config it last reported,
// as a rollout counts it.
type configOutcome uint8

const (
	outcomePending configOutcome = iota // none yet, APPLYING or UNSET
	outcomeApplied
	outcomeFailed
)

func outcomeOf(st *steward.RemoteConfigStatus) configOutcome {
	switch {
	case st == nil:
		return outcomePending
	case st.Status == steward.RemoteConfigApplied:
		return outcomeApplied
	case st.Status == steward.RemoteConfigFailed:
		return outcomeFailed
	}
	return outcomePending
}

func storedCandidate(a *steward.Agent) candidate {
	c := candidate{id: a.ID, labels: a, caps: a.Capabilities, agent: a} // a is Labeled: no label map is made
	if st := a.RemoteConfigStatus; st != nil {
		c.reported, c.outcome = st.LastRemoteConfigHash, outcomeOf(st)
	}
	return c
}

// heldCandidate is the candidate of a session, false before its first
// report set its labels.
func heldCandidate(ss *session) (candidate, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || ss.labels == (steward.Labels{}) {
		return candidate{}, false
	}
	return candidate{id: ss.id, labels: ss.labels, caps: ss.caps, components: ss.componentsHash,
		reported: ss.reportedHash, outcome: ss.reportedOutcome}, true
}

// candidates returns the agents the targets reach that f's Online
// matches (f: Online and Read only), each once, in no order. The store is
// asked only for the agents this replica does not hold (NotHeldBy), before
// the sessions are listed: an agent connecting meanwhile is in a session,
// one leaving is stored (or queued) offline. Only one that leaves between
// the two steps is missed, as one that connects just after is.
func (s *Service) candidates(ctx context.Context, targets []target, f steward.AgentFilter) ([]candidate, error) {
	seen := map[steward.InstanceUID]candidate{}
	stored := func(a *steward.Agent) {
		if f.Online == nil || a.Online == *f.Online {
			seen[a.ID] = storedCandidate(a)
		}
	}
	f.NotHeldBy = s.cfg.Replica
	sels := make([]steward.Selector, len(targets))
	for i, t := range targets {
		if t.id != nil {
			a, err := s.getAgent(ctx, *t.id)
			if steward.ErrorCode(err) == steward.ENOTFOUND {
				continue
			} else if err != nil {
				return nil, err
			}
			stored(a)
			continue
		}
		sel, err := steward.ParseSelector(t.selector)
		if err != nil {
			return nil, err
		}
		sels[i], f.Selector = sel, t.selector
		as, _, err := s.listAgents(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			stored(a)
		}
	}
	for _, ss := range s.sessionList() {
		c, held := heldCandidate(ss)
		if !held {
			// Not through its first report yet, or closing: as stored.
			a, err := s.getAgent(ctx, ss.id)
			if steward.ErrorCode(err) == steward.ENOTFOUND {
				continue
			} else if err != nil {
				return nil, err
			}
			c = storedCandidate(a)
		}
		online := held || c.agent.Online
		if (f.Online == nil || online == *f.Online) && reaches(targets, sels, c) {
			seen[c.id] = c
		}
	}
	return slices.Collect(maps.Values(seen)), nil
}

// reaches reports whether a target reaches c (sels: the targets' parsed
// selectors).
func reaches(targets []target, sels []steward.Selector, c candidate) bool {
	for i, t := range targets {
		if t.id != nil && *t.id == c.id || t.id == nil && sels[i].MatchLabels(c.labels) {
			return true
		}
	}
	return false
}

// readCandidate returns the agent of c, read whole once for a held one
// (gone meanwhile: an agent of its id only).
func (s *Service) readCandidate(ctx context.Context, c *candidate) (*steward.Agent, error) {
	if c.agent != nil {
		return c.agent, nil
	}
	a, err := s.getAgent(ctx, c.id)
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		a = &steward.Agent{ID: c.id}
	case err != nil:
		return nil, err
	}
	c.agent = a
	return a, nil
}
