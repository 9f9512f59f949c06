package steward

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// InstanceUID identifies one running agent instance (OpAMP instance_uid). The
// spec requires 16 bytes; new ones are UUID v7 (time-ordered).
type InstanceUID [16]byte

// NewInstanceUID returns a fresh UUID v7.
func NewInstanceUID() InstanceUID {
	var u InstanceUID
	_, _ = rand.Read(u[:])
	ms := uint64(time.Now().UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u
}

// InstanceUIDFromBytes converts a wire instance_uid; it fails unless b is
// exactly 16 bytes.
func InstanceUIDFromBytes(b []byte) (InstanceUID, error) {
	var u InstanceUID
	if len(b) != len(u) {
		return u, Errorf(EINVALID, "instance_uid must be 16 bytes, got %d", len(b))
	}
	copy(u[:], b)
	return u, nil
}

// ParseInstanceUID accepts the canonical UUID form (8-4-4-4-12) or 32 hex digits.
func ParseInstanceUID(s string) (InstanceUID, error) {
	var u InstanceUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, Errorf(EINVALID, "invalid instance uid %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, Errorf(EINVALID, "invalid instance uid %q", s)
	}
	return u, nil
}

// IsZero reports whether u is all zero bytes (never valid on the wire).
func (u InstanceUID) IsZero() bool { return u == InstanceUID{} }

// String returns the canonical UUID form.
func (u InstanceUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

func (u InstanceUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }
func (u *InstanceUID) UnmarshalText(b []byte) error {
	v, err := ParseInstanceUID(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// Agent is what Steward knows of one agent instance: what it last reported
// and how it is connected. Reported fields are replaced as a whole when the
// agent reports them again (OpAMP status compression: an omitted field means
// "unchanged").
type Agent struct {
	ID InstanceUID `json:"id"`

	Description         *AgentDescription         `json:"description,omitempty"`
	Capabilities        AgentCapabilities         `json:"capabilities"`
	Health              *ComponentHealth          `json:"health,omitempty"`
	EffectiveConfig     *ConfigMap                `json:"effective_config,omitempty"`
	RemoteConfigStatus  *RemoteConfigStatus       `json:"remote_config_status,omitempty"`
	PackageStatuses     *PackageStatuses          `json:"package_statuses,omitempty"`
	AvailableComponents *ComponentDetails         `json:"available_components,omitempty"`
	ConnectionStatus    *ConnectionSettingsStatus `json:"connection_settings_status,omitempty"`
	CustomCapabilities  []string                  `json:"custom_capabilities,omitempty"`

	// Sync is the agent's sync state, derived (see DeriveSync) whenever
	// what it reports or what it should run changes. Read the state with
	// SyncState, which is offline for a disconnected agent.
	Sync *AgentSync `json:"sync,omitempty"`

	// OpAMPSettingsOffered is the hash of the OpAMP connection settings
	// (endpoint, heartbeat, certificate) last offered to an agent that does
	// not report ConnectionSettingsStatus. Such an agent applies them by
	// reconnecting and cannot say it has them; this keeps its reconnects —
	// also after a server restart — from being offered them again.
	OpAMPSettingsOffered Hash `json:"opamp_settings_offered_hash,omitempty"`

	// Labels are set by operators through the API, in addition to the
	// attributes the agent reports; selectors match both (see Agent.LabelSet).
	Labels map[string]string `json:"labels,omitempty"`

	// SequenceNum is the last sequence_num received from the agent.
	SequenceNum uint64 `json:"sequence_num"`

	// Connection state.
	Online         bool      `json:"online"`
	Transport      string    `json:"transport,omitempty"` // "websocket" or "http"
	RemoteAddr     string    `json:"remote_addr,omitempty"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	LastSeen       time.Time `json:"last_seen,omitzero"`
	// Replica names the server replica holding the agent's connection.
	Replica string `json:"replica,omitempty"`

	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SameReport reports whether after differs from before only in its state:
// what AgentStateStore.PutAgentStates writes (the connection, last-seen,
// health, remote config status and sync fields, and a non-empty effective
// config).
// Nested values are compared by content.
func SameReport(before, after *Agent) bool {
	x, y := *before, *after
	x.clearState()
	y.clearState()
	if after.EffectiveConfig != nil && len(*after.EffectiveConfig) > 0 {
		x.EffectiveConfig, y.EffectiveConfig = nil, nil
	}
	return reflect.DeepEqual(&x, &y)
}

// clearState zeroes what AgentStateStore.PutAgentStates writes.
func (a *Agent) clearState() {
	a.Online, a.Replica, a.DisconnectedAt, a.UpdatedAt = false, "", time.Time{}, time.Time{}
	a.LastSeen, a.SequenceNum = time.Time{}, 0
	a.Transport, a.RemoteAddr, a.ConnectedAt = "", "", time.Time{}
	a.Health, a.RemoteConfigStatus, a.Sync = nil, nil, nil
	a.CreatedAt = time.Time{} // written by the store, not reported
}

// Well-known attribute keys (OpenTelemetry semantic conventions).
const (
	AttrServiceName       = "service.name"
	AttrServiceVersion    = "service.version"
	AttrServiceNamespace  = "service.namespace"
	AttrServiceInstanceID = "service.instance.id"
	AttrHostName          = "host.name"
	AttrOSType            = "os.type"
	AttrHostArch          = "host.arch"
)

// LabelSet returns the labels selectors match: every reported attribute with
// a scalar value (identifying first, then non-identifying), then operator
// labels, which win on conflicts; plus "instance.uid".
func (a *Agent) LabelSet() map[string]string {
	m := make(map[string]string)
	if a.Description != nil {
		for _, kv := range a.Description.NonIdentifyingAttributes {
			if s, ok := kv.ScalarString(); ok {
				m[kv.Key] = s
			}
		}
		for _, kv := range a.Description.IdentifyingAttributes {
			if s, ok := kv.ScalarString(); ok {
				m[kv.Key] = s
			}
		}
	}
	for k, v := range a.Labels {
		m[k] = v
	}
	m["instance.uid"] = a.ID.String()
	return m
}

// Label looks key up in LabelSet without making it: a selector matches
// an agent as it is (Agent is Labeled).
func (a *Agent) Label(key string) (string, bool) {
	if key == "instance.uid" {
		return a.ID.String(), true
	}
	if v, ok := a.Labels[key]; ok {
		return v, true
	}
	if a.Description == nil {
		return "", false
	}
	// The last scalar of a key wins, identifying over non-identifying.
	for _, list := range [][]KeyValue{a.Description.IdentifyingAttributes, a.Description.NonIdentifyingAttributes} {
		for i := len(list) - 1; i >= 0; i-- {
			if list[i].Key == key {
				if s, ok := list[i].ScalarString(); ok {
					return s, true
				}
			}
		}
	}
	return "", false
}

// Attribute returns the value of the named attribute, identifying ones first.
func (a *Agent) Attribute(key string) string {
	if a.Description == nil {
		return ""
	}
	for _, list := range [][]KeyValue{a.Description.IdentifyingAttributes, a.Description.NonIdentifyingAttributes} {
		for _, kv := range list {
			if kv.Key == key {
				s, _ := kv.ScalarString()
				return s
			}
		}
	}
	return ""
}

// Healthy reports the agent's top-level health; unknown counts as unhealthy.
func (a *Agent) Healthy() bool { return a.Health != nil && a.Health.Healthy }

// AgentDescription mirrors OpAMP AgentDescription.
type AgentDescription struct {
	IdentifyingAttributes    []KeyValue `json:"identifying_attributes,omitempty"`
	NonIdentifyingAttributes []KeyValue `json:"non_identifying_attributes,omitempty"`
}

// KeyValue is an attribute. Value holds a string, int64, float64, bool,
// []byte, []any or map[string]any (OpenTelemetry AnyValue).
type KeyValue struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// ScalarString renders scalar values as strings; false for arrays and maps.
func (kv KeyValue) ScalarString() (string, bool) {
	switch v := kv.Value.(type) {
	case string:
		return v, true
	case nil:
		return "", true
	case []any, map[string]any, []byte:
		return "", false
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

// AgentCapabilities is the OpAMP AgentCapabilities bit set.
type AgentCapabilities uint64

// Agent capability bits (values from the OpAMP specification).
const (
	AgentReportsStatus                   AgentCapabilities = 0x1
	AgentAcceptsRemoteConfig             AgentCapabilities = 0x2
	AgentReportsEffectiveConfig          AgentCapabilities = 0x4
	AgentAcceptsPackages                 AgentCapabilities = 0x8
	AgentReportsPackageStatuses          AgentCapabilities = 0x10
	AgentReportsOwnTraces                AgentCapabilities = 0x20
	AgentReportsOwnMetrics               AgentCapabilities = 0x40
	AgentReportsOwnLogs                  AgentCapabilities = 0x80
	AgentAcceptsOpAMPConnectionSettings  AgentCapabilities = 0x100
	AgentAcceptsOtherConnectionSettings  AgentCapabilities = 0x200
	AgentAcceptsRestartCommand           AgentCapabilities = 0x400
	AgentReportsHealth                   AgentCapabilities = 0x800
	AgentReportsRemoteConfig             AgentCapabilities = 0x1000
	AgentReportsHeartbeat                AgentCapabilities = 0x2000
	AgentReportsAvailableComponents      AgentCapabilities = 0x4000
	AgentReportsConnectionSettingsStatus AgentCapabilities = 0x8000
)

var capabilityNames = []struct {
	bit  AgentCapabilities
	name string
}{
	{AgentReportsStatus, "ReportsStatus"},
	{AgentAcceptsRemoteConfig, "AcceptsRemoteConfig"},
	{AgentReportsEffectiveConfig, "ReportsEffectiveConfig"},
	{AgentAcceptsPackages, "AcceptsPackages"},
	{AgentReportsPackageStatuses, "ReportsPackageStatuses"},
	{AgentReportsOwnTraces, "ReportsOwnTraces"},
	{AgentReportsOwnMetrics, "ReportsOwnMetrics"},
	{AgentReportsOwnLogs, "ReportsOwnLogs"},
	{AgentAcceptsOpAMPConnectionSettings, "AcceptsOpAMPConnectionSettings"},
	{AgentAcceptsOtherConnectionSettings, "AcceptsOtherConnectionSettings"},
	{AgentAcceptsRestartCommand, "AcceptsRestartCommand"},
	{AgentReportsHealth, "ReportsHealth"},
	{AgentReportsRemoteConfig, "ReportsRemoteConfig"},
	{AgentReportsHeartbeat, "ReportsHeartbeat"},
	{AgentReportsAvailableComponents, "ReportsAvailableComponents"},
	{AgentReportsConnectionSettingsStatus, "ReportsConnectionSettingsStatus"},
}

// Has reports whether every bit of c2 is set in c.
func (c AgentCapabilities) Has(c2 AgentCapabilities) bool { return c&c2 == c2 }

// Names lists the set capabilities by their specification names.
func (c AgentCapabilities) Names() []string {
	var out []string
	for _, n := range capabilityNames {
		if c&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// MarshalJSON renders {"bits": n, "names": [...]}.
func (c AgentCapabilities) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Bits  uint64   `json:"bits"`
		Names []string `json:"names"`
	}{uint64(c), c.Names()})
}

// UnmarshalJSON accepts the MarshalJSON form or a bare number.
func (c *AgentCapabilities) UnmarshalJSON(b []byte) error {
	var n uint64
	if err := json.Unmarshal(b, &n); err == nil {
		*c = AgentCapabilities(n)
		return nil
	}
	var v struct {
		Bits uint64 `json:"bits"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = AgentCapabilities(v.Bits)
	return nil
}

// ComponentHealth mirrors OpAMP ComponentHealth (a tree).
type ComponentHealth struct {
	Healthy    bool                        `json:"healthy"`
	StartTime  time.Time                   `json:"start_time,omitzero"`
	StatusTime time.Time                   `json:"status_time,omitzero"`
	Status     string                      `json:"status,omitempty"`
	LastError  string                      `json:"last_error,omitempty"`
	Components map[string]*ComponentHealth `json:"components,omitempty"`
}

// ConfigFile is one file of a configuration map.
type ConfigFile struct {
	Body        []byte `json:"body"`
	ContentType string `json:"content_type,omitempty"`
}

// MarshalJSON writes Body as a string when it is valid UTF-8 text (configs
// are YAML/JSON) and as base64 otherwise, flagged by "encoding".
func (f ConfigFile) MarshalJSON() ([]byte, error) {
	type text struct {
		Body        string `json:"body"`
		ContentType string `json:"content_type,omitempty"`
		Encoding    string `json:"encoding,omitempty"`
	}
	if isText(f.Body) {
		return json.Marshal(text{Body: string(f.Body), ContentType: f.ContentType})
	}
	return json.Marshal(struct {
		Body        []byte `json:"body"`
		ContentType string `json:"content_type,omitempty"`
		Encoding    string `json:"encoding"`
	}{f.Body, f.ContentType, "base64"})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *ConfigFile) UnmarshalJSON(b []byte) error {
	var v struct {
		Body        json.RawMessage `json:"body"`
		ContentType string          `json:"content_type"`
		Encoding    string          `json:"encoding"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	f.ContentType = v.ContentType
	if len(v.Body) == 0 || string(v.Body) == "null" {
		f.Body = nil
		return nil
	}
	if v.Encoding == "base64" {
		return json.Unmarshal(v.Body, &f.Body)
	}
	var s string
	if err := json.Unmarshal(v.Body, &s); err != nil {
		return err
	}
	f.Body = []byte(s)
	return nil
}

func isText(b []byte) bool {
	for _, r := range string(b) {
		if r == 0xFFFD || (r < 0x20 && r != '\n' && r != '\r' && r != '\t') {
			return false
		}
	}
	return true
}

// ConfigMap is a set of named configuration files (OpAMP AgentConfigMap).
// The empty name is the agent's single/default file.
type ConfigMap map[string]ConfigFile

// RemoteConfigState is the agent-reported state of the last remote config.
type RemoteConfigState string

const (
	RemoteConfigUnset    RemoteConfigState = "UNSET"
	RemoteConfigApplied  RemoteConfigState = "APPLIED"
	RemoteConfigApplying RemoteConfigState = "APPLYING"
	RemoteConfigFailed   RemoteConfigState = "FAILED"
)

// RemoteConfigStatus mirrors OpAMP RemoteConfigStatus.
type RemoteConfigStatus struct {
	LastRemoteConfigHash Hash              `json:"last_remote_config_hash,omitempty"`
	Status               RemoteConfigState `json:"status"`
	ErrorMessage         string            `json:"error_message,omitempty"`
}

// PackageStatuses mirrors OpAMP PackageStatuses.
type PackageStatuses struct {
	Packages                      map[string]*PackageStatus `json:"packages,omitempty"`
	ServerProvidedAllPackagesHash Hash                      `json:"server_provided_all_packages_hash,omitempty"`
	ErrorMessage                  string                    `json:"error_message,omitempty"`
}

// PackageState is OpAMP PackageStatusEnum by name.
type PackageState string

const (
	PackageInstalled      PackageState = "INSTALLED"
	PackageInstallPending PackageState = "INSTALL_PENDING"
	PackageInstalling     PackageState = "INSTALLING"
	PackageInstallFailed  PackageState = "INSTALL_FAILED"
	PackageDownloading    PackageState = "DOWNLOADING"
)

// PackageStatus mirrors OpAMP PackageStatus.
type PackageStatus struct {
	Name                 string       `json:"name"`
	AgentHasVersion      string       `json:"agent_has_version,omitempty"`
	AgentHasHash         Hash         `json:"agent_has_hash,omitempty"`
	ServerOfferedVersion string       `json:"server_offered_version,omitempty"`
	ServerOfferedHash    Hash         `json:"server_offered_hash,omitempty"`
	Status               PackageState `json:"status"`
	ErrorMessage         string       `json:"error_message,omitempty"`
	DownloadPercent      float64      `json:"download_percent,omitempty"`
}

// ComponentDetails mirrors OpAMP AvailableComponents / ComponentDetails: a
// tree of components with metadata. The root carries the reported hash.
type ComponentDetails struct {
	Hash       Hash                         `json:"hash,omitempty"`
	Metadata   []KeyValue                   `json:"metadata,omitempty"`
	Components map[string]*ComponentDetails `json:"components,omitempty"`
}

// ConnectionSettingsStatus mirrors OpAMP ConnectionSettingsStatus.
type ConnectionSettingsStatus struct {
	LastConnectionSettingsHash Hash   `json:"last_connection_settings_hash,omitempty"`
	Status                     string `json:"status"`
	ErrorMessage               string `json:"error_message,omitempty"`
}

// AgentFilter narrows Agents queries. Zero fields match everything.
type AgentFilter struct {
	// Selector is a label selector (see ParseSelector).
	Selector string
	// Search matches a substring of the id, service name, host name or
	// version, case-insensitively.
	Search string
	Online *bool
	// Healthy filters on the reported top-level health.
	Healthy *bool
	// Sync filters on the sync state (Agent.SyncState); "" matches all.
	Sync SyncState
	// SyncAny, when not empty, matches agents in any of these sync states
	// (query parameter sync=failed,rolled_back,drifted).
	SyncAny []SyncState
	// ConfigStatus filters on the reported remote config status (UNSET
	// when none was reported); "" matches all.
	ConfigStatus RemoteConfigState
	// Health filters on Agent.HealthState (offline agents are unknown);
	// "" matches all.
	Health HealthState
	// Type and Version match the service.name and service.version
	// attributes exactly; "" matches all.
	Type, Version string
	// Attributes match agents that reported, for each key, an identifying
	// or non-identifying attribute whose scalar value (KeyValue.
	// ScalarString) is exactly the value.
	Attributes map[string]string
	// Sort orders the result (""/SortID: by id); Desc reverses it. Ties
	// are broken by id in the same direction.
	Sort   AgentSort
	Desc   bool
	Offset int
	Limit  int // 0: no limit
	// Read limits what is read of each agent (ReadAll when empty), for
	// readers of every agent a change can reach. Not a query parameter of
	// the API.
	Read AgentRead
	// NotHeldBy, when set, leaves out the agents online on that replica
	// (Online, and Replica equal to it; "held" as in HeldAgentStore): a
	// replica that knows them from its own sessions reads only the rest.
	// Not a query parameter of the API.
	NotHeldBy string
}

// AgentRead is what a listing reads of each agent (AgentFilter.Read).
// What it leaves out of the agent's state (AgentStateStore: health, remote
// config status, sync state, connection details) is zero, or stale, and
// not to be used; the state is about half of what decoding an agent costs.
type AgentRead string

const (
	// ReadAll reads every field.
	ReadAll AgentRead = ""
	// ReadReport reads what the agent reported, its labels and Online,
	// and none of its state (a preview).
	ReadReport AgentRead = "report"
	// ReadConfigStatus is ReadReport and the remote config status (a
	// rollout's progress).
	ReadConfigStatus AgentRead = "config_status"
)

// CustomMessage mirrors OpAMP CustomMessage.
type CustomMessage struct {
	Capability string `json:"capability"`
	Type       string `json:"type"`
	Data       []byte `json:"data,omitempty"`
}

// Delivery statuses of a command (see Delivery).
const (
	// DeliverySent: written to the agent's WebSocket.
	DeliverySent = "sent"
	// DeliveryQueued: waiting for a plain-HTTP agent's next poll, which
	// must come before Until or the command is dropped.
	DeliveryQueued = "queued"
)

// Delivery says how a command reached an agent.
type Delivery struct {
	Status string    `json:"status"`
	Until  time.Time `json:"until,omitzero"`
}

// AgentService is the fleet inventory plus the commands that act on agents.
type AgentService interface {
	// Agent returns one agent; ENOTFOUND if unknown.
	Agent(ctx context.Context, id InstanceUID) (*Agent, error)
	// Agents lists agents matching f in f's order (by id unless f.Sort
	// says otherwise), and the total count of matches before Offset/Limit.
	// EINVALID on a bad filter (AgentFilter.Validate).
	Agents(ctx context.Context, f AgentFilter) ([]*Agent, int, error)
	// SetAgentLabels replaces the operator labels of an agent; desired state
	// is reconciled at once. ENOTFOUND if unknown, EINVALID on a bad label.
	SetAgentLabels(ctx context.Context, id InstanceUID, labels map[string]string) error
	// DeleteAgent forgets an agent (it comes back if it connects again).
	DeleteAgent(ctx context.Context, id InstanceUID) error
	// RestartAgent sends the Restart command and says how: sent on the
	// agent's WebSocket, or queued for a plain-HTTP agent's next poll.
	// EINVALID if the agent does not accept it, EUNAVAILABLE if it is not
	// connected.
	RestartAgent(ctx context.Context, id InstanceUID) (*Delivery, error)
	// SendCustomMessage sends a custom message and says how (see
	// RestartAgent); EINVALID unless the agent reported the message's
	// capability.
	SendCustomMessage(ctx context.Context, id InstanceUID, msg CustomMessage) (*Delivery, error)
	// AgentEvents lists the agent's history, newest first.
	AgentEvents(ctx context.Context, id InstanceUID, limit int) ([]*Event, error)
	// BulkAgents labels, restarts or forgets every agent a filter matches,
	// or (dry run) counts them; see BulkRequest.
	BulkAgents(ctx context.Context, req *BulkRequest) (*BulkResult, error)
}
