package steward

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io"
	"sort"
	"strings"
	"time"
)

// PackageType says what a package is to the agent (OpAMP PackageType).
type PackageType string

const (
	// PackageTopLevel is the agent itself (its executable); an agent has
	// at most one.
	PackageTopLevel PackageType = "top_level"
	// PackageAddon is an addon (plugin) installed next to the agent.
	PackageAddon PackageType = "addon"
)

// Package is one uploaded version of a named package. Its content is stored
// once per hash (content addressed, see BlobStore) and signed: Signature is
// an ed25519 signature over the raw 32-byte SHA-256 of the content, made by
// the key SignedBy names (see PackageKeyID).
type Package struct {
	Name    string      `json:"name"`
	Version string      `json:"version"`
	Type    PackageType `json:"type"`
	// Hash is the SHA-256 of the content; Size its length in bytes.
	Hash        Hash      `json:"hash"`
	Size        int64     `json:"size"`
	Signature   []byte    `json:"signature"`
	SignedBy    string    `json:"signed_by"`
	ContentType string    `json:"content_type,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
}

// Validate checks the metadata of a package about to be uploaded: a valid
// name, a version of 1-128 printable characters without spaces or slashes,
// and a known type (empty means top_level).
func (p *Package) Validate() error {
	if err := ValidateName("package", p.Name); err != nil {
		return err
	}
	if err := ValidateVersion(p.Version); err != nil {
		return Errorf(EINVALID, "package %q: %s", p.Name, ErrorMessage(err))
	}
	switch p.Type {
	case "":
		p.Type = PackageTopLevel
	case PackageTopLevel, PackageAddon:
	default:
		return Errorf(EINVALID, "package %q: type must be %q or %q, not %q", p.Name, PackageTopLevel, PackageAddon, p.Type)
	}
	return nil
}

// ValidateVersion checks a package version: 1-128 characters, letters,
// digits and ".-_+~" only (so it is safe in URLs and file names).
func ValidateVersion(v string) error {
	if v == "" || len(v) > 128 {
		return Errorf(EINVALID, "version must be 1-128 characters")
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == '+' || r == '~'
		if !ok {
			return Errorf(EINVALID, "version %q: only letters, digits and .-_+~ are allowed", v)
		}
	}
	return nil
}

// HashHex returns the content hash in lower-case hex.
func (p *Package) HashHex() string { return hex.EncodeToString(p.Hash) }

// OfferHash is the package hash offered to agents (OpAMP PackageAvailable
// hash): SHA-256 over the name, version, type and content hash, so that any
// change to what the agent would install changes it.
func (p *Package) OfferHash() []byte {
	h := sha256.New()
	for _, s := range []string{p.Name, p.Version, string(p.Type)} {
		writeLenPrefixed(h, []byte(s))
	}
	writeLenPrefixed(h, p.Hash)
	return h.Sum(nil)
}

// AllPackagesHash is the aggregate hash of a set of packages (OpAMP
// all_packages_hash): SHA-256 over each package's name and OfferHash, in
// name order. The empty set has a hash too (offered to make an agent remove
// the packages it got from the server).
func AllPackagesHash(pkgs []*Package) []byte {
	list := append([]*Package(nil), pkgs...)
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	h := sha256.New()
	h.Write([]byte("steward.packages.v1"))
	for _, p := range list {
		writeLenPrefixed(h, []byte(p.Name))
		writeLenPrefixed(h, p.OfferHash())
	}
	return h.Sum(nil)
}

func writeLenPrefixed(w io.Writer, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	w.Write(n[:])
	w.Write(b)
}

// PackageKeyID names an ed25519 public key: the first 8 bytes of its
// SHA-256, in hex (16 characters).
func PackageKeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// ParsePackageKey decodes an ed25519 public key written as base64
// (standard or URL alphabet, padded or not) or hex of its raw 32 bytes;
// EINVALID otherwise.
func ParsePackageKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	var b []byte
	var err error
	if len(s) == 2*ed25519.PublicKeySize {
		b, err = hex.DecodeString(s)
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err = enc.DecodeString(s); err == nil {
				break
			}
		}
	}
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, Errorf(EINVALID, "%q is not an ed25519 public key (32 bytes, base64 or hex)", s)
	}
	return ed25519.PublicKey(b), nil
}

// SignPackageHash signs the raw SHA-256 of a package's content.
func SignPackageHash(key ed25519.PrivateKey, hash []byte) []byte {
	return ed25519.Sign(key, hash)
}

// VerifyPackageSignature checks sig over hash against the trusted keys and
// returns the id of the key that made it. It fails with EINVALID when hash is
// not 32 bytes, sig is not 64 bytes or no trusted key verifies it.
func VerifyPackageSignature(trusted []ed25519.PublicKey, hash, sig []byte) (string, error) {
	if len(hash) != sha256.Size {
		return "", Errorf(EINVALID, "bad signature: content hash must be 32 bytes (SHA-256), got %d", len(hash))
	}
	if len(sig) == 0 {
		return "", Errorf(EINVALID, "bad signature: the package is not signed")
	}
	if len(sig) != ed25519.SignatureSize {
		return "", Errorf(EINVALID, "bad signature: an ed25519 signature is %d bytes, got %d", ed25519.SignatureSize, len(sig))
	}
	for _, k := range trusted {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, hash, sig) {
			return PackageKeyID(k), nil
		}
	}
	return "", Errorf(EINVALID, "bad signature: no trusted key (%d configured) verifies it", len(trusted))
}

// PackageRef names one version of a package.
type PackageRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// PackageAssignment offers packages at given versions to the agents its
// selector matches, or to one agent. Upgrading or downgrading is assigning
// another version. When several assignments offer a package of the same
// name, the highest Priority (then the lowest assignment name) wins; an
// agent is offered at most one top-level package, chosen the same way.
type PackageAssignment struct {
	Name     string       `json:"name"`
	Packages []PackageRef `json:"packages"`
	// Exactly one of Selector or AgentID.
	Selector  string       `json:"selector,omitempty"`
	AgentID   *InstanceUID `json:"agent_id,omitempty"`
	Priority  int          `json:"priority,omitempty"`
	CreatedAt time.Time    `json:"created_at,omitzero"`
	UpdatedAt time.Time    `json:"updated_at,omitzero"`
}

// Validate checks a package assignment: a valid name, at least one package
// ref with a valid name and version and no name twice, and exactly one of
// Selector (parseable) or AgentID.
func (a *PackageAssignment) Validate() error {
	if err := ValidateName("package assignment", a.Name); err != nil {
		return err
	}
	if len(a.Packages) == 0 {
		return Errorf(EINVALID, "package assignment %q: list at least one package", a.Name)
	}
	seen := map[string]bool{}
	for _, r := range a.Packages {
		if err := ValidateName("package", r.Name); err != nil {
			return err
		}
		if err := ValidateVersion(r.Version); err != nil {
			return Errorf(EINVALID, "package assignment %q, package %q: %s", a.Name, r.Name, ErrorMessage(err))
		}
		if seen[r.Name] {
			return Errorf(EINVALID, "package assignment %q lists package %q twice", a.Name, r.Name)
		}
		seen[r.Name] = true
	}
	if (a.Selector == "") == (a.AgentID == nil) {
		return Errorf(EINVALID, "package assignment %q: set exactly one of selector or agent_id", a.Name)
	}
	if a.Selector != "" {
		if _, err := ParseSelector(a.Selector); err != nil {
			return err
		}
	}
	return nil
}

// PackageStore persists packages (metadata; content lives in a BlobStore),
// package assignments and the server's package signing key. Stores that
// implement it enable packages.
type PackageStore interface {
	// PutPackage inserts p; ECONFLICT if that name and version exist.
	PutPackage(ctx context.Context, p *Package) error
	// Package returns one version; ENOTFOUND if missing.
	Package(ctx context.Context, name, version string) (*Package, error)
	// Packages lists every package version by name, newest first within
	// a name.
	Packages(ctx context.Context) ([]*Package, error)
	// DeletePackage removes one version; ENOTFOUND if missing, ECONFLICT
	// while an assignment offers it.
	DeletePackage(ctx context.Context, name, version string) error

	// PutPackageAssignment creates or replaces by name and returns the
	// stored value (CreatedAt kept from the first version); ENOTFOUND when
	// a listed package version does not exist.
	PutPackageAssignment(ctx context.Context, a *PackageAssignment) (*PackageAssignment, error)
	// PackageAssignment returns one; ENOTFOUND if missing.
	PackageAssignment(ctx context.Context, name string) (*PackageAssignment, error)
	// PackageAssignments lists all, by name.
	PackageAssignments(ctx context.Context) ([]*PackageAssignment, error)
	// DeletePackageAssignment: ENOTFOUND if missing.
	DeletePackageAssignment(ctx context.Context, name string) error

	// PackageSigningKey returns the stored signing key (an ed25519 private
	// key), storing candidate first if there is none, so that every
	// replica sharing the database ends up with the same key.
	PackageSigningKey(ctx context.Context, candidate ed25519.PrivateKey) (ed25519.PrivateKey, error)
}

// BlobStore keeps package content addressed by its SHA-256. Blobs are
// immutable; putting content that exists already is a no-op.
type BlobStore interface {
	// PutBlob streams r into the store while hashing it and returns the
	// hash and size. It fails with EINVALID, keeping nothing, when r holds
	// more than maxSize bytes or when want is non-nil and differs from the
	// hash of what was read (a corrupt or truncated upload).
	PutBlob(ctx context.Context, r io.Reader, maxSize int64, want []byte) (hash []byte, size int64, err error)
	// OpenBlob opens a blob for reading (seekable, for range requests);
	// ENOTFOUND if there is none with that hash.
	OpenBlob(ctx context.Context, hash []byte) (io.ReadSeekCloser, int64, error)
	// DeleteBlob removes a blob; deleting a missing blob is not an error.
	DeleteBlob(ctx context.Context, hash []byte) error
}

// PackageKey is a public key packages can be signed with.
type PackageKey struct {
	ID        string            `json:"id"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	// Server is true for the server's own signing key, false for keys the
	// operator trusts for external signatures.
	Server bool `json:"server"`
}

