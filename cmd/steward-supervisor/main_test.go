package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// --check validates what the config names on this host, not only its
// syntax: a missing or non-executable agent is an error (exit status 2).
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "steward-supervisor")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, executable, extra string
		want                    string // "" = config OK
	}{
		{"executable exists", "/bin/sh", "", ""},
		{"executable found in PATH", "sh", "", ""},
		{"missing executable", filepath.Join(dir, "nope"), "", "agent.executable: " + filepath.Join(dir, "nope") + " does not exist"},
		{"not executable", plain, "", "is not executable"},
		{"directory", dir, "", "is a directory"},
		{"not in PATH", "no-such-agent-anywhere", "", `"no-such-agent-anywhere" not found in PATH`},
		{"missing local file", "/bin/sh", "  local_config_files: [" + filepath.Join(dir, "missing.yaml") + "]\n", "agent.local_config_files"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "supervisor.yaml")
			body := fmt.Sprintf("server: {endpoint: ws://127.0.0.1:4320/v1/opamp}\nagent:\n  mode: collector\n  executable: %s\n%sstorage: {directory: %s}\n",
				c.executable, c.extra, filepath.Join(dir, "state"))
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--config", cfg, "--check").CombinedOutput()
			if c.want == "" {
				if err != nil || !strings.Contains(string(out), "config OK") {
					t.Fatalf("--check: %v\n%s", err, out)
				}
				return
			}
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) || strings.Contains(string(out), "config OK") {
				t.Fatalf("--check: %v, want exit status 2 saying %q; output:\n%s", err, c.want, out)
			}
		})
	}
}
