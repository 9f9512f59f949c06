package cli

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// maxMessage bounds an event message in the table: one line each, however
// long the agent's error was (the whole text is in --details and -o json).
const maxMessage = 120

func (a *app) eventsCommand() *cobra.Command {
	var agent, since string
	var types []string
	var limit int
	var details bool
	cmd := &cobra.Command{
		Use:   "events [--agent ID] [--type TYPE] [--since DURATION]",
		Short: "List recent events, newest first, one line each",
		Long: `List recent events of the fleet or of one agent, newest first: time, type,
agent and a one-line message that names the config version a config event is
about. --details adds each event's details below it, hashes shortened to 12
digits; -o json or -o yaml prints everything as the API returns it.`,
		Example: `  steward events
  steward events --agent 0192f1c2-... --type agent.config_status,agent.sync
  steward events --since 1h --details`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if agent != "" {
				if _, err := parseID(agent); err != nil {
					return err
				}
			}
			if since != "" {
				if d, err := time.ParseDuration(since); err != nil || d <= 0 {
					return usagef("--since %q: give a positive duration such as 30m or 24h", since)
				}
			}
			if limit < 1 || limit > stewardhttp.MaxEventLimit {
				return usagef("--limit must be from 1 to %d", stewardhttp.MaxEventLimit)
			}
			return nil
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			f := steward.EventFilter{Limit: limit, Types: types}
			if agent != "" {
				id, _ := parseID(agent)
				f.AgentID = &id
			}
			if since != "" {
				d, _ := time.ParseDuration(since)
				f.Since = time.Now().Add(-d)
			}
			evs, err := a.client().Events(cmd.Context(), f)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				if evs == nil {
					evs = []*steward.Event{}
				}
				return a.print(w, stewardhttp.EventsResponse{Events: evs})
			}
			if len(evs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No events found.")
				return nil
			}
			if details {
				for _, ev := range evs {
					printEvent(w, ev)
				}
				return nil
			}
			rows := make([][]string, 0, len(evs))
			for _, ev := range evs {
				rows = append(rows, eventRow(ev))
			}
			return table(w, []string{"TIME", "TYPE", "AGENT", "MESSAGE"}, rows)
		}),
	}
	cmd.Flags().StringVar(&agent, "agent", "", "only the events of this agent")
	cmd.Flags().StringSliceVar(&types, "type", nil, "only events of these types (repeat or comma-separate)")
	cmd.Flags().StringVar(&since, "since", "", "only events newer than this duration ago (e.g. 1h)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many events")
	cmd.Flags().BoolVar(&details, "details", false, "print each event's details below it")
	return cmd
}

func eventRow(ev *steward.Event) []string {
	agent := "-"
	if !ev.AgentID.IsZero() {
		agent = ev.AgentID.String()
	}
	return []string{ev.Time.Local().Format(time.DateTime), ev.Type, agent, oneLine(ev.Message, maxMessage)}
}

// oneLine is the first line of s, cut to max runes with "…".
func oneLine(s string, max int) string {
	s = steward.FirstLine(s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// printEvent writes the event's row and then its details, one per line,
// hashes shortened.
func printEvent(w io.Writer, ev *steward.Event) {
	fmt.Fprintln(w, safe(strings.Join(eventRow(ev), "  ")))
	m, ok := ev.Details.(map[string]any)
	if !ok {
		if ev.Details != nil {
			fmt.Fprintf(w, "    %s\n", safe(shortHashes(fmt.Sprint(ev.Details))))
		}
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(m[k])
		if v == "" {
			continue
		}
		for i, l := range strings.Split(strings.TrimRight(shortHashes(v), "\n"), "\n") {
			if i == 0 {
				fmt.Fprintf(w, "    %s: %s\n", safe(k), safe(l))
			} else {
				fmt.Fprintf(w, "      %s\n", safe(l))
			}
		}
	}
}

var longHex = regexp.MustCompile(`\b[0-9a-f]{16,}\b`)

// shortHashes cuts every hex string of 16 digits or more to its first 12.
func shortHashes(s string) string {
	return longHex.ReplaceAllStringFunc(s, func(h string) string { return h[:12] })
}
