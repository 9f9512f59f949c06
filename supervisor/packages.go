package supervisor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
)

// PackagesConfig enables signed packages (see docs/packages.md): with at
// least one trusted key the supervisor declares AcceptsPackages, installs
// the top-level package the server offers as the agent's executable and
// addons as files, and refuses anything not signed by a trusted key.
type PackagesConfig struct {
	// TrustedKeys are ed25519 public keys (base64 or hex of the raw 32
	// bytes), e.g. from `steward packages keys`.
	TrustedKeys []string `yaml:"trusted_keys"`
	// MaxSize bounds one download in bytes (default 1 GiB).
	MaxSize int64 `yaml:"max_size"`
	// DownloadTimeout bounds one download (default 10m).
	DownloadTimeout time.Duration `yaml:"download_timeout"`
}

// Enabled reports whether packages are accepted.
func (c *PackagesConfig) Enabled() bool { return len(c.TrustedKeys) > 0 }

// ParseTrustedKey decodes a trusted key: base64 (standard or URL, padded
// or not) or hex of a raw 32-byte ed25519 public key.
func ParseTrustedKey(s string) (ed25519.PublicKey, error) {
	k, err := steward.ParsePackageKey(s)
	if err != nil {
		return nil, errors.New(steward.ErrorMessage(err))
	}
	return k, nil
}

// InstalledPackage is a package the supervisor installed from the server.
type InstalledPackage struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Type        string `json:"type"` // "top_level" or "addon"
	Hash        []byte `json:"hash"` // the server's package hash
	ContentHash []byte `json:"content_hash"`
	// Path is the installed file (the agent executable for the top-level
	// package).
	Path string `json:"path"`
}

// FailedPackage records a package offer that failed; it is not tried again
// until the server offers a different package hash.
type FailedPackage struct {
	Version string `json:"version"`
	Hash    []byte `json:"hash"`
	Error   string `json:"error"`
}

// PackagesState is what the supervisor persists about packages, in
// <storage>/packages/state.json.
type PackagesState struct {
	// AllPackagesHash is the all_packages_hash of the last offer processed.
	AllPackagesHash []byte                       `json:"all_packages_hash,omitempty"`
	Installed       map[string]*InstalledPackage `json:"installed,omitempty"`
	Failed          map[string]*FailedPackage    `json:"failed,omitempty"`
}

// packageManager is the built-in PackageManager. Files, under
// <storage>/packages:
//
//	state.json            PackagesState
//	<content sha256>/agent  an installed top-level package (mode 0755)
//	<content sha256>/<name> an installed addon
//	current               symlink to the executable the supervisor runs
//
// The executable is switched by replacing the current symlink atomically
// (a new link renamed over it), so the agent always starts a complete file.
type packageManager struct {
	s       *Supervisor
	dir     string
	trusted []ed25519.PublicKey
	maxSize int64
	timeout time.Duration
	log     *slog.Logger
	http    *http.Client

	mu    sync.Mutex
	state *PackagesState
	// progress holds statuses of packages being processed, by name.
	progress map[string]*protobufs.PackageStatus
	offered  []byte
}

