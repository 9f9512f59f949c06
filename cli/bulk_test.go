package cli_test

import (
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

// 'agents bulk' previews unless --yes, then acts on what the preview
// counted and reports failures with a non-zero exit.
func TestAgentsBulk(t *testing.T) {
	e := newEnv(t)
	r := e.connect("otelcol", "1.0", "web-1", steward.AgentAcceptsRestartCommand)
	n := e.connect("otelcol", "1.0", "web-2", 0)
	e.connect("fluentbit", "2.0", "web-3", steward.AgentAcceptsRestartCommand)

	out := e.mustRun("agents", "bulk", "restart", "--type", "otelcol")
	if !strings.Contains(out, "Restart 2 agents:") || !strings.Contains(out, r.String()) || !strings.Contains(out, "Nothing done") {
		t.Fatalf("preview:\n%s", out)
	}
	out, _, code := e.run("agents", "bulk", "restart", "--type", "otelcol", "--yes")
	if code == 0 || !strings.Contains(out, "Restarted 1 of 2 agents.") || !strings.Contains(out, n.String()+": ") {
		t.Fatalf("restart (%d):\n%s", code, out)
	}

	out = e.mustRun("agents", "bulk", "label", "team=obs", "--attr", "host.name=web-2", "--yes")
	if !strings.Contains(out, "Labelled 1 of 1 agents.") {
		t.Fatalf("label:\n%s", out)
	}
	if out := e.mustRun("agents", "list", "--selector", "team=obs"); !strings.Contains(out, n.String()) || strings.Contains(out, r.String()) {
		t.Fatalf("after label, --selector team=obs:\n%s", out)
	}
	if out := e.mustRun("agents", "bulk", "forget", "--type", "otelcol"); !strings.Contains(out, "No agents match") {
		t.Fatalf("forget of online agents previews nothing:\n%s", out)
	}
	for _, args := range [][]string{{"explode"}, {"label"}, {"restart", "x"}, {"restart", "--offline"}, {"restart", "--attr", "novalue"}} {
		if _, errs, code := e.run(append([]string{"agents", "bulk"}, args...)...); code == 0 || errs == "" {
			t.Errorf("agents bulk %v: exit %d, %q", args, code, errs)
		}
	}
}

// 'agents list' filters and sorts on the server.
func TestAgentsListFilterAndSort(t *testing.T) {
	e := newEnv(t)
	a := e.connect("otelcol", "1.0", "host-b", 0)
	b := e.connect("fluentbit", "2.0", "host-a", 0)
	out := e.mustRun("agents", "list", "--sort", "host")
	if strings.Index(out, b.String()) > strings.Index(out, a.String()) {
		t.Errorf("--sort host puts host-b first:\n%s", out)
	}
	out = e.mustRun("agents", "list", "--sort", "-host")
	if strings.Index(out, b.String()) < strings.Index(out, a.String()) {
		t.Errorf("--sort -host puts host-a first:\n%s", out)
	}
	if out := e.mustRun("agents", "list", "--version", "2.0", "--attr", "host.name=host-a"); !strings.Contains(out, b.String()) || strings.Contains(out, a.String()) {
		t.Errorf("--version 2.0 --attr host.name=host-a:\n%s", out)
	}
	if out := e.mustRun("agents", "list", "--sync", "offline,pending,in_sync", "--config", "unset"); !strings.Contains(out, a.String()) || !strings.Contains(out, b.String()) {
		t.Errorf("--sync with three states, --config unset:\n%s", out)
	}
	if out := e.mustRun("agents", "list", "--config", "failed"); strings.Contains(out, a.String()) {
		t.Errorf("--config failed lists an agent that reported none:\n%s", out)
	}
	if _, errs, code := e.run("agents", "list", "--sort", "colour"); code == 0 || !strings.Contains(errs, "unknown sort") {
		t.Errorf("--sort colour: %d %s", code, errs)
	}
}
