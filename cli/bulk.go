package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
)

// bulkVerbs say what each bulk action does, for the preview and the result.
var bulkVerbs = map[steward.BulkAction][2]string{
	steward.BulkLabel:   {"Label", "Labelled"},
	steward.BulkRestart: {"Restart", "Restarted"},
	steward.BulkForget:  {"Forget", "Forgot"},
}

func (a *app) agentsBulkCommand() *cobra.Command {
	var ff filterFlags
	var yes bool
	cmd := &cobra.Command{
		Use:   "bulk label|restart|forget [KEY=VALUE... KEY-...] [filter flags]",
		Short: "Label, restart or forget every agent a filter matches (previews unless --yes)",
		Long: `Act on every agent the filter flags match (the flags of 'agents list').
Without --yes only the preview is shown: how many agents the action would
touch and the first of them. With --yes the action runs, unless the filter
matches another number of agents than the preview just counted.

label sets KEY=VALUE and removes KEY- on each agent, keeping other labels;
restart acts on connected agents only; forget on disconnected agents only
(one that connects again comes back). Each action taken is audited once.`,
		Example: `  steward agents bulk restart --sync failed
  steward agents bulk restart --sync failed --yes
  steward agents bulk label team=obs old- --type otelcol --yes
  steward agents bulk forget --selector env=staging --yes`,
		Args: cobra.MinimumNArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			_, err := bulkRequest(args, &ff)
			return err
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			req, _ := bulkRequest(args, &ff)
			c := a.client()
			req.DryRun = true
			preview, err := c.BulkAgents(cmd.Context(), req)
			if err != nil {
				return err
			}
			if !yes || preview.Matched == 0 {
				if a.structured() {
					return a.print(cmd.OutOrStdout(), preview)
				}
				printBulkPreview(cmd.OutOrStdout(), preview, !yes)
				return nil
			}
			req.DryRun, req.Expect = false, preview.Matched
			res, err := c.BulkAgents(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s %d of %d agents.\n", bulkVerbs[res.Action][1], res.Done, res.Matched)
			for _, f := range res.Failures {
				fmt.Fprintf(w, "  %s: %s\n", f.ID, safe(f.Error))
			}
			if res.Failed > len(res.Failures) {
				fmt.Fprintf(w, "  … and %d more failures.\n", res.Failed-len(res.Failures))
			}
			if res.Failed > 0 {
				return fmt.Errorf("%d of %d agents failed", res.Failed, res.Matched)
			}
			return nil
		}),
	}
	ff.register(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "act, instead of only showing the preview")
	return cmd
}

// bulkRequest reads the action, its label arguments and the filter flags.
func bulkRequest(args []string, ff *filterFlags) (*steward.BulkRequest, error) {
	req := &steward.BulkRequest{Action: steward.BulkAction(args[0])}
	if _, ok := bulkVerbs[req.Action]; !ok {
		return nil, usagef("unknown action %q: want label, restart or forget", args[0])
	}
	switch {
	case req.Action == steward.BulkLabel:
		if len(args) < 2 {
			return nil, usagef("label needs KEY=VALUE or KEY- arguments")
		}
		set, del, err := parseLabelArgs(args[1:])
		if err != nil {
			return nil, err
		}
		req.SetLabels, req.RemoveLabels = set, del
	case len(args) > 1:
		return nil, usagef("%s takes no arguments besides the filter flags", req.Action)
	}
	if err := ff.parse(); err != nil {
		return nil, err
	}
	req.Filter = ff.f
	if _, err := req.Narrow(); err != nil {
		return nil, usagef("%s", steward.ErrorMessage(err))
	}
	return req, nil
}

// printBulkPreview says how many agents the action would touch and lists
// the first of them.
func printBulkPreview(w io.Writer, p *steward.BulkResult, hint bool) {
	if p.Matched == 0 {
		fmt.Fprintln(w, "No agents match: nothing to do.")
		return
	}
	fmt.Fprintf(w, "%s %d agents:\n", bulkVerbs[p.Action][0], p.Matched)
	for _, id := range p.IDs {
		fmt.Fprintf(w, "  %s\n", id)
	}
	if p.Matched > len(p.IDs) {
		fmt.Fprintf(w, "  … and %d more.\n", p.Matched-len(p.IDs))
	}
	if hint {
		fmt.Fprintln(w, "Nothing done: add --yes to act.")
	}
}
