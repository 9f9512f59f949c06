package http_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// login logs in with password and returns the session and CSRF cookies.
func (e *env) login(password string) (response, *http.Cookie, *http.Cookie) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/login", map[string]string{"password": password})
	var sess, csrf *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		switch c.Name {
		case stewardhttp.SessionCookie:
			sess = c
		case stewardhttp.CSRFCookie:
			csrf = c
		}
	}
	return r, sess, csrf
}

func cookieHeader(cs ...*http.Cookie) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

func TestAuth(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) {
		o.AdminPassword = "correct horse"
		o.APITokens = []string{"tok-one", "tok-two"}
	})

	r := e.do("GET", "/api/v1/agents", nil)
	if r.status != 401 || r.errorCode(t) != steward.EUNAUTHORIZED || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no credentials: %d %s", r.status, r.body)
	}
	for _, h := range []string{"Bearer wrong", "Basic dXNlcjpwYXNz", "Bearer ", "tok-one"} {
		if r := e.do("GET", "/api/v1/agents", nil, "Authorization", h); r.status != 401 {
			t.Errorf("Authorization %q: %d", h, r.status)
		}
	}
	if r := e.do("GET", "/api/v1/agents", nil, "Authorization", "Bearer tok-two"); r.status != 200 {
		t.Errorf("valid token: %d %s", r.status, r.body)
	}
	// Tokens need no CSRF header, and the author is the token's name.
	r = e.do("PUT", "/api/v1/configs/c", `{"files":{"":{"body":"x"}}}`, "Authorization", "Bearer tok-two")
	var c steward.Config
	r.decode(t, &c)
	if r.status != 201 || c.Author != "token-2" {
		t.Errorf("PUT with token: %d %s", r.status, r.body)
	}

	// Public routes.
	for _, p := range []string{"/healthz", "/readyz", "/api/v1/openapi.yaml", "/api/v1/session"} {
		if r := e.do("GET", p, nil); r.status != 200 {
			t.Errorf("GET %s without credentials: %d", p, r.status)
		}
	}
	var sr stewardhttp.SessionResponse
	e.do("GET", "/api/v1/session", nil).decode(t, &sr)
	if !sr.AuthEnabled || sr.Authenticated {
		t.Errorf("anonymous session: %+v", sr)
	}

	// Login.
	if r, sess, _ := e.login("wrong"); r.status != 401 || sess != nil {
		t.Errorf("wrong password: %d, cookie %v", r.status, sess)
	}
	if r := e.do("POST", "/api/v1/login", `{"password":"correct horse","user":"x"}`); r.status != 400 {
		t.Errorf("login with unknown field: %d", r.status)
	}
	r, sess, csrf := e.login("correct horse")
	if r.status != 200 || sess == nil || csrf == nil {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.MaxAge <= 0 || csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie attributes: session %+v csrf %+v", sess, csrf)
	}
	r.decode(t, &sr)
	if sr.CSRFToken != csrf.Value || !sr.Authenticated || sr.Name != "admin" {
		t.Errorf("login response %+v", sr)
	}
	cookies := cookieHeader(sess, csrf)
	if r := e.do("GET", "/api/v1/agents", nil, "Cookie", cookies); r.status != 200 {
		t.Errorf("GET with session: %d %s", r.status, r.body)
	}
	e.do("GET", "/api/v1/session", nil, "Cookie", cookies).decode(t, &sr)
	if !sr.Authenticated || sr.Method != "session" || sr.ExpiresAt.IsZero() {
		t.Errorf("session: %+v", sr)
	}

	// CSRF: a state-changing request with the cookie needs the header.
	body := `{"files":{"":{"body":"y"}}}`
	if r := e.do("PUT", "/api/v1/configs/c", body, "Cookie", cookies); r.status != 403 || r.errorCode(t) != steward.EFORBIDDEN {
		t.Errorf("PUT without CSRF header: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/v1/configs/c", body, "Cookie", cookies, stewardhttp.CSRFHeader, "guess"); r.status != 403 {
		t.Errorf("PUT with a wrong CSRF header: %d", r.status)
	}
	// Header equal to a forged cookie, but not to the token in the session.
	forged := cookieHeader(sess, &http.Cookie{Name: stewardhttp.CSRFCookie, Value: "forged"})
	if r := e.do("PUT", "/api/v1/configs/c", body, "Cookie", forged, stewardhttp.CSRFHeader, "forged"); r.status != 403 {
		t.Errorf("PUT with a forged CSRF cookie: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/configs/c", nil); r.status != 401 {
		t.Errorf("sanity: %d", r.status)
	}
	r = e.do("PUT", "/api/v1/configs/c", body, "Cookie", cookies, stewardhttp.CSRFHeader, csrf.Value)
	r.decode(t, &c)
	if r.status != 201 || c.Author != "admin" || c.Version != 2 {
		t.Errorf("PUT with CSRF header: %d %s", r.status, r.body)
	}

	// Tampered or foreign sessions are refused.
	tampered := *sess
	tampered.Value = strings.Replace(sess.Value, "YWRta", "YWRtb", 1)
	if tampered.Value == sess.Value {
		tampered.Value = "x" + sess.Value
	}
	if r := e.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(&tampered)); r.status != 401 {
		t.Errorf("tampered session: %d", r.status)
	}
	other := newEnv(t, func(o *stewardhttp.Options) { o.AdminPassword = "correct horse" })
	if r := other.do("GET", "/api/v1/agents", nil, "Cookie", cookies); r.status != 401 {
		t.Errorf("session of another server: %d", r.status)
	}
	// A bad Authorization header does not fall back to the cookie.
	if r := e.do("GET", "/api/v1/agents", nil, "Cookie", cookies, "Authorization", "Bearer nope"); r.status != 401 {
		t.Errorf("bad token with a good cookie: %d", r.status)
	}

	// Logout clears both cookies.
	r = e.do("POST", "/api/v1/logout", nil, "Cookie", cookies)
	cleared := 0
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if (c.Name == stewardhttp.SessionCookie || c.Name == stewardhttp.CSRFCookie) && c.MaxAge < 0 {
			cleared++
		}
	}
	if r.status != 204 || cleared != 2 {
		t.Errorf("logout: %d, %d cookies cleared", r.status, cleared)
	}
}

// TestBrowserFlow uses a cookie jar as a browser would.
func TestBrowserFlow(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.AdminPassword = "pw" })
	jar, _ := cookiejar.New(nil)
	hc := e.ts.Client()
	hc.Jar = jar
	resp, err := hc.Post(e.ts.URL+"/api/v1/login", "application/json", strings.NewReader(`{"password":"pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(e.ts.URL)
	var csrf string
	for _, c := range jar.Cookies(u) {
		if c.Name == stewardhttp.CSRFCookie {
			csrf = c.Value
		}
	}
	req, _ := http.NewRequest("PUT", e.ts.URL+"/api/v1/configs/ui", strings.NewReader(`{"files":{"":{"body":"z"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(stewardhttp.CSRFHeader, csrf)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("PUT from the browser: %d", resp.StatusCode)
	}
}
