package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

func newCredEnv(t *testing.T) *env {
	return newEnv(t, func(o *stewardhttp.Options) {
		o.AdminPassword = "correct horse"
		o.APITokens = []string{"static-admin"}
	})
}

func (e *env) createToken(t *testing.T, name string, role steward.Role, auth string) string {
	t.Helper()
	r := e.do("POST", "/api/v1/tokens", map[string]string{"name": name, "role": string(role)}, "Authorization", "Bearer "+auth)
	if r.status != http.StatusCreated {
		t.Fatalf("create token %s: %d %s", name, r.status, r.body)
	}
	var out stewardhttp.CreatedTokenResponse
	r.decode(t, &out)
	if out.Secret == "" || out.Token.Role != role {
		t.Fatalf("created token: %+v", out)
	}
	if strings.Contains(string(r.body), `"hash"`) {
		t.Fatal("the token's hash is exposed")
	}
	return out.Secret
}

// Roles are enforced per route: viewer reads, operator changes the fleet,
// operators also write connection settings, admin manages credentials.
func TestRoles(t *testing.T) {
	e := newCredEnv(t)
	viewer := e.createToken(t, "dash", steward.RoleViewer, "static-admin")
	operator := e.createToken(t, "ci", steward.RoleOperator, "static-admin")
	admin := e.createToken(t, "ops", steward.RoleAdmin, "static-admin")

	config := `{"files":{"":{"body":"receivers: {}"}}}`
	settings := `{"selector":"env=prod","own_metrics":{"endpoint":"http://127.0.0.1:4318/v1/metrics"}}`
	cases := []struct {
		method, path string
		body         any
		want         map[string]int // secret -> status
	}{
		{"GET", "/api/v1/agents", nil, map[string]int{viewer: 200, operator: 200, admin: 200}},
		{"GET", "/api/v1/certificates", nil, map[string]int{viewer: 200, operator: 200, admin: 200}},
		{"GET", "/api/v1/audit", nil, map[string]int{viewer: 200, operator: 200, admin: 200}},
		{"PUT", "/api/v1/configs/base", config, map[string]int{viewer: 403, operator: 200, admin: 200}},
		{"DELETE", "/api/v1/agents/01a22add-b230-7f64-b5a4-b1bb2cada1b9", nil, map[string]int{viewer: 403, operator: 404, admin: 404}},
		{"GET", "/api/v1/tokens", nil, map[string]int{viewer: 403, operator: 403, admin: 200}},
		{"POST", "/api/v1/tokens", map[string]string{"name": "x", "role": "viewer"}, map[string]int{viewer: 403, operator: 403}},
		{"GET", "/api/v1/enrollment-tokens", nil, map[string]int{viewer: 403, operator: 403, admin: 200}},
		{"POST", "/api/v1/enrollment-tokens", map[string]any{"name": "fleet", "max_uses": 5}, map[string]int{viewer: 403, operator: 403, admin: 201}},
		{"PUT", "/api/v1/connection-settings/prod", settings, map[string]int{viewer: 403, operator: 200, admin: 200}},
		{"GET", "/api/v1/connection-settings/prod", nil, map[string]int{viewer: 200, operator: 200, admin: 200}},
		{"POST", "/api/v1/certificates/abcd/revoke", nil, map[string]int{viewer: 403, operator: 403, admin: 404}},
	}
	names := map[string]string{viewer: "viewer", operator: "operator", admin: "admin"}
	for _, c := range cases {
		for secret, want := range c.want {
			r := e.do(c.method, c.path, c.body, "Authorization", "Bearer "+secret)
			if r.status != want && !(want == 200 && r.status == 201) { // first PUT creates
				t.Errorf("%s %s as %s: %d, want %d (%s)", c.method, c.path, names[secret], r.status, want, r.body)
			}
			if want == 403 && r.errorCode(t) != steward.EFORBIDDEN {
				t.Errorf("%s %s as %s: code %s", c.method, c.path, names[secret], r.errorCode(t))
			}
		}
	}
	// The session endpoint tells each caller its role (the console hides
	// the controls it may not use).
	for secret, name := range names {
		var sr stewardhttp.SessionResponse
		e.do("GET", "/api/v1/session", nil, "Authorization", "Bearer "+secret).decode(t, &sr)
		if !sr.Authenticated || string(sr.Role) != name {
			t.Errorf("session of the %s token: %+v", name, sr)
		}
	}
	// Wrong and deleted tokens are refused.
	if r := e.do("GET", "/api/v1/agents", nil, "Authorization", "Bearer stw_wrong"); r.status != 401 {
		t.Errorf("wrong token: %d", r.status)
	}
	var list stewardhttp.TokensResponse
	e.do("GET", "/api/v1/tokens", nil, "Authorization", "Bearer "+admin).decode(t, &list)
	if len(list.Tokens) != 3 {
		t.Fatalf("tokens: %+v", list.Tokens)
	}
	for _, tok := range list.Tokens {
		if tok.Name == "ci" {
			if r := e.do("DELETE", "/api/v1/tokens/"+tok.ID, nil, "Authorization", "Bearer "+admin); r.status != 204 {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}
		}
	}
	if r := e.do("GET", "/api/v1/agents", nil, "Authorization", "Bearer "+operator); r.status != 401 {
		t.Errorf("deleted token: %d", r.status)
	}
	// The password session is admin.
	_, sess, csrf := e.login("correct horse")
	r := e.do("GET", "/api/v1/tokens", nil, "Cookie", cookieHeader(sess, csrf))
	if r.status != 200 {
		t.Errorf("admin session: %d", r.status)
	}
	r = e.do("POST", "/api/v1/tokens", map[string]string{"name": "from-ui", "role": "operator"},
		"Cookie", cookieHeader(sess, csrf), stewardhttp.CSRFHeader, csrf.Value)
	if r.status != 201 {
		t.Errorf("admin session creates a token: %d %s", r.status, r.body)
	}
}

