package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// credentialCommands returns the tokens, enrollment-tokens, certs,
// connection-settings and audit commands.
func (a *app) credentialCommands() []*cobra.Command {
	return []*cobra.Command{a.tokensCommand(), a.enrollmentTokensCommand(), a.certsCommand(), a.connectionSettingsCommand(), a.auditCommand()}
}

func (a *app) tokensCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Aliases: []string{"token"}, Short: "Manage API tokens and their roles (viewer, operator, admin)"}
	list := &cobra.Command{Use: "list", Short: "List API tokens", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			ts, err := a.client().Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), stewardhttp.TokensResponse{Tokens: ts})
			}
			rows := [][]string{}
			for _, t := range ts {
				rows = append(rows, []string{t.ID, t.Name, string(t.Role), when(t.CreatedAt), when(t.ExpiresAt), when(t.LastUsed)})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED"}, rows)
		})}
	var role, ttl string
	create := &cobra.Command{Use: "create NAME", Short: "Create an API token; its secret is printed once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := steward.ParseRole(role); err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			return run(func(cmd *cobra.Command, args []string) error {
				out, err := a.client().CreateToken(cmd.Context(), stewardhttp.CreateTokenRequest{Name: args[0], Role: steward.Role(role), TTL: ttl})
				if err != nil {
					return err
				}
				if a.structured() {
					return a.print(cmd.OutOrStdout(), out)
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "Token "+out.Token.Name+" ("+string(out.Token.Role)+") created; its secret is shown only now:")
				fmt.Fprintln(cmd.OutOrStdout(), out.Secret)
				return nil
			})(cmd, args)
		}}
	create.Flags().StringVar(&role, "role", "viewer", "role: viewer, operator or admin")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 720h (default: no expiry)")
	del := &cobra.Command{Use: "delete ID", Short: "Revoke an API token", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Token "+args[0]+" deleted.")
			return nil
		})}
	cmd.AddCommand(list, create, del)
	return cmd
}

func (a *app) enrollmentTokensCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "enrollment-tokens", Aliases: []string{"enrollment-token"}, Short: "Manage the tokens agents enroll with"}
	list := &cobra.Command{Use: "list", Short: "List enrollment tokens", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			ts, err := a.client().EnrollmentTokens(cmd.Context())
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), stewardhttp.EnrollmentTokensResponse{Tokens: ts})
			}
			rows := [][]string{}
			for _, t := range ts {
				uses := strconv.Itoa(t.Uses)
				if t.MaxUses > 0 {
					uses += "/" + strconv.Itoa(t.MaxUses)
				}
				state := "active"
				if why := t.Usable(time.Now()); why != "" {
					state = strings.TrimPrefix(why, "enrollment token ")
				}
				rows = append(rows, []string{t.ID, t.Name, orDash(t.Selector), uses, when(t.ExpiresAt), state})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "NAME", "SELECTOR", "USES", "EXPIRES", "STATE"}, rows)
		})}
	var selector, ttl string
	var maxUses int
	create := &cobra.Command{Use: "create NAME", Short: "Create an enrollment token; its secret is printed once", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			out, err := a.client().CreateEnrollmentToken(cmd.Context(), stewardhttp.CreateEnrollmentTokenRequest{Name: args[0], Selector: selector, MaxUses: maxUses, TTL: ttl})
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), out)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Enrollment token "+out.Token.Name+" created; agents send it as \"Authorization: Bearer <secret>\". Secret (shown only now):")
			fmt.Fprintln(cmd.OutOrStdout(), out.Secret)
			return nil
		})}
	create.Flags().StringVar(&selector, "selector", "", "labels an agent must report to enroll, e.g. env=prod")
	create.Flags().IntVar(&maxUses, "max-uses", 0, "number of agents it may enroll (0: no limit)")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 24h (default: no expiry)")
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke an enrollment token", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().RevokeEnrollmentToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Enrollment token "+args[0]+" revoked.")
			return nil
		})}
	cmd.AddCommand(list, create, revoke)
	return cmd
}

func (a *app) certsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Aliases: []string{"certificates"}, Short: "List and revoke agent client certificates"}
	var agent string
	list := &cobra.Command{Use: "list", Short: "List issued agent certificates, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var id *steward.InstanceUID
			if agent != "" {
				u, err := parseID(agent)
				if err != nil {
					return err
				}
				id = &u
			}
			return run(func(cmd *cobra.Command, args []string) error {
				cs, err := a.client().Certificates(cmd.Context(), id)
				if err != nil {
					return err
				}
				if a.structured() {
					return a.print(cmd.OutOrStdout(), stewardhttp.CertificatesResponse{Certificates: cs})
				}
				rows := [][]string{}
				for _, c := range cs {
					state := "valid"
					switch {
					case c.Revoked:
						state = "revoked " + when(c.RevokedAt)
					case !time.Now().Before(c.NotAfter):
						state = "expired"
					}
					rows = append(rows, []string{c.Serial, c.AgentID.String(), when(c.NotAfter), state})
				}
				return table(cmd.OutOrStdout(), []string{"SERIAL", "AGENT", "EXPIRES", "STATE"}, rows)
			})(cmd, args)
		}}
	list.Flags().StringVar(&agent, "agent", "", "only this agent's certificates")
	revoke := &cobra.Command{Use: "revoke SERIAL", Short: "Revoke a certificate: its agent is disconnected and refused", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.client().RevokeCertificate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), c)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Certificate "+c.Serial+" of agent "+c.AgentID.String()+" revoked.")
			return nil
		})}
	cmd.AddCommand(list, revoke)
	return cmd
}

