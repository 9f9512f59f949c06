package daemon_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/daemon"
)

// Incomplete or wrong --oidc-* flags stop the server before it starts,
// saying which flag is wrong.
func TestServerRefusesBadOIDCFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--oidc-role-map", "a=admin"}, "need --oidc-issuer"},
		{[]string{"--oidc-issuer", "https://idp.example.com"}, "needs --oidc-client-id and --oidc-role-map"},
		{[]string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "steward", "--oidc-role-map", "a=root"}, "--oidc-role-map"},
		{[]string{"--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "steward", "--oidc-role-map", "a=admin",
			"--oidc-client-secret-file", filepath.Join(dir, "missing")}, "--oidc-client-secret-file"},
	} {
		cmd := daemon.Command()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--opamp-addr", "127.0.0.1:0"}, tc.args...))
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}