// PackageService manages packages, their content and their assignments.
type PackageService interface {
	// UploadPackage stores content as version p.Version of package
	// p.Name. The content is hashed while it streams; when p.Hash is set
	// it must match (EINVALID otherwise). With p.Signature set the
	// signature must verify against a trusted key (EINVALID otherwise);
	// without it the server signs. ECONFLICT if the version exists.
	UploadPackage(ctx context.Context, p *Package, content io.Reader) (*Package, error)
	Package(ctx context.Context, name, version string) (*Package, error)
	Packages(ctx context.Context) ([]*Package, error)
	// DeletePackage removes a version (its content too, when no other
	// version has the same hash); ECONFLICT while it is assigned.
	DeletePackage(ctx context.Context, name, version string) error
	// OpenPackageContent opens the content with the given hash;
	// ENOTFOUND unless a package has it.
	OpenPackageContent(ctx context.Context, hash []byte) (io.ReadSeekCloser, int64, error)
	// VerifyDownload checks a download URL's expiry and token (see
	// docs/packages.md): EUNAUTHORIZED if it is wrong or expired.
	VerifyDownload(hash []byte, expires int64, token string) error
	// PackageKeys lists the server's public key and the trusted ones.
	PackageKeys(ctx context.Context) ([]PackageKey, error)

	PutPackageAssignment(ctx context.Context, a *PackageAssignment) (*PackageAssignment, error)
	PackageAssignment(ctx context.Context, name string) (*PackageAssignment, error)
	PackageAssignments(ctx context.Context) ([]*PackageAssignment, error)
	DeletePackageAssignment(ctx context.Context, name string) error
	// DesiredPackages returns the packages an agent is offered and their
	// all-packages hash (nil packages when nothing is assigned).
	DesiredPackages(ctx context.Context, id InstanceUID) ([]*Package, []byte, error)
}

// Events about packages.
const (
	EventPackageChanged           = "package.changed"
	EventPackageAssignmentChanged = "package_assignment.changed"
	EventPackagesOffered          = "agent.packages_offered"
)
