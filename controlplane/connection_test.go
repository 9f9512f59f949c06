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
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

const connCaps = uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnLogs |
	protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat)

func newAuthFixture(t *testing.T, auth controlplane.AgentAuth) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	if auth.RefusalBackoff.Min == 0 {
		auth.RefusalBackoff = noCooldown // these tests retry refused credentials at once
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", FlushInterval: 50 * time.Millisecond,
		HeartbeatInterval: 30 * time.Second, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	return &fixture{t: t, ctx: ctx, store: st, svc: svc}
}

func connReport(uid steward.InstanceUID, seq uint64, env string, c uint64) *protobufs.AgentToServer {
	m := fullReport(uid, seq, env)
	m.Capabilities = c
	return m
}

func u64(v uint64) *uint64 { return &v }

// Own telemetry and heartbeat settings are offered by selector, only the
// parts the agent can take, only until it reports the offered hash.
func TestConnectionSettingsOffers(t *testing.T) {
	f := newAuthFixture(t, controlplane.AgentAuth{})
	ctx := f.ctx
	if _, err := f.svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "prod", Selector: "env=prod",
		OwnMetrics:               &steward.TelemetryDestination{Endpoint: "http://127.0.0.1:4318/v1/metrics", Headers: map[string]string{"X-Key": "k"}},
		OwnTraces:                &steward.TelemetryDestination{Endpoint: "http://127.0.0.1:4318/v1/traces"},
		HeartbeatIntervalSeconds: u64(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "bad", Selector: "env=prod",
		OwnLogs: &steward.TelemetryDestination{Endpoint: "ftp://x"}}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("bad endpoint: %v, want EINVALID", err)
	}

	// An agent that matches and reports own metrics (not traces).
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	r := f.send(c, connReport(uid, 0, "prod", connCaps))
	cs := r.GetConnectionSettings()
	if cs == nil || len(cs.Hash) == 0 {
		t.Fatalf("no connection settings offered: %v", r)
	}
	if cs.OwnMetrics.GetDestinationEndpoint() != "http://127.0.0.1:4318/v1/metrics" || cs.OwnMetrics.Headers.GetHeaders()[0].Key != "X-Key" {
		t.Fatalf("own metrics offer: %v", cs.OwnMetrics)
	}
	if cs.OwnTraces != nil {
		t.Fatal("own traces offered to an agent without ReportsOwnTraces")
	}
	if cs.Opamp.GetHeartbeatIntervalSeconds() != 10 || cs.Opamp.Certificate != nil {
		t.Fatalf("opamp offer: %v", cs.Opamp)
	}
	// Not offered again on the same connection.
	if r := f.send(c, heartbeat(uid, 1)); r.GetConnectionSettings() != nil {
		t.Fatal("offered twice on one connection")
	}
	// The agent reports it applied them; a new connection gets no offer.
	st := &protobufs.AgentToServer{InstanceUid: uid[:], SequenceNum: 2, Capabilities: connCaps,
		ConnectionSettingsStatus: &protobufs.ConnectionSettingsStatus{LastConnectionSettingsHash: cs.Hash,
			Status: protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED}}
	f.send(c, st)
	c.Close()
	c2 := f.connect(server.WebSocket)
	if r := f.send(c2, connReport(uid, 3, "prod", connCaps)); r.GetConnectionSettings() != nil {
		t.Fatalf("re-offered applied settings: %v", r.GetConnectionSettings())
	}
	a, _ := f.svc.Agent(ctx, uid)
	if a.ConnectionStatus == nil || !bytes.Equal(a.ConnectionStatus.LastConnectionSettingsHash, cs.Hash) {
		t.Fatalf("status not stored: %+v", a.ConnectionStatus)
	}

	// A change is pushed at once, with a new hash.
	if _, err := f.svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "prod", Selector: "env=prod",
		OwnMetrics: &steward.TelemetryDestination{Endpoint: "http://127.0.0.2:4318/v1/metrics"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changed settings pushed", func() bool {
		for _, m := range c2.pushed() {
			if o := m.GetConnectionSettings(); o != nil && o.OwnMetrics.GetDestinationEndpoint() == "http://127.0.0.2:4318/v1/metrics" {
				return !bytes.Equal(o.Hash, cs.Hash) && o.Opamp == nil // no heartbeat configured any more
			}
		}
		return false
	})

	// An agent outside the selector, and one without the capabilities, get nothing.
	other := f.connect(server.WebSocket)
	if r := f.send(other, connReport(steward.NewInstanceUID(), 0, "dev", connCaps)); r.GetConnectionSettings() != nil {
		t.Fatal("offered to an agent the selector does not match")
	}
	plain := f.connect(server.WebSocket)
	if r := f.send(plain, fullReport(steward.NewInstanceUID(), 0, "prod")); r.GetConnectionSettings() != nil {
		t.Fatal("offered to an agent without the capabilities")
	}

	// Every change is audited.
	entries, err := f.svc.Audit(ctx, steward.AuditFilter{Action: "connection_settings."})
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit: %d entries, %v", len(entries), err)
	}
}

