package supervisor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// Own-telemetry settings applied before a restart are loaded again and
// land in the collector config the supervisor renders.
func TestTelemetrySettingsSurviveRestart(t *testing.T) {
	store, err := OpenStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{store: store, state: &State{}, log: slog.New(slog.DiscardHandler)}
	offer := &ownTelemetry{hash: []byte("h1"),
		metrics: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://127.0.0.1:4318/v1/metrics",
			Headers: &protobufs.Headers{Headers: []*protobufs.Header{{Key: "X-Key", Value: "k"}}}},
		logs: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://127.0.0.1:4318/v1/logs"}}
	s.saveTelemetry(offer)
	v := uint64(7)
	s.saveConnection(func(c *ConnectionState) { c.HeartbeatSeconds = &v })

	// A new supervisor process: state loaded from disk.
	st, err := store.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	s2 := &Supervisor{cfg: &Config{}, store: store, state: st, log: slog.New(slog.DiscardHandler)}
	s2.loadConnection()
	if s2.telemetry == nil || string(s2.telemetry.hash) != "h1" || s2.telemetry.traces != nil {
		t.Fatalf("telemetry after restart: %+v", s2.telemetry)
	}
	out, err := render(renderInput{mode: ModeCollector, telemetry: s2.telemetry})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"http://127.0.0.1:4318/v1/metrics", "http://127.0.0.1:4318/v1/logs", "X-Key"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("collector config lacks %q:\n%s", want, out)
		}
	}
	var cs client.Settings
	if err := s2.connectionSettings(&cs); err != nil {
		t.Fatal(err)
	}
	if cs.HeartbeatInterval != 7*time.Second {
		t.Fatalf("heartbeat after restart: %v, want 7s", cs.HeartbeatInterval)
	}
}

// steward is a Steward control plane behind a TLS OpAMP listener that asks
// for client certificates, as `steward server` serves it.
type authStewardStack struct {
	svc    *controlplane.Service
	url    string
	caFile string
	mu     sync.Mutex
	seen   []string // client certificate serial per TLS connection
}

