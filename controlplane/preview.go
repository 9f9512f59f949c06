package controlplane

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sort"

	"github.com/stewardhq/steward"
)

var _ steward.PreviewService = (*Service)(nil)

// Preview computes what a change would do: it builds the desired state the
// change would produce next to the current one, asks both what each agent
// the change can reach should run, and validates the configs of the agents
// that would change against their AvailableComponents. Nothing is stored.
// Only the agents the changed assignments (or the rollout's assignment)
// select are weighed (candidates), and of those only the ones listed or
// lacking components are read whole.
func (s *Service) Preview(ctx context.Context, ch steward.Change, opts steward.PreviewOptions) (*steward.Preview, error) {
	cur := s.desired.Load()
	sc, err := s.hypothetical(ctx, cur, ch)
	if err != nil {
		return nil, err
	}
	// Nothing of an agent's state is previewed (Online is a column).
	cands, err := s.candidates(ctx, sc.targets, steward.AgentFilter{Read: steward.ReadReport})
	if err != nil {
		return nil, err
	}
	// Pages and the agents named as lacking components follow id order.
	slices.SortFunc(cands, func(a, b candidate) int { return bytes.Compare(a.id[:], b.id[:]) })
	p := &steward.Preview{Matched: len(cands), Agents: []*steward.PreviewAgent{}, MissingAgents: []*steward.AgentMissing{}}
	limit := opts.Limit
	if limit <= 0 {
		limit = 20
	}
	v := newValidator()
	checked := 0
	for i := range cands {
		c := &cands[i]
		if !c.caps.Has(steward.AgentAcceptsRemoteConfig) {
			continue
		}
		before := cur.forAgent(c.id, c.labels)
		after := sc.next.forAgent(c.id, c.labels)
		// A rollout is validated over every agent it will reach, not only
		// those of the stage previewed.
		final := after
		if sc.final != nil {
			final = sc.final.forAgent(c.id, c.labels)
		}
		var missing []steward.Component
		if !before.sameAs(final) {
			checked++
			if missing, err = s.checkAgent(ctx, p, v, c, final); err != nil {
				return nil, err
			}
		}
		if before.sameAs(after) {
			continue
		}
		p.Changed++
		if p.Changed > opts.Offset && len(p.Agents) < limit {
			a, err := s.readCandidate(ctx, c)
			if err != nil {
				return nil, err
			}
			p.Agents = append(p.Agents, &steward.PreviewAgent{ID: c.id, Name: agentName(a), Online: a.Online,
				CurrentHash: before.hashOrNil(), DesiredHash: after.hashOrNil(), Desired: after.filesOrEmpty(),
				Effective: a.EffectiveConfig, Missing: missing})
		}
	}
	if checked == 0 && sc.alone != nil {
		v.alone(sc.alone)
	}
	p.Findings = v.all()
	p.Blocked = steward.HasErrors(p.Findings) || p.Missing > 0
	return p, nil
}

// checkAgent validates the config dc an agent would get and records in p
// what the agent lacks. The components of an agent known from its session
// are read with the agent, once per pair of config and component set the
// validator has not met.
func (s *Service) checkAgent(ctx context.Context, p *steward.Preview, v *validator, c *candidate, dc *desiredConfig) ([]steward.Component, error) {
	if dc == nil {
		return nil, nil
	}
	missing, known, ok := v.checkUnread(dc.files, dc.hash, c)
	if !ok {
		a, err := s.readCandidate(ctx, c)
		if err != nil {
			return nil, err
		}
		missing, known = v.check(dc.files, dc.hash, a.AvailableComponents)
	}
	if !known {
		p.Unchecked++
	}
	if len(missing) > 0 {
		p.Missing++
		if len(p.MissingAgents) < steward.MaxMissingListed {
			a, err := s.readCandidate(ctx, c)
			if err != nil {
				return nil, err
			}
			p.MissingAgents = append(p.MissingAgents, &steward.AgentMissing{ID: c.id, Name: agentName(a), Missing: missing})
		}
	}
	return missing, nil
}

// target is who an assignment or rollout reaches: a selector, or one agent.
type target struct {
	selector string
	id       *steward.InstanceUID
}

func targetOf(a *steward.Assignment) target { return target{selector: a.Selector, id: a.AgentID} }

// scenario is what a change would do to the desired state.
type scenario struct {
	next *desiredState
	// final is the state validated when it differs from next: a rollout
	// at its last stage.
	final *desiredState
	// targets reach every agent the change can reconfigure.
	targets []target
	// alone is validated when no agent would change: the change's config
	// on its own.
	alone steward.ConfigMap
}

