package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/sqlite"
)

func newPackageEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobfs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cp, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: "test", Logger: log, Packages: controlplane.PackageOptions{Blobs: blobs}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(stewardhttp.NewServer(stewardhttp.Options{Agents: cp, Configs: cp, Packages: cp, APITokens: []string{"s3cret"}, Logger: log}))
	t.Cleanup(func() { ts.Close(); cp.Close(); db.Close() })
	return &env{t: t, cp: cp, url: ts.URL, token: "s3cret"}
}

func TestPackageCommands(t *testing.T) {
	e := newPackageEnv(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	content := []byte("#!/bin/sh\necho agent v1\n")
	if err := os.WriteFile(bin, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)

	out := e.mustRun("packages", "upload", "myagent", "1.0.0", "-f", bin)
	if !strings.Contains(out, "Uploaded myagent 1.0.0 (top_level") || !strings.Contains(out, "signed by") {
		t.Fatalf("upload output: %q", out)
	}
	out = e.mustRun("packages", "list")
	if !strings.Contains(out, "myagent") || !strings.Contains(out, "1.0.0") {
		t.Fatalf("list output: %q", out)
	}
	var p steward.Package
	if err := json.Unmarshal([]byte(e.mustRun("-o", "json", "packages", "show", "myagent", "1.0.0")), &p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Hash, sum[:]) {
		t.Fatalf("hash %x", p.Hash)
	}
	dl := filepath.Join(dir, "copy")
	e.mustRun("packages", "download", "myagent", "1.0.0", "-f", dl)
	if b, _ := os.ReadFile(dl); !bytes.Equal(b, content) {
		t.Fatal("downloaded content differs")
	}

	// External signing: a key the server does not trust is refused.
	key := filepath.Join(dir, "key.pem")
	out = e.mustRun("packages", "keygen", "-f", key)
	if !strings.Contains(out, "Public key") {
		t.Fatalf("keygen output: %q", out)
	}
	sig := strings.TrimSpace(e.mustRun("packages", "sign", "-f", bin, "--key", key))
	if _, errs, code := e.run("packages", "upload", "myagent", "1.0.1", "-f", bin, "--signature", sig); code == 0 || !strings.Contains(errs, "bad signature") {
		t.Fatalf("untrusted signature: exit %d, %q", code, errs)
	}

	out = e.mustRun("packages", "keys")
	if !strings.Contains(out, "server") {
		t.Fatalf("keys output: %q", out)
	}
	out = e.mustRun("packages", "assign", "fleet", "--package", "myagent@1.0.0", "--selector", "os.type=linux")
	if !strings.Contains(out, "myagent@1.0.0 to agents matching os.type=linux") {
		t.Fatalf("assign output: %q", out)
	}
	if _, errs, code := e.run("packages", "assign", "bad", "--package", "myagent"); code == 0 || !strings.Contains(errs, "NAME@VERSION") {
		t.Fatalf("bad ref: exit %d, %q", code, errs)
	}
	if out := e.mustRun("packages", "assignments"); !strings.Contains(out, "fleet") {
		t.Fatalf("assignments output: %q", out)
	}
	if _, errs, code := e.run("packages", "delete", "myagent", "1.0.0"); code == 0 || !strings.Contains(errs, "fleet") {
		t.Fatalf("delete of an assigned version: exit %d, %q", code, errs)
	}
	e.mustRun("packages", "unassign", "fleet")
	e.mustRun("packages", "delete", "myagent", "1.0.0")
}
