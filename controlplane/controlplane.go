// Package controlplane is Steward's OpAMP control plane: a reconciler that
// compares each agent's desired state (assigned configs, commands) with what
// the agent reports and sends only the difference. It implements the
// transport's server.Handler and the steward.AgentService and
// steward.ConfigService interfaces over a steward.Store.
//
// Reconciliation is level-triggered and idempotent: any message from an
// agent, and any change to configs, assignments or labels, recomputes the
// desired config and offers it when the agent neither runs it nor has just
// been offered it. Nothing is kept only in memory that a restart could not
// recompute from the store and the agents' next reports.
package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// Config configures a Service.
type Config struct {
	Store steward.Store
	// Bus receives every event; default a new in-process Bus.
	Bus steward.EventBus
	// Replica names this server in Agent.Replica; default the host name.
	Replica string
	// HeartbeatInterval is the interval agents with ReportsHeartbeat are
	// expected to keep (the OpAMP default is 30 s). A WebSocket agent with
	// that capability that sends nothing for 3 intervals is disconnected.
	HeartbeatInterval time.Duration
	// HTTPOfflineAfter marks a plain-HTTP agent offline when it has not
	// polled for this long; default 3 × HeartbeatInterval.
	HTTPOfflineAfter time.Duration
	// FlushInterval batches last-seen updates; default 5 s.
	FlushInterval time.Duration
	// WriteInterval is the group commit of agent state (writes.go): what
	// agents report is written in batched transactions this often;
	// default 100 ms. The API shows a change at once; after a crash, at
	// most the changes of the last interval (plus the transaction under
	// way) are lost.
	WriteInterval time.Duration
	// WriteQueue bounds the agents with unwritten state; a report that
	// would exceed it waits (its connection is read more slowly).
	// Default 20,000.
	WriteQueue int
	// CommandTTL bounds how long a command waits for an HTTP agent's next
	// poll; default 5 minutes.
	CommandTTL time.Duration
	// Broadcaster connects replicas that share a database (optional).
	Broadcaster steward.Broadcaster
	// ResyncInterval rebuilds desired state from the store and reconciles
	// every connected agent even when no notice arrived; default 30 s.
	ResyncInterval time.Duration
	// ReplicaLease: a replica that has not renewed its lease for this long
	// is taken as dead and its agents are marked offline by the others
	// (with a store that implements steward.ReplicaStore); default 60 s.
	ReplicaLease time.Duration
	// Auth configures agent authentication and credentials (see auth.go).
	Auth AgentAuth
	// Packages configures packages and their content (see packages.go).
	Packages PackageOptions
	// PublicURL is the OpAMP URL offered to agents as the
	// destination_endpoint of their OpAMP connection settings, e.g.
	// "wss://steward.example.com:4320/v1/opamp". Default: the URL each
	// agent connected to (scheme, Host header and path of its request).
	PublicURL string
	// Metrics receives measurements of the message path, store calls and
	// config acknowledgements (see Metrics); default none.
	Metrics Metrics
	Logger  *slog.Logger
}

