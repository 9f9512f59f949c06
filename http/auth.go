package http

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// Cookie and header names used by browser sessions.
const (
	SessionCookie = "steward_session"
	CSRFCookie    = "steward_csrf"
	CSRFHeader    = "X-Steward-CSRF"
)

// Principal is who made a request.
type Principal struct {
	// Name is the user of a session ("admin" for the built-in admin
	// account), the name of an API token ("token-N" for the Nth configured
	// one, 1-based) and "anonymous" when auth is off. It is the actor in
	// the audit log.
	Name string
	// Method is "session", "token" or "none".
	Method string
	// Expires is when a session ends (zero for tokens).
	Expires time.Time
	// Role is what the principal may do (see requiredRole): admin for the
	// built-in admin account, the configured API tokens and open access;
	// the user's role (read at every request, so a change applies at once)
	// and the token's role for tokens created through the API.
	Role steward.Role
}

type principalKey struct{}

// PrincipalFrom returns the principal of an authorized request, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

type authenticator struct {
	throttle *loginThrottle
	password [32]byte // sha256 of the admin password
	hasPass  bool
	// epoch names the admin password in stored sessions (sessionEpoch),
	// derived on first use: it is deliberately slow.
	epoch    func() string
	tokens   [][32]byte // sha256 of each API token
	sessions steward.SessionStore
	ttl      time.Duration
	secure   bool
	proxies  trustedProxies
	now      func() time.Time
	creds    steward.CredentialService // API tokens with roles (optional)
	users    steward.UserService       // named users (optional)
	hasSSO   bool                      // single sign-on is configured
}

func newAuthenticator(opts Options) *authenticator {
	a := &authenticator{ttl: opts.SessionTTL, secure: opts.SecureCookies, now: opts.Clock, sessions: opts.Sessions,
		proxies: trustedProxies(opts.TrustedProxies), throttle: newLoginThrottle(opts.LoginThrottle)}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.AdminPassword != "" {
		a.password, a.hasPass = sha256.Sum256([]byte(opts.AdminPassword)), true
		a.epoch = sync.OnceValue(func() string { return sessionEpoch(opts.AdminPassword) })
	}
	for _, t := range opts.APITokens {
		if t != "" {
			a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
		}
	}
	a.creds, a.users = opts.Credentials, opts.Users
	if a.ttl <= 0 {
		a.ttl = 12 * time.Hour
	}
	return a
}

// sessionEpoch derives, slowly (PBKDF2), a name for the admin password that
// is stored with each session: a server accepts only sessions of its own
// password, so changing the password ends every session on every replica,
// and the stored name does not make the password cheap to guess.
func sessionEpoch(password string) string {
	k, err := pbkdf2.Key(sha256.New, password, []byte("steward session epoch v1"), 20000, 16)
	if err != nil { // only for parameters outside FIPS limits, not these
		panic(fmt.Sprintf("session epoch: %v", err))
	}
	return hex.EncodeToString(k)
}

// enabled reports whether any credential is configured: the admin
// password, API tokens or single sign-on. Stored users log in only then
// (--admin-password=- without tokens or SSO turns authentication off).
func (a *authenticator) enabled() bool { return a.hasPass || len(a.tokens) > 0 || a.hasSSO }

// authenticate identifies the caller: a bearer token, else a session
// cookie. It returns EUNAUTHORIZED when no valid credential is presented and
// auth is on, EUNAVAILABLE when the session store cannot answer. A bad
// Authorization header never falls back to the cookie.
func (a *authenticator) authenticate(r *http.Request) (*Principal, error) {
	if !a.enabled() {
		return &Principal{Name: "anonymous", Method: "none", Role: steward.RoleAdmin}, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, steward.Errorf(steward.EUNAUTHORIZED, "malformed Authorization header: use \"Bearer <token>\"")
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		found := 0
		for i, t := range a.tokens {
			if subtle.ConstantTimeCompare(sum[:], t[:]) == 1 && found == 0 {
				found = i + 1
			}
		}
		if found == 0 && a.creds != nil {
			t, err := a.creds.AuthenticateToken(r.Context(), strings.TrimSpace(tok))
			if err != nil {
				return nil, steward.Errorf(steward.EUNAUTHORIZED, "invalid API token")
			}
			return &Principal{Name: t.Name, Method: "token", Role: t.Role}, nil
		}
		if found == 0 {
			return nil, steward.Errorf(steward.EUNAUTHORIZED, "invalid API token")
		}
		return &Principal{Name: "token-" + strconv.Itoa(found), Method: "token", Role: steward.RoleAdmin}, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "authentication required: log in or send \"Authorization: Bearer <token>\"")
	}
	s, role, err := a.session(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	if isUnsafe(r.Method) {
		// Double submit: the header must equal the CSRF cookie, which must
		// be the token stored with the session.
		h := r.Header.Get(CSRFHeader)
		cc, err := r.Cookie(CSRFCookie)
		if h == "" || err != nil ||
			subtle.ConstantTimeCompare([]byte(h), []byte(cc.Value)) != 1 ||
			subtle.ConstantTimeCompare([]byte(h), []byte(s.CSRF)) != 1 {
			return nil, steward.Errorf(steward.EFORBIDDEN, "missing or wrong %s header: send the value of the %s cookie", CSRFHeader, CSRFCookie)
		}
	}
	return &Principal{Name: s.Name, Method: "session", Expires: s.ExpiresAt, Role: role}, nil
}

