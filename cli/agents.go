package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

func (a *app) agentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "agents",
		Aliases: []string{"agent"},
		Short:   "List and act on agents",
	}
	cmd.AddCommand(a.agentsListCommand(), a.agentsShowCommand(), a.agentsLabelCommand(),
		a.agentsRestartCommand(), a.agentsDeleteCommand())
	return cmd
}

func (a *app) agentsListCommand() *cobra.Command {
	var f steward.AgentFilter
	var online, offline bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List agents",
		Example: `  steward agents list --selector 'service.name=otelcol,env in (prod,staging)'
  steward agents list --search web --online -o json`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if online && offline {
				return usagef("--online and --offline exclude each other")
			}
			if f.Limit < 0 {
				return usagef("--limit must be >= 0")
			}
			if _, err := steward.ParseSelector(f.Selector); err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if online || offline {
				f.Online = &online
			}
			agents, total, err := a.client().Agents(cmd.Context(), f)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.output == "json" {
				return printJSON(w, stewardhttp.AgentsResponse{Agents: agents, Total: total})
			}
			if len(agents) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No agents found.")
				return nil
			}
			rows := make([][]string, 0, len(agents))
			now := time.Now()
			for _, ag := range agents {
				rows = append(rows, []string{
					ag.ID.String(), orDash(ag.Attribute(steward.AttrServiceName)), orDash(ag.Attribute(steward.AttrServiceVersion)),
					orDash(ag.Attribute(steward.AttrHostName)), onlineText(ag), healthText(ag), configStatusText(ag), ago(now, ag.LastSeen),
				})
			}
			if err := table(w, []string{"ID", "TYPE", "VERSION", "HOST", "STATUS", "HEALTH", "CONFIG", "LAST SEEN"}, rows); err != nil {
				return err
			}
			if total > len(agents) {
				fmt.Fprintf(cmd.ErrOrStderr(), "Showing %d of %d agents.\n", len(agents), total)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.Selector, "selector", "l", "", "label selector, e.g. 'env=prod,service.name in (otelcol)'")
	fl.StringVarP(&f.Search, "search", "q", "", "substring of id, service name, host name or version")
	fl.BoolVar(&online, "online", false, "only connected agents")
	fl.BoolVar(&offline, "offline", false, "only disconnected agents")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many agents (0: all)")
	return cmd
}

func onlineText(a *steward.Agent) string {
	if a.Online {
		return "online"
	}
	return "offline"
}

func healthText(a *steward.Agent) string {
	switch {
	case a.Health == nil:
		return "unknown"
	case a.Health.Healthy:
		return "healthy"
	default:
		return "unhealthy"
	}
}

func configStatusText(a *steward.Agent) string {
	if a.RemoteConfigStatus == nil || a.RemoteConfigStatus.Status == "" {
		return "-"
	}
	return string(a.RemoteConfigStatus.Status)
}

// ago renders t relative to now ("12s ago"), "-" when zero.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return t.UTC().Format(time.RFC3339)
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}

func parseID(s string) (steward.InstanceUID, error) {
	id, err := steward.ParseInstanceUID(s)
	if err != nil {
		return id, usagef("invalid agent id %q: use the UUID form (see 'steward agents list')", s)
	}
	return id, nil
}

func (a *app) agentsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one agent in detail",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			_, err := parseID(args[0])
			return err
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			id, _ := parseID(args[0])
			ag, err := a.client().Agent(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(cmd.OutOrStdout(), ag)
			}
			printAgent(cmd.OutOrStdout(), ag, time.Now())
			return nil
		}),
	}
}