// Service is the control plane. Create it with New, serve its Handler on
// the OpAMP endpoint, and Close it on shutdown.
type Service struct {
	cfg   Config
	store steward.Store
	bus   steward.EventBus
	log   *slog.Logger
	// metrics is Config.Metrics, or noMetrics.
	metrics Metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[steward.InstanceUID]*session

	// leaseHeld is set once this replica's lease is recorded (used by
	// renewLease only, which runs on one goroutine at a time).
	leaseHeld bool
	// reclaiming is set while reclaimAgents runs (see renewLease).
	reclaiming atomic.Bool

	desired   atomic.Pointer[desiredState]
	reloadMu  sync.Mutex
	rolloutMu sync.Mutex
	// fanout is held (written) by a pass over every session (reconcileAll);
	// a WebSocket message waits at the door while one runs (see OnMessage).
	fanout sync.RWMutex

	// writes is the group commit of agent state (writes.go).
	writes *agentWrites

	touchMu sync.Mutex
	touched map[steward.InstanceUID]steward.Seen

	// syncMarked holds agents whose sync state must be derived again,
	// with when they were marked (sync.go).
	syncMu     sync.Mutex
	syncMarked map[steward.InstanceUID]time.Time

	events        chan *steward.Event
	eventsDropped atomic.Int64
	// eventNotices queues encoded events for the other replicas
	// (replicas.go, forwardEvents); nil without a Broadcaster.
	eventNotices        chan json.RawMessage
	eventNoticesDropped atomic.Int64
	// peersWatching is when another replica last said it has live event
	// subscribers (Unix ns; replicas.go).
	peersWatching atomic.Int64
	// peers holds the other replicas' unwritten agent states (peers.go);
	// nil without a Broadcaster.
	peers       *peers
	rolloutKick chan struct{}
	// rolloutReports counts the config status changes agents reported
	// while rollouts ran (rolloutPace).
	rolloutReports atomic.Int64

	cred credState // agent credentials and connection settings (auth.go)
	// publicURL is Config.PublicURL parsed; zero: each connection's own.
	publicURL connEndpoint

	pkg packageMachinery
	// telemetryKey signs own-telemetry tokens (telemetry.go).
	telemetryKey []byte
}

var (
	_ server.Handler                 = (*Service)(nil)
	_ steward.AgentService           = (*Service)(nil)
	_ steward.ConfigService          = (*Service)(nil)
	_ steward.DesiredConfigDescriber = (*Service)(nil)
)

// New loads the desired state from the store, marks agents this replica held
// before a crash offline, and starts the background flusher. It fails when the
// store cannot be read.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, steward.Errorf(steward.EINVALID, "controlplane: Store is required")
	}
	if cfg.Bus == nil {
		cfg.Bus = NewBus()
	}
	if cfg.Replica == "" {
		cfg.Replica, _ = os.Hostname()
		if cfg.Replica == "" {
			cfg.Replica = "steward"
		}
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.HTTPOfflineAfter <= 0 {
		cfg.HTTPOfflineAfter = 3 * cfg.HeartbeatInterval
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 5 * time.Second
	}
	if cfg.WriteInterval <= 0 {
		cfg.WriteInterval = 100 * time.Millisecond
	}
	if cfg.WriteQueue <= 0 {
		cfg.WriteQueue = 20000
	}
	if cfg.CommandTTL <= 0 {
		cfg.CommandTTL = 5 * time.Minute
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.ReplicaLease <= 0 {
		cfg.ReplicaLease = 60 * time.Second
	}
	if cfg.FlushInterval > cfg.ReplicaLease/3 {
		cfg.FlushInterval = cfg.ReplicaLease / 3 // leases are renewed on this tick
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	publicURL, err := checkPublicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	s := &Service{
		publicURL:   publicURL,
		cfg:         cfg,
		store:       cfg.Store,
		bus:         cfg.Bus,
		log:         cfg.Logger,
		metrics:     cfg.Metrics,
		sessions:    make(map[steward.InstanceUID]*session),
		touched:     make(map[steward.InstanceUID]steward.Seen),
		syncMarked:  make(map[steward.InstanceUID]time.Time),
		events:      make(chan *steward.Event, 1<<16),
		rolloutKick: make(chan struct{}, 1),
	}
	if cfg.Broadcaster != nil {
		s.eventNotices = make(chan json.RawMessage, eventNoticeQueue)
	}
	s.writes = newAgentWrites(cfg.Store, cfg.WriteInterval, cfg.WriteQueue, s.flushed)
	if cfg.Broadcaster != nil {
		s.peers = newPeers()
		s.writes.unpublished = make(map[steward.InstanceUID]struct{})
	}
	if err := cfg.Store.MarkOffline(ctx, cfg.Replica, time.Now().UTC()); err != nil {
		return nil, err
	}
	if err := s.initPackages(ctx); err != nil {
		return nil, err
	}
	s.initCredentials()
	s.initTelemetryKey()
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.renewLease(ctx)
	s.wg.Add(4)
	go s.housekeeping()
	go s.leases()
	go s.eventWriter()
	go func() {
		defer s.wg.Done()
		s.writes.run(s.ctx)
	}()
	if cfg.Broadcaster != nil {
		s.wg.Add(3)
		go func() {
			defer s.wg.Done()
			_ = cfg.Broadcaster.Listen(s.ctx, s.onNotice)
		}()
		go s.forwardEvents()
		go s.publishPending()
	}
	return s, nil
}

// Bus returns the event bus the service publishes to.
func (s *Service) Bus() steward.EventBus { return s.bus }

// Replica returns this server's replica name.
func (s *Service) Replica() string { return s.cfg.Replica }

// Close stops background work, flushes last-seen times and marks the agents
// held by this replica offline. Close the transport first (it closes every
// WebSocket, calling OnClose).
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.writes.flushNow(ctx); err != nil {
		s.log.Warn("agent state not stored at shutdown", "error", err)
	}
	s.flushTouches(ctx)
	s.cred.coalesce.flush(time.Now(), true)
	return s.store.MarkOffline(ctx, s.cfg.Replica, time.Now().UTC())
}

// leases renews the lease every FlushInterval until the service closes. It
// has its own goroutine so that slow housekeeping (a store under load) does
// not delay renewals until the other replicas take this one for dead.
func (s *Service) leases() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.renewLease(s.ctx)
		}
	}
}

