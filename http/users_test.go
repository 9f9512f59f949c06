package http_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// userSession is a logged-in user's cookies.
type userSession struct{ sess, csrf *http.Cookie }

// loginAs logs in name with password; the response and, on success, the
// cookies.
func (e *env) loginAs(name, password string) (response, userSession) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/login", stewardhttp.LoginRequest{Name: name, Password: password})
	var u userSession
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		switch c.Name {
		case stewardhttp.SessionCookie:
			u.sess = c
		case stewardhttp.CSRFCookie:
			u.csrf = c
		}
	}
	return r, u
}

// as makes a request with u's session (and CSRF header).
func (e *env) as(u userSession, method, path string, body any) response {
	e.t.Helper()
	return e.do(method, path, body, "Cookie", cookieHeader(u.sess, u.csrf), stewardhttp.CSRFHeader, u.csrf.Value)
}

const (
	annPassword = "ann's long passphrase"
	vicPassword = "vic's long passphrase"
)

// An admin creates users; each logs in with their own name and password,
// may do what their role allows, and is named in the audit log.
func TestUsersLoginAndRoles(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.AdminPassword = "admin pass" })
	_, admin := e.loginAs("", "admin pass")
	for _, u := range []stewardhttp.CreateUserRequest{
		{Name: "ann", Role: steward.RoleOperator, Password: annPassword},
		{Name: "vic", Role: steward.RoleViewer, Password: vicPassword},
	} {
		if r := e.as(admin, "POST", "/api/v1/users", u); r.status != 201 || strings.Contains(string(r.body), "argon2") {
			t.Fatalf("create %s: %d %s", u.Name, r.status, r.body)
		}
	}
	r, ann := e.loginAs("ann", annPassword)
	var st stewardhttp.SessionResponse
	r.decode(t, &st)
	if r.status != 200 || st.Name != "ann" || st.Role != steward.RoleOperator {
		t.Fatalf("ann logs in: %d %s", r.status, r.body)
	}
	if r := e.as(ann, "PUT", "/api/v1/configs/base", `{"files":{"":{"body":"x"}}}`); r.status != 201 {
		t.Fatalf("operator puts a config: %d %s", r.status, r.body)
	}
	if r := e.as(ann, "GET", "/api/v1/users", nil); r.status != 403 {
		t.Errorf("operator lists users: %d, want 403", r.status)
	}
	_, vic := e.loginAs("vic", vicPassword)
	if r := e.as(vic, "GET", "/api/v1/configs/base", nil); r.status != 200 {
		t.Errorf("viewer reads: %d", r.status)
	}
	if r := e.as(vic, "PUT", "/api/v1/configs/base", `{"files":{"":{"body":"y"}}}`); r.status != 403 {
		t.Errorf("viewer writes a config: %d, want 403", r.status)
	}
	// A new role applies to the open session at once.
	if r := e.as(admin, "PATCH", "/api/v1/users/vic", map[string]string{"role": "operator"}); r.status != 200 {
		t.Fatalf("set role: %d %s", r.status, r.body)
	}
	if r := e.as(vic, "PUT", "/api/v1/configs/base", `{"files":{"":{"body":"y"}}}`); r.status/100 != 2 {
		t.Errorf("vic as operator writes: %d %s", r.status, r.body)
	}

	var audit stewardhttp.AuditResponse
	e.as(admin, "GET", "/api/v1/audit", nil).decode(t, &audit)
	got := map[string]string{}
	for _, x := range audit.Entries { // newest first
		if _, seen := got[x.Action+" "+x.Target]; !seen {
			got[x.Action+" "+x.Target] = x.Actor
		}
		if strings.Contains(x.Actor, "session") {
			t.Errorf("audit actor %q names a session, not a person", x.Actor)
		}
		for k, v := range x.Details {
			if k == "password" || strings.Contains(strings.ToLower(k+" "+toString(v)), "argon2") {
				t.Errorf("audit entry %s carries a password: %v", x.Action, x.Details)
			}
		}
	}
	for k, actor := range map[string]string{
		"user.create ann":   "admin",
		"user.update vic":   "admin",
		"session.login ann": "ann",
		"session.login vic": "vic",
		"PUT /api/v1/configs/{name} /api/v1/configs/base": "vic",
	} {
		if got[k] != actor {
			t.Errorf("audit %q: actor %q, want %q (all: %v)", k, got[k], actor, got)
		}
	}
	var ver steward.Config
	e.as(admin, "GET", "/api/v1/configs/base", nil).decode(t, &ver)
	if ver.Author != "vic" {
		t.Errorf("config version author %q, want vic", ver.Author)
	}
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// Disabling, a new password and deleting end a user's sessions at once;
// a disabled user cannot log in.
func TestUserChangesEndSessions(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.AdminPassword = "admin pass" })
	_, admin := e.loginAs("admin", "admin pass")
	e.as(admin, "POST", "/api/v1/users", stewardhttp.CreateUserRequest{Name: "ann", Role: steward.RoleViewer, Password: annPassword})
	ok := func(u userSession) bool { return e.as(u, "GET", "/api/v1/agents", nil).status == 200 }

	_, ann := e.loginAs("ann", annPassword)
	if !ok(ann) {
		t.Fatal("ann's session does not work")
	}
	e.as(admin, "PATCH", "/api/v1/users/ann", map[string]bool{"disabled": true})
	if ok(ann) {
		t.Error("session of a disabled user still works")
	}
	if r, _ := e.loginAs("ann", annPassword); r.status != 401 {
		t.Errorf("disabled user logs in: %d", r.status)
	}
	e.as(admin, "PATCH", "/api/v1/users/ann", map[string]bool{"disabled": false})
	_, ann = e.loginAs("ann", annPassword)
	const newPassword = "a brand new passphrase"
	if r := e.as(admin, "PATCH", "/api/v1/users/ann", map[string]string{"password": newPassword}); r.status != 200 {
		t.Fatalf("set password: %d %s", r.status, r.body)
	}
	if ok(ann) {
		t.Error("session opened with the old password still works")
	}
	if r, _ := e.loginAs("ann", annPassword); r.status != 401 {
		t.Errorf("old password: %d", r.status)
	}
	_, ann = e.loginAs("ann", newPassword)
	if !ok(ann) {
		t.Fatal("new password does not log in")
	}
	if r := e.as(admin, "DELETE", "/api/v1/users/ann", nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if ok(ann) {
		t.Error("session of a deleted user still works")
	}
}

