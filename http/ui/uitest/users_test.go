package uitest

import (
	"strings"
	"testing"
)

// loginAs signs in with a user name and password on the sign-in form.
func loginAs(t *testing.T, p *page, name, password string) {
	t.Helper()
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form")
	p.typeInto(`[data-testid="login-name"]`, name)
	p.typeInto(`[data-testid="login-password"]`, password)
	p.press("Enter")
	p.waitFor(`!document.querySelector('[data-testid="login-form"]')`, "the sign-in form to go away")
	p.waitFor(`document.querySelector('[data-testid="whoami"]')?.innerText === `+jsString(name), "the console to name %s", name)
}

func signOut(t *testing.T, p *page) {
	t.Helper()
	p.click(`[data-testid="logout"]`)
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form after signing out")
}

// createUser fills the New user dialog on the Users page.
func createUser(t *testing.T, p *page, name, role, password string) {
	t.Helper()
	p.click(`[data-testid="user-new"]`)
	p.typeInto(`[data-testid="user-name"]`, name)
	p.setValue(`[data-testid="user-dialog"] [data-testid="user-role"]`, role)
	p.typeInto(`[data-testid="user-password"]`, password)
	p.typeInto(`[data-testid="user-password-again"]`, password)
	p.click(`[data-testid="user-dialog-submit"]`)
	p.waitFor(sel(`[data-testid="user-row"][data-name="`+name+`"][data-role="`+role+`"]`), "the row of %s", name)
}

// submitNewConfig submits the New configuration dialog for name.
func submitNewConfig(t *testing.T, p *page, name string) {
	t.Helper()
	p.goTo("/configs")
	p.click(`[data-testid="config-new"]`)
	p.typeInto(`[data-testid="new-config-name"]`, name)
	p.setValue(`[data-testid="new-config-body"]`, "receivers: {}\n")
	p.click(`[data-testid="new-config-dialog-submit"]`)
}

// TestConsoleUsers: an admin creates two users on the Users page; each
// signs in under their own name; the viewer is refused an operator's
// change, the operator makes it, and the audit log names the operator.
func TestConsoleUsers(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	p := b.newPage(t, s.base, "light")
	p.goTo("/admin/users")
	login(t, p)
	p.waitFor(`location.pathname === '/admin/users'`, "the Users page")
	p.waitFor(sel(`[data-testid="admin-tab-users"][aria-current="page"]`), "the Users tab")
	const annPW, vicPW = "ann's long passphrase", "vic's long passphrase"
	createUser(t, p, "ann", "operator", annPW)
	createUser(t, p, "vic", "viewer", vicPW)
	// A too short password is refused in the dialog and creates nothing.
	p.click(`[data-testid="user-new"]`)
	p.typeInto(`[data-testid="user-name"]`, "shorty")
	p.typeInto(`[data-testid="user-password"]`, "short")
	p.typeInto(`[data-testid="user-password-again"]`, "short")
	p.click(`[data-testid="user-dialog-submit"]`)
	p.waitFor(`!document.querySelector('[data-testid="user-dialog-error"]').hidden`, "the short-password error")
	p.click(`[data-testid="user-dialog-cancel"]`)
	p.screenshot("users")
	signOut(t, p)

	// The viewer signs in under their name; the server refuses their
	// attempt to create a configuration, and the dialog says why.
	loginAs(t, p, "vic", vicPW)
	submitNewConfig(t, p, "by-vic")
	p.waitFor(`!document.querySelector('[data-testid="new-config-dialog-error"]').hidden`, "the refusal in the dialog")
	if got := p.text(`[data-testid="new-config-dialog-error"]`); !strings.Contains(got, "operator role") {
		t.Errorf("viewer's refusal says %q", got)
	}
	p.click(`[data-testid="new-config-dialog-cancel"]`)
	// Nor may a viewer open the Users page's data.
	p.goTo("/admin/users")
	p.waitFor(sel(`[data-testid="load-error"]`), "the Users page refusing a viewer")
	signOut(t, p)

	// The operator makes the change.
	loginAs(t, p, "ann", annPW)
	submitNewConfig(t, p, "by-ann")
	p.waitFor(`location.pathname === '/configs/by-ann'`, "the new configuration's page")
	signOut(t, p)

	// The audit log names her.
	login(t, p)
	p.goTo("/admin/audit?actor=ann")
	p.waitFor(sel(`[data-testid="audit-row"][data-actor="ann"][data-action="PUT /api/v1/configs/{name}"]`), "ann's change in the audit log")
	if got := p.text(`[data-testid="audit-rows"]`); !strings.Contains(got, "/api/v1/configs/by-ann") {
		t.Errorf("audit rows of ann:\n%s", got)
	}
	p.screenshot("audit-by-person")
	// Nothing vic tried was recorded as a change.
	p.goTo("/admin/audit?actor=vic")
	p.waitFor(sel(`[data-testid="audit-row"][data-actor="vic"]`), "vic's login")
	if got := p.text(`[data-testid="audit-rows"]`); strings.Contains(got, "by-vic") {
		t.Errorf("vic's refused change is in the audit log:\n%s", got)
	}
	noJSErrors(t, p)
}
