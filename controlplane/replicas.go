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

// Event forwarding to the other replicas, only while one of them has live
// subscribers: a replica with subscribers says so (NoticeWatching) when
// the first arrives and every watchInterval while any remain, and the
// others forward their events for watchTTL after hearing it. Forwarding
// every event to every replica made each replica decode the events of all
// the others whether anyone watched or not: at 30,000 agents over four
// replicas a fleet-wide change spent 15 % of a replica's CPU receiving
// notices, most of it events; with seven replicas each decodes six
// replicas' events. Events arriving while no local subscriber is there
// are not decoded. The first ~100 ms of a new subscriber's stream carry
// this replica's events only (forwarding is best effort, as the live
// stream is). Events are sent in batches, by
// one goroutine: one NOTIFY carries as many events as fit in
// eventNoticeBytes, at least every eventNoticeInterval. One notice (and one
// goroutine and pooled connection) per event, as before, made a connect
// storm of 100,000 agents over seven replicas send that many notices, each
// decoded by every replica, and starved the message path of database
// connections (notify timeouts, agents cut off before their first message
// was handled). Forwarding is best effort, as the live stream is: when the
// queue is full, events are stored and published here but not forwarded.
const (
	eventNoticeQueue    = 1 << 14
	eventNoticeBytes    = 7000 // under the store's notice limit, envelope included
	eventNoticeInterval = 100 * time.Millisecond
	watchInterval       = 10 * time.Second
	watchTTL            = 3 * watchInterval
)

// queueEventNotice queues e for the other replicas, never blocking.
func (s *Service) queueEventNotice(e *steward.Event) {
	if s.eventNotices == nil || time.Since(time.Unix(0, s.peersWatching.Load())) > watchTTL {
		return
	}
	data, err := json.Marshal(e)
	if err != nil || len(data) > eventNoticeBytes-2 {
		return // too large for one notice: local subscribers only
	}
	select {
	case s.eventNotices <- data:
	default:
		if n := s.eventNoticesDropped.Add(1); n&(n-1) == 0 {
			s.log.Warn("event forwarding queue full; events not shown live on other replicas", "dropped", n)
		}
	}
}

// forwardEvents sends queued events to the other replicas in batches until
// the service closes.
func (s *Service) forwardEvents() {
	defer s.wg.Done()
	t := time.NewTicker(eventNoticeInterval)
	defer t.Stop()
	batch := make([]byte, 0, eventNoticeBytes)
	var said time.Time // when this replica last said it is watching
	flush := func() {
		if len(batch) == 0 {
			return
		}
		s.broadcast(steward.Notice{Kind: steward.NoticeEvents, Data: append(batch, ']')})
		batch = batch[:0]
	}
	for {
		select {
		case <-s.ctx.Done():
			flush()
			return
		case <-t.C:
			flush()
			said = s.sayWatching(said)
		case data := <-s.eventNotices:
			if len(batch)+len(data)+2 > eventNoticeBytes {
				flush()
			}
			if len(batch) == 0 {
				batch = append(batch, '[')
			} else {
				batch = append(batch, ',')
			}
			batch = append(batch, data...)
		}
	}
}

// sayWatching tells the other replicas that this one has live subscribers
// when it has, at once when they arrive (said is zero after a spell
// without them) and every watchInterval while they remain; it returns
// when it last said so.
func (s *Service) sayWatching(said time.Time) time.Time {
	if !s.watched() {
		return time.Time{}
	}
	if time.Since(said) < watchInterval {
		return said
	}
	s.broadcast(steward.Notice{Kind: steward.NoticeWatching})
	return time.Now()
}

// watched reports whether the bus has subscribers (a bus that cannot tell
// is taken as watched).
func (s *Service) watched() bool {
	w, ok := s.bus.(interface{ Watched() bool })
	return !ok || w.Watched()
}

// onNotice applies a notice from another replica.
func (s *Service) onNotice(n steward.Notice) {
	if n.Origin == s.cfg.Replica {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	switch n.Kind {
	case steward.NoticePending, steward.NoticeWritten:
		s.onPeerNotice(n)
	case steward.NoticeDesired:
		if n.Origin == "" && s.peers != nil {
			s.peers.forget() // LISTEN (re)started: notices may have been missed
		}
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
	case steward.NoticeEvent: // from a replica of an older version
		var e steward.Event
		if err := json.Unmarshal(n.Data, &e); err == nil {
			s.bus.Publish(&e)
		}
	case steward.NoticeWatching:
		s.peersWatching.Store(time.Now().UnixNano())
	case steward.NoticeEvents:
		var es []*steward.Event
		if !s.watched() {
			return
		}
		if err := json.Unmarshal(n.Data, &es); err == nil {
			for _, e := range es {
				s.bus.Publish(e)
			}
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
