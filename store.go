package steward

import (
	"context"
	"time"
)

// Store persists the fleet: agents, configs, assignments and events. The
// embedded default is store/sqlite; store/postgres serves several replicas.
// Every method is safe for concurrent use. Errors carry the codes above:
// ENOTFOUND for a missing row, ECONFLICT for a violated constraint,
// EUNAVAILABLE when the database cannot be reached (nothing was written).
type Store interface {
	// PutAgent inserts or replaces the whole agent row (labels included).
	PutAgent(ctx context.Context, a *Agent) error
	// PutAgents does what PutAgent does for each agent, in one transaction:
	// all are written or none (the control plane's group commit).
	PutAgents(ctx context.Context, agents []*Agent) error
	// TouchAgents records last-seen times and the sequence numbers of
	// those messages for many agents in one write (heartbeats are
	// batched; a full PutAgent is not needed for them).
	TouchAgents(ctx context.Context, seen map[InstanceUID]Seen) error
	// MarkOffline sets Online=false for every agent held by replica (all
	// replicas when replica is ""), e.g. at startup after a crash.
	MarkOffline(ctx context.Context, replica string, at time.Time) error
	// Agent returns one agent; ENOTFOUND if unknown.
	Agent(ctx context.Context, id InstanceUID) (*Agent, error)
	// Agents returns agents matching f (selector and search included), in
	// f's order (by id by default, ties by id), and the total number of
	// matches before Offset/Limit. EINVALID on a bad filter
	// (AgentFilter.Validate).
	Agents(ctx context.Context, f AgentFilter) ([]*Agent, int, error)
	// AgentsWith returns exactly what Agents would return once live were
	// written by PutAgents (the same matches, order, total and page),
	// without writing them: the control plane lists its unwritten
	// changes without waiting for them to be stored. The live agents on
	// the page are shallow copies; live is not changed.
	AgentsWith(ctx context.Context, f AgentFilter, live []*Agent) ([]*Agent, int, error)
	// DeleteAgent removes an agent and its events; ENOTFOUND if unknown.
	DeleteAgent(ctx context.Context, id InstanceUID) error

	// PutConfig stores c as the next version of c.Name unless its Hash
	// equals the latest version's, in which case the latest is returned.
	// It sets Version, Hash and CreatedAt on the returned value.
	PutConfig(ctx context.Context, c *Config) (*Config, error)
	// Config returns a version (0: latest); ENOTFOUND if missing.
	Config(ctx context.Context, name string, version int) (*Config, error)
	// Configs returns the latest version of each config, by name.
	Configs(ctx context.Context) ([]*Config, error)
	// ConfigHistory returns every version of name, newest first; ENOTFOUND
	// if there is none.
	ConfigHistory(ctx context.Context, name string) ([]*Config, error)
	// DeleteConfig removes every version; ENOTFOUND if missing, ECONFLICT
	// while an assignment names it.
	DeleteConfig(ctx context.Context, name string) error

	// PutAssignment creates or replaces by name; ENOTFOUND if the config (or
	// the pinned version) does not exist.
	PutAssignment(ctx context.Context, a *Assignment) (*Assignment, error)
	Assignment(ctx context.Context, name string) (*Assignment, error)
	Assignments(ctx context.Context) ([]*Assignment, error)
	// DeleteAssignment: ENOTFOUND if missing.
	DeleteAssignment(ctx context.Context, name string) error

	// AppendEvents stores events and sets their IDs.
	AppendEvents(ctx context.Context, events ...*Event) error
	// Events returns events matching f, newest first.
	Events(ctx context.Context, f EventFilter) ([]*Event, error)
	// PruneEvents deletes events older than before; returns how many.
	PruneEvents(ctx context.Context, before time.Time) (int, error)
	// PruneConfigBodies deletes config bodies (stored once per content
	// hash, shared by config versions and agents' effective configs) that
	// nothing references and nothing used since before; returns how many.
	// A store may keep bodies longer than before asks (sqlstore keeps each
	// for MinBodyAge after its last use, so that writes running at the
	// same time on other replicas never lose the body they reference).
	PruneConfigBodies(ctx context.Context, before time.Time) (int, error)

	Close() error
}

// AgentStateStore is implemented by stores that can write an agent's state
// (the fields PutAgentStates lists) without the rest of it: the control
// plane's group commit uses it for what changes most (connects,
// disconnects, config acknowledgements, sync states) when nothing else
// changed.
type AgentStateStore interface {
	// PutAgentStates writes, in one transaction, the state of each
	// stored agent — Online, Replica, DisconnectedAt, UpdatedAt, LastSeen,
	// SequenceNum, Transport, RemoteAddr, ConnectedAt, Health,
	// RemoteConfigStatus, Sync, and EffectiveConfig when not empty —
	// keeping every other field as stored: the caller asserts that only
	// those changed since the agent was last written (SameReport). An
	// agent not stored is written whole, as by PutAgents. Like PutAgents
	// it writes back CreatedAt and UpdatedAt.
	PutAgentStates(ctx context.Context, agents []*Agent) error
}

// Seen is what a heartbeat changes of an agent: when it was last heard
// from, and the sequence_num of that message.
type Seen struct {
	At          time.Time
	SequenceNum uint64
}
