package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func TestRolloutCommands(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	for i, body := range []string{"v: 1\n", "v: 2\n"} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		e.mustRun("configs", "apply", "base", "-f", p)
		if i == 0 {
			e.mustRun("configs", "assign", "prod", "--config", "base", "--version", "1", "--selector", "env=prod")
		}
	}
	out := e.mustRun("rollouts", "start", "to-v2", "--assignment", "prod", "--to", "2", "--stage", "ring=canary", "--stage", "50%", "--stage", "100%")
	if !strings.Contains(out, "version 1 → 2 in 3 stage(s)") {
		t.Fatalf("start output: %q", out)
	}
	// With no agents online the first stage is done at once: the rollout
	// moves on by itself; whatever it did, list and show describe it.
	out = e.mustRun("rollouts", "list")
	if !strings.Contains(out, "to-v2") || !strings.Contains(out, "1 → 2") {
		t.Fatalf("list output: %q", out)
	}
	out = e.mustRun("rollouts", "show", "to-v2")
	if !strings.Contains(out, "ring=canary") || !strings.Contains(out, "50% of agents") {
		t.Fatalf("show output: %q", out)
	}
	out = e.mustRun("rollouts", "rollback", "to-v2")
	if !strings.Contains(out, "rolled_back") {
		t.Fatalf("rollback output: %q", out)
	}
	var r steward.Rollout
	if err := json.Unmarshal([]byte(e.mustRun("-o", "json", "rollouts", "show", "to-v2")), &r); err != nil {
		t.Fatal(err)
	}
	if r.State != steward.RolloutRolledBack {
		t.Fatalf("state %q", r.State)
	}
	a, err := e.cp.Assignment(t.Context(), "prod")
	if err != nil || a.Version != 1 {
		t.Fatalf("assignment after rollback: %+v %v", a, err)
	}
	// Errors: a bad stage is refused before any request; a second rollback
	// is refused by the server.
	if _, errs, code := e.run("rollouts", "start", "x", "--assignment", "prod", "--to", "2", "--stage", "150%"); code == 0 || !strings.Contains(errs, "1%-100%") {
		t.Fatalf("bad stage: exit %d, %q", code, errs)
	}
	if _, errs, code := e.run("rollouts", "rollback", "to-v2"); code != 1 || !strings.Contains(errs, "rolled_back") {
		t.Fatalf("second rollback: exit %d, %q", code, errs)
	}
}
