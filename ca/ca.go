// Package ca is Steward's certificate authority for agent client
// certificates: an ECDSA P-256 key and a self-signed CA certificate that
// sign the certificate signing requests (CSRs) agents send over OpAMP.
//
// Issued certificates bind the agent's instance_uid: it is the subject's
// common name and a urn:uuid URI SAN. A CSR must name the uid of the agent
// that sends it (the OpAMP spec requires the server to check that the uid
// in a CSR matches the sender's).
package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// DefaultLifetime is the validity of an issued client certificate.
const DefaultLifetime = 30 * 24 * time.Hour

// CA signs agent client certificates. It is safe for concurrent use.
type CA struct {
	// Clock, when set, is the time certificates are issued at (tests);
	// default time.Now. Set it before use.
	Clock func() time.Time

	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	pool    *x509.CertPool
}

// New generates a CA: a fresh P-256 key and a self-signed certificate valid
// for ten years.
func New() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "Steward agent CA", Organization: []string{"Steward"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return Parse(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// Parse loads a CA from a PEM certificate and its PEM ECDSA key (SEC 1 or
// PKCS #8). EINVALID when either does not parse, the certificate is not a
// CA, or the key does not match it.
func Parse(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, steward.Errorf(steward.EINVALID, "ca: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "ca: certificate: %v", err)
	}
	if !cert.IsCA {
		return nil, steward.Errorf(steward.EINVALID, "ca: the certificate is not a CA certificate")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, steward.Errorf(steward.EINVALID, "ca: no PEM private key")
	}
	var key *ecdsa.PrivateKey
	if k, err := x509.ParseECPrivateKey(kb.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err == nil {
		key, _ = k.(*ecdsa.PrivateKey)
	}
	if key == nil {
		return nil, steward.Errorf(steward.EINVALID, "ca: the private key is not an ECDSA key")
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, steward.Errorf(steward.EINVALID, "ca: the private key does not match the certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), pool: pool}, nil
}

// LoadOrCreate reads ca.crt and ca.key from dir, generating and writing them
// (the key with mode 0600) when neither exists. It fails when only one
// exists or they do not parse.
func LoadOrCreate(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		return Parse(certPEM, keyPEM)
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
	case cerr != nil && !errors.Is(cerr, os.ErrNotExist):
		return nil, cerr
	case kerr != nil && !errors.Is(kerr, os.ErrNotExist):
		return nil, kerr
	default:
		return nil, steward.Errorf(steward.EINVALID, "ca: only one of %s and %s exists", certPath, keyPath)
	}
	c, err := New()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, c.KeyPEM(), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(certPath, c.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// secretName is where FromStore keeps the CA (certificate and key PEM).
const secretName = "agent-ca"

// FromStore returns the CA kept in the database, generating and storing
// one first if there is none. Replicas sharing a database race safely: the
// first stored CA wins and every replica uses it.
func FromStore(ctx context.Context, cs steward.CredentialStore) (*CA, error) {
	fresh, err := New()
	if err != nil {
		return nil, err
	}
	bundle := append(append([]byte{}, fresh.CertPEM()...), fresh.KeyPEM()...)
	stored, err := cs.Secret(ctx, secretName, bundle)
	if err != nil {
		return nil, err
	}
	cb, rest := pem.Decode(stored)
	if cb == nil {
		return nil, steward.Errorf(steward.EINTERNAL, "ca: the stored CA is corrupt")
	}
	return Parse(pem.EncodeToMemory(cb), rest)
}

// CertPEM returns the CA certificate (PEM).
func (c *CA) CertPEM() []byte { return c.certPEM }

// KeyPEM returns the CA private key (PEM, SEC 1).
func (c *CA) KeyPEM() []byte {
	der, _ := x509.MarshalECPrivateKey(c.key)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Pool returns a pool holding just the CA certificate, for verifying client
// certificates (tls.Config.ClientCAs).
func (c *CA) Pool() *x509.CertPool { return c.pool }

// ParseCSR decodes a CSR (PEM or DER) and checks its signature. EINVALID
// when it does not parse or its signature is wrong.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, steward.Errorf(steward.EINVALID, "CSR: PEM block %q is not a certificate request", b.Type)
		}
		der = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "CSR does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, steward.Errorf(steward.EINVALID, "CSR signature is invalid: %v", err)
	}
	return csr, nil
}

// CSRInstanceUIDs returns every instance uid the CSR names: a common name
// or a urn:uuid URI SAN that parses as a UUID.
func CSRInstanceUIDs(csr *x509.CertificateRequest) []steward.InstanceUID {
	return uidsOf(csr.Subject.CommonName, csr.URIs)
}

// InstanceUID returns the instance uid a certificate issued by this
// package binds; false when it names none.
func InstanceUID(cert *x509.Certificate) (steward.InstanceUID, bool) {
	ids := uidsOf(cert.Subject.CommonName, cert.URIs)
	if len(ids) == 0 {
		return steward.InstanceUID{}, false
	}
	return ids[0], true
}

func uidsOf(cn string, uris []*url.URL) []steward.InstanceUID {
	var out []steward.InstanceUID
	add := func(s string) {
		if id, err := steward.ParseInstanceUID(s); err == nil && !id.IsZero() {
			for _, x := range out {
				if x == id {
					return
				}
			}
			out = append(out, id)
		}
	}
	add(cn)
	for _, u := range uris {
		if u.Scheme == "urn" && strings.HasPrefix(strings.ToLower(u.Opaque), "uuid:") {
			add(u.Opaque[len("uuid:"):])
		}
	}
	return out
}

// SignCSR issues a client certificate for agent id from csr, valid for
// lifetime (DefaultLifetime when <= 0, never past the CA's own expiry).
// EINVALID (nothing issued) when the CSR does not parse, its signature is
// wrong, it names no instance uid, or it names another agent's uid.
func (c *CA) SignCSR(csrData []byte, id steward.InstanceUID, lifetime time.Duration) (*x509.Certificate, error) {
	csr, err := ParseCSR(csrData)
	if err != nil {
		return nil, err
	}
	ids := CSRInstanceUIDs(csr)
	if len(ids) == 0 {
		return nil, steward.Errorf(steward.EINVALID, "CSR names no instance uid: put the agent's instance_uid in the subject common name (or a urn:uuid URI SAN)")
	}
	for _, x := range ids {
		if x != id {
			return nil, steward.Errorf(steward.EINVALID, "CSR is for instance uid %s, but the agent sending it is %s", x, id)
		}
	}
	return c.issue(csr.PublicKey, id, lifetime)
}

// Renew issues a new certificate for the same agent and public key as prev
// (which the CA issued), so that an agent holding the private key can
// rotate without a new CSR.
func (c *CA) Renew(prev *x509.Certificate, lifetime time.Duration) (*x509.Certificate, error) {
	id, ok := InstanceUID(prev)
	if !ok {
		return nil, steward.Errorf(steward.EINVALID, "certificate %x names no instance uid", prev.SerialNumber)
	}
	if err := prev.CheckSignatureFrom(c.cert); err != nil {
		return nil, steward.Errorf(steward.EINVALID, "certificate %x was not issued by this CA", prev.SerialNumber)
	}
	return c.issue(prev.PublicKey, id, lifetime)
}

func (c *CA) issue(pub any, id steward.InstanceUID, lifetime time.Duration) (*x509.Certificate, error) {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	now := time.Now().UTC()
	if c.Clock != nil {
		now = c.Clock().UTC()
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	u, _ := url.Parse("urn:uuid:" + id.String())
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: id.String(), Organization: []string{"Steward agent"}},
		URIs:         []*url.URL{u},
		NotBefore:    now.Add(-5 * time.Minute), // clock skew
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "cannot issue a certificate for this key: %v", err)
	}
	return x509.ParseCertificate(der)
}

// Verify checks that cert was issued by this CA for client authentication
// and is valid at now.
func (c *CA) Verify(cert *x509.Certificate, now time.Time) error {
	_, err := cert.Verify(x509.VerifyOptions{Roots: c.pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// Serial returns a certificate's serial number as lower-case hex (the form
// stores keep).
func Serial(cert *x509.Certificate) string { return hex.EncodeToString(cert.SerialNumber.Bytes()) }

// PEM encodes a certificate.
func PEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Record returns the store record of an issued certificate.
func Record(cert *x509.Certificate, id steward.InstanceUID) *steward.AgentCertificate {
	return &steward.AgentCertificate{Serial: Serial(cert), AgentID: id, NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
		PEM: PEM(cert), CreatedAt: time.Now().UTC()}
}

// RenewAt returns when a certificate should be rotated: after two thirds
// of its lifetime.
func RenewAt(cert *steward.AgentCertificate) time.Time {
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3)
}

func randSerial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40 // never a leading zero byte: the hex form stays 32 digits
	return new(big.Int).SetBytes(b)
}

// DeriveKey returns a 32-byte secret for purpose derived from the CA's
// private key (HMAC-SHA256), so every replica sharing the CA derives the
// same one and a new CA key changes it.
func (c *CA) DeriveKey(purpose string) []byte {
	der, _ := x509.MarshalECPrivateKey(c.key)
	m := hmac.New(sha256.New, der)
	m.Write([]byte("steward derived key\x00" + purpose))
	return m.Sum(nil)
}
