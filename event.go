package steward

import (
	"context"
	"strings"
	"time"
)

// Event types recorded in an agent's history and published to subscribers.
const (
	EventAgentConnected     = "agent.connected"
	EventAgentDisconnected  = "agent.disconnected"
	EventAgentUpdated       = "agent.updated"       // reported state changed
	EventAgentHealth        = "agent.health"        // healthy flipped
	EventRemoteConfigStatus = "agent.config_status" // APPLYING/APPLIED/FAILED
	EventRemoteConfigSent   = "agent.config_sent"
	EventCommandSent        = "agent.command_sent"
	EventCustomMessage      = "agent.custom_message"
	EventPackageStatus      = "agent.package_status"
	EventConfigChanged      = "config.changed"
	EventAssignmentChanged  = "assignment.changed"
	EventAgentDeleted       = "agent.deleted"
)

// Event is something that happened to an agent or to the fleet's desired
// state. AgentID is zero for fleet-wide events.
type Event struct {
	ID      int64       `json:"id"`
	Type    string      `json:"type"`
	AgentID InstanceUID `json:"agent_id"`
	Message string      `json:"message"`
	Details any         `json:"details,omitempty"`
	Time    time.Time   `json:"time"`
}

// EventFilter narrows event queries.
type EventFilter struct {
	AgentID *InstanceUID
	Types   []string
	Since   time.Time
	Limit   int
}

// EventBus fans events out to live subscribers (the UI's server-sent events,
// other replicas). Publish never blocks: a subscriber too slow to keep up
// loses events and is told so by a closed channel.
type EventBus interface {
	Publish(e *Event)
	// Subscribe returns a channel of events until ctx ends.
	Subscribe(ctx context.Context) <-chan *Event
}

// EventRolloutChanged records a rollout starting, advancing, pausing,
// completing or rolling back.
const EventRolloutChanged = "rollout.changed"

// EventRolloutProgress is published, and not stored, when a running
// rollout's measured progress changes without its state or stage
// changing (Details: "rollout", "stage", "progress"): the console's live
// view, not the event log.
const EventRolloutProgress = "rollout.progress"

// EventReplicaLost records that a server replica stopped renewing its lease
// and that its agents were marked offline.
const EventReplicaLost = "replica.lost"

// EventConnectionSettingsSent records connection settings (own telemetry,
// heartbeat, certificate) offered to an agent.
const EventConnectionSettingsSent = "agent.connection_settings_sent"

// EventSyncChanged is published when an agent's sync state changes
// (Details: "state", "previous", "desired", "running", "error").
const EventSyncChanged = "agent.sync"

// FirstLine returns the first non-empty line of s, trimmed, with " …"
// when more lines follow: event messages are one line (details keep the
// whole text).
func FirstLine(s string) string {
	s = strings.TrimSpace(s)
	first, rest, more := strings.Cut(s, "\n")
	first = strings.TrimSpace(first)
	if more && strings.TrimSpace(rest) != "" {
		return first + " …"
	}
	return first
}
