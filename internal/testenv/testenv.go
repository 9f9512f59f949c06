// Package testenv lets tests that need an outside resource (a PostgreSQL
// server, a collector binary, a browser) say why they cannot run. Locally
// they skip with that reason; in CI (STEWARD_REQUIRE_ALL_TESTS=1, set by
// .ci/run) a missing resource fails the test instead, so a skip is never
// counted as a pass there.
package testenv

import (
	"os"
	"testing"
)

// Getenv returns the value of the environment variable name. When it is
// empty the test is skipped with how (locally) or failed (in CI).
func Getenv(t testing.TB, name, how string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, name+" is not set: "+how)
	}
	return v
}

// Missing skips (locally) or fails (in CI) the test with reason.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("STEWARD_REQUIRE_ALL_TESTS") != "" {
		t.Fatalf("required test resource missing (STEWARD_REQUIRE_ALL_TESTS is set): %s", reason)
	}
	t.Skip(reason)
}
