package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// change holds the flags every command that changes what agents run has:
// --dry-run prints the server's preview instead, --force makes a change
// its preview blocks (audited by the server).
type change struct {
	dryRun, force bool
}

func (ch *change) flags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&ch.dryRun, "dry-run", false, "print what the change would do (agents, diffs, validation) and change nothing")
	cmd.Flags().BoolVar(&ch.force, "force", false, "make the change even though validation blocks it (audited)")
}

// client returns the API client, forcing when --force is given.
func (ch *change) client(a *app) *stewardhttp.Client {
	c := a.client()
	c.Force = ch.force
	return c
}

// errBlocked ends a dry run whose change would be refused, so that scripts
// can gate on the exit status.
var errBlocked = fmt.Errorf("the change is blocked by validation; fix it or give --force")

// showPreview prints a preview (in the -o format, or for people) and
// returns errBlocked when the change would be refused.
func (a *app) showPreview(w io.Writer, what string, p *stewardhttp.PreviewResponse, force bool) error {
	if a.structured() {
		if err := a.print(w, p); err != nil {
			return err
		}
	} else {
		writePreview(w, what, p)
	}
	if p.Blocked && !force {
		return errBlocked
	}
	return nil
}

func writePreview(w io.Writer, what string, p *stewardhttp.PreviewResponse) {
	fmt.Fprintf(w, "Dry run: %s.\n", what)
	fmt.Fprintf(w, "Agents: %d matched, %d would change.\n", p.Matched, p.Changed)
	writeFindings(w, p.Findings)
	if p.Missing > 0 {
		fmt.Fprintf(w, "Agents lacking components the config defines: %d\n", p.Missing)
		for _, m := range p.MissingAgents {
			fmt.Fprintf(w, "  %s %s: %s\n", m.ID, m.Name, components(m.Missing))
		}
	}
	if p.Unchecked > 0 {
		fmt.Fprintf(w, "Agents that report no available components (not checked): %d\n", p.Unchecked)
	}
	if p.ConfigDiff != "" {
		fmt.Fprintf(w, "\nChanges to the config (version %d):\n%s", p.Version, p.ConfigDiff)
	}
	writeAgentDiffs(w, p)
	switch {
	case p.Blocked:
		fmt.Fprintln(w, "\nBlocked: the change would be refused (give --force to override; audited).")
	case p.Changed == 0:
		fmt.Fprintln(w, "\nNo agent's config would change.")
	default:
		fmt.Fprintln(w, "\nNot blocked: nothing was changed (run without --dry-run to apply).")
	}
}

func writeFindings(w io.Writer, fs []steward.Finding) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "Validation: no findings.")
		return
	}
	errs := 0
	for _, f := range fs {
		if f.Severity == steward.SeverityError {
			errs++
		}
	}
	fmt.Fprintf(w, "Validation: %d error(s), %d warning(s)\n", errs, len(fs)-errs)
	for _, f := range fs {
		fmt.Fprintf(w, "  %s\n", f)
	}
}

// writeAgentDiffs prints the listed agents grouped by their diff: a fleet
// usually shares a few.
func writeAgentDiffs(w io.Writer, p *stewardhttp.PreviewResponse) {
	if len(p.Agents) == 0 {
		return
	}
	byDiff := map[string][]string{}
	notes := map[string]string{}
	for _, a := range p.Agents {
		if a.Diff == "" {
			notes[a.Diff] = a.DiffNote
		}
		state := "offline"
		if a.Online {
			state = "online"
		}
		byDiff[a.Diff] = append(byDiff[a.Diff], strings.TrimSpace(a.ID.String()+" "+a.Name)+" ("+state+")")
	}
	diffs := make([]string, 0, len(byDiff))
	for d := range byDiff {
		diffs = append(diffs, d)
	}
	sort.Slice(diffs, func(i, j int) bool { return len(byDiff[diffs[i]]) > len(byDiff[diffs[j]]) })
	fmt.Fprintf(w, "\nChanged agents (%d of %d listed), the config each would get against the one it reports:\n", len(p.Agents), p.Changed)
	for _, d := range diffs {
		for _, name := range byDiff[d] {
			fmt.Fprintf(w, "  %s\n", name)
		}
		if d == "" {
			fmt.Fprintf(w, "    (%s)\n", notes[d])
		} else {
			fmt.Fprint(w, indent(d, "    "))
		}
	}
}

func indent(s, pre string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(pre + l)
		}
	}
	return b.String()
}

func components(cs []steward.Component) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}
