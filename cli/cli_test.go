package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/cli"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/users"
)

// env is the CLI pointed at a real server: the http package in front of
// the control plane over in-memory SQLite, on 127.0.0.1.
type env struct {
	t     *testing.T
	cp    *controlplane.Service
	url   string
	token string
	conns map[steward.InstanceUID]*conn // each agent's one connection
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cp, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: "test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	people, err := users.New(db, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := stewardhttp.NewServer(stewardhttp.Options{Agents: cp, Configs: cp, Rollouts: cp, Previews: cp, Credentials: cp, EventLog: cp.Events, Users: people, Sessions: db,
		APITokens: []string{"s3cret"}, Logger: log})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		cp.Close()
		db.Close()
	})
	return &env{t: t, cp: cp, url: ts.URL, token: "s3cret"}
}

// run runs the CLI with the server and token flags and returns stdout,
// stderr and the exit code.
func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	return runCLI(append([]string{"--server", e.url, "--token", e.token}, args...)...)
}

func runCLI(args ...string) (string, string, int) {
	var out, errw bytes.Buffer
	code := cli.Run(context.Background(), args, &out, &errw)
	return out.String(), errw.String(), code
}

// mustRun runs the CLI and fails the test unless it exits 0.
func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("steward %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

type conn struct{ st any }

func (c *conn) Send(*protobufs.ServerToAgent) error { return nil }
func (c *conn) Close() error                        { return nil }
func (c *conn) Transport() server.Transport         { return server.WebSocket }
func (c *conn) RemoteAddr() string                  { return "127.0.0.1:5555" }
func (c *conn) State() any                          { return c.st }
func (c *conn) LastReceived() time.Time             { return time.Time{} }

// send delivers msg on agent id's connection, opening it on first use: a
// connection speaks for one uid, and a second live connection for an online
// uid is refused (docs/security.md), so an agent's later reports must use it.
func (e *env) send(id steward.InstanceUID, msg *protobufs.AgentToServer) error {
	c, ok := e.conns[id]
	if !ok {
		st, _ := e.cp.Accept(httptest.NewRequest("GET", "/v1/opamp", nil))
		c = &conn{st: st}
		if e.conns == nil {
			e.conns = map[steward.InstanceUID]*conn{}
		}
		e.conns[id] = c
	}
	_, err := e.cp.OnMessage(context.Background(), c, msg)
	return err
}

// connect has an agent report itself to the control plane.
func (e *env) connect(name, version, host string, caps steward.AgentCapabilities) steward.InstanceUID {
	e.t.Helper()
	id := steward.NewInstanceUID()
	str := func(k, v string) *protobufs.KeyValue {
		return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
	}
	err := e.send(id, &protobufs.AgentToServer{
		InstanceUid:  id[:],
		SequenceNum:  1,
		Capabilities: uint64(caps | steward.AgentReportsStatus | steward.AgentReportsHealth),
		AgentDescription: &protobufs.AgentDescription{
			IdentifyingAttributes:    []*protobufs.KeyValue{str("service.name", name), str("service.version", version)},
			NonIdentifyingAttributes: []*protobufs.KeyValue{str("host.name", host)},
		},
		Health: &protobufs.ComponentHealth{Healthy: true, Status: "StatusOK"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestAgentCommands(t *testing.T) {
	e := newEnv(t)
	idA := e.connect("otelcol", "0.120.0", "web-1", steward.AgentAcceptsRestartCommand)
	idB := e.connect("fluentbit", "3.1", "store-1", 0)

	out := e.mustRun("agents", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "LAST SEEN") {
		t.Fatalf("agents list:\n%s", out)
	}
	for _, want := range []string{idA.String(), "otelcol", "0.120.0", "web-1", "online", "healthy", idB.String(), "fluentbit"} {
		if !strings.Contains(out, want) {
			t.Errorf("agents list lacks %q:\n%s", want, out)
		}
	}
	out = e.mustRun("agents", "list", "--selector", "service.name=otelcol")
	if !strings.Contains(out, idA.String()) || strings.Contains(out, idB.String()) {
		t.Errorf("--selector:\n%s", out)
	}
	out = e.mustRun("agents", "list", "--search", "store-")
	if strings.Contains(out, idA.String()) || !strings.Contains(out, idB.String()) {
		t.Errorf("--search:\n%s", out)
	}
	out = e.mustRun("agents", "list", "--online", "-o", "json")
	var resp stewardhttp.AgentsResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Total != 2 || len(resp.Agents) != 2 {
		t.Errorf("-o json: %v\n%s", err, out)
	}
	if _, errs, code := e.run("agents", "list", "--offline"); code != 0 || !strings.Contains(errs, "No agents found") {
		t.Errorf("--offline: %d %s", code, errs)
	}

	out = e.mustRun("agents", "show", idA.String())
	for _, want := range []string{"ID:", idA.String(), "otelcol 0.120.0", "web-1", "online over websocket", "healthy (StatusOK)", "AcceptsRestartCommand", "service.name = otelcol (identifying)"} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}

	out = e.mustRun("agents", "label", idA.String(), "env=prod", "team=obs")
	if !strings.Contains(out, "env=prod,team=obs") {
		t.Errorf("label: %s", out)
	}
	out = e.mustRun("agents", "label", idA.String(), "team-", "tier=1")
	if !strings.Contains(out, "env=prod,tier=1") || strings.Contains(out, "team") {
		t.Errorf("label removal: %s", out)
	}
	a, err := e.cp.Agent(context.Background(), idA)
	if err != nil || a.Labels["env"] != "prod" || a.Labels["tier"] != "1" || len(a.Labels) != 2 {
		t.Errorf("stored labels: %v %v", a.Labels, err)
	}
	out = e.mustRun("agents", "list", "-l", "env=prod")
	if !strings.Contains(out, idA.String()) || strings.Contains(out, idB.String()) {
		t.Errorf("label selector:\n%s", out)
	}

	if out := e.mustRun("agents", "restart", idA.String()); !strings.Contains(out, "Restart command sent") {
		t.Errorf("restart: %s", out)
	}
	_, errs, code := e.run("agents", "restart", idB.String())
	if code != cli.ExitError || !strings.Contains(errs, "does not accept") {
		t.Errorf("restart without the capability: %d %s", code, errs)
	}

	// Errors: unknown agent (1), malformed id (2), bad flags (2).
	_, errs, code = e.run("agents", "show", steward.NewInstanceUID().String())
	if code != cli.ExitError || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, "not found") {
		t.Errorf("unknown agent: %d %q", code, errs)
	}
	for _, args := range [][]string{
		{"agents", "show", "nope"},
		{"agents", "show"},
		{"agents", "label", idA.String(), "novalue"},
		{"agents", "list", "--online", "--offline"},
		{"agents", "list", "--selector", "a in ("},
		{"agents", "list", "--bogus"},
		{"agents", "list", "-o", "xml"},
		{"agents", "show", idA.String(), "--selector", "env=prod"},
		{"frobnicate"},
	} {
		if _, errs, code := e.run(args...); code != cli.ExitUsage || !strings.HasPrefix(errs, "Error: ") {
			t.Errorf("steward %v: exit %d, stderr %q; want usage error", args, code, errs)
		}
	}

	out = e.mustRun("summary")
	if !strings.Contains(out, "Agents: 2 (2 online") || !strings.Contains(out, "otelcol") {
		t.Errorf("summary:\n%s", out)
	}
	if out := e.mustRun("agents", "delete", idB.String()); !strings.Contains(out, "deleted") {
		t.Errorf("delete: %s", out)
	}
	if _, err := e.cp.Agent(context.Background(), idB); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("agent not deleted: %v", err)
	}
}

func TestConfigCommands(t *testing.T) {
	e := newEnv(t)
	id := e.connect("otelcol", "1", "h", 0)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := write("v1.yaml", "service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}\nreceivers:\n  otlp: {}\nexporters:\n  debug: {}\n")
	v2 := write("v2.yaml", "service: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\nreceivers:\n  otlp: {}\nexporters:\n  otlphttp: {}\n")

	if out := e.mustRun("configs", "apply", "collector", "-f", v1, "-m", "first"); out != "Config collector: created version 1.\n" {
		t.Errorf("apply v1: %q", out)
	}
	if out := e.mustRun("configs", "apply", "collector", "-f", v1); out != "Config collector: unchanged (version 1).\n" {
		t.Errorf("apply v1 again: %q", out)
	}
	if out := e.mustRun("configs", "apply", "collector", "-f", v2, "-m", "switch exporter"); out != "Config collector: created version 2.\n" {
		t.Errorf("apply v2: %q", out)
	}
	c, err := e.cp.Config(context.Background(), "collector", 2)
	if err != nil || c.Files[""].ContentType != "text/yaml" || c.Comment != "switch exporter" || c.Author != "token-1" {
		t.Errorf("stored config: %+v %v", c, err)
	}

	out := e.mustRun("configs", "list")
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "collector") || !strings.Contains(out, "switch exporter") {
		t.Errorf("configs list:\n%s", out)
	}
	if out := e.mustRun("configs", "show", "collector"); out != "service: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\nreceivers:\n  otlp: {}\nexporters:\n  otlphttp: {}\n" {
		t.Errorf("show latest: %q", out)
	}
	if out := e.mustRun("configs", "show", "collector", "--version", "1"); !strings.Contains(out, "debug") {
		t.Errorf("show v1: %q", out)
	}
	out = e.mustRun("configs", "history", "collector")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "2 ") || !strings.HasPrefix(lines[2], "1 ") || !strings.Contains(lines[2], "first") {
		t.Errorf("history:\n%s", out)
	}
	want := "--- collector@v1\n+++ collector@v2\n@@ -1,5 +1,5 @@\n-service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}\n+service: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\n receivers:\n   otlp: {}\n exporters:\n-  debug: {}\n+  otlphttp: {}\n"
	if out := e.mustRun("configs", "diff", "collector", "1", "2"); out != want {
		t.Errorf("diff:\n%s\nwant:\n%s", out, want)
	}

	// Several named files.
	r := write("recv.yaml", "otlp: {}\n")
	x := write("exp.json", `{"debug":{}}`)
	e.mustRun("configs", "apply", "multi", "-f", "receivers="+r, "-f", "exporters="+x)
	mc, err := e.cp.Config(context.Background(), "multi", 0)
	if err != nil || len(mc.Files) != 2 || mc.Files["exporters"].ContentType != "application/json" || string(mc.Files["receivers"].Body) != "otlp: {}\n" {
		t.Errorf("multi-file config: %+v %v", mc, err)
	}
	if out := e.mustRun("configs", "show", "multi"); out != "==> exporters <==\n{\"debug\":{}}\n\n==> receivers <==\notlp: {}\n" {
		t.Errorf("show multi: %q", out)
	}

	// Assignments.
	out = e.mustRun("configs", "assign", "all-otelcol", "--config", "collector", "--selector", "service.name=otelcol")
	if out != "Assignment all-otelcol: config collector (latest) to agents matching service.name=otelcol.\n" {
		t.Errorf("assign: %q", out)
	}
	out = e.mustRun("configs", "assign", "pinned", "--config", "collector", "--agent", id.String(), "--version", "1", "--priority", "2")
	if !strings.Contains(out, "(version 1) to agent "+id.String()) {
		t.Errorf("assign to agent: %q", out)
	}
	out = e.mustRun("assignments", "list")
	for _, want := range []string{"all-otelcol", "selector service.name=otelcol", "pinned", "version 1", "agent " + id.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("assignments list lacks %q:\n%s", want, out)
		}
	}
	files, _, err := e.cp.DesiredConfig(context.Background(), id)
	if err != nil || len(files) == 0 {
		t.Errorf("desired config after assign: %v %v", files, err)
	}
	_, errs, code := e.run("configs", "delete", "collector")
	if code != cli.ExitError || !strings.Contains(errs, "Error: ") {
		t.Errorf("delete assigned config: %d %s", code, errs)
	}
	e.mustRun("assignments", "delete", "pinned")
	e.mustRun("assignments", "delete", "all-otelcol")
	if _, errs, code := e.run("assignments", "delete", "all-otelcol"); code != cli.ExitError || !strings.Contains(errs, "not found") {
		t.Errorf("delete missing assignment: %d %s", code, errs)
	}
	if out := e.mustRun("configs", "delete", "collector"); !strings.Contains(out, "deleted") {
		t.Errorf("delete config: %s", out)
	}

	for _, args := range [][]string{
		{"configs", "apply", "x"},
		{"configs", "apply", "bad name", "-f", v1},
		{"configs", "apply", "x", "-f", v1, "-f", v2},
		{"configs", "diff", "collector", "1"},
		{"configs", "diff", "collector", "one", "2"},
		{"configs", "assign", "a", "--config", "c"},
		{"configs", "assign", "a", "--config", "c", "--selector", "x=y", "--agent", id.String()},
		{"configs", "assign", "a", "--selector", "x=y"},
		{"configs", "assign", "a", "--config", "c", "--agent", "nope"},
	} {
		if _, errs, code := e.run(args...); code != cli.ExitUsage {
			t.Errorf("steward %v: exit %d %s; want usage error", args, code, errs)
		}
	}
	if _, errs, code := e.run("configs", "apply", "x", "-f", filepath.Join(dir, "missing.yaml")); code != cli.ExitError || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("missing file: %d %s", code, errs)
	}
	if _, errs, code := e.run("configs", "show", "nothing"); code != cli.ExitError || !strings.Contains(errs, "not found") {
		t.Errorf("show missing: %d %s", code, errs)
	}
}

