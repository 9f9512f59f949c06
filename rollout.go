package steward

import (
	"context"
	"hash/fnv"
	"time"
)

// Rollout moves one assignment from one config version to another in stages.
// While it runs, agents the assignment matches that fall in a completed or
// current stage get ToVersion; the others keep FromVersion. A stage is done
// when every agent in it has reported on ToVersion (APPLIED or FAILED); the
// rollout then advances, or pauses when the share of failures among the
// agents reached so far exceeds MaxFailureRatio. When the last stage is done
// the assignment is pinned to ToVersion. Rolling back pins it to FromVersion.
type Rollout struct {
	Name        string         `json:"name"`
	Assignment  string         `json:"assignment"`
	FromVersion int            `json:"from_version"`
	ToVersion   int            `json:"to_version"`
	Stages      []RolloutStage `json:"stages"`
	// MaxFailureRatio in [0,1]: the rollout pauses when failed/targeted
	// exceeds it. Default 0: any failure pauses.
	MaxFailureRatio float64 `json:"max_failure_ratio"`
	State           string  `json:"state"`
	// Stage is the index of the stage being rolled out.
	Stage    int              `json:"stage"`
	Reason   string           `json:"reason,omitempty"`
	Progress *RolloutProgress `json:"progress,omitempty"`
	// MeasuredAt is when replica MeasuredBy last measured Progress: one
	// replica measures a running rollout while it keeps doing so, the
	// others leave it alone (each measurement reads every online agent
	// the assignment selects).
	MeasuredAt time.Time `json:"measured_at,omitzero"`
	MeasuredBy string    `json:"measured_by,omitempty"`
	// Revision counts stored updates; PutRollout compares and swaps on
	// it, so replicas never overwrite each other's newer decisions.
	Revision  int       `json:"revision"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// RolloutStage selects agents by a deterministic percentage of instance
// uids (1-100) or by a label selector. Stages are cumulative: stage i covers
// every agent of stages 0..i.
type RolloutStage struct {
	Percent  int    `json:"percent,omitempty"`
	Selector string `json:"selector,omitempty"`
}

// RolloutProgress counts the agents reached so far (cumulative stages).
type RolloutProgress struct {
	Targeted int `json:"targeted"`
	Applied  int `json:"applied"`
	Failed   int `json:"failed"`
	Pending  int `json:"pending"`
}

// Rollout states.
const (
	RolloutRunning    = "running"
	RolloutPaused     = "paused"
	RolloutCompleted  = "completed"
	RolloutRolledBack = "rolled_back"
)

// Active reports whether the rollout still decides versions.
func (r *Rollout) Active() bool { return r.State == RolloutRunning || r.State == RolloutPaused }

// Validate checks a new rollout.
func (r *Rollout) Validate() error {
	if err := ValidateName("rollout", r.Name); err != nil {
		return err
	}
	if err := ValidateName("assignment", r.Assignment); err != nil {
		return err
	}
	if r.ToVersion <= 0 {
		return Errorf(EINVALID, "rollout %q: to_version must be a config version (>= 1)", r.Name)
	}
	if len(r.Stages) == 0 {
		return Errorf(EINVALID, "rollout %q needs at least one stage", r.Name)
	}
	last := 0
	for i, st := range r.Stages {
		if (st.Percent == 0) == (st.Selector == "") {
			return Errorf(EINVALID, "rollout %q stage %d: set exactly one of percent or selector", r.Name, i+1)
		}
		if st.Selector != "" {
			if _, err := ParseSelector(st.Selector); err != nil {
				return err
			}
		} else if st.Percent < 1 || st.Percent > 100 || st.Percent < last {
			return Errorf(EINVALID, "rollout %q stage %d: percent must be 1-100 and not below earlier stages", r.Name, i+1)
		} else {
			last = st.Percent
		}
	}
	if r.MaxFailureRatio < 0 || r.MaxFailureRatio > 1 {
		return Errorf(EINVALID, "rollout %q: max_failure_ratio must be within [0,1]", r.Name)
	}
	return nil
}

// Bucket places an agent in 0..99, stable for its instance uid.
func Bucket(id InstanceUID) int {
	h := fnv.New32a()
	h.Write(id[:])
	return int(h.Sum32() % 100)
}

// Reached reports whether an agent (id and label set) falls within stages
// 0..stage.
func (r *Rollout) Reached(id InstanceUID, labels Labeled, stage int) bool {
	for i := 0; i <= stage && i < len(r.Stages); i++ {
		st := r.Stages[i]
		if st.Percent > 0 && Bucket(id) < st.Percent {
			return true
		}
		if st.Selector != "" {
			if sel, err := ParseSelector(st.Selector); err == nil && sel.MatchLabels(labels) {
				return true
			}
		}
	}
	return false
}

// RolloutStore persists rollouts. Stores that implement it enable rollouts.
type RolloutStore interface {
	// PutRollout inserts r when r.Revision is 0 (ECONFLICT if the name is
	// taken) and otherwise updates it only if the stored revision still
	// equals r.Revision (ECONFLICT if another writer got there first); on
	// success r.Revision is incremented.
	PutRollout(ctx context.Context, r *Rollout) error
	// Rollout returns one; ENOTFOUND if missing.
	Rollout(ctx context.Context, name string) (*Rollout, error)
	// Rollouts lists rollouts, newest first.
	Rollouts(ctx context.Context) ([]*Rollout, error)
}

// RolloutService manages staged rollouts.
type RolloutService interface {
	// StartRollout validates and starts r (FromVersion defaults to the
	// version the assignment resolves to now). ECONFLICT while another
	// rollout of the same assignment is active.
	StartRollout(ctx context.Context, r *Rollout) (*Rollout, error)
	Rollout(ctx context.Context, name string) (*Rollout, error)
	Rollouts(ctx context.Context) ([]*Rollout, error)
	PauseRollout(ctx context.Context, name string) (*Rollout, error)
	ResumeRollout(ctx context.Context, name string) (*Rollout, error)
	// RollbackRollout returns every agent to FromVersion.
	RollbackRollout(ctx context.Context, name string) (*Rollout, error)
}
