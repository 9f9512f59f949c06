// Package telemetry keeps the agents' own telemetry — the metrics and logs
// a collector sends about itself — that Steward receives over OTLP/HTTP on
// its OpAMP listener (Receiver), and answers steward.TelemetryService.
//
// Each agent's metrics are mapped onto the fixed series of
// steward.TelemetrySeries and kept in two fixed-size rings allocated when
// its first data point arrives: 10 s slots for an hour and 1 min slots for
// 7 days. Counters become increases per slot (read as rates): a cumulative
// counter's increase between two data points — the whole value after a
// reset — is spread evenly over the time between them; a delta counter's
// value is its increase. Levels (memory, queue) keep the last value per
// 10 s and the highest per minute. Per agent this is at most
// AgentMemoryBound bytes, whatever the agent sends.
//
// Every minute the completed minutes (two minutes after they end, for late
// data) are written as rollups to a steward.TelemetryStore and minutes older
// than 7 days are deleted there; New reloads the last 7 days, so a restart
// keeps the minute view and loses the 10 s view.
package telemetry

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward"
)

const (
	fineStep, fineSlots     = 10, 360         // 10 s for 1 h
	coarseStep, coarseSlots = 60, 7 * 24 * 60 // 1 min for 7 days
	// Retention is how long minute rollups are kept.
	Retention = coarseSlots * coarseStep * time.Second
	// maxStreams bounds the counter streams (metric + attributes) tracked
	// per agent; data points of further streams are dropped.
	maxStreams = 256
	// flushGrace is how long after a minute ends its rollup is written
	// (counters exported every minute spread their increase back a minute).
	flushGrace = 2
)

// AgentMemoryBound is the most memory one agent's metric series take, in
// bytes: both rings, plus the counter streams at their bound (estimated
// at 160 bytes each: the map's slot and overhead and the metric name).
// Logs add at most LogMemoryBound for an agent that sends logs.
// BenchmarkAgentMemory measures it.
const AgentMemoryBound = (fineSlots+coarseSlots)*nSeries*4 + maxStreams*160

// Options configure a Hub.
type Options struct {
	// Store persists minute rollups; nil keeps them in memory only.
	Store steward.TelemetryStore
	// Agents answers whether an agent without telemetry exists (the API's
	// ENOTFOUND); nil: every agent does.
	Agents interface {
		Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error)
	}
	// MaxAgents bounds the agents whose telemetry is kept (default 2,000:
	// about 2,000 × AgentMemoryBound bytes); data of further agents is
	// refused (the receiver answers 503).
	MaxAgents int
	// Now is the clock (tests); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Hub keeps every agent's own telemetry. Create it with New and Close it.
type Hub struct {
	o      Options
	log    *slog.Logger
	mu     sync.RWMutex
	agents map[steward.InstanceUID]*agentData

	// accepted and rejected count data points and log records.
	accepted, rejected atomic.Int64

	flushed int64 // newest minute slot written to the store
	cancel  context.CancelFunc
	done    chan struct{}
}

// agentData is one agent's telemetry, guarded by mu.
type agentData struct {
	mu           sync.Mutex
	fine, coarse ring
	streams      map[streamKey]streamState
	last         time.Time
	logs         *logRing
}

func newAgentData() *agentData {
	return &agentData{fine: newRing(fineStep, fineSlots), coarse: newRing(coarseStep, coarseSlots),
		streams: map[streamKey]streamState{}}
}

