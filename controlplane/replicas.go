package controlplane

import (
	"context"
	"encoding/json"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// broadcast tells the other replicas (when there are any) about a change.
func (s *Service) broadcast(n steward.Notice) {
	if s.cfg.Broadcaster == nil {
		return
	}
	n.Origin = s.cfg.Replica
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Broadcaster.Broadcast(ctx, n); err != nil {
		s.log.Warn("broadcast to replicas failed; they resync periodically", "kind", n.Kind, "error", err)
	}
}

// onNotice applies a notice from another replica.
func (s *Service) onNotice(n steward.Notice) {
	if n.Origin == s.cfg.Replica {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	switch n.Kind {
	case steward.NoticeDesired:
		if err := s.reload(ctx); err != nil {
			s.log.Warn("reload after notice failed", "error", err)
			return
		}
		s.reconcileAll()
	case steward.NoticeLabels:
		ss := s.lookup(n.Agent)
		if ss == nil {
			return
		}
		a, err := s.getAgent(ctx, n.Agent)
		if err != nil {
			return
		}
		ss.mu.Lock()
		ss.labels = a.CompactLabels()
		ss.mu.Unlock()
		s.push(ss)
	case steward.NoticeCommand:
		var c steward.Command
		if err := json.Unmarshal(n.Data, &c); err != nil || s.lookup(n.Agent) == nil {
			return
		}
		var err error
		switch c.Type {
		case "restart":
			_, err = s.RestartAgent(ctx, n.Agent)
		case "custom_message":
			if c.CustomMessage != nil {
				_, err = s.SendCustomMessage(ctx, n.Agent, *c.CustomMessage)
			}
		}
		if err != nil {
			s.log.Warn("command from another replica failed", "agent", n.Agent, "type", c.Type, "error", err)
		}
	case steward.NoticeRevoked:
		var serial string
		if json.Unmarshal(n.Data, &serial) == nil {
			s.dropRevoked(n.Agent, serial)
		}
	case steward.NoticeEvent:
		var e steward.Event
		if err := json.Unmarshal(n.Data, &e); err == nil {
			s.bus.Publish(&e)
		}
	}
}

// forward hands a command to the replica holding the agent's connection;
// the Delivery follows the agent's transport there (a plain-HTTP agent's
// command is queued for its next poll). ENOTFOUND for an unknown agent;
// EUNAVAILABLE when no replica holds it.
func (s *Service) forward(ctx context.Context, id steward.InstanceUID, c steward.Command) (*steward.Delivery, error) {
	a, err := s.getAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.cfg.Broadcaster == nil || !a.Online || a.Replica == s.cfg.Replica || a.Replica == "" {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "agent %s is not connected", id)
	}
	data, _ := json.Marshal(c)
	n := steward.Notice{Kind: steward.NoticeCommand, Agent: id, Data: data, Origin: s.cfg.Replica}
	if err := s.cfg.Broadcaster.Broadcast(ctx, n); err != nil {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "agent %s is connected to replica %s, which cannot be reached: %v", id, a.Replica, err)
	}
	if a.Transport == string(server.HTTP) {
		return &steward.Delivery{Status: steward.DeliveryQueued, Until: time.Now().Add(s.cfg.CommandTTL).UTC()}, nil
	}
	return &steward.Delivery{Status: steward.DeliverySent}, nil
}