func printAgent(w io.Writer, ag *steward.Agent, now time.Time) {
	line := func(k, v string) { fmt.Fprintf(w, "%-15s %s\n", k+":", safe(v)) }
	line("ID", ag.ID.String())
	line("Type", strings.TrimSpace(orDash(ag.Attribute(steward.AttrServiceName))+" "+ag.Attribute(steward.AttrServiceVersion)))
	line("Host", orDash(ag.Attribute(steward.AttrHostName)))
	status := onlineText(ag)
	if ag.Online {
		status += fmt.Sprintf(" over %s from %s, connected %s", orDash(ag.Transport), orDash(ag.RemoteAddr), ago(now, ag.ConnectedAt))
		if ag.Replica != "" {
			status += " (replica " + ag.Replica + ")"
		}
	} else if !ag.DisconnectedAt.IsZero() {
		status += ", disconnected " + ago(now, ag.DisconnectedAt)
	}
	line("Status", status)
	line("Last seen", ago(now, ag.LastSeen))
	health := healthText(ag)
	if ag.Health != nil {
		if ag.Health.Status != "" {
			health += " (" + ag.Health.Status + ")"
		}
		if ag.Health.LastError != "" {
			health += ": " + ag.Health.LastError
		}
	}
	line("Health", health)
	rc := configStatusText(ag)
	if ag.RemoteConfigStatus != nil && ag.RemoteConfigStatus.ErrorMessage != "" {
		rc += ": " + ag.RemoteConfigStatus.ErrorMessage
	}
	line("Remote config", rc)
	line("Capabilities", orDash(strings.Join(ag.Capabilities.Names(), ", ")))
	if len(ag.CustomCapabilities) > 0 {
		line("Custom caps", strings.Join(ag.CustomCapabilities, ", "))
	}
	line("Labels", orDash(formatLabels(ag.Labels)))
	if ag.Description != nil {
		fmt.Fprintln(w, "Attributes:")
		for _, kv := range ag.Description.IdentifyingAttributes {
			v, _ := kv.ScalarString()
			fmt.Fprintf(w, "  %s = %s (identifying)\n", safe(kv.Key), safe(v))
		}
		for _, kv := range ag.Description.NonIdentifyingAttributes {
			v, _ := kv.ScalarString()
			fmt.Fprintf(w, "  %s = %s\n", safe(kv.Key), safe(v))
		}
	}
	if ag.EffectiveConfig != nil && len(*ag.EffectiveConfig) > 0 {
		fmt.Fprintln(w, "Effective config:")
		names := make([]string, 0, len(*ag.EffectiveConfig))
		for n := range *ag.EffectiveConfig {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			f := (*ag.EffectiveConfig)[n]
			fmt.Fprintf(w, "  %s (%d bytes, %s)\n", safe(orDash(n)), len(f.Body), safe(orDash(f.ContentType)))
		}
	}
}

func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func (a *app) agentsLabelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "label ID KEY=VALUE... [KEY-...]",
		Short: "Set or remove operator labels of an agent",
		Long: `Set operator labels (KEY=VALUE) or remove them (KEY-) on an agent. Other
labels are kept. Selectors match operator labels as well as the attributes the
agent reports.`,
		Example: "  steward agents label 0192f1c2-... env=prod team=obs old-",
		Args:    cobra.MinimumNArgs(2),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if _, err := parseID(args[0]); err != nil {
				return err
			}
			_, _, err := parseLabelArgs(args[1:])
			return err
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			id, _ := parseID(args[0])
			set, del, _ := parseLabelArgs(args[1:])
			c := a.client()
			ag, err := c.Agent(cmd.Context(), id)
			if err != nil {
				return err
			}
			labels := map[string]string{}
			for k, v := range ag.Labels {
				labels[k] = v
			}
			for _, k := range del {
				delete(labels, k)
			}
			for k, v := range set {
				labels[k] = v
			}
			if err := c.SetAgentLabels(cmd.Context(), id, labels); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": id, "labels": labels})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Labels of %s: %s\n", id, safe(orDash(formatLabels(labels))))
			return nil
		}),
	}
}

// parseLabelArgs splits KEY=VALUE and KEY- arguments.
func parseLabelArgs(args []string) (map[string]string, []string, error) {
	set := map[string]string{}
	var del []string
	for _, arg := range args {
		if k, v, ok := strings.Cut(arg, "="); ok {
			if k == "" {
				return nil, nil, usagef("invalid label %q: the key is empty", arg)
			}
			set[k] = v
		} else if k, ok := strings.CutSuffix(arg, "-"); ok && k != "" {
			del = append(del, k)
		} else {
			return nil, nil, usagef("invalid label argument %q: use KEY=VALUE to set or KEY- to remove", arg)
		}
	}
	return set, del, nil
}

func (a *app) agentsRestartCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restart ID",
		Short: "Send an agent the Restart command",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			_, err := parseID(args[0])
			return err
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			id, _ := parseID(args[0])
			if err := a.client().RestartAgent(cmd.Context(), id); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": id, "status": "sent"})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restart command sent to %s.\n", id)
			return nil
		}),
	}
}

func (a *app) agentsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Forget an agent (it reappears if it connects again)",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			_, err := parseID(args[0])
			return err
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			id, _ := parseID(args[0])
			if err := a.client().DeleteAgent(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Agent %s deleted.\n", id)
			return nil
		}),
	}
}

func (a *app) summaryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "summary",
		Short: "Show fleet counts",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			s, err := a.client().Summary(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.output == "json" {
				return printJSON(w, s)
			}
			fmt.Fprintf(w, "Agents: %d (%d online, %d offline; %d healthy, %d unhealthy or unknown)\n",
				s.Total, s.Online, s.Offline, s.Healthy, s.Unhealthy)
			for _, sec := range []struct {
				title string
				m     map[string]int
			}{{"By type", s.ByType}, {"By version", s.ByVersion}, {"By config status", s.ByConfigStatus}} {
				if len(sec.m) == 0 {
					continue
				}
				fmt.Fprintln(w, sec.title+":")
				keys := make([]string, 0, len(sec.m))
				for k := range sec.m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(w, "  %-20s %d\n", safe(orDash(k)), sec.m[k])
				}
			}
			return nil
		}),
	}
}
