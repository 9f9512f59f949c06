package steward

import (
	"context"
	"time"
)

// TelemetrySeries names one of the series Steward keeps of an agent's own
// telemetry (the metrics an agent sends to Steward's OTLP receiver). The
// receiver maps the well-known collector metrics, and the generic process
// metrics any agent sends, onto this fixed set; everything else is
// accepted and dropped.
type TelemetrySeries int

const (
	// TelemetryCPU: CPU time used, in cores (rate of
	// otelcol_process_cpu_seconds, else process.cpu.time /
	// process_cpu_seconds_total).
	TelemetryCPU TelemetrySeries = iota
	// TelemetryMemory: resident memory in bytes (otelcol_process_memory_rss,
	// else process.memory.usage / process_resident_memory_bytes).
	TelemetryMemory
	// TelemetryReceived: items per second receivers accepted
	// (otelcol_receiver_accepted_*: spans, metric points, log records).
	TelemetryReceived
	// TelemetryRefused: items per second receivers refused or failed
	// (otelcol_receiver_refused_*, otelcol_receiver_failed_*).
	TelemetryRefused
	// TelemetrySent: items per second exporters sent (otelcol_exporter_sent_*).
	TelemetrySent
	// TelemetrySendFailed: items per second exporters failed to send or to
	// enqueue (otelcol_exporter_send_failed_*, otelcol_exporter_enqueue_failed_*).
	TelemetrySendFailed
	// TelemetryQueueSize: items in the exporters' sending queues
	// (otelcol_exporter_queue_size, summed over exporters).
	TelemetryQueueSize
	// TelemetryQueueCapacity: the queues' capacity (otelcol_exporter_queue_capacity).
	TelemetryQueueCapacity
	// TelemetrySeriesCount is the number of series.
	TelemetrySeriesCount
)

var telemetrySeriesNames = [TelemetrySeriesCount]string{"cpu", "memory_rss", "received", "refused", "sent", "send_failed", "queue_size", "queue_capacity"}

// String returns the series' name in the API ("cpu", "memory_rss", …).
func (s TelemetrySeries) String() string {
	if s < 0 || s >= TelemetrySeriesCount {
		return "unknown"
	}
	return telemetrySeriesNames[s]
}

// Rate reports whether the series comes from counters: a slot holds the
// increase over its step and reads as a rate per second. The others are
// levels (gauges): a 10 s slot holds the last value, a minute the highest.
func (s TelemetrySeries) Rate() bool {
	switch s {
	case TelemetryCPU, TelemetryReceived, TelemetryRefused, TelemetrySent, TelemetrySendFailed:
		return true
	}
	return false
}

// TelemetryRollup is one agent's minute of own telemetry, as persisted:
// for rate series the increase over the minute, for levels the highest
// value; NaN where nothing was received.
type TelemetryRollup struct {
	AgentID InstanceUID
	Minute  time.Time // start of the minute, UTC
	Values  [TelemetrySeriesCount]float64
}

// TelemetryStore persists minute rollups of the agents' own telemetry so
// that the last 7 days survive a restart.
type TelemetryStore interface {
	// PutTelemetryRollups inserts rollups, replacing any of the same agent
	// and minute.
	PutTelemetryRollups(ctx context.Context, rollups []TelemetryRollup) error
	// TelemetryRollups returns the rollups of minutes at or after since,
	// ordered by minute then agent.
	TelemetryRollups(ctx context.Context, since time.Time) ([]TelemetryRollup, error)
	// DeleteTelemetryRollups removes the rollups of minutes before before
	// and returns how many.
	DeleteTelemetryRollups(ctx context.Context, before time.Time) (int64, error)
}

// TelemetryData is a window of series at one step: Series[name][i] is the
// value of the slot starting at Start + i×Step, nil where nothing was
// received. Rate series are per second (CPU: cores); levels as received.
type TelemetryData struct {
	Start       time.Time             `json:"start"`
	StepSeconds int                   `json:"step_seconds"`
	Series      map[string][]*float64 `json:"series"`
}

// AgentTelemetry is one agent's own telemetry.
type AgentTelemetry struct {
	AgentID InstanceUID `json:"agent_id"`
	// LastReceived is when the receiver last stored a data point of the
	// agent (zero: never since the server started, rollups aside).
	LastReceived time.Time `json:"last_received,omitzero"`
	TelemetryData
}

// FleetTelemetry sums the series of every agent (levels too: total
// memory, total queued items), with the agents that dropped most.
type FleetTelemetry struct {
	Agents int `json:"agents"` // agents with data in the window
	TelemetryData
	// TopDrops are the agents with the most items refused plus failed to
	// send over the window, most first (only agents that dropped any).
	TopDrops []TelemetryDrops `json:"top_drops"`
}

// TelemetryDrops is an agent's dropped items over a window.
type TelemetryDrops struct {
	AgentID    InstanceUID `json:"agent_id"`
	Refused    float64     `json:"refused"`
	SendFailed float64     `json:"send_failed"`
}

// TelemetryLog is one log record an agent sent about itself (kept briefly,
// in memory).
type TelemetryLog struct {
	Time     time.Time         `json:"time"`
	Severity string            `json:"severity,omitempty"`
	Body     string            `json:"body"`
	Attrs    map[string]string `json:"attributes,omitempty"`
}

// TelemetryService reads the agents' own telemetry.
type TelemetryService interface {
	// AgentTelemetry returns the window ending now: 10 s steps for a
	// window up to an hour, 1 min steps up to 7 days. EINVALID for another
	// window; ENOTFOUND for an agent with no telemetry and unknown to the store.
	AgentTelemetry(ctx context.Context, id InstanceUID, window time.Duration) (*AgentTelemetry, error)
	// FleetTelemetry sums every agent's series over the window (as
	// AgentTelemetry) and lists the top agents by drops (at most top).
	FleetTelemetry(ctx context.Context, window time.Duration, top int) (*FleetTelemetry, error)
	// AgentTelemetryLogs returns the agent's latest log records, newest last.
	AgentTelemetryLogs(ctx context.Context, id InstanceUID) ([]TelemetryLog, error)
}
