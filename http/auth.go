package http

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
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
	// Name is "admin" for a password session, "token-N" for the Nth
	// configured API token (1-based) and "anonymous" when auth is off.
	Name string
	// Method is "session", "token" or "none".
	Method string
	// Expires is when a session ends (zero for tokens).
	Expires time.Time
	// Role is what the principal may do (see requiredRole): admin for the
	// password session, the configured API tokens and open access; the
	// token's role for tokens created through the API.
	Role steward.Role
}

type principalKey struct{}

// PrincipalFrom returns the principal of an authorized request, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

type authenticator struct {
	failures *failureLimiter
	password [32]byte // sha256 of the admin password
	hasPass  bool
	tokens   [][32]byte // sha256 of each API token
	key      []byte
	ttl      time.Duration
	secure   bool
	now      func() time.Time
	creds    steward.CredentialService // API tokens with roles (optional)
}

func newAuthenticator(opts Options) *authenticator {
	a := &authenticator{ttl: opts.SessionTTL, secure: opts.SecureCookies, now: time.Now,
		failures: &failureLimiter{max: maxLoginFailures, window: loginFailureWindow, seen: map[string]*failureWindow{}}}
	if opts.AdminPassword != "" {
		a.password, a.hasPass = sha256.Sum256([]byte(opts.AdminPassword)), true
	}
	for _, t := range opts.APITokens {
		if t != "" {
			a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
		}
	}
	a.creds = opts.Credentials
	if a.ttl <= 0 {
		a.ttl = 12 * time.Hour
	}
	a.key = append([]byte(nil), opts.SessionKey...)
	if len(a.key) == 0 {
		a.key = make([]byte, 32)
		_, _ = rand.Read(a.key)
	}
	return a
}

// enabled reports whether any credential is configured.
func (a *authenticator) enabled() bool { return a.hasPass || len(a.tokens) > 0 }

// authenticate identifies the caller: a bearer token, else a session
// cookie. It returns EUNAUTHORIZED when no valid credential is presented and
// auth is on. A bad Authorization header never falls back to the cookie.
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
	s, err := a.verify(c.Value)
	if err != nil {
		return nil, err
	}
	if isUnsafe(r.Method) {
		// Double submit: the header must equal the CSRF cookie, which must
		// be the token bound into the signed session.
		h := r.Header.Get(CSRFHeader)
		cc, err := r.Cookie(CSRFCookie)
		if h == "" || err != nil ||
			subtle.ConstantTimeCompare([]byte(h), []byte(cc.Value)) != 1 ||
			subtle.ConstantTimeCompare([]byte(h), []byte(s.csrf)) != 1 {
			return nil, steward.Errorf(steward.EFORBIDDEN, "missing or wrong %s header: send the value of the %s cookie", CSRFHeader, CSRFCookie)
		}
	}
	return &Principal{Name: s.name, Method: "session", Expires: s.expires, Role: steward.RoleAdmin}, nil
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

type session struct {
	name    string
	expires time.Time
	csrf    string
}

// sign encodes a session as base64url(payload) "." base64url(HMAC).
func (a *authenticator) sign(s session) string {
	payload := fmt.Sprintf("v1|%s|%d|%s", s.name, s.expires.Unix(), s.csrf)
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(payload))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(m.Sum(nil))
}