func newPackageManager(s *Supervisor) (*packageManager, error) {
	c := s.cfg.Packages
	pm := &packageManager{s: s, dir: s.store.Path("packages"), maxSize: c.MaxSize, timeout: c.DownloadTimeout,
		log: s.log.With("component", "packages"), progress: map[string]*protobufs.PackageStatus{}}
	for _, k := range c.TrustedKeys {
		pub, err := ParseTrustedKey(k)
		if err != nil {
			return nil, fmt.Errorf("packages.trusted_keys: %w", err)
		}
		pm.trusted = append(pm.trusted, pub)
	}
	if pm.maxSize <= 0 {
		pm.maxSize = 1 << 30
	}
	if pm.timeout <= 0 {
		pm.timeout = 10 * time.Minute
	}
	tlsCfg, err := clientTLS(s.cfg.Server.TLS)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	pm.http = &http.Client{Transport: tr}
	if err := os.MkdirAll(pm.dir, 0o700); err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	st, err := pm.load()
	if err != nil {
		return nil, err
	}
	pm.state = st
	// The agent runs through the current link; make it point at the
	// installed top-level package, or at agent.executable.
	target := pm.configuredExecutable()
	if top := pm.topLevel(); top != nil {
		if fi, err := os.Stat(top.Path); err == nil && fi.Mode().IsRegular() {
			target = top.Path
		} else {
			pm.log.Error("installed agent package is missing; running agent.executable", "path", top.Path)
			delete(st.Installed, top.Name)
		}
	}
	if err := pm.switchTo(target); err != nil {
		return nil, err
	}
	return pm, nil
}

func (pm *packageManager) configuredExecutable() string {
	exe := pm.s.cfg.Agent.Executable
	if abs, err := filepath.Abs(exe); err == nil && strings.ContainsRune(exe, filepath.Separator) {
		return abs
	}
	return exe
}

// Executable is the path the supervisor runs: the current link.
func (pm *packageManager) Executable() string { return filepath.Join(pm.dir, "current") }

func (pm *packageManager) load() (*PackagesState, error) {
	b, err := os.ReadFile(filepath.Join(pm.dir, "state.json"))
	st := &PackagesState{}
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	} else if err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("packages: %s: %w", filepath.Join(pm.dir, "state.json"), err)
	}
	return st, nil
}

func (pm *packageManager) save() {
	pm.mu.Lock()
	b, err := json.MarshalIndent(pm.state, "", "  ")
	pm.mu.Unlock()
	if err == nil {
		err = writeFileAtomic(filepath.Join(pm.dir, "state.json"), b)
	}
	if err != nil {
		pm.log.Error("persist package state", "error", err)
	}
}

func (pm *packageManager) topLevel() *InstalledPackage {
	for _, p := range pm.state.Installed {
		if p.Type == "top_level" {
			return p
		}
	}
	return nil
}

