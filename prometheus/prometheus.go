// Package prometheus exposes Steward's own telemetry in the Prometheus
// exposition format, with the Prometheus project's client library.
//
// A Metrics implements controlplane.Metrics: the control plane pushes
// counts and latencies into it as they happen, into label children
// resolved once in New, so the per-message path neither allocates nor
// looks up labels. Levels (connected agents, event queue, active rollouts)
// are read from the control plane's Stats when /metrics is scraped. Go
// runtime and process metrics are included. docs/metrics.md lists every
// metric.
package prometheus

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
)

// Metrics is Steward's metric registry. Create it with New, pass it as
// controlplane.Config.Metrics, call Watch with the control plane, and serve
// Handler. Safe for concurrent use.
type Metrics struct {
	reg *prom.Registry
	log *slog.Logger

	// received and sent are indexed by transportIndex.
	received, sent [2]prom.Counter
	handled        prom.Observer
	pass           prom.Observer
	store          [controlplane.StoreOps]prom.Observer
	ackApplied     prom.Observer
	ackFailed      prom.Observer
}

var _ controlplane.Metrics = (*Metrics)(nil)

// transportIndex maps a transport to its slot in the per-transport arrays.
func transportIndex(t server.Transport) int {
	if t == server.HTTP {
		return 1
	}
	return 0
}

var transports = [2]server.Transport{server.WebSocket, server.HTTP}

// New returns a registry with the control plane's counters and histograms
// and the Go runtime and process collectors. logger (nil: discard) reports
// scrape-time failures.
func New(logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prom.NewRegistry(), log: logger}
	received := prom.NewCounterVec(prom.CounterOpts{Name: "steward_opamp_messages_received_total",
		Help: "AgentToServer messages received, by transport."}, []string{"transport"})
	sent := prom.NewCounterVec(prom.CounterOpts{Name: "steward_opamp_messages_sent_total",
		Help: "ServerToAgent messages sent (replies and pushes), by transport."}, []string{"transport"})
	for i, t := range transports {
		m.received[i] = received.WithLabelValues(string(t))
		m.sent[i] = sent.WithLabelValues(string(t))
	}
	handled := prom.NewHistogram(prom.HistogramOpts{Name: "steward_reconcile_message_duration_seconds",
		Help:    "Time to handle one agent message that carries a report (bare heartbeats are not timed): admission, storing the report, reconciling its desired state.",
		Buckets: prom.ExponentialBuckets(0.00001, 4, 10)}) // 10µs … 2.6s
	pass := prom.NewHistogram(prom.HistogramOpts{Name: "steward_reconcile_pass_duration_seconds",
		Help:    "Time of one pass that reconciles every connected agent after a change or on the periodic resync.",
		Buckets: prom.ExponentialBuckets(0.0001, 4, 10)}) // 100µs … 26s
	store := prom.NewHistogramVec(prom.HistogramOpts{Name: "steward_store_duration_seconds",
		Help:    "Time of the store calls the control plane makes, by operation.",
		Buckets: prom.ExponentialBuckets(0.00005, 4, 10)}, []string{"op"}) // 50µs … 13s
	for op := controlplane.StoreOp(0); op < controlplane.StoreOps; op++ {
		m.store[op] = store.WithLabelValues(op.String())
	}
	ack := prom.NewHistogramVec(prom.HistogramOpts{Name: "steward_config_ack_duration_seconds",
		Help:    "Time from offering a remote config to the agent reporting it APPLIED or FAILED, by outcome.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900}}, []string{"status"})
	m.ackApplied = ack.WithLabelValues("applied")
	m.ackFailed = ack.WithLabelValues("failed")
	m.handled, m.pass = handled, pass
	m.reg.MustRegister(received, sent, handled, pass, store, ack,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, to gather or to register more collectors.
func (m *Metrics) Registry() *prom.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or negotiated)
// format. A collector that fails is logged and left out; the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError,
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)})
}

// Watch registers the scrape-time levels read from stats (normally the
// control plane's Stats). Call it once.
func (m *Metrics) Watch(stats func(ctx context.Context) (controlplane.Stats, error)) {
	m.reg.MustRegister(&levels{stats: stats})
}

func (m *Metrics) MessageReceived(t server.Transport) { m.received[transportIndex(t)].Inc() }
func (m *Metrics) MessageSent(t server.Transport)     { m.sent[transportIndex(t)].Inc() }
func (m *Metrics) MessageHandled(d time.Duration)     { m.handled.Observe(d.Seconds()) }
func (m *Metrics) ReconcilePass(d time.Duration)      { m.pass.Observe(d.Seconds()) }

// StoreCall observes a store call; an unknown op is ignored.
func (m *Metrics) StoreCall(op controlplane.StoreOp, d time.Duration) {
	if op < controlplane.StoreOps {
		m.store[op].Observe(d.Seconds())
	}
}

func (m *Metrics) ConfigAcknowledged(applied bool, d time.Duration) {
	if applied {
		m.ackApplied.Observe(d.Seconds())
	} else {
		m.ackFailed.Observe(d.Seconds())
	}
}

var (
	connectionsDesc = prom.NewDesc("steward_agent_connections",
		"Agents connected to this replica, by transport (an HTTP agent counts until it stops polling).", []string{"transport"}, nil)
	queueDesc = prom.NewDesc("steward_event_queue_depth",
		"Events waiting to be stored by the event writer.", nil, nil)
	queueCapDesc = prom.NewDesc("steward_event_queue_capacity",
		"Capacity of the event queue; events beyond it are published but not stored.", nil, nil)
	droppedDesc = prom.NewDesc("steward_events_dropped_total",
		"Events published but not stored because the event queue was full.", nil, nil)
	rolloutAgentsDesc = prom.NewDesc("steward_rollout_agents",
		"Agents of an active rollout so far, by progress (targeted, applied, failed).", []string{"rollout", "assignment", "progress"}, nil)
	rolloutStageDesc = prom.NewDesc("steward_rollout_stage",
		"Current stage (0-based) of an active rollout, with its state (running, paused).", []string{"rollout", "assignment", "state"}, nil)
)

