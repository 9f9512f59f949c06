// Package record holds what store/sqlstore keeps apart from SQL: the JSON
// document an agent row carries, the typed encoding of attribute values,
// error wrapping with steward codes, and the in-Go part of agent filtering.
package record

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward"
)

// Error is an error carrying a steward code while keeping the driver error in
// its chain, so both steward.ErrorCode(err) and errors.Is(err, context.Canceled)
// (for example) work.
type Error struct {
	se  *steward.Error
	err error
}

// Wrap returns err with code attached; the message is the formatted text
// followed by err's text. It returns nil for a nil err.
func Wrap(code string, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	return &Error{se: steward.Errorf(code, "%s: %v", msg, err), err: err}
}

func (e *Error) Error() string   { return e.se.Error() }
func (e *Error) Unwrap() []error { return []error{e.se, e.err} }

// SearchSep separates the fields of the search column. A search term that
// contains it matches nothing.
const SearchSep = "\x1f"

// AgentColumns are the values an agent row stores in indexed columns, next
// to its JSON document.
type AgentColumns struct {
	ID             string // canonical lower-case UUID
	Healthy        bool
	ServiceName    string
	HostName       string
	ServiceVersion string
	// ConfigStatus is the reported remote config status (UNSET if none).
	ConfigStatus string
	// SyncState is Agent.SyncState (offline for a disconnected agent).
	SyncState string
	// Health is Agent.HealthState (unknown for a disconnected agent).
	Health string
	// Attributes holds every identifying and non-identifying attribute
	// with a scalar value as AttrSep key AttrKeySep value, followed by
	// AttrSep (see AttributeTerm); an attribute whose key or value holds a
	// separator or NUL is left out.
	Attributes string
	// Search is the lower-cased id, service name, host name and version,
	// joined by SearchSep; Agents' Search filter is a substring of it.
	Search string
}

// StateColumns are the indexed column values a narrow write of an
// agent's state changes (see steward.AgentStateStore).
type StateColumns struct {
	ID, ConfigStatus, SyncState, Health string
	Healthy                             bool
}

// StateColumnsOf returns the state column values of a, the same as
// Columns gives.
func StateColumnsOf(a *steward.Agent) StateColumns {
	return StateColumns{ID: a.ID.String(), ConfigStatus: string(a.ConfigState()),
		SyncState: string(a.SyncState()), Health: string(a.HealthState()), Healthy: a.Healthy()}
}

// Columns returns the indexed column values of a.
func Columns(a *steward.Agent) AgentColumns {
	st := StateColumnsOf(a)
	c := AgentColumns{
		ID:             st.ID,
		Healthy:        st.Healthy,
		ServiceName:    AttributeColumn(a, steward.AttrServiceName),
		HostName:       AttributeColumn(a, steward.AttrHostName),
		ServiceVersion: AttributeColumn(a, steward.AttrServiceVersion),
		ConfigStatus:   st.ConfigStatus,
		SyncState:      st.SyncState,
		Health:         st.Health,
		Attributes:     attributesColumn(a.Description),
	}
	c.Search = strings.ToLower(strings.Join([]string{c.ID, c.ServiceName, c.HostName, c.ServiceVersion}, SearchSep))
	return c
}

// AttributeColumn is the column value of attribute key (service name,
// host name, version): Postgres text cannot hold NUL, so it is dropped
// (no search term can match it anyway).
func AttributeColumn(a *steward.Agent, key string) string {
	return dropNUL(a.Attribute(key))
}

// dropNUL returns s without NUL characters (s itself when it has none: a
// strings.Replacer built per agent write cost more than the rest of
// Columns).
func dropNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// SearchTerm normalizes an AgentFilter.Search value for comparison with the
// search column; ok is false when the term can match nothing.
func SearchTerm(s string) (term string, ok bool) {
	if strings.Contains(s, SearchSep) || strings.Contains(s, "\x00") {
		return "", false
	}
	return strings.ToLower(s), true
}

// Separators of the attributes column.
const (
	AttrSep    = "\x1f"
	AttrKeySep = "\x1e"
)

// attrUnsafe are the characters an attribute in the attributes column
// cannot hold.
const attrUnsafe = AttrSep + AttrKeySep + "\x00"

