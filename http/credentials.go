package http

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Roles per route. Reads need viewer, changes operator, except the
// credential routes (and reading tokens), users and the profiler, which
// need admin. Connection settings are read by viewers and written by operators,
// like configs; their
// secrets are redacted for everyone unless an admin asks (secrets.go).
// Password sessions and the API tokens given in Options are admin.
var adminPrefixes = []string{"/api/v1/users", "/api/v1/tokens", "/api/v1/enrollment-tokens", "/api/v1/certificates",
	"/api/v1/agent-ca", "/api/v1/audit", "/debug/pprof"}

// requiredRole returns the role a request needs.
func requiredRole(r *http.Request) steward.Role {
	path := r.URL.Path
	for _, p := range adminPrefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			if !isUnsafe(r.Method) && (p == "/api/v1/certificates" || p == "/api/v1/agent-ca" || p == "/api/v1/audit") {
				return steward.RoleViewer
			}
			return steward.RoleAdmin
		}
	}
	if isUnsafe(r.Method) {
		return steward.RoleOperator
	}
	return steward.RoleViewer
}

// selfAudited routes record their own, more precise audit entries (the
// credential service does); the middleware does not add one.
func selfAudited(r *http.Request) bool {
	if r.URL.Path == "/api/v1/agents/bulk" {
		return true // one entry with the counts, none for a dry run
	}
	for _, p := range []string{"/api/v1/users", "/api/v1/tokens", "/api/v1/enrollment-tokens", "/api/v1/certificates", "/api/v1/connection-settings"} {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			return true
		}
	}
	return false
}

// actorName is how a principal appears in the audit log and as the author
// of configs: the person (user name, "admin" for the built-in account) or
// the API token's name, never a bare "session".
func actorName(p *Principal) string { return p.Name }

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush lets event streams through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// audited runs a state-changing request and, when it succeeded, records it
// in the audit log (actor, "METHOD pattern", path). It returns next's error.
func (s *Server) audited(p *Principal, next handlerFunc, w http.ResponseWriter, r *http.Request) error {
	if s.creds == nil || !isUnsafe(r.Method) || selfAudited(r) {
		return next(w, r)
	}
	rec := &statusRecorder{ResponseWriter: w}
	if err := next(rec, r); err != nil {
		return err
	}
	if rec.status == 0 || rec.status >= 400 {
		return nil
	}
	e := &steward.AuditEntry{Actor: actorName(p), Action: r.Method + " " + strings.TrimPrefix(r.Pattern, r.Method+" "), Target: r.URL.Path}
	s.recordAudit(r, e)
	return nil
}

// auditTimeout bounds storing the audit entry of an action already done.
const auditTimeout = 30 * time.Second

// recordAudit stores e, the entry of an action already done. A client that
// hangs up once the action is done (a timeout on a slow change) ends the
// request's context; the entry is stored all the same, under a context of
// its own. A failure is logged: the action cannot be undone.
func (s *Server) recordAudit(r *http.Request, e *steward.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	defer cancel()
	if err := s.creds.RecordAudit(ctx, e); err != nil {
		s.log.Warn("http: audit entry not stored", "action", e.Action, "target", e.Target, "err", err)
	}
}

// credentials returns the credentials service, or ENOTIMPLEMENTED (501)
// when this server has none.
func (s *Server) credentials() (steward.CredentialService, error) {
	if s.creds == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "credentials are not available on this server")
	}
	return s.creds, nil
}

func (s *Server) registerCredentialRoutes() {
	s.handle("GET /api/v1/tokens", s.handleTokens, authed)
	s.handle("POST /api/v1/tokens", s.handleCreateToken, authed)
	s.handle("DELETE /api/v1/tokens/{id}", s.handleDeleteToken, authed)
	s.handle("GET /api/v1/enrollment-tokens", s.handleEnrollmentTokens, authed)
	s.handle("POST /api/v1/enrollment-tokens", s.handleCreateEnrollmentToken, authed)
	s.handle("DELETE /api/v1/enrollment-tokens/{id}", s.handleRevokeEnrollmentToken, authed)
	s.handle("GET /api/v1/certificates", s.handleCertificates, authed)
	s.handle("POST /api/v1/certificates/{serial}/revoke", s.handleRevokeCertificate, authed)
	s.handle("GET /api/v1/agent-ca", s.handleAgentCA, authed)
	s.handle("GET /api/v1/connection-settings", s.handleConnectionSettingsList, authed)
	s.handle("GET /api/v1/connection-settings/{name}", s.handleConnectionSettings, authed)
	s.handle("PUT /api/v1/connection-settings/{name}", s.handlePutConnectionSettings, authed)
	s.handle("DELETE /api/v1/connection-settings/{name}", s.handleDeleteConnectionSettings, authed)
	s.handle("GET /api/v1/audit", s.handleAudit, authed)
}

// CreateTokenRequest is the body of POST /api/v1/tokens.
type CreateTokenRequest struct {
	Name string       `json:"name"`
	Role steward.Role `json:"role"`
	// TTL is a Go duration ("720h"); empty: no expiry.
	TTL string `json:"ttl,omitempty"`
}

// CreatedTokenResponse carries a new token and its secret, shown once.
type CreatedTokenResponse struct {
	Token  *steward.Token `json:"token"`
	Secret string         `json:"secret"`
}

