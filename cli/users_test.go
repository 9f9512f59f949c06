package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	stewardhttp "github.com/stewardhq/steward/http"
)

// login reports the status of a password login of name at the server.
func (e *env) login(t *testing.T, name, password string) int {
	t.Helper()
	b, _ := json.Marshal(stewardhttp.LoginRequest{Name: name, Password: password})
	r, err := http.Post(e.url+"/api/v1/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r.StatusCode
}

func TestUsersCommands(t *testing.T) {
	e := newEnv(t)
	const password = "ann's long passphrase"
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := e.run("users", "create", "ann", "--role", "operator", "--password-file", file)
	if code != 0 || !strings.Contains(errs, "User ann (operator) created") || strings.Contains(out+errs, password) {
		t.Fatalf("create: exit %d\n%s%s", code, out, errs)
	}
	if got := e.login(t, "ann", password); got != 200 {
		t.Fatalf("ann logs in with the password from the file: %d", got)
	}
	// No password on the command line, and no terminal here to ask on.
	if _, errs, code := e.run("users", "create", "bob", "--role", "viewer"); code != 1 || !strings.Contains(errs, "--password-file") {
		t.Errorf("create without a terminal or file: exit %d, %s", code, errs)
	}
	if _, errs, code := e.run("users", "create", "bob", "--role", "root", "--password-file", file); code != 2 || !strings.Contains(errs, "invalid role") {
		t.Errorf("bad role: exit %d, %s", code, errs)
	}
	if _, errs, code := e.run("users", "create", "ann", "--password-file", file); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("duplicate: exit %d, %s", code, errs)
	}

	e.mustRun("users", "set-role", "ann", "viewer")
	list := e.mustRun("users", "list")
	if !strings.Contains(list, "ann") || !strings.Contains(list, "viewer") || !strings.Contains(list, "active") {
		t.Fatalf("list:\n%s", list)
	}
	e.mustRun("users", "disable", "ann")
	if got := e.login(t, "ann", password); got != 401 {
		t.Errorf("disabled ann logs in: %d", got)
	}
	if list := e.mustRun("users", "list"); !strings.Contains(list, "disabled") {
		t.Errorf("list after disable:\n%s", list)
	}
	e.mustRun("users", "enable", "ann")
	if got := e.login(t, "ann", password); got != 200 {
		t.Errorf("enabled ann: %d", got)
	}
	e.mustRun("users", "delete", "ann")
	if list := e.mustRun("users", "list"); strings.Contains(list, "ann") {
		t.Errorf("list after delete:\n%s", list)
	}
	audit := e.mustRun("audit")
	for _, want := range []string{"user.create", "user.update", "user.delete"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s:\n%s", want, audit)
		}
	}
}
