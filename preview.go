package steward

import "context"

// Change is a change to configs, assignments or rollouts that can be
// previewed before it is made: exactly one field is set.
type Change struct {
	// Config is a new version of a config (Name and Files); assignments
	// that follow the config's latest version would get it.
	Config *Config `json:"config,omitempty"`
	// Assignment is created, or replaces the one of the same name.
	Assignment *Assignment `json:"assignment,omitempty"`
	// Rollout is a rollout (new, or running, by name) at stage
	// Rollout.Stage: the agents it reaches up to that stage get ToVersion.
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Preview says what a Change would do, without doing it.
type Preview struct {
	// Matched counts the agents the change reaches (those the changed
	// assignments or rollout stage select); Changed counts those among them
	// whose desired config would change.
	Matched int `json:"matched"`
	Changed int `json:"changed"`
	// Agents is a page (Offset/Limit of PreviewOptions) of the changed
	// agents, ordered by id.
	Agents []*PreviewAgent `json:"agents"`
	// Findings validate every distinct desired config the changed agents
	// would get (ValidateConfig), or the config alone when no agent would
	// change.
	Findings []Finding `json:"findings"`
	// Missing counts the changed agents that lack components the config
	// defines; MissingAgents lists the first of them (up to
	// MaxMissingListed). Unchecked counts changed agents that reported no
	// AvailableComponents, so could not be checked.
	Missing       int             `json:"missing"`
	MissingAgents []*AgentMissing `json:"missing_agents"`
	Unchecked     int             `json:"unchecked"`
	// Blocked: an error finding or a missing component. The change is
	// refused unless it is explicitly overridden.
	Blocked bool `json:"blocked"`
}

// MaxMissingListed bounds Preview.MissingAgents.
const MaxMissingListed = 100

// PreviewAgent is one agent a change would reconfigure.
type PreviewAgent struct {
	ID   InstanceUID `json:"id"`
	Name string      `json:"name,omitempty"` // service name or host name
	// Online is whether it is connected now (an offline agent gets the
	// change when it comes back).
	Online bool `json:"online"`
	// CurrentHash is the desired config's hash now; DesiredHash after the
	// change (empty: nothing would be assigned).
	CurrentHash Hash `json:"current_hash,omitempty"`
	DesiredHash Hash `json:"desired_hash,omitempty"`
	// Desired is the config map it would be offered; Effective is what it
	// reports running now (nil if it never reported one).
	Desired   ConfigMap  `json:"-"`
	Effective *ConfigMap `json:"-"`
	// Diff is a unified diff of Desired against Effective, as the agent
	// page shows it; DiffNote says why it is empty (nothing reported, or
	// equal). Both are filled by the transport, which owns the diff.
	Diff     string `json:"diff"`
	DiffNote string `json:"diff_note,omitempty"`
	// Missing lists the components the config defines that it lacks.
	Missing []Component `json:"missing,omitempty"`
}

// AgentMissing names an agent and the components it lacks.
type AgentMissing struct {
	ID      InstanceUID `json:"id"`
	Name    string      `json:"name,omitempty"`
	Missing []Component `json:"missing"`
}

// PreviewOptions page Preview.Agents (Limit 0: 20).
type PreviewOptions struct {
	Offset int
	Limit  int
}

// PreviewService previews changes.
type PreviewService interface {
	// Preview computes what ch would do. EINVALID for a malformed change,
	// ENOTFOUND when it names a config, version or assignment that does
	// not exist.
	Preview(ctx context.Context, ch Change, opts PreviewOptions) (*Preview, error)
}
