package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

func (a *app) configsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "configs",
		Aliases: []string{"config"},
		Short:   "Manage versioned configurations and assign them to agents",
	}
	cmd.AddCommand(a.configsListCommand(), a.configsApplyCommand(), a.configsShowCommand(),
		a.configsHistoryCommand(), a.configsDiffCommand(), a.configsAssignCommand(), a.configsDeleteCommand())
	return cmd
}

func validName(kind, name string) error {
	if err := steward.ValidateName(kind, name); err != nil {
		return usagef("%s", steward.ErrorMessage(err))
	}
	return nil
}

func shortHash(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 12 {
		s = s[:12]
	}
	return orDash(s)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func (a *app) configsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List configs (latest versions)",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cs, err := a.client().Configs(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.ConfigsResponse{Configs: cs})
			}
			if len(cs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No configs found.")
				return nil
			}
			rows := make([][]string, 0, len(cs))
			for _, c := range cs {
				rows = append(rows, []string{c.Name, strconv.Itoa(c.Version), strconv.Itoa(len(c.Files)),
					when(c.CreatedAt), orDash(c.Author), orDash(c.Comment)})
			}
			return table(w, []string{"NAME", "VERSION", "FILES", "UPDATED", "AUTHOR", "COMMENT"}, rows)
		}),
	}
}

// readFiles turns -f arguments into a config map: a single "-f path"
// becomes the default (unnamed) file, "-f name=path" a named one; "-"
// reads standard input.
func readFiles(specs []string, stdin io.Reader) (steward.ConfigMap, error) {
	m := steward.ConfigMap{}
	for _, spec := range specs {
		name, path, named := strings.Cut(spec, "=")
		if !named {
			name, path = "", spec
			if len(specs) > 1 {
				return nil, usagef("with several -f flags, name each file: -f NAME=PATH")
			}
		}
		if path == "" {
			return nil, usagef("-f %q: the path is empty", spec)
		}
		if _, dup := m[name]; dup {
			return nil, usagef("file %q given twice", name)
		}
		var body []byte
		var err error
		if path == "-" {
			body, err = io.ReadAll(stdin)
		} else {
			body, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, &runError{fmt.Errorf("reading %s: %w", path, err)}
		}
		ct := steward.ContentTypeOf(path)
		if path == "-" {
			ct = steward.ContentTypeOf(name)
			if name == "" {
				ct = "text/yaml"
			}
		}
		m[name] = steward.ConfigFile{Body: body, ContentType: ct}
	}
	return m, nil
}

func (a *app) configsApplyCommand() *cobra.Command {
	var files []string
	var comment string
	var ch change
	cmd := &cobra.Command{
		Use:   "apply NAME -f FILE [-m COMMENT]",
		Short: "Save files as the next version of a config",
		Long: `Save files as the next version of the named config. A single -f FILE is the
agent's default config file; several files are given as -f NAME=PATH. Use - as
the path to read standard input. Saving content identical to the latest version
creates no new version.

The server validates the change first (YAML syntax, collector structure, the
components each affected agent reports) and refuses it when validation blocks
it; --dry-run prints the agents it would change, their diffs and the
findings without saving, --force saves despite the findings (audited).`,
		Example: `  steward configs apply collector -f collector.yaml -m "add otlphttp exporter"
  steward configs apply collector -f collector.yaml --dry-run
  steward configs apply pipelines -f receivers=recv.yaml -f exporters=exp.yaml`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return usagef("give the config content with -f FILE")
			}
			return validName("config", args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := readFiles(files, cmd.InOrStdin())
			if err != nil {
				return err // a usage error, or already a runError
			}
			return run(func(cmd *cobra.Command, args []string) error {
				cfg := &steward.Config{Name: args[0], Files: m, Comment: comment}
				if ch.dryRun {
					p, err := ch.client(a).PreviewConfig(cmd.Context(), cfg, steward.PreviewOptions{})
					if err != nil {
						return err
					}
					return a.showPreview(cmd.OutOrStdout(), fmt.Sprintf("config %s would be saved as version %d", cfg.Name, p.Version), p, ch.force)
				}
				c, created, err := ch.client(a).ApplyConfig(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				if a.structured() {
					return a.print(cmd.OutOrStdout(), map[string]any{"config": c, "created": created})
				}
				if created {
					fmt.Fprintf(cmd.OutOrStdout(), "Config %s: created version %d.\n", c.Name, c.Version)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "Config %s: unchanged (version %d).\n", c.Name, c.Version)
				}
				return nil
			})(cmd, args)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "config file, or NAME=PATH for a named file (repeatable; - is stdin)")
	cmd.Flags().StringVarP(&comment, "message", "m", "", "comment describing the change")
	ch.flags(cmd)
	return cmd
}

func (a *app) configsShowCommand() *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "show NAME [--version N]",
		Short: "Print a config version",
		Long: `Print a config version. A config with a single default file is printed as
is (so it can be redirected to a file); several files are printed one after
the other under "==> NAME <==" headers.`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if version < 0 {
				return usagef("--version must be >= 1 (or 0 for the latest)")
			}
			return validName("config", args[0])
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.client().Config(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, c)
			}
			if f, ok := c.Files[""]; ok && len(c.Files) == 1 {
				_, err := w.Write(f.Body)
				return err
			}
			names := make([]string, 0, len(c.Files))
			for n := range c.Files {
				names = append(names, n)
			}
			sort.Strings(names)
			for i, n := range names {
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "==> %s <==\n", orDash(n))
				body := c.Files[n].Body
				w.Write(body)
				if len(body) > 0 && body[len(body)-1] != '\n' {
					fmt.Fprintln(w)
				}
			}
			return nil
		}),
	}
	cmd.Flags().IntVar(&version, "version", 0, "version to show (default: the latest)")
	return cmd
}

