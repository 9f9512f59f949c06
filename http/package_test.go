package http_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/sqlite"
)

type pkgEnv struct {
	cp      *controlplane.Service
	ts      *httptest.Server
	client  *stewardhttp.Client
	blobDir string
	trusted ed25519.PrivateKey
}

const pkgToken = "test-token"

// newPkgEnv serves the API, with authentication on, in front of a control
// plane whose packages live in a blobfs directory; download URLs point at
// the test server.
func newPkgEnv(t *testing.T) *pkgEnv {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blobs, err := blobfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ts := httptest.NewUnstartedServer(nil)
	log := slog.New(slog.DiscardHandler)
	cp, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: "test", Logger: log,
		Packages: controlplane.PackageOptions{Blobs: blobs, BaseURL: "http://" + ts.Listener.Addr().String(), MaxSize: 10 << 20, TrustedKeys: []ed25519.PublicKey{pub}}})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = stewardhttp.NewServer(stewardhttp.Options{Agents: cp, Configs: cp, Packages: cp, APITokens: []string{pkgToken}, Logger: log})
	ts.Start()
	t.Cleanup(func() { ts.Close(); cp.Close(); db.Close() })
	return &pkgEnv{cp: cp, ts: ts, client: stewardhttp.NewClient(ts.URL, pkgToken), blobDir: filepath.Join(dir, "sha256"), trusted: priv}
}

func TestPackageUploadDownload(t *testing.T) {
	e := newPkgEnv(t)
	ctx := context.Background()
	content := make([]byte, 9<<20) // over the API's 8 MiB JSON body limit
	_, _ = rand.Read(content)
	sum := sha256.Sum256(content)

	p, err := e.client.UploadPackage(ctx, &steward.Package{Name: "otelcol", Version: "0.120.0", Hash: sum[:]}, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Hash, sum[:]) || p.Size != int64(len(content)) || p.Type != steward.PackageTopLevel {
		t.Fatalf("uploaded = %+v", p)
	}
	keys, err := e.client.PackageKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Server || p.SignedBy != keys[0].ID || !ed25519.Verify(keys[0].PublicKey, sum[:], p.Signature) {
		t.Fatalf("keys %+v, package signed by %q", keys, p.SignedBy)
	}
	if _, err := os.Stat(filepath.Join(e.blobDir, hex.EncodeToString(sum[:]))); err != nil {
		t.Fatalf("content not stored by hash: %v", err)
	}

	// Authenticated download, whole and in part.
	var got bytes.Buffer
	if err := e.client.DownloadPackage(ctx, "otelcol", "0.120.0", &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), content) {
		t.Fatal("downloaded content differs")
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/packages/otelcol/0.120.0/content", nil)
	req.Header.Set("Authorization", "Bearer "+pkgToken)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, content[100:200]) {
		t.Fatalf("range request: %d, %d bytes", resp.StatusCode, len(part))
	}
	// Without credentials the API route is refused.
	resp, err = http.Get(e.ts.URL + "/api/v1/packages/otelcol/0.120.0/content")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous download: %d", resp.StatusCode)
	}

	// Signed URL: no credentials needed, but the token must be right.
	u := e.cp.DownloadURL(sum[:])
	if !strings.HasPrefix(u, e.ts.URL+"/api/v1/package-content/") {
		t.Fatalf("download URL %q", u)
	}
	status := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && !bytes.Equal(b, content) {
			t.Fatal("signed download content differs")
		}
		return resp.StatusCode
	}
	if s := status(u); s != 200 {
		t.Fatalf("signed URL: %d", s)
	}
	pu, _ := url.Parse(u)
	q := pu.Query()
	tampered := *pu
	q2 := url.Values{"expires": {q.Get("expires")}, "token": {strings.Repeat("0", 64)}}
	tampered.RawQuery = q2.Encode()
	if s := status(tampered.String()); s != http.StatusUnauthorized {
		t.Fatalf("tampered token: %d", s)
	}
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	q3 := url.Values{"expires": {strconv.FormatInt(exp+3600, 10)}, "token": {q.Get("token")}}
	tampered.RawQuery = q3.Encode()
	if s := status(tampered.String()); s != http.StatusUnauthorized {
		t.Fatalf("extended expiry: %d", s)
	}
	// Unknown content with a valid token for its hash: 404.
	unknown := sha256.Sum256([]byte("nothing"))
	if s := status(e.cp.DownloadURL(unknown[:])); s != http.StatusNotFound {
		t.Fatalf("unknown hash: %d", s)
	}
	if s := status(e.ts.URL + "/api/v1/package-content/zz?expires=1&token=x"); s != http.StatusNotFound {
		t.Fatalf("malformed hash: %d", s)
	}

	// Listing, metadata, duplicate version.
	list, err := e.client.Packages(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("Packages = %v, %v", list, err)
	}
	_, err = e.client.UploadPackage(ctx, &steward.Package{Name: "otelcol", Version: "0.120.0"}, strings.NewReader("x"))
	if steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("duplicate version: %v", err)
	}
}