// renewLease renews this replica's lease and reaps replicas whose lease
// lapsed, marking their agents offline. A replica that finds its own lease
// gone was reaped while alive (renewals failed or came too late) and marks
// its connected agents online again.
func (s *Service) renewLease(ctx context.Context) {
	rs, ok := s.store.(steward.ReplicaStore)
	if !ok {
		return
	}
	now := time.Now().UTC()
	renewed, err := rs.ReplicaAlive(ctx, s.cfg.Replica, now)
	if err != nil {
		if ctx.Err() == nil { // not cut short by Close
			s.log.Warn("replica lease renewal failed", "error", err)
		}
		return
	}
	if s.leaseHeld && !renewed && s.reclaiming.CompareAndSwap(false, true) {
		// On its own goroutine: with many agents on a loaded store it may
		// take longer than a lease, and renewals must go on meanwhile.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.reclaiming.Store(false)
			s.reclaimAgents(ctx)
		}()
	}
	s.leaseHeld = true
	dead, err := rs.ReapReplicas(ctx, now.Add(-s.cfg.ReplicaLease))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reaping dead replicas failed", "error", err)
		}
		return
	}
	for _, r := range dead {
		s.log.Warn("replica lease lapsed: its agents are marked offline", "replica", r)
		s.emit(&steward.Event{Type: steward.EventReplicaLost, Message: "replica " + r + " stopped renewing its lease; its agents were marked offline",
			Details: map[string]any{"replica": r}})
	}
}

// reload rebuilds the desired-state snapshot from the store.
func (s *Service) reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	start := time.Now()
	d, problems, err := loadDesired(ctx, s.store)
	s.metrics.StoreCall(StoreLoadDesired, time.Since(start))
	if err != nil {
		return err
	}
	for _, p := range problems {
		s.log.Warn("assignment skipped", "error", p)
	}
	s.desired.Store(d)
	if err := s.reloadConnectionSettings(ctx); err != nil {
		return err
	}
	return s.reloadPackages(ctx)
}

// Reconcile rebuilds the desired state from the store and offers each
// connected WebSocket agent whatever it now lacks. It is what a change on
// another replica triggers (see the postgres notifier).
func (s *Service) Reconcile(ctx context.Context) error {
	if err := s.reload(ctx); err != nil {
		return err
	}
	s.reconcileAll()
	return nil
}