func (a *app) configsHistoryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List the versions of a config, newest first",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return validName("config", args[0])
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			vs, err := a.client().ConfigHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.VersionsResponse{Versions: vs})
			}
			rows := make([][]string, 0, len(vs))
			for _, c := range vs {
				rows = append(rows, []string{strconv.Itoa(c.Version), when(c.CreatedAt), orDash(c.Author), shortHash(c.Hash), orDash(c.Comment)})
			}
			return table(w, []string{"VERSION", "CREATED", "AUTHOR", "HASH", "COMMENT"}, rows)
		}),
	}
}

func (a *app) configsDiffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "diff NAME FROM TO",
		Short: "Show a unified diff between two versions of a config",
		Args:  cobra.ExactArgs(3),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := validName("config", args[0]); err != nil {
				return err
			}
			for _, v := range args[1:] {
				if n, err := strconv.Atoi(v); err != nil || n < 1 {
					return usagef("invalid version %q: versions are numbers from 1", v)
				}
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			from, _ := strconv.Atoi(args[1])
			to, _ := strconv.Atoi(args[2])
			d, err := a.client().ConfigDiff(cmd.Context(), args[0], from, to)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), d)
			}
			if d.Diff == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "Versions %d and %d of %s are identical.\n", from, to, args[0])
				return nil
			}
			_, err = io.WriteString(cmd.OutOrStdout(), d.Diff)
			return err
		}),
	}
}

func (a *app) configsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a config and all its versions (not while assigned)",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return validName("config", args[0])
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteConfig(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Config %s deleted.\n", args[0])
			return nil
		}),
	}
}

func (a *app) configsAssignCommand() *cobra.Command {
	var as steward.Assignment
	var agent string
	var ch change
	cmd := &cobra.Command{
		Use:   "assign ASSIGNMENT --config NAME (--selector S | --agent ID) [--version N]",
		Short: "Create or replace an assignment of a config to agents",
		Long: `Create or replace the named assignment: the config goes to every agent whose
labels match the selector, or to one agent. Without --version agents follow the
latest version of the config.`,
		Example: `  steward configs assign prod-collectors --config collector --selector 'env=prod'
  steward configs assign canary --config collector --version 7 --agent 0192f1c2-...`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			as.Name = args[0]
			if as.ConfigName == "" {
				return usagef("--config is required")
			}
			if (as.Selector == "") == (agent == "") {
				return usagef("give exactly one of --selector or --agent")
			}
			if agent != "" {
				id, err := parseID(agent)
				if err != nil {
					return err
				}
				as.AgentID = &id
			}
			if err := as.Validate(); err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if ch.dryRun {
				p, err := ch.client(a).PreviewAssignment(cmd.Context(), &as, steward.PreviewOptions{})
				if err != nil {
					return err
				}
				return a.showPreview(cmd.OutOrStdout(), fmt.Sprintf("assignment %s would give config %s (%s) to %s", as.Name, as.ConfigName, versionText(as.Version), targetText(&as)), p, ch.force)
			}
			stored, err := ch.client(a).PutAssignment(cmd.Context(), &as)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), stored)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Assignment %s: config %s (%s) to %s.\n", stored.Name, stored.ConfigName, versionText(stored.Version), targetText(stored))
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&as.ConfigName, "config", "", "config name (required)")
	fl.StringVarP(&as.Selector, "selector", "l", "", "label selector of the agents")
	fl.StringVar(&agent, "agent", "", "one agent's id")
	fl.IntVar(&as.Version, "version", 0, "pin this config version (default: follow the latest)")
	fl.IntVar(&as.Priority, "priority", 0, "higher wins when two assignments provide the same file")
	ch.flags(cmd)
	return cmd
}

func versionText(v int) string {
	if v == 0 {
		return "latest"
	}
	return "version " + strconv.Itoa(v)
}

func targetText(as *steward.Assignment) string {
	if as.AgentID != nil {
		return "agent " + as.AgentID.String()
	}
	return "agents matching " + as.Selector
}

func (a *app) assignmentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "assignments",
		Aliases: []string{"assignment"},
		Short:   "List and delete assignments (create them with 'steward configs assign')",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List assignments",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			as, err := a.client().Assignments(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.AssignmentsResponse{Assignments: as})
			}
			if len(as) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No assignments found.")
				return nil
			}
			rows := make([][]string, 0, len(as))
			for _, x := range as {
				target := "selector " + x.Selector
				if x.AgentID != nil {
					target = "agent " + x.AgentID.String()
				}
				rows = append(rows, []string{x.Name, x.ConfigName, versionText(x.Version), target, strconv.Itoa(x.Priority), when(x.UpdatedAt)})
			}
			return table(w, []string{"NAME", "CONFIG", "VERSION", "TARGET", "PRIORITY", "UPDATED"}, rows)
		}),
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an assignment",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return validName("assignment", args[0])
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteAssignment(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Assignment %s deleted.\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(list, del)
	return cmd
}
