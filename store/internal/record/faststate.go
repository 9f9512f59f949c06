package record

import (
	"encoding/hex"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward"
)

// decodeStateFast decodes an agent's state document (EncodeState) into st
// when it holds only what Steward writes there, in the form it writes it:
// no null, no key twice, no string that needs unescaping. It reports false
// for anything else, and then st is to be decoded by encoding/json. Every
// report that changes an agent's state reads the agent first, and
// encoding/json spent four fifths of that decoding on this small document
// (hashes, times and the sync history, through reflection and a second
// pass of its scanner).
func decodeStateFast(b []byte, st *stateDoc) bool {
	s := docScanner{b: b}
	return s.object(stateKeys[:], func(k int) (ok bool) {
		switch k {
		case 0:
			st.Health, ok = s.health(0)
		case 1:
			st.RemoteConfigStatus, ok = s.configStatus()
		case 2:
			st.SequenceNum, ok = s.uint()
		case 3:
			st.Transport, ok = s.str()
		case 4:
			st.RemoteAddr, ok = s.str()
		case 5:
			st.ConnectedAt, ok = s.time()
		case 6:
			st.Sync, ok = s.sync()
		}
		return ok
	}) && s.end()
}

var stateKeys = [...]string{"health", "remote_config_status", "sequence_num", "transport", "remote_addr", "connected_at", "sync"}

// object reads an object whose keys are each one of keys, at most once,
// and calls value with the key's index to read its value.
func (s *docScanner) object(keys []string, value func(k int) bool) bool {
	var seen uint32
	return s.seq('{', '}', func() bool {
		key, ok := s.raw()
		k := slices.IndexFunc(keys, func(k string) bool { return k == string(key) })
		if !ok || k < 0 || seen&(1<<k) != 0 || !s.next(':') {
			return false
		}
		seen |= 1 << k
		return value(k)
	})
}

// maxHealthDepth bounds the nesting of component health the fast path
// reads; a deeper one is left to encoding/json.
const maxHealthDepth = 16

var healthKeys = [...]string{"healthy", "start_time", "status_time", "status", "last_error", "components"}

func (s *docScanner) health(depth int) (*steward.ComponentHealth, bool) {
	if depth > maxHealthDepth {
		return nil, false
	}
	h := &steward.ComponentHealth{}
	ok := s.object(healthKeys[:], func(k int) (ok bool) {
		switch k {
		case 0:
			h.Healthy, ok = s.bool()
		case 1:
			h.StartTime, ok = s.time()
		case 2:
			h.StatusTime, ok = s.time()
		case 3:
			h.Status, ok = s.str()
		case 4:
			h.LastError, ok = s.str()
		case 5:
			h.Components = map[string]*steward.ComponentHealth{}
			ok = s.seq('{', '}', func() bool {
				name, ok := s.str()
				if _, dup := h.Components[name]; !ok || dup || !s.next(':') {
					return false
				}
				h.Components[name], ok = s.health(depth + 1)
				return ok
			})
		}
		return ok
	})
	return h, ok
}

var configStatusKeys = [...]string{"last_remote_config_hash", "status", "error_message"}

func (s *docScanner) configStatus() (*steward.RemoteConfigStatus, bool) {
	rcs := &steward.RemoteConfigStatus{}
	ok := s.object(configStatusKeys[:], func(k int) (ok bool) {
		var v string
		switch k {
		case 0:
			rcs.LastRemoteConfigHash, ok = s.hash()
		case 1:
			v, ok = s.str()
			rcs.Status = steward.RemoteConfigState(v)
		case 2:
			rcs.ErrorMessage, ok = s.str()
		}
		return ok
	})
	return rcs, ok
}

var syncKeys = [...]string{"state", "desired", "running", "running_hash", "failed_hash", "error", "since", "history"}

func (s *docScanner) sync() (*steward.AgentSync, bool) {
	sy := &steward.AgentSync{}
	ok := s.object(syncKeys[:], func(k int) (ok bool) {
		var v string
		switch k {
		case 0:
			v, ok = s.str()
			sy.State = steward.SyncState(v)
		case 1:
			sy.Desired = &steward.KnownConfig{}
			ok = s.known(sy.Desired)
		case 2:
			sy.Running = &steward.KnownConfig{}
			ok = s.known(sy.Running)
		case 3:
			sy.RunningHash, ok = s.hash()
		case 4:
			sy.FailedHash, ok = s.hash()
		case 5:
			sy.Error, ok = s.str()
		case 6:
			sy.Since, ok = s.time()
		case 7:
			sy.History = []steward.KnownConfig{}
			ok = s.seq('[', ']', func() bool {
				sy.History = append(sy.History, steward.KnownConfig{})
				return s.known(&sy.History[len(sy.History)-1])
			})
		}
		return ok
	})
	return sy, ok
}

