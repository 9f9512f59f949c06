package cli_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/cli"
)

// connectRaw has an agent report the given attributes.
func (e *env) connectRaw(attrs map[string]string, healthErr string) steward.InstanceUID {
	e.t.Helper()
	id := steward.NewInstanceUID()
	st, _ := e.cp.Accept(httptest.NewRequest("GET", "/v1/opamp", nil))
	var kvs []*protobufs.KeyValue
	for k, v := range attrs {
		kvs = append(kvs, &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}})
	}
	_, err := e.cp.OnMessage(context.Background(), &conn{st: st}, &protobufs.AgentToServer{
		InstanceUid: id[:], SequenceNum: 1,
		Capabilities:     uint64(steward.AgentReportsStatus | steward.AgentReportsHealth),
		AgentDescription: &protobufs.AgentDescription{IdentifyingAttributes: kvs},
		Health:           &protobufs.ComponentHealth{Healthy: false, LastError: healthErr},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// hostile are agent-supplied strings that would act on a terminal if
// printed raw: an OSC title change, clear screen, carriage return over the
// line, a right-to-left override and a C1 CSI.
var hostile = map[string]string{
	"service.name":    "otel\x1b]0;owned\x07col",
	"service.version": "1.0\u202e9.9",
	"host.name":       "web\x1b[2J\r-1",
	"evil\x1b[31mkey": "v\u009b31m",
}

func assertInert(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\r", "\u202e", "\u009b", "\a"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s prints %q raw:\n%q", what, bad, out)
		}
	}
}

// Agent-supplied strings reach the terminal escaped in every table and
// detail view (finding 10 of issue 10: escape sequences were printed raw).
func TestAgentStringsEscaped(t *testing.T) {
	e := newEnv(t)
	id := e.connectRaw(hostile, "failed\x1b[8m hidden")

	out := e.mustRun("agents", "list")
	assertInert(t, "agents list", out)
	if !strings.Contains(out, `otel\x1b]0;owned\x07col`) || !strings.Contains(out, `web\x1b[2J\x0d-1`) || !strings.Contains(out, `1.0\u202e9.9`) {
		t.Errorf("agents list does not show the escaped values:\n%s", out)
	}
	out = e.mustRun("agents", "show", id.String())
	assertInert(t, "agents show", out)
	for _, want := range []string{`evil\x1b[31mkey = v\u009b31m`, `failed\x1b[8m hidden`, `otel\x1b]0;owned\x07col`} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}
	assertInert(t, "summary", e.mustRun("summary"))
	// JSON escapes them itself and keeps the values exact.
	out = e.mustRun("agents", "show", id.String(), "-o", "json")
	assertInert(t, "agents show -o json", out)
	if !strings.Contains(out, `otel\u001b]0;owned\u0007col`) {
		t.Errorf("-o json:\n%s", out)
	}
}

// No help page prints the API token taken from STEWARD_TOKEN, and the
// token still authenticates (finding 10 of issue 10: every --help printed
// it as the --token default).
func TestHelpNeverShowsToken(t *testing.T) {
	e := newEnv(t)
	t.Setenv("STEWARD_TOKEN", e.token)
	e.token = "" // only the environment carries it now
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(cli.NewRootCommand(), nil)
	if len(paths) < 20 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, p := range paths {
		out, errs, code := runCLI(append(p, "--help")...)
		if code != 0 || !strings.Contains(out, "--token") {
			t.Fatalf("steward %s --help: exit %d, %q %q", strings.Join(p, " "), code, out, errs)
		}
		if strings.Contains(out+errs, "s3cret") {
			t.Errorf("steward %s --help shows the token:\n%s", strings.Join(p, " "), out)
		}
	}
	if out, errs, code := runCLI("--server", e.url, "agents", "list"); code != 0 {
		t.Fatalf("STEWARD_TOKEN does not authenticate: %d %s %s", code, out, errs)
	}
}

// Errors never echo the token: not a wrong one, not one that cannot be
// sent, not when the server is unreachable.
func TestErrorsNeverShowToken(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ server, token string }{
		{e.url, "wrong-SECRETVALUE"},
		{e.url, "bad\x01SECRETVALUE"},
		{"http://127.0.0.1:1", "unreachable-SECRETVALUE"},
	} {
		for _, how := range []string{"flag", "env"} {
			args := []string{"--server", tc.server, "agents", "list"}
			if how == "flag" {
				args = append([]string{"--token", tc.token}, args...)
			} else {
				t.Setenv("STEWARD_TOKEN", tc.token)
			}
			out, errs, code := runCLI(args...)
			if code != cli.ExitError {
				t.Errorf("token %q (%s): exit %d", tc.token, how, code)
			}
			if strings.Contains(out+errs, "SECRETVALUE") {
				t.Errorf("token %q (%s) printed: %s%s", tc.token, how, out, errs)
			}
		}
	}
}

// Secrets are (redacted) in the CLI's output unless an admin asks with
// --reveal; a viewer asking is refused.
func TestRevealSecrets(t *testing.T) {
	e := newEnv(t)
	e.mustRun("connection-settings", "set", "prod", "--metrics", "https://127.0.0.1:4318/v1/metrics", "--header", "Authorization=Bearer cli-SECRET-1")
	if out := e.mustRun("connection-settings", "list", "-o", "json"); strings.Contains(out, "cli-SECRET") || !strings.Contains(out, steward.RedactedSecret) {
		t.Errorf("list without --reveal:\n%s", out)
	}
	if out := e.mustRun("connection-settings", "list", "-o", "json", "--reveal"); !strings.Contains(out, "Bearer cli-SECRET-1") {
		t.Errorf("admin list --reveal:\n%s", out)
	}
	viewer := strings.TrimSpace(e.mustRun("tokens", "create", "dash", "--role", "viewer"))
	out, errs, code := runCLI("--server", e.url, "--token", viewer, "connection-settings", "list", "-o", "json", "--reveal")
	if code != cli.ExitError || strings.Contains(out+errs, "cli-SECRET") || !strings.Contains(errs, "admin") {
		t.Errorf("viewer --reveal: exit %d\n%s%s", code, out, errs)
	}
}
