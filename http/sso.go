package http

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stewardhq/steward"
	"golang.org/x/oauth2"
)

// SSOOptions configures OpenID Connect single sign-on (authorization code
// flow with PKCE). People who sign in are created or updated as Steward
// users with the role their groups map to.
type SSOOptions struct {
	// Issuer is the provider's issuer URL (its discovery document is
	// read at the first login, and again after a failure).
	Issuer       string
	ClientID     string
	ClientSecret string // empty for a public client
	// RedirectURL is the callback registered at the provider; default:
	// the origin of the login request + /api/v1/sso/callback.
	RedirectURL string
	// RolesClaim is the ID token claim holding the groups; default "groups".
	RolesClaim string
	// RoleMap maps a group to a role; the highest role of a person's
	// groups wins, and someone in no mapped group is refused.
	RoleMap map[string]steward.Role
	// HTTPClient talks to the provider (default http.DefaultClient).
	HTTPClient *http.Client
}

// ParseRoleMap reads "group=role,group=role" (--oidc-role-map).
func ParseRoleMap(s string) (map[string]steward.Role, error) {
	m := map[string]steward.Role{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		group, role, ok := strings.Cut(part, "=")
		group = strings.TrimSpace(group)
		if !ok || group == "" {
			return nil, steward.Errorf(steward.EINVALID, "invalid role mapping %q: use group=role", part)
		}
		r, err := steward.ParseRole(strings.TrimSpace(role))
		if err != nil {
			return nil, err
		}
		m[group] = r
	}
	if len(m) == 0 {
		return nil, steward.Errorf(steward.EINVALID, "empty role map: map at least one group, e.g. steward-admins=admin")
	}
	return m, nil
}

// ssoFlowTTL is how long a sign-in at the provider may take.
const ssoFlowTTL = 10 * time.Minute

// ssoCookie carries state, nonce and PKCE verifier from login to callback,
// signed, HttpOnly and only sent to the callback path.
const ssoCookie = "steward_sso"

type ssoFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Redirect string `json:"r"`
	Next     string `json:"x"` // the console page to open after
	Expires  int64  `json:"e"`
}

type sso struct {
	opts   SSOOptions
	key    []byte // signs ssoFlow cookies
	mu     sync.Mutex
	prov   *oidc.Provider // discovered at first use
	client *http.Client
}

func newSSO(o *SSOOptions) *sso {
	if o == nil || o.Issuer == "" {
		return nil
	}
	s := &sso{opts: *o, client: o.HTTPClient}
	if s.client == nil {
		s.client = http.DefaultClient
	}
	if s.opts.RolesClaim == "" {
		s.opts.RolesClaim = "groups"
	}
	// With a client secret every replica derives the same key, so a
	// login may end on another replica; else the key is this process's.
	if o.ClientSecret != "" {
		k := sha256.Sum256([]byte("steward sso flow v1\x00" + o.ClientSecret))
		s.key = k[:]
	} else {
		s.key = make([]byte, 32)
		_, _ = rand.Read(s.key)
	}
	return s
}

func (s *sso) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, s.client)
}

// provider returns the discovered provider, discovering it if needed.
func (s *sso) provider(ctx context.Context) (*oidc.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prov != nil {
		return s.prov, nil
	}
	p, err := oidc.NewProvider(s.ctx(ctx), s.opts.Issuer)
	if err != nil {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "OpenID provider %s: %v", s.opts.Issuer, err)
	}
	s.prov = p
	return p, nil
}

func (s *sso) config(p *oidc.Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: s.opts.ClientID, ClientSecret: s.opts.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
}

