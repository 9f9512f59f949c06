package controlplane

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
)

var _ steward.PackageService = (*Service)(nil)

// Package defaults.
const (
	DefaultMaxPackageSize = 1 << 30 // 1 GiB
	DefaultPackageURLTTL  = time.Hour
	// PackageContentPath is the HTTP API path prefix download URLs point
	// at: PackageContentPath + "<sha256 hex>?expires=<unix>&token=<hex>".
	PackageContentPath = "/api/v1/package-content/"
)

// PackageOptions configure packages (see docs/packages.md). The zero value
// enables packages when the store implements steward.PackageStore and a
// BlobStore is available, with a signing key generated once and kept in
// the store.
type PackageOptions struct {
	// Blobs keeps package content; default the store when it implements
	// steward.BlobStore (PostgreSQL). Without one, uploads answer
	// ENOTIMPLEMENTED.
	Blobs steward.BlobStore
	// SigningKey overrides the key kept in the store.
	SigningKey ed25519.PrivateKey
	// TrustedKeys may sign packages uploaded with an external signature.
	TrustedKeys []ed25519.PublicKey
	// BaseURL is how agents reach the HTTP API (e.g.
	// "https://steward.example.com:8080"); download URLs start with it.
	// When empty download URLs are relative paths, which only agents that
	// resolve them against their server endpoint (steward-supervisor) use.
	BaseURL string
	// URLTTL is how long a download URL stays valid (default 1h).
	URLTTL time.Duration
	// MaxSize bounds uploads (default 1 GiB).
	MaxSize int64
}

// packageMachinery is the Service's package machinery.
type packageMachinery struct {
	key     ed25519.PrivateKey
	urlKey  []byte
	desired atomic.Pointer[desiredPackages]
}

// desiredPackages is an immutable snapshot of every package assignment
// resolved to its package versions.
type desiredPackages struct {
	assignments []resolvedPkgAssignment // priority desc, then name
	byKey       syncMap[string, *packageOffer]
}

type resolvedPkgAssignment struct {
	a    *steward.PackageAssignment
	sel  steward.Selector
	pkgs []*steward.Package
}

// packageOffer is the set of packages one group of agents is offered.
type packageOffer struct {
	pkgs []*steward.Package // by name
	hash []byte
}

// emptyPackagesHash is offered, with no packages, to an agent that runs
// packages from us that are no longer assigned.
var emptyPackagesHash = steward.AllPackagesHash(nil)

func (s *Service) packageStore() (steward.PackageStore, error) {
	ps, ok := s.store.(steward.PackageStore)
	if !ok {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "this store does not support packages")
	}
	return ps, nil
}

func (s *Service) blobs() (steward.BlobStore, error) {
	if s.cfg.Packages.Blobs != nil {
		return s.cfg.Packages.Blobs, nil
	}
	if b, ok := s.store.(steward.BlobStore); ok {
		return b, nil
	}
	return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "no package content store is configured")
}

