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
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/client"
)

// ConnectionState is the connection settings the server offered and the
// supervisor accepted; it survives restarts (state.json). The client
// certificate the server issued is kept next to it in client.crt, with the
// private key the supervisor generated in client.key (mode 0600).
type ConnectionState struct {
	// Telemetry is the applied own-telemetry offer (collector mode).
	Telemetry *TelemetryState `json:"telemetry,omitempty"`
	// HeartbeatSeconds is the heartbeat interval the server offered.
	HeartbeatSeconds *uint64 `json:"heartbeat_seconds,omitempty"`
}

// TelemetryState is an own-telemetry offer as applied.
type TelemetryState struct {
	Hash    []byte                `json:"hash,omitempty"`
	Metrics *TelemetryDestination `json:"metrics,omitempty"`
	Logs    *TelemetryDestination `json:"logs,omitempty"`
	Traces  *TelemetryDestination `json:"traces,omitempty"`
}

// TelemetryDestination is one OTLP/HTTP destination with its headers.
type TelemetryDestination struct {
	Endpoint string            `json:"endpoint"`
	Headers  map[string]string `json:"headers,omitempty"`
}

func toDest(t *protobufs.TelemetryConnectionSettings) *TelemetryDestination {
	if t == nil {
		return nil
	}
	d := &TelemetryDestination{Endpoint: t.DestinationEndpoint}
	for _, h := range t.GetHeaders().GetHeaders() {
		if d.Headers == nil {
			d.Headers = map[string]string{}
		}
		d.Headers[h.Key] = h.Value
	}
	return d
}

func fromDest(d *TelemetryDestination) *protobufs.TelemetryConnectionSettings {
	if d == nil {
		return nil
	}
	t := &protobufs.TelemetryConnectionSettings{DestinationEndpoint: d.Endpoint}
	if len(d.Headers) > 0 {
		t.Headers = &protobufs.Headers{}
		for _, k := range sortedKeys(d.Headers) {
			t.Headers.Headers = append(t.Headers.Headers, &protobufs.Header{Key: k, Value: d.Headers[k]})
		}
	}
	return t
}

// loadConnection restores the applied own-telemetry settings.
func (s *Supervisor) loadConnection() {
	if c := s.state.Connection; c != nil && c.Telemetry != nil {
		t := c.Telemetry
		s.telemetry = &ownTelemetry{hash: t.Hash, metrics: fromDest(t.Metrics), logs: fromDest(t.Logs), traces: fromDest(t.Traces)}
	}
}

// saveConnection persists a change to the connection state; fn runs, and
// the state is written, with s.mu held (as saveState does).
func (s *Supervisor) saveConnection(fn func(c *ConnectionState)) {
	s.mu.Lock()
	if s.state.Connection == nil {
		s.state.Connection = &ConnectionState{}
	}
	defer s.mu.Unlock()
	fn(s.state.Connection)
	if err := s.store.SaveState(s.state); err != nil {
		s.log.Error("persist connection settings", "error", err)
	}
}

// saveTelemetry persists applied own-telemetry settings.
func (s *Supervisor) saveTelemetry(t *ownTelemetry) {
	s.saveConnection(func(c *ConnectionState) {
		c.Telemetry = &TelemetryState{Hash: t.hash, Metrics: toDest(t.metrics), Logs: toDest(t.logs), Traces: toDest(t.traces)}
	})
}

// noteHeartbeat persists a heartbeat interval the server offered.
func (s *Supervisor) noteHeartbeat(m *client.MessageData) {
	if m.HeartbeatInterval == nil {
		return
	}
	v := uint64(*m.HeartbeatInterval / time.Second)
	s.mu.Lock()
	same := s.state.Connection != nil && s.state.Connection.HeartbeatSeconds != nil && *s.state.Connection.HeartbeatSeconds == v
	s.mu.Unlock()
	if !same {
		s.saveConnection(func(c *ConnectionState) { c.HeartbeatSeconds = &v })
	}
}

// reportConnectionStatus tells the server, at startup, which settings are
// applied, so it does not offer them again.
func (s *Supervisor) reportConnectionStatus() {
	s.mu.Lock()
	var hash []byte
	if c := s.state.Connection; c != nil && c.Telemetry != nil {
		hash = c.Telemetry.Hash
	}
	s.mu.Unlock()
	if len(hash) > 0 && s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus) {
		_ = s.client.SetConnectionSettingsStatus(&protobufs.ConnectionSettingsStatus{LastConnectionSettingsHash: hash,
			Status: protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED})
	}
}