// Every state-changing call is audited with its actor; failed and
// read-only calls are not.
func TestAuditLog(t *testing.T) {
	e := newCredEnv(t)
	operator := e.createToken(t, "ci", steward.RoleOperator, "static-admin")
	if r := e.do("PUT", "/api/v1/configs/base", `{"files":{"":{"body":"x"}}}`, "Authorization", "Bearer "+operator); r.status != 201 {
		t.Fatalf("put config: %d %s", r.status, r.body)
	}
	e.do("PUT", "/api/v1/configs/bad name", `{}`, "Authorization", "Bearer "+operator) // fails: not audited
	e.do("GET", "/api/v1/configs", nil, "Authorization", "Bearer "+operator)           // read: not audited
	_, sess, csrf := e.login("correct horse")
	if r := e.do("PUT", "/api/v1/connection-settings/all", `{"heartbeat_interval_seconds": 10}`,
		"Cookie", cookieHeader(sess, csrf), stewardhttp.CSRFHeader, csrf.Value); r.status != 200 {
		t.Fatalf("put connection settings: %d %s", r.status, r.body)
	}

	var out stewardhttp.AuditResponse
	r := e.do("GET", "/api/v1/audit", nil, "Authorization", "Bearer static-admin")
	r.decode(t, &out)
	got := map[string]string{}
	for _, x := range out.Entries {
		got[x.Action+" "+x.Target] = x.Actor
	}
	want := map[string]string{
		"token.create ci": "token-1",
		"PUT /api/v1/configs/{name} /api/v1/configs/base": "ci",
		"connection_settings.put all":                     "admin",
		"session.login admin":                             "admin",
	}
	for k, actor := range want {
		if got[k] != actor {
			t.Errorf("audit %q: actor %q, want %q (all: %v)", k, got[k], actor, got)
		}
	}
	if len(out.Entries) != len(want) {
		b, _ := json.Marshal(out.Entries)
		t.Errorf("%d entries, want %d: %s", len(out.Entries), len(want), b)
	}
	// Filters.
	e.do("GET", "/api/v1/audit?actor=ci", nil, "Authorization", "Bearer static-admin").decode(t, &out)
	if len(out.Entries) != 1 || out.Entries[0].Actor != "ci" {
		t.Errorf("actor filter: %+v", out.Entries)
	}
	e.do("GET", "/api/v1/audit?target=base", nil, "Authorization", "Bearer static-admin").decode(t, &out)
	if len(out.Entries) != 1 || out.Entries[0].Target != "/api/v1/configs/base" {
		t.Errorf("target filter: %+v", out.Entries)
	}
	if r := e.do("GET", "/api/v1/audit?since=yesterday", nil, "Authorization", "Bearer static-admin"); r.status != 400 {
		t.Errorf("bad since: %d", r.status)
	}
}

// hangUp is a client that goes away as soon as the response starts: its
// request's context ends after the handler did its work.
type hangUp struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

func (h *hangUp) WriteHeader(code int) { h.ResponseWriter.WriteHeader(code); h.cancel() }

// A change done is audited even when its client hangs up before the
// audit entry is stored (a client timing out on a slow change).
func TestChangeAuditedAfterClientHangsUp(t *testing.T) {
	e := newCredEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "PUT", "/api/v1/configs/base", strings.NewReader(`{"files":{"":{"body":"x"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer static-admin")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(&hangUp{ResponseWriter: rec, cancel: cancel}, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("put config: %d %s", rec.Code, rec.Body)
	}
	var out stewardhttp.AuditResponse
	e.do("GET", "/api/v1/audit?target=base", nil, "Authorization", "Bearer static-admin").decode(t, &out)
	if len(out.Entries) != 1 || out.Entries[0].Action != "PUT /api/v1/configs/{name}" {
		t.Fatalf("audit entries for the change: %+v; want the PUT", out.Entries)
	}
}
