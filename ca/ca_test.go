package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/store/sqlite"
)

func csr(t *testing.T, cn string, uris ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, u := range uris {
		p, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func TestSignCSR(t *testing.T) {
	c, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	uid := steward.NewInstanceUID()
	// The uid as common name, or as a urn:uuid SAN (DER CSRs too).
	byCN, _ := csr(t, uid.String())
	bySAN, _ := csr(t, "collector", "urn:uuid:"+uid.String())
	b, _ := pem.Decode(bySAN)
	for name, req := range map[string][]byte{"cn": byCN, "san (der)": b.Bytes} {
		cert, err := c.SignCSR(req, uid, time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, ok := ca.InstanceUID(cert); !ok || got != uid {
			t.Fatalf("%s: certificate names %v", name, got)
		}
		if err := c.Verify(cert, time.Now()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Verify(cert, time.Now().Add(2*time.Hour)); err == nil {
			t.Fatalf("%s: verifies after expiry", name)
		}
		if len(ca.Serial(cert)) != 32 {
			t.Fatalf("serial %q", ca.Serial(cert))
		}
	}
	// Another agent's uid in the SAN next to the right CN: refused.
	mixed, _ := csr(t, uid.String(), "urn:uuid:"+steward.NewInstanceUID().String())
	if _, err := c.SignCSR(mixed, uid, time.Hour); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("mixed uids: %v", err)
	}
	// A CSR whose signature does not match its content.
	bad, _ := csr(t, uid.String())
	blk, _ := pem.Decode(bad)
	blk.Bytes[len(blk.Bytes)-5] ^= 0xff
	if _, err := c.SignCSR(blk.Bytes, uid, time.Hour); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("bad signature: %v", err)
	}
	// Renewal keeps the key and the uid.
	cert, _ := c.SignCSR(byCN, uid, time.Hour)
	next, err := c.Renew(cert, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !next.PublicKey.(*ecdsa.PublicKey).Equal(cert.PublicKey) || next.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Fatal("renewal changed the key or kept the serial")
	}
	other, _ := ca.New()
	if _, err := other.Renew(cert, time.Hour); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("renewal by another CA: %v", err)
	}
	rec := ca.Record(cert, uid)
	if at := ca.RenewAt(rec); at.Before(rec.NotBefore.Add(39*time.Minute)) || at.After(rec.NotBefore.Add(45*time.Minute)) {
		t.Fatalf("renew at %v for %v..%v", at, rec.NotBefore, rec.NotAfter)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	a, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	b, err := ca.LoadOrCreate(dir)
	if err != nil || string(b.CertPEM()) != string(a.CertPEM()) {
		t.Fatalf("second load gave another CA: %v", err)
	}
	os.Remove(filepath.Join(dir, "ca.crt"))
	if _, err := ca.LoadOrCreate(dir); err == nil {
		t.Fatal("a key without its certificate was accepted")
	}
	other, _ := ca.New()
	if _, err := ca.Parse(a.CertPEM(), other.KeyPEM()); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("mismatched key: %v", err)
	}
}

// Replicas sharing a database use one CA.
func TestFromStore(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := ca.FromStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.FromStore(ctx, db)
	if err != nil || string(a.CertPEM()) != string(b.CertPEM()) || string(a.KeyPEM()) != string(b.KeyPEM()) {
		t.Fatalf("two loads disagree: %v", err)
	}
}
