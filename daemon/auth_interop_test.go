package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	opampclient "github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/daemon"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir
// and returns their paths and a pool trusting the certificate.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "steward"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return certFile, keyFile, pool
}

// startTLSServer runs `steward server` with TLS on the OpAMP listener and
// agent authentication required; it returns the server and a pool trusting
// its certificate.
func startTLSServer(t *testing.T, dir string) (*server, *x509.CertPool) {
	t.Helper()
	return startTLSServerWith(t, dir, func(o *daemon.Options) { o.RequireAgentAuth = true })
}

// startTLSServerWith is startTLSServer with the options changed by opt.
func startTLSServerWith(t *testing.T, dir string, opt func(*daemon.Options)) (*server, *x509.CertPool) {
	t.Helper()
	certFile, keyFile, pool := selfSignedCert(t, dir)

	o := daemon.Options{DataDir: filepath.Join(dir, "data"), TLSCertFile: certFile, TLSKeyFile: keyFile}
	opt(&o)
	return startServerWith(t, o), pool
}

func startOpAMPGo(t *testing.T, url string, uid types.InstanceUid, cfg *tls.Config, header nethttp.Header, onSettings func(*protobufs.OpAMPConnectionSettings)) opampclient.OpAMPClient {
	t.Helper()
	c := opampclient.NewWebSocket(nil)
	if err := c.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{Key: "service.name",
		Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "io.opentelemetry.collector"}}}}}); err != nil {
		t.Fatal(err)
	}
	err := c.Start(context.Background(), types.StartSettings{
		OpAMPServerURL: url, InstanceUid: uid, TLSConfig: cfg, Header: header,
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus | protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings,
		Callbacks: types.Callbacks{OnOpampConnectionSettings: func(_ context.Context, s *protobufs.OpAMPConnectionSettings) error {
			if onSettings != nil {
				onSettings(s)
			}
			return nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

// opamp-go's client against a whole server with agent authentication: it
// enrolls with a token, obtains a certificate through the CSR flow, and
// connects with the certificate alone; no credentials are refused.
func TestOpAMPGoClientCSRFlow(t *testing.T) {
	dir := t.TempDir()
	srv, pool := startTLSServer(t, dir)
	url := "wss://" + srv.opamp + "/v1/opamp"
	var created struct {
		Secret string `json:"secret"`
	}
	srv.call(t, "POST", "/api/v1/enrollment-tokens", map[string]any{"name": "fleet"}, &created)

	uid := steward.NewInstanceUID()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: uid.String()}}, key)
	offers := make(chan *protobufs.OpAMPConnectionSettings, 4)
	c := startOpAMPGo(t, url, types.InstanceUid(uid), &tls.Config{RootCAs: pool},
		nethttp.Header{"Authorization": {"Bearer " + created.Secret}}, func(s *protobufs.OpAMPConnectionSettings) { offers <- s })
	eventually(t, "the agent enrolled", func() bool {
		var a steward.Agent
		return srv.call(t, "GET", "/api/v1/agents/"+uid.String(), nil, nil) == 200 &&
			srv.call(t, "GET", "/api/v1/agents/"+uid.String(), nil, &a) == 200 && a.Online
	})
	if err := c.RequestConnectionSettings(&protobufs.ConnectionSettingsRequest{Opamp: &protobufs.OpAMPConnectionSettingsRequest{
		CertificateRequest: &protobufs.CertificateRequest{Csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})}}}); err != nil {
		t.Fatal(err)
	}
	var offer *protobufs.OpAMPConnectionSettings
	select {
	case offer = <-offers:
	case <-time.After(20 * time.Second):
		t.Fatal("no certificate offered")
	}
	if offer.Certificate == nil || len(offer.Certificate.PrivateKey) != 0 {
		t.Fatalf("offer: %v", offer)
	}
	// The certificate chains to the agent CA the API publishes.
	resp, err := nethttp.Get(srv.api + "/api/v1/agent-ca")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) || string(caPEM) != string(offer.Certificate.CaCert) {
		t.Fatalf("agent CA: %s", caPEM)
	}
	blk, _ := pem.Decode(offer.Certificate.Cert)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate: %v", err)
	}
	if id, _ := ca.InstanceUID(cert); id != uid {
		t.Fatalf("certificate for %v", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = c.Stop(ctx)
	cancel()

	// The certificate alone admits the agent.
	eventually(t, "the agent offline", func() bool {
		var a steward.Agent
		return srv.call(t, "GET", "/api/v1/agents/"+uid.String(), nil, &a) == 200 && !a.Online
	})
	withCert := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	startOpAMPGo(t, url, types.InstanceUid(uid), withCert, nil, nil)
	eventually(t, "the agent back with its certificate", func() bool {
		var a steward.Agent
		return srv.call(t, "GET", "/api/v1/agents/"+uid.String(), nil, &a) == 200 && a.Online
	})

	// Without credentials: 401.
	hc := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	r, err := hc.Post("https://"+srv.opamp+"/v1/opamp", "application/x-protobuf", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != nethttp.StatusUnauthorized {
		t.Fatalf("no credentials: %d", r.StatusCode)
	}
	var audit struct {
		Entries []steward.AuditEntry `json:"entries"`
	}
	srv.call(t, "GET", "/api/v1/audit?action=certificate.issued", nil, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Target != uid.String() {
		t.Fatalf("audit: %+v", audit.Entries)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "agent-ca", "ca.key")); err != nil {
		t.Fatalf("agent CA not generated in the data directory: %v", err)
	}
}