// connectionSettings completes the client settings: the persisted
// heartbeat interval and client certificate, the certificate request on
// connect (server.request_certificate), and acceptance of OpAMP connection
// settings offers.
func (s *Supervisor) connectionSettings(cs *client.Settings) error {
	s.mu.Lock()
	if c := s.state.Connection; c != nil && c.HeartbeatSeconds != nil && *c.HeartbeatSeconds > 0 {
		cs.HeartbeatInterval = time.Duration(*c.HeartbeatSeconds) * time.Second
		cs.PollingInterval = cs.HeartbeatInterval
	}
	s.mu.Unlock()
	if cert, err := s.issuedCertificate(); err != nil {
		s.log.Warn("the stored client certificate is unusable; connecting without it", "error", err)
	} else if cert != nil && cert.Leaf != nil && !time.Now().Before(cert.Leaf.NotAfter) {
		// It would fail the handshake; connect with the other credentials
		// (the enrollment token) and request a new one.
		s.log.Warn("the stored client certificate expired; connecting without it", "not_after", cert.Leaf.NotAfter)
	} else if cert != nil {
		if cs.TLSConfig == nil {
			cs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cs.TLSConfig = cs.TLSConfig.Clone()
		cs.TLSConfig.Certificates = []tls.Certificate{*cert}
	}
	cs.Callbacks.OnOpAMPConnectionSettings = s.onOpAMPConnectionSettings
	if s.cfg.Server.RequestCertificate {
		prev := cs.Callbacks.OnConnect
		cs.Callbacks.OnConnect = func(ctx context.Context) {
			if prev != nil {
				prev(ctx)
			}
			s.maybeRequestCertificate()
		}
		// A new instance uid needs a certificate naming it (spec: "Using
		// instance_uid in the CSR").
		prevUID := cs.Callbacks.OnInstanceUIDChange
		cs.Callbacks.OnInstanceUIDChange = func(uid [16]byte) {
			if prevUID != nil {
				prevUID(uid)
			}
			s.maybeRequestCertificate()
		}
	}
	return nil
}

// issuedCertificate loads client.crt and client.key; nil when there are
// none.
func (s *Supervisor) issuedCertificate() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(s.store.Path("client.crt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(s.store.Path("client.key"))
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// maybeRequestCertificate sends a CSR for the current instance uid unless
// a certificate for it, not yet expired, is stored. The key is generated
// once and kept in client.key.
func (s *Supervisor) maybeRequestCertificate() {
	uid := s.InstanceUID()
	if cert, err := s.issuedCertificate(); err == nil && cert != nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err == nil && leaf.Subject.CommonName == uid.String() && time.Now().Before(leaf.NotAfter) {
			return // the server renews it before it expires
		}
	}
	c, ok := s.client.(*client.Client)
	if !ok {
		return
	}
	csr, err := s.newCSR(uid)
	if err != nil {
		s.log.Error("certificate request", "error", err)
		return
	}
	if err := c.RequestConnectionSettings(csr); err != nil {
		s.log.Warn("certificate request not sent", "error", err)
		return
	}
	s.log.Info("requested a client certificate from the server", "instance_uid", uid.String())
}

// newCSR returns a CSR for uid signed with client.key (generated when
// missing).
func (s *Supervisor) newCSR(uid steward.InstanceUID) ([]byte, error) {
	key, err := s.clientKey()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse("urn:uuid:" + uid.String())
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: uid.String()}, URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// clientKey loads client.key or generates and stores a P-256 key.
func (s *Supervisor) clientKey() (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(s.store.Path("client.key"))
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: not PEM", s.store.Path("client.key"))
		}
		return x509.ParseECPrivateKey(blk.Bytes)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalECPrivateKey(key)
	if err := writeFileAtomic(s.store.Path("client.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

// onOpAMPConnectionSettings accepts an OpAMP connection settings offer. A
// certificate without a private key must be for client.key (the CSR flow or
// a renewal); it is stored (the previous one kept as client.crt.prev) so
// the next start uses it. The client then reconnects with it and reverts
// if that fails.
func (s *Supervisor) onOpAMPConnectionSettings(_ context.Context, o *protobufs.OpAMPConnectionSettings) error {
	if c := o.Certificate; c != nil {
		if len(c.PrivateKey) == 0 {
			keyPEM, err := os.ReadFile(s.store.Path("client.key"))
			if err != nil {
				return fmt.Errorf("certificate offered without a private key and none is stored: %w", err)
			}
			c.PrivateKey = keyPEM
		}
		if _, err := tls.X509KeyPair(c.Cert, c.PrivateKey); err != nil {
			return fmt.Errorf("offered certificate: %w", err)
		}
		if old, err := os.ReadFile(s.store.Path("client.crt")); err == nil {
			_ = writeFileAtomic(s.store.Path("client.crt.prev"), old)
		}
		if err := writeFileAtomic(s.store.Path("client.key"), c.PrivateKey); err != nil {
			return err
		}
		if err := writeFileAtomic(s.store.Path("client.crt"), c.Cert); err != nil {
			return err
		}
		s.log.Info("client certificate accepted")
	}
	return nil
}