// initPackages loads (or creates and stores) the signing key. A store
// without packages leaves packages off.
func (s *Service) initPackages(ctx context.Context) error {
	o := &s.cfg.Packages
	if o.URLTTL <= 0 {
		o.URLTTL = DefaultPackageURLTTL
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxPackageSize
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	key := o.SigningKey
	if key == nil {
		ps, err := s.packageStore()
		if err != nil {
			return nil
		}
		_, candidate, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if key, err = ps.PackageSigningKey(ctx, candidate); err != nil {
			return err
		}
	} else if len(key) != ed25519.PrivateKeySize {
		return steward.Errorf(steward.EINVALID, "controlplane: the package signing key must be an ed25519 private key")
	}
	s.pkg.key = key
	mac := sha256.New()
	mac.Write([]byte("steward package download url key\x00"))
	mac.Write(key.Seed())
	s.pkg.urlKey = mac.Sum(nil)
	return nil
}

// reloadPackages rebuilds the package snapshot; a store without packages
// keeps it empty.
func (s *Service) reloadPackages(ctx context.Context) error {
	ps, err := s.packageStore()
	if err != nil {
		return nil
	}
	as, err := ps.PackageAssignments(ctx)
	if err != nil {
		return err
	}
	d := &desiredPackages{}
	cache := map[steward.PackageRef]*steward.Package{}
	for _, a := range as {
		sel, err := steward.ParseSelector(a.Selector)
		if err != nil {
			s.log.Warn("package assignment skipped", "name", a.Name, "error", err)
			continue
		}
		r := resolvedPkgAssignment{a: a, sel: sel}
		for _, ref := range a.Packages {
			p, ok := cache[ref]
			if !ok {
				if p, err = ps.Package(ctx, ref.Name, ref.Version); err != nil {
					if steward.ErrorCode(err) == steward.ENOTFOUND {
						s.log.Warn("package assignment refers to a missing package", "name", a.Name, "error", err)
						continue
					}
					return err
				}
				cache[ref] = p
			}
			r.pkgs = append(r.pkgs, p)
		}
		d.assignments = append(d.assignments, r)
	}
	sort.SliceStable(d.assignments, func(i, j int) bool {
		ai, aj := d.assignments[i].a, d.assignments[j].a
		if ai.Priority != aj.Priority {
			return ai.Priority > aj.Priority
		}
		return ai.Name < aj.Name
	})
	s.pkg.desired.Store(d)
	return nil
}

// forAgent returns the packages an agent is offered; nil when no package
// assignment matches it. Per package name the first matching assignment (by
// priority, then name) wins, and so it does for the one top-level package.
func (d *desiredPackages) forAgent(id steward.InstanceUID, labels steward.Labeled) *packageOffer {
	if d == nil {
		return nil
	}
	var kb strings.Builder
	var matched []*resolvedPkgAssignment
	for i := range d.assignments {
		r := &d.assignments[i]
		if r.a.AgentID != nil && *r.a.AgentID == id || r.a.AgentID == nil && r.sel.MatchLabels(labels) {
			matched = append(matched, r)
			kb.WriteString(r.a.Name)
			kb.WriteByte(0)
		}
	}
	if len(matched) == 0 {
		return nil
	}
	key := kb.String()
	if o, ok := d.byKey.Load(key); ok {
		return o
	}
	byName := map[string]*steward.Package{}
	topLevel := false
	for _, r := range matched {
		for _, p := range r.pkgs {
			if _, taken := byName[p.Name]; taken {
				continue
			}
			if p.Type == steward.PackageTopLevel {
				if topLevel {
					continue
				}
				topLevel = true
			}
			byName[p.Name] = p
		}
	}
	o := &packageOffer{}
	for _, p := range byName {
		o.pkgs = append(o.pkgs, p)
	}
	sort.Slice(o.pkgs, func(i, j int) bool { return o.pkgs[i].Name < o.pkgs[j].Name })
	o.hash = steward.AllPackagesHash(o.pkgs)
	o, _ = d.byKey.LoadOrStore(key, o)
	return o
}

// offerPackages adds PackagesAvailable to msg when the agent accepts
// packages and the all-packages hash it last reported (PackageStatuses
// server_provided_all_packages_hash) differs from the hash of what it is
// assigned, unless that was already offered on this connection. An agent
// that runs packages from us that are no longer assigned is offered the
// empty set. ss.mu is held.
func (s *Service) offerPackages(ss *session, msg *protobufs.ServerToAgent) bool {
	if !ss.caps.Has(steward.AgentAcceptsPackages) || s.pkg.key == nil {
		return false
	}
	o := s.pkg.desired.Load().forAgent(ss.id, ss.labels)
	var want []byte
	var pkgs []*steward.Package
	if o != nil {
		want, pkgs = o.hash, o.pkgs
	}
	var reported, offered []byte
	if x := ss.extra; x != nil {
		reported, offered = x.pkgReported, x.pkgOffered
	}
	if o == nil && len(reported) > 0 && !bytes.Equal(reported, emptyPackagesHash) {
		want = emptyPackagesHash
	}
	if want == nil || bytes.Equal(want, reported) || bytes.Equal(want, offered) {
		return false
	}
	msg.PackagesAvailable = s.packagesAvailable(pkgs, want)
	ss.extras().pkgOffered = want
	names := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		names = append(names, p.Name+"@"+p.Version)
	}
	s.emit(&steward.Event{Type: steward.EventPackagesOffered, AgentID: ss.id,
		Message: "packages offered: " + strings.Join(names, ", "),
		Details: map[string]any{"all_packages_hash": hexString(want), "packages": names}})
	return true
}