// switchTo points the current link at target atomically.
func (pm *packageManager) switchTo(target string) error {
	link := pm.Executable()
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("packages: %w", err)
	}
	if d, err := os.Open(pm.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// statuses builds the full PackageStatuses: every installed package, every
// package being processed, and failures of offered packages.
func (pm *packageManager) statuses() *protobufs.PackageStatuses {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	ps := &protobufs.PackageStatuses{Packages: map[string]*protobufs.PackageStatus{}, ServerProvidedAllPackagesHash: pm.state.AllPackagesHash}
	if pm.offered != nil {
		ps.ServerProvidedAllPackagesHash = pm.offered
	}
	for name, p := range pm.state.Installed {
		ps.Packages[name] = &protobufs.PackageStatus{Name: name, AgentHasVersion: p.Version, AgentHasHash: p.Hash,
			ServerOfferedVersion: p.Version, ServerOfferedHash: p.Hash, Status: protobufs.PackageStatusEnum_PackageStatusEnum_Installed}
	}
	for name, f := range pm.state.Failed {
		st := &protobufs.PackageStatus{Name: name, ServerOfferedVersion: f.Version, ServerOfferedHash: f.Hash,
			Status: protobufs.PackageStatusEnum_PackageStatusEnum_InstallFailed, ErrorMessage: f.Error}
		if p := pm.state.Installed[name]; p != nil {
			st.AgentHasVersion, st.AgentHasHash = p.Version, p.Hash
		}
		ps.Packages[name] = st
	}
	for name, st := range pm.progress {
		ps.Packages[name] = protoClone(st)
	}
	return ps
}

func protoClone(st *protobufs.PackageStatus) *protobufs.PackageStatus {
	return &protobufs.PackageStatus{Name: st.Name, AgentHasVersion: st.AgentHasVersion, AgentHasHash: st.AgentHasHash,
		ServerOfferedVersion: st.ServerOfferedVersion, ServerOfferedHash: st.ServerOfferedHash, Status: st.Status,
		ErrorMessage: st.ErrorMessage, DownloadDetails: st.DownloadDetails}
}

// Sync installs what the server offers (see docs/packages.md): packages
// whose hash the supervisor already has are left alone, a package hash that
// failed before is reported failed again, anything else is downloaded,
// verified (size, SHA-256, ed25519 signature by a trusted key) and
// installed. The top-level package replaces the agent executable: the agent
// is restarted on it and must become healthy, or the previous executable is
// restored and restarted. Addons no longer offered are removed. Every step
// is reported through report.
func (pm *packageManager) Sync(ctx context.Context, offer *protobufs.PackagesAvailable, report func(*protobufs.PackageStatuses)) error {
	pm.mu.Lock()
	pm.offered = offer.AllPackagesHash
	pm.mu.Unlock()
	push := func() { report(pm.statuses()) }

	names := make([]string, 0, len(offer.Packages))
	tops := 0
	for name, p := range offer.Packages {
		if p == nil {
			continue
		}
		names = append(names, name)
		if p.Type == protobufs.PackageType_PackageType_TopLevel {
			tops++
		}
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		p := offer.Packages[name]
		if tops > 1 && p.Type == protobufs.PackageType_PackageType_TopLevel {
			pm.fail(name, p, "the server offered more than one top-level package")
			errs = append(errs, fmt.Errorf("package %q: more than one top-level package offered", name))
			continue
		}
		if err := pm.syncOne(ctx, name, p, push); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("package %q: %w", name, err))
		}
	}
	// Addons that are no longer offered are removed; the agent executable
	// stays (an agent cannot be uninstalled by its own supervisor).
	pm.mu.Lock()
	for name, p := range pm.state.Installed {
		if _, ok := offer.Packages[name]; !ok && p.Type == "addon" {
			_ = os.Remove(p.Path)
			_ = os.Remove(filepath.Dir(p.Path))
			delete(pm.state.Installed, name)
		}
	}
	for name := range pm.state.Failed {
		if _, ok := offer.Packages[name]; !ok {
			delete(pm.state.Failed, name)
		}
	}
	pm.state.AllPackagesHash = offer.AllPackagesHash
	pm.mu.Unlock()
	pm.save()
	push()
	return errors.Join(errs...)
}

func (pm *packageManager) setProgress(name string, st *protobufs.PackageStatus) {
	pm.mu.Lock()
	if st == nil {
		delete(pm.progress, name)
	} else {
		pm.progress[name] = st
	}
	pm.mu.Unlock()
}

// fail records and reports a failed offer; what is installed stays.
func (pm *packageManager) fail(name string, p *protobufs.PackageAvailable, msg string) {
	pm.mu.Lock()
	if pm.state.Failed == nil {
		pm.state.Failed = map[string]*FailedPackage{}
	}
	pm.state.Failed[name] = &FailedPackage{Version: p.Version, Hash: p.Hash, Error: msg}
	delete(pm.progress, name)
	pm.mu.Unlock()
	pm.save()
}

