package http

import (
	"bytes"
	"context"
	"net/http"
	"sort"

	"github.com/stewardhq/steward"
)

// AgentConfigResponse is the body of GET /api/v1/agents/{id}/config: which
// assignments apply to the agent, the config versions it should run and
// runs, and how its effective config differs from the desired one.
type AgentConfigResponse struct {
	// Assignments lists every assignment that applies to the agent, by
	// agent_id or by selector, highest priority first.
	Assignments []AgentAssignment `json:"assignments"`
	// Desired is the remote config Steward offers the agent; null when no
	// assignment applies.
	Desired *AgentConfigVersion `json:"desired"`
	// Running is the remote config the agent last reported applied; null
	// when it reported none.
	Running *AgentConfigVersion `json:"running"`
	// Diff is a unified diff from the desired files to the effective
	// config the agent reports; "" when they are equal or either is
	// missing (see DiffNote).
	Diff string `json:"diff"`
	// DiffNote says why there is no diff, when there is none.
	DiffNote string `json:"diff_note,omitempty"`
}

// AgentAssignment is an assignment that applies to one agent.
type AgentAssignment struct {
	*steward.Assignment
	// Match is "agent_id" (the assignment names this agent) or "selector".
	Match string `json:"match"`
	// ConfigVersion is the config version it contributes to this agent
	// (a rollout may hold some agents on the earlier one); 0 when not
	// known, as for an agent that does not accept remote config.
	ConfigVersion int `json:"config_version,omitempty"`
}

// AgentConfigVersion names a remote config by the config versions it is
// made of.
type AgentConfigVersion struct {
	Hash steward.Hash `json:"hash"`
	// Known: the hash is one Steward composed, and Configs says of what;
	// false for a config Steward does not know (local to the agent, or
	// from another server).
	Known   bool               `json:"known"`
	Configs steward.ConfigRefs `json:"configs"`
	// Label is "name@version, ..." or "unknown/local".
	Label string `json:"label"`
	// Files are the desired files (desired only).
	Files steward.ConfigMap `json:"files,omitempty"`
}

// UnknownConfigLabel names a running config that matches no config version
// Steward stores.
const UnknownConfigLabel = "unknown/local"

