package controlplane

import (
	"context"
	"time"

	"github.com/stewardhq/steward"
)

// PutConfig validates and stores c; when a new version results, agents are
// reconciled at once.
func (s *Service) PutConfig(ctx context.Context, c *steward.Config) (*steward.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	prev, err := s.store.Config(ctx, c.Name, 0)
	if err != nil && steward.ErrorCode(err) != steward.ENOTFOUND {
		return nil, err
	}
	out, err := s.store.PutConfig(ctx, c)
	if err != nil {
		return nil, err
	}
	if prev == nil || prev.Version != out.Version {
		s.emit(&steward.Event{Type: steward.EventConfigChanged, Message: "config " + out.Name + "@" + itoa(out.Version) + " saved",
			Details: map[string]any{"name": out.Name, "version": out.Version}})
		s.changed(ctx)
	}
	return out, nil
}

// changed rebuilds the desired state and pushes it. A failed reload is
// logged: the next change or Reconcile call repairs it (level-triggered).
func (s *Service) changed(ctx context.Context) {
	s.broadcast(steward.Notice{Kind: steward.NoticeDesired})
	if err := s.reload(ctx); err != nil {
		s.log.Error("desired state reload failed", "error", err)
		return
	}
	s.reconcileAll()
}

func (s *Service) Config(ctx context.Context, name string, version int) (*steward.Config, error) {
	return s.store.Config(ctx, name, version)
}

func (s *Service) Configs(ctx context.Context) ([]*steward.Config, error) {
	return s.store.Configs(ctx)
}

func (s *Service) ConfigHistory(ctx context.Context, name string) ([]*steward.Config, error) {
	return s.store.ConfigHistory(ctx, name)
}

func (s *Service) DeleteConfig(ctx context.Context, name string) error {
	if err := s.store.DeleteConfig(ctx, name); err != nil {
		return err
	}
	s.emit(&steward.Event{Type: steward.EventConfigChanged, Message: "config " + name + " deleted", Details: map[string]any{"name": name, "deleted": true}})
	return nil
}

// PutAssignment validates and stores a, then reconciles every agent.
func (s *Service) PutAssignment(ctx context.Context, a *steward.Assignment) (*steward.Assignment, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	a.UpdatedAt = now
	out, err := s.store.PutAssignment(ctx, a)
	if err != nil {
		return nil, err
	}
	s.emit(&steward.Event{Type: steward.EventAssignmentChanged, Message: "assignment " + out.Name + " saved",
		Details: map[string]any{"name": out.Name, "config": out.ConfigName, "selector": out.Selector}})
	s.changed(ctx)
	return out, nil
}

func (s *Service) Assignment(ctx context.Context, name string) (*steward.Assignment, error) {
	return s.store.Assignment(ctx, name)
}

func (s *Service) Assignments(ctx context.Context) ([]*steward.Assignment, error) {
	return s.store.Assignments(ctx)
}

// DeleteAssignment removes it and reconciles: agents it configured are
// offered what remains (an empty config when nothing does).
func (s *Service) DeleteAssignment(ctx context.Context, name string) error {
	if err := s.store.DeleteAssignment(ctx, name); err != nil {
		return err
	}
	s.emit(&steward.Event{Type: steward.EventAssignmentChanged, Message: "assignment " + name + " deleted", Details: map[string]any{"name": name, "deleted": true}})
	s.changed(ctx)
	return nil
}

// DesiredConfig returns what the agent should run (empty when nothing is
// assigned) and its hash.
func (s *Service) DesiredConfig(ctx context.Context, id steward.InstanceUID) (steward.ConfigMap, []byte, error) {
	k, files, err := s.DescribeDesiredConfig(ctx, id)
	if err != nil || k == nil {
		return files, nil, err
	}
	return files, k.Hash, nil
}

// DescribeDesiredConfig returns what the agent should run and the config
// versions it is made of; nil and an empty map when nothing is assigned.
func (s *Service) DescribeDesiredConfig(ctx context.Context, id steward.InstanceUID) (*steward.KnownConfig, steward.ConfigMap, error) {
	var labels steward.Labeled
	if ss := s.lookup(id); ss != nil {
		ss.mu.Lock()
		labels = ss.labels
		ss.mu.Unlock()
	} else {
		a, err := s.getAgent(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		labels = a
	}
	d := s.desired.Load().forAgent(id, labels)
	if d == nil {
		return nil, steward.ConfigMap{}, nil
	}
	return d.known(), d.files, nil
}
