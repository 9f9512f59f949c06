// Command steward-k8s-bridge reports the OpenTelemetry Operator's
// OpenTelemetryCollector resources to a Steward server as OpAMP agents and
// applies the remote config Steward assigns to them. See docs/kubernetes.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/stewardhq/steward/bridge"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "steward-k8s-bridge:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("steward-k8s-bridge", flag.ContinueOnError)
	server := fs.String("server", "ws://steward.steward.svc:4320/v1/opamp", "Steward OpAMP endpoint (ws, wss, http or https)")
	namespaces := fs.String("namespaces", "", "comma-separated namespaces to watch; empty watches all (needs cluster-wide RBAC)")
	cluster := fs.String("cluster-name", "", "reported as k8s.cluster.name")
	apiVersion := fs.String("api-version", bridge.DefaultVersion, "OpenTelemetryCollector API version: v1beta1 or v1alpha1")
	managed := fs.String("managed-selector", "", `label selector of collectors that accept remote config, besides those annotated steward.dev/managed: "true"`)
	tokenFile := fs.String("token-file", "", "file holding the enrollment token sent to Steward's OpAMP endpoint (re-read on every connection); the STEWARD_ENROLLMENT_TOKEN environment variable is used when unset (never STEWARD_TOKEN, the CLI's API token)")
	caFile := fs.String("ca-file", "", "PEM CA bundle to verify a wss/https Steward server")
	insecure := fs.Bool("insecure-skip-tls-verify", false, "do not verify the Steward server's certificate (testing only)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file; empty uses the in-cluster service account")
	heartbeat := fs.Duration("heartbeat-interval", 30*time.Second, "OpAMP heartbeat interval of each agent")
	healthAddr := fs.String("health-addr", ":8081", "serve /healthz (live) and /readyz (caches synced) here; empty disables")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	elect := fs.Bool("leader-elect", false, "run several bridges for the same namespaces: only the holder of a coordination.k8s.io Lease acts")
	electNS := fs.String("leader-elect-namespace", "", "namespace of the Lease; default: the pod's namespace (service account), else POD_NAMESPACE")
	electName := fs.String("leader-elect-name", "steward-k8s-bridge", "name of the Lease")
	electID := fs.String("leader-elect-id", "", "identity of this bridge in the election; default: hostname (the pod name) plus a random suffix")
	leaseDuration := fs.Duration("leader-elect-lease-duration", 15*time.Second, "a follower takes over this long after the leader's last renewal")
	renewDeadline := fs.Duration("leader-elect-renew-deadline", 10*time.Second, "the leader stops acting when it could not renew the Lease for this long")
	retryPeriod := fs.Duration("leader-elect-retry-period", 2*time.Second, "interval between attempts to acquire or renew the Lease")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	dyn, kube, err := bridge.KubeClients(*kubeconfig)
	if err != nil {
		return err
	}
	cfg := bridge.Config{
		Endpoint:          *server,
		Dynamic:           dyn,
		Kube:              kube,
		ClusterName:       *cluster,
		APIVersion:        *apiVersion,
		ManagedSelector:   *managed,
		HeartbeatInterval: *heartbeat,
		Logger:            log,
	}
	for _, ns := range strings.Split(*namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			cfg.Namespaces = append(cfg.Namespaces, ns)
		}
	}
	cfg.Header, cfg.HeaderFunc = enrollmentToken(*tokenFile, os.Getenv)
	if cfg.Header == nil && cfg.HeaderFunc == nil && os.Getenv("STEWARD_TOKEN") != "" {
		log.Info("STEWARD_TOKEN is the CLI's API token and is not sent to the OpAMP endpoint; give the bridge an enrollment token with --token-file or STEWARD_ENROLLMENT_TOKEN")
	}
	if *caFile != "" || *insecure {
		tc := &tls.Config{InsecureSkipVerify: *insecure}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return fmt.Errorf("--ca-file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--ca-file %s: no PEM certificates", *caFile)
			}
		}
		cfg.TLSConfig = tc
	}
	if *elect {
		le, err := leaderElection(*electNS, *electName, *electID)
		if err != nil {
			return err
		}
		le.LeaseDuration, le.RenewDeadline, le.RetryPeriod = *leaseDuration, *renewDeadline, *retryPeriod
		cfg.LeaderElection = le
	}
	b, err := bridge.New(cfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *healthAddr != "" {
		ln, err := net.Listen("tcp", *healthAddr)
		if err != nil {
			return fmt.Errorf("--health-addr: %w", err)
		}
		hs := &http.Server{Handler: bridge.HealthHandler(b), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		log.Info("serving probes", "addr", ln.Addr().String())
	}
	log.Info("steward-k8s-bridge starting", "server", *server, "namespaces", cfg.Namespaces, "cluster", *cluster, "api_version", *apiVersion, "leader_elect", *elect)
	return b.Run(ctx)
}

// saNamespaceFile holds the pod's namespace in a cluster.
const saNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// leaderElection fills the Lease's namespace (flag, the pod's namespace, or
// POD_NAMESPACE) and this bridge's identity (flag, or hostname plus a random
// suffix, so a restarted pod of the same name is a new candidate).
func leaderElection(ns, name, id string) (*bridge.LeaderElection, error) {
	if ns == "" {
		if b, err := os.ReadFile(saNamespaceFile); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		return nil, errors.New("--leader-elect: set --leader-elect-namespace (no service account namespace or POD_NAMESPACE found)")
	}
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--leader-elect: hostname for the identity: %w", err)
		}
		id = host + "_" + uuid.NewString()
	}
	return &bridge.LeaderElection{Namespace: ns, Name: name, Identity: id}, nil
}

// enrollmentToken returns how the bridge presents its enrollment token: read
// from tokenFile before every connection, else the STEWARD_ENROLLMENT_TOKEN
// variable, else nothing. STEWARD_TOKEN (the CLI's API token) is never
// sent: Steward refuses a bearer token it does not know as an enrollment
// token, even when agent authentication is not required.
func enrollmentToken(tokenFile string, getenv func(string) string) (http.Header, func(http.Header) http.Header) {
	switch {
	case tokenFile != "":
		return nil, bridge.BearerTokenFile(tokenFile)
	case strings.TrimSpace(getenv("STEWARD_ENROLLMENT_TOKEN")) != "":
		return http.Header{"Authorization": {"Bearer " + strings.TrimSpace(getenv("STEWARD_ENROLLMENT_TOKEN"))}}, nil
	}
	return nil, nil
}
