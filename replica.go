package steward

import (
	"context"
	"encoding/json"
	"time"
)

// Notice is a message between server replicas that share a database: a
// change of desired state to reconcile, a command for an agent connected to
// another replica, or an event for the other replicas' live subscribers.
type Notice struct {
	Kind   string          `json:"kind"` // see the Notice* kinds
	Origin string          `json:"origin"`
	Agent  InstanceUID     `json:"agent,omitzero"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Notice kinds.
const (
	// NoticeDesired: configs, assignments or rollouts changed.
	NoticeDesired = "desired"
	// NoticeLabels: an agent's operator labels changed.
	NoticeLabels = "labels"
	// NoticeCommand: deliver Data (a Command) to Agent if connected here.
	NoticeCommand = "command"
	// NoticeEvent: Data is an Event to publish to local subscribers.
	NoticeEvent = "event"
	// NoticeEvents: Data is a JSON array of Events to publish to local
	// subscribers, in order (events are forwarded in batches). Sent only
	// while another replica is watching (NoticeWatching).
	NoticeEvents = "events"
	// NoticeWatching: the origin has live event subscribers and wants the
	// others' events; repeated while it has them.
	NoticeWatching = "watching"
	// NoticePending: Data lists the summary state of agents the origin
	// has not yet written, each with the generation of the origin's
	// group-commit flush that writes it.
	NoticePending = "pending"
	// NoticeWritten: Data is the generation up to which the origin has
	// written the states it announced as pending.
	NoticeWritten = "written"
)

// Command is an action for one agent, carried in a NoticeCommand.
type Command struct {
	Type          string         `json:"type"` // "restart" or "custom_message"
	CustomMessage *CustomMessage `json:"custom_message,omitempty"`
}

// Broadcaster carries notices between replicas (PostgreSQL LISTEN/NOTIFY in
// store/postgres). A single server needs none.
type Broadcaster interface {
	// Broadcast sends n to every replica, this one included; delivery is
	// best effort (reconciliation is level-triggered and periodic, so a
	// lost desired-state notice only delays a change).
	Broadcast(ctx context.Context, n Notice) error
	// Listen calls fn for each notice until ctx ends, reconnecting after
	// database failures; it returns ctx's error. Whenever the subscription
	// (re)starts it delivers a NoticeDesired with an empty Origin, since
	// notices sent before were missed.
	Listen(ctx context.Context, fn func(Notice)) error
}

// ReplicaStore records which server replicas are alive, so that the agents
// of a replica that died without a goodbye are marked offline by the others.
// It is a lease in the shared database, not a consensus protocol.
type ReplicaStore interface {
	// ReplicaAlive records that replica was alive at at. renewed reports
	// whether replica still held its lease; false when it had none: its
	// first start, or a lease that lapsed and was reaped (its agents were
	// then marked offline, and a live replica must mark them online again).
	ReplicaAlive(ctx context.Context, replica string, at time.Time) (renewed bool, err error)
	// ReapReplicas forgets replicas last seen before before, marks their
	// agents offline, and returns their names.
	ReapReplicas(ctx context.Context, before time.Time) ([]string, error)
}

// HeldAgentStore tells which agents a replica holds as stored: the control
// plane finds with it the agents connected to it that the store shows
// offline or held by another replica (an offline mark of an earlier,
// half-open connection on another replica can land after the connect it
// lost to), and marks them online again.
type HeldAgentStore interface {
	// NotHeldBy returns those of ids whose stored agent is offline or
	// names another replica; unknown ids are left out.
	NotHeldBy(ctx context.Context, replica string, ids []InstanceUID) ([]InstanceUID, error)
}