// The heartbeat interval offered never exceeds the server's own (which it
// enforces by closing silent agents) and is never 0.
func TestConnectionSettingsHeartbeatClamped(t *testing.T) {
	f := newAuthFixture(t, controlplane.AgentAuth{})
	if _, err := f.svc.PutConnectionSettings(f.ctx, &steward.ConnectionSettings{Name: "slow", HeartbeatIntervalSeconds: u64(3600)}); err != nil {
		t.Fatal(err)
	}
	c := f.connect(server.WebSocket)
	r := f.send(c, connReport(steward.NewInstanceUID(), 0, "prod", connCaps))
	if got := r.GetConnectionSettings().GetOpamp().GetHeartbeatIntervalSeconds(); got != 30 {
		t.Fatalf("heartbeat offered %d, want the server's 30", got)
	}
}

func newCSR(t *testing.T, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func csrMessage(uid steward.InstanceUID, seq uint64, csr []byte) *protobufs.AgentToServer {
	return &protobufs.AgentToServer{InstanceUid: uid[:], SequenceNum: seq, Capabilities: connCaps,
		ConnectionSettingsRequest: &protobufs.ConnectionSettingsRequest{Opamp: &protobufs.OpAMPConnectionSettingsRequest{
			CertificateRequest: &protobufs.CertificateRequest{Csr: csr}}}}
}

// A CSR naming the sender is signed and the certificate offered (cert and
// CA, no private key); bad CSRs are refused with an error, nothing issued.
func TestCSRSigning(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	f := newAuthFixture(t, controlplane.AgentAuth{CA: authority, CertLifetime: time.Hour})
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, connReport(uid, 0, "prod", connCaps))

	for name, csr := range map[string][]byte{
		"another agent's uid": func() []byte { b, _ := newCSR(t, steward.NewInstanceUID().String()); return b }(),
		"no uid":              func() []byte { b, _ := newCSR(t, "my-agent"); return b }(),
		"garbage":             []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
		"empty":               nil,
	} {
		_, err := f.svc.OnMessage(f.ctx, c, csrMessage(uid, 1, csr))
		if steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("%s: %v, want EINVALID (BadRequest)", name, err)
		}
	}
	if list, _ := f.svc.Certificates(f.ctx, &uid); len(list) != 0 {
		t.Fatalf("certificates issued for bad CSRs: %+v", list)
	}
	if entries, _ := f.svc.Audit(f.ctx, steward.AuditFilter{Action: steward.AuditCertificateRejected}); len(entries) != 4 {
		t.Fatalf("rejections audited: %d, want 4", len(entries))
	}

	csr, key := newCSR(t, uid.String())
	r, err := f.svc.OnMessage(f.ctx, c, csrMessage(uid, 2, csr))
	if err != nil {
		t.Fatal(err)
	}
	o := r.GetConnectionSettings().GetOpamp()
	if o.GetCertificate() == nil || len(o.Certificate.PrivateKey) != 0 || !bytes.Equal(o.Certificate.CaCert, authority.CertPEM()) {
		t.Fatalf("certificate offer: %v", r.GetConnectionSettings())
	}
	b, _ := pem.Decode(o.Certificate.Cert)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ca.InstanceUID(cert); got != uid || !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatalf("certificate for %v with another key", got)
	}
	if err := authority.Verify(cert, time.Now()); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
	if life := time.Until(cert.NotAfter); life > time.Hour || life < 50*time.Minute {
		t.Fatalf("lifetime %v, want about 1h", life)
	}
	list, _ := f.svc.Certificates(f.ctx, &uid)
	if len(list) != 1 || list[0].Serial != ca.Serial(cert) {
		t.Fatalf("stored certificates: %+v", list)
	}

	// Without AcceptsOpAMPConnectionSettings the certificate could not be
	// offered: refused.
	m := csrMessage(uid, 3, csr)
	m.Capabilities = uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus)
	if _, err := f.svc.OnMessage(f.ctx, c, m); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("CSR without the capability: %v", err)
	}
}

