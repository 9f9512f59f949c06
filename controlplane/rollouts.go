package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/stewardhq/steward"
)

var _ steward.RolloutService = (*Service)(nil)

func (s *Service) rolloutStore() (steward.RolloutStore, error) {
	rs, ok := s.store.(steward.RolloutStore)
	if !ok {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "this store does not support rollouts")
	}
	return rs, nil
}

// StartRollout validates r, resolves FromVersion (the version the assignment
// gives agents now) and starts it at stage 0. ENOTFOUND for a missing
// assignment or version, ECONFLICT while another rollout of the assignment is
// active or when the rollout name is taken.
func (s *Service) StartRollout(ctx context.Context, r *steward.Rollout) (*steward.Rollout, error) {
	rs, err := s.rolloutStore()
	if err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	a, err := s.store.Assignment(ctx, r.Assignment)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.Config(ctx, a.ConfigName, r.ToVersion); err != nil {
		return nil, err
	}
	cur, err := s.store.Config(ctx, a.ConfigName, a.Version)
	if err != nil {
		return nil, err
	}
	if r.FromVersion == 0 {
		r.FromVersion = cur.Version
	} else if _, err := s.store.Config(ctx, a.ConfigName, r.FromVersion); err != nil {
		return nil, err
	}
	if r.FromVersion == r.ToVersion {
		return nil, steward.Errorf(steward.EINVALID, "rollout %q: the assignment already gives version %d", r.Name, r.ToVersion)
	}
	all, err := rs.Rollouts(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.Name == r.Name {
			return nil, steward.Errorf(steward.ECONFLICT, "rollout %q exists", r.Name)
		}
		if o.Assignment == r.Assignment && o.Active() {
			return nil, steward.Errorf(steward.ECONFLICT, "rollout %q of assignment %q is still %s", o.Name, o.Assignment, o.State)
		}
	}
	now := time.Now().UTC()
	r.State, r.Stage, r.Reason, r.Progress, r.Revision = steward.RolloutRunning, 0, "", nil, 0
	r.MeasuredAt, r.MeasuredBy = time.Time{}, ""
	r.CreatedAt, r.UpdatedAt = now, now
	if err := rs.PutRollout(ctx, r); err != nil {
		return nil, err
	}
	s.emit(&steward.Event{Type: steward.EventRolloutChanged, Message: fmt.Sprintf("rollout %s started: %s v%d → v%d", r.Name, r.Assignment, r.FromVersion, r.ToVersion),
		Details: map[string]any{"rollout": r.Name, "state": r.State}})
	s.changed(ctx)
	return r, nil
}

func (s *Service) Rollout(ctx context.Context, name string) (*steward.Rollout, error) {
	rs, err := s.rolloutStore()
	if err != nil {
		return nil, err
	}
	return rs.Rollout(ctx, name)
}

func (s *Service) Rollouts(ctx context.Context) ([]*steward.Rollout, error) {
	rs, err := s.rolloutStore()
	if err != nil {
		return nil, err
	}
	return rs.Rollouts(ctx)
}

// PauseRollout stops a running rollout where it is. EINVALID unless running.
func (s *Service) PauseRollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return s.transition(ctx, name, func(r *steward.Rollout) error {
		if r.State != steward.RolloutRunning {
			return steward.Errorf(steward.EINVALID, "rollout %q is %s, not running", name, r.State)
		}
		r.State, r.Reason = steward.RolloutPaused, "paused by an operator"
		return nil
	})
}

// ResumeRollout continues a paused rollout. EINVALID unless paused.
func (s *Service) ResumeRollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return s.transition(ctx, name, func(r *steward.Rollout) error {
		if r.State != steward.RolloutPaused {
			return steward.Errorf(steward.EINVALID, "rollout %q is %s, not paused", name, r.State)
		}
		r.State, r.Reason = steward.RolloutRunning, ""
		return nil
	})
}

// RollbackRollout pins the assignment back to FromVersion and ends the
// rollout. EINVALID when it already ended.
func (s *Service) RollbackRollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return s.transition(ctx, name, func(r *steward.Rollout) error {
		if !r.Active() && r.State != steward.RolloutCompleted {
			return steward.Errorf(steward.EINVALID, "rollout %q is %s", name, r.State)
		}
		r.State, r.Reason = steward.RolloutRolledBack, "rolled back by an operator"
		return nil
	})
}