func startAuthSteward(t *testing.T, dir string) *authStewardStack {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &authStewardStack{}
	s.svc, err = controlplane.New(ctx, controlplane.Config{Store: db, Replica: "r1", Auth: controlplane.AgentAuth{Require: true, CA: authority},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	transport, err := server.New(server.Config{Handler: s.svc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "steward"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	s.caFile = filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/opamp", transport)
	hs := &http.Server{Handler: mux, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth:   tls.VerifyClientCertIfGiven, ClientCAs: authority.Pool(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			serial := ""
			if len(cs.PeerCertificates) > 0 {
				serial = ca.Serial(cs.PeerCertificates[0])
			}
			s.mu.Lock()
			s.seen = append(s.seen, serial)
			s.mu.Unlock()
			return nil
		}}}
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
		db.Close()
	})
	return s
}

func (s *authStewardStack) saw(serial string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.seen {
		if x == serial {
			n++
		}
	}
	return n
}

// The supervisor enrolls with a token, obtains a client certificate through
// the CSR flow, keeps it and the offered heartbeat interval, and after a
// restart connects with the certificate alone.
func TestSupervisorEnrollsAndKeepsCertificate(t *testing.T) {
	dir := t.TempDir()
	st := startAuthSteward(t, dir)
	ctx := context.Background()
	_, token, err := st.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "hb", HeartbeatIntervalSeconds: ptrU64(10)}); err != nil {
		t.Fatal(err)
	}
	agentCfg := filepath.Join(dir, "agent.yaml")
	local := filepath.Join(dir, "local.yaml")
	writeFile(t, local, "a: 1\n")
	cfgPath := filepath.Join(dir, "supervisor.yaml")
	writeConfig := func(headers string) {
		writeFile(t, cfgPath, fmt.Sprintf(`
server:
  endpoint: %s
  request_certificate: true
  tls: {ca_file: %s}
%s
agent:
  mode: generic
  executable: %s
  args: [-config, %s]
  config_file: %s
  local_config_files: [%s]
  stop_timeout: 5s
  health: {min_uptime: 300ms, interval: 200ms}
  restart: {initial_backoff: 50ms, max_backoff: 400ms}
storage:
  directory: %s
`, st.url, st.caFile, headers, testAgent, agentCfg, agentCfg, local, filepath.Join(dir, "state")))
	}
	writeConfig("  headers: {Authorization: \"Bearer " + token + "\"}")
	h := &genericHarness{t: t, dir: dir, cfgPath: cfgPath}
	h.start()
	uid := h.sup.InstanceUID()

	var serial string
	eventually(t, "a certificate issued and stored", func() bool {
		certs, _ := st.svc.Certificates(ctx, &uid)
		if len(certs) != 1 {
			return false
		}
		serial = certs[0].Serial
		b, err := os.ReadFile(filepath.Join(dir, "state", "client.crt"))
		return err == nil && strings.Contains(string(b), "CERTIFICATE")
	})
	eventually(t, "a connection with the certificate", func() bool { return st.saw(serial) > 0 })
	eventually(t, "the heartbeat interval persisted", func() bool {
		s, err := h.sup.store.LoadState()
		return err == nil && s.Connection != nil && s.Connection.HeartbeatSeconds != nil && *s.Connection.HeartbeatSeconds == 10
	})
	if fi, err := os.Stat(filepath.Join(dir, "state", "client.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client.key: %v, %v", fi, err)
	}
	h.stop()

	// Restart without the enrollment token: the certificate alone admits it.
	before := st.saw(serial)
	writeConfig("")
	h.start()
	eventually(t, "the restarted supervisor connected with its certificate", func() bool { return st.saw(serial) > before })
	eventually(t, "the agent online", func() bool {
		a, err := st.svc.Agent(ctx, uid)
		return err == nil && a.Online
	})
	if certs, _ := st.svc.Certificates(ctx, &uid); len(certs) != 1 {
		t.Fatalf("a restart requested another certificate: %d", len(certs))
	}
}

func ptrU64(v uint64) *uint64 { return &v }

// A stored certificate is used for connections until it expires; an
// expired one is left out (the handshake would fail) so the supervisor can
// enroll again.
func TestStoredCertificateUse(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{cfg: &Config{}, store: store, state: &State{}, log: slog.New(slog.DiscardHandler), uid: steward.NewInstanceUID()}
	csr, err := s.newCSR(s.uid)
	if err != nil {
		t.Fatal(err)
	}
	use := func(now time.Time) bool {
		authority.Clock = func() time.Time { return now }
		cert, err := authority.SignCSR(csr, s.uid, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.onOpAMPConnectionSettings(context.Background(), &protobufs.OpAMPConnectionSettings{
			Certificate: &protobufs.TLSCertificate{Cert: ca.PEM(cert)}}); err != nil {
			t.Fatal(err)
		}
		var cs client.Settings
		if err := s.connectionSettings(&cs); err != nil {
			t.Fatal(err)
		}
		return cs.TLSConfig != nil && len(cs.TLSConfig.Certificates) == 1
	}
	if !use(time.Now()) {
		t.Fatal("a valid stored certificate is not used")
	}
	if use(time.Now().Add(-2 * time.Hour)) {
		t.Fatal("an expired stored certificate is used")
	}
	if _, err := os.Stat(store.Path("client.crt.prev")); err != nil {
		t.Fatalf("previous certificate not kept: %v", err)
	}
	// A certificate for another key is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: s.uid.String()}}, other)
	foreign, _ := authority.SignCSR(der, s.uid, time.Hour)
	if err := s.onOpAMPConnectionSettings(context.Background(), &protobufs.OpAMPConnectionSettings{
		Certificate: &protobufs.TLSCertificate{Cert: ca.PEM(foreign)}}); err == nil {
		t.Fatal("a certificate for another key was accepted")
	}
}
