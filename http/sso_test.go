package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/internal/oidctest"
)

var ssoUsers = []oidctest.User{
	{Subject: "sub-ann", Username: "ann", Password: "ann-idp-pass", Email: "ann@example.com", Groups: []string{"everyone", "sre"}},
	{Subject: "sub-eve", Username: "eve", Password: "eve-idp-pass", Groups: []string{"contractors"}},
	{Subject: "sub-max", Username: "max", Password: "max-idp-pass", Groups: []string{"steward-admins", "everyone"}},
}

// newSSOEnv is a server whose single sign-on uses a real OpenID provider.
func newSSOEnv(t *testing.T) (*env, *oidctest.Provider) {
	return newSSOEnvClock(t, nil)
}

// newSSOEnvClock is newSSOEnv with the server's clock (nil: time.Now).
func newSSOEnvClock(t *testing.T, clock func() time.Time) (*env, *oidctest.Provider) {
	idp := oidctest.Start(t, ssoUsers...)
	roles, err := stewardhttp.ParseRoleMap("steward-admins=admin, sre=operator,everyone=viewer")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *stewardhttp.Options) {
		o.AdminPassword = "admin pass"
		o.Clock = clock
		o.SSO = &stewardhttp.SSOOptions{Issuer: idp.Issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, RoleMap: roles}
	})
	idp.AllowRedirect(e.ts.URL + "/api/v1/sso/callback")
	return e, idp
}

// browser is an http.Client with cookies that follows redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// ssoLogin signs user in, starting at Steward's login route.
func ssoLogin(t *testing.T, c *http.Client, e *env, user, password string) (*http.Response, string) {
	t.Helper()
	return ssoLoginFrom(t, c, e, "/api/v1/sso/login", user, password)
}