// Without a CA every CSR is refused.
func TestCSRWithoutCA(t *testing.T) {
	f := newAuthFixture(t, controlplane.AgentAuth{})
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	csr, _ := newCSR(t, uid.String())
	if _, err := f.svc.OnMessage(f.ctx, c, csrMessage(uid, 0, csr)); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("CSR without a CA: %v", err)
	}
}

// Enrollment tokens: unknown, expired, revoked, used up and label-limited
// tokens are refused; a known agent reconnecting does not use the token
// up.
func TestEnrollmentTokens(t *testing.T) {
	f := newAuthFixture(t, controlplane.AgentAuth{Require: true})
	ctx := steward.WithActor(f.ctx, "admin session")
	accept := func(secret string) (any, error) {
		r := &http.Request{Header: http.Header{}, RemoteAddr: "127.0.0.1:1"}
		if secret != "" {
			r.Header.Set("Authorization", "Bearer "+secret)
		}
		return f.svc.Accept(r.WithContext(ctx))
	}
	if _, err := accept(""); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("no credentials: %v, want EUNAUTHORIZED", err)
	}
	if _, err := accept("stwe_wrong"); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("wrong token: %v, want EUNAUTHORIZED", err)
	}
	basic := (&http.Request{Header: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}}).WithContext(ctx)
	if _, err := f.svc.Accept(basic); steward.ErrorCode(err) != steward.EUNAUTHORIZED || !strings.Contains(err.Error(), "authentication required") {
		t.Fatalf("another scheme counts as no credentials: %v", err)
	}
	_, expired, err := f.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "old", ExpiresAt: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accept(expired); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("expired token: %v, want EUNAUTHORIZED", err)
	}
	rt, revoked, _ := f.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "rev"})
	if err := f.svc.RevokeEnrollmentToken(ctx, rt.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := accept(revoked); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("revoked token: %v, want EFORBIDDEN", err)
	}

	_, one, _ := f.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "one", MaxUses: 1, Selector: "env=prod"})
	connect := func(secret string) *testConn {
		st, err := accept(secret)
		if err != nil {
			t.Fatal(err)
		}
		c := &testConn{transport: server.WebSocket, state: st}
		c.onClose = func() { f.svc.OnClose(c) }
		return c
	}
	// Labels that do not match: refused, the token not used.
	c := connect(one)
	if _, err := f.svc.OnMessage(ctx, c, connReport(steward.NewInstanceUID(), 0, "dev", connCaps)); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("label mismatch: %v, want EFORBIDDEN", err)
	}
	eventually(t, "the refused connection closed", c.isClosed)
	uid := steward.NewInstanceUID()
	c = connect(one)
	if _, err := f.svc.OnMessage(ctx, c, connReport(uid, 0, "prod", connCaps)); err != nil {
		t.Fatalf("first agent: %v", err)
	}
	// The same agent again: admitted without a use.
	c.Close()
	c = connect(one)
	if _, err := f.svc.OnMessage(ctx, c, connReport(uid, 1, "prod", connCaps)); err != nil {
		t.Fatalf("known agent reconnecting: %v", err)
	}
	// A second agent: the token is used up.
	c2 := connect(one)
	if _, err := f.svc.OnMessage(ctx, c2, connReport(steward.NewInstanceUID(), 0, "prod", connCaps)); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("used-up token: %v, want EFORBIDDEN", err)
	}
	enrolled, _ := f.svc.Audit(ctx, steward.AuditFilter{Action: steward.AuditAgentEnrolled})
	refused, _ := f.svc.Audit(ctx, steward.AuditFilter{Action: steward.AuditAgentRefused})
	if len(enrolled) != 1 || enrolled[0].Target != uid.String() || len(refused) != 5 {
		t.Fatalf("audit: %d enrolled, %d refused; want 1 and 5", len(enrolled), len(refused))
	}
	created, _ := f.svc.Audit(ctx, steward.AuditFilter{Action: "enrollment_token.", Actor: "admin session"})
	if len(created) != 4 { // three created, one revoked
		t.Fatalf("token changes audited: %d, want 4", len(created))
	}
}

