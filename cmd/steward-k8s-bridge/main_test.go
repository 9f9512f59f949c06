package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// The bridge's enrollment token comes from --token-file or
// STEWARD_ENROLLMENT_TOKEN, never from STEWARD_TOKEN (the CLI's API token,
// which Steward refuses as an unknown enrollment token).
func TestEnrollmentTokenSource(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	if h, f := enrollmentToken("", env(map[string]string{"STEWARD_TOKEN": "api-token"})); h != nil || f != nil {
		t.Fatalf("STEWARD_TOKEN alone gave header %v (func %v); want nothing sent", h, f != nil)
	}
	h, _ := enrollmentToken("", env(map[string]string{"STEWARD_TOKEN": "api-token", "STEWARD_ENROLLMENT_TOKEN": " stwe_x "}))
	if got := h.Get("Authorization"); got != "Bearer stwe_x" {
		t.Fatalf("STEWARD_ENROLLMENT_TOKEN: Authorization %q", got)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("stwe_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, f := enrollmentToken(file, env(map[string]string{"STEWARD_ENROLLMENT_TOKEN": "stwe_x"}))
	if h != nil || f == nil {
		t.Fatal("--token-file must win and be re-read per connection")
	}
	if got := f(http.Header{}).Get("Authorization"); got != "Bearer stwe_file" {
		t.Fatalf("--token-file: Authorization %q", got)
	}
}
