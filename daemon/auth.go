package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
)

// agentCA resolves the CA that signs agent certificates: the files given
// by --agent-ca-cert/--agent-ca-key; else, with PostgreSQL, one kept in
// the database (so replicas agree); else ca.crt/ca.key generated once in
// DataDir/agent-ca.
func agentCA(ctx context.Context, o Options, store steward.Store, log *slog.Logger) (*ca.CA, error) {
	switch {
	case o.AgentCACertFile != "" || o.AgentCAKeyFile != "":
		if o.AgentCACertFile == "" || o.AgentCAKeyFile == "" {
			return nil, fmt.Errorf("--agent-ca-cert and --agent-ca-key go together")
		}
		certPEM, err := os.ReadFile(o.AgentCACertFile)
		if err != nil {
			return nil, fmt.Errorf("agent CA certificate: %w", err)
		}
		keyPEM, err := os.ReadFile(o.AgentCAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("agent CA key: %w", err)
		}
		c, err := ca.Parse(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("agent CA: %w", err)
		}
		log.Info("agent CA: from files", "cert", o.AgentCACertFile)
		return c, nil
	case o.PostgresDSN != "":
		cs, ok := store.(steward.CredentialStore)
		if !ok {
			return nil, fmt.Errorf("agent CA: the store keeps no credentials")
		}
		c, err := ca.FromStore(ctx, cs)
		if err != nil {
			return nil, fmt.Errorf("agent CA: %w", err)
		}
		log.Info("agent CA: kept in the database")
		return c, nil
	default:
		dir := filepath.Join(o.DataDir, "agent-ca")
		c, err := ca.LoadOrCreate(dir)
		if err != nil {
			return nil, fmt.Errorf("agent CA: %w", err)
		}
		log.Info("agent CA", "dir", dir)
		return c, nil
	}
}

// opampTLS asks agents for a client certificate from the agent CA without
// requiring one (agents enroll with a token first); an invalid or expired
// certificate fails the handshake.
func opampTLS(c *ca.CA) *tls.Config {
	return &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: c.Pool(), MinVersion: tls.VersionTLS12}
}
