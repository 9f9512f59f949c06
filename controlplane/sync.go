package controlplane

import (
	"bytes"
	"context"
	"time"

	"github.com/stewardhq/steward"
)

// Sync state (steward.AgentSync) is derived only when its inputs change,
// never per heartbeat:
//
//   - a report that changes the agent's stored state derives it again and
//     stores it with the report (applyReport);
//   - a change of what a connected agent should run (an assignment, a
//     config version, its labels, a rollout stage) is noticed by the
//     reconcile that offers the new config, which marks the agent; agents
//     still marked one FlushInterval later — they did not report anything
//     since, which would have derived it — are derived and stored by the
//     housekeeping flusher (flushSync);
//   - an offline agent's state is offline (steward.Agent.SyncState); its
//     next connection derives it again.

// syncDirty marks agent id's sync state as needing derivation.
func (s *Service) syncDirty(id steward.InstanceUID) {
	s.syncMu.Lock()
	if _, ok := s.syncMarked[id]; !ok {
		s.syncMarked[id] = time.Now()
	}
	s.syncMu.Unlock()
}

// syncClean unmarks agent id: its sync state was just derived and stored.
func (s *Service) syncClean(id steward.InstanceUID) {
	s.syncMu.Lock()
	delete(s.syncMarked, id)
	s.syncMu.Unlock()
}

// deriveSync sets a.Sync from the agent's session (what it should run) and
// its reported state, and reports the change as an event. want is the
// agent's wanted config (see desiredState.wantedConfig).
func (s *Service) deriveSync(a *steward.Agent, want *desiredConfig, now time.Time) {
	prev := a.Sync
	a.Sync = steward.DeriveSync(prev, want.known(), a.RemoteConfigStatus, true, now)
	if prev == nil || prev.State != a.Sync.State || !sameKnown(prev.Desired, a.Sync.Desired) || !bytes.Equal(prev.RunningHash, a.Sync.RunningHash) {
		d := map[string]any{"state": a.Sync.State, "desired": "", "running": ""}
		if prev != nil {
			d["previous"] = prev.State
		}
		if a.Sync.Desired != nil {
			d["desired"] = a.Sync.Desired.Configs.String()
		}
		if a.Sync.Running != nil {
			d["running"] = a.Sync.Running.Configs.String()
		} else if len(a.Sync.RunningHash) > 0 {
			d["running"] = "not from Steward (" + a.Sync.RunningHash.Short() + ")"
		}
		if a.Sync.Error != "" {
			d["error"] = a.Sync.Error
		}
		s.emit(&steward.Event{Type: steward.EventSyncChanged, AgentID: a.ID, Message: syncMessage(a.Sync, d["running"].(string)), Details: d})
	}
}

func sameKnown(a, b *steward.KnownConfig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Hash, b.Hash)
}

// flushSync derives and stores the sync state of connected agents marked
// at least FlushInterval ago (see syncDirty). Each agent is handled under
// its session lock, so a concurrent report cannot be overwritten.
func (s *Service) flushSync(ctx context.Context) {
	cutoff := time.Now().Add(-s.cfg.FlushInterval)
	var due []steward.InstanceUID
	s.syncMu.Lock()
	for id, at := range s.syncMarked {
		if at.Before(cutoff) {
			due = append(due, id)
			delete(s.syncMarked, id)
		}
	}
	s.syncMu.Unlock()
	for _, id := range due {
		if ctx.Err() != nil {
			return
		}
		if ss := s.lookup(id); ss != nil {
			s.storeSync(ctx, ss)
		}
	}
}

// storeSync derives a connected agent's sync state again and stores it when
// it changed.
func (s *Service) storeSync(ctx context.Context, ss *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return
	}
	a, err := s.getAgent(ctx, ss.id)
	if err != nil {
		if steward.ErrorCode(err) != steward.ENOTFOUND {
			s.log.Warn("sync state not derived", "agent", ss.id, "error", err)
			s.syncDirty(ss.id)
		}
		return
	}
	prev := a.Sync
	want := s.desired.Load().wantedConfig(ss.id, ss.labels, ss.caps, ss.reportedHash)
	s.deriveSync(a, want, time.Now().UTC())
	if prev != nil && prev.State == a.Sync.State && sameKnown(prev.Desired, a.Sync.Desired) {
		return
	}
	if err := s.putState(ctx, a); err != nil {
		s.log.Warn("sync state not stored", "agent", ss.id, "error", err)
		s.syncDirty(ss.id)
		return
	}
	ss.setFailedHash(a.Sync.FailedHash)
}

// syncMessage is the one-line message of a sync state change: the state
// and the config versions it is about ("failed: collector@3: <first line
// of the error>"; running is how the running config is named).
func syncMessage(s *steward.AgentSync, running string) string {
	desired := "nothing assigned"
	if s.Desired != nil {
		desired = s.Desired.Configs.String()
	}
	msg := string(s.State)
	switch s.State {
	case steward.SyncInSync:
		if s.Desired != nil {
			msg += ": runs " + desired
		} else {
			msg += ": " + desired
		}
	case steward.SyncPending, steward.SyncApplying:
		msg += ": " + desired
	case steward.SyncFailed:
		msg += ": " + desired
		if s.Error != "" {
			msg += ": " + steward.FirstLine(s.Error)
		}
	case steward.SyncRolledBack:
		msg += ": " + desired + " failed, runs " + running
	case steward.SyncDrifted:
		msg += ": runs " + running + ", desired " + desired
	}
	return msg
}
