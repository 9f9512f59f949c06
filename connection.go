package steward

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"sort"
	"time"
)

// TelemetryDestination is where an agent sends one kind of its own
// telemetry (OTLP/HTTP endpoint and request headers).
type TelemetryDestination struct {
	Endpoint string            `json:"endpoint"`
	Headers  map[string]string `json:"headers,omitempty"`
}

// ConnectionSettings are connection settings offered to the agents that
// Selector matches: destinations for their own metrics, traces and logs,
// the OpAMP heartbeat interval, and named "other" connections. When several
// match an agent, each field is taken from the highest-priority set that
// has it (ties: by name).
type ConnectionSettings struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	Priority int    `json:"priority,omitempty"`

	OwnMetrics *TelemetryDestination `json:"own_metrics,omitempty"`
	OwnTraces  *TelemetryDestination `json:"own_traces,omitempty"`
	OwnLogs    *TelemetryDestination `json:"own_logs,omitempty"`
	// HeartbeatIntervalSeconds offered in the OpAMP connection settings;
	// nil: not offered (0 disables heartbeats).
	HeartbeatIntervalSeconds *uint64                         `json:"heartbeat_interval_seconds,omitempty"`
	Other                    map[string]TelemetryDestination `json:"other,omitempty"`

	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Validate checks a name, a parseable selector and absolute http(s)
// endpoints.
func (c *ConnectionSettings) Validate() error {
	if err := ValidateName("connection settings", c.Name); err != nil {
		return err
	}
	if _, err := ParseSelector(c.Selector); err != nil {
		return err
	}
	check := func(what string, d *TelemetryDestination) error {
		if d == nil {
			return nil
		}
		u, err := url.Parse(d.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Errorf(EINVALID, "connection settings %q: %s endpoint %q is not an http(s) URL", c.Name, what, d.Endpoint)
		}
		for k := range d.Headers {
			if k == "" {
				return Errorf(EINVALID, "connection settings %q: %s has a header with an empty name", c.Name, what)
			}
		}
		return nil
	}
	for what, d := range map[string]*TelemetryDestination{"own_metrics": c.OwnMetrics, "own_traces": c.OwnTraces, "own_logs": c.OwnLogs} {
		if err := check(what, d); err != nil {
			return err
		}
	}
	for name, d := range c.Other {
		if name == "" {
			return Errorf(EINVALID, "connection settings %q: other connection with an empty name", c.Name)
		}
		if err := check("other connection "+name, &d); err != nil {
			return err
		}
	}
	if c.HeartbeatIntervalSeconds != nil && *c.HeartbeatIntervalSeconds > 86400 {
		return Errorf(EINVALID, "connection settings %q: heartbeat interval above one day", c.Name)
	}
	return nil
}

// EffectiveConnectionSettings is what one agent should use: the merge of
// every ConnectionSettings matching it.
type EffectiveConnectionSettings struct {
	OwnMetrics               *TelemetryDestination           `json:"own_metrics,omitempty"`
	OwnTraces                *TelemetryDestination           `json:"own_traces,omitempty"`
	OwnLogs                  *TelemetryDestination           `json:"own_logs,omitempty"`
	HeartbeatIntervalSeconds *uint64                         `json:"heartbeat_interval_seconds,omitempty"`
	Other                    map[string]TelemetryDestination `json:"other,omitempty"`
}

// Empty reports whether nothing is set.
func (e *EffectiveConnectionSettings) Empty() bool {
	return e == nil || (e.OwnMetrics == nil && e.OwnTraces == nil && e.OwnLogs == nil &&
		e.HeartbeatIntervalSeconds == nil && len(e.Other) == 0)
}

// MergeConnectionSettings merges the sets that match labels: per field, the
// highest priority (then lowest name) wins. Sets with a bad selector are
// skipped. It returns nil when none matches.
func MergeConnectionSettings(all []*ConnectionSettings, labels Labeled) *EffectiveConnectionSettings {
	var match []*ConnectionSettings
	for _, c := range all {
		sel, err := ParseSelector(c.Selector)
		if err != nil || !sel.MatchLabels(labels) {
			continue
		}
		match = append(match, c)
	}
	if len(match) == 0 {
		return nil
	}
	sort.SliceStable(match, func(i, j int) bool {
		if match[i].Priority != match[j].Priority {
			return match[i].Priority > match[j].Priority
		}
		return match[i].Name < match[j].Name
	})
	e := &EffectiveConnectionSettings{}
	for _, c := range match {
		if e.OwnMetrics == nil {
			e.OwnMetrics = c.OwnMetrics
		}
		if e.OwnTraces == nil {
			e.OwnTraces = c.OwnTraces
		}
		if e.OwnLogs == nil {
			e.OwnLogs = c.OwnLogs
		}
		if e.HeartbeatIntervalSeconds == nil {
			e.HeartbeatIntervalSeconds = c.HeartbeatIntervalSeconds
		}
		for name, d := range c.Other {
			if _, ok := e.Other[name]; !ok {
				if e.Other == nil {
					e.Other = map[string]TelemetryDestination{}
				}
				e.Other[name] = d
			}
		}
	}
	return e
}

// Hash returns a deterministic SHA-256 of the settings together with extra
// (e.g. the serial of the certificate offered with them).
func (e *EffectiveConnectionSettings) Hash(extra string) []byte {
	h := sha256.New()
	doc, _ := json.Marshal(e) // maps are encoded with sorted keys
	var lb [8]byte
	binary.BigEndian.PutUint64(lb[:], uint64(len(doc)))
	h.Write(lb[:])
	h.Write(doc)
	h.Write([]byte(extra))
	return h.Sum(nil)
}

// ConnectionSettingsStore keeps connection settings. Stores implement it in
// addition to Store.
type ConnectionSettingsStore interface {
	// PutConnectionSettings creates or replaces by name.
	PutConnectionSettings(ctx context.Context, c *ConnectionSettings) error
	// ConnectionSettings returns one by name; ENOTFOUND if unknown.
	ConnectionSettings(ctx context.Context, name string) (*ConnectionSettings, error)
	// ConnectionSettingsList lists all, by name.
	ConnectionSettingsList(ctx context.Context) ([]*ConnectionSettings, error)
	// DeleteConnectionSettings removes one; ENOTFOUND if unknown.
	DeleteConnectionSettings(ctx context.Context, name string) error
}
