package steward

// BulkAction is what a bulk request does to every agent its filter matches.
type BulkAction string

const (
	// BulkLabel merges SetLabels into each agent's operator labels and
	// removes RemoveLabels.
	BulkLabel BulkAction = "label"
	// BulkRestart sends the Restart command to each connected agent (the
	// filter is narrowed to online agents).
	BulkRestart BulkAction = "restart"
	// BulkForget forgets each offline agent (the filter is narrowed to
	// offline agents); one that connects again comes back.
	BulkForget BulkAction = "forget"
)

// BulkPreviewIDs is how many matching agent ids a bulk result lists, and
// how many failures it details.
const BulkPreviewIDs = 100

// BulkRequest asks for one action on every agent Filter matches (its
// Sort, Offset and Limit are ignored: the action takes all of them, in id
// order).
type BulkRequest struct {
	Action       BulkAction        `json:"action"`
	Filter       AgentFilter       `json:"-"`
	SetLabels    map[string]string `json:"set_labels,omitempty"`
	RemoveLabels []string          `json:"remove_labels,omitempty"`
	// DryRun counts the agents the action would touch and lists the first
	// BulkPreviewIDs of them, changing nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Expect, when positive, is the count a preview showed: if the filter
	// now matches a different number of agents nothing is done (ECONFLICT),
	// so that "Restart 37 agents?" never restarts 370.
	Expect int `json:"expect,omitempty"`
}

// BulkFailure is one agent a bulk action could not act on, and why.
type BulkFailure struct {
	ID    InstanceUID `json:"id"`
	Error string      `json:"error"`
}

// BulkResult says what a bulk request matched and did.
type BulkResult struct {
	Action BulkAction `json:"action"`
	DryRun bool       `json:"dry_run"`
	// Matched counts the agents the (narrowed) filter matched.
	Matched int `json:"matched"`
	// IDs are the first BulkPreviewIDs matched agents, by id.
	IDs []InstanceUID `json:"ids"`
	// Done and Failed count the agents acted on and those that failed
	// (zero in a dry run); Failures details the first BulkPreviewIDs.
	Done     int           `json:"done"`
	Failed   int           `json:"failed"`
	Failures []BulkFailure `json:"failures,omitempty"`
}

// Narrow returns the filter the action applies to: Sort, Offset and Limit
// cleared, and Online fixed for restart (online) and forget (offline).
// EINVALID for an unknown action, a filter that contradicts the action
// (restart with online=false), a label action that changes nothing, or a
// label key both set and removed.
func (r *BulkRequest) Narrow() (AgentFilter, error) {
	f := r.Filter
	f.Sort, f.Desc, f.Offset, f.Limit = "", false, 0, 0
	want := true
	switch r.Action {
	case BulkLabel:
		if len(r.SetLabels) == 0 && len(r.RemoveLabels) == 0 {
			return f, Errorf(EINVALID, "label action needs labels to set or remove")
		}
		for _, k := range r.RemoveLabels {
			if _, ok := r.SetLabels[k]; ok {
				return f, Errorf(EINVALID, "label %q is both set and removed", k)
			}
		}
		return f, f.Validate()
	case BulkRestart:
	case BulkForget:
		want = false
	default:
		return f, Errorf(EINVALID, "unknown bulk action %q: want label, restart or forget", r.Action)
	}
	if f.Online != nil && *f.Online != want {
		return f, Errorf(EINVALID, "%s acts on %s agents only; the filter asks for the others", r.Action, map[bool]string{true: "online", false: "offline"}[want])
	}
	f.Online = &want
	return f, f.Validate()
}