func (a *app) connectionSettingsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "connection-settings", Short: "Manage own-telemetry destinations and OpAMP heartbeat offered to agents"}
	list := &cobra.Command{Use: "list", Short: "List connection settings", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cs, err := a.client().ConnectionSettingsList(cmd.Context())
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), stewardhttp.ConnectionSettingsListResponse{Settings: cs})
			}
			dest := func(d *steward.TelemetryDestination) string {
				if d == nil {
					return "-"
				}
				return d.Endpoint
			}
			rows := [][]string{}
			for _, c := range cs {
				hb := "-"
				if c.HeartbeatIntervalSeconds != nil {
					hb = strconv.FormatUint(*c.HeartbeatIntervalSeconds, 10) + "s"
				}
				m, l := dest(c.OwnMetrics), dest(c.OwnLogs)
				if c.StewardTelemetry {
					m, l = "steward", "steward"
				}
				rows = append(rows, []string{c.Name, orDash(c.Selector), strconv.Itoa(c.Priority), m, dest(c.OwnTraces), l, hb})
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "SELECTOR", "PRIORITY", "METRICS", "TRACES", "LOGS", "HEARTBEAT"}, rows)
		})}
	list.Flags().BoolVar(&a.reveal, "reveal", false, "header values in clear with -o json or yaml (admin only; audited); otherwise (redacted)")
	var c steward.ConnectionSettings
	var metrics, traces, logs string
	var headers []string
	var heartbeat int
	set := &cobra.Command{Use: "set NAME", Short: "Create or replace connection settings", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h := map[string]string{}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("invalid --header %q: use NAME=VALUE", kv)
				}
				h[k] = v
			}
			if len(h) == 0 {
				h = nil
			}
			d := func(ep string) *steward.TelemetryDestination {
				if ep == "" {
					return nil
				}
				return &steward.TelemetryDestination{Endpoint: ep, Headers: h}
			}
			c.Name, c.OwnMetrics, c.OwnTraces, c.OwnLogs = args[0], d(metrics), d(traces), d(logs)
			if heartbeat >= 0 {
				v := uint64(heartbeat)
				c.HeartbeatIntervalSeconds = &v
			}
			return run(func(cmd *cobra.Command, args []string) error {
				out, err := a.client().PutConnectionSettings(cmd.Context(), &c)
				if err != nil {
					return err
				}
				if a.structured() {
					return a.print(cmd.OutOrStdout(), out)
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "Connection settings "+out.Name+" saved.")
				return nil
			})(cmd, args)
		}}
	f := set.Flags()
	f.StringVar(&c.Selector, "selector", "", "agents the settings apply to (default: all)")
	f.IntVar(&c.Priority, "priority", 0, "per field, the highest priority matching settings win")
	f.StringVar(&metrics, "metrics", "", "OTLP/HTTP endpoint for the agents' own metrics")
	f.StringVar(&traces, "traces", "", "OTLP/HTTP endpoint for the agents' own traces")
	f.StringVar(&logs, "logs", "", "OTLP/HTTP endpoint for the agents' own logs")
	f.BoolVar(&c.StewardTelemetry, "to-steward", false, "send own metrics and logs to Steward's receiver (the preset; instead of --metrics and --logs)")
	f.StringArrayVar(&headers, "header", nil, "request header NAME=VALUE for those endpoints (repeatable)")
	f.IntVar(&heartbeat, "heartbeat", -1, "OpAMP heartbeat interval in seconds (default: not offered)")
	del := &cobra.Command{Use: "delete NAME", Short: "Delete connection settings", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteConnectionSettings(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Connection settings "+args[0]+" deleted.")
			return nil
		})}
	cmd.AddCommand(list, set, del)
	return cmd
}

func (a *app) auditCommand() *cobra.Command {
	var f steward.AuditFilter
	cmd := &cobra.Command{Use: "audit", Short: "Show the audit log, newest first", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			es, err := a.client().Audit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), stewardhttp.AuditResponse{Entries: es})
			}
			rows := [][]string{}
			for _, e := range es {
				rows = append(rows, []string{when(e.Time), e.Actor, e.Action, orDash(e.Target)})
			}
			return table(cmd.OutOrStdout(), []string{"TIME", "ACTOR", "ACTION", "TARGET"}, rows)
		})}
	cmd.Flags().StringVar(&f.Actor, "actor", "", "only entries of this actor")
	cmd.Flags().StringVar(&f.Action, "action", "", `only this action, or a prefix ending in "." (token.)`)
	cmd.Flags().StringVar(&f.Target, "target", "", `only this target, or a path target ending in /TARGET`)
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "number of entries")
	return cmd
}