// hypothetical returns the scenario of ch.
func (s *Service) hypothetical(ctx context.Context, cur *desiredState, ch steward.Change) (*scenario, error) {
	next := &desiredState{assignments: slices.Clone(cur.assignments), rollouts: maps.Clone(cur.rollouts)}
	switch {
	case ch.Config != nil && ch.Assignment == nil && ch.Rollout == nil:
		return s.previewConfig(ctx, next, ch.Config)
	case ch.Assignment != nil && ch.Config == nil && ch.Rollout == nil:
		return s.previewAssignment(ctx, next, ch.Assignment)
	case ch.Rollout != nil && ch.Config == nil && ch.Assignment == nil:
		return s.previewRollout(ctx, next, ch.Rollout)
	}
	return nil, steward.Errorf(steward.EINVALID, "a preview needs exactly one of config, assignment or rollout")
}

// previewConfig: the assignments that follow the config's latest version
// (and are not in a rollout, which fixes both its versions) get c.
func (s *Service) previewConfig(ctx context.Context, next *desiredState, c *steward.Config) (*scenario, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	proposed := &steward.Config{Name: c.Name, Files: c.Files, Hash: c.Files.Hash(), Version: 1}
	latest, err := s.store.Config(ctx, c.Name, 0)
	switch {
	case err == nil && bytes.Equal(latest.Hash, proposed.Hash):
		proposed = latest // saving it would create no version
	case err == nil:
		proposed.Version = latest.Version + 1
	case steward.ErrorCode(err) != steward.ENOTFOUND:
		return nil, err
	}
	var targets []target
	for i := range next.assignments {
		r := &next.assignments[i]
		if r.a.ConfigName != c.Name || r.a.Version != 0 || next.rollouts[r.a.Name] != nil {
			continue
		}
		r.cfg = proposed
		targets = append(targets, targetOf(r.a))
	}
	return &scenario{next: next, targets: targets, alone: mergeFiles([]*steward.Config{proposed})}, nil
}