func (s *Server) handleAgentConfig(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	a, err := s.scrubbedAgent(r, id)
	if err != nil {
		return err
	}
	desired, files, err := s.describeDesired(r.Context(), a)
	if err != nil {
		return err
	}
	out := AgentConfigResponse{Desired: desired}
	if running := runningHash(a); len(running) > 0 {
		if desired != nil && bytes.Equal(running, desired.Hash) {
			out.Running = &AgentConfigVersion{Hash: running, Known: true, Configs: desired.Configs, Label: desired.Label}
		} else {
			out.Running = s.resolveConfig(r.Context(), a, running)
		}
	}
	if out.Assignments, err = s.agentAssignments(r.Context(), a, out.Desired); err != nil {
		return err
	}
	out.Diff, out.DiffNote = effectiveDiff(files, a.EffectiveConfig)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// describeDesired returns the agent's desired config, named by its config
// versions, and its files; nil when nothing is assigned.
func (s *Server) describeDesired(ctx context.Context, a *steward.Agent) (*AgentConfigVersion, steward.ConfigMap, error) {
	if d, ok := s.configs.(steward.DesiredConfigDescriber); ok {
		k, files, err := d.DescribeDesiredConfig(ctx, a.ID)
		if err != nil || k == nil {
			return nil, files, err
		}
		return &AgentConfigVersion{Hash: k.Hash, Known: true, Configs: k.Configs, Label: k.Configs.String(), Files: files}, files, nil
	}
	files, hash, err := s.configs.DesiredConfig(ctx, a.ID)
	if err != nil || len(hash) == 0 {
		return nil, files, err
	}
	v := s.resolveConfig(ctx, a, hash)
	v.Files = files
	return v, files, nil
}

// scrubbedAgent returns the agent with its secrets hidden unless r may and
// asks to see them.
func (s *Server) scrubbedAgent(r *http.Request, id steward.InstanceUID) (*steward.Agent, error) {
	a, err := s.agents.Agent(r.Context(), id)
	if err != nil {
		return nil, err
	}
	list := []*steward.Agent{a} // scrubAgents replaces what it scrubs
	if err := s.scrubAgents(r, list); err != nil {
		return nil, err
	}
	return list[0], nil
}

// runningHash is the remote config hash the agent last reported APPLIED:
// its current status when that is APPLIED (fresher than the derived sync
// state), else what the sync state remembers.
func runningHash(a *steward.Agent) steward.Hash {
	if rcs := a.RemoteConfigStatus; rcs != nil && rcs.Status == steward.RemoteConfigApplied && len(rcs.LastRemoteConfigHash) > 0 {
		return rcs.LastRemoteConfigHash
	}
	if a.Sync != nil {
		return a.Sync.RunningHash
	}
	return nil
}

// resolveConfig names the remote config with hash h: from the configs
// Steward last wanted the agent to run, else from a stored config version
// offered alone (an agent that ran it before its history was kept, or
// since the history moved on); unknown/local when neither matches.
func (s *Server) resolveConfig(ctx context.Context, a *steward.Agent, h steward.Hash) *AgentConfigVersion {
	v := &AgentConfigVersion{Hash: h, Configs: steward.ConfigRefs{}, Label: UnknownConfigLabel}
	var refs steward.ConfigRefs
	if k := a.Sync.Resolve(h); k != nil {
		refs = k.Configs
	} else if c := s.storedVersion(ctx, h); c != nil {
		refs = steward.ConfigRefs{{Config: c.Name, Version: c.Version}}
	} else {
		return v
	}
	v.Known, v.Configs, v.Label = true, refs, refs.String()
	return v
}

// storedVersion returns the stored config version whose remote config map,
// offered alone, hashes to h; nil when none does or the store fails (the
// caller then says unknown: a failed lookup must not fail the page).
func (s *Server) storedVersion(ctx context.Context, h steward.Hash) *steward.Config {
	cfgs, err := s.configs.Configs(ctx)
	if err != nil {
		return nil
	}
	for _, latest := range cfgs {
		versions, err := s.configs.ConfigHistory(ctx, latest.Name)
		if err != nil {
			return nil
		}
		for _, c := range versions {
			if bytes.Equal(c.RemoteConfigMap().Hash(), h) {
				return c
			}
		}
	}
	return nil
}

// agentAssignments lists the assignments that match a, highest priority
// first, with the version each contributes to its desired config.
func (s *Server) agentAssignments(ctx context.Context, a *steward.Agent, desired *AgentConfigVersion) ([]AgentAssignment, error) {
	all, err := s.configs.Assignments(ctx)
	if err != nil {
		return nil, err
	}
	out := []AgentAssignment{}
	for _, as := range all {
		if !as.Matches(a) {
			continue
		}
		x := AgentAssignment{Assignment: as, Match: "selector"}
		if as.AgentID != nil {
			x.Match = "agent_id"
		}
		if desired != nil {
			for _, ref := range desired.Configs {
				if ref.Assignment == as.Name {
					x.ConfigVersion = ref.Version
				}
			}
		}
		out = append(out, x)
	}
	sort.SliceStable(out, func(i, j int) bool {
		x, y := out[i].Assignment, out[j].Assignment
		if x.Priority != y.Priority { // as the desired config orders them
			return x.Priority > y.Priority
		}
		return x.Name < y.Name
	})
	return out, nil
}

// effectiveDiff diffs the desired files against the reported effective
// config. Files are paired by name; when each side has exactly one file
// they are paired whatever their names (a supervisor reports the file it
// wrote under its own name).
func effectiveDiff(desired steward.ConfigMap, effective *steward.ConfigMap) (diff, note string) {
	switch {
	case len(desired) == 0:
		return "", "Nothing is assigned to this agent."
	case effective == nil || len(*effective) == 0:
		return "", "The agent has not reported an effective configuration."
	}
	eff := *effective
	label := func(prefix string) func(string) string {
		return func(f string) string {
			if f == "" {
				return prefix
			}
			return prefix + "/" + f
		}
	}
	labelEff := label("effective")
	if len(desired) == 1 && len(eff) == 1 {
		var dk, ek string
		for k := range desired {
			dk = k
		}
		for k := range eff {
			ek = k
		}
		if dk != ek {
			eff = steward.ConfigMap{dk: eff[ek]}
			labelEff = func(string) string { return label("effective")(ek) }
		}
	}
	diff = diffFiles(desired, eff, label("desired"), labelEff)
	if diff == "" {
		note = "The effective configuration is the desired one."
	}
	return diff, note
}