// session returns the live session whose cookie value is v, and the role
// of its user: stored, not expired, of a user who may still log in and
// opened with their current credentials (epoch); EUNAUTHORIZED otherwise.
func (a *authenticator) session(ctx context.Context, v string) (*steward.Session, steward.Role, error) {
	bad := steward.Errorf(steward.EUNAUTHORIZED, "invalid session: log in again")
	if a.sessions == nil || !a.enabled() || v == "" {
		return nil, "", bad
	}
	s, err := a.sessions.SessionByHash(ctx, steward.HashSecret(v))
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		return nil, "", bad
	case err != nil:
		return nil, "", fmt.Errorf("look up session: %w", err)
	case !a.now().Before(s.ExpiresAt):
		return nil, "", steward.Errorf(steward.EUNAUTHORIZED, "session expired: log in again")
	case s.Name == steward.AdminUser:
		if !a.hasPass || s.Epoch != a.epoch() {
			return nil, "", steward.Errorf(steward.EUNAUTHORIZED, "session ended: the admin password changed; log in again")
		}
		return s, steward.RoleAdmin, nil
	case a.users == nil:
		return nil, "", bad
	}
	u, err := a.users.User(ctx, s.Name)
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		return nil, "", steward.Errorf(steward.EUNAUTHORIZED, "session ended: user %s was deleted", s.Name)
	case err != nil:
		return nil, "", fmt.Errorf("look up user of session: %w", err)
	case u.Disabled:
		return nil, "", steward.Errorf(steward.EUNAUTHORIZED, "session ended: user %s is disabled", s.Name)
	case s.Epoch != u.SessionEpoch():
		return nil, "", steward.Errorf(steward.EUNAUTHORIZED, "session ended: the password of %s changed; log in again", s.Name)
	}
	return s, u.Role, nil
}

func isUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// permit decides whether p may make request r: its role must allow the
// role the route needs (requiredRole); EFORBIDDEN otherwise.
func (a *authenticator) permit(p *Principal, r *http.Request) error {
	if need := requiredRole(r); !p.Role.Allows(need) {
		return steward.Errorf(steward.EFORBIDDEN, "%s %s needs the %s role; %s has %q", r.Method, r.URL.Path, need, p.Name, p.Role)
	}
	return nil
}

// authorize wraps an API handler: the request runs with its Principal in
// the context, or is refused with EUNAUTHORIZED (401) or EFORBIDDEN (403).
func (s *Server) authorize(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.auth.authenticate(r)
		if err == nil {
			err = s.auth.permit(p, r)
		}
		if err != nil {
			return err
		}
		ctx := steward.WithActor(context.WithValue(r.Context(), principalKey{}, p), actorName(p))
		return s.audited(p, next, w, r.WithContext(ctx))
	}
}

// LoginRequest is the body of POST /api/v1/login. An empty Name logs in
// the built-in admin account ("admin").
type LoginRequest struct {
	Name     string `json:"name,omitempty"`
	Password string `json:"password"`
}

// SessionResponse describes the caller's session (login and GET session).
type SessionResponse struct {
	AuthEnabled bool `json:"auth_enabled"`
	// SSO is true when single sign-on is configured: the console offers
	// "Sign in with SSO" (GET /api/v1/sso/login).
	SSO           bool   `json:"sso,omitempty"`
	Authenticated bool   `json:"authenticated"`
	Name          string `json:"name,omitempty"`
	Method        string `json:"method,omitempty"`
	// Role is what the caller may do (the console hides what it may not).
	Role      steward.Role `json:"role,omitempty"`
	ExpiresAt time.Time    `json:"expires_at,omitzero"`
	// CSRFToken is the value to send in the X-Steward-CSRF header (also in
	// the steward_csrf cookie); only set by login.
	CSRFToken string `json:"csrf_token,omitempty"`
}

