package supervisor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/sqlite"
)

// steward is a real Steward server in process: the control plane over
// SQLite, package content in a blobfs directory, OpAMP and the REST API on
// one 127.0.0.1 listener.
type stewardServer struct {
	t        *testing.T
	cp       *controlplane.Service
	endpoint string
	blobs    *blobfs.Dir
	// external is a key the server trusts for uploads (supervisors may not).
	external ed25519.PrivateKey
}

func startSteward(t *testing.T) *stewardServer {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "steward.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobfs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	extPub, extPriv, _ := ed25519.GenerateKey(rand.Reader)
	log := slog.New(slog.DiscardHandler)
	cp, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: "test", FlushInterval: 100 * time.Millisecond, Logger: log,
		Packages: controlplane.PackageOptions{Blobs: blobs, BaseURL: "http://" + ln.Addr().String(), TrustedKeys: []ed25519.PublicKey{extPub}}})
	if err != nil {
		t.Fatal(err)
	}
	transport, err := server.New(server.Config{Handler: cp, Capabilities: opamp.ServerCapabilities, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	api := stewardhttp.NewServer(stewardhttp.Options{Agents: cp, Configs: cp, Packages: cp, OpAMP: transport, Logger: log})
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = transport.Shutdown(sctx)
		_ = hs.Shutdown(sctx)
		cp.Close()
		db.Close()
	})
	return &stewardServer{t: t, cp: cp, endpoint: "ws://" + ln.Addr().String() + "/v1/opamp", blobs: blobs, external: extPriv}
}

func (s *stewardServer) serverKey() string {
	keys, err := s.cp.PackageKeys(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(keys[0].PublicKey)
}

func (s *stewardServer) upload(version string, content []byte, sig []byte) *steward.Package {
	s.t.Helper()
	p, err := s.cp.UploadPackage(context.Background(), &steward.Package{Name: "testagent", Version: version, Signature: sig}, bytes.NewReader(content))
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *stewardServer) assign(uid steward.InstanceUID, version string) {
	s.t.Helper()
	_, err := s.cp.PutPackageAssignment(context.Background(), &steward.PackageAssignment{Name: "agent-" + uid.String()[:8], AgentID: &uid,
		Packages: []steward.PackageRef{{Name: "testagent", Version: version}}})
	if err != nil {
		s.t.Fatal(err)
	}
}

// status returns the agent's reported status of the testagent package.
func (s *stewardServer) status(uid steward.InstanceUID) *steward.PackageStatus {
	a, err := s.cp.Agent(context.Background(), uid)
	if err != nil || a.PackageStatuses == nil {
		return nil
	}
	return a.PackageStatuses.Packages["testagent"]
}

// agentVariant is the test agent binary with a marker appended (an ELF
// file runs the same with trailing bytes), so each version has its own hash.
func agentVariant(t *testing.T, marker string) []byte {
	b, err := os.ReadFile(testAgent)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, []byte("\n#steward-test-version "+marker+"\n")...)
}

// exeOf returns the file the process runs.
func exeOf(pid int) string {
	p, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return p
}

func contentDir(storage string, content []byte) string {
	sum := sha256.Sum256(content)
	return filepath.Join(storage, "packages", fmt.Sprintf("%x", sum))
}

func newPackageSupervisor(t *testing.T, st *stewardServer, dir string, keys ...string) *genericHarness {
	extra := "packages:\n  trusted_keys: [" + strings.Join(keys, ", ") + "]\n"
	h := &genericHarness{t: t, dir: dir, agentCf: filepath.Join(dir, "agent.yaml"), pidFile: filepath.Join(dir, "pid")}
	local := filepath.Join(dir, "local.yaml")
	writeFile(t, local, "greeting: pkg\npid_file: "+h.pidFile+"\n")
	h.cfgPath = filepath.Join(dir, "supervisor.yaml")
	writeFile(t, h.cfgPath, fmt.Sprintf(`
server:
  endpoint: %s
agent:
  mode: generic
  executable: %s
  args: [-config, %s]
  config_file: %s
  local_config_files: [%s]
  stop_timeout: 5s
  health: {min_uptime: 500ms, interval: 200ms}
  config_apply_timeout: 20s
  restart: {initial_backoff: 50ms, max_backoff: 400ms}
storage:
  directory: %s
%s`, st.endpoint, testAgent, h.agentCf, h.agentCf, local, filepath.Join(dir, "state"), extra))
	h.start()
	return h
}