// API tokens: secrets are not stored, wrong and expired ones are refused.
func TestAPITokens(t *testing.T) {
	f := newAuthFixture(t, controlplane.AgentAuth{})
	ctx := steward.WithActor(f.ctx, "admin session")
	tok, secret, err := f.svc.CreateToken(ctx, "ci", steward.RoleOperator, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(tok.Hash, []byte(secret)) || !bytes.Equal(tok.Hash, steward.HashSecret(secret)) {
		t.Fatal("the stored hash is not the secret's SHA-256")
	}
	got, err := f.svc.AuthenticateToken(ctx, secret)
	if err != nil || got.Name != "ci" || got.Role != steward.RoleOperator {
		t.Fatalf("AuthenticateToken = %+v, %v", got, err)
	}
	if _, err := f.svc.AuthenticateToken(ctx, secret+"x"); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, _, err := f.svc.CreateToken(ctx, "bad", steward.Role("root"), 0); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("bad role: %v", err)
	}
	_, short, _ := f.svc.CreateToken(ctx, "short", steward.RoleViewer, time.Nanosecond)
	time.Sleep(time.Millisecond) // let the nanosecond pass
	if _, err := f.svc.AuthenticateToken(ctx, short); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("expired token: %v", err)
	}
	if err := f.svc.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateToken(ctx, secret); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("deleted token: %v", err)
	}
	entries, _ := f.svc.Audit(ctx, steward.AuditFilter{Action: "token."})
	if len(entries) != 3 || entries[0].Action != "token.delete" || entries[0].Actor != "admin session" {
		t.Fatalf("audit: %+v", entries)
	}
}

// An agent told to take a new instance uid may keep using its old
// certificate, on this and later connections, and ask for a certificate
// naming the new uid; a certificate used for any other uid is refused.
func TestCertificateAfterNewInstanceUID(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	f := newAuthFixture(t, controlplane.AgentAuth{Require: true, CA: authority})
	old := steward.NewInstanceUID()
	csr, _ := newCSR(t, old.String())
	cert, err := authority.SignCSR(csr, old, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.(steward.CredentialStore).PutCertificate(f.ctx, ca.Record(cert, old)); err != nil {
		t.Fatal(err)
	}
	connect := func() *testConn {
		r := (&http.Request{Header: http.Header{}, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}).WithContext(f.ctx)
		st, err := f.svc.Accept(r)
		if err != nil {
			t.Fatal(err)
		}
		c := &testConn{transport: server.WebSocket, state: st}
		c.onClose = func() { f.svc.OnClose(c) }
		return c
	}
	c := connect()
	m := connReport(old, 0, "prod", connCaps)
	m.Flags = uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid)
	r := f.send(c, m)
	if r.AgentIdentification == nil {
		t.Fatal("no new instance uid assigned")
	}
	nu, _ := steward.InstanceUIDFromBytes(r.AgentIdentification.NewInstanceUid)
	f.send(c, heartbeat(nu, 1))
	c.Close()

	// A later connection with the old certificate and the new uid: a CSR
	// for the new uid is accepted.
	c = connect()
	csr2, _ := newCSR(t, nu.String())
	m2 := csrMessage(nu, 2, csr2)
	r2, err := f.svc.OnMessage(f.ctx, c, m2)
	if err != nil {
		t.Fatalf("CSR for the assigned uid over the old certificate: %v", err)
	}
	if r2.GetConnectionSettings().GetOpamp().GetCertificate() == nil {
		t.Fatal("no certificate offered for the new uid")
	}
	// Any other uid with that certificate: refused.
	c3 := connect()
	if _, err := f.svc.OnMessage(f.ctx, c3, connReport(steward.NewInstanceUID(), 0, "prod", connCaps)); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("certificate used for another uid: %v, want EFORBIDDEN", err)
	}
}