func attributesColumn(d *steward.AgentDescription) string {
	if d == nil {
		return ""
	}
	var b strings.Builder
	for _, list := range [][]steward.KeyValue{d.IdentifyingAttributes, d.NonIdentifyingAttributes} {
		for _, kv := range list {
			v, ok := kv.ScalarString()
			if !ok || strings.ContainsAny(kv.Key, attrUnsafe) || strings.ContainsAny(v, attrUnsafe) {
				continue
			}
			b.WriteString(AttrSep + kv.Key + AttrKeySep + v)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return b.String() + AttrSep
}

// AttributeTerm is the substring of the attributes column that an agent
// reporting attribute key with the scalar value holds; ok is false when no
// stored agent can hold it.
func AttributeTerm(key, value string) (term string, ok bool) {
	if strings.ContainsAny(key, attrUnsafe) || strings.ContainsAny(value, attrUnsafe) {
		return "", false
	}
	return AttrSep + key + AttrKeySep + value + AttrSep, true
}

// agentDoc is the JSON document of an agent row: everything the agent
// reported plus operator labels. Online, LastSeen, DisconnectedAt,
// Replica, CreatedAt and UpdatedAt live in columns only; the rest of the
// agent's state (see steward.AgentStateStore) in a document of its own,
// stateDoc, which a narrow write replaces without this one. Rows written
// before the state column keep their state in this document (the fields
// stateDoc also has) until they are next written whole.
type agentDoc struct {
	Description         *descriptionDoc                   `json:"description,omitempty"`
	Capabilities        uint64                            `json:"capabilities"`
	Health              *steward.ComponentHealth          `json:"health,omitempty"`
	EffectiveConfig     *steward.ConfigMap                `json:"effective_config,omitempty"`
	RemoteConfigStatus  *steward.RemoteConfigStatus       `json:"remote_config_status,omitempty"`
	PackageStatuses     *steward.PackageStatuses          `json:"package_statuses,omitempty"`
	AvailableComponents *componentsDoc                    `json:"available_components,omitempty"`
	ConnectionStatus    *steward.ConnectionSettingsStatus `json:"connection_settings_status,omitempty"`
	CustomCapabilities  []string                          `json:"custom_capabilities,omitempty"`
	Labels              map[string]string                 `json:"labels,omitempty"`
	SequenceNum         uint64                            `json:"sequence_num,omitempty"`
	Transport           string                            `json:"transport,omitempty"`
	RemoteAddr          string                            `json:"remote_addr,omitempty"`
	ConnectedAt         time.Time                         `json:"connected_at,omitzero"`
	OpAMPOffered        steward.Hash                      `json:"opamp_offered,omitempty"`
	Sync                *steward.AgentSync                `json:"sync,omitempty"`
}

type descriptionDoc struct {
	Identifying    []kvDoc `json:"identifying,omitempty"`
	NonIdentifying []kvDoc `json:"non_identifying,omitempty"`
}

type componentsDoc struct {
	Hash       []byte                    `json:"hash,omitempty"`
	Metadata   []kvDoc                   `json:"metadata,omitempty"`
	Components map[string]*componentsDoc `json:"components,omitempty"`
}

type kvDoc struct {
	Key   string `json:"k"`
	Value value  `json:"v"`
}

// stateDoc is the JSON document of an agent's state next to agentDoc:
// what changes as the agent connects and acknowledges configs, apart from
// the state that lives in columns.
type stateDoc struct {
	Health             *steward.ComponentHealth    `json:"health,omitempty"`
	RemoteConfigStatus *steward.RemoteConfigStatus `json:"remote_config_status,omitempty"`
	SequenceNum        uint64                      `json:"sequence_num,omitempty"`
	Transport          string                      `json:"transport,omitempty"`
	RemoteAddr         string                      `json:"remote_addr,omitempty"`
	ConnectedAt        time.Time                   `json:"connected_at,omitzero"`
	Sync               *steward.AgentSync          `json:"sync,omitempty"`
}

// stateBufs holds the buffers EncodeState writes in, copied out at their
// size.
var stateBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// EncodeState returns the state document of a (see stateDoc).
func EncodeState(a *steward.Agent) ([]byte, error) {
	st := stateDoc{
		Health:             a.Health,
		RemoteConfigStatus: a.RemoteConfigStatus,
		SequenceNum:        a.SequenceNum,
		Transport:          a.Transport,
		RemoteAddr:         a.RemoteAddr,
		ConnectedAt:        a.ConnectedAt,
		Sync:               a.Sync,
	}
	buf := stateBufs.Get().(*[]byte)
	enc, ok := encodeStateFast((*buf)[:0], &st)
	b := bytes.Clone(enc)
	if cap(enc) <= 64<<10 {
		*buf = enc[:0]
	}
	stateBufs.Put(buf)
	if ok {
		return b, nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "agent %s cannot be stored: %v", a.ID, err)
	}
	return b, nil
}

// EncodeAgent returns the JSON document of a, without its state (see
// EncodeState). It fails (EINVALID) on values JSON cannot carry, such as a
// NaN download percentage.
func EncodeAgent(a *steward.Agent) ([]byte, error) {
	d := agentDoc{
		Capabilities:        uint64(a.Capabilities),
		EffectiveConfig:     a.EffectiveConfig,
		PackageStatuses:     a.PackageStatuses,
		AvailableComponents: componentsToDoc(a.AvailableComponents),
		ConnectionStatus:    a.ConnectionStatus,
		CustomCapabilities:  a.CustomCapabilities,
		Labels:              a.Labels,
		OpAMPOffered:        a.OpAMPSettingsOffered,
	}
	if a.Description != nil {
		d.Description = &descriptionDoc{
			Identifying:    kvsToDoc(a.Description.IdentifyingAttributes),
			NonIdentifying: kvsToDoc(a.Description.NonIdentifyingAttributes),
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "agent %s cannot be stored: %v", a.ID, err)
	}
	return b, nil
}

// DecodeAgent rebuilds an agent from its id column, its JSON document and
// its state document (nil for a row written before there was one: the
// state is then read from doc); the caller fills in the column-only
// fields. A document that does not decode gives an EINTERNAL error naming
// the agent.
func DecodeAgent(id string, doc, state []byte) (*steward.Agent, error) {
	uid, err := steward.ParseInstanceUID(id)
	if err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "stored agent has a corrupt id %q", id)
	}
	var d agentDoc
	if !decodeDocFast(doc, &d) {
		d = agentDoc{} // what the fast path filled in before it gave up
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, steward.Errorf(steward.EINTERNAL, "stored agent %s is corrupt: %v", id, err)
		}
	}
	a := &steward.Agent{
		ID:                   uid,
		Capabilities:         steward.AgentCapabilities(d.Capabilities),
		Health:               d.Health,
		EffectiveConfig:      d.EffectiveConfig,
		RemoteConfigStatus:   d.RemoteConfigStatus,
		PackageStatuses:      d.PackageStatuses,
		ConnectionStatus:     d.ConnectionStatus,
		CustomCapabilities:   d.CustomCapabilities,
		Labels:               d.Labels,
		SequenceNum:          d.SequenceNum,
		Transport:            d.Transport,
		RemoteAddr:           d.RemoteAddr,
		ConnectedAt:          d.ConnectedAt,
		OpAMPSettingsOffered: d.OpAMPOffered,
		Sync:                 d.Sync,
	}
	if d.Description != nil {
		a.Description = &steward.AgentDescription{
			IdentifyingAttributes:    kvsFromDoc(d.Description.Identifying),
			NonIdentifyingAttributes: kvsFromDoc(d.Description.NonIdentifying),
		}
	}
	a.AvailableComponents = componentsFromDoc(d.AvailableComponents)
	if state != nil {
		var st stateDoc
		if !decodeStateFast(state, &st) {
			st = stateDoc{} // what the fast path filled in before it gave up
			if err := json.Unmarshal(state, &st); err != nil {
				return nil, steward.Errorf(steward.EINTERNAL, "stored agent %s has a corrupt state: %v", id, err)
			}
		}
		a.Health, a.RemoteConfigStatus, a.SequenceNum, a.Sync = st.Health, st.RemoteConfigStatus, st.SequenceNum, st.Sync
		a.Transport, a.RemoteAddr, a.ConnectedAt = st.Transport, st.RemoteAddr, st.ConnectedAt
	}
	return a, nil
}

