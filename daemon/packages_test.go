package daemon_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	nethttp "net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward"
)

// The server stores uploads under DATA_DIR/packages, and the OpAMP listener
// serves the agents' download route (a wrong token is refused there by the
// package handler, not unknown to the listener).
func TestPackagesWiring(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	content := []byte("#!/bin/sh\nexit 0\n")
	sum := sha256.Sum256(content)
	req, _ := nethttp.NewRequest("PUT", srv.api+"/api/v1/packages/agent/1.0?sha256="+hex.EncodeToString(sum[:]), bytes.NewReader(content))
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p steward.Package
	if resp.StatusCode != 201 || json.Unmarshal(body, &p) != nil || !bytes.Equal(p.Hash, sum[:]) || len(p.Signature) != 64 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "packages", "sha256", hex.EncodeToString(sum[:]))); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("content not in the data directory: %v", err)
	}
	for _, base := range []string{"http://" + srv.opamp, srv.api} {
		resp, err := nethttp.Get(base + "/api/v1/package-content/" + hex.EncodeToString(sum[:]) + "?expires=99999999999&token=00")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != nethttp.StatusUnauthorized || !bytes.Contains(b, []byte("invalid download token")) {
			t.Fatalf("%s: %d %s", base, resp.StatusCode, b)
		}
	}
}
