package steward

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// SyncState says how an agent's running configuration relates to the one
// Steward wants it to run.
type SyncState string

const (
	// SyncInSync: the agent runs its desired config (APPLIED), or nothing
	// is desired and it runs nothing Steward offered.
	SyncInSync SyncState = "in_sync"
	// SyncPending: the desired config is not yet acknowledged (offered,
	// or waiting for the agent).
	SyncPending SyncState = "pending"
	// SyncApplying: the agent reports APPLYING for the desired config.
	SyncApplying SyncState = "applying"
	// SyncFailed: the agent reports FAILED for the desired config.
	SyncFailed SyncState = "failed"
	// SyncRolledBack: the desired config failed and the agent runs an
	// earlier config Steward offered it.
	SyncRolledBack SyncState = "rolled_back"
	// SyncDrifted: the agent runs a remote config hash Steward never
	// offered it.
	SyncDrifted SyncState = "drifted"
	// SyncOffline: the agent is not connected.
	SyncOffline SyncState = "offline"
)

// SyncStates lists every state, in the order the UI shows them.
var SyncStates = []SyncState{SyncInSync, SyncPending, SyncApplying, SyncFailed, SyncRolledBack, SyncDrifted, SyncOffline}

// ParseSyncState accepts a state name; EINVALID otherwise.
func ParseSyncState(s string) (SyncState, error) {
	for _, st := range SyncStates {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(SyncStates))
	for i, st := range SyncStates {
		names[i] = string(st)
	}
	return "", Errorf(EINVALID, "unknown sync state %q: want one of %s", s, strings.Join(names, ", "))
}

// ConfigRef names one config version an assignment contributes to an
// agent's remote config.
type ConfigRef struct {
	Assignment string `json:"assignment"`
	Config     string `json:"config"`
	Version    int    `json:"version"`
}

// String returns "config@version".
func (r ConfigRef) String() string { return r.Config + "@" + strconv.Itoa(r.Version) }

// ConfigRefs is the composition of one remote config: every contributing
// config version, highest priority first. Empty: the empty config Steward
// offers an agent whose last assignment was removed.
type ConfigRefs []ConfigRef