// packagesAvailable builds the wire offer with fresh download URLs.
func (s *Service) packagesAvailable(pkgs []*steward.Package, hash []byte) *protobufs.PackagesAvailable {
	pa := &protobufs.PackagesAvailable{Packages: map[string]*protobufs.PackageAvailable{}, AllPackagesHash: hash}
	expires := time.Now().Add(s.cfg.Packages.URLTTL).Unix()
	for _, p := range pkgs {
		t := protobufs.PackageType_PackageType_TopLevel
		if p.Type == steward.PackageAddon {
			t = protobufs.PackageType_PackageType_Addon
		}
		pa.Packages[p.Name] = &protobufs.PackageAvailable{
			Type:    t,
			Version: p.Version,
			Hash:    p.OfferHash(),
			File: &protobufs.DownloadableFile{
				DownloadUrl: s.downloadURL(p.Hash, expires),
				ContentHash: p.Hash,
				Signature:   p.Signature,
			},
		}
	}
	return pa
}

// downloadURL returns the signed URL of the content with hash.
func (s *Service) downloadURL(hash []byte, expires int64) string {
	h := hex.EncodeToString(hash)
	q := url.Values{"expires": {strconv.FormatInt(expires, 10)}, "token": {s.downloadToken(h, expires)}}
	return s.cfg.Packages.BaseURL + PackageContentPath + h + "?" + q.Encode()
}

func (s *Service) downloadToken(hashHex string, expires int64) string {
	m := hmac.New(sha256.New, s.pkg.urlKey)
	m.Write([]byte(hashHex))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(expires, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyDownload checks a download URL's token and expiry: EUNAUTHORIZED
// when the token is not ours for that hash and expiry, or has expired.
func (s *Service) VerifyDownload(hash []byte, expires int64, token string) error {
	if s.pkg.urlKey == nil {
		return steward.Errorf(steward.ENOTIMPLEMENTED, "packages are not enabled")
	}
	want := s.downloadToken(hex.EncodeToString(hash), expires)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(token))) {
		return steward.Errorf(steward.EUNAUTHORIZED, "invalid download token")
	}
	if time.Now().Unix() > expires {
		return steward.Errorf(steward.EUNAUTHORIZED, "download URL expired")
	}
	return nil
}

// DownloadURL returns a signed download URL for the content with hash,
// valid for the configured TTL.
func (s *Service) DownloadURL(hash []byte) string {
	return s.downloadURL(hash, time.Now().Add(s.cfg.Packages.URLTTL).Unix())
}

// UploadPackage stores content as p.Name at p.Version, hashing it as it
// streams (and comparing with p.Hash when set), and signs it with the
// server's key unless p.Signature is set, in which case the signature must
// verify against a trusted key or the server's. Nothing is kept when the
// upload fails. Errors: EINVALID (metadata, size limit, hash mismatch, bad
// signature), ECONFLICT (the version exists), ENOTIMPLEMENTED (no package
// store or content store).
func (s *Service) UploadPackage(ctx context.Context, p *steward.Package, content io.Reader) (*steward.Package, error) {
	ps, err := s.packageStore()
	if err != nil {
		return nil, err
	}
	bs, err := s.blobs()
	if err != nil {
		return nil, err
	}
	in := *p
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if _, err := ps.Package(ctx, in.Name, in.Version); err == nil {
		return nil, steward.Errorf(steward.ECONFLICT, "package %s version %s exists; upload a new version", in.Name, in.Version)
	} else if steward.ErrorCode(err) != steward.ENOTFOUND {
		return nil, err
	}
	if in.Hash != nil && len(in.Hash) != sha256.Size {
		return nil, steward.Errorf(steward.EINVALID, "package hash must be a SHA-256 (32 bytes), got %d bytes", len(in.Hash))
	}
	if len(in.Signature) > 0 && in.Hash != nil { // refuse before reading anything
		if in.SignedBy, err = steward.VerifyPackageSignature(s.trustedKeys(), in.Hash, in.Signature); err != nil {
			return nil, err
		}
	}
	hash, size, err := bs.PutBlob(ctx, content, s.cfg.Packages.MaxSize, in.Hash)
	if err != nil {
		return nil, err
	}
	in.Hash, in.Size = hash, size
	if len(in.Signature) > 0 {
		if in.SignedBy, err = steward.VerifyPackageSignature(s.trustedKeys(), in.Hash, in.Signature); err != nil {
			s.dropBlobIfUnused(ctx, ps, bs, hash)
			return nil, err
		}
	} else {
		in.Signature = steward.SignPackageHash(s.pkg.key, hash)
		in.SignedBy = steward.PackageKeyID(s.pkg.key.Public().(ed25519.PublicKey))
	}
	in.CreatedAt = time.Now().UTC()
	if err := ps.PutPackage(ctx, &in); err != nil {
		s.dropBlobIfUnused(ctx, ps, bs, hash)
		return nil, err
	}
	s.emit(&steward.Event{Type: steward.EventPackageChanged, Message: "package " + in.Name + " version " + in.Version + " uploaded",
		Details: map[string]any{"name": in.Name, "version": in.Version, "hash": in.HashHex(), "size": in.Size, "signed_by": in.SignedBy}})
	return &in, nil
}