var knownKeys = [...]string{"hash", "configs"}

func (s *docScanner) known(kc *steward.KnownConfig) bool {
	return s.object(knownKeys[:], func(k int) (ok bool) {
		if k == 0 {
			kc.Hash, ok = s.hash()
			return ok
		}
		kc.Configs = steward.ConfigRefs{}
		return s.seq('[', ']', func() bool {
			kc.Configs = append(kc.Configs, steward.ConfigRef{})
			return s.configRef(&kc.Configs[len(kc.Configs)-1])
		})
	})
}

var configRefKeys = [...]string{"assignment", "config", "version"}

func (s *docScanner) configRef(r *steward.ConfigRef) bool {
	return s.object(configRefKeys[:], func(k int) (ok bool) {
		switch k {
		case 0:
			r.Assignment, ok = s.str()
		case 1:
			r.Config, ok = s.str()
		case 2:
			r.Version, ok = s.int()
		}
		return ok
	})
}

// hash reads a hash as steward.Hash's UnmarshalJSON does, from a string
// without escapes.
func (s *docScanner) hash() (steward.Hash, bool) {
	v, ok := s.raw()
	switch {
	case !ok:
		return nil, false
	case len(v) == 0:
		return nil, true
	}
	if len(v)%2 == 0 {
		h := make(steward.Hash, len(v)/2)
		if _, err := hex.Decode(h, v); err == nil {
			return h, true
		}
	}
	h, err := steward.ParseHash(string(v)) // base64, from older documents
	return h, err == nil
}

// time reads a time as time.Time's UnmarshalJSON does, from a string
// without escapes.
func (s *docScanner) time() (time.Time, bool) {
	s.space()
	start := s.i
	if _, ok := s.raw(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	return t, t.UnmarshalJSON(s.b[start:s.i]) == nil
}

func (s *docScanner) bool() (bool, bool) {
	s.space()
	for _, lit := range [...]string{"false", "true"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return lit == "true", true
		}
	}
	return false, false
}

// int reads an int in JSON's integer form: an optional minus and digits
// without a leading zero.
func (s *docScanner) int() (int, bool) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
		if s.i == len(s.b) || s.b[s.i] < '0' || s.b[s.i] > '9' {
			return 0, false
		}
	}
	n, ok := s.uint()
	switch {
	case !ok || n > uint64(math.MaxInt)+1 || (!neg && n > math.MaxInt):
		return 0, false
	case neg && n > 0:
		return -int(n-1) - 1, true
	}
	return int(n), true
}

// encodeStateFast appends what json.Marshal writes for st to b, when
// JSON writes every string in st as it is (no control character, quote,
// backslash, <, >, &, U+2028, U+2029 or invalid UTF-8) and every time's
// year has four digits; it reports false for anything else,
// and then st is to be encoded by encoding/json. Every state write (each
// acknowledgement, connect and disconnect) encodes one.
func encodeStateFast(b []byte, st *stateDoc) ([]byte, bool) {
	e := stateEncoder{b: append(b, '{'), ok: true}
	if st.Health != nil {
		e.key("health")
		e.health(st.Health)
	}
	if rcs := st.RemoteConfigStatus; rcs != nil {
		e.key("remote_config_status")
		e.b = append(e.b, '{')
		e.optHash("last_remote_config_hash", rcs.LastRemoteConfigHash)
		e.key("status")
		e.str(string(rcs.Status))
		e.optStr("error_message", rcs.ErrorMessage)
		e.b = append(e.b, '}')
	}
	if st.SequenceNum != 0 {
		e.key("sequence_num")
		e.b = strconv.AppendUint(e.b, st.SequenceNum, 10)
	}
	e.optStr("transport", st.Transport)
	e.optStr("remote_addr", st.RemoteAddr)
	e.optTime("connected_at", st.ConnectedAt)
	if st.Sync != nil {
		e.key("sync")
		e.sync(st.Sync)
	}
	e.b = append(e.b, '}')
	return e.b, e.ok
}

