package storetest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward"
)

func pkg(name, version string, content string) *steward.Package {
	h := sha256.Sum256([]byte(content))
	return &steward.Package{Name: name, Version: version, Type: steward.PackageTopLevel, Hash: h[:], Size: int64(len(content)),
		Signature: bytes.Repeat([]byte{7}, 64), SignedBy: "0011223344556677", ContentType: "application/octet-stream", CreatedAt: ts(1000, 5)}
}

// testPackages checks PackageStore: package versions, assignments that keep
// their versions from being deleted, and the signing key.
func testPackages(t *testing.T, s steward.Store) {
	ps, ok := s.(steward.PackageStore)
	if !ok {
		t.Fatalf("%T does not implement steward.PackageStore", s)
	}
	c := ctx(t)
	_, err := ps.Package(c, "agent", "1.0.0")
	wantCode(t, err, steward.ENOTFOUND, "missing package")

	v1 := pkg("agent", "1.0.0", "one")
	must(t, ps.PutPackage(c, v1), "put v1")
	wantCode(t, ps.PutPackage(c, pkg("agent", "1.0.0", "other")), steward.ECONFLICT, "same version again")
	v2 := pkg("agent", "2.0.0", "two")
	v2.CreatedAt = ts(2000, 0)
	must(t, ps.PutPackage(c, v2), "put v2")
	addon := pkg("addon-x", "0.1", "x")
	addon.Type = steward.PackageAddon
	must(t, ps.PutPackage(c, addon), "put addon")

	got, err := ps.Package(c, "agent", "1.0.0")
	must(t, err, "get v1")
	sameJSON(t, got, v1, "package round trip")

	list, err := ps.Packages(c)
	must(t, err, "list")
	var order []string
	for _, p := range list {
		order = append(order, p.Name+"@"+p.Version)
	}
	if strings.Join(order, " ") != "addon-x@0.1 agent@2.0.0 agent@1.0.0" {
		t.Fatalf("Packages order = %v", order)
	}

	// Assignments.
	_, err = ps.PackageAssignment(c, "fleet")
	wantCode(t, err, steward.ENOTFOUND, "missing assignment")
	_, err = ps.PutPackageAssignment(c, &steward.PackageAssignment{Name: "fleet", Selector: "env=prod",
		Packages: []steward.PackageRef{{Name: "agent", Version: "9.9"}}, CreatedAt: ts(10, 0), UpdatedAt: ts(10, 0)})
	wantCode(t, err, steward.ENOTFOUND, "assignment of a missing version")
	if _, err := ps.PackageAssignment(c, "fleet"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("a refused assignment was stored: %v", err)
	}
	a := &steward.PackageAssignment{Name: "fleet", Selector: "env=prod", Priority: 3,
		Packages: []steward.PackageRef{{Name: "agent", Version: "1.0.0"}, {Name: "addon-x", Version: "0.1"}}, CreatedAt: ts(10, 0), UpdatedAt: ts(10, 0)}
	out, err := ps.PutPackageAssignment(c, a)
	must(t, err, "put assignment")
	sameJSON(t, out, a, "put assignment result")
	got2, err := ps.PackageAssignment(c, "fleet")
	must(t, err, "get assignment")
	sameJSON(t, got2, a, "assignment round trip")

	wantCode(t, ps.DeletePackage(c, "agent", "1.0.0"), steward.ECONFLICT, "delete of an assigned version")
	wantCode(t, ps.DeletePackage(c, "agent", "7"), steward.ENOTFOUND, "delete of a missing version")

	// Upgrade: the same assignment moves to v2; v1 is free again, and the
	// creation time stays.
	up := &steward.PackageAssignment{Name: "fleet", Selector: "env=prod",
		Packages: []steward.PackageRef{{Name: "agent", Version: "2.0.0"}}, CreatedAt: ts(20, 0), UpdatedAt: ts(20, 0)}
	out, err = ps.PutPackageAssignment(c, up)
	must(t, err, "upgrade")
	if !out.CreatedAt.Equal(ts(10, 0)) || !out.UpdatedAt.Equal(ts(20, 0)) {
		t.Fatalf("times after replace: created %v updated %v", out.CreatedAt, out.UpdatedAt)
	}
	must(t, ps.DeletePackage(c, "agent", "1.0.0"), "delete the no longer assigned v1")
	wantCode(t, ps.DeletePackage(c, "agent", "2.0.0"), steward.ECONFLICT, "delete of the newly assigned v2")

	id := uid(9)
	_, err = ps.PutPackageAssignment(c, &steward.PackageAssignment{Name: "one", AgentID: &id,
		Packages: []steward.PackageRef{{Name: "addon-x", Version: "0.1"}}, CreatedAt: ts(30, 0), UpdatedAt: ts(30, 0)})
	must(t, err, "put agent assignment")
	as, err := ps.PackageAssignments(c)
	must(t, err, "list assignments")
	if len(as) != 2 || as[0].Name != "fleet" || as[1].Name != "one" || as[1].AgentID == nil || *as[1].AgentID != id {
		t.Fatalf("PackageAssignments = %+v", as)
	}
	must(t, ps.DeletePackageAssignment(c, "fleet"), "delete assignment")
	wantCode(t, ps.DeletePackageAssignment(c, "fleet"), steward.ENOTFOUND, "delete a deleted assignment")
	must(t, ps.DeletePackage(c, "agent", "2.0.0"), "delete v2 once unassigned")
	wantCode(t, ps.DeletePackage(c, "addon-x", "0.1"), steward.ECONFLICT, "addon still assigned to one agent")

	// Signing key: the first candidate wins, concurrently too.
	var wg sync.WaitGroup
	keys := make([]ed25519.PrivateKey, 6)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, cand, _ := ed25519.GenerateKey(rand.Reader)
			k, err := ps.PackageSigningKey(c, cand)
			if err != nil {
				t.Errorf("PackageSigningKey: %v", err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) || len(k) != ed25519.PrivateKeySize {
			t.Fatalf("replicas got different signing keys")
		}
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	k, err := ps.PackageSigningKey(c, other)
	must(t, err, "signing key again")
	if !bytes.Equal(k, keys[0]) {
		t.Fatal("a later candidate replaced the stored signing key")
	}
}

// TestBlobStore checks a steward.BlobStore: content addressing, the size
// limit, hash verification, partial reads and seeking, and deletion.
func TestBlobStore(t *testing.T, bs steward.BlobStore) {
	c := ctx(t)
	content := make([]byte, 3<<20+12345) // crosses chunk boundaries
	_, _ = rand.Read(content)
	want := sha256.Sum256(content)

	_, _, err := bs.OpenBlob(c, want[:])
	wantCode(t, err, steward.ENOTFOUND, "missing blob")

	_, _, err = bs.PutBlob(c, bytes.NewReader(content), int64(len(content))-1, nil)
	wantCode(t, err, steward.EINVALID, "blob over the size limit")
	_, _, err = bs.OpenBlob(c, want[:])
	wantCode(t, err, steward.ENOTFOUND, "blob refused for size was kept")

	_, _, err = bs.PutBlob(c, bytes.NewReader(content[:len(content)-10]), 1<<30, want[:])
	wantCode(t, err, steward.EINVALID, "truncated blob")
	if err != nil && !strings.Contains(steward.ErrorMessage(err), "hash mismatch") {
		t.Fatalf("truncated blob error = %v, want a hash mismatch", err)
	}
	_, _, err = bs.OpenBlob(c, want[:])
	wantCode(t, err, steward.ENOTFOUND, "truncated blob was kept")

	h, n, err := bs.PutBlob(c, bytes.NewReader(content), int64(len(content)), want[:])
	must(t, err, "put blob")
	if !bytes.Equal(h, want[:]) || n != int64(len(content)) {
		t.Fatalf("PutBlob = %x, %d", h, n)
	}
	// Content addressed: the same content again is fine.
	h2, _, err := bs.PutBlob(c, bytes.NewReader(content), int64(len(content)), nil)
	must(t, err, "put blob again")
	if !bytes.Equal(h2, h) {
		t.Fatal("same content, different hash")
	}

	r, size, err := bs.OpenBlob(c, h)
	must(t, err, "open blob")
	if size != int64(len(content)) {
		t.Fatalf("size = %d", size)
	}
	got, err := io.ReadAll(r)
	must(t, err, "read blob")
	if !bytes.Equal(got, content) {
		t.Fatal("blob content differs")
	}
	off := int64(1<<20 - 7)
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 100)
	if _, err := io.ReadFull(r, part); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part, content[off:off+100]) {
		t.Fatal("content after seek differs")
	}
	r.Close()

	must(t, bs.DeleteBlob(c, h), "delete blob")
	_, _, err = bs.OpenBlob(c, h)
	wantCode(t, err, steward.ENOTFOUND, "deleted blob")
	must(t, bs.DeleteBlob(c, h), "delete a missing blob")
}
