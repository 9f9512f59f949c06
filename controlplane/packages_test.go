package controlplane_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/sqlite"
)

func newPackageFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobfs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", FlushInterval: 50 * time.Millisecond,
		Packages: controlplane.PackageOptions{Blobs: blobs, BaseURL: "http://127.0.0.1:9/", MaxSize: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	return &fixture{t: t, ctx: ctx, store: st, svc: svc}
}

func (f *fixture) upload(name, version string, typ steward.PackageType, content string) *steward.Package {
	f.t.Helper()
	p, err := f.svc.UploadPackage(f.ctx, &steward.Package{Name: name, Version: version, Type: typ}, strings.NewReader(content))
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func pkgAgentHello(id steward.InstanceUID, seq uint64, caps steward.AgentCapabilities) *protobufs.AgentToServer {
	return &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: seq, Capabilities: uint64(caps | steward.AgentReportsStatus),
		AgentDescription: &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{
			{Key: "service.name", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "otelcol"}}}}}}
}

func TestPackageOffers(t *testing.T) {
	f := newPackageFixture(t)
	v1 := f.upload("agent", "1.0", "", "agent binary one")
	v2 := f.upload("agent", "2.0", steward.PackageTopLevel, "agent binary two")
	addon := f.upload("addon", "0.1", steward.PackageAddon, "addon content")

	// The server signed them with its key.
	keys, err := f.svc.PackageKeys(f.ctx)
	if err != nil || len(keys) != 1 || !keys[0].Server {
		t.Fatalf("PackageKeys = %v, %v", keys, err)
	}
	for _, p := range []*steward.Package{v1, v2, addon} {
		sum := sha256.Sum256([]byte(map[string]string{"1.0": "agent binary one", "2.0": "agent binary two", "0.1": "addon content"}[p.Version]))
		if !bytes.Equal(p.Hash, sum[:]) || p.SignedBy != keys[0].ID || !ed25519.Verify(keys[0].PublicKey, p.Hash, p.Signature) {
			t.Fatalf("package %s@%s: hash or signature wrong: %+v", p.Name, p.Version, p)
		}
	}

	caps := steward.AgentAcceptsPackages | steward.AgentReportsPackageStatuses
	idA, idNo := steward.NewInstanceUID(), steward.NewInstanceUID()
	a := f.connect(server.WebSocket)
	no := f.connect(server.WebSocket)
	if r := f.send(a, pkgAgentHello(idA, 1, caps)); r.PackagesAvailable != nil {
		t.Fatal("offered packages with nothing assigned")
	}
	f.send(no, pkgAgentHello(idNo, 1, 0)) // does not accept packages

	_, err = f.svc.PutPackageAssignment(f.ctx, &steward.PackageAssignment{Name: "collectors", Selector: "service.name=otelcol",
		Packages: []steward.PackageRef{{Name: "agent", Version: "1.0"}, {Name: "addon", Version: "0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var offer *protobufs.PackagesAvailable
	eventually(t, "offer pushed", func() bool {
		for _, m := range a.pushed() {
			if m.PackagesAvailable != nil {
				offer = m.PackagesAvailable
				return true
			}
		}
		return false
	})
	for _, m := range no.pushed() {
		if m.PackagesAvailable != nil {
			t.Fatal("packages offered to an agent without AcceptsPackages")
		}
	}
	if len(offer.Packages) != 2 || len(offer.AllPackagesHash) != 32 {
		t.Fatalf("offer = %v", offer)
	}
	pa := offer.Packages["agent"]
	if pa.Version != "1.0" || pa.Type != protobufs.PackageType_PackageType_TopLevel || !bytes.Equal(pa.File.ContentHash, v1.Hash) ||
		!bytes.Equal(pa.File.Signature, v1.Signature) || !bytes.Equal(pa.Hash, v1.OfferHash()) ||
		!strings.HasPrefix(pa.File.DownloadUrl, "http://127.0.0.1:9"+controlplane.PackageContentPath+v1.HashHex()+"?") {
		t.Fatalf("agent offer = %v", pa)
	}
	if offer.Packages["addon"].Type != protobufs.PackageType_PackageType_Addon {
		t.Fatalf("addon type = %v", offer.Packages["addon"].Type)
	}
	pkgs, hash, err := f.svc.DesiredPackages(f.ctx, idA)
	if err != nil || len(pkgs) != 2 || !bytes.Equal(hash, offer.AllPackagesHash) {
		t.Fatalf("DesiredPackages = %v, %x, %v", pkgs, hash, err)
	}

	// The agent reports progress with the offered hash: not offered again.
	st := &protobufs.AgentToServer{InstanceUid: idA[:], SequenceNum: 2, Capabilities: uint64(caps | steward.AgentReportsStatus),
		PackageStatuses: &protobufs.PackageStatuses{ServerProvidedAllPackagesHash: offer.AllPackagesHash, Packages: map[string]*protobufs.PackageStatus{
			"agent": {Name: "agent", ServerOfferedVersion: "1.0", Status: protobufs.PackageStatusEnum_PackageStatusEnum_Downloading}}}}
	if r := f.send(a, st); r.PackagesAvailable != nil {
		t.Fatal("offered again after the agent reported the offered hash")
	}
	// A new connection of the same agent: it already has the hash, no offer.
	a.Close()
	a2 := f.connect(server.WebSocket)
	if r := f.send(a2, pkgAgentHello(idA, 3, caps)); r.PackagesAvailable != nil {
		t.Fatal("offered again on reconnect although the agent reported the current hash")
	}
	ag, err := f.svc.Agent(f.ctx, idA)
	if err != nil || ag.PackageStatuses == nil || ag.PackageStatuses.Packages["agent"].Status != steward.PackageDownloading {
		t.Fatalf("stored package statuses = %+v, %v", ag.PackageStatuses, err)
	}

	// Upgrade: a new version is offered with a new all-packages hash.
	if _, err := f.svc.PutPackageAssignment(f.ctx, &steward.PackageAssignment{Name: "collectors", Selector: "service.name=otelcol",
		Packages: []steward.PackageRef{{Name: "agent", Version: "2.0"}, {Name: "addon", Version: "0.1"}}}); err != nil {
		t.Fatal(err)
	}
	var up *protobufs.PackagesAvailable
	eventually(t, "upgrade offered", func() bool {
		for _, m := range a2.pushed() {
			if m.PackagesAvailable != nil {
				up = m.PackagesAvailable
				return true
			}
		}
		return false
	})
	if up.Packages["agent"].Version != "2.0" || bytes.Equal(up.AllPackagesHash, offer.AllPackagesHash) {
		t.Fatalf("upgrade offer = %v", up)
	}
	// An assigned version cannot be deleted; an unassigned one can.
	if err := f.svc.DeletePackage(f.ctx, "agent", "2.0"); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("delete of an assigned version: %v", err)
	}
	if err := f.svc.DeletePackage(f.ctx, "agent", "1.0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.OpenPackageContent(f.ctx, v1.Hash); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("content of a deleted version still served: %v", err)
	}

	// Unassigned: the agent, which reported our hash, is offered the empty set.
	f.send(a2, &protobufs.AgentToServer{InstanceUid: idA[:], SequenceNum: 4, Capabilities: uint64(caps | steward.AgentReportsStatus),
		PackageStatuses: &protobufs.PackageStatuses{ServerProvidedAllPackagesHash: up.AllPackagesHash}})
	n := len(a2.pushed())
	if err := f.svc.DeletePackageAssignment(f.ctx, "collectors"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "empty offer", func() bool {
		for _, m := range a2.pushed()[n:] {
			if m.PackagesAvailable != nil {
				return len(m.PackagesAvailable.Packages) == 0 && bytes.Equal(m.PackagesAvailable.AllPackagesHash, steward.AllPackagesHash(nil))
			}
		}
		return false
	})
}

func TestPackagePriorityAndOneTopLevel(t *testing.T) {
	f := newPackageFixture(t)
	f.upload("otelcol", "1", "", "a")
	f.upload("otelcol", "2", "", "b")
	f.upload("other-agent", "1", "", "c")
	id := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, pkgAgentHello(id, 1, steward.AgentAcceptsPackages))
	put := func(name string, prio int, refs ...steward.PackageRef) {
		if _, err := f.svc.PutPackageAssignment(f.ctx, &steward.PackageAssignment{Name: name, Selector: "service.name=otelcol", Priority: prio, Packages: refs}); err != nil {
			t.Fatal(err)
		}
	}
	put("base", 0, steward.PackageRef{Name: "otelcol", Version: "1"})
	put("pinned", 5, steward.PackageRef{Name: "otelcol", Version: "2"})
	put("second-agent", 1, steward.PackageRef{Name: "other-agent", Version: "1"})
	pkgs, _, err := f.svc.DesiredPackages(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].Name != "otelcol" || pkgs[0].Version != "2" {
		t.Fatalf("desired = %+v, want only otelcol@2 (higher priority; one top-level package)", pkgs)
	}
}

func TestUploadRefusals(t *testing.T) {
	f := newPackageFixture(t)
	good := "the content"
	sum := sha256.Sum256([]byte(good))
	// Truncated upload with the expected hash: refused, nothing stored.
	_, err := f.svc.UploadPackage(f.ctx, &steward.Package{Name: "a", Version: "1", Hash: sum[:]}, strings.NewReader(good[:5]))
	if steward.ErrorCode(err) != steward.EINVALID || !strings.Contains(err.Error(), "hash mismatch") {
		t.Fatalf("truncated upload: %v", err)
	}
	if _, err := f.svc.Package(f.ctx, "a", "1"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("refused upload stored: %v", err)
	}
	// Over the size limit.
	_, err = f.svc.UploadPackage(f.ctx, &steward.Package{Name: "a", Version: "1"}, bytes.NewReader(make([]byte, 1<<20+1)))
	if steward.ErrorCode(err) != steward.EINVALID || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized upload: %v", err)
	}
	// An external signature by an untrusted key.
	_, priv, _ := ed25519.GenerateKey(nil)
	_, err = f.svc.UploadPackage(f.ctx, &steward.Package{Name: "a", Version: "1", Signature: ed25519.Sign(priv, sum[:])}, strings.NewReader(good))
	if steward.ErrorCode(err) != steward.EINVALID || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("untrusted signature: %v", err)
	}
	if _, _, err := f.svc.OpenPackageContent(f.ctx, sum[:]); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("content of a refused upload kept: %v", err)
	}
	// Bad metadata.
	for _, p := range []*steward.Package{{Name: "", Version: "1"}, {Name: "a", Version: "1 2"}, {Name: "a", Version: "1", Type: "plugin"}} {
		if _, err := f.svc.UploadPackage(f.ctx, p, strings.NewReader(good)); steward.ErrorCode(err) != steward.EINVALID {
			t.Fatalf("upload %+v: %v", p, err)
		}
	}
	// Duplicate version.
	f.upload("a", "1", "", good)
	if _, err := f.svc.UploadPackage(f.ctx, &steward.Package{Name: "a", Version: "1"}, strings.NewReader("other")); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("duplicate version: %v", err)
	}
}

