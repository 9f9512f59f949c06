package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/internal/gcpolicy"
)

// Command returns the `steward server` command. Most flags have an
// environment variable (STEWARD_<FLAG>, dashes as underscores) that sets its
// default; those holding secrets (--admin-password, --api-tokens,
// --postgres) read theirs when the command runs, so help never shows them.
func Command() *cobra.Command {
	var o Options
	var tokens, logLevel, logFormat, proxies string
	var sso stewardhttp.SSOOptions
	var secretFile, roleMap string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Steward server: OpAMP on :4320/v1/opamp, REST API and web UI on :8080",
		Long: `Run the Steward control plane.

Agents connect to ws://HOST:4320/v1/opamp (or http:// for plain-HTTP polling).
The REST API and the web UI are served on --http-addr. State is kept in an
embedded SQLite database in --data-dir, or in PostgreSQL with --postgres
(required to run several replicas).

The Go garbage collector runs at GOGC=50 (less memory per connected agent
for a little more CPU) unless the GOGC environment variable is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			hopts := &slog.HandlerOptions{Level: lvl}
			var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
			if logFormat == "json" {
				h = slog.NewJSONHandler(os.Stderr, hopts)
			}
			o.Logger = slog.New(h)
			slog.SetDefault(o.Logger)
			// Secrets come from flags or the environment at run time; they
			// are never flag defaults, which --help would print.
			if o.PostgresDSN == "" {
				o.PostgresDSN = env("POSTGRES_DSN", "")
			}
			if o.AdminPassword == "" {
				o.AdminPassword = env("ADMIN_PASSWORD", "")
			}
			if tokens == "" {
				tokens = env("API_TOKENS", "")
			}
			var err error
			if o.TrustedProxies, err = stewardhttp.ParseTrustedProxies(proxies); err != nil {
				return fmt.Errorf("--trusted-proxies: %w", err)
			}
			for _, t := range strings.Split(tokens, ",") {
				if t = strings.TrimSpace(t); t != "" {
					o.APITokens = append(o.APITokens, t)
				}
			}
			if o.SSO, err = ssoOptions(sso, secretFile, roleMap); err != nil {
				return err
			}
			gcpolicy.Apply()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.OpAMPAddr, "opamp-addr", env("OPAMP_ADDR", ":4320"), "OpAMP listen address (WebSocket and plain HTTP on /v1/opamp)")
	f.StringVar(&o.HTTPAddr, "http-addr", env("HTTP_ADDR", "127.0.0.1:8080"), "REST API and web UI listen address")
	f.StringVar(&o.DataDir, "data-dir", env("DATA_DIR", ".data"), "directory for the SQLite database and generated secrets")
	f.StringVar(&o.PostgresDSN, "postgres", "", "PostgreSQL DSN; replaces SQLite and lets several replicas share state (env STEWARD_POSTGRES_DSN)")
	f.StringVar(&o.Replica, "replica", env("REPLICA", ""), "name of this replica (default: host name)")
	f.StringVar(&o.TLSCertFile, "tls-cert", env("TLS_CERT", ""), "TLS certificate for the OpAMP listener (wss://, https://)")
	f.StringVar(&o.TLSKeyFile, "tls-key", env("TLS_KEY", ""), "TLS private key for the OpAMP listener")
	f.StringVar(&o.HTTPTLSCertFile, "http-tls-cert", env("HTTP_TLS_CERT", ""), "TLS certificate for the REST API and UI listener (https://; session cookies become Secure)")
	f.StringVar(&o.HTTPTLSKeyFile, "http-tls-key", env("HTTP_TLS_KEY", ""), "TLS private key for the REST API and UI listener")
	f.BoolVar(&o.HTTPSecureCookies, "http-secure-cookies", env("HTTP_SECURE_COOKIES", "") == "true", "mark session cookies Secure on a plain-HTTP listener behind a TLS-terminating proxy")
	f.StringVar(&proxies, "trusted-proxies", env("TRUSTED_PROXIES", ""), "comma-separated CIDR prefixes of reverse proxies whose X-Forwarded-For/-Proto are believed (login throttling per client, Secure cookies)")
	f.BoolVar(&o.RequireAgentAuth, "require-agent-auth", env("REQUIRE_AGENT_AUTH", "") == "true", "refuse agents without an enrollment token (Authorization: Bearer) or a client certificate")
	f.StringVar(&o.AgentCACertFile, "agent-ca-cert", env("AGENT_CA_CERT", ""), "CA certificate that signs agent client certificates (default: generated into DATA_DIR/agent-ca, or kept in PostgreSQL)")
	f.StringVar(&o.AgentCAKeyFile, "agent-ca-key", env("AGENT_CA_KEY", ""), "private key of --agent-ca-cert (ECDSA)")
	f.DurationVar(&o.AgentCertLifetime, "agent-cert-lifetime", envDuration("AGENT_CERT_LIFETIME", 30*24*time.Hour), "lifetime of issued agent certificates (renewed after two thirds)")
	f.StringVar(&o.AdminPassword, "admin-password", "", `UI/API admin password (env STEWARD_ADMIN_PASSWORD; default: generated once into DATA_DIR/admin-password; "-" disables auth)`)
	f.StringVar(&sso.Issuer, "oidc-issuer", env("OIDC_ISSUER", ""), "OpenID Connect issuer URL: enables single sign-on (\"Sign in with SSO\")")
	f.StringVar(&sso.ClientID, "oidc-client-id", env("OIDC_CLIENT_ID", ""), "client ID registered at the OpenID provider")
	f.StringVar(&secretFile, "oidc-client-secret-file", env("OIDC_CLIENT_SECRET_FILE", ""), "file holding the client secret (none: a public client, PKCE only)")
	f.StringVar(&sso.RedirectURL, "oidc-redirect-url", env("OIDC_REDIRECT_URL", ""), "callback URL registered at the provider, e.g. https://steward.example.com/api/v1/sso/callback (default: the console's origin + /api/v1/sso/callback)")
	f.StringVar(&sso.RolesClaim, "oidc-roles-claim", env("OIDC_ROLES_CLAIM", "groups"), "ID token claim listing the person's groups")
	f.StringVar(&roleMap, "oidc-role-map", env("OIDC_ROLE_MAP", ""), "group=role pairs, e.g. steward-admins=admin,sre=operator,everyone=viewer (highest role wins; people in no mapped group are refused)")
	f.StringVar(&tokens, "api-tokens", "", "comma-separated bearer tokens accepted by the REST API (env STEWARD_API_TOKENS)")
	f.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", envDuration("HEARTBEAT_INTERVAL", 30*time.Second), "heartbeat interval expected of agents")
	f.IntVar(&o.MaxConnections, "max-connections", envInt("MAX_CONNECTIONS", 0), "maximum concurrent WebSocket agents (0: the open-file limit less max(256, 1/8) kept for the API, UI and database; -1: unlimited)")
	f.DurationVar(&o.FirstMessageTimeout, "first-message-timeout", envDuration("FIRST_MESSAGE_TIMEOUT", 30*time.Second), "close an agent WebSocket that sends no message this long after connecting")
	f.DurationVar(&o.WriteTimeout, "write-timeout", envDuration("WRITE_TIMEOUT", 2*time.Minute), "close an agent WebSocket that accepts none of what it is sent for this long (slow readers that read are never cut off)")
	f.IntVar(&o.PushBudgetMiB, "push-budget", envInt("PUSH_BUDGET", 64), "MiB of large messages (configs and package offers of 64 KiB and more) in flight to agents at once: beyond it a push waits until agents have received or answered what they were sent, so a fleet-wide change of a big config does not fill the host's TCP memory (0: 64, -1: no bound)")
	f.DurationVar(&o.ReplicaLease, "replica-lease", envDuration("REPLICA_LEASE", 60*time.Second), "a replica silent for this long is taken as dead and its agents are marked offline")
	f.StringVar(&o.OpAMPPublicURL, "opamp-public-url", env("OPAMP_PUBLIC_URL", ""), "OpAMP URL offered to agents in OpAMP connection settings, e.g. wss://steward.example.com:4320/v1/opamp (default: the URL each agent connected to)")
	f.StringVar(&o.PackageURL, "package-url", env("PACKAGE_URL", ""), "base URL agents download packages from (the OpAMP listener serves them), e.g. https://steward.example.com:4320")
	f.StringSliceVar(&o.TrustedPackageKeys, "trusted-package-keys", envList("TRUSTED_PACKAGE_KEYS"), "ed25519 public keys (base64 or hex) whose signatures are accepted on uploaded packages")
	f.Int64Var(&o.MaxPackageSize, "max-package-size", 1<<30, "largest package upload in bytes")
	f.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", env("LOG_FORMAT", "text"), "log format: text or json")
	return cmd
}

// ssoOptions checks the --oidc-* flags; nil without --oidc-issuer.
func ssoOptions(o stewardhttp.SSOOptions, secretFile, roleMap string) (*stewardhttp.SSOOptions, error) {
	if o.Issuer == "" {
		if o.ClientID != "" || secretFile != "" || roleMap != "" {
			return nil, fmt.Errorf("--oidc-client-id, --oidc-client-secret-file and --oidc-role-map need --oidc-issuer")
		}
		return nil, nil
	}
	if o.ClientID == "" || roleMap == "" {
		return nil, fmt.Errorf("--oidc-issuer needs --oidc-client-id and --oidc-role-map")
	}
	var err error
	if o.RoleMap, err = stewardhttp.ParseRoleMap(roleMap); err != nil {
		return nil, fmt.Errorf("--oidc-role-map: %w", err)
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		if o.ClientSecret = strings.TrimSpace(string(b)); o.ClientSecret == "" {
			return nil, fmt.Errorf("--oidc-client-secret-file: %s is empty", secretFile)
		}
	}
	return &o, nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("STEWARD_" + name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv("STEWARD_" + name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv("STEWARD_" + name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envList(name string) []string {
	var out []string
	for _, v := range strings.Split(env(name, ""), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