func TestPackageUploadRefused(t *testing.T) {
	e := newPkgEnv(t)
	ctx := context.Background()
	content := []byte("#!/bin/sh\nexec true\n")
	sum := sha256.Sum256(content)
	cases := []struct {
		name string
		p    *steward.Package
		body []byte
		want string
	}{
		{"corrupt", &steward.Package{Name: "a", Version: "1", Hash: sum[:]}, append([]byte("X"), content[1:]...), "hash mismatch"},
		{"truncated", &steward.Package{Name: "a", Version: "1", Hash: sum[:]}, content[:10], "hash mismatch"},
		{"too large", &steward.Package{Name: "a", Version: "1"}, make([]byte, 10<<20+1), "limit"},
		{"untrusted signature", &steward.Package{Name: "a", Version: "1", Signature: bytes.Repeat([]byte{1}, 64)}, content, "bad signature"},
		{"short signature", &steward.Package{Name: "a", Version: "1", Signature: []byte{1, 2}}, content, "bad signature"},
		{"bad type", &steward.Package{Name: "a", Version: "1", Type: "driver"}, content, "type"},
		{"bad version", &steward.Package{Name: "a", Version: "1..2/x"}, content, ""},
	}
	for _, c := range cases {
		_, err := e.client.UploadPackage(ctx, c.p, bytes.NewReader(c.body))
		if steward.ErrorCode(err) != steward.EINVALID && !(c.name == "bad version" && steward.ErrorCode(err) == steward.ENOTFOUND) {
			t.Errorf("%s: %v, want invalid", c.name, err)
		} else if !strings.Contains(steward.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want a message with %q", c.name, err, c.want)
		}
	}
	if list, _ := e.client.Packages(ctx); len(list) != 0 {
		t.Fatalf("refused uploads stored: %v", list)
	}
	entries, _ := os.ReadDir(e.blobDir)
	if len(entries) != 0 {
		t.Fatalf("refused uploads left content: %v", entries)
	}

	// A trusted external signature is accepted and keeps its key id.
	sig := ed25519.Sign(e.trusted, sum[:])
	p, err := e.client.UploadPackage(ctx, &steward.Package{Name: "a", Version: "1", Signature: sig}, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if p.SignedBy != steward.PackageKeyID(e.trusted.Public().(ed25519.PublicKey)) {
		t.Fatalf("signed_by %q", p.SignedBy)
	}
	// The raw query form (base64) works too.
	req, _ := http.NewRequest("PUT", e.ts.URL+"/api/v1/packages/a/2?type=addon&signature="+url.QueryEscape(base64.StdEncoding.EncodeToString(sig)), bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+pkgToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("raw upload: %d", resp.StatusCode)
	}
}

func TestPackageAssignmentsAPI(t *testing.T) {
	e := newPkgEnv(t)
	ctx := context.Background()
	if _, err := e.client.UploadPackage(ctx, &steward.Package{Name: "otelcol", Version: "1"}, strings.NewReader("v1")); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.PutPackageAssignment(ctx, &steward.PackageAssignment{Name: "all", Selector: "os.type=linux",
		Packages: []steward.PackageRef{{Name: "otelcol", Version: "9"}}})
	if steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("assignment of a missing version: %v", err)
	}
	_, err = e.client.PutPackageAssignment(ctx, &steward.PackageAssignment{Name: "all", Packages: []steward.PackageRef{{Name: "otelcol", Version: "1"}}})
	if steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("assignment without a selector: %v", err)
	}
	a, err := e.client.PutPackageAssignment(ctx, &steward.PackageAssignment{Name: "all", Selector: "os.type=linux",
		Packages: []steward.PackageRef{{Name: "otelcol", Version: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.PackageAssignment(ctx, "all")
	if err != nil || got.Selector != a.Selector || len(got.Packages) != 1 {
		t.Fatalf("PackageAssignment = %+v, %v", got, err)
	}
	list, err := e.client.PackageAssignments(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("PackageAssignments = %v, %v", list, err)
	}
	if err := e.client.DeletePackage(ctx, "otelcol", "1"); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("delete of an assigned version: %v", err)
	}
	if _, _, err := e.client.DesiredPackages(ctx, steward.NewInstanceUID()); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("desired packages of an unknown agent: %v", err)
	}
	if err := e.client.DeletePackageAssignment(ctx, "all"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.DeletePackage(ctx, "otelcol", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Package(ctx, "otelcol", "1"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("deleted package: %v", err)
	}
}

// Without a package service the routes answer 501.
func TestPackagesNotConfigured(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/api/v1/packages", nil)
	if r.status != http.StatusNotImplemented {
		t.Fatalf("GET /api/v1/packages without packages: %d", r.status)
	}
}
