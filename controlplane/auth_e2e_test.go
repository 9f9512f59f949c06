package controlplane_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// tlsStack is a control plane behind the real OpAMP transport on a TLS
// listener on 127.0.0.1 that asks for (but does not require) client
// certificates from the agent CA, as the daemon serves it.
type tlsStack struct {
	t      *testing.T
	svc    *controlplane.Service
	store  steward.Store
	ca     *ca.CA
	url    string
	roots  *x509.CertPool
	offset atomic.Int64 // added to the control plane's clock

	mu      sync.Mutex
	serials []string    // client certificate serial of each TLS connection ("" for none)
	times   []time.Time // when each was made
}

func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "steward test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func newTLSStack(t *testing.T, auth controlplane.AgentAuth) *tlsStack {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsStack{t: t, store: st, ca: authority}
	auth.CA = authority
	if auth.RefusalBackoff.Min == 0 {
		auth.RefusalBackoff = noCooldown // these tests retry refused credentials at once
	}
	auth.Now = func() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }
	authority.Clock = auth.Now
	s.svc, err = controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", FlushInterval: 50 * time.Millisecond, Auth: auth,
		Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	transport, err := server.New(server.Config{Handler: s.svc, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, roots := serverCert(t)
	s.roots = roots
	mux := http.NewServeMux()
	mux.Handle("/v1/opamp", transport)
	hs := &http.Server{Handler: mux, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    authority.Pool(),
		Time:         auth.Now, // the clock the CA issues with
		VerifyConnection: func(cs tls.ConnectionState) error {
			serial := ""
			if len(cs.PeerCertificates) > 0 {
				serial = ca.Serial(cs.PeerCertificates[0])
			}
			s.mu.Lock()
			s.serials = append(s.serials, serial)
			s.times = append(s.times, time.Now())
			s.mu.Unlock()
			return nil
		},
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.ServeTLS(ln, "", "")
	s.url = "wss://" + ln.Addr().String() + "/v1/opamp"
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = transport.Shutdown(sctx)
		_ = hs.Shutdown(sctx)
		s.svc.Close()
		st.Close()
	})
	return s
}

func (s *tlsStack) sawSerial(serial string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.serials {
		if x == serial {
			return true
		}
	}
	return false
}