// handleLogin checks a user's password (the built-in admin account's when
// no name is given), stores a new session and sets the session and CSRF
// cookies. 401 on a wrong name or password, or when no password is
// configured; 429 with Retry-After while this account and client wait after
// failures (see loginThrottle), whatever the password; 501 without a
// session store.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req LoginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a := s.auth
	if !a.enabled() {
		writeJSON(w, http.StatusOK, SessionResponse{AuthEnabled: false, Authenticated: true, Name: "anonymous", Method: "none", Role: steward.RoleAdmin})
		return nil
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = steward.AdminUser
	}
	client := a.proxies.clientAddr(r)
	key := loginKey(name, client)
	if wait := a.throttle.attempt(key, a.now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, ErrorResponse{Error: ErrorBody{
			Code:    steward.EUNAVAILABLE,
			Message: fmt.Sprintf("too many failed logins for %s from %s; retry in %s", name, client, wait.Round(time.Millisecond)),
		}})
		return nil
	}
	role, epoch, err := a.checkPassword(r.Context(), name, req.Password)
	if err != nil {
		if steward.ErrorCode(err) == steward.EUNAUTHORIZED {
			s.log.Warn("http: failed login", "user", name, "client", client.String(), "remote", r.RemoteAddr)
		}
		return err
	}
	a.throttle.succeed(key)
	sess, err := s.openSession(w, r, name, epoch, "password")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SessionResponse{
		AuthEnabled: true, Authenticated: true, Name: sess.Name, Method: "session", Role: role,
		ExpiresAt: sess.ExpiresAt, CSRFToken: sess.CSRF,
	})
	return nil
}

// checkPassword checks the password of the built-in admin account or of a
// stored user and returns their role and session epoch; EUNAUTHORIZED with
// one message for every kind of failure.
func (a *authenticator) checkPassword(ctx context.Context, name, password string) (steward.Role, string, error) {
	denied := steward.Errorf(steward.EUNAUTHORIZED, "wrong user name or password")
	if name == steward.AdminUser {
		sum := sha256.Sum256([]byte(password))
		if !a.hasPass || subtle.ConstantTimeCompare(sum[:], a.password[:]) != 1 {
			return "", "", denied
		}
		return steward.RoleAdmin, a.epoch(), nil
	}
	if a.users == nil {
		return "", "", denied
	}
	u, err := a.users.AuthenticateUser(ctx, name, password)
	if err != nil {
		return "", "", err
	}
	return u.Role, u.SessionEpoch(), nil
}

// openSession stores a new session of user name (credentials epoch), sets
// its cookies on w and records the login in the audit log (method:
// "password" or "sso"). 501 without a session store.
func (s *Server) openSession(w http.ResponseWriter, r *http.Request, name, epoch, method string) (*steward.Session, error) {
	a := s.auth
	if a.sessions == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "this server keeps no sessions: use an API token")
	}
	now := a.now()
	secret := steward.NewSecret("stws")
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	sess := &steward.Session{Hash: steward.HashSecret(secret), Name: name, CSRF: hex.EncodeToString(raw[:]), Epoch: epoch,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(a.ttl).UTC().Truncate(time.Second)}
	if err := a.sessions.PutSession(r.Context(), sess); err != nil {
		return nil, fmt.Errorf("store session: %w", err)
	}
	// Expired sessions, and this user's of older credentials, go on every
	// login.
	if _, err := a.sessions.DeleteSessions(r.Context(), name, epoch, now); err != nil {
		s.log.Warn("http: old sessions not removed", "err", err)
	}
	if s.creds != nil {
		e := &steward.AuditEntry{Actor: name, Action: steward.AuditLogin, Target: name,
			Details: map[string]any{"method": method, "client": a.proxies.clientAddr(r).String()}}
		s.recordAudit(r, e)
	}
	secure := a.secureCookies(r)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: secret, Path: "/", Expires: sess.ExpiresAt,
		MaxAge: int(a.ttl / time.Second), HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
	http.SetCookie(w, &http.Cookie{
		Name: CSRFCookie, Value: sess.CSRF, Path: "/", Expires: sess.ExpiresAt,
		MaxAge: int(a.ttl / time.Second), Secure: secure, SameSite: http.SameSiteStrictMode,
	})
	return sess, nil
}

// secureCookies reports whether cookies get the Secure attribute: always
// with Options.SecureCookies, else when the request came over TLS, to us or
// (X-Forwarded-Proto: https) to a trusted proxy.
func (a *authenticator) secureCookies(r *http.Request) bool {
	return a.secure || r.TLS != nil || a.proxies.forwardedHTTPS(r)
}

// handleLogout ends the session of the cookie sent, on every replica, and
// clears the cookies; the old cookie is refused from then on. It succeeds
// without a session too.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && s.auth.sessions != nil {
		if err := s.auth.sessions.DeleteSession(r.Context(), steward.HashSecret(c.Value)); err != nil {
			return fmt.Errorf("end session: %w", err)
		}
	}
	secure := s.auth.secureCookies(r)
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: name == SessionCookie, Secure: secure, SameSite: http.SameSiteStrictMode})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleSession reports whether auth is on and whether the caller is
// authenticated; it never fails with 401.
func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) error {
	resp := SessionResponse{AuthEnabled: s.auth.enabled(), SSO: s.sso != nil}
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet // no CSRF check for a read
	if p, err := s.auth.authenticate(r2); err == nil {
		resp.Authenticated, resp.Name, resp.Method, resp.ExpiresAt, resp.Role = true, p.Name, p.Method, p.Expires, p.Role
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