// reconcileAll pushes the desired config to every WebSocket session that
// needs it. HTTP agents receive it with their next poll.
//
// WebSocket messages are not handled while it runs (s.fanout): on a busy
// core the acks of the agents pushed first would otherwise share the CPU
// with the push to the others, and the last agent would get a fleet-wide
// change only after thousands of acks were handled (10k agents, 4 KiB: the
// change acked by all in 0.35-0.47 s instead of 0.70-0.80 s). A push never
// waits on a connection (Send queues), so a message waits at most one
// pass; the acks are handled right after it.
func (s *Service) reconcileAll() {
	start := time.Now()
	defer func() { s.metrics.ReconcilePass(time.Since(start)) }()
	s.fanout.Lock()
	defer s.fanout.Unlock()
	for _, ss := range s.sessionList() {
		s.push(ss)
	}
}

// sessionList returns the sessions held now, to be walked without s.mu.
func (s *Service) sessionList() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	return list
}

// push sends a WebSocket session what reconciliation finds missing.
func (s *Service) push(ss *session) {
	ss.mu.Lock()
	conn := ss.conn
	if conn == nil || ss.closed {
		ss.mu.Unlock()
		return
	}
	msg := &protobufs.ServerToAgent{InstanceUid: ss.id[:]}
	changed := s.reconcileLocked(ss, conn, msg)
	ss.mu.Unlock()
	if changed {
		if err := conn.Send(msg); err != nil {
			s.log.Debug("push failed", "agent", ss.id, "error", err)
			return
		}
		s.metrics.MessageSent(server.WebSocket)
	}
}

// reconcileLocked fills msg, for the agent's connection c, with what the
// session's agent lacks; it reports whether it added anything. ss.mu is
// held.
func (s *Service) reconcileLocked(ss *session, c server.Conn, msg *protobufs.ServerToAgent) bool {
	changed := false
	want := s.desired.Load().wantedConfig(ss.id, ss.labels, ss.caps, ss.reportedHash)
	var wantHash []byte
	if want != nil {
		wantHash = want.hash
	}
	if !bytes.Equal(wantHash, ss.desiredHash) {
		// What the agent should run changed: its sync state is derived
		// again (and stored) by the sync flusher, unless a report does it
		// first.
		ss.desiredHash = wantHash
		s.syncDirty(ss.id)
	}
	// Offered when the agent neither runs it, nor was just offered it, nor
	// reported it FAILED (it would fail again).
	if want != nil && !bytes.Equal(want.hash, ss.reportedHash) && !bytes.Equal(want.hash, ss.offeredHash) && !bytes.Equal(want.hash, ss.failedHash()) {
		msg.RemoteConfig = want.msg
		ss.offeredHash = want.hash
		ss.offeredAt = time.Now().UnixNano()
		changed = true
		s.emit(&steward.Event{Type: steward.EventRemoteConfigSent, AgentID: ss.id,
			Message: "offered " + want.refs.String(), Details: map[string]any{"hash": hexString(want.hash), "configs": want.refs.String()}})
	}
	if s.offerPackages(ss, msg) {
		changed = true
	}
	if s.offerConnectionSettings(ss, c, msg) {
		changed = true
	}
	if q := ss.pending; q != nil && ss.http {
		now := time.Now()
		if q.command != nil && msg.Command == nil {
			if now.Before(q.until) {
				msg.Command = q.command
				changed = true
			}
			q.command = nil
		}
		for len(q.custom) > 0 && msg.CustomMessage == nil {
			m := q.custom[0]
			q.custom = q.custom[1:]
			if now.Before(q.until) {
				msg.CustomMessage = m
				changed = true
			}
		}
		if q.command == nil && len(q.custom) == 0 {
			ss.pending = nil
		}
	}
	return changed
}

// emit publishes an event at once and queues it for the event writer,
// which stores events in batches off the message path. When the queue is
// full (the database is far behind) the event is still published but not
// stored, and the loss is counted and logged.
func (s *Service) emit(e *steward.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	// Subscribers get their own copy: the event writer sets e.ID later.
	pub := *e
	s.publish(&pub)
	select {
	case s.events <- e:
	default:
		if n := s.eventsDropped.Add(1); n&(n-1) == 0 {
			s.log.Warn("event queue full; events published but not stored", "dropped", n)
		}
	}
}