// String returns the refs joined by ", " ("(none)" when empty).
func (rs ConfigRefs) String() string {
	if len(rs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// KnownConfig is a remote config Steward wanted an agent to run: its hash
// and composition.
type KnownConfig struct {
	Hash    Hash       `json:"hash"`
	Configs ConfigRefs `json:"configs"`
}

// SyncHistoryLen bounds AgentSync.History.
const SyncHistoryLen = 8

// AgentSync is an agent's sync state, derived by DeriveSync whenever what
// it reports or what it should run changes, and stored with the agent.
type AgentSync struct {
	State SyncState `json:"state"`
	// Desired is what the agent should run; nil when nothing is assigned
	// (or the agent does not accept remote config).
	Desired *KnownConfig `json:"desired,omitempty"`
	// Running is what the agent reported APPLIED last, resolved from its
	// hash; RunningHash is set and Running nil when the hash is not one
	// Steward offered ("not from Steward"); both empty when the agent
	// reported no remote config.
	Running     *KnownConfig `json:"running,omitempty"`
	RunningHash Hash         `json:"running_hash,omitempty"`
	// FailedHash is the desired config the agent reported FAILED, with
	// its message; kept after the agent rolls back, until the desired
	// config changes.
	FailedHash Hash   `json:"failed_hash,omitempty"`
	Error      string `json:"error,omitempty"`
	// Since is when State last changed.
	Since time.Time `json:"since,omitzero"`
	// History holds the last SyncHistoryLen desired configs, newest
	// first: what a reported hash is resolved against.
	History []KnownConfig `json:"history,omitempty"`
}

// FromSteward reports whether the running config is one Steward offered.
func (s *AgentSync) FromSteward() bool { return s != nil && s.Running != nil }

// SyncState returns the agent's sync state: offline when it is not
// connected, else the derived one (pending before the first derivation).
func (a *Agent) SyncState() SyncState {
	switch {
	case !a.Online:
		return SyncOffline
	case a.Sync == nil:
		return SyncPending
	}
	return a.Sync.State
}

// DeriveSync computes an agent's sync state from the previous one (nil at
// first), what it should run (nil: nothing), its reported remote config
// status (nil: none reported) and whether it is connected. It does not
// modify prev.
//
// The running config is the hash last reported APPLIED; APPLYING or FAILED
// for a hash leave it as it was. A FAILED desired config is remembered
// (FailedHash) until the desired config changes, so that an agent that
// then reports APPLIED for an earlier hash — an automatic rollback — is
// rolled_back, not in_sync.
func DeriveSync(prev *AgentSync, desired *KnownConfig, rcs *RemoteConfigStatus, online bool, now time.Time) *AgentSync {
	s := &AgentSync{Desired: desired}
	if prev != nil {
		s.Running, s.RunningHash = prev.Running, prev.RunningHash
		s.FailedHash, s.Error = prev.FailedHash, prev.Error
		s.History = prev.History
	}
	if desired != nil && (len(s.History) == 0 || !bytes.Equal(s.History[0].Hash, desired.Hash)) {
		h := make([]KnownConfig, 0, SyncHistoryLen)
		h = append(h, *desired)
		for _, k := range s.History {
			if len(h) == SyncHistoryLen {
				break
			}
			if !bytes.Equal(k.Hash, desired.Hash) {
				h = append(h, k)
			}
		}
		s.History = h
	}
	var reported Hash
	var status RemoteConfigState
	if rcs != nil {
		reported, status = rcs.LastRemoteConfigHash, rcs.Status
	}
	switch status {
	case RemoteConfigApplied:
		s.RunningHash = reported
		s.Running = s.known(reported)
		if bytes.Equal(reported, s.FailedHash) { // a retry succeeded
			s.FailedHash, s.Error = nil, ""
		}
	case RemoteConfigFailed:
		s.FailedHash, s.Error = reported, rcs.ErrorMessage
	}
	// A failure is about one desired config; another one starts afresh.
	if len(s.FailedHash) > 0 && (desired == nil || !bytes.Equal(s.FailedHash, desired.Hash)) {
		s.FailedHash, s.Error = nil, ""
	}
	s.State = s.state(desired, reported, status, online)
	s.Since = now
	if prev != nil && prev.State == s.State && !prev.Since.IsZero() {
		s.Since = prev.Since
	}
	return s
}

// Resolve returns the remote config with hash h among the last ones Steward
// wanted the agent to run (History); nil when it is none of them. Nil-safe.
func (s *AgentSync) Resolve(h Hash) *KnownConfig {
	if s == nil {
		return nil
	}
	return s.known(h)
}

// known resolves a hash against the history; nil if Steward never wanted
// the agent to run it.
func (s *AgentSync) known(h Hash) *KnownConfig {
	if len(h) == 0 {
		return nil
	}
	for i := range s.History {
		if bytes.Equal(s.History[i].Hash, h) {
			k := s.History[i]
			return &k
		}
	}
	return nil
}

func (s *AgentSync) state(desired *KnownConfig, reported Hash, status RemoteConfigState, online bool) SyncState {
	runsForeign := len(s.RunningHash) > 0 && s.Running == nil
	switch {
	case !online:
		return SyncOffline
	case desired == nil:
		if runsForeign {
			return SyncDrifted
		}
		return SyncInSync
	case bytes.Equal(s.RunningHash, desired.Hash) && status == RemoteConfigApplied:
		return SyncInSync
	case len(s.FailedHash) > 0: // FailedHash is the desired hash (see DeriveSync)
		if s.Running != nil && status == RemoteConfigApplied && !bytes.Equal(s.RunningHash, desired.Hash) {
			return SyncRolledBack
		}
		return SyncFailed
	case status == RemoteConfigApplying && bytes.Equal(reported, desired.Hash):
		return SyncApplying
	case runsForeign && status == RemoteConfigApplied:
		return SyncDrifted
	}
	return SyncPending
}
