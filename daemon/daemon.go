// Package daemon runs `steward server`: it wires a store (embedded SQLite or
// PostgreSQL), the control plane, the OpAMP transport on :4320 /v1/opamp and
// the REST API with the web UI, and shuts them down in order.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/http/ui"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/prometheus"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/telemetry"
	"github.com/stewardhq/steward/users"
)

// Options configure a server run. Zero values take the documented defaults.
type Options struct {
	// OpAMPAddr is the OpAMP listen address; default ":4320".
	OpAMPAddr string
	// HTTPAddr serves the REST API and the web UI; default "127.0.0.1:8080".
	HTTPAddr string
	// DataDir holds the SQLite database and generated secrets; default
	// ".data" (ignored for the database when PostgresDSN is set).
	DataDir string
	// PostgresDSN selects the PostgreSQL store (for several replicas).
	PostgresDSN string
	// Replica names this server; default the host name.
	Replica string
	// TLSCertFile and TLSKeyFile serve OpAMP over TLS (wss://, https://).
	TLSCertFile, TLSKeyFile string
	// HTTPTLSCertFile and HTTPTLSKeyFile serve the REST API and the UI
	// over TLS (https://); session cookies are then Secure.
	HTTPTLSCertFile, HTTPTLSKeyFile string
	// HTTPSecureCookies marks session cookies Secure on a plain-HTTP
	// listener, for a TLS-terminating proxy in front of it.
	HTTPSecureCookies bool
	// SSO enables OpenID Connect single sign-on (--oidc-*); nil: off.
	SSO *stewardhttp.SSOOptions
	// TrustedProxies are the reverse proxies (CIDR prefixes) whose
	// X-Forwarded-For and X-Forwarded-Proto the REST API believes.
	TrustedProxies []netip.Prefix
	// RequireAgentAuth refuses agents without an enrollment token or a
	// client certificate.
	RequireAgentAuth bool
	// AgentCACertFile and AgentCAKeyFile give the CA that signs agent
	// certificates (default: generated, see agentCA).
	AgentCACertFile, AgentCAKeyFile string
	// AgentCertLifetime of issued agent certificates; default 30 days.
	AgentCertLifetime time.Duration
	// AdminPassword protects the UI and API. Empty: a random one is
	// generated once and kept in DataDir/admin-password. "-" disables
	// authentication (local development only).
	AdminPassword string
	// APITokens are bearer tokens accepted by the REST API.
	APITokens []string
	// HeartbeatInterval expected of agents; default 30s.
	HeartbeatInterval time.Duration
	// MaxConnections bounds WebSocket agents; 0: derived from the open-file
	// limit (server.DefaultMaxConnections), negative: unlimited.
	MaxConnections int
	// FirstMessageTimeout closes a WebSocket that sends no message this
	// long after its upgrade; default 30 s.
	FirstMessageTimeout time.Duration
	// WriteTimeout closes a WebSocket agent that accepts no byte of what it
	// is sent for this long; a slow reader that does read is never cut
	// off. Default 2 minutes.
	WriteTimeout time.Duration
	// PushBudgetMiB bounds the MiB of large messages (big configs,
	// package offers) in flight to agents at once (server.Config.PushBudget);
	// 0: 64 MiB, negative: no bound.
	PushBudgetMiB int
	// ReplicaLease is how long a replica may go without renewing its lease
	// before the others mark its agents offline; default 60s.
	ReplicaLease time.Duration
	// OpAMPPublicURL is the OpAMP URL offered to agents as the
	// destination_endpoint of OpAMP connection settings (heartbeat,
	// certificates); default: the URL each agent connected to.
	OpAMPPublicURL string
	// PackageURL is how agents reach package downloads (the OpAMP
	// listener serves them too), e.g. "https://steward.example.com:4320".
	// Default: derived from OpAMPAddr when it names a host, else download
	// URLs are relative to the agent's OpAMP endpoint (see docs/packages.md).
	PackageURL string
	// TrustedPackageKeys are ed25519 public keys (base64 or hex) whose
	// signatures are accepted on uploaded packages, besides the server's.
	TrustedPackageKeys []string
	// MaxPackageSize bounds package uploads; default 1 GiB.
	MaxPackageSize int64
	Logger         *slog.Logger
	// Ready, if set, receives the bound addresses once both listeners are up.
	Ready func(opampAddr, httpAddr net.Addr)
}

