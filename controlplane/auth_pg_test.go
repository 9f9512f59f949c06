package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/postgres/pgtest"
)

// Replicas sharing PostgreSQL use one CA, and a revocation on one replica
// closes the agent's connection on another.
func TestRevocationAcrossPostgresReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	open := func(name string) (*controlplane.Service, *ca.CA) {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		authority, err := ca.FromStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := controlplane.New(ctx, controlplane.Config{Store: db, Broadcaster: db, Replica: name,
			Auth: controlplane.AgentAuth{Require: true, CA: authority, RefusalBackoff: noCooldown}, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(); db.Close() })
		return svc, authority
	}
	r1, ca1 := open("r1")
	r2, ca2 := open("r2")
	if string(ca1.CertPEM()) != string(ca2.CertPEM()) {
		t.Fatal("the replicas use different CAs")
	}

	// An agent with a certificate from r1's CA connects to r2.
	uid := steward.NewInstanceUID()
	k := newAgentKey()
	cert, err := ca1.SignCSR(k.csr(t, uid.String()), uid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec := ca.Record(cert, uid)
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutCertificate(ctx, rec); err != nil {
		t.Fatal(err)
	}
	req := (&http.Request{Header: http.Header{}, RemoteAddr: "127.0.0.1:7",
		TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}).WithContext(ctx)
	st, err := r2.Accept(req)
	if err != nil {
		t.Fatal(err)
	}
	c := &testConn{transport: server.WebSocket, state: st}
	c.onClose = func() { r2.OnClose(c) }
	if _, err := r2.OnMessage(ctx, c, connReport(uid, 0, "prod", connCaps)); err != nil {
		t.Fatal(err)
	}

	if _, err := r1.RevokeCertificate(steward.WithActor(ctx, "admin session"), rec.Serial); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the connection on the other replica closed", c.isClosed)
	if _, err := r2.Accept(req); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("revoked certificate on the other replica: %v, want EFORBIDDEN", err)
	}
}