// publish sends e to live subscribers, here and on the other replicas,
// without storing it.
func (s *Service) publish(e *steward.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	s.bus.Publish(e)
	s.queueEventNotice(e)
}

// eventWriter stores queued events in batches until Close. A batch
// collects what comes in for up to the group commit's WriteInterval after
// its first event (or until it holds 512), so that a burst — a connect
// storm emits an event per agent — is stored in a few transactions rather
// than one per handful of events. Subscribers of the bus have each event
// at once; the stored log has it as late as the agent state it describes.
func (s *Service) eventWriter() {
	defer s.wg.Done()
	batch := make([]*steward.Event, 0, 512)
	linger := time.NewTimer(s.cfg.WriteInterval)
	linger.Stop()
	for {
		select {
		case e := <-s.events:
			batch = append(batch[:0], e)
			linger.Reset(s.cfg.WriteInterval)
			closing := false
		collect:
			for len(batch) < cap(batch) {
				select {
				case e := <-s.events:
					batch = append(batch, e)
				case <-linger.C:
					break collect
				case <-s.ctx.Done():
					closing = true
					break collect
				}
			}
			linger.Stop()
			if closing { // everything queued goes with this batch
				s.storeEvents(queuedEvents(s.events, batch))
				return
			}
			s.storeEvents(batch)
		case <-s.ctx.Done():
			if batch = queuedEvents(s.events, batch[:0]); len(batch) > 0 {
				s.storeEvents(batch)
			}
			return
		}
	}
}

// queuedEvents appends the events waiting in ch to batch, without
// blocking.
func queuedEvents(ch chan *steward.Event, batch []*steward.Event) []*steward.Event {
	for {
		select {
		case e := <-ch:
			batch = append(batch, e)
		default:
			return batch
		}
	}
}

func (s *Service) storeEvents(batch []*steward.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := s.store.AppendEvents(ctx, batch...)
		s.metrics.StoreCall(StoreAppendEvents, time.Since(start))
		if err == nil {
			return
		}
		if attempt == 2 || ctx.Err() != nil {
			s.log.Warn("events not stored", "count", len(batch), "error", err)
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}

// housekeeping flushes last-seen times and expires silent agents.
func (s *Service) housekeeping() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	resync := time.NewTicker(s.cfg.ResyncInterval)
	defer resync.Stop()
	var pace rolloutPace
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.flushTouches(s.ctx)
			s.flushSync(s.ctx)
			s.expire()
			s.cred.coalesce.flush(time.Now(), false)
			s.cred.cooldown.sweep(time.Now())
			pace.run(s.ctx, s.progressRollouts, s.rolloutReports.Load())
		case <-s.rolloutKick:
			pace.run(s.ctx, s.progressRollouts, s.rolloutReports.Load())
		case <-pace.due:
			pace.due = nil
			pace.run(s.ctx, s.progressRollouts, s.rolloutReports.Load())
		case <-resync.C:
			s.pruneBodies(s.ctx)
			s.reassertHeld(s.ctx)
			if err := s.reload(s.ctx); err != nil {
				s.log.Warn("periodic resync failed", "error", err)
				continue
			}
			s.reconcileAll()
		}
	}
}

// pruneBodies deletes the config bodies nothing references, as soon as
// the store allows (it keeps each for a few minutes after its last use).
func (s *Service) pruneBodies(ctx context.Context) {
	if _, err := s.store.PruneConfigBodies(ctx, time.Now()); err != nil {
		s.log.Warn("config bodies not pruned", "error", err)
	}
}

// touch records, for the next heartbeat flush, that agent id was seen at
// at with message seq.
func (s *Service) touch(id steward.InstanceUID, at time.Time, seq uint64) {
	s.touchMu.Lock()
	s.touched[id] = steward.Seen{At: at, SequenceNum: seq}
	s.touchMu.Unlock()
}