// dropBlobIfUnused deletes content no package version refers to.
func (s *Service) dropBlobIfUnused(ctx context.Context, ps steward.PackageStore, bs steward.BlobStore, hash []byte) {
	list, err := ps.Packages(ctx)
	if err != nil {
		return
	}
	for _, p := range list {
		if bytes.Equal(p.Hash, hash) {
			return
		}
	}
	if err := bs.DeleteBlob(ctx, hash); err != nil {
		s.log.Warn("cannot delete unused package content", "hash", hex.EncodeToString(hash), "error", err)
	}
}

func (s *Service) trustedKeys() []ed25519.PublicKey {
	keys := append([]ed25519.PublicKey(nil), s.cfg.Packages.TrustedKeys...)
	if s.pkg.key != nil {
		keys = append(keys, s.pkg.key.Public().(ed25519.PublicKey))
	}
	return keys
}

// PackageKeys lists the server's public signing key and the trusted keys.
func (s *Service) PackageKeys(ctx context.Context) ([]steward.PackageKey, error) {
	if s.pkg.key == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "packages are not enabled")
	}
	pub := s.pkg.key.Public().(ed25519.PublicKey)
	out := []steward.PackageKey{{ID: steward.PackageKeyID(pub), PublicKey: pub, Server: true}}
	for _, k := range s.cfg.Packages.TrustedKeys {
		out = append(out, steward.PackageKey{ID: steward.PackageKeyID(k), PublicKey: k})
	}
	return out, nil
}

func (s *Service) Package(ctx context.Context, name, version string) (*steward.Package, error) {
	ps, err := s.packageStore()
	if err != nil {
		return nil, err
	}
	return ps.Package(ctx, name, version)
}

func (s *Service) Packages(ctx context.Context) ([]*steward.Package, error) {
	ps, err := s.packageStore()
	if err != nil {
		return nil, err
	}
	return ps.Packages(ctx)
}

// DeletePackage removes a version, and its content when no other version
// has the same; ECONFLICT while a package assignment offers it.
func (s *Service) DeletePackage(ctx context.Context, name, version string) error {
	ps, err := s.packageStore()
	if err != nil {
		return err
	}
	p, err := ps.Package(ctx, name, version)
	if err != nil {
		return err
	}
	if err := ps.DeletePackage(ctx, name, version); err != nil {
		return err
	}
	if bs, err := s.blobs(); err == nil {
		s.dropBlobIfUnused(ctx, ps, bs, p.Hash)
	}
	s.emit(&steward.Event{Type: steward.EventPackageChanged, Message: "package " + name + " version " + version + " deleted",
		Details: map[string]any{"name": name, "version": version, "deleted": true}})
	return nil
}

// OpenPackageContent opens the content with hash; ENOTFOUND unless a
// package version has it.
func (s *Service) OpenPackageContent(ctx context.Context, hash []byte) (io.ReadSeekCloser, int64, error) {
	bs, err := s.blobs()
	if err != nil {
		return nil, 0, err
	}
	return bs.OpenBlob(ctx, hash)
}