func TestConnectionAndAuthErrors(t *testing.T) {
	e := newEnv(t)
	_, errs, code := runCLI("--server", e.url, "--token", "wrong", "configs", "list")
	if code != cli.ExitError || !strings.Contains(errs, "STEWARD_TOKEN") {
		t.Errorf("wrong token: %d %s", code, errs)
	}
	// Environment defaults.
	t.Setenv("STEWARD_SERVER", e.url)
	t.Setenv("STEWARD_TOKEN", e.token)
	if _, errs, code := runCLI("configs", "list"); code != 0 {
		t.Errorf("with environment: %d %s", code, errs)
	}
	// A server address without a scheme means http.
	if _, errs, code := runCLI("--server", strings.TrimPrefix(e.url, "http://"), "configs", "list"); code != 0 {
		t.Errorf("server without scheme: %d %s", code, errs)
	}
	ts := httptest.NewServer(nil)
	dead := ts.URL
	ts.Close()
	_, errs, code = runCLI("--server", dead, "agents", "list")
	if code != cli.ExitError || !strings.Contains(errs, "cannot reach the Steward server at "+dead) {
		t.Errorf("server down: %d %s", code, errs)
	}
}

var registered atomic.Int64

func TestRegisterCommand(t *testing.T) {
	// The registry is global: use a fresh name so that -count=N works.
	name := fmt.Sprintf("hello%d", registered.Add(1))
	ran := make(chan []string, 10)
	cli.RegisterCommandFunc(func() *cobra.Command {
		return &cobra.Command{Use: name, RunE: func(cmd *cobra.Command, args []string) error {
			ran <- args
			cmd.Println("hi")
			return nil
		}}
	})
	out, _, code := runCLI(name, "x")
	if code != 0 || out != "hi\n" {
		t.Errorf("registered command: %d %q", code, out)
	}
	select {
	case args := <-ran:
		if len(args) != 1 || args[0] != "x" {
			t.Errorf("args %v", args)
		}
	default:
		t.Error("registered command did not run")
	}
	if out, _, _ := runCLI("--help"); !strings.Contains(out, name) || !strings.Contains(out, "agents") {
		t.Errorf("help lacks commands:\n%s", out)
	}
}
