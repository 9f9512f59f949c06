package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
		a.agentsRestartCommand(), a.agentsDeleteCommand(), a.agentsBulkCommand())
	return cmd
}

func (a *app) agentsListCommand() *cobra.Command {
	var ff filterFlags
	f := &ff.f
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List agents",
		Example: `  steward agents list --selector 'service.name=otelcol,env in (prod,staging)'
  steward agents list --search web --online -o json
  steward agents list --sync failed --sort -last_seen
  steward agents list --health unhealthy --type otelcol --attr host.arch=arm64 --limit 50 --offset 50`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if f.Limit < 0 {
				return usagef("--limit must be >= 0")
			}
			if f.Offset < 0 {
				return usagef("--offset must be >= 0")
			}
			return ff.parse()
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			agents, total, err := a.client().Agents(cmd.Context(), *f)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.AgentsResponse{Agents: agents, Total: total})
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
					orDash(ag.Attribute(steward.AttrHostName)), onlineText(ag), healthText(ag), configStatusText(ag), string(ag.SyncState()),
					desiredText(ag), ago(now, ag.LastSeen),
				})
			}
			if err := table(w, []string{"ID", "TYPE", "VERSION", "HOST", "STATUS", "HEALTH", "CONFIG", "SYNC", "DESIRED", "LAST SEEN"}, rows); err != nil {
				return err
			}
			if total > len(agents) {
				fmt.Fprintf(cmd.ErrOrStderr(), "Showing %d of %d agents.\n", len(agents), total)
			}
			return nil
		}),
	}
	ff.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&ff.sort, "sort", "", "order by id, sync, health, online, type, version, host or last_seen; prefix - for descending")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many agents (0: all)")
	fl.IntVar(&f.Offset, "offset", 0, "skip this many agents first")
	return cmd
}

// filterFlags are the agent filter flags 'agents list' and 'agents bulk'
// share.
type filterFlags struct {
	f               steward.AgentFilter
	online, offline bool
	sync, health    string
	config, sort    string
	attrs           []string
}

func (ff *filterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&ff.f.Selector, "selector", "l", "", "label selector, e.g. 'env=prod,service.name in (otelcol)'")
	fl.StringVarP(&ff.f.Search, "search", "q", "", "substring of id, service name, host name or version")
	fl.BoolVar(&ff.online, "online", false, "only connected agents")
	fl.BoolVar(&ff.offline, "offline", false, "only disconnected agents")
	fl.StringVar(&ff.sync, "sync", "", "only agents in this sync state (or any of several, comma-separated): in_sync, pending, applying, failed, rolled_back, drifted, offline")
	fl.StringVar(&ff.config, "config", "", "only agents that reported this remote config status: applied, applying, failed, unset")
	fl.StringVar(&ff.health, "health", "", "only agents with this health: healthy, unhealthy, unknown (offline or not reported)")
	fl.StringVar(&ff.f.Type, "type", "", "only agents whose service.name is exactly this")
	fl.StringVar(&ff.f.Version, "version", "", "only agents whose service.version is exactly this")
	fl.StringArrayVar(&ff.attrs, "attr", nil, "only agents that report this attribute value, KEY=VALUE (repeatable)")
}

// parse fills ff.f from the flag values; a usage error names the bad flag.
func (ff *filterFlags) parse() error {
	f := &ff.f
	if ff.online && ff.offline {
		return usagef("--online and --offline exclude each other")
	}
	if ff.online || ff.offline {
		f.Online = &ff.online
	}
	if _, err := steward.ParseSelector(f.Selector); err != nil {
		return usagef("%s", steward.ErrorMessage(err))
	}
	var err error
	for _, name := range strings.Split(ff.sync, ",") {
		if ff.sync == "" {
			break
		}
		st, err := steward.ParseSyncState(name)
		if err != nil {
			return usagef("--sync: %s", steward.ErrorMessage(err))
		}
		f.SyncAny = append(f.SyncAny, st)
	}
	if len(f.SyncAny) == 1 {
		f.Sync, f.SyncAny = f.SyncAny[0], nil
	}
	if ff.config != "" {
		if f.ConfigStatus, err = steward.ParseRemoteConfigState(strings.ToUpper(ff.config)); err != nil {
			return usagef("--config: %s", steward.ErrorMessage(err))
		}
	}
	if ff.health != "" {
		if f.Health, err = steward.ParseHealthState(ff.health); err != nil {
			return usagef("--health: %s", steward.ErrorMessage(err))
		}
	}
	if f.Sort, f.Desc, err = steward.ParseAgentSort(ff.sort); err != nil {
		return usagef("--sort: %s", steward.ErrorMessage(err))
	}
	for _, kv := range ff.attrs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("--attr %q: want KEY=VALUE", kv)
		}
		if f.Attributes == nil {
			f.Attributes = map[string]string{}
		}
		f.Attributes[k] = v
	}
	return nil
}