// post sends one AgentToServer over plain HTTP (https) with the given
// client certificate and bearer token and returns the status code.
func (s *tlsStack) post(uid steward.InstanceUID, cert *tls.Certificate, bearer string) (int, error) {
	cfg := &tls.Config{RootCAs: s.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	body, _ := proto.Marshal(&protobufs.AgentToServer{InstanceUid: uid[:], Capabilities: connCaps})
	req, _ := http.NewRequest("POST", "https"+strings.TrimPrefix(s.url, "wss"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

type agentKey struct {
	key *ecdsa.PrivateKey
	pem []byte
}

func newAgentKey() agentKey {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	return agentKey{key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})}
}

func (k agentKey) csr(t *testing.T, cn string) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// startAgent runs our OpAMP client with an enrollment token; it accepts
// certificate offers with its key (the CSR flow).
func (s *tlsStack) startAgent(uid steward.InstanceUID, token string, k agentKey) *client.Client {
	t := s.t
	c, err := client.New(client.Settings{
		Endpoint:     s.url,
		Header:       http.Header{"Authorization": {"Bearer " + token}},
		TLSConfig:    &tls.Config{RootCAs: s.roots},
		InstanceUID:  uid,
		Capabilities: protobufs.AgentCapabilities(connCaps),
		Description:  &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{str("service.name", "otelcol")}},
		Backoff:      client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Callbacks: client.Callbacks{OnOpAMPConnectionSettings: func(ctx context.Context, o *protobufs.OpAMPConnectionSettings) error {
			if o.Certificate != nil && len(o.Certificate.PrivateKey) == 0 {
				o.Certificate.PrivateKey = k.pem
			}
			return nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func (s *tlsStack) certs(uid steward.InstanceUID) []*steward.AgentCertificate {
	list, err := s.svc.Certificates(context.Background(), &uid)
	if err != nil {
		s.t.Fatal(err)
	}
	return list
}

func (s *tlsStack) appliedHash(uid steward.InstanceUID) []byte {
	a, err := s.svc.Agent(context.Background(), uid)
	if err != nil || a.ConnectionStatus == nil || a.ConnectionStatus.Status != "APPLIED" {
		return nil
	}
	return a.ConnectionStatus.LastConnectionSettingsHash
}

func tlsCert(t *testing.T, rec *steward.AgentCertificate, k agentKey) *tls.Certificate {
	c, err := tls.X509KeyPair(rec.PEM, k.pem)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// The whole credential life of an agent over real TLS: enrollment token,
// CSR, reconnection with the issued certificate, rotation before expiry,
// revocation (the agent is disconnected and refused).
func TestAgentCredentialsEndToEnd(t *testing.T) {
	s := newTLSStack(t, controlplane.AgentAuth{Require: true})
	ctx := steward.WithActor(context.Background(), "admin session")
	_, token, err := s.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	uid := steward.NewInstanceUID()
	k := newAgentKey()
	agent := s.startAgent(uid, token, k)
	eventually30(t, "the agent online", func() bool {
		a, err := s.svc.Agent(ctx, uid)
		return err == nil && a.Online
	})

	// CSR flow: the certificate is issued, offered, and the client
	// reconnects with it and reports APPLIED.
	if err := agent.RequestConnectionSettings(k.csr(t, uid.String())); err != nil {
		t.Fatal(err)
	}
	eventually30(t, "a certificate issued", func() bool { return len(s.certs(uid)) == 1 })
	first := s.certs(uid)[0]
	eventually30(t, "a TLS connection with the issued certificate", func() bool { return s.sawSerial(first.Serial) })
	eventually30(t, "APPLIED reported", func() bool { return s.appliedHash(uid) != nil })
	firstHash := s.appliedHash(uid)

	// Rotation: past two thirds of its lifetime the certificate is renewed
	// for the same key and offered; the agent moves to it.
	s.offset.Store(int64(21 * 24 * time.Hour))
	if err := s.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	eventually30(t, "a renewed certificate", func() bool { return len(s.certs(uid)) == 2 })
	second := s.certs(uid)[0]
	if second.Serial == first.Serial || !second.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewal: %+v after %+v", second, first)
	}
	eventually30(t, "a TLS connection with the renewed certificate", func() bool { return s.sawSerial(second.Serial) })
	eventually30(t, "APPLIED reported for the renewal", func() bool {
		h := s.appliedHash(uid)
		return h != nil && !bytes.Equal(h, firstHash)
	})
	if e, _ := s.svc.Audit(ctx, steward.AuditFilter{Action: steward.AuditCertificateRotated}); len(e) != 1 {
		t.Fatalf("rotation audited %d times", len(e))
	}

	// Revocation: the agent is disconnected; its connections with the
	// certificate are refused (403), and the enrollment token does not
	// readmit it.
	if _, err := s.svc.RevokeCertificate(ctx, second.Serial); err != nil {
		t.Fatal(err)
	}
	eventually30(t, "the revoked agent offline", func() bool {
		a, err := s.svc.Agent(ctx, uid)
		return err == nil && !a.Online
	})
	eventually30(t, "the agent's reconnections refused", func() bool {
		e, _ := s.svc.Audit(ctx, steward.AuditFilter{Action: steward.AuditAgentRefused})
		for _, x := range e {
			if x.Target == uid.String() && strings.Contains(x.Details["reason"].(string), "revoked") {
				return true
			}
		}
		return false
	})
	if code, err := s.post(uid, tlsCert(t, second, k), ""); err != nil || code != http.StatusForbidden {
		t.Fatalf("revoked certificate: %d, %v; want 403", code, err)
	}
	if code, err := s.post(uid, nil, token); err != nil || code != http.StatusForbidden {
		t.Fatalf("enrollment token for an agent with a revoked certificate: %d, %v; want 403", code, err)
	}
	if a, _ := s.svc.Agent(ctx, uid); a.Online {
		t.Fatal("an agent with a revoked certificate came back with the enrollment token")
	}
	// Events reach the stored log up to a WriteInterval after they happen.
	eventually30(t, "the refusals in the agent's history", func() bool {
		events, _ := s.svc.AgentEvents(ctx, uid, 100)
		for _, e := range events {
			if e.Type == steward.EventAgentRefused {
				return true
			}
		}
		return false
	})
}

// Certificates that are expired, unknown to the store, or from another CA
// are refused; so is a certificate used for another agent's uid.
func TestClientCertificateRefusals(t *testing.T) {
	s := newTLSStack(t, controlplane.AgentAuth{Require: true, CertLifetime: time.Hour})
	ctx := context.Background()
	uid := steward.NewInstanceUID()
	k := newAgentKey()
	cert, err := s.ca.SignCSR(k.csr(t, uid.String()), uid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec := ca.Record(cert, uid)

	// Signed by the CA but never recorded: unknown.
	if code, err := s.post(uid, tlsCert(t, rec, k), ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("unknown certificate: %d, %v; want 401", code, err)
	}
	if err := s.store.(steward.CredentialStore).PutCertificate(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if code, err := s.post(uid, tlsCert(t, rec, k), ""); err != nil || code != http.StatusOK {
		t.Fatalf("valid certificate: %d, %v; want 200", code, err)
	}
	// Another agent's uid with this certificate: the message is refused.
	if code, err := s.post(steward.NewInstanceUID(), tlsCert(t, rec, k), ""); err != nil || code != http.StatusForbidden {
		t.Fatalf("certificate for another uid: %d, %v", code, err)
	}
	if e, _ := s.svc.Audit(ctx, steward.AuditFilter{Action: steward.AuditAgentRefused}); len(e) != 2 ||
		!strings.Contains(e[0].Details["reason"].(string), "belongs to agent") {
		t.Fatalf("refusals: %+v", e)
	}
	// Expired: the TLS layer refuses it, and so does the control plane
	// should a listener not check it.
	s.offset.Store(int64(2 * time.Hour))
	if _, err := s.post(uid, tlsCert(t, rec, k), ""); err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Fatalf("expired certificate over TLS: %v; want a handshake failure", err)
	}
	r := (&http.Request{Header: http.Header{}, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}).WithContext(ctx)
	if _, err := s.svc.Accept(r); steward.ErrorCode(err) != steward.EUNAUTHORIZED || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: %v; want EUNAUTHORIZED", err)
	}
	s.offset.Store(0)
	if _, err := s.svc.Accept(r); err != nil {
		t.Fatalf("the same certificate before expiry: %v", err)
	}
	// No credentials at all.
	if code, err := s.post(uid, nil, ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d, %v; want 401", code, err)
	}
	// Wrong enrollment token.
	if code, err := s.post(uid, nil, "stwe_nope"); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, %v; want 401", code, err)
	}
	// A certificate from another CA fails the TLS handshake.
	other, _ := ca.New()
	foreign, err := other.SignCSR(k.csr(t, uid.String()), uid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.post(uid, tlsCert(t, ca.Record(foreign, uid), k), ""); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
}

// noCooldown makes refusals cool down for a nanosecond.
var noCooldown = controlplane.Backoff{Min: time.Nanosecond, Max: time.Nanosecond}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// eventually30 polls cond for up to 30 seconds (these tests reconnect over
// TLS several times; a loaded machine is slow at that).
func eventually30(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