// levels collects the control plane's levels at scrape time.
type levels struct {
	stats func(ctx context.Context) (controlplane.Stats, error)
}

func (l *levels) Describe(ch chan<- *prom.Desc) {
	for _, d := range []*prom.Desc{connectionsDesc, queueDesc, queueCapDesc, droppedDesc, rolloutAgentsDesc, rolloutStageDesc} {
		ch <- d
	}
}

// Collect reads Stats; when the rollouts cannot be read the scrape reports
// that error (see Handler) and still carries the other levels.
func (l *levels) Collect(ch chan<- prom.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := l.stats(ctx)
	ch <- prom.MustNewConstMetric(connectionsDesc, prom.GaugeValue, float64(st.WebSocketAgents), string(server.WebSocket))
	ch <- prom.MustNewConstMetric(connectionsDesc, prom.GaugeValue, float64(st.HTTPAgents), string(server.HTTP))
	ch <- prom.MustNewConstMetric(queueDesc, prom.GaugeValue, float64(st.EventQueue))
	ch <- prom.MustNewConstMetric(queueCapDesc, prom.GaugeValue, float64(st.EventQueueCapacity))
	ch <- prom.MustNewConstMetric(droppedDesc, prom.CounterValue, float64(st.EventsDropped))
	if err != nil {
		ch <- prom.NewInvalidMetric(rolloutAgentsDesc, err)
		return
	}
	for _, r := range st.Rollouts {
		p := r.Progress
		var targeted, applied, failed int
		if p != nil {
			targeted, applied, failed = p.Targeted, p.Applied, p.Failed
		}
		ch <- prom.MustNewConstMetric(rolloutAgentsDesc, prom.GaugeValue, float64(targeted), r.Name, r.Assignment, "targeted")
		ch <- prom.MustNewConstMetric(rolloutAgentsDesc, prom.GaugeValue, float64(applied), r.Name, r.Assignment, "applied")
		ch <- prom.MustNewConstMetric(rolloutAgentsDesc, prom.GaugeValue, float64(failed), r.Name, r.Assignment, "failed")
		ch <- prom.MustNewConstMetric(rolloutStageDesc, prom.GaugeValue, float64(r.Stage), r.Name, r.Assignment, string(r.State))
	}
}

// WatchTelemetry registers the own-telemetry receiver's figures, read when
// Prometheus scrapes: the agents whose telemetry is kept, and the data
// points accepted and rejected (normally the telemetry Hub's Stats). Call
// it once.
func (m *Metrics) WatchTelemetry(stats func() (agents int, accepted, rejected int64)) {
	m.reg.MustRegister(
		prom.NewGaugeFunc(prom.GaugeOpts{Name: "steward_telemetry_agents",
			Help: "Agents whose own telemetry this replica keeps."},
			func() float64 { n, _, _ := stats(); return float64(n) }),
		prom.NewCounterFunc(prom.CounterOpts{Name: "steward_telemetry_points_accepted_total",
			Help: "Data points and log records of the agents' own telemetry accepted by the OTLP receiver."},
			func() float64 { _, a, _ := stats(); return float64(a) }),
		prom.NewCounterFunc(prom.CounterOpts{Name: "steward_telemetry_points_rejected_total",
			Help: "Data points and log records the OTLP receiver rejected (partial success or refused requests' resources)."},
			func() float64 { _, _, r := stats(); return float64(r) }))
}

// WatchTransport registers the OpAMP transport's figures, read when
// Prometheus scrapes (normally the server's Stats): the push budget's bytes
// in flight and the messages that waited for it, and the agents cut off
// for not reading. Call it once.
func (m *Metrics) WatchTransport(stats func() server.Stats) {
	m.reg.MustRegister(&transportFigures{stats: stats})
}

var (
	pushInFlightDesc = prom.NewDesc("steward_opamp_push_inflight_bytes",
		"Bytes of large messages (64 KiB and more) in flight to WebSocket agents, bounded by --push-budget.", nil, nil)
	pushPacedDesc = prom.NewDesc("steward_opamp_push_paced_total",
		"Large messages that waited for room in the push budget before being written.", nil, nil)
	stuckDesc = prom.NewDesc("steward_opamp_stuck_disconnects_total",
		"WebSocket agents disconnected for reading none of what they were sent within --write-timeout, or for letting their send queue overflow.", nil, nil)
)

// transportFigures collects the transport's Stats at scrape time.
type transportFigures struct{ stats func() server.Stats }

func (f *transportFigures) Describe(ch chan<- *prom.Desc) {
	ch <- pushInFlightDesc
	ch <- pushPacedDesc
	ch <- stuckDesc
}

func (f *transportFigures) Collect(ch chan<- prom.Metric) {
	st := f.stats()
	ch <- prom.MustNewConstMetric(pushInFlightDesc, prom.GaugeValue, float64(st.PushInFlight))
	ch <- prom.MustNewConstMetric(pushPacedDesc, prom.CounterValue, float64(st.PushPaced))
	ch <- prom.MustNewConstMetric(stuckDesc, prom.CounterValue, float64(st.Stuck))
}