// PutPackageAssignment validates and stores a package assignment and offers
// the result to the agents at once.
func (s *Service) PutPackageAssignment(ctx context.Context, a *steward.PackageAssignment) (*steward.PackageAssignment, error) {
	ps, err := s.packageStore()
	if err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	in := *a
	now := time.Now().UTC()
	in.CreatedAt, in.UpdatedAt = now, now
	out, err := ps.PutPackageAssignment(ctx, &in)
	if err != nil {
		return nil, err
	}
	refs := make([]string, 0, len(out.Packages))
	for _, r := range out.Packages {
		refs = append(refs, r.Name+"@"+r.Version)
	}
	s.emit(&steward.Event{Type: steward.EventPackageAssignmentChanged, Message: "package assignment " + out.Name + " saved: " + strings.Join(refs, ", "),
		Details: map[string]any{"name": out.Name, "packages": refs}})
	s.changed(ctx)
	return out, nil
}

func (s *Service) PackageAssignment(ctx context.Context, name string) (*steward.PackageAssignment, error) {
	ps, err := s.packageStore()
	if err != nil {
		return nil, err
	}
	return ps.PackageAssignment(ctx, name)
}

func (s *Service) PackageAssignments(ctx context.Context) ([]*steward.PackageAssignment, error) {
	ps, err := s.packageStore()
	if err != nil {
		return nil, err
	}
	return ps.PackageAssignments(ctx)
}

// DeletePackageAssignment removes a package assignment; agents left with no
// assigned packages are offered the empty set.
func (s *Service) DeletePackageAssignment(ctx context.Context, name string) error {
	ps, err := s.packageStore()
	if err != nil {
		return err
	}
	if err := ps.DeletePackageAssignment(ctx, name); err != nil {
		return err
	}
	s.emit(&steward.Event{Type: steward.EventPackageAssignmentChanged, Message: "package assignment " + name + " deleted",
		Details: map[string]any{"name": name, "deleted": true}})
	s.changed(ctx)
	return nil
}

// DesiredPackages returns what agent id is offered and the all-packages
// hash; ENOTFOUND for an unknown agent.
func (s *Service) DesiredPackages(ctx context.Context, id steward.InstanceUID) ([]*steward.Package, []byte, error) {
	a, err := s.getAgent(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	o := s.pkg.desired.Load().forAgent(id, a)
	if o == nil {
		return nil, nil, nil
	}
	return o.pkgs, o.hash, nil
}

// packageStatusEvent describes what changed in an agent's package statuses:
// the message names each package whose state changed ("otelcol 2.0
// INSTALL_FAILED: hash mismatch ..."), the details list them all.
func packageStatusEvent(id steward.InstanceUID, prev, cur *steward.PackageStatuses) *steward.Event {
	names := make([]string, 0, len(cur.Packages))
	for n := range cur.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	var changed []string
	details := make([]map[string]any, 0, len(names))
	for _, n := range names {
		p := cur.Packages[n]
		if p == nil {
			continue
		}
		version := p.ServerOfferedVersion
		if p.Status == steward.PackageInstalled && p.AgentHasVersion != "" {
			version = p.AgentHasVersion
		}
		d := map[string]any{"name": n, "status": p.Status, "version": version, "agent_has_version": p.AgentHasVersion}
		if p.ErrorMessage != "" {
			d["error_message"] = p.ErrorMessage
		}
		details = append(details, d)
		var old *steward.PackageStatus
		if prev != nil {
			old = prev.Packages[n]
		}
		if old == nil || old.Status != p.Status || old.ServerOfferedVersion != p.ServerOfferedVersion || old.ErrorMessage != p.ErrorMessage {
			s := n + " " + version + " " + string(p.Status)
			if p.ErrorMessage != "" {
				s += ": " + p.ErrorMessage
			}
			changed = append(changed, s)
		}
	}
	msg := "package statuses changed"
	if len(changed) > 0 {
		msg = "package " + strings.Join(changed, "; ")
	}
	return &steward.Event{Type: steward.EventPackageStatus, AgentID: id, Message: msg,
		Details: map[string]any{"packages": details, "server_provided_all_packages_hash": hexString(cur.ServerProvidedAllPackagesHash)}}
}