func onlineText(a *steward.Agent) string {
	if a.Online {
		return "online"
	}
	return "offline"
}

// healthText is the agent's health as the fleet list shows it (unknown
// while offline: its last report says nothing about now).
func healthText(a *steward.Agent) string { return string(a.HealthState()) }

// desiredText names the config versions the agent should run ("-" for
// none).
func desiredText(a *steward.Agent) string {
	if a.Sync == nil || a.Sync.Desired == nil {
		return "-"
	}
	return a.Sync.Desired.Configs.String()
}

// syncLines describes the agent's sync state for 'agents show': the state,
// what it should run, what it runs (resolved from the reported hash, or
// "not from Steward"), and a failure Steward remembers.
func syncLines(line func(k, v string), a *steward.Agent, cfg *stewardhttp.AgentConfigResponse) {
	st := string(a.SyncState())
	if a.Sync != nil && !a.Sync.Since.IsZero() && a.Online {
		st += " since " + a.Sync.Since.Local().Format(time.DateTime)
	}
	line("Sync", st)
	if cfg != nil {
		configLines(line, cfg)
		if a.Sync != nil && len(a.Sync.FailedHash) > 0 {
			line("Failed", "hash "+a.Sync.FailedHash.Short()+": "+orDash(a.Sync.Error))
		}
		return
	}
	if a.Sync == nil {
		return
	}
	if d := a.Sync.Desired; d != nil {
		line("Desired", d.Configs.String()+" "+assignmentsText(d.Configs)+"hash "+d.Hash.Short())
	} else {
		line("Desired", "-")
	}
	switch {
	case a.Sync.Running != nil:
		line("Running", a.Sync.Running.Configs.String()+" "+assignmentsText(a.Sync.Running.Configs)+"hash "+a.Sync.Running.Hash.Short())
	case len(a.Sync.RunningHash) > 0:
		line("Running", "not from Steward, hash "+a.Sync.RunningHash.Short())
	default:
		line("Running", "no remote config reported")
	}
	if len(a.Sync.FailedHash) > 0 {
		line("Failed", "hash "+a.Sync.FailedHash.Short()+": "+orDash(a.Sync.Error))
	}
}

func assignmentsText(refs steward.ConfigRefs) string {
	if len(refs) == 0 {
		return ""
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Assignment
	}
	return "(assignment " + strings.Join(names, ", ") + ") "
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
	var selector string
	cmd := &cobra.Command{
		Use:   "show ID | --selector SELECTOR",
		Short: "Show agents in detail: status, health, config bodies, packages",
		Long: `Show one agent (by id) or every agent matching a label selector in detail:
connection, health, remote config status with the agent's error, labels,
attributes, package statuses with their messages, and the body of each file
of the effective config the agent reports.`,
		Example: `  steward agents show 0192f1c2-...
  steward agents show --selector service.name=syslog-ng
  steward agents show 0192f1c2-... -o yaml`,
		Args: cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (selector != "") {
				return usagef("give an agent id or --selector, not both")
			}
			if selector != "" {
				if _, err := steward.ParseSelector(selector); err != nil {
					return usagef("%s", steward.ErrorMessage(err))
				}
				return nil
			}
			_, err := parseID(args[0])
			return err
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if selector == "" {
				id, _ := parseID(args[0])
				ag, err := a.client().Agent(cmd.Context(), id)
				if err != nil {
					return err
				}
				if a.structured() {
					return a.print(w, ag)
				}
				cfg, err := a.client().AgentConfig(cmd.Context(), id)
				if err != nil {
					return err
				}
				printAgent(w, ag, cfg, time.Now())
				return nil
			}
			agents, err := a.agentsDetail(cmd.Context(), selector)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(w, stewardhttp.AgentsResponse{Agents: agents, Total: len(agents)})
			}
			if len(agents) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No agents found.")
				return nil
			}
			now := time.Now()
			for i, ag := range agents {
				if i > 0 {
					fmt.Fprintln(w)
				}
				cfg, err := a.client().AgentConfig(cmd.Context(), ag.ID)
				if err != nil && steward.ErrorCode(err) != steward.ENOTFOUND {
					return fmt.Errorf("agent %s: %w", ag.ID, err)
				}
				printAgent(w, ag, cfg, now)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "show every agent matching this label selector")
	cmd.Flags().BoolVar(&a.reveal, "reveal", false, "show secrets in the effective config in clear (admin only; audited)")
	return cmd
}