func waitStatus(t *testing.T, st *stewardServer, uid steward.InstanceUID, what string, ok func(*steward.PackageStatus) bool) *steward.PackageStatus {
	t.Helper()
	var last *steward.PackageStatus
	eventually(t, what, func() bool {
		last = st.status(uid)
		return last != nil && ok(last)
	})
	return last
}

func TestPackageUpgradeDowngradeAndRollback(t *testing.T) {
	st := startSteward(t)
	dir := t.TempDir()
	v1, v2 := agentVariant(t, "1"), agentVariant(t, "2")
	p1 := st.upload("1.0", v1, nil)
	p2 := st.upload("2.0", v2, nil)
	bad := st.upload("3.0-broken", []byte("#!/bin/sh\necho 'Error: this build is broken' >&2\nexit 3\n"), nil)

	h := newPackageSupervisor(t, st, dir, st.serverKey())
	uid := h.sup.InstanceUID()
	storage := filepath.Join(dir, "state")
	eventually(t, "agent running from the configured executable", func() bool {
		pid := h.agentPID()
		return pid > 0 && alive(pid) && exeOf(pid) == testAgent
	})
	eventually(t, "agent connected", func() bool {
		a, err := st.cp.Agent(context.Background(), uid)
		return err == nil && a.Online && a.Capabilities.Has(steward.AgentAcceptsPackages|steward.AgentReportsPackageStatuses)
	})

	// Upgrade to 1.0.
	st.assign(uid, "1.0")
	s := waitStatus(t, st, uid, "1.0 installed", func(s *steward.PackageStatus) bool { return s.Status == steward.PackageInstalled })
	if s.AgentHasVersion != "1.0" || !bytes.Equal(s.AgentHasHash, p1.OfferHash()) {
		t.Fatalf("status = %+v", s)
	}
	want1 := filepath.Join(contentDir(storage, v1), "agent")
	eventually(t, "agent runs 1.0", func() bool { pid := h.agentPID(); return alive(pid) && exeOf(pid) == want1 })
	a, _ := st.cp.Agent(context.Background(), uid)
	if !bytes.Equal(a.PackageStatuses.ServerProvidedAllPackagesHash, steward.AllPackagesHash([]*steward.Package{p1})) {
		t.Fatalf("server_provided_all_packages_hash = %x", a.PackageStatuses.ServerProvidedAllPackagesHash)
	}
	events, err := st.cp.AgentEvents(context.Background(), uid, 200)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range events {
		seen = append(seen, e.Type)
	}
	if !strings.Contains(strings.Join(seen, " "), steward.EventPackagesOffered) {
		t.Fatalf("no offer event among %v", seen)
	}

	// Upgrade to 2.0.
	st.assign(uid, "2.0")
	waitStatus(t, st, uid, "2.0 installed", func(s *steward.PackageStatus) bool {
		return s.Status == steward.PackageInstalled && s.AgentHasVersion == "2.0" && bytes.Equal(s.AgentHasHash, p2.OfferHash())
	})
	want2 := filepath.Join(contentDir(storage, v2), "agent")
	eventually(t, "agent runs 2.0", func() bool { pid := h.agentPID(); return alive(pid) && exeOf(pid) == want2 })

	// A build that never becomes healthy: rolled back to 2.0.
	st.assign(uid, "3.0-broken")
	s = waitStatus(t, st, uid, "3.0 failed", func(s *steward.PackageStatus) bool { return s.Status == steward.PackageInstallFailed })
	if s.AgentHasVersion != "2.0" || s.ServerOfferedVersion != "3.0-broken" || !bytes.Equal(s.ServerOfferedHash, bad.OfferHash()) || !strings.Contains(s.ErrorMessage, "rolled back") ||
		!strings.Contains(s.ErrorMessage, "this build is broken") {
		t.Fatalf("failed status = %+v", s)
	}
	eventually(t, "agent back on 2.0", func() bool { pid := h.agentPID(); return alive(pid) && exeOf(pid) == want2 })

	// Downgrade to 1.0 (already on disk: no download needed).
	st.assign(uid, "1.0")
	waitStatus(t, st, uid, "1.0 installed again", func(s *steward.PackageStatus) bool {
		return s.Status == steward.PackageInstalled && s.AgentHasVersion == "1.0"
	})
	eventually(t, "agent runs 1.0 again", func() bool { pid := h.agentPID(); return alive(pid) && exeOf(pid) == want1 })

	// A supervisor restart keeps running 1.0 and does not reinstall it.
	h.stop()
	h.start()
	eventually(t, "agent runs 1.0 after a supervisor restart", func() bool {
		pid := h.agentPID()
		return alive(pid) && exeOf(pid) == want1
	})
	b, err := os.ReadFile(filepath.Join(storage, "packages", "state.json"))
	if err != nil || !strings.Contains(string(b), `"version": "1.0"`) {
		t.Fatalf("state.json = %s, %v", b, err)
	}
}