func (pm *packageManager) syncOne(ctx context.Context, name string, p *protobufs.PackageAvailable, push func()) error {
	pm.mu.Lock()
	have := pm.state.Installed[name]
	failed := pm.state.Failed[name]
	pm.mu.Unlock()
	if have != nil && bytes.Equal(have.Hash, p.Hash) && len(p.Hash) > 0 {
		pm.mu.Lock()
		delete(pm.state.Failed, name)
		pm.mu.Unlock()
		return nil // the same package: nothing to do
	}
	if failed != nil && bytes.Equal(failed.Hash, p.Hash) {
		pm.log.Info("package already failed; not retrying it", "package", name, "version", p.Version, "error", failed.Error)
		return nil
	}
	log := pm.log.With("package", name, "version", p.Version)
	st := &protobufs.PackageStatus{Name: name, ServerOfferedVersion: p.Version, ServerOfferedHash: p.Hash,
		Status: protobufs.PackageStatusEnum_PackageStatusEnum_Downloading, DownloadDetails: &protobufs.PackageDownloadDetails{}}
	if have != nil {
		st.AgentHasVersion, st.AgentHasHash = have.Version, have.Hash
	}
	pm.mu.Lock()
	delete(pm.state.Failed, name)
	pm.mu.Unlock()
	pm.setProgress(name, st)
	push()

	path, err := pm.fetch(ctx, name, p, st, push)
	if err != nil {
		if ctx.Err() != nil {
			pm.setProgress(name, nil)
			return err
		}
		log.Warn("package refused; nothing was changed", "error", err)
		pm.fail(name, p, err.Error())
		push()
		return err
	}
	st = protoClone(st)
	st.Status = protobufs.PackageStatusEnum_PackageStatusEnum_Installing
	st.DownloadDetails = nil
	pm.setProgress(name, st)
	push()

	inst := &InstalledPackage{Name: name, Version: p.Version, Hash: p.Hash, ContentHash: p.File.ContentHash, Path: path, Type: "addon"}
	if p.Type == protobufs.PackageType_PackageType_TopLevel {
		inst.Type = "top_level"
		if err := pm.installAgent(ctx, inst); err != nil {
			if ctx.Err() != nil {
				pm.setProgress(name, nil)
				return err
			}
			log.Warn("agent package failed; rolled back", "error", err)
			pm.fail(name, p, err.Error())
			push()
			return err
		}
	}
	pm.mu.Lock()
	if pm.state.Installed == nil {
		pm.state.Installed = map[string]*InstalledPackage{}
	}
	if inst.Type == "top_level" {
		for n, q := range pm.state.Installed { // one top-level package
			if q.Type == "top_level" {
				delete(pm.state.Installed, n)
			}
		}
	}
	pm.state.Installed[name] = inst
	delete(pm.progress, name)
	pm.mu.Unlock()
	pm.save()
	log.Info("package installed", "path", path)
	push()
	return nil
}