// stateEncoder writes JSON as encoding/json does; ok turns false at the
// first value it cannot write so.
type stateEncoder struct {
	b  []byte
	ok bool
}

// key writes an object key, after a comma unless it is the first.
func (e *stateEncoder) key(k string) {
	e.item()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

// item writes the comma before an object's or array's next item.
func (e *stateEncoder) item() {
	if c := e.b[len(e.b)-1]; c != '{' && c != '[' {
		e.b = append(e.b, ',')
	}
}

// str writes s when JSON needs no escape for it (nor json.Marshal's
// HTML-safe ones, nor its replacement of invalid UTF-8).
func (e *stateEncoder) str(s string) {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			e.ok = false
			return
		case c >= 0x80:
			ascii = false
		}
	}
	if !ascii && (!utf8.ValidString(s) || strings.ContainsRune(s, '\u2028') || strings.ContainsRune(s, '\u2029')) {
		e.ok = false
		return
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

// optStr, optTime and optHash write a field left out when empty
// (omitempty, omitzero).
func (e *stateEncoder) optStr(k, v string) {
	if v != "" {
		e.key(k)
		e.str(v)
	}
}

func (e *stateEncoder) optTime(k string, t time.Time) {
	if !t.IsZero() {
		e.key(k)
		e.time(t)
	}
}

func (e *stateEncoder) optHash(k string, h steward.Hash) {
	if len(h) > 0 {
		e.key(k)
		e.hash(h)
	}
}

func (e *stateEncoder) hash(h steward.Hash) {
	e.b = append(e.b, '"')
	e.b = hex.AppendEncode(e.b, h)
	e.b = append(e.b, '"')
}

// time writes t as time.Time's MarshalJSON does (RFC 3339 with the
// nanoseconds it has), for a year of four digits and a zone less than a
// day from UTC (MarshalJSON refuses the others).
func (e *stateEncoder) time(t time.Time) {
	if _, off := t.Zone(); t.Year() < 0 || t.Year() > 9999 || off <= -24*3600 || off >= 24*3600 {
		e.ok = false
		return
	}
	e.b = append(e.b, '"')
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	e.b = append(e.b, '"')
}

func (e *stateEncoder) health(h *steward.ComponentHealth) {
	e.b = append(e.b, '{')
	e.key("healthy")
	e.b = strconv.AppendBool(e.b, h.Healthy)
	e.optTime("start_time", h.StartTime)
	e.optTime("status_time", h.StatusTime)
	e.optStr("status", h.Status)
	e.optStr("last_error", h.LastError)
	if len(h.Components) > 0 {
		e.key("components")
		e.b = append(e.b, '{')
		for _, name := range slices.Sorted(maps.Keys(h.Components)) {
			e.item()
			e.str(name)
			e.b = append(e.b, ':')
			if c := h.Components[name]; c != nil {
				e.health(c)
			} else {
				e.b = append(e.b, "null"...)
			}
		}
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, '}')
}

func (e *stateEncoder) sync(sy *steward.AgentSync) {
	e.b = append(e.b, '{')
	e.key("state")
	e.str(string(sy.State))
	if sy.Desired != nil {
		e.key("desired")
		e.known(sy.Desired)
	}
	if sy.Running != nil {
		e.key("running")
		e.known(sy.Running)
	}
	e.optHash("running_hash", sy.RunningHash)
	e.optHash("failed_hash", sy.FailedHash)
	e.optStr("error", sy.Error)
	e.optTime("since", sy.Since)
	if len(sy.History) > 0 {
		e.key("history")
		e.b = append(e.b, '[')
		for i := range sy.History {
			e.item()
			e.known(&sy.History[i])
		}
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, '}')
}

func (e *stateEncoder) known(k *steward.KnownConfig) {
	e.b = append(e.b, '{')
	e.key("hash")
	e.hash(k.Hash)
	e.key("configs")
	if k.Configs == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for _, r := range k.Configs {
			e.item()
			e.b = append(e.b, '{')
			e.key("assignment")
			e.str(r.Assignment)
			e.key("config")
			e.str(r.Config)
			e.key("version")
			e.b = strconv.AppendInt(e.b, int64(r.Version), 10)
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, '}')
}
