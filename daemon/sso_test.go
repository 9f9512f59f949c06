package daemon_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/daemon"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/internal/oidctest"
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

// `steward server` with the --oidc-* flags signs a person in at a real
// OpenID provider (confidential client, secret read from its file, the
// callback URL derived from the console's address) with the mapped role.
func TestServerSSO(t *testing.T) {
	bin, err := buildSteward()
	if err != nil {
		t.Fatal(err)
	}
	idp := oidctest.Start(t, oidctest.User{Subject: "sub-ann", Username: "ann", Password: "ann-idp-pass", Groups: []string{"sre"}})
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(secret, []byte(idp.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startProcess(t, bin, "sso", "--data-dir", t.TempDir(), "--oidc-issuer", idp.Issuer, "--oidc-client-id", idp.ClientID,
		"--oidc-client-secret-file", secret, "--oidc-role-map", "steward-admins=admin,sre=operator")
	idp.AllowRedirect(r.api + "/api/v1/sso/callback")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	resp, body, err := oidctest.SignIn(c, r.api+"/api/v1/sso/login", "ann", "ann-idp-pass")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %v %v %s", err, resp, body)
	}
	sr, err := c.Get(r.api + "/api/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Body.Close()
	var s stewardhttp.SessionResponse
	if err := json.NewDecoder(sr.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if !s.SSO || !s.Authenticated || s.Name != "ann" || s.Role != steward.RoleOperator {
		t.Fatalf("session: %+v", s)
	}
}