// verify checks a session cookie value: signature, format and expiry.
func (a *authenticator) verify(v string) (session, error) {
	bad := steward.Errorf(steward.EUNAUTHORIZED, "invalid session: log in again")
	p64, mac64, ok := strings.Cut(v, ".")
	if !ok {
		return session{}, bad
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(mac64)
	if err1 != nil || err2 != nil {
		return session{}, bad
	}
	m := hmac.New(sha256.New, a.key)
	m.Write(payload)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return session{}, bad
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 4 || parts[0] != "v1" {
		return session{}, bad
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return session{}, bad
	}
	s := session{name: parts[1], expires: time.Unix(exp, 0), csrf: parts[3]}
	if !a.now().Before(s.expires) {
		return session{}, steward.Errorf(steward.EUNAUTHORIZED, "session expired: log in again")
	}
	return s, nil
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Password string `json:"password"`
}

// SessionResponse describes the caller's session (login and GET session).
type SessionResponse struct {
	AuthEnabled   bool      `json:"auth_enabled"`
	Authenticated bool      `json:"authenticated"`
	Name          string    `json:"name,omitempty"`
	Method        string    `json:"method,omitempty"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	// CSRFToken is the value to send in the X-Steward-CSRF header (also in
	// the steward_csrf cookie); only set by login.
	CSRFToken string `json:"csrf_token,omitempty"`
}

// handleLogin checks the admin password and sets the session and CSRF
// cookies. 401 on a wrong password or when no password is configured.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req LoginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a := s.auth
	if !a.enabled() {
		writeJSON(w, http.StatusOK, SessionResponse{AuthEnabled: false, Authenticated: true, Name: "anonymous", Method: "none"})
		return nil
	}
	host := clientHost(r)
	if wait := a.failures.blocked(host, a.now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeJSON(w, http.StatusTooManyRequests, ErrorResponse{Error: ErrorBody{
			Code:    steward.EUNAVAILABLE,
			Message: fmt.Sprintf("too many failed logins from %s; retry in %s", host, wait.Round(time.Second)),
		}})
		return nil
	}
	sum := sha256.Sum256([]byte(req.Password))
	if !a.hasPass || subtle.ConstantTimeCompare(sum[:], a.password[:]) != 1 {
		a.failures.fail(host, a.now())
		s.log.Warn("http: failed login", "remote", r.RemoteAddr)
		return steward.Errorf(steward.EUNAUTHORIZED, "wrong password")
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	sess := session{name: "admin", expires: a.now().Add(a.ttl).Truncate(time.Second), csrf: hex.EncodeToString(raw[:])}
	secure := a.secure || r.TLS != nil
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: a.sign(sess), Path: "/", Expires: sess.expires,
		MaxAge: int(a.ttl / time.Second), HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
	http.SetCookie(w, &http.Cookie{
		Name: CSRFCookie, Value: sess.csrf, Path: "/", Expires: sess.expires,
		MaxAge: int(a.ttl / time.Second), Secure: secure, SameSite: http.SameSiteStrictMode,
	})
	writeJSON(w, http.StatusOK, SessionResponse{
		AuthEnabled: true, Authenticated: true, Name: sess.name, Method: "session",
		ExpiresAt: sess.expires, CSRFToken: sess.csrf,
	})
	return nil
}

// handleLogout clears the session cookies. Sessions are stateless, so a
// copied cookie stays valid until it expires.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) error {
	secure := s.auth.secure || r.TLS != nil
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
	resp := SessionResponse{AuthEnabled: s.auth.enabled()}
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet // no CSRF check for a read
	if p, err := s.auth.authenticate(r2); err == nil {
		resp.Authenticated, resp.Name, resp.Method, resp.ExpiresAt = true, p.Name, p.Method, p.Expires
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Failed logins from one client address are limited: after
// maxLoginFailures within loginFailureWindow, logins from it are refused
// with 429 until the window ends.
const (
	maxLoginFailures   = 10
	loginFailureWindow = time.Minute
)

type failureWindow struct {
	start time.Time
	n     int
}

// failureLimiter counts failures per client in fixed windows.
type failureLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	seen   map[string]*failureWindow
}

// blocked returns how long host must wait, or 0.
func (l *failureLimiter) blocked(host string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	fw := l.seen[host]
	if fw == nil || now.Sub(fw.start) >= l.window {
		return 0
	}
	if fw.n >= l.max {
		return l.window - now.Sub(fw.start)
	}
	return 0
}

// fail records a failure; expired windows are dropped so the map stays
// bounded by the clients seen within one window.
func (l *failureLimiter) fail(host string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for h, fw := range l.seen {
		if now.Sub(fw.start) >= l.window {
			delete(l.seen, h)
		}
	}
	fw := l.seen[host]
	if fw == nil {
		fw = &failureWindow{start: now}
		l.seen[host] = fw
	}
	fw.n++
}

// clientHost is the request's remote IP (proxies' forwarding headers are
// not trusted).
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