// installAgent runs the agent from inst.Path and waits for health; on
// failure it restores the previous executable and restarts the agent on it.
func (pm *packageManager) installAgent(ctx context.Context, inst *InstalledPackage) error {
	prev, err := os.Readlink(pm.Executable())
	if err != nil {
		prev = pm.configuredExecutable()
	}
	if err := pm.switchTo(inst.Path); err != nil {
		return err
	}
	err = pm.s.restartAndWait(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := fmt.Sprintf("agent version %s failed: %v", inst.Version, err)
	if serr := pm.switchTo(prev); serr != nil {
		return fmt.Errorf("%s; restoring the previous agent failed: %v", msg, serr)
	}
	if rerr := pm.s.restartAndWait(ctx); rerr != nil && ctx.Err() == nil {
		pm.log.Error("previous agent unhealthy after rollback", "error", rerr)
		return fmt.Errorf("%s; rolled back, but the previous agent is not healthy either: %v", msg, rerr)
	}
	return fmt.Errorf("%s; rolled back to the previous agent", msg)
}

// fetch returns the verified file of p in <dir>/<content hash>/, downloading
// it unless a verified copy is there already.
func (pm *packageManager) fetch(ctx context.Context, name string, p *protobufs.PackageAvailable, st *protobufs.PackageStatus, push func()) (string, error) {
	f := p.File
	if f == nil || f.DownloadUrl == "" {
		return "", errors.New("the offer has no downloadable file")
	}
	if len(f.ContentHash) != sha256.Size {
		return "", fmt.Errorf("the offer's content hash is %d bytes, not a SHA-256", len(f.ContentHash))
	}
	// Check the signature first: an offer that can never verify is refused
	// before anything is downloaded.
	if _, err := steward.VerifyPackageSignature(pm.trusted, f.ContentHash, f.Signature); err != nil {
		return "", errors.New(steward.ErrorMessage(err))
	}
	fileName := "agent"
	if p.Type != protobufs.PackageType_PackageType_TopLevel {
		if err := steward.ValidateName("package", name); err != nil {
			return "", errors.New(steward.ErrorMessage(err))
		}
		fileName = name
	}
	dir := filepath.Join(pm.dir, hex.EncodeToString(f.ContentHash))
	path := filepath.Join(dir, fileName)
	if sum, err := fileSHA256(path); err == nil && bytes.Equal(sum, f.ContentHash) {
		return path, nil // downloaded before (e.g. a downgrade)
	}
	u, err := pm.resolve(f.DownloadUrl)
	if err != nil {
		return "", err
	}
	// Download next to the content directories and create this one only
	// for a verified file, so a refused download leaves nothing behind.
	tmp, err := os.CreateTemp(pm.dir, ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	dctx, cancel := context.WithTimeout(ctx, pm.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("download URL: %w", err)
	}
	for _, h := range f.GetHeaders().GetHeaders() {
		req.Header.Add(h.Key, h.Value)
	}
	resp, err := pm.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("download failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("download failed: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if resp.ContentLength > pm.maxSize {
		return "", fmt.Errorf("download refused: %d bytes exceed packages.max_size (%d)", resp.ContentLength, pm.maxSize)
	}
	h := sha256.New()
	pr := &progressWriter{total: resp.ContentLength, every: 250 * time.Millisecond, fn: func(done, total int64) {
		s := protoClone(st)
		s.DownloadDetails = &protobufs.PackageDownloadDetails{}
		if total > 0 {
			s.DownloadDetails.DownloadPercent = float64(done) * 100 / float64(total)
		}
		pm.setProgress(name, s)
		push()
	}}
	n, err := io.Copy(io.MultiWriter(tmp, h, pr), io.LimitReader(resp.Body, pm.maxSize+1))
	if err != nil {
		return "", fmt.Errorf("download failed after %d bytes: %w", n, err)
	}
	if n > pm.maxSize {
		return "", fmt.Errorf("download refused: more than packages.max_size (%d bytes)", pm.maxSize)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, f.ContentHash) {
		return "", fmt.Errorf("hash mismatch: downloaded %d bytes with sha256 %x, offered content_hash %x (tampered or truncated download)", n, sum, f.ContentHash)
	}
	mode := os.FileMode(0o600)
	if fileName == "agent" {
		mode = 0o755
	}
	if err := tmp.Chmod(mode); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// resolve makes a relative download URL absolute against the server
// endpoint (ws becomes http, wss https).
func (pm *packageManager) resolve(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad download URL %q: %w", raw, err)
	}
	if u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("download URL %q: only http and https are supported", raw)
		}
		return u.String(), nil
	}
	base, err := url.Parse(pm.s.cfg.Server.Endpoint)
	if err != nil {
		return "", err
	}
	switch base.Scheme {
	case "ws":
		base.Scheme = "http"
	case "wss":
		base.Scheme = "https"
	}
	return base.ResolveReference(u).String(), nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// progressWriter calls fn with the bytes written so far, at most every
// `every`.
type progressWriter struct {
	total, done int64
	every       time.Duration
	last        time.Time
	fn          func(done, total int64)
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.done += int64(len(p))
	if now := time.Now(); now.Sub(w.last) >= w.every {
		w.last = now
		w.fn(w.done, w.total)
	}
	return len(p), nil
}

// restartAndWait restarts the agent and waits until it is healthy (see
// waitHealthy).
func (s *Supervisor) restartAndWait(ctx context.Context) error {
	if s.local != nil {
		s.local.resetHealth()
	}
	p, err := s.runner.Restart(ctx)
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	err = s.waitHealthy(ctx, p, p.StartedAt())
	s.updateHealth()
	return err
}
