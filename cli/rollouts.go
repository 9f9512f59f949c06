package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
)

func (a *app) rolloutsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rollouts",
		Aliases: []string{"rollout"},
		Short:   "Roll a config version out in stages, pause, resume or roll back",
	}
	var (
		to      int
		from    int
		stages  []string
		maxFail float64
		ch      change
	)
	start := &cobra.Command{
		Use:   "start NAME --assignment A --to VERSION --stage 10% --stage ring=canary --stage 100%",
		Short: "Start a staged rollout of an assignment to a config version",
		Long: `Start moving an assignment to a config version in stages.

Stages are cumulative and each is a percentage of agents (stable per instance
uid) or a label selector. A stage is done when every online agent in it has
reported on the new version; the rollout pauses when the share of failures
exceeds --max-failure-ratio, and pins the assignment when the last stage is done.
The new version is validated against every agent the rollout will reach;
--dry-run prints the first stage's agents, diffs and findings, --force starts
it despite blocking findings (audited).`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			assignment, _ := cmd.Flags().GetString("assignment")
			r := &steward.Rollout{Name: args[0], Assignment: assignment, FromVersion: from, ToVersion: to, MaxFailureRatio: maxFail}
			for _, s := range stages {
				st, err := parseStage(s)
				if err != nil {
					return err
				}
				r.Stages = append(r.Stages, st)
			}
			if ch.dryRun {
				p, err := ch.client(a).PreviewRollout(cmd.Context(), r, steward.PreviewOptions{})
				if err != nil {
					return err
				}
				return a.showPreview(cmd.OutOrStdout(), fmt.Sprintf("rollout %s: its first stage would move these agents of assignment %s to version %d", r.Name, r.Assignment, r.ToVersion), p, ch.force)
			}
			out, err := ch.client(a).StartRollout(cmd.Context(), r)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Rollout %s started: assignment %s, version %d → %d in %d stage(s).\n",
				out.Name, out.Assignment, out.FromVersion, out.ToVersion, len(out.Stages))
			return nil
		}),
	}
	start.Flags().String("assignment", "", "assignment to move (required)")
	start.Flags().IntVar(&to, "to", 0, "config version to roll out (required)")
	start.Flags().IntVar(&from, "from", 0, "version agents run before (default: what the assignment gives now)")
	start.Flags().StringArrayVar(&stages, "stage", nil, "a stage: N% of agents, or a label selector (repeat, in order)")
	start.Flags().Float64Var(&maxFail, "max-failure-ratio", 0, "pause when failed/targeted exceeds this (0: any failure pauses)")
	ch.flags(start)
	_ = start.MarkFlagRequired("assignment")
	_ = start.MarkFlagRequired("to")
	_ = start.MarkFlagRequired("stage")

	list := &cobra.Command{
		Use:   "list",
		Short: "List rollouts",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			rs, err := a.client().Rollouts(cmd.Context())
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), map[string]any{"rollouts": rs})
			}
			if len(rs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No rollouts found.")
				return nil
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, []string{r.Name, r.Assignment, fmt.Sprintf("%d → %d", r.FromVersion, r.ToVersion), r.State,
					fmt.Sprintf("%d/%d", min(r.Stage+1, len(r.Stages)), len(r.Stages)), progressText(r.Progress), when(r.UpdatedAt)})
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "ASSIGNMENT", "VERSIONS", "STATE", "STAGE", "PROGRESS", "UPDATED"}, rows)
		}),
	}
	show := a.rolloutVerb("show", "Show a rollout and its progress", func(ctx context.Context, name string) (*steward.Rollout, error) {
		return a.client().Rollout(ctx, name)
	})
	pause := a.rolloutVerb("pause", "Pause a running rollout", func(ctx context.Context, name string) (*steward.Rollout, error) {
		return a.client().PauseRollout(ctx, name)
	})
	resume := a.rolloutVerb("resume", "Resume a paused rollout", func(ctx context.Context, name string) (*steward.Rollout, error) {
		return a.client().ResumeRollout(ctx, name)
	})
	rollback := a.rolloutVerb("rollback", "Return every agent to the version before the rollout", func(ctx context.Context, name string) (*steward.Rollout, error) {
		return a.client().RollbackRollout(ctx, name)
	})
	cmd.AddCommand(start, list, show, pause, resume, rollback)
	return cmd
}

func (a *app) rolloutVerb(verb, short string, fn func(ctx context.Context, name string) (*steward.Rollout, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			r, err := fn(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), r)
			}
			printRollout(cmd.OutOrStdout(), r)
			return nil
		}),
	}
}

func printRollout(w io.Writer, r *steward.Rollout) {
	fmt.Fprintf(w, "Rollout:     %s\nAssignment:  %s\nVersions:    %d → %d\nState:       %s\n", r.Name, r.Assignment, r.FromVersion, r.ToVersion, r.State)
	if r.Reason != "" {
		fmt.Fprintf(w, "Reason:      %s\n", safe(r.Reason))
	}
	fmt.Fprintf(w, "Progress:    %s\nStages:\n", progressText(r.Progress))
	for i, st := range r.Stages {
		mark := " "
		switch {
		case i < r.Stage || r.State == steward.RolloutCompleted:
			mark = "✓"
		case i == r.Stage && r.Active():
			mark = "▶"
		}
		what := st.Selector
		if st.Percent > 0 {
			what = strconv.Itoa(st.Percent) + "% of agents"
		}
		fmt.Fprintf(w, "  %s %d. %s\n", mark, i+1, safe(what))
	}
}

func progressText(p *steward.RolloutProgress) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%d applied, %d failed, %d pending of %d", p.Applied, p.Failed, p.Pending, p.Targeted)
}

// parseStage reads "25%" as a percentage stage and anything else as a
// label selector.
func parseStage(s string) (steward.RolloutStage, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			return steward.RolloutStage{}, fmt.Errorf("stage %q: a percentage must be 1%%-100%%", s)
		}
		return steward.RolloutStage{Percent: n}, nil
	}
	if _, err := steward.ParseSelector(s); err != nil {
		return steward.RolloutStage{}, err
	}
	return steward.RolloutStage{Selector: s}, nil
}