// Run serves until ctx ends, then shuts down gracefully: the transport first
// (closing every agent connection), then the control plane (flushing state),
// then the store.
func Run(ctx context.Context, o Options) error {
	if o.OpAMPAddr == "" {
		o.OpAMPAddr = fmt.Sprintf(":%d", opamp.DefaultPort)
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	if o.DataDir == "" {
		o.DataDir = ".data"
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	var store steward.Store
	var broadcaster steward.Broadcaster
	var err error
	if o.PostgresDSN != "" {
		pg, err := postgres.Open(ctx, o.PostgresDSN)
		if err != nil {
			return fmt.Errorf("open postgres store: %w", err)
		}
		store, broadcaster = pg, pg
		log.Info("store: postgresql (replicas notify each other with LISTEN/NOTIFY)")
	} else {
		path := filepath.Join(o.DataDir, "steward.db")
		store, err = sqlite.Open(ctx, path)
		if err != nil {
			return fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		log.Info("store: sqlite", "path", path)
	}
	defer store.Close()

	pkgOpts, err := packageOptions(o, store)
	if err != nil {
		return err
	}
	authority, err := agentCA(ctx, o, store, log)
	if err != nil {
		return err
	}
	metrics := prometheus.New(log.With("component", "metrics"))
	cp, err := controlplane.New(ctx, controlplane.Config{
		Metrics:           metrics,
		Auth:              controlplane.AgentAuth{Require: o.RequireAgentAuth, CA: authority, CertLifetime: o.AgentCertLifetime},
		Store:             store,
		Replica:           o.Replica,
		HeartbeatInterval: o.HeartbeatInterval,
		Broadcaster:       broadcaster,
		ReplicaLease:      o.ReplicaLease,
		Packages:          pkgOpts,
		PublicURL:         o.OpAMPPublicURL,
		Logger:            log.With("component", "controlplane"),
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	metrics.Watch(cp.Stats)

	maxConns := o.MaxConnections
	switch {
	case maxConns == 0:
		maxConns = server.DefaultMaxConnections()
		log.Info("agent connection limit derived from the open-file limit (--max-connections)", "max_connections", maxConns)
	case maxConns < 0:
		maxConns = 0
	}
	transport, err := server.New(server.Config{
		Handler:             cp,
		Capabilities:        opamp.ServerCapabilities,
		MaxConnections:      maxConns,
		FirstMessageTimeout: o.FirstMessageTimeout,
		WriteTimeout:        o.WriteTimeout,
		PushBudget:          pushBudget(o.PushBudgetMiB),
		Logger:              log.With("component", "opamp"),
	})
	if err != nil {
		cp.Close()
		return fmt.Errorf("opamp transport: %w", err)
	}
	metrics.WatchTransport(transport.Stats)

	password, err := adminPassword(o, log)
	if err != nil {
		cp.Close()
		return err
	}
	if password != "" && len(o.APITokens) == 0 {
		tok, err := secretFile(filepath.Join(o.DataDir, "api-token"))
		if err != nil {
			cp.Close()
			return err
		}
		o.APITokens = []string{tok}
		log.Info("CLI/API token (export STEWARD_TOKEN=...)", "path", filepath.Join(o.DataDir, "api-token"))
	}
	if (o.HTTPTLSCertFile == "") != (o.HTTPTLSKeyFile == "") {
		cp.Close()
		return fmt.Errorf("--http-tls-cert and --http-tls-key go together")
	}
	telStore, _ := store.(steward.TelemetryStore)
	tel, err := telemetry.New(ctx, telemetry.Options{Store: telStore, Agents: cp, Logger: log.With("component", "telemetry")})
	if err != nil {
		cp.Close()
		return fmt.Errorf("own telemetry: %w", err)
	}
	defer tel.Close()
	metrics.WatchTelemetry(tel.Stats)
	sessions, _ := store.(steward.SessionStore)
	if o.SSO != nil {
		log.Info("single sign-on (OpenID Connect)", "issuer", o.SSO.Issuer, "client_id", o.SSO.ClientID,
			"roles_claim", o.SSO.RolesClaim, "groups_mapped", len(o.SSO.RoleMap))
	}
	people, err := users.New(store, log.With("component", "users"))
	if err != nil {
		cp.Close()
		return fmt.Errorf("users: %w", err)
	}
	api := stewardhttp.NewServer(stewardhttp.Options{
		Agents:         cp,
		Configs:        cp,
		Rollouts:       cp,
		Previews:       cp,
		Packages:       cp,
		Events:         cp.Bus(),
		EventLog:       cp.Events,
		Credentials:    cp,
		Users:          people,
		AdminPassword:  password,
		Sessions:       sessions,
		SecureCookies:  o.HTTPSecureCookies,
		SSO:            o.SSO,
		TrustedProxies: o.TrustedProxies,
		APITokens:      o.APITokens,
		UI:             ui.Handler(),
		OpAMP:          transport,
		Metrics:        metrics.Handler(),
		Telemetry:      tel,
		Logger:         log.With("component", "http"),
	})

	opampMux := nethttp.NewServeMux()
	opampMux.Handle(opamp.DefaultPath, transport)
	// The agents' own telemetry (OTLP/HTTP), authenticated like OpAMP.
	telemetry.NewReceiver(tel, cp, 0, log.With("component", "telemetry")).Register(opampMux)
	// Agents download offered packages from the listener they already reach.
	opampMux.Handle("GET "+controlplane.PackageContentPath+"{hash}", api)
	opampSrv := &nethttp.Server{Handler: opampMux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig: opampTLS(authority)}
	apiSrv := &nethttp.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	apiSrv.RegisterOnShutdown(func() { api.Close() }) // ends event streams

	opampLn, err := net.Listen("tcp", o.OpAMPAddr)
	if err != nil {
		cp.Close()
		return fmt.Errorf("listen opamp %s: %w", o.OpAMPAddr, err)
	}
	apiLn, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		opampLn.Close()
		cp.Close()
		return fmt.Errorf("listen http %s: %w", o.HTTPAddr, err)
	}
	scheme := "ws"
	errc := make(chan error, 2)
	go func() {
		if o.TLSCertFile != "" {
			errc <- opampSrv.ServeTLS(opampLn, o.TLSCertFile, o.TLSKeyFile)
		} else {
			errc <- opampSrv.Serve(opampLn)
		}
	}()
	if o.TLSCertFile != "" {
		scheme = "wss"
	}
	uiScheme := "http"
	go func() {
		if o.HTTPTLSCertFile != "" {
			errc <- apiSrv.ServeTLS(apiLn, o.HTTPTLSCertFile, o.HTTPTLSKeyFile)
		} else {
			errc <- apiSrv.Serve(apiLn)
		}
	}()
	if o.HTTPTLSCertFile != "" {
		uiScheme = "https"
	}
	log.Info("steward server running",
		"opamp", fmt.Sprintf("%s://%s%s", scheme, displayAddr(opampLn.Addr()), opamp.DefaultPath),
		"ui", uiScheme+"://"+displayAddr(apiLn.Addr()), "replica", cp.Replica())
	if o.Ready != nil {
		o.Ready(opampLn.Addr(), apiLn.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = apiSrv.Shutdown(sctx)
	_ = transport.Shutdown(sctx)
	_ = opampSrv.Shutdown(sctx)
	if err := cp.Close(); err != nil {
		log.Warn("control plane close", "error", err)
	}
	if errors.Is(runErr, nethttp.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

func displayAddr(a net.Addr) string {
	s := a.String()
	if strings.HasPrefix(s, "[::]:") || strings.HasPrefix(s, "0.0.0.0:") {
		_, port, _ := net.SplitHostPort(s)
		return "localhost:" + port
	}
	return s
}

// adminPassword resolves Options.AdminPassword: given, disabled ("-"), or
// generated once and kept in DataDir/admin-password (0600).
func adminPassword(o Options, log *slog.Logger) (string, error) {
	switch o.AdminPassword {
	case "-":
		log.Warn("authentication disabled (--admin-password=-): use for local development only")
		return "", nil
	case "":
	default:
		return o.AdminPassword, nil
	}
	path := filepath.Join(o.DataDir, "admin-password")
	_, statErr := os.Stat(path)
	pw, err := secretFile(path)
	if err != nil {
		return "", err
	}
	if statErr != nil {
		log.Info("generated an admin password for the UI", "password", pw, "path", path)
	} else {
		log.Info("admin password read from file", "path", path)
	}
	return pw, nil
}

// secretFile returns the secret kept in path, generating a random one (file
// mode 0600) the first time.
func secretFile(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	v := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return v, nil
}

// packageOptions configures packages: content in DataDir/packages (SQLite)
// or in the database (PostgreSQL, shared by replicas).
func packageOptions(o Options, store steward.Store) (controlplane.PackageOptions, error) {
	po := controlplane.PackageOptions{BaseURL: o.PackageURL, MaxSize: o.MaxPackageSize}
	for _, k := range o.TrustedPackageKeys {
		pub, err := steward.ParsePackageKey(k)
		if err != nil {
			return po, fmt.Errorf("trusted package key: %w", err)
		}
		po.TrustedKeys = append(po.TrustedKeys, pub)
	}
	if _, ok := store.(steward.BlobStore); !ok {
		blobs, err := blobfs.Open(filepath.Join(o.DataDir, "packages"))
		if err != nil {
			return po, err
		}
		po.Blobs = blobs
	}
	if po.BaseURL == "" {
		if host, port, err := net.SplitHostPort(o.OpAMPAddr); err == nil && host != "" && port != "0" {
			if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
				scheme := "http"
				if o.TLSCertFile != "" {
					scheme = "https"
				}
				po.BaseURL = scheme + "://" + net.JoinHostPort(host, port)
			}
		}
	}
	return po, nil
}

// pushBudget is server.Config.PushBudget for --push-budget (MiB; 0 the
// default, negative no bound).
func pushBudget(mib int) int64 {
	if mib < 0 {
		return -1
	}
	return int64(mib) << 20
}
