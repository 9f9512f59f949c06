package controlplane

import (
	"context"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// Agent returns one agent: its live state when a change is not yet
// written, else the stored one; ENOTFOUND if unknown.
func (s *Service) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	a, err := s.getAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	s.present(a)
	return a, nil
}

// Agents lists agents matching f; EINVALID on a bad filter (see
// steward.AgentFilter.Validate).
func (s *Service) Agents(ctx context.Context, f steward.AgentFilter) ([]*steward.Agent, int, error) {
	if err := f.Validate(); err != nil {
		return nil, 0, err
	}
	as, n, err := s.listAgents(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	for _, a := range as {
		s.present(a)
	}
	return as, n, nil
}

// listAgents lists agents as they are live: filters, sorting and paging
// run in SQL over the stored agents but those with a change not yet
// written, which the store merges in from memory (AgentsWith), so that a
// listing shows a change at once, exactly as it will list it once
// written, without waiting for the group commit.
func (s *Service) listAgents(ctx context.Context, f steward.AgentFilter) ([]*steward.Agent, int, error) {
	return s.store.AgentsWith(ctx, f, s.writes.snapshot())
}

// present prepares a stored agent for readers: a last-seen time not yet
// flushed to the store, and the sync state as SyncState gives it (offline
// for a disconnected agent).
func (s *Service) present(a *steward.Agent) {
	s.withTouch(a)
	if st := a.SyncState(); a.Sync == nil || a.Sync.State != st {
		sync := steward.AgentSync{}
		if a.Sync != nil {
			sync = *a.Sync
		}
		sync.State = st
		a.Sync = &sync
	}
}

// SetAgentLabels replaces an agent's operator labels and reconciles it at
// once. EINVALID for a bad key or value, ENOTFOUND for an unknown agent.
func (s *Service) SetAgentLabels(ctx context.Context, id steward.InstanceUID, labels map[string]string) error {
	for k, v := range labels {
		if err := validateLabel(k, v); err != nil {
			return err
		}
	}
	return s.editLabels(ctx, id, func(map[string]string) map[string]string { return labels })
}

// editLabels replaces an agent's operator labels with what edit makes of
// the stored ones (edit must not modify its argument) and reconciles it at
// once; ENOTFOUND for an unknown agent.
func (s *Service) editLabels(ctx context.Context, id steward.InstanceUID, edit func(old map[string]string) map[string]string) error {
	// Hold the session (if any) so that a concurrent report cannot
	// overwrite the labels with a stale read.
	ss := s.lookup(id)
	if ss != nil {
		ss.mu.Lock()
	}
	a, err := s.getAgent(ctx, id)
	var labels map[string]string
	var f *flush
	if err == nil {
		labels = edit(a.Labels)
		a.Labels = labels
		a.UpdatedAt = time.Now().UTC()
		f, err = s.writes.put(ctx, a, false)
	}
	if err == nil {
		err = f.wait(ctx) // the labels are stored when the call returns
	}
	if ss != nil {
		if err == nil {
			ss.labels = a.CompactLabels()
		}
		ss.mu.Unlock()
	}
	if err != nil {
		return err
	}
	s.emit(&steward.Event{Type: steward.EventAgentUpdated, AgentID: id, Message: "labels changed", Details: map[string]any{"labels": labels}})
	if ss == nil {
		s.broadcast(steward.Notice{Kind: steward.NoticeLabels, Agent: id})
	}
	if ss != nil {
		s.push(ss)
	}
	return nil
}

func validateLabel(k, v string) error {
	if k == "" || len(k) > 253 {
		return steward.Errorf(steward.EINVALID, "label key %q must be 1-253 characters", k)
	}
	for i := 0; i < len(k); i++ {
		if !isLabelChar(k[i]) {
			return steward.Errorf(steward.EINVALID, "label key %q: use letters, digits, '.', '_', '-', '/' or ':'", k)
		}
	}
	if len(v) > 253 {
		return steward.Errorf(steward.EINVALID, "label %q: value longer than 253 characters", k)
	}
	for i := 0; i < len(v); i++ {
		if !isLabelChar(v[i]) {
			return steward.Errorf(steward.EINVALID, "label %q: value %q may only use letters, digits, '.', '_', '-', '/' or ':'", k, v)
		}
	}
	return nil
}

func isLabelChar(c byte) bool {
	return c == '.' || c == '_' || c == '-' || c == '/' || c == ':' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// DeleteAgent forgets an agent; a connected one is disconnected too.
func (s *Service) DeleteAgent(ctx context.Context, id steward.InstanceUID) error {
	if err := s.writes.forget(ctx, id); err != nil {
		return err
	}
	if err := s.store.DeleteAgent(ctx, id); err != nil {
		return err
	}
	if ss := s.lookup(id); ss != nil {
		ss.mu.Lock()
		c := ss.conn
		ss.mu.Unlock()
		if c != nil {
			_ = c.Close()
		}
	}
	s.bus.Publish(&steward.Event{Type: steward.EventAgentDeleted, AgentID: id, Message: "agent deleted", Time: time.Now().UTC()})
	return nil
}

func (s *Service) lookup(id steward.InstanceUID) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// RestartAgent sends the Restart command: at once over WebSocket, with the
// next poll over HTTP (within CommandTTL); the Delivery says which.
// ENOTFOUND for an unknown agent, EUNAVAILABLE when it is not connected,
// EINVALID when it does not accept restarts.
func (s *Service) RestartAgent(ctx context.Context, id steward.InstanceUID) (*steward.Delivery, error) {
	cmd := &protobufs.ServerToAgentCommand{Type: protobufs.CommandType_CommandType_Restart}
	d, err := s.deliver(ctx, id, steward.AgentAcceptsRestartCommand, "restart", steward.Command{Type: "restart"}, func(m *protobufs.ServerToAgent) { m.Command = cmd },
		func(ss *session) { ss.queue().command = cmd })
	if err == nil {
		msg := "restart command sent"
		if d.Status == steward.DeliveryQueued {
			msg = "restart command queued for the agent's next poll"
		}
		s.emit(&steward.Event{Type: steward.EventCommandSent, AgentID: id, Message: msg, Details: map[string]any{"delivery": d.Status}})
	}
	return d, err
}

// SendCustomMessage sends msg to the agent (see RestartAgent for how);
// EINVALID unless the agent declared msg.Capability.
func (s *Service) SendCustomMessage(ctx context.Context, id steward.InstanceUID, msg steward.CustomMessage) (*steward.Delivery, error) {
	if msg.Capability == "" || msg.Type == "" {
		return nil, steward.Errorf(steward.EINVALID, "custom message needs a capability and a type")
	}
	cm := &protobufs.CustomMessage{Capability: msg.Capability, Type: msg.Type, Data: msg.Data}
	d, err := s.deliver(ctx, id, 0, "custom message", steward.Command{Type: "custom_message", CustomMessage: &msg}, func(m *protobufs.ServerToAgent) { m.CustomMessage = cm },
		func(ss *session) { q := ss.queue(); q.custom = append(q.custom, cm) },
		func(ss *session) error {
			if !ss.hasCustomCap(msg.Capability) {
				return steward.Errorf(steward.EINVALID, "agent %s did not declare custom capability %q", id, msg.Capability)
			}
			return nil
		})
	if err == nil {
		s.emit(&steward.Event{Type: steward.EventCustomMessage, AgentID: id, Message: "custom message " + d.Status + " " + msg.Capability + "/" + msg.Type})
	}
	return d, err
}

// deliver sends a command on the agent's WebSocket (fill), queues it for a
// plain-HTTP agent's next poll (queue), or forwards it to the replica
// holding the agent, after checking the capability need and checks.
func (s *Service) deliver(ctx context.Context, id steward.InstanceUID, need steward.AgentCapabilities, what string, remote steward.Command,
	fill func(*protobufs.ServerToAgent), queue func(*session), checks ...func(*session) error) (*steward.Delivery, error) {
	ss := s.lookup(id)
	if ss == nil {
		return s.forward(ctx, id, remote)
	}
	ss.mu.Lock()
	if !ss.caps.Has(need) {
		ss.mu.Unlock()
		return nil, steward.Errorf(steward.EINVALID, "agent %s does not accept the %s", id, what)
	}
	for _, check := range checks {
		if err := check(ss); err != nil {
			ss.mu.Unlock()
			return nil, err
		}
	}
	conn := ss.conn
	if conn == nil || ss.http {
		queue(ss)
		until := time.Now().Add(s.cfg.CommandTTL)
		ss.queue().until = until
		ss.mu.Unlock()
		return &steward.Delivery{Status: steward.DeliveryQueued, Until: until.UTC()}, nil
	}
	ss.mu.Unlock()
	m := &protobufs.ServerToAgent{InstanceUid: id[:]}
	fill(m)
	if err := conn.Send(m); err != nil {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "agent %s: %v", id, err)
	}
	s.metrics.MessageSent(server.WebSocket)
	return &steward.Delivery{Status: steward.DeliverySent}, nil
}

// AgentEvents lists an agent's history, newest first.
func (s *Service) AgentEvents(ctx context.Context, id steward.InstanceUID, limit int) ([]*steward.Event, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return s.store.Events(ctx, steward.EventFilter{AgentID: &id, Limit: limit})
}

// Events lists fleet events, newest first.
func (s *Service) Events(ctx context.Context, f steward.EventFilter) ([]*steward.Event, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	return s.store.Events(ctx, f)
}

var _ steward.Summarizer = (*Service)(nil)

// Summary counts the fleet's live state: the stored agents in the
// database when the store can (SQL aggregates), except those with a change
// not yet written, here or (as the other replicas announced, peers.go) on
// another replica, which are counted from memory, so that a count shows a
// change at once without waiting for any group commit (see summaryOf). A
// store without aggregates has every agent read.
func (s *Service) Summary(ctx context.Context) (*steward.FleetSummary, error) {
	ss, ok := s.store.(steward.SummaryStore)
	if !ok {
		agents, _, err := s.listAgents(ctx, steward.AgentFilter{})
		if err != nil {
			return nil, err
		}
		sum := steward.NewFleetSummary()
		for _, a := range agents {
			sum.Add(a)
		}
		return sum, nil
	}
	return summaryOf(ctx, ss, s.writes.snapshot(), s.peerSnapshot())
}

// summaryOf counts pending (the agents whose latest state is not known to
// be stored here) and peer (those another replica has not written) as
// they are, and every other agent as stored. Each agent is counted once,
// never in a state older than it had when pending was taken: one not
// pending then had its latest state stored, and a later store holds that
// or a newer one. An agent both here and in peer (it moved) counts in its
// later state.
func summaryOf(ctx context.Context, ss steward.SummaryStore, pending []*steward.Agent, peer []*peerState) (*steward.FleetSummary, error) {
	ids := make([]steward.InstanceUID, 0, len(pending)+len(peer))
	var mine map[steward.InstanceUID]*steward.Agent
	if len(peer) > 0 {
		mine = make(map[steward.InstanceUID]*steward.Agent, len(pending))
	}
	for _, a := range pending {
		ids = append(ids, a.ID)
		if mine != nil {
			mine[a.ID] = a
		}
	}
	var theirs []*peerState
	for _, p := range peer {
		a, both := mine[p.ID]
		switch {
		case !both:
			ids = append(ids, p.ID)
		case p.At > a.UpdatedAt.UnixNano():
			delete(mine, p.ID)
		default:
			continue
		}
		theirs = append(theirs, p)
	}
	sum, err := ss.Summary(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, a := range pending {
		if mine == nil || mine[a.ID] != nil {
			sum.Add(a)
		}
	}
	for _, p := range theirs {
		p.addTo(sum)
	}
	return sum, nil
}