func TestExternalSignatureFromTrustedKey(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := blobfs.Open(t.TempDir())
	pub, priv, _ := ed25519.GenerateKey(nil)
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1",
		Packages: controlplane.PackageOptions{Blobs: blobs, TrustedKeys: []ed25519.PublicKey{pub}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	content := "signed elsewhere"
	sum := sha256.Sum256([]byte(content))
	p, err := svc.UploadPackage(ctx, &steward.Package{Name: "x", Version: "1", Signature: ed25519.Sign(priv, sum[:])}, strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if p.SignedBy != steward.PackageKeyID(pub) {
		t.Fatalf("signed_by = %q, want the trusted key %q", p.SignedBy, steward.PackageKeyID(pub))
	}
	// A signature over other content, with the expected hash given: refused
	// before the content is read.
	other := sha256.Sum256([]byte("other"))
	_, err = svc.UploadPackage(ctx, &steward.Package{Name: "x", Version: "2", Hash: sum[:], Signature: ed25519.Sign(priv, other[:])}, strings.NewReader(content))
	if steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("wrong signature: %v", err)
	}
	// The signing key survives a restart (kept in the store).
	k1, _ := svc.PackageKeys(ctx)
	svc2, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r2", Packages: controlplane.PackageOptions{Blobs: blobs}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	k2, _ := svc2.PackageKeys(ctx)
	if k1[0].ID != k2[0].ID {
		t.Fatal("the server signing key changed across restarts")
	}
	// Download tokens made by one replica verify on the other.
	u, err := url.Parse(svc.DownloadURL(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("token")
	e, err := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	if err != nil || e < time.Now().Unix() {
		t.Fatalf("expires = %q", u.Query().Get("expires"))
	}
	if err := svc2.VerifyDownload(sum[:], e, tok); err != nil {
		t.Fatalf("token from replica 1 refused by replica 2: %v", err)
	}
	if err := svc2.VerifyDownload(sum[:], e+1, tok); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("token with another expiry accepted: %v", err)
	}
	if err := svc2.VerifyDownload(other[:], e, tok); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("token for another hash accepted: %v", err)
	}
}

// BenchmarkPackageOffer measures a new agent's first message when a package
// assignment matches it: the report is stored and PackagesAvailable (with
// signed download URLs) is built.
func BenchmarkPackageOffer(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		b.Fatal(err)
	}
	blobs, _ := blobfs.Open(b.TempDir())
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", Packages: controlplane.PackageOptions{Blobs: blobs, BaseURL: "http://127.0.0.1:9"}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { svc.Close(); st.Close() }()
	for _, n := range []string{"agent", "addon-a", "addon-b"} {
		typ := steward.PackageAddon
		if n == "agent" {
			typ = steward.PackageTopLevel
		}
		if _, err := svc.UploadPackage(ctx, &steward.Package{Name: n, Version: "1", Type: typ}, strings.NewReader(n)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := svc.PutPackageAssignment(ctx, &steward.PackageAssignment{Name: "all", Selector: "service.name=otelcol",
		Packages: []steward.PackageRef{{Name: "agent", Version: "1"}, {Name: "addon-a", Version: "1"}, {Name: "addon-b", Version: "1"}}}); err != nil {
		b.Fatal(err)
	}
	caps := steward.AgentAcceptsPackages | steward.AgentReportsPackageStatuses
	for b.Loop() {
		state, _ := svc.Accept(&http.Request{})
		c := &testConn{transport: server.WebSocket, state: state}
		id := steward.NewInstanceUID()
		r, err := svc.OnMessage(ctx, c, pkgAgentHello(id, 1, caps))
		if err != nil || r.PackagesAvailable == nil || len(r.PackagesAvailable.Packages) != 3 {
			b.Fatalf("reply %v, %v", r, err)
		}
		svc.OnClose(c)
	}
}
