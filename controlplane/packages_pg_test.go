package controlplane_test

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/postgres/pgtest"
)

// Two replicas on one PostgreSQL database share packages without a shared
// file system: the content is in the database, both use the one signing
// key, and a download URL made by one is honoured by the other.
func TestPackagesAcrossPostgresReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	open := func(name string) *controlplane.Service {
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: name, Packages: controlplane.PackageOptions{BaseURL: "http://" + name}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(); db.Close() })
		return svc
	}
	r1, r2 := open("r1"), open("r2")
	content := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB: several chunks
	p, err := r1.UploadPackage(ctx, &steward.Package{Name: "otelcol", Version: "1"}, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := r1.PackageKeys(ctx)
	k2, _ := r2.PackageKeys(ctx)
	if k1[0].ID != k2[0].ID || p.SignedBy != k1[0].ID {
		t.Fatalf("replicas sign with different keys: %s %s", k1[0].ID, k2[0].ID)
	}
	f, size, err := r2.OpenPackageContent(ctx, p.Hash)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || size != int64(len(content)) || !bytes.Equal(got, content) {
		t.Fatalf("content read on the other replica differs (%d bytes, %v)", len(got), err)
	}
	u, _ := url.Parse(r1.DownloadURL(p.Hash))
	if !strings.HasPrefix(u.String(), "http://r1"+controlplane.PackageContentPath) {
		t.Fatalf("url %s", u)
	}
	exp, _ := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	if err := r2.VerifyDownload(p.Hash, exp, u.Query().Get("token")); err != nil {
		t.Fatalf("replica 2 refuses replica 1's URL: %v", err)
	}
}