// New loads the last 7 days of rollups from o.Store and starts writing
// rollups every minute until Close.
func New(ctx context.Context, o Options) (*Hub, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAgents <= 0 {
		o.MaxAgents = 2000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{o: o, log: o.Logger, agents: map[steward.InstanceUID]*agentData{}, done: make(chan struct{})}
	now := o.Now()
	h.flushed = now.Unix()/coarseStep - flushGrace
	if o.Store != nil {
		if err := h.load(ctx, now); err != nil {
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	go h.run(rctx)
	return h, nil
}

// load fills the minute rings from the stored rollups of the last 7 days.
func (h *Hub) load(ctx context.Context, now time.Time) error {
	rollups, err := h.o.Store.TelemetryRollups(ctx, now.Add(-Retention))
	if err != nil {
		return err
	}
	for i := range rollups {
		r := &rollups[i]
		a := h.agents[r.AgentID]
		if a == nil {
			if len(h.agents) >= h.o.MaxAgents {
				continue
			}
			a = newAgentData()
			h.agents[r.AgentID] = a
		}
		k := r.Minute.Unix() / coarseStep
		for s := range steward.TelemetrySeriesCount {
			if v := r.Values[s]; !math.IsNaN(v) {
				a.coarse.set(k, s, v, false)
			}
		}
	}
	h.log.Info("own telemetry: rollups loaded", "agents", len(h.agents), "rollups", len(rollups))
	return nil
}

// Stats returns the agents whose telemetry is kept and the data points and
// log records accepted and rejected since the start.
func (h *Hub) Stats() (agents int, accepted, rejected int64) {
	h.mu.RLock()
	agents = len(h.agents)
	h.mu.RUnlock()
	return agents, h.accepted.Load(), h.rejected.Load()
}

// Close stops the rollup writer after writing what is complete.
func (h *Hub) Close() error {
	h.cancel()
	<-h.done
	return nil
}

func (h *Hub) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			h.flush(context.Background())
			return
		case <-t.C:
		}
		h.flush(ctx)
		if now := h.o.Now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			h.prune(ctx, now)
		}
	}
}

// agent returns id's data, creating it when create; nil when it does not
// exist, or when it would exceed MaxAgents.
func (h *Hub) agent(id steward.InstanceUID, create bool) *agentData {
	h.mu.RLock()
	a := h.agents[id]
	h.mu.RUnlock()
	if a != nil || !create {
		return a
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if a = h.agents[id]; a == nil && len(h.agents) < h.o.MaxAgents {
		a = newAgentData()
		h.agents[id] = a
	}
	return a
}

// snapshot returns the agents' ids and data, sorted by id.
func (h *Hub) snapshot() ([]steward.InstanceUID, []*agentData) {
	h.mu.RLock()
	ids := make([]steward.InstanceUID, 0, len(h.agents))
	for id := range h.agents {
		ids = append(ids, id)
	}
	h.mu.RUnlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	data := make([]*agentData, 0, len(ids))
	h.mu.RLock()
	for _, id := range ids {
		data = append(data, h.agents[id])
	}
	h.mu.RUnlock()
	return ids, data
}

// flush writes the rollups of the minutes completed since the last flush.
func (h *Hub) flush(ctx context.Context) {
	upTo := h.o.Now().Unix()/coarseStep - flushGrace
	if h.o.Store == nil || upTo <= h.flushed {
		h.flushed = max(h.flushed, upTo)
		return
	}
	from := max(h.flushed+1, upTo-coarseSlots+1)
	var rollups []steward.TelemetryRollup
	ids, data := h.snapshot()
	for i, a := range data {
		a.mu.Lock()
		for k := from; k <= upTo; k++ {
			r := steward.TelemetryRollup{AgentID: ids[i], Minute: time.Unix(k*coarseStep, 0).UTC()}
			any := false
			for s := range steward.TelemetrySeriesCount {
				r.Values[s] = a.coarse.get(k, s)
				any = any || !math.IsNaN(r.Values[s])
			}
			if any {
				rollups = append(rollups, r)
			}
		}
		a.mu.Unlock()
	}
	if len(rollups) > 0 {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := h.o.Store.PutTelemetryRollups(wctx, rollups)
		cancel()
		if err != nil {
			h.log.Warn("own telemetry: rollups not stored (retried next minute)", "rollups", len(rollups), "error", err)
			return
		}
	}
	h.flushed = upTo
}

// prune deletes rollups older than Retention and forgets agents with no
// data left in either ring.
func (h *Hub) prune(ctx context.Context, now time.Time) {
	if h.o.Store != nil {
		if n, err := h.o.Store.DeleteTelemetryRollups(ctx, now.Add(-Retention)); err != nil {
			h.log.Warn("own telemetry: old rollups not deleted", "error", err)
		} else if n > 0 {
			h.log.Info("own telemetry: old rollups deleted", "rollups", n)
		}
	}
	ids, data := h.snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, a := range data {
		a.mu.Lock()
		stale := a.coarse.head <= now.Unix()/coarseStep-coarseSlots && a.fine.head <= now.Unix()/fineStep-fineSlots
		a.mu.Unlock()
		if stale {
			delete(h.agents, ids[i])
		}
	}
}