func (s *sso) sign(f ssoFlow) string {
	b, _ := json.Marshal(f)
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sso) open(v string, now time.Time) (ssoFlow, bool) {
	var f ssoFlow
	body, mac, ok := strings.Cut(v, ".")
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	sum, err2 := base64.RawURLEncoding.DecodeString(mac)
	if !ok || err1 != nil || err2 != nil {
		return f, false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	if !hmac.Equal(sum, m.Sum(nil)) || json.Unmarshal(b, &f) != nil || now.Unix() > f.Expires {
		return f, false
	}
	return f, true
}

// claims returns the ID token's claims; when it lacks the roles claim or
// a name (providers that keep profile claims for userinfo), those of the
// userinfo endpoint are added, which must name the same subject.
func (s *sso) claims(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, id *oidc.IDToken) (map[string]any, error) {
	var claims map[string]any
	if err := id.Claims(&claims); err != nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "invalid ID token claims: %v", err)
	}
	_, hasRoles := claims[s.opts.RolesClaim]
	if hasRoles && userName(claims, "") != "" || p.UserInfoEndpoint() == "" {
		return claims, nil
	}
	info, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "userinfo of the OpenID provider: %v", err)
	}
	if info.Subject != id.Subject {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "userinfo names subject %q, the ID token %q", info.Subject, id.Subject)
	}
	var extra map[string]any
	if err := info.Claims(&extra); err != nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "invalid userinfo claims: %v", err)
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return claims, nil
}

// role maps the roles claim (a list or one string) to the highest role.
func (s *sso) role(claims map[string]any) (steward.Role, []string) {
	var groups []string
	switch v := claims[s.opts.RolesClaim].(type) {
	case string:
		groups = []string{v}
	case []any:
		for _, g := range v {
			if g, ok := g.(string); ok {
				groups = append(groups, g)
			}
		}
	}
	var best steward.Role
	for _, g := range groups {
		if r, ok := s.opts.RoleMap[g]; ok && (best == "" || r.Allows(best)) {
			best = r
		}
	}
	return best, groups
}

// userName picks the Steward name of a person: preferred_username, else
// email, else the subject.
func userName(claims map[string]any, subject string) string {
	for _, k := range []string{"preferred_username", "email"} {
		if v, _ := claims[k].(string); v != "" && steward.ValidateUserName(v) == nil {
			return v
		}
	}
	return subject
}

// consolePath returns next when it is a path of this console ("/..."),
// else "/": the page to open after signing in, never another site.
func consolePath(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\x00\r\n\t") || strings.HasPrefix(next, "/api/") {
		return "/"
	}
	return next
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) registerSSORoutes() {
	s.handle("GET /api/v1/sso/login", s.handleSSOLogin, public)
	s.handle("GET /api/v1/sso/callback", s.handleSSOCallback, public)
}

// redirectURL is the callback URL: configured, or derived from the request.
func (s *Server) ssoRedirectURL(r *http.Request) string {
	if s.sso.opts.RedirectURL != "" {
		return s.sso.opts.RedirectURL
	}
	scheme := "http"
	if s.auth.secureCookies(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/api/v1/sso/callback"
}

// handleSSOLogin starts a sign-in: it keeps state, nonce and the PKCE
// verifier in a signed cookie and redirects to the provider.
func (s *Server) handleSSOLogin(w http.ResponseWriter, r *http.Request) error {
	if s.sso == nil {
		return steward.Errorf(steward.ENOTFOUND, "single sign-on is not configured (--oidc-issuer)")
	}
	p, err := s.sso.provider(r.Context())
	if err != nil {
		return err
	}
	f := ssoFlow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Redirect: s.ssoRedirectURL(r), Next: consolePath(r.URL.Query().Get("next")), Expires: s.auth.now().Add(ssoFlowTTL).Unix()}
	// Lax: the provider's redirect back is a cross-site top-level GET.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: s.sso.sign(f), Path: "/api/v1/sso/",
		MaxAge: int(ssoFlowTTL / time.Second), HttpOnly: true, Secure: s.auth.secureCookies(r), SameSite: http.SameSiteLaxMode})
	u := s.sso.config(p, f.Redirect).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
	return nil
}