func kvsToDoc(kvs []steward.KeyValue) []kvDoc {
	if kvs == nil {
		return nil
	}
	out := make([]kvDoc, len(kvs))
	for i, kv := range kvs {
		out[i] = kvDoc{Key: kv.Key, Value: value{kv.Value}}
	}
	return out
}

func kvsFromDoc(kvs []kvDoc) []steward.KeyValue {
	if kvs == nil {
		return nil
	}
	out := make([]steward.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = steward.KeyValue{Key: kv.Key, Value: kv.Value.v}
	}
	return out
}

func componentsToDoc(c *steward.ComponentDetails) *componentsDoc {
	if c == nil {
		return nil
	}
	d := &componentsDoc{Hash: c.Hash, Metadata: kvsToDoc(c.Metadata)}
	if c.Components != nil {
		d.Components = make(map[string]*componentsDoc, len(c.Components))
		for k, v := range c.Components {
			d.Components[k] = componentsToDoc(v)
		}
	}
	return d
}

func componentsFromDoc(d *componentsDoc) *steward.ComponentDetails {
	if d == nil {
		return nil
	}
	c := &steward.ComponentDetails{Hash: d.Hash, Metadata: kvsFromDoc(d.Metadata)}
	if d.Components != nil {
		c.Components = make(map[string]*steward.ComponentDetails, len(d.Components))
		for k, v := range d.Components {
			c.Components[k] = componentsFromDoc(v)
		}
	}
	return c
}

