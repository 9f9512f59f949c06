package steward

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
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
	// StewardTelemetry is the preset "send own telemetry to Steward": the
	// agents' own metrics and logs go to Steward's OTLP receiver on the
	// OpAMP listener, each agent with a credential of its own (see
	// StewardTelemetryDestination). It takes the place of OwnMetrics and
	// OwnLogs, which must then be unset.
	StewardTelemetry bool `json:"steward_telemetry,omitempty"`
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
	if c.StewardTelemetry && (c.OwnMetrics != nil || c.OwnLogs != nil) {
		return Errorf(EINVALID, "connection settings %q: steward_telemetry sends own metrics and logs to Steward; leave own_metrics and own_logs unset", c.Name)
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

// StewardTelemetryDestination stands, in EffectiveConnectionSettings, for
// Steward's own OTLP receiver (the StewardTelemetry preset); the control
// plane offers each agent the receiver's URL on the listener it connected
// to, with a bearer credential naming the agent.
var StewardTelemetryDestination = &TelemetryDestination{Endpoint: "steward:own-telemetry"}

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

// ConnectionSettingsSet is a list of connection settings prepared for
// matching many agents: selectors parsed once, sets ordered by priority
// (then name). It is immutable.
type ConnectionSettingsSet struct {
	list []*ConnectionSettings
	sels []Selector
}

// NewConnectionSettingsSet prepares all. Sets with a bad selector are left
// out (they were validated when saved).
func NewConnectionSettingsSet(all []*ConnectionSettings) *ConnectionSettingsSet {
	s := &ConnectionSettingsSet{}
	for _, c := range all {
		sel, err := ParseSelector(c.Selector)
		if err != nil {
			continue
		}
		s.list, s.sels = append(s.list, c), append(s.sels, sel)
	}
	order := make([]int, len(s.list))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := s.list[order[i]], s.list[order[j]]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Name < b.Name
	})
	list, sels := make([]*ConnectionSettings, len(order)), make([]Selector, len(order))
	for i, o := range order {
		list[i], sels[i] = s.list[o], s.sels[o]
	}
	s.list, s.sels = list, sels
	return s
}

// Len returns the number of connection settings in the set (0 for nil).
func (s *ConnectionSettingsSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.list)
}