func TestPackageRefusedLeavesAgentUntouched(t *testing.T) {
	st := startSteward(t)
	dir := t.TempDir()
	good := agentVariant(t, "good")
	st.upload("1.0", good, nil)

	h := newPackageSupervisor(t, st, dir, st.serverKey())
	uid := h.sup.InstanceUID()
	eventually(t, "agent running", func() bool { pid := h.agentPID(); return pid > 0 && alive(pid) })
	eventually(t, "agent connected", func() bool { a, err := st.cp.Agent(context.Background(), uid); return err == nil && a.Online })
	pid := h.agentPID()

	check := func(version, wantErr string) {
		t.Helper()
		st.assign(uid, version)
		s := waitStatus(t, st, uid, version+" refused", func(s *steward.PackageStatus) bool {
			return s.Status == steward.PackageInstallFailed && s.ServerOfferedVersion == version
		})
		if !strings.Contains(s.ErrorMessage, wantErr) {
			t.Fatalf("%s: error %q, want %q", version, s.ErrorMessage, wantErr)
		}
		if h.agentPID() != pid || !alive(pid) || exeOf(pid) != testAgent {
			t.Fatalf("%s: the running agent was touched (pid %d -> %d, exe %s)", version, pid, h.agentPID(), exeOf(h.agentPID()))
		}
	}

	// Tampered on the server after upload: the content no longer matches.
	tampered := agentVariant(t, "tampered")
	p := st.upload("2.0-tampered", tampered, nil)
	path := st.blobs.Path(p.Hash)
	evil := append([]byte(nil), tampered...)
	evil[len(evil)-3] ^= 0xff
	if err := os.WriteFile(path, evil, 0o600); err != nil {
		t.Fatal(err)
	}
	check("2.0-tampered", "hash mismatch")

	// Truncated on the server.
	short := agentVariant(t, "short")
	p = st.upload("2.0-truncated", short, nil)
	if err := os.Truncate(st.blobs.Path(p.Hash), int64(len(short)/2)); err != nil {
		t.Fatal(err)
	}
	check("2.0-truncated", "hash mismatch")

	// Signed by a key the server trusts but the supervisor does not.
	other := agentVariant(t, "other-signer")
	sum := sha256.Sum256(other)
	st.upload("2.0-other-key", other, ed25519.Sign(st.external, sum[:]))
	check("2.0-other-key", "bad signature")

	// Nothing was installed: the agent still runs the configured executable.
	if exeOf(h.agentPID()) != testAgent {
		t.Fatalf("agent runs %s", exeOf(h.agentPID()))
	}
	// Nor was anything left in storage: no file, no (empty) directory of a
	// refused download.
	entries, err := os.ReadDir(filepath.Join(dir, "state", "packages"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "state.json" && e.Name() != "current" { // current: the link to the configured agent
			sub, _ := os.ReadDir(filepath.Join(dir, "state", "packages", e.Name()))
			t.Errorf("refused packages left %s in storage (containing %d entries)", e.Name(), len(sub))
		}
	}

	// Each refusal is in the agent's history, with its reason.
	eventually(t, "package status events", func() bool {
		events, err := st.cp.AgentEvents(context.Background(), uid, 500)
		if err != nil {
			return false
		}
		want := map[string]bool{"2.0-tampered INSTALL_FAILED: hash mismatch": false, "2.0-truncated INSTALL_FAILED: hash mismatch": false,
			"2.0-other-key INSTALL_FAILED: bad signature": false}
		for _, e := range events {
			for w := range want {
				if e.Type == steward.EventPackageStatus && strings.Contains(e.Message, "testagent "+w) {
					want[w] = true
				}
			}
		}
		for _, ok := range want {
			if !ok {
				return false
			}
		}
		return true
	})

	// The same supervisor accepts a properly signed package afterwards.
	st.assign(uid, "1.0")
	waitStatus(t, st, uid, "1.0 installed", func(s *steward.PackageStatus) bool { return s.Status == steward.PackageInstalled })
}

func TestPackagesConfig(t *testing.T) {
	base := "server: {endpoint: ws://127.0.0.1:1/v1/opamp}\nagent: {executable: /bin/true}\nstorage: {directory: /tmp/x}\n"
	if _, err := ParseConfig([]byte(base + "packages: {trusted_keys: [nope]}\n")); err == nil || !strings.Contains(err.Error(), "packages.trusted_keys") {
		t.Fatalf("bad key: %v", err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []string{base64.StdEncoding.EncodeToString(pub), base64.RawURLEncoding.EncodeToString(pub), fmt.Sprintf("%x", []byte(pub))} {
		c, err := ParseConfig([]byte(base + "packages: {trusted_keys: [\"" + k + "\"]}\n"))
		if err != nil || !c.Packages.Enabled() {
			t.Fatalf("key %s: %v", k, err)
		}
		got, _ := ParseTrustedKey(k)
		if !bytes.Equal(got, pub) {
			t.Fatalf("key %s decoded wrong", k)
		}
	}
}

// An addon is kept as a file next to the agent, without a restart, and
// removed when it is no longer offered.
func TestPackageAddon(t *testing.T) {
	st := startSteward(t)
	dir := t.TempDir()
	content := []byte("plugin: v1\n")
	p, err := st.cp.UploadPackage(context.Background(), &steward.Package{Name: "plugin", Version: "1", Type: steward.PackageAddon}, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	h := newPackageSupervisor(t, st, dir, st.serverKey())
	uid := h.sup.InstanceUID()
	eventually(t, "agent running", func() bool { pid := h.agentPID(); return pid > 0 && alive(pid) })
	eventually(t, "agent connected", func() bool { a, err := st.cp.Agent(context.Background(), uid); return err == nil && a.Online })
	pid := h.agentPID()
	if _, err := st.cp.PutPackageAssignment(context.Background(), &steward.PackageAssignment{Name: "plugins", AgentID: &uid,
		Packages: []steward.PackageRef{{Name: "plugin", Version: "1"}}}); err != nil {
		t.Fatal(err)
	}
	var s *steward.PackageStatus
	eventually(t, "addon installed", func() bool {
		a, err := st.cp.Agent(context.Background(), uid)
		if err != nil || a.PackageStatuses == nil {
			return false
		}
		s = a.PackageStatuses.Packages["plugin"]
		return s != nil && s.Status == steward.PackageInstalled
	})
	if !bytes.Equal(s.AgentHasHash, p.OfferHash()) {
		t.Fatalf("status %+v", s)
	}
	file := filepath.Join(contentDir(filepath.Join(dir, "state"), content), "plugin")
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("addon file: %v", err)
	}
	if h.agentPID() != pid {
		t.Fatal("installing an addon restarted the agent")
	}
	if err := st.cp.DeletePackageAssignment(context.Background(), "plugins"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "addon removed", func() bool {
		a, err := st.cp.Agent(context.Background(), uid)
		if err != nil || a.PackageStatuses == nil {
			return false
		}
		_, still := a.PackageStatuses.Packages["plugin"]
		return !still && bytes.Equal(a.PackageStatuses.ServerProvidedAllPackagesHash, steward.AllPackagesHash(nil))
	})
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("addon file still there: %v", err)
	}
}

// Malformed or hostile offers are refused with a clear status; nothing
// panics and nothing is installed. No server is needed: the package
// manager is driven directly.
func TestPackageOffersMalformed(t *testing.T) {
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	cfg, err := ParseConfig([]byte(fmt.Sprintf("server: {endpoint: ws://127.0.0.1:1/v1/opamp}\nagent: {mode: generic, executable: %s, config_file: %s}\nstorage: {directory: %s}\npackages: {trusted_keys: [%q]}\n",
		testAgent, filepath.Join(dir, "a.yaml"), filepath.Join(dir, "state"), base64.StdEncoding.EncodeToString(pub))))
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pm := sup.pkgMgr
	if pm == nil || sup.caps&0x8 == 0 {
		t.Fatal("packages not enabled by trusted_keys")
	}
	sum := sha256.Sum256([]byte("x"))
	good := ed25519.Sign(priv, sum[:])
	cases := []struct {
		name string
		p    *protobufs.PackageAvailable
		want string
	}{
		{"no-file", &protobufs.PackageAvailable{Type: protobufs.PackageType_PackageType_Addon, Version: "1", Hash: []byte{1}}, "no downloadable file"},
		{"short-hash", &protobufs.PackageAvailable{Type: protobufs.PackageType_PackageType_Addon, Version: "1", Hash: []byte{2},
			File: &protobufs.DownloadableFile{DownloadUrl: "http://127.0.0.1:1/x", ContentHash: []byte{1, 2}}}, "not a SHA-256"},
		{"unsigned", &protobufs.PackageAvailable{Type: protobufs.PackageType_PackageType_Addon, Version: "1", Hash: []byte{3},
			File: &protobufs.DownloadableFile{DownloadUrl: "http://127.0.0.1:1/x", ContentHash: sum[:]}}, "not signed"},
		{"file-url", &protobufs.PackageAvailable{Type: protobufs.PackageType_PackageType_Addon, Version: "1", Hash: []byte{4},
			File: &protobufs.DownloadableFile{DownloadUrl: "file:///etc/passwd", ContentHash: sum[:], Signature: good}}, "only http and https"},
		{"unreachable", &protobufs.PackageAvailable{Type: protobufs.PackageType_PackageType_Addon, Version: "1", Hash: []byte{5},
			File: &protobufs.DownloadableFile{DownloadUrl: "http://127.0.0.1:1/x", ContentHash: sum[:], Signature: good}}, "download failed"},
	}
	offer := &protobufs.PackagesAvailable{Packages: map[string]*protobufs.PackageAvailable{"nil-package": nil}, AllPackagesHash: []byte("all")}
	for _, c := range cases {
		offer.Packages[c.name] = c.p
	}
	offer.Packages["../escape"] = &protobufs.PackageAvailable{Type: protobufs.PackageType_PackageType_Addon, Version: "1", Hash: []byte{6},
		File: &protobufs.DownloadableFile{DownloadUrl: "http://127.0.0.1:1/x", ContentHash: sum[:], Signature: good}}
	var last *protobufs.PackageStatuses
	if err := pm.Sync(context.Background(), offer, func(ps *protobufs.PackageStatuses) { last = ps }); err == nil {
		t.Fatal("Sync of a bad offer reported no error")
	}
	for _, c := range cases {
		s := last.Packages[c.name]
		if s == nil || s.Status != protobufs.PackageStatusEnum_PackageStatusEnum_InstallFailed || !strings.Contains(s.ErrorMessage, c.want) {
			t.Errorf("%s: status %v, want INSTALL_FAILED with %q", c.name, s, c.want)
		}
	}
	if s := last.Packages["../escape"]; s == nil || s.Status != protobufs.PackageStatusEnum_PackageStatusEnum_InstallFailed {
		t.Errorf("a package name with a path was not refused: %v", s)
	}
	if string(last.ServerProvidedAllPackagesHash) != "all" {
		t.Errorf("all packages hash %q", last.ServerProvidedAllPackagesHash)
	}
	if cur, _ := os.Readlink(pm.Executable()); cur != testAgent {
		t.Fatalf("current link points at %q", cur)
	}
}