// value is an attribute value (OpenTelemetry AnyValue) encoded with its type
// so that it decodes to the same Go type: one of {"s": string}, {"b": bool},
// {"i": "int64"}, {"u": "uint64"}, {"d": "float64"} (strconv form, so NaN
// and infinities survive), {"y": base64}, {"a": [values]}, {"m": {k:
// value}}, null for nil, and {"j": JSON} for any other Go type, which
// decodes as plain JSON (numbers as float64).
type value struct{ v any }

func (v value) MarshalJSON() ([]byte, error) {
	var o map[string]any
	switch x := v.v.(type) {
	case nil:
		return []byte("null"), nil
	case string:
		// The common case, written without a map: the same bytes.
		q, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return append(append([]byte(`{"s":`), q...), '}'), nil
	case bool:
		o = map[string]any{"b": x}
	case int:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case int8:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case int16:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case int32:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case int64:
		o = map[string]any{"i": strconv.FormatInt(x, 10)}
	case uint8:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case uint16:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case uint32:
		o = map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	case uint:
		o = uintDoc(uint64(x))
	case uint64:
		o = uintDoc(x)
	case float32:
		o = map[string]any{"d": strconv.FormatFloat(float64(x), 'g', -1, 64)}
	case float64:
		o = map[string]any{"d": strconv.FormatFloat(x, 'g', -1, 64)}
	case []byte:
		o = map[string]any{"y": base64.StdEncoding.EncodeToString(x)}
	case []any:
		a := make([]value, len(x))
		for i, e := range x {
			a[i] = value{e}
		}
		o = map[string]any{"a": a}
	case map[string]any:
		m := make(map[string]value, len(x))
		for k, e := range x {
			m[k] = value{e}
		}
		o = map[string]any{"m": m}
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("attribute value of type %T: %w", x, err)
		}
		o = map[string]any{"j": json.RawMessage(b)}
	}
	return json.Marshal(o)
}

// plainString returns the string of a value document {"s":"..."} whose
// text needs no unescaping (no quote, backslash or control character,
// valid UTF-8): most attribute values, read on every agent report, here
// without the three JSON parses of the general path.
func plainString(b []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"s":`))
	if !ok {
		return "", false
	}
	rest = bytes.TrimLeft(rest, " ") // PostgreSQL's jsonb text has a space here
	if len(rest) < 3 || rest[0] != '"' || !bytes.HasSuffix(rest, []byte(`"}`)) {
		return "", false
	}
	text := rest[1 : len(rest)-2]
	for _, c := range text {
		if c == '"' || c == '\\' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(text) {
		return "", false
	}
	return string(text), true
}

func uintDoc(x uint64) map[string]any {
	if x <= math.MaxInt64 {
		return map[string]any{"i": strconv.FormatInt(int64(x), 10)}
	}
	return map[string]any{"u": strconv.FormatUint(x, 10)}
}

