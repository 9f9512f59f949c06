package cli_test

import (
	"strings"
	"testing"
)

func TestTokensCommands(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("tokens", "create", "ci", "--role", "operator")
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "stw_") {
		t.Fatalf("secret %q", out)
	}
	if _, errs, code := e.run("tokens", "create", "x", "--role", "root"); code != 2 || !strings.Contains(errs, "invalid role") {
		t.Fatalf("bad role: exit %d, %s", code, errs)
	}
	list := e.mustRun("tokens", "list")
	if !strings.Contains(list, "ci") || !strings.Contains(list, "operator") || strings.Contains(list, secret) {
		t.Fatalf("list:\n%s", list)
	}
	// The operator token may change configs but not manage tokens.
	op := []string{"--server", e.url, "--token", secret}
	if _, errs, code := runCLI(append(op, "tokens", "list")...); code != 1 || !strings.Contains(errs, "admin role") {
		t.Fatalf("operator listing tokens: exit %d, %s", code, errs)
	}
	if _, _, code := runCLI(append(op, "agents", "list")...); code != 0 {
		t.Fatalf("operator listing agents: exit %d", code)
	}
	// Enrollment tokens, connection settings, certificates, audit.
	enroll := strings.TrimSpace(e.mustRun("enrollment-tokens", "create", "fleet", "--max-uses", "2", "--selector", "env=prod"))
	if !strings.HasPrefix(enroll, "stwe_") {
		t.Fatalf("enrollment secret %q", enroll)
	}
	if l := e.mustRun("enrollment-tokens", "list"); !strings.Contains(l, "0/2") || !strings.Contains(l, "env=prod") {
		t.Fatalf("enrollment list:\n%s", l)
	}
	e.mustRun("connection-settings", "set", "prod", "--selector", "env=prod", "--metrics", "http://127.0.0.1:4318/v1/metrics",
		"--header", "X-Key=k", "--heartbeat", "15")
	if l := e.mustRun("connection-settings", "list"); !strings.Contains(l, "http://127.0.0.1:4318/v1/metrics") || !strings.Contains(l, "15s") {
		t.Fatalf("connection settings:\n%s", l)
	}
	if _, errs, code := e.run("connection-settings", "set", "bad", "--metrics", "nope"); code != 1 || !strings.Contains(errs, "not an http(s) URL") {
		t.Fatalf("bad endpoint: exit %d, %s", code, errs)
	}
	// The preset: own metrics and logs to Steward.
	e.mustRun("connection-settings", "set", "own", "--to-steward")
	if l := e.mustRun("connection-settings", "list"); !strings.Contains(l, "steward") {
		t.Fatalf("the preset is not listed:\n%s", l)
	}
	if _, errs, code := e.run("connection-settings", "set", "both", "--to-steward", "--metrics", "http://x:4318/v1/metrics"); code != 1 || !strings.Contains(errs, "leave own_metrics and own_logs unset") {
		t.Fatalf("preset with --metrics: exit %d, %s", code, errs)
	}
	e.mustRun("certs", "list")
	if _, errs, code := e.run("certs", "revoke", "abcd"); code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("revoke unknown: exit %d, %s", code, errs)
	}
	audit := e.mustRun("audit")
	for _, want := range []string{"token.create", "enrollment_token.create", "connection_settings.put"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s:\n%s", want, audit)
		}
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	e.mustRun("tokens", "delete", "--", id) // ids are base64url and may begin with "-"
	if _, _, code := runCLI(append(op, "agents", "list")...); code != 1 {
		t.Fatalf("deleted token still works: exit %d", code)
	}
}