// TokensResponse lists API tokens.
type TokensResponse struct {
	Tokens []*steward.Token `json:"tokens"`
}

func (s *Server) handleTokens(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	list, err := cs.Tokens(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.Token{}
	}
	writeJSON(w, http.StatusOK, TokensResponse{Tokens: list})
	return nil
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	var req CreateTokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return steward.Errorf(steward.EINVALID, "invalid ttl %q: use a positive Go duration such as 720h", req.TTL)
		}
		ttl = d
	}
	t, secret, err := cs.CreateToken(r.Context(), req.Name, req.Role, ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, CreatedTokenResponse{Token: t, Secret: secret})
	return nil
}

func (s *Server) handleDeleteToken(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	if err := cs.DeleteToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CreateEnrollmentTokenRequest is the body of POST /api/v1/enrollment-tokens.
type CreateEnrollmentTokenRequest struct {
	Name     string `json:"name"`
	Selector string `json:"selector,omitempty"`
	MaxUses  int    `json:"max_uses,omitempty"`
	// TTL is a Go duration; empty: no expiry.
	TTL string `json:"ttl,omitempty"`
}

// CreatedEnrollmentTokenResponse carries a new enrollment token and its
// secret, shown once.
type CreatedEnrollmentTokenResponse struct {
	Token  *steward.EnrollmentToken `json:"token"`
	Secret string                   `json:"secret"`
}

// EnrollmentTokensResponse lists enrollment tokens.
type EnrollmentTokensResponse struct {
	Tokens []*steward.EnrollmentToken `json:"tokens"`
}

func (s *Server) handleEnrollmentTokens(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	list, err := cs.EnrollmentTokens(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.EnrollmentToken{}
	}
	writeJSON(w, http.StatusOK, EnrollmentTokensResponse{Tokens: list})
	return nil
}

func (s *Server) handleCreateEnrollmentToken(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	var req CreateEnrollmentTokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	t := steward.EnrollmentToken{Name: req.Name, Selector: req.Selector, MaxUses: req.MaxUses}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return steward.Errorf(steward.EINVALID, "invalid ttl %q: use a positive Go duration such as 24h", req.TTL)
		}
		t.ExpiresAt = time.Now().Add(d)
	}
	out, secret, err := cs.CreateEnrollmentToken(r.Context(), t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, CreatedEnrollmentTokenResponse{Token: out, Secret: secret})
	return nil
}

func (s *Server) handleRevokeEnrollmentToken(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	if err := cs.RevokeEnrollmentToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CertificatesResponse lists agent certificates.
type CertificatesResponse struct {
	Certificates []*steward.AgentCertificate `json:"certificates"`
}

func (s *Server) handleCertificates(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	var agent *steward.InstanceUID
	if v := r.URL.Query().Get("agent"); v != "" {
		id, err := steward.ParseInstanceUID(v)
		if err != nil {
			return err
		}
		agent = &id
	}
	list, err := cs.Certificates(r.Context(), agent)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.AgentCertificate{}
	}
	writeJSON(w, http.StatusOK, CertificatesResponse{Certificates: list})
	return nil
}

func (s *Server) handleRevokeCertificate(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	c, err := cs.RevokeCertificate(r.Context(), r.PathValue("serial"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) handleAgentCA(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	pem, err := cs.CACertificate(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(pem)
	return nil
}

// ConnectionSettingsListResponse lists connection settings.
type ConnectionSettingsListResponse struct {
	Settings []*steward.ConnectionSettings `json:"settings"`
}

func (s *Server) handleConnectionSettingsList(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	list, err := cs.ConnectionSettingsList(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.ConnectionSettings{}
	}
	if err := s.redactSettings(r, list); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ConnectionSettingsListResponse{Settings: list})
	return nil
}

func (s *Server) handleConnectionSettings(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	c, err := cs.ConnectionSettings(r.Context(), r.PathValue("name"))
	list := []*steward.ConnectionSettings{c}
	if err == nil {
		err = s.redactSettings(r, list)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[0])
	return nil
}

func (s *Server) handlePutConnectionSettings(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	var c steward.ConnectionSettings
	if err := decodeJSON(r, &c); err != nil {
		return err
	}
	if c.Name != "" && c.Name != r.PathValue("name") {
		return steward.Errorf(steward.EINVALID, "name %q in the body differs from %q in the path", c.Name, r.PathValue("name"))
	}
	c.Name = r.PathValue("name")
	out, err := cs.PutConnectionSettings(r.Context(), &c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out.Redacted())
	return nil
}

func (s *Server) handleDeleteConnectionSettings(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	if err := cs.DeleteConnectionSettings(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AuditResponse lists audit entries, newest first.
type AuditResponse struct {
	Entries []*steward.AuditEntry `json:"entries"`
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.credentials()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := intParam(q, "limit", DefaultEventLimit, 1, MaxEventLimit)
	if err != nil {
		return err
	}
	f := steward.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Limit: limit}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return steward.Errorf(steward.EINVALID, "invalid since %q: use RFC 3339", v)
		}
		f.Since = t
	}
	list, err := cs.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, AuditResponse{Entries: list})
	return nil
}