// agentsDetail returns every agent matching selector, each read in full.
func (a *app) agentsDetail(ctx context.Context, selector string) ([]*steward.Agent, error) {
	c := a.client()
	list, _, err := c.Agents(ctx, steward.AgentFilter{Selector: selector})
	if err != nil {
		return nil, err
	}
	out := make([]*steward.Agent, 0, len(list))
	for _, ag := range list {
		full, err := c.Agent(ctx, ag.ID)
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", ag.ID, err)
		}
		out = append(out, full)
	}
	return out, nil
}

// printAgent prints the agent in detail; cfg (nil: not known) names the
// assignments that apply, the desired and running config versions and the
// diff of the effective config.
func printAgent(w io.Writer, ag *steward.Agent, cfg *stewardhttp.AgentConfigResponse, now time.Time) {
	line := func(k, v string) {
		if k != "" { // "": one more value of the line above
			k += ":"
		}
		fmt.Fprintf(w, "%-15s %s\n", k, safe(v))
	}
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
	if ag.Online && ag.Health != nil && ag.Health.Status != "" {
		health += " (" + ag.Health.Status + ")"
	}
	switch {
	case ag.HealthState() == steward.HealthUnhealthy:
		health += ": " + orDash(ag.HealthReason())
	case !ag.Online && ag.Health != nil && ag.Health.Healthy:
		health += " (offline; last reported healthy)"
	case !ag.Online && ag.Health != nil:
		health += " (offline; last reported unhealthy: " + orDash(ag.Health.Reason()) + ")"
	}
	line("Health", health)
	rc := configStatusText(ag)
	if ag.RemoteConfigStatus != nil && ag.RemoteConfigStatus.ErrorMessage != "" {
		rc += ": " + ag.RemoteConfigStatus.ErrorMessage
	}
	if ag.RemoteConfigStatus != nil && len(ag.RemoteConfigStatus.LastRemoteConfigHash) > 0 {
		rc += " (hash " + ag.RemoteConfigStatus.LastRemoteConfigHash.Short() + ")"
	}
	line("Remote config", rc)
	syncLines(line, ag, cfg)
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
	printPackages(w, ag.PackageStatuses)
	if ag.EffectiveConfig != nil && len(*ag.EffectiveConfig) > 0 {
		fmt.Fprintln(w, "Effective config:")
		printConfigFiles(w, *ag.EffectiveConfig)
	}
	if cfg != nil && cfg.Diff != "" {
		fmt.Fprintln(w, "Desired -> effective:")
		for _, l := range strings.Split(strings.TrimRight(cfg.Diff, "\n"), "\n") {
			fmt.Fprintln(w, strings.TrimRight("  "+safeKeepTabs(l), " \t"))
		}
	}
}