// previewAssignment adds a, or replaces the assignment of its name (whose
// agents are reached too: they may lose its config).
func (s *Service) previewAssignment(ctx context.Context, next *desiredState, a *steward.Assignment) (*scenario, error) {
	cp := *a
	a = &cp
	if a.Name == "" {
		a.Name = "preview" // the dialog asks before the operator named it
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	c, err := s.store.Config(ctx, a.ConfigName, a.Version)
	if err != nil {
		return nil, err
	}
	sel, _ := steward.ParseSelector(a.Selector)
	targets := []target{targetOf(a)}
	next.assignments = slices.DeleteFunc(next.assignments, func(r resolved) bool {
		if r.a.Name == a.Name {
			targets = append(targets, targetOf(r.a))
			return true
		}
		return false
	})
	delete(next.rollouts, a.Name)
	next.assignments = append(next.assignments, resolved{a: a, sel: sel, cfg: c})
	sortResolved(next.assignments)
	return &scenario{next: next, targets: targets, alone: mergeFiles([]*steward.Config{c})}, nil
}

// previewRollout puts r (new or stored) at stage r.Stage over its
// assignment.
func (s *Service) previewRollout(ctx context.Context, next *desiredState, r *steward.Rollout) (*scenario, error) {
	rc := *r
	r = &rc
	if r.Name == "" {
		r.Name = "preview"
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Stage < 0 || r.Stage >= len(r.Stages) {
		return nil, steward.Errorf(steward.EINVALID, "rollout %q has no stage %d (stages are numbered from 0)", r.Name, r.Stage)
	}
	i := slices.IndexFunc(next.assignments, func(x resolved) bool { return x.a.Name == r.Assignment })
	if i < 0 {
		return nil, steward.Errorf(steward.ENOTFOUND, "assignment %q not found", r.Assignment)
	}
	res := next.assignments[i]
	from := res.cfg
	if ar := next.rollouts[r.Assignment]; ar != nil && ar.r.Name != r.Name {
		return nil, steward.Errorf(steward.ECONFLICT, "rollout %q of assignment %q is still %s", ar.r.Name, r.Assignment, ar.r.State)
	} else if ar != nil {
		from = ar.from
	}
	if r.FromVersion != 0 && r.FromVersion != from.Version {
		c, err := s.store.Config(ctx, res.a.ConfigName, r.FromVersion)
		if err != nil {
			return nil, err
		}
		from = c
	}
	to, err := s.store.Config(ctx, res.a.ConfigName, r.ToVersion)
	if err != nil {
		return nil, err
	}
	r.State = steward.RolloutRunning
	last := *r
	last.Stage = len(r.Stages) - 1
	final := &desiredState{assignments: next.assignments, rollouts: maps.Clone(next.rollouts)}
	if next.rollouts == nil {
		next.rollouts, final.rollouts = map[string]*activeRollout{}, map[string]*activeRollout{}
	}
	next.rollouts[r.Assignment] = &activeRollout{r: r, from: from, to: to}
	final.rollouts[r.Assignment] = &activeRollout{r: &last, from: from, to: to}
	return &scenario{next: next, final: final, targets: []target{targetOf(res.a)}, alone: mergeFiles([]*steward.Config{to})}, nil
}

func sortResolved(rs []resolved) {
	sort.SliceStable(rs, func(i, j int) bool {
		ai, aj := rs[i].a, rs[j].a
		if ai.Priority != aj.Priority {
			return ai.Priority > aj.Priority
		}
		return ai.Name < aj.Name
	})
}

func agentName(a *steward.Agent) string {
	if n := a.Attribute(steward.AttrServiceName); n != "" {
		return n
	}
	return a.Attribute(steward.AttrHostName)
}

func (dc *desiredConfig) hashOrNil() []byte {
	if dc == nil {
		return nil
	}
	return dc.hash
}

func (dc *desiredConfig) filesOrEmpty() steward.ConfigMap {
	if dc == nil {
		return steward.ConfigMap{}
	}
	return dc.files
}

func (dc *desiredConfig) sameAs(o *desiredConfig) bool {
	return bytes.Equal(dc.hashOrNil(), o.hashOrNil())
}

// validator validates each distinct desired config once and checks each
// (config, available components) pair once: a fleet shares a few of both.
type validator struct {
	checked map[string]steward.ConfigCheck // by desired hash
	missing map[[2]string][]steward.Component
	seen    map[steward.Finding]bool
	ordered []steward.Finding
}

func newValidator() *validator {
	return &validator{checked: map[string]steward.ConfigCheck{}, missing: map[[2]string][]steward.Component{}, seen: map[steward.Finding]bool{}}
}

// alone validates a config no agent gets yet. It may be meant to be
// combined with others (several assignments' files merge), so what only
// the combination can satisfy is a warning; a syntax error stays an error.
func (v *validator) alone(files steward.ConfigMap) {
	for _, f := range steward.ValidateConfig(files).Findings {
		if f.Rule == steward.RuleStructure {
			f.Severity = steward.SeverityWarning
			f.Message += " (no agent gets this config yet: checked again against the config each agent would get)"
		}
		v.add(f)
	}
}

func (v *validator) add(f steward.Finding) {
	if !v.seen[f] {
		v.seen[f] = true
		v.ordered = append(v.ordered, f)
	}
}

func (v *validator) validate(key string, files steward.ConfigMap) steward.ConfigCheck {
	if c, ok := v.checked[key]; ok {
		return c
	}
	c := steward.ValidateConfig(files)
	v.checked[key] = c
	for _, f := range c.Findings {
		v.add(f)
	}
	return c
}

// checkUnread is check for c without reading it: ok is false when c is
// not read yet and its component set was not met with files.
func (v *validator) checkUnread(files steward.ConfigMap, hash []byte, c *candidate) (missing []steward.Component, known, ok bool) {
	if c.agent != nil {
		missing, known = v.check(files, hash, c.agent.AvailableComponents)
		return missing, known, true
	}
	if files == nil || !v.validate(string(hash), files).Collector {
		return nil, true, true
	}
	if c.components == nil {
		return nil, false, true // reported none
	}
	m, ok := v.missing[[2]string{string(hash), string(c.components)}]
	return m, true, ok
}

// check validates files and returns the components the agent lacks; known
// is false when it reported none (or there is nothing to check).
func (v *validator) check(files steward.ConfigMap, hash []byte, available *steward.ComponentDetails) ([]steward.Component, bool) {
	if files == nil {
		return nil, true
	}
	c := v.validate(string(hash), files)
	if !c.Collector {
		return nil, true
	}
	var ah []byte
	if available != nil {
		ah = available.Hash
	}
	key := [2]string{string(hash), string(ah)}
	if m, ok := v.missing[key]; ok {
		return m, available != nil && len(available.Components) > 0
	}
	m, known := steward.MissingComponents(c.Components, available)
	v.missing[key] = m
	return m, known
}

func (v *validator) all() []steward.Finding {
	if v.ordered == nil {
		return []steward.Finding{}
	}
	return v.ordered
}