// handleSSOCallback ends a sign-in: it checks the state, exchanges the code
// (with the PKCE verifier), verifies the ID token (signature, issuer,
// audience, expiry, nonce), maps the groups to a role, creates or updates
// the user and opens a session like a password login.
func (s *Server) handleSSOCallback(w http.ResponseWriter, r *http.Request) error {
	if s.sso == nil {
		return steward.Errorf(steward.ENOTFOUND, "single sign-on is not configured (--oidc-issuer)")
	}
	secure := s.auth.secureCookies(r)
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/api/v1/sso/", MaxAge: -1, HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteLaxMode})
	next, err := s.ssoSignIn(w, r)
	if err != nil {
		s.log.Warn("http: single sign-on refused", "err", err, "client", s.auth.proxies.clientAddr(r).String())
		return ssoPage(w, ErrorStatusCode(steward.ErrorCode(err)), "Sign-in refused", steward.ErrorMessage(err), "/")
	}
	// The session cookie is SameSite=Strict: a page of our own moves on to
	// the console, so the browser sends it (a redirect would still count
	// as part of the provider's cross-site navigation).
	return ssoPage(w, http.StatusOK, "Signed in", "", next)
}

func (s *Server) ssoSignIn(w http.ResponseWriter, r *http.Request) (string, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "the OpenID provider refused the sign-in: %s %s", e, q.Get("error_description"))
	}
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "no sign-in in progress (or it took longer than %s): start again", ssoFlowTTL)
	}
	f, ok := s.sso.open(c.Value, s.auth.now())
	if !ok || subtle.ConstantTimeCompare([]byte(f.State), []byte(q.Get("state"))) != 1 {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "the sign-in state does not match or expired: start again")
	}
	if s.auth.users == nil {
		return "", steward.Errorf(steward.ENOTIMPLEMENTED, "this server keeps no users")
	}
	ctx := s.sso.ctx(r.Context())
	p, err := s.sso.provider(ctx)
	if err != nil {
		return "", err
	}
	tok, err := s.sso.config(p, f.Redirect).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "code exchange with the OpenID provider failed: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "the OpenID provider sent no ID token")
	}
	id, err := p.Verifier(&oidc.Config{ClientID: s.sso.opts.ClientID, Now: s.auth.now}).Verify(ctx, raw)
	if err != nil {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "invalid ID token: %v", err)
	}
	if subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(f.Nonce)) != 1 {
		return "", steward.Errorf(steward.EUNAUTHORIZED, "invalid ID token: nonce does not match this sign-in")
	}
	claims, err := s.sso.claims(ctx, p, tok, id)
	if err != nil {
		return "", err
	}
	name := userName(claims, id.Subject)
	role, groups := s.sso.role(claims)
	if role == "" {
		return "", steward.Errorf(steward.EFORBIDDEN, "%s may not use Steward: none of the groups in the %q claim (%s) is mapped to a role; ask an admin to add you to a mapped group",
			name, s.sso.opts.RolesClaim, strings.Join(groups, ", "))
	}
	u, err := s.auth.users.SignInSSO(r.Context(), id.Issuer, id.Subject, name, role)
	if err != nil {
		return "", err
	}
	if _, err := s.openSession(w, r, u.Name, u.SessionEpoch(), "sso"); err != nil {
		return "", err
	}
	return f.Next, nil
}

var ssoTemplate = template.Must(template.New("sso").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Steward · {{.Title}}</title>
{{if not .Message}}<meta http-equiv="refresh" content="0;url={{.Next}}">{{end}}
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em">
<h1>{{.Title}}</h1>
{{if .Message}}<p id="sso-error">{{.Message}}</p><p><a href="/">Back to the sign-in page</a></p>
{{else}}<p><a href="{{.Next}}">Continue to the console</a></p>{{end}}
</body></html>`))

func ssoPage(w http.ResponseWriter, status int, title, message, next string) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page's URL holds the code and state: no referrer, no framing,
	// nothing loaded.
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	return ssoTemplate.Execute(w, struct{ Title, Message, Next string }{title, message, next})
}