// Merge merges the sets that match labels: per field, the highest priority
// (then lowest name) wins. It returns nil when none matches.
func (s *ConnectionSettingsSet) Merge(labels Labeled) *EffectiveConnectionSettings {
	var e *EffectiveConnectionSettings
	for i, c := range s.list {
		if !s.sels[i].MatchLabels(labels) {
			continue
		}
		if e == nil {
			e = &EffectiveConnectionSettings{}
		}
		ownMetrics, ownLogs := c.OwnMetrics, c.OwnLogs
		if c.StewardTelemetry {
			ownMetrics, ownLogs = StewardTelemetryDestination, StewardTelemetryDestination
		}
		if e.OwnMetrics == nil {
			e.OwnMetrics = ownMetrics
		}
		if e.OwnTraces == nil {
			e.OwnTraces = c.OwnTraces
		}
		if e.OwnLogs == nil {
			e.OwnLogs = ownLogs
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

// MergeConnectionSettings merges the sets of all that match labels (see
// ConnectionSettingsSet.Merge); sets with a bad selector are skipped.
func MergeConnectionSettings(all []*ConnectionSettings, labels Labeled) *EffectiveConnectionSettings {
	return NewConnectionSettingsSet(all).Merge(labels)
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

// RedactedSecret stands in for a secret value in what the API returns:
// every header value of connection settings (such as "Authorization:
// Bearer …") and any copy of one in an agent's reported effective config.
// Sending it back in an update keeps the stored value (see KeepSecrets).
const RedactedSecret = "(redacted)"

// destinations returns each destination of c by a key naming it
// ("own_metrics", "own_traces", "own_logs", "other/NAME"); the values are
// c's own (headers maps are shared), for reading.
func (c *ConnectionSettings) destinations() map[string]TelemetryDestination {
	out := make(map[string]TelemetryDestination, 3+len(c.Other))
	for key, d := range map[string]*TelemetryDestination{"own_metrics": c.OwnMetrics, "own_traces": c.OwnTraces, "own_logs": c.OwnLogs} {
		if d != nil {
			out[key] = *d
		}
	}
	for name, d := range c.Other {
		out["other/"+name] = d
	}
	return out
}

// Redacted returns a copy of c (sharing no headers map) with every header
// value replaced by RedactedSecret; header names stay visible.
func (c *ConnectionSettings) Redacted() *ConnectionSettings {
	out := *c
	out.OwnMetrics, out.OwnTraces, out.OwnLogs = redactDest(c.OwnMetrics), redactDest(c.OwnTraces), redactDest(c.OwnLogs)
	if c.Other != nil {
		out.Other = make(map[string]TelemetryDestination, len(c.Other))
		for name, d := range c.Other {
			out.Other[name] = *redactDest(&d)
		}
	}
	return &out
}

func redactDest(d *TelemetryDestination) *TelemetryDestination {
	if d == nil {
		return nil
	}
	r := TelemetryDestination{Endpoint: d.Endpoint}
	if d.Headers != nil {
		r.Headers = make(map[string]string, len(d.Headers))
		for k := range d.Headers {
			r.Headers[k] = RedactedSecret
		}
	}
	return &r
}

// KeepSecrets replaces, in c, each header value equal to RedactedSecret by
// the stored value of the same header of the same destination in prev (nil
// when c is new), so that a caller who reads redacted settings can update
// them without knowing their secrets. It fails with EINVALID when there is
// no stored value to keep, or when the destination's endpoint changed: a
// stored secret is never sent to an endpoint chosen by someone who may not
// have been able to read it. c's destinations are replaced by copies; prev
// is not changed.
func (c *ConnectionSettings) KeepSecrets(prev *ConnectionSettings) error {
	stored := map[string]TelemetryDestination{}
	if prev != nil {
		stored = prev.destinations()
	}
	keep := func(key string, d *TelemetryDestination) (*TelemetryDestination, error) {
		if d == nil {
			return nil, nil
		}
		out := TelemetryDestination{Endpoint: d.Endpoint}
		if d.Headers != nil {
			out.Headers = make(map[string]string, len(d.Headers))
		}
		for h, v := range d.Headers {
			if v == RedactedSecret {
				old, ok := stored[key]
				switch {
				case !ok || old.Headers[h] == "":
					return nil, Errorf(EINVALID, "connection settings %q: %s header %q is %q but no value is stored: send the value", c.Name, key, h, RedactedSecret)
				case old.Endpoint != d.Endpoint:
					return nil, Errorf(EINVALID, "connection settings %q: the %s endpoint changed, so header %q must be sent again (a stored secret is never sent to a new endpoint)", c.Name, key, h)
				}
				v = old.Headers[h]
			}
			out.Headers[h] = v
		}
		return &out, nil
	}
	var err error
	if c.OwnMetrics, err = keep("own_metrics", c.OwnMetrics); err != nil {
		return err
	}
	if c.OwnTraces, err = keep("own_traces", c.OwnTraces); err != nil {
		return err
	}
	if c.OwnLogs, err = keep("own_logs", c.OwnLogs); err != nil {
		return err
	}
	if c.Other != nil {
		other := make(map[string]TelemetryDestination, len(c.Other))
		for name, d := range c.Other {
			k, err := keep("other/"+name, &d)
			if err != nil {
				return err
			}
			other[name] = *k
		}
		c.Other = other
	}
	return nil
}

// minScrubbedSecret is the shortest secret a SecretScrubber replaces:
// shorter header values ("1", "gzip") would blank out unrelated text.
const minScrubbedSecret = 4

// SecretScrubber replaces known secret values in text that may echo them,
// such as the effective config an agent reports after its supervisor wrote
// the offered connection-settings headers into the collector's config. It
// is immutable and safe for concurrent use.
type SecretScrubber struct{ r *strings.Replacer }

// NewSecretScrubber scrubs every header value of all that is at least four
// characters long.
func NewSecretScrubber(all []*ConnectionSettings) *SecretScrubber {
	var secrets []string
	seen := map[string]bool{}
	for _, c := range all {
		for _, d := range c.destinations() {
			for _, v := range d.Headers {
				if len(v) >= minScrubbedSecret && !seen[v] {
					seen[v] = true
					secrets = append(secrets, v)
				}
			}
		}
	}
	if len(secrets) == 0 {
		return &SecretScrubber{}
	}
	// Longest first, so that a secret containing another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, v := range secrets {
		pairs = append(pairs, v, RedactedSecret)
	}
	return &SecretScrubber{r: strings.NewReplacer(pairs...)}
}

// ConfigMap returns files with every known secret replaced by
// RedactedSecret, and whether anything was replaced (files itself is never
// changed).
func (s *SecretScrubber) ConfigMap(files ConfigMap) (ConfigMap, bool) {
	if s.r == nil || files == nil {
		return files, false
	}
	var out ConfigMap
	for name, f := range files {
		body := s.r.Replace(string(f.Body))
		if body == string(f.Body) {
			continue
		}
		if out == nil {
			out = make(ConfigMap, len(files))
			for n, f := range files {
				out[n] = f
			}
		}
		out[name] = ConfigFile{Body: []byte(body), ContentType: f.ContentType}
	}
	if out == nil {
		return files, false
	}
	return out, true
}

// Agent returns a, or a shallow copy of it whose effective config has every
// known secret replaced by RedactedSecret.
func (s *SecretScrubber) Agent(a *Agent) *Agent {
	if a == nil || a.EffectiveConfig == nil {
		return a
	}
	files, changed := s.ConfigMap(*a.EffectiveConfig)
	if !changed {
		return a
	}
	cp := *a
	cp.EffectiveConfig = &files
	return &cp
}