// transition applies fn to the stored rollout and reconciles.
func (s *Service) transition(ctx context.Context, name string, fn func(*steward.Rollout) error) (*steward.Rollout, error) {
	rs, err := s.rolloutStore()
	if err != nil {
		return nil, err
	}
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	r, err := rs.Rollout(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := fn(r); err != nil {
		return nil, err
	}
	r.UpdatedAt = time.Now().UTC()
	if err := rs.PutRollout(ctx, r); err != nil {
		return nil, err
	}
	s.finish(ctx, r)
	s.emit(&steward.Event{Type: steward.EventRolloutChanged, Message: "rollout " + r.Name + " " + r.State,
		Details: map[string]any{"rollout": r.Name, "state": r.State, "reason": r.Reason}})
	s.changed(ctx)
	return r, nil
}

// finish pins the assignment of a rollout that just ended to the version it
// ended on. Only the writer whose PutRollout won calls it; until it has, the
// rollout record decides (see applyRollouts).
func (s *Service) finish(ctx context.Context, r *steward.Rollout) {
	v := 0
	switch r.State {
	case steward.RolloutCompleted:
		v = r.ToVersion
	case steward.RolloutRolledBack:
		v = r.FromVersion
	default:
		return
	}
	if err := s.pin(ctx, r.Assignment, v); err != nil {
		s.log.Warn("pinning the assignment after a rollout; the rollout record still decides", "rollout", r.Name, "error", err)
	}
}

// pin sets the assignment's version.
func (s *Service) pin(ctx context.Context, name string, version int) error {
	a, err := s.store.Assignment(ctx, name)
	if err != nil {
		return err
	}
	a.Version = version
	a.UpdatedAt = time.Now().UTC()
	_, err = s.store.PutAssignment(ctx, a)
	return err
}

// rolloutPace spaces the progress measurements of running rollouts
// (progressRollouts). Each reads every online agent of a rollout's
// assignment, and every config status an agent reported asked for one
// (rolloutKick): back to back they held a core while a rollout ran, and
// one ran every flush interval for as long as an agent that never applies
// kept it running. Now a measurement waits rolloutPaceFactor times as
// long as the last one took, at least minRolloutGap (a fifth of a core at
// most), unless agents reported as many status changes since the last as
// it found pending: then the stage may be done, and it waits only as long
// as the last took, at least minEagerGap (half a core at most). Used by
// housekeeping only.
type rolloutPace struct {
	next, eager time.Time
	// pending is what the last measurement found pending, reports the
	// count of status reports (Service.rolloutReports) it started at.
	pending, reports int64
	// due fires at dueAt for a measurement asked for before its time.
	due   <-chan time.Time
	dueAt time.Time
}

// measureLease is how long the other replicas leave a running rollout to
// the replica that measured it last (Rollout.MeasuredBy): half the
// replica lease (30 s by default), so that the rollout of a replica that
// died moves on before the replica is declared dead. The measurer renews
// its claim every third of it.
func (s *Service) measureLease() time.Duration { return s.cfg.ReplicaLease / 2 }

const (
	minRolloutGap     = 500 * time.Millisecond
	minEagerGap       = 100 * time.Millisecond
	rolloutPaceFactor = 4
)

// run measures now, or arranges for due to fire when it may. reports is
// Service.rolloutReports now.
func (p *rolloutPace) run(ctx context.Context, measure func(context.Context) int, reports int64) {
	now := time.Now()
	at := p.next
	if reports-p.reports >= max(p.pending, 1) && p.eager.Before(at) {
		at = p.eager
	}
	if now.Before(at) {
		if p.due == nil || at.Before(p.dueAt) {
			p.due, p.dueAt = time.After(at.Sub(now)), at
		}
		return
	}
	p.due = nil // a timer still running only wakes housekeeping early
	p.pending, p.reports = int64(measure(ctx)), reports
	end := time.Now()
	took := end.Sub(now)
	p.next, p.eager = end.Add(max(minRolloutGap, rolloutPaceFactor*took)), end.Add(max(minEagerGap, took))
}

// progressRollouts advances running rollouts whose current stage is done,
// pauses those over their failure ratio and completes finished ones, and
// returns how many agents they wait for. It is level-triggered: it looks
// only at what agents report now.
func (s *Service) progressRollouts(ctx context.Context) (pending int) {
	rs, ok := s.store.(steward.RolloutStore)
	if !ok {
		return 0
	}
	d := s.desired.Load()
	if len(d.rollouts) == 0 {
		return 0
	}
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	changed := false
	for _, ar := range d.rollouts {
		r, err := rs.Rollout(ctx, ar.r.Name)
		if err != nil || r.State != steward.RolloutRunning {
			continue
		}
		if r.MeasuredBy != s.cfg.Replica && time.Since(r.MeasuredAt) < s.measureLease() {
			continue // another replica measures it
		}
		p, joining, err := s.measure(ctx, d, r)
		if err != nil {
			s.log.Warn("rollout progress", "rollout", r.Name, "error", err)
			continue
		}
		before := *r
		r.Progress = p
		pending += p.Pending
		switch {
		case p.Failed > 0 && float64(p.Failed) > r.MaxFailureRatio*float64(p.Targeted):
			r.State = steward.RolloutPaused
			r.Reason = fmt.Sprintf("%d of %d agents failed to apply version %d (limit %.0f%%)", p.Failed, p.Targeted, r.ToVersion, r.MaxFailureRatio*100)
		case p.Pending == 0 && r.Stage+1 < len(r.Stages):
			r.Stage++
			pending += joining // what the next stage waits for
		case p.Pending == 0:
			r.State = steward.RolloutCompleted
		}
		now := time.Now().UTC()
		same := r.State == before.State && r.Stage == before.Stage && *p == derefProgress(before.Progress)
		if same && before.MeasuredBy == s.cfg.Replica && now.Sub(before.MeasuredAt) < s.measureLease()/3 {
			continue
		}
		r.MeasuredAt, r.MeasuredBy = now, s.cfg.Replica
		if !same {
			r.UpdatedAt = now
		}
		if err := rs.PutRollout(ctx, r); err != nil {
			if steward.ErrorCode(err) != steward.ECONFLICT { // ECONFLICT: another replica moved it
				s.log.Warn("rollout update", "rollout", r.Name, "error", err)
			}
			continue
		}
		s.finish(ctx, r)
		switch {
		case r.State != before.State || r.Stage != before.Stage:
			changed = true
			s.emit(&steward.Event{Type: steward.EventRolloutChanged,
				Message: fmt.Sprintf("rollout %s %s at stage %d/%d", r.Name, r.State, r.Stage+1, len(r.Stages)),
				Details: map[string]any{"rollout": r.Name, "state": r.State, "stage": r.Stage, "reason": r.Reason, "progress": p}})
		case !same:
			s.publish(&steward.Event{Type: steward.EventRolloutProgress,
				Message: fmt.Sprintf("rollout %s at stage %d/%d: %d of %d applied", r.Name, r.Stage+1, len(r.Stages), p.Applied, p.Targeted),
				Details: map[string]any{"rollout": r.Name, "stage": r.Stage, "progress": p}})
		}
	}
	if changed {
		s.changed(ctx)
	}
	return pending
}

func derefProgress(p *steward.RolloutProgress) steward.RolloutProgress {
	if p == nil {
		return steward.RolloutProgress{}
	}
	return *p
}

// measure counts the online agents the rollout has reached so far and how
// each stands on the config it should now run, and how many more its next
// stage reaches (joining).
func (s *Service) measure(ctx context.Context, d *desiredState, r *steward.Rollout) (p *steward.RolloutProgress, joining int, err error) {
	var res *resolved
	for i := range d.assignments {
		if d.assignments[i].a.Name == r.Assignment {
			res = &d.assignments[i]
		}
	}
	if res == nil {
		return nil, 0, steward.Errorf(steward.ENOTFOUND, "assignment %q of rollout %q is gone", r.Assignment, r.Name)
	}
	online := true
	cands, err := s.candidates(ctx, []target{targetOf(res.a)}, steward.AgentFilter{Online: &online, Read: steward.ReadConfigStatus})
	if err != nil {
		return nil, 0, err
	}
	p = &steward.RolloutProgress{}
	for _, c := range cands {
		if !c.caps.Has(steward.AgentAcceptsRemoteConfig) {
			continue
		}
		if !r.Reached(c.id, c.labels, r.Stage) {
			if r.Stage+1 < len(r.Stages) && r.Reached(c.id, c.labels, r.Stage+1) {
				joining++
			}
			continue
		}
		p.Targeted++
		want := d.forAgent(c.id, c.labels)
		switch {
		case want == nil || !bytes.Equal(c.reported, want.hash):
			p.Pending++
		case c.outcome == outcomeApplied:
			p.Applied++
		case c.outcome == outcomeFailed:
			p.Failed++
		default:
			p.Pending++
		}
	}
	return p, joining, nil
}