// configLines names the config versions from the agent's config view —
// desired, running (unknown/local when its hash matches no stored
// version) — and every assignment that applies, by selector or by id.
func configLines(line func(k, v string), cfg *stewardhttp.AgentConfigResponse) {
	version := func(v *stewardhttp.AgentConfigVersion) string {
		if !v.Known {
			return v.Label + " (not from Steward), hash " + v.Hash.Short()
		}
		return v.Label + " " + assignmentsText(v.Configs) + "hash " + v.Hash.Short()
	}
	if cfg.Desired != nil {
		line("Desired", version(cfg.Desired))
	} else {
		line("Desired", "-")
	}
	if cfg.Running != nil {
		line("Running", version(cfg.Running))
	} else {
		line("Running", "no remote config reported")
	}
	if len(cfg.Assignments) == 0 {
		line("Assignments", "-")
	}
	for i, as := range cfg.Assignments {
		how := "this agent"
		if as.Match == "selector" {
			how = "selector " + as.Selector
		}
		ver := "?"
		if as.ConfigVersion > 0 {
			ver = strconv.Itoa(as.ConfigVersion)
		}
		k := ""
		if i == 0 {
			k = "Assignments"
		}
		line(k, fmt.Sprintf("%s: %s@%s, priority %d (%s)", as.Name, as.ConfigName, ver, as.Priority, how))
	}
	if cfg.Diff == "" && cfg.DiffNote != "" {
		line("Effective", cfg.DiffNote)
	}
}

// printPackages lists the agent's package statuses, one line each with the
// version it has, the version offered and the agent's message (an
// INSTALL_FAILED reason), under the agent's overall package error if any.
func printPackages(w io.Writer, ps *steward.PackageStatuses) {
	if ps == nil || (len(ps.Packages) == 0 && ps.ErrorMessage == "") {
		return
	}
	fmt.Fprintln(w, "Packages:")
	if ps.ErrorMessage != "" {
		fmt.Fprintf(w, "  error: %s\n", safe(ps.ErrorMessage))
	}
	names := make([]string, 0, len(ps.Packages))
	for n := range ps.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := ps.Packages[n]
		line := fmt.Sprintf("  %s %s", safe(n), safe(string(p.Status)))
		if p.Status == steward.PackageDownloading && p.DownloadPercent > 0 {
			line += fmt.Sprintf(" %.0f%%", p.DownloadPercent)
		}
		line += fmt.Sprintf(" (has %s, offered %s)", safe(orDash(p.AgentHasVersion)), safe(orDash(p.ServerOfferedVersion)))
		if p.ErrorMessage != "" {
			line += ": " + safe(p.ErrorMessage)
		}
		fmt.Fprintln(w, line)
	}
}

// printConfigFiles prints each file of m, in name order, under a header
// giving its name ("default file" for the unnamed one an agent reads by
// default), size and content type, with its body indented; a body that is
// not UTF-8 text is summarised instead of printed.
func printConfigFiles(w io.Writer, m steward.ConfigMap) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := m[n]
		name := n
		if name == "" {
			name = "default file"
		}
		ct := f.ContentType
		if ct == "" {
			ct = "no content type"
		}
		fmt.Fprintf(w, "  %s (%d bytes, %s)", safe(name), len(f.Body), safe(ct))
		switch {
		case len(f.Body) == 0:
			fmt.Fprintln(w, ": empty")
		case !utf8.Valid(f.Body):
			fmt.Fprintln(w, ": binary, not shown (see -o json)")
		default:
			fmt.Fprintln(w, ":")
			for _, l := range strings.Split(strings.TrimRight(string(f.Body), "\n"), "\n") {
				fmt.Fprintln(w, strings.TrimRight("    "+safeKeepTabs(l), " \t"))
			}
		}
	}
}

// safeKeepTabs is safe for a line of a config body, where tabs are
// indentation rather than a way to disguise text.
func safeKeepTabs(line string) string {
	parts := strings.Split(line, "\t")
	for i, p := range parts {
		parts[i] = safe(p)
	}
	return strings.Join(parts, "\t")
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
			if a.structured() {
				return a.print(cmd.OutOrStdout(), map[string]any{"id": id, "labels": labels})
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
			d, err := a.client().RestartAgent(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), map[string]any{"id": id, "status": d.Status, "until": d.Until})
			}
			if d.Status == steward.DeliveryQueued {
				fmt.Fprintf(cmd.OutOrStdout(), "Restart command queued for %s: a plain-HTTP agent receives it with its next poll (if it polls before %s).\n",
					id, d.Until.Local().Format("15:04:05"))
				return nil
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
			if a.structured() {
				return a.print(w, s)
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
