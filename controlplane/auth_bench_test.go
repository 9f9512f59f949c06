package controlplane_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/store/sqlite"
)

// Cost of admitting one connection (the store lookups on the OpAMP
// request), with an enrollment token and with a client certificate.
func BenchmarkAcceptEnrollmentToken(b *testing.B) {
	svc, _ := benchService(b, controlplane.AgentAuth{Require: true})
	_, secret, err := svc.CreateEnrollmentToken(context.Background(), steward.EnrollmentToken{Name: "fleet"})
	if err != nil {
		b.Fatal(err)
	}
	r := (&http.Request{Header: http.Header{"Authorization": {"Bearer " + secret}}}).WithContext(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Accept(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcceptCertificate(b *testing.B) { benchAcceptCertificate(b, false) }

// As the daemon's TLS listener hands it over: the chain already verified.
func BenchmarkAcceptCertificateVerifiedByTLS(b *testing.B) { benchAcceptCertificate(b, true) }

func benchAcceptCertificate(b *testing.B, verified bool) {
	authority, _ := ca.New()
	svc, st := benchService(b, controlplane.AgentAuth{Require: true, CA: authority})
	uid := steward.NewInstanceUID()
	k := newAgentKey()
	cert, err := authority.SignCSR(csrFor(b, k, uid), uid, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.(steward.CredentialStore).PutCertificate(context.Background(), ca.Record(cert, uid)); err != nil {
		b.Fatal(err)
	}
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	if verified {
		cs.VerifiedChains = [][]*x509.Certificate{{cert, authority.Certificate()}}
	}
	r := (&http.Request{Header: http.Header{}, TLS: cs}).WithContext(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Accept(r); err != nil {
			b.Fatal(err)
		}
	}
}

// Signing one CSR (parse, signature check, issue).
func BenchmarkSignCSR(b *testing.B) {
	authority, _ := ca.New()
	uid := steward.NewInstanceUID()
	csr := csrFor(b, newAgentKey(), uid)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authority.SignCSR(csr, uid, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func benchService(b *testing.B, auth controlplane.AgentAuth) (*controlplane.Service, steward.Store) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", Auth: auth, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close(); st.Close() })
	return svc, st
}

func csrFor(b *testing.B, k agentKey, uid steward.InstanceUID) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: uid.String()}}, k.key)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