// withTouch shows on a what the heartbeat flush has not yet stored: a
// later last-seen time and its sequence number.
func (s *Service) withTouch(a *steward.Agent) {
	s.touchMu.Lock()
	t, ok := s.touched[a.ID]
	s.touchMu.Unlock()
	if ok && t.At.After(a.LastSeen) {
		a.LastSeen, a.SequenceNum = t.At, t.SequenceNum
	}
}

func (s *Service) flushTouches(ctx context.Context) {
	s.touchMu.Lock()
	batch := s.touched
	if len(batch) == 0 {
		s.touchMu.Unlock()
		return
	}
	s.touched = make(map[steward.InstanceUID]steward.Seen, len(batch))
	s.touchMu.Unlock()
	// An agent with a row in the group commit may have none stored yet
	// (TouchAgents ignores unknown agents): its touch waits for a later
	// flush.
	var kept map[steward.InstanceUID]steward.Seen
	for id, seen := range batch {
		if s.writes.isPending(id) {
			if kept == nil {
				kept = make(map[steward.InstanceUID]steward.Seen)
			}
			kept[id] = seen
			delete(batch, id)
		}
	}
	s.retouch(kept)
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	err := s.store.TouchAgents(ctx, batch)
	s.metrics.StoreCall(StoreTouchAgents, time.Since(start))
	if err != nil {
		s.log.Warn("last-seen flush failed; will retry", "agents", len(batch), "error", err)
		s.retouch(batch)
	}
}

// retouch puts touches back for the next flush, unless newer ones came.
func (s *Service) retouch(batch map[steward.InstanceUID]steward.Seen) {
	s.touchMu.Lock()
	defer s.touchMu.Unlock()
	for id, at := range batch {
		if cur, ok := s.touched[id]; !ok || cur.At.Before(at.At) {
			s.touched[id] = at
		}
	}
}