// ssoLoginFrom is ssoLogin starting at path.
func ssoLoginFrom(t *testing.T, c *http.Client, e *env, path, user, password string) (*http.Response, string) {
	t.Helper()
	resp, body, err := oidctest.SignIn(c, e.ts.URL+path, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func session(t *testing.T, c *http.Client, e *env) stewardhttp.SessionResponse {
	t.Helper()
	resp, err := c.Get(e.ts.URL + "/api/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stewardhttp.SessionResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A person signs in at the provider and gets a Steward session with the
// highest role their groups map to; the login is audited under their name.
func TestSSOLogin(t *testing.T) {
	e, idp := newSSOEnv(t)
	c := browser(t)
	if s := session(t, c, e); !s.SSO || s.Authenticated {
		t.Fatalf("before login: %+v", s)
	}
	resp, body := ssoLogin(t, c, e, "ann", "ann-idp-pass")
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/api/v1/sso/callback" || !strings.Contains(body, `url=/`) {
		t.Fatalf("callback: %d %s %s", resp.StatusCode, resp.Request.URL, body)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("callback page headers: %v", resp.Header)
	}
	if got := idp.PKCEChallenges(); len(got) != 1 || got[0] != "S256" {
		t.Errorf("PKCE methods sent to the provider: %v", got)
	}
	s := session(t, c, e)
	if !s.Authenticated || s.Name != "ann" || s.Role != steward.RoleOperator || s.Method != "session" {
		t.Fatalf("session after SSO: %+v", s)
	}
	u, err := e.db.User(t.Context(), "ann")
	if err != nil || !u.SSO() || u.Subject != "sub-ann" || u.Issuer != idp.Issuer {
		t.Fatalf("stored user: %+v, %v", u, err)
	}
	list, err := e.cp.Audit(t.Context(), steward.AuditFilter{Action: steward.AuditLogin, Actor: "ann"})
	if err != nil || len(list) != 1 || list[0].Details["method"] != "sso" {
		t.Fatalf("audit of the login: %+v, %v", list, err)
	}
	// The highest mapped role wins; the console page asked for opens next.
	c2 := browser(t)
	_, body = ssoLoginFrom(t, c2, e, "/api/v1/sso/login?next="+url.QueryEscape("/configs?q=a&b=c"), "max", "max-idp-pass")
	if !strings.Contains(body, `url=/configs?q=a&amp;b=c"`) {
		t.Errorf("page after sign-in does not go to the asked page:\n%s", body)
	}
	if s := session(t, c2, e); s.Name != "max" || s.Role != steward.RoleAdmin {
		t.Fatalf("max: %+v", s)
	}
	// Another site is never the next page.
	for _, next := range []string{"https://evil.example", "//evil.example", "/\\evil.example", "/api/v1/logout"} {
		_, body := ssoLoginFrom(t, browser(t), e, "/api/v1/sso/login?next="+url.QueryEscape(next), "ann", "ann-idp-pass")
		if !strings.Contains(body, `url=/"`) {
			t.Errorf("next=%s: page after sign-in:\n%s", next, body)
		}
	}
}

// With a provider that puts the groups and the name only in userinfo,
// Steward asks the userinfo endpoint.
func TestSSOClaimsFromUserinfo(t *testing.T) {
	e, idp := newSSOEnv(t)
	idp.ClaimsInUserinfoOnly()
	c := browser(t)
	if resp, body := ssoLogin(t, c, e, "max", "max-idp-pass"); resp.StatusCode != 200 {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	if s := session(t, c, e); s.Name != "max" || s.Role != steward.RoleAdmin {
		t.Fatalf("session: %+v", s)
	}
}

// Someone whose groups map to no role gets a clear refusal and no session.
func TestSSOUnmappedGroupsRefused(t *testing.T) {
	e, _ := newSSOEnv(t)
	c := browser(t)
	resp, body := ssoLogin(t, c, e, "eve", "eve-idp-pass")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "none of the groups") || !strings.Contains(body, "contractors") {
		t.Fatalf("unmapped groups: %d %s", resp.StatusCode, body)
	}
	if s := session(t, c, e); s.Authenticated {
		t.Fatalf("session of a refused person: %+v", s)
	}
	if _, err := e.db.User(t.Context(), "eve"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("refused person stored: %v", err)
	}
}

// A callback whose state differs from the one this browser started with is
// refused, whatever code it carries.
func TestSSOTamperedStateRefused(t *testing.T) {
	e, _ := newSSOEnv(t)
	c := browser(t)
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/api/v1/sso/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, _ := ssoLogin(t, c, e, "ann", "ann-idp-pass")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("provider redirect: %d", resp.StatusCode)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || cb.Query().Get("code") == "" {
		t.Fatalf("callback URL %q: %v", resp.Header.Get("Location"), err)
	}
	q := cb.Query()
	q.Set("state", q.Get("state")+"x")
	cb.RawQuery = q.Encode()
	r, err := c.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "state does not match") {
		t.Fatalf("tampered state: %d %s", r.StatusCode, body)
	}
	if s := session(t, c, e); s.Authenticated {
		t.Fatalf("session after a tampered state: %+v", s)
	}
}

// A sign-in that takes longer than ten minutes at the provider is refused:
// the flow's expiry is checked by the server, not only by the cookie's
// Max-Age.
func TestSSOExpiredFlowRefused(t *testing.T) {
	clock := newFakeClock()
	e, _ := newSSOEnvClock(t, clock.Now)
	c := browser(t)
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/api/v1/sso/callback" {
			clock.Advance(11 * time.Minute)
		}
		return nil
	}
	resp, body := ssoLogin(t, c, e, "ann", "ann-idp-pass")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "state does not match or expired") {
		t.Fatalf("late callback: %d %s", resp.StatusCode, body)
	}
	if s := session(t, c, e); s.Authenticated {
		t.Fatalf("session after an expired sign-in: %+v", s)
	}
}

func TestParseRoleMap(t *testing.T) {
	m, err := stewardhttp.ParseRoleMap(" a=admin,b = viewer ,")
	if err != nil || m["a"] != steward.RoleAdmin || m["b"] != steward.RoleViewer || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"", "a", "=admin", "a=root"} {
		if _, err := stewardhttp.ParseRoleMap(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
