package uitest

import (
	"net"
	"strings"
	"testing"

	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/internal/oidctest"
)

// TestConsoleSSO: with single sign-on configured the sign-in page offers
// "Sign in with SSO"; a person signs in at a real OpenID provider (its own
// login form) and lands in the console under their name with the role
// their groups map to, on the page they asked for. Someone in no mapped group is told why and gets no
// session.
func TestConsoleSSO(t *testing.T) {
	b := startBrowser(t)
	idp := oidctest.Start(t,
		oidctest.User{Subject: "sub-ann", Username: "ann.sre", Password: "ann-idp-pass", Groups: []string{"everyone", "sre"}},
		oidctest.User{Subject: "sub-eve", Username: "eve", Password: "eve-idp-pass", Groups: []string{"contractors"}})
	roles, err := stewardhttp.ParseRoleMap("steward-admins=admin,sre=operator,everyone=viewer")
	if err != nil {
		t.Fatal(err)
	}
	s := startStackWith(t, func(o *stewardhttp.Options, ln net.Listener) {
		o.SSO = &stewardhttp.SSOOptions{Issuer: idp.Issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, RoleMap: roles}
		idp.AllowRedirect("http://" + ln.Addr().String() + "/api/v1/sso/callback")
	})
	p := b.newPage(t, s.base, "light")
	// A deep link: the console opens it after the sign-in.
	p.goTo("/configs")
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form")
	p.screenshot("login-sso")
	p.click(`[data-testid="login-sso"]`)
	signInAtProvider(t, p, idp, "ann.sre", "ann-idp-pass")
	p.waitFor(`document.querySelector('[data-testid="whoami"]')?.innerText === "ann.sre"`, "the console to name ann.sre")
	var title string
	p.js(`document.querySelector('[data-testid="whoami"]').title`, &title)
	if !strings.Contains(title, "(operator)") {
		t.Errorf("whoami title %q, want the operator role", title)
	}
	// An operator may create configurations: the console offers it.
	p.waitFor(`location.pathname === '/configs'`, "the page asked for before signing in")
	p.waitFor(sel(`[data-testid="config-new"]`), "the New configuration button of an operator")
	noJSErrors(t, p)
	signOut(t, p)

	// Eve's groups map to no role.
	p.click(`[data-testid="login-sso"]`)
	signInAtProvider(t, p, idp, "eve", "eve-idp-pass")
	p.waitFor(sel(`#sso-error`), "the refusal page")
	if got := p.text(`#sso-error`); !strings.Contains(got, "none of the groups") || !strings.Contains(got, "contractors") {
		t.Errorf("refusal says %q", got)
	}
	p.goTo("/")
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form: eve has no session")
}

// signInAtProvider fills the test provider's login form.
func signInAtProvider(t *testing.T, p *page, idp *oidctest.Provider, user, password string) {
	t.Helper()
	p.waitFor(`location.origin === `+jsString(idp.Issuer)+` && !!document.querySelector('#username')`, "the provider's login form")
	p.typeInto(`#username`, user)
	p.typeInto(`#password`, password)
	p.click(`#submit`)
}
