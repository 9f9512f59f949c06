package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/stewardhq/steward/opamp/client"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// sign issues a certificate for pub; server certificates get 127.0.0.1.
func (ca *testCA) sign(t *testing.T, cn string, pub any, server bool) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestCSRFlow: the agent sends a CSR; the server issues a certificate and
// offers it; the agent adds its private key; the client reconnects over
// wss:// presenting the certificate and reports APPLIED.
func TestCSRFlow(t *testing.T) {
	ca := newTestCA(t)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	srvCert, err := tls.X509KeyPair(ca.sign(t, "server", &srvKey.PublicKey, true),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}))
	if err != nil {
		t.Fatal(err)
	}
	p := startPeerTLS(t, &peer{}, "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.pool,
	})
	var issued atomic.Bool
	p.setReply(func(_ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
		req := m.GetConnectionSettingsRequest().GetOpamp().GetCertificateRequest()
		if req == nil || !issued.CompareAndSwap(false, true) {
			return nil
		}
		block, _ := pem.Decode(req.Csr)
		if block == nil {
			return &protobufs.ServerToAgent{ErrorResponse: &protobufs.ServerErrorResponse{Type: protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest}}
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil {
			return &protobufs.ServerToAgent{ErrorResponse: &protobufs.ServerErrorResponse{Type: protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest}}
		}
		return &protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{
			Hash:  []byte("cert-1"),
			Opamp: &protobufs.OpAMPConnectionSettings{Certificate: &protobufs.TLSCertificate{Cert: ca.sign(t, csr.Subject.CommonName, csr.PublicKey, false)}},
		}}
	})

	agentKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	agentKeyDER, _ := x509.MarshalECPrivateKey(agentKey)
	agentKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: agentKeyDER})
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agent-1"}}, agentKey)
	if err != nil {
		t.Fatal(err)
	}
	c := startClient(t, client.Settings{
		Endpoint:    p.url("wss"),
		TLSConfig:   &tls.Config{RootCAs: ca.pool},
		Description: description("a"),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus,
		Callbacks: client.Callbacks{OnOpAMPConnectionSettings: func(ctx context.Context, s *protobufs.OpAMPConnectionSettings) error {
			if s.Certificate != nil && len(s.Certificate.PrivateKey) == 0 {
				s.Certificate.PrivateKey = agentKeyPEM // the key the CSR was signed with
			}
			return nil
		}},
	})
	eventually(t, "the first report", func() bool { return p.count() >= 1 })
	if err := c.RequestConnectionSettings(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "APPLIED over a connection with the issued certificate", func() bool {
		return p.find(func(m *protobufs.AgentToServer) bool {
			st := m.ConnectionSettingsStatus
			return st != nil && st.Status == protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED &&
				string(st.LastConnectionSettingsHash) == "cert-1"
		}) != nil
	})
	p.mu.Lock()
	certs := append([]string(nil), p.certs...)
	p.mu.Unlock()
	if len(certs) < 2 || certs[0] != "" || certs[len(certs)-1] != "agent-1" {
		t.Fatalf("client certificates per connection: %q", certs)
	}
}