// expire disconnects WebSocket agents that stopped heartbeating — nothing
// handled from them and nothing received by the transport for three
// heartbeat intervals — and marks plain-HTTP agents offline when they stop
// polling.
func (s *Service) expire() {
	now := time.Now()
	silence := 3 * s.cfg.HeartbeatInterval
	var stale []*session
	var silent []server.Conn
	s.mu.Lock()
	for id, ss := range s.sessions {
		ss.mu.Lock()
		last := time.Unix(0, ss.lastSeen)
		switch {
		case ss.http && now.Sub(last) > s.cfg.HTTPOfflineAfter:
			delete(s.sessions, id)
			ss.closed = true
			stale = append(stale, ss)
		case !ss.http && ss.conn != nil &&
			ss.caps.Has(steward.AgentReportsHeartbeat) && now.Sub(last) > silence:
			silent = append(silent, ss.conn)
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range silent {
		// Heartbeats that arrived but wait to be read (a server too busy
		// to keep up) are an agent alive: closing it would make the
		// server busier still with its reconnect.
		if now.Sub(c.LastReceived()) <= silence {
			continue
		}
		s.log.Info("closing silent agent connection", "remote", c.RemoteAddr())
		_ = c.Close()
	}
	for _, ss := range stale {
		s.markOffline(ss.id, now)
	}
}

// reclaimAgents marks online again the agents connected to this replica
// that the store shows offline: another replica reaped this one (see
// renewLease). Agents that report are marked online by their next message
// anyway; this covers the idle ones.
func (s *Service) reclaimAgents(ctx context.Context) {
	n := 0
	for _, ss := range s.sessionList() {
		if ctx.Err() != nil {
			return
		}
		ss.mu.Lock()
		closed := ss.closed
		ss.mu.Unlock()
		if closed {
			continue
		}
		a, err := s.getAgent(ctx, ss.id)
		if err != nil || a.Online || (a.Replica != s.cfg.Replica && a.Replica != "") {
			continue // gone, online, or taken over by another replica
		}
		a.Online = true
		a.Replica = s.cfg.Replica
		a.DisconnectedAt = time.Time{}
		a.UpdatedAt = time.Now().UTC()
		if err := s.putState(ctx, a); err != nil {
			s.log.Warn("agent not marked online again", "agent", ss.id, "error", err)
			continue
		}
		n++
	}
	s.log.Warn("this replica's lease had lapsed and other replicas marked its agents offline; its connected agents are marked online again",
		"replica", s.cfg.Replica, "agents", n)
}

// reassertHeld marks online again, as held here, the agents connected to
// this replica over WebSocket that the store shows offline or held by
// another replica: level-triggered repair of a race no lock prevents. An
// agent whose earlier connection to replica A was still open when it
// connected here can be marked offline by A after this replica stored it
// online (A read the row before this replica's write, and wrote after it);
// heartbeats do not rewrite the row, so it stayed offline while connected
// (2 of 100,000 agents after a replica was killed mid-change). Agents with
// a write pending here are left to it.
func (s *Service) reassertHeld(ctx context.Context) {
	hs, ok := s.store.(steward.HeldAgentStore)
	if !ok {
		return
	}
	var ids []steward.InstanceUID
	for _, ss := range s.sessionList() {
		ss.mu.Lock()
		live := !ss.closed && !ss.http
		ss.mu.Unlock()
		if live && !s.writes.isPending(ss.id) {
			ids = append(ids, ss.id)
		}
	}
	lost, err := hs.NotHeldBy(ctx, s.cfg.Replica, ids)
	if err != nil {
		s.log.Warn("cannot check the agents held here", "error", err)
		return
	}
	n := 0
	for _, id := range lost {
		if ss := s.lookup(id); ss != nil && s.reassert(ctx, ss) {
			n++
		}
	}
	if n > 0 {
		s.log.Warn("agents connected here were stored as offline or held by another replica; marked online here again", "agents", n)
	}
}

// reassert marks ss's agent online and held here, unless its session
// closed meanwhile (or is plain HTTP) or another replica holds it online and heard from it
// later than this one (this connection is the stale one: it closes when
// its silence expires); it reports whether it did.
func (s *Service) reassert(ctx context.Context, ss *session) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || ss.http {
		return false
	}
	a, err := s.getAgent(ctx, ss.id)
	if err != nil || (a.Online && (a.Replica == s.cfg.Replica || time.Unix(0, ss.lastSeen).Before(a.LastSeen))) {
		return false
	}
	a.Online, a.Replica, a.DisconnectedAt = true, s.cfg.Replica, time.Time{}
	a.UpdatedAt = time.Now().UTC()
	if err := s.putState(ctx, a); err != nil {
		s.log.Warn("agent not marked online again", "agent", ss.id, "error", err)
		return false
	}
	return true
}

// markOffline stores agent id as offline since at, unless another replica
// holds it now. Once Close has begun, a failure is not logged: Close marks
// every agent of this replica offline in one statement (a transport whose
// shutdown ran out of time still closes connections after it).
func (s *Service) markOffline(id steward.InstanceUID, at time.Time) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	a, err := s.getAgent(ctx, id)
	if err != nil {
		if steward.ErrorCode(err) != steward.ENOTFOUND {
			s.offlineNotMarked(id, err)
		}
		return
	}
	if !a.Online || a.Replica != s.cfg.Replica {
		return // already offline, or another replica holds it now
	}
	a.Online = false
	a.DisconnectedAt = at.UTC()
	a.UpdatedAt = at.UTC()
	if err := s.putState(ctx, a); err != nil {
		s.offlineNotMarked(id, err)
		return
	}
	s.emit(&steward.Event{Type: steward.EventAgentDisconnected, AgentID: id, Message: "agent went offline"})
}

// offlineNotMarked logs that agent id could not be marked offline, unless
// the service is closing (see markOffline).
func (s *Service) offlineNotMarked(id steward.InstanceUID, err error) {
	if s.ctx.Err() == nil {
		s.log.Warn("cannot mark agent offline", "agent", id, "error", err)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, len(b)*2)
	for i, c := range b {
		out[i*2], out[i*2+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}
