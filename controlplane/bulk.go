package controlplane

import (
	"context"
	"maps"

	"github.com/stewardhq/steward"
)

// BulkAgents runs one action on every agent req's filter matches (see
// steward.BulkRequest), or only counts them in a dry run. The matching
// agents are listed once, before anything is done, so that an action that
// changes what the filter matches (removing the label it selects on) still
// acts on each agent once. Each agent is acted on as the single-agent
// call would; one agent's failure does not stop the others and is
// reported in the result. EINVALID for a bad request, ECONFLICT when
// req.Expect is set and the filter now matches another number.
func (s *Service) BulkAgents(ctx context.Context, req *steward.BulkRequest) (*steward.BulkResult, error) {
	f, err := req.Narrow()
	if err != nil {
		return nil, err
	}
	for k, v := range req.SetLabels {
		if err := validateLabel(k, v); err != nil {
			return nil, err
		}
	}
	if req.DryRun {
		f.Limit = steward.BulkPreviewIDs
	}
	agents, total, err := s.listAgents(ctx, f)
	if err != nil {
		return nil, err
	}
	res := &steward.BulkResult{Action: req.Action, DryRun: req.DryRun, Matched: total, IDs: []steward.InstanceUID{}}
	for _, a := range agents[:min(len(agents), steward.BulkPreviewIDs)] {
		res.IDs = append(res.IDs, a.ID)
	}
	if req.Expect > 0 && req.Expect != total {
		return nil, steward.Errorf(steward.ECONFLICT, "the filter matched %d agents when previewed and matches %d now: preview again", req.Expect, total)
	}
	if req.DryRun {
		return res, nil
	}
	act := s.bulkAction(req)
	for _, a := range agents {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := act(ctx, a.ID); err != nil {
			res.Failed++
			if len(res.Failures) < steward.BulkPreviewIDs {
				res.Failures = append(res.Failures, steward.BulkFailure{ID: a.ID, Error: steward.ErrorMessage(err)})
			}
			continue
		}
		res.Done++
	}
	return res, nil
}

// bulkAction is what BulkAgents does to one agent.
func (s *Service) bulkAction(req *steward.BulkRequest) func(context.Context, steward.InstanceUID) error {
	switch req.Action {
	case steward.BulkRestart:
		return func(ctx context.Context, id steward.InstanceUID) error {
			_, err := s.RestartAgent(ctx, id)
			return err
		}
	case steward.BulkForget:
		return s.DeleteAgent
	}
	return func(ctx context.Context, id steward.InstanceUID) error {
		return s.editLabels(ctx, id, func(old map[string]string) map[string]string {
			labels := maps.Clone(old)
			if labels == nil {
				labels = map[string]string{}
			}
			maps.Copy(labels, req.SetLabels)
			for _, k := range req.RemoveLabels {
				delete(labels, k)
			}
			return labels
		})
	}
}