// Bad input is refused with a clear error and changes nothing.
func TestUserValidation(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.AdminPassword = "admin pass" })
	_, admin := e.loginAs("", "admin pass")
	for _, tc := range []struct {
		name   string
		req    stewardhttp.CreateUserRequest
		status int
		msg    string
	}{
		{"short password", stewardhttp.CreateUserRequest{Name: "ann", Role: "viewer", Password: "short"}, 400, "at least 12"},
		{"bad role", stewardhttp.CreateUserRequest{Name: "ann", Role: "root", Password: annPassword}, 400, "invalid role"},
		{"reserved name", stewardhttp.CreateUserRequest{Name: "admin", Role: "viewer", Password: annPassword}, 400, "reserved"},
		{"bad name", stewardhttp.CreateUserRequest{Name: "ann smith", Role: "viewer", Password: annPassword}, 400, "invalid user name"},
		{"created", stewardhttp.CreateUserRequest{Name: "ann", Role: "viewer", Password: annPassword}, 201, ""},
		{"duplicate", stewardhttp.CreateUserRequest{Name: "ann", Role: "admin", Password: vicPassword}, 409, "exists"},
	} {
		r := e.as(admin, "POST", "/api/v1/users", tc.req)
		if r.status != tc.status || tc.msg != "" && !strings.Contains(r.errorMessage(t), tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.body, tc.status, tc.msg)
		}
	}
	var list stewardhttp.UsersResponse
	e.as(admin, "GET", "/api/v1/users", nil).decode(t, &list)
	if len(list.Users) != 1 || list.Users[0].Role != steward.RoleViewer {
		t.Errorf("users after bad input: %+v", list.Users)
	}
	if r := e.as(admin, "PATCH", "/api/v1/users/nobody", map[string]string{"role": "viewer"}); r.status != 404 {
		t.Errorf("patch unknown user: %d", r.status)
	}
	// One answer for an unknown user and a wrong password.
	r1, _ := e.loginAs("nobody", annPassword)
	r2, _ := e.loginAs("ann", "wrong password!!")
	if r1.status != 401 || r2.status != 401 || r1.errorMessage(t) != r2.errorMessage(t) {
		t.Errorf("unknown user %d %s; wrong password %d %s", r1.status, r1.body, r2.status, r2.body)
	}
}

// An admin user cannot lock themselves out.
func TestAdminCannotDemoteSelf(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.AdminPassword = "admin pass" })
	_, admin := e.loginAs("", "admin pass")
	e.as(admin, "POST", "/api/v1/users", stewardhttp.CreateUserRequest{Name: "ada", Role: steward.RoleAdmin, Password: annPassword})
	_, ada := e.loginAs("ada", annPassword)
	for _, body := range []string{`{"role":"viewer"}`, `{"disabled":true}`} {
		if r := e.as(ada, "PATCH", "/api/v1/users/ada", body); r.status != 400 {
			t.Errorf("ada %s herself: %d %s", body, r.status, r.body)
		}
	}
	if r := e.as(ada, "DELETE", "/api/v1/users/ada", nil); r.status != 400 {
		t.Errorf("ada deletes herself: %d", r.status)
	}
}

// Failed logins slow down one account, not the others from the same
// client.
func TestLoginThrottlePerAccount(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) {
		o.AdminPassword, o.LoginThrottle = "admin pass", stewardhttp.LoginThrottle{Base: time.Hour, Max: time.Hour}
	})
	_, admin := e.loginAs("", "admin pass")
	e.as(admin, "POST", "/api/v1/users", stewardhttp.CreateUserRequest{Name: "ann", Role: steward.RoleViewer, Password: annPassword})
	e.as(admin, "POST", "/api/v1/users", stewardhttp.CreateUserRequest{Name: "vic", Role: steward.RoleViewer, Password: vicPassword})
	for range 4 {
		e.loginAs("ann", "wrong password!!")
	}
	if r, _ := e.loginAs("ann", annPassword); r.status != 429 {
		t.Errorf("ann after 4 failures: %d, want 429", r.status)
	}
	if r, _ := e.loginAs("vic", vicPassword); r.status != 200 {
		t.Errorf("vic from the same client: %d, want 200", r.status)
	}
}
