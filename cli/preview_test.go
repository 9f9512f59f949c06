package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/cli"
)

// reportCoreComponents makes an agent report the components of a core
// collector build (no connectors).
func (e *env) reportCoreComponents(id steward.InstanceUID) {
	e.t.Helper()
	ac := &protobufs.AvailableComponents{Hash: []byte("core"), Components: map[string]*protobufs.ComponentDetails{}}
	for kind, types := range map[string][]string{"receivers": {"otlp"}, "exporters": {"debug", "otlp"}, "processors": {"batch"}} {
		k := &protobufs.ComponentDetails{SubComponentMap: map[string]*protobufs.ComponentDetails{}}
		for _, t := range types {
			k.SubComponentMap[t] = &protobufs.ComponentDetails{}
		}
		ac.Components[kind] = k
	}
	caps := steward.AgentReportsStatus | steward.AgentAcceptsRemoteConfig | steward.AgentReportsAvailableComponents
	if err := e.send(id, &protobufs.AgentToServer{InstanceUid: id[:], SequenceNum: 2, Capabilities: uint64(caps), AvailableComponents: ac}); err != nil {
		e.t.Fatal(err)
	}
}

func TestDryRunAndValidation(t *testing.T) {
	e := newEnv(t)
	id := e.connect("otelcol", "0.149.0", "edge-1", steward.AgentAcceptsRemoteConfig)
	e.reportCoreComponents(id)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := write("v1.yaml", "receivers: {otlp: {}}\nexporters: {debug: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n")
	v2 := write("v2.yaml", "receivers: {otlp: {}}\nconnectors: {count: {}}\nexporters: {debug: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug, count]}\n    metrics: {receivers: [count], exporters: [debug]}\n")

	if _, errs, code := e.run("configs", "assign", "edge", "--config", "gw", "--selector", "host.name=edge-1", "--dry-run"); code != cli.ExitError || !strings.Contains(errs, `config "gw" not found`) {
		t.Errorf("dry run naming a missing config: exit %d, stderr %q", code, errs)
	}
	e.mustRun("configs", "apply", "gw", "-f", v1)
	out := e.mustRun("configs", "assign", "edge", "--config", "gw", "--selector", "host.name=edge-1", "--dry-run")
	for _, want := range []string{"Dry run: assignment edge would give config gw (latest) to agents matching host.name=edge-1.", "Agents: 1 matched, 1 would change.", "Validation: no findings.", id.String() + " otelcol (online)", "(The agent has not reported an effective configuration.)", "Not blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("assign --dry-run lacks %q:\n%s", want, out)
		}
	}
	if as, _ := e.cp.Assignments(context.Background()); len(as) != 0 {
		t.Fatalf("a dry run stored the assignment")
	}
	e.mustRun("configs", "assign", "edge", "--config", "gw", "--selector", "host.name=edge-1")

	out, _, code := e.run("configs", "apply", "gw", "-f", v2, "--dry-run")
	if code != cli.ExitError {
		t.Errorf("dry run of a blocked config exits %d, want %d", code, cli.ExitError)
	}
	for _, want := range []string{"config gw would be saved as version 2", "Agents: 1 matched, 1 would change.", "Agents lacking components the config defines: 1", id.String() + " otelcol: connector count", "+connectors: {count: {}}", "Blocked:"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --dry-run lacks %q:\n%s", want, out)
		}
	}
	_, errs, code := e.run("configs", "apply", "gw", "-f", v2)
	if code != cli.ExitError || !strings.Contains(errs, "connector count") || !strings.Contains(errs, "force") {
		t.Errorf("blocked apply: exit %d, stderr %q", code, errs)
	}
	if h, _ := e.cp.ConfigHistory(context.Background(), "gw"); len(h) != 1 {
		t.Fatalf("versions after a refused apply: %d", len(h))
	}
	if out := e.mustRun("configs", "apply", "gw", "-f", v2, "--force"); out != "Config gw: created version 2.\n" {
		t.Errorf("forced apply: %q", out)
	}
}

func TestRolloutDryRun(t *testing.T) {
	e := newEnv(t)
	id := e.connect("otelcol", "0.149.0", "edge-1", steward.AgentAcceptsRemoteConfig)
	e.reportCoreComponents(id)
	dir := t.TempDir()
	for i, body := range []string{"v: 1\n", "v: 2\n"} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		e.mustRun("configs", "apply", "base", "-f", p)
		if i == 0 {
			e.mustRun("configs", "assign", "edge", "--config", "base", "--version", "1", "--selector", "host.name=edge-1")
		}
	}
	out := e.mustRun("rollouts", "start", "to-v2", "--assignment", "edge", "--to", "2", "--stage", "host.name=edge-1", "--dry-run")
	for _, want := range []string{"Agents: 1 matched, 1 would change.", "(The agent has not reported an effective configuration.)", "Not blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollouts start --dry-run lacks %q:\n%s", want, out)
		}
	}
	if out := e.mustRun("rollouts", "list"); strings.Contains(out, "to-v2") {
		t.Errorf("a dry run started the rollout:\n%s", out)
	}
}