func (v *value) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		v.v = nil
		return nil
	}
	if s, ok := plainString(b); ok {
		v.v = s
		return nil
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	if len(o) != 1 {
		return errors.New("attribute value must have exactly one type key")
	}
	for k, raw := range o {
		switch k {
		case "s":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			v.v = s
		case "b":
			var x bool
			if err := json.Unmarshal(raw, &x); err != nil {
				return err
			}
			v.v = x
		case "i", "u", "d":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			var err error
			switch k {
			case "i":
				v.v, err = strconv.ParseInt(s, 10, 64)
			case "u":
				v.v, err = strconv.ParseUint(s, 10, 64)
			default:
				v.v, err = strconv.ParseFloat(s, 64)
			}
			if err != nil {
				return fmt.Errorf("attribute value %q: %w", s, err)
			}
		case "y":
			var x []byte
			if err := json.Unmarshal(raw, &x); err != nil {
				return err
			}
			if x == nil {
				x = []byte{}
			}
			v.v = x
		case "a":
			var a []value
			if err := json.Unmarshal(raw, &a); err != nil {
				return err
			}
			out := make([]any, len(a))
			for i, e := range a {
				out[i] = e.v
			}
			v.v = out
		case "m":
			var m map[string]value
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = e.v
			}
			v.v = out
		case "j":
			var x any
			if err := json.Unmarshal(raw, &x); err != nil {
				return err
			}
			v.v = x
		default:
			return fmt.Errorf("unknown attribute value type %q", k)
		}
	}
	return nil
}

// EncodeFiles returns the JSON form of a config's files (binary bodies are
// base64, see steward.ConfigFile.MarshalJSON).
func EncodeFiles(name string, files steward.ConfigMap) ([]byte, error) {
	b, err := json.Marshal(files)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "config %q cannot be stored: %v", name, err)
	}
	return b, nil
}

// DecodeFiles decodes what EncodeFiles wrote; EINTERNAL naming the config
// version when the stored document is corrupt.
func DecodeFiles(name string, version int, b []byte) (steward.ConfigMap, error) {
	var m steward.ConfigMap
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "stored config %q version %d is corrupt: %v", name, version, err)
	}
	return m, nil
}

// EncodeDetails returns the JSON of an event's details, nil for none.
func EncodeDetails(e *steward.Event) ([]byte, error) {
	if e.Details == nil {
		return nil, nil
	}
	b, err := json.Marshal(e.Details)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "event %q details cannot be stored: %v", e.Type, err)
	}
	return b, nil
}

// DecodeDetails decodes event details as plain JSON (objects become
// map[string]any, numbers float64); EINTERNAL naming the event if corrupt.
func DecodeDetails(id int64, b []byte) (any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "stored event %d has corrupt details: %v", id, err)
	}
	return v, nil
}

// CheckPage rejects a negative offset or limit (EINVALID).
func CheckPage(offset, limit int) error {
	if offset < 0 || limit < 0 {
		return steward.Errorf(steward.EINVALID, "offset and limit must be >= 0 (got %d, %d)", offset, limit)
	}
	return nil
}

// SelectPage keeps the agents sel matches (agents must be ordered by id),
// then applies offset and limit (0: no limit). It returns the page and the
// number of matches before paging.
func SelectPage(agents []*steward.Agent, sel steward.Selector, offset, limit int) ([]*steward.Agent, int) {
	matched := agents[:0]
	for _, a := range agents {
		if sel.MatchLabels(a) {
			matched = append(matched, a)
		}
	}
	total := len(matched)
	if offset >= total {
		return []*steward.Agent{}, total
	}
	matched = matched[offset:]
	if limit > 0 && limit < len(matched) {
		matched = matched[:limit]
	}
	return matched, total
}

// SortedIDs returns the keys of seen in a fixed order, so concurrent batches
// lock rows in the same order.
func SortedIDs[V any](seen map[steward.InstanceUID]V) []steward.InstanceUID {
	ids := make([]steward.InstanceUID, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	return ids
}

// SplitEffectiveConfig takes a non-empty effective config out of an agent
// document written before config bodies were stored apart (migration 10):
// it returns the document without it, the config's hash and files. An
// absent or empty effective config stays in the document (hash nil).
func SplitEffectiveConfig(doc []byte) ([]byte, []byte, steward.ConfigMap, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, nil, nil, err
	}
	raw, ok := m["effective_config"]
	if !ok {
		return doc, nil, nil, nil
	}
	var files steward.ConfigMap
	if err := json.Unmarshal(raw, &files); err != nil {
		return nil, nil, nil, err
	}
	if len(files) == 0 {
		return doc, nil, nil, nil
	}
	delete(m, "effective_config")
	out, err := json.Marshal(m)
	return out, files.Hash(), files, err
}
