package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// Options configure a Server. Agents and Configs are required.
type Options struct {
	Agents  steward.AgentService
	Configs steward.ConfigService
	// Rollouts serves /api/v1/rollouts; without it those routes answer 501.
	Rollouts steward.RolloutService
	// Previews serves POST …/preview for configs, assignments and
	// rollouts, and checks every such change before it is made (422 when
	// blocked, unless forced); without it previews answer 501 and changes
	// are not checked.
	Previews steward.PreviewService
	// Packages serves /api/v1/packages, /api/v1/package-assignments and
	// the agents' signed download URLs; without it those routes answer 501.
	Packages steward.PackageService
	// Events feeds GET /api/v1/events/stream; without it the stream
	// answers 501.
	Events steward.EventBus
	// EventLog answers GET /api/v1/events (recent fleet events, newest
	// first); without it that route answers 501.
	EventLog func(ctx context.Context, f steward.EventFilter) ([]*steward.Event, error)
	// Credentials serves API tokens with roles, enrollment tokens, agent
	// certificates, connection settings and the audit log (credentials.go);
	// without it those routes answer 501 and no change is audited.
	Credentials steward.CredentialService
	// Users serves /api/v1/users and lets the people it keeps log in
	// (POST /api/v1/login with a name); without it those routes answer
	// 501 and only the built-in admin account logs in.
	Users steward.UserService

	// SSO enables OpenID Connect single sign-on (/api/v1/sso/login and
	// /api/v1/sso/callback); it needs Users and Sessions.
	SSO *SSOOptions
	// AdminPassword enables POST /api/v1/login, which opens a session.
	// APITokens are accepted as "Authorization: Bearer <token>". When both
	// are empty authentication is OFF and anyone who can reach the
	// listener has full access: use that for local development only.
	AdminPassword string
	APITokens     []string
	// Sessions keeps login sessions (the store, shared by replicas, so a
	// logout anywhere ends the session everywhere); without it login
	// answers 501 and only API tokens work.
	Sessions steward.SessionStore
	// SessionTTL is how long a login lasts; default 12 hours.
	SessionTTL time.Duration
	// SecureCookies always sets the Secure attribute on cookies, for
	// servers behind a TLS-terminating proxy. Otherwise it is set when the
	// request arrived over TLS, to this server or to a trusted proxy.
	SecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For (the
	// client address, for login throttling and logs) and
	// X-Forwarded-Proto are believed; those headers from anyone else are
	// ignored.
	TrustedProxies []netip.Prefix
	// LoginThrottle slows password guessing (zero: defaults).
	LoginThrottle LoginThrottle
	// Clock replaces time.Now for sessions and login throttling (tests).
	Clock func() time.Time

	// UI is mounted at "/" (optional). OpAMP is mounted at /v1/opamp
	// (optional).
	UI    http.Handler
	OpAMP http.Handler
	// Metrics serves GET /metrics (Steward's own telemetry) to any
	// authenticated principal (viewer role or above); nil: 404. The Go
	// profiler is served under /debug/pprof/ to admins only.
	Metrics http.Handler
	// Telemetry serves the agents' own telemetry under
	// /api/v1/agents/{id}/telemetry and /api/v1/telemetry (optional).
	Telemetry steward.TelemetryService

	// Ready reports readiness for GET /readyz (optional; nil: always ready).
	Ready func(ctx context.Context) error
	// HeartbeatInterval is the period of comment lines on the event stream
	// (default 15s), which keep proxies from closing an idle stream.
	HeartbeatInterval time.Duration

	Logger *slog.Logger
}

// Server is the HTTP front of Steward: the REST API under /api/v1, health
// checks, and the optional UI and OpAMP handlers. It is an http.Handler and
// safe for concurrent use.
type Server struct {
	sso       *sso // single sign-on (nil: not configured)
	agents    steward.AgentService
	configs   steward.ConfigService
	rollouts  steward.RolloutService
	previews  steward.PreviewService
	packages  steward.PackageService
	events    steward.EventBus
	eventLog  func(ctx context.Context, f steward.EventFilter) ([]*steward.Event, error)
	ready     func(ctx context.Context) error
	metrics   http.Handler
	telemetry steward.TelemetryService
	creds     steward.CredentialService
	auth      *authenticator
	log       *slog.Logger

	heartbeat time.Duration
	// closing is closed by Close to end event streams.
	closing   chan struct{}
	closeOnce sync.Once

	root *http.ServeMux
	api  *http.ServeMux
	// routes lists every "METHOD /path" pattern registered, in order.
	routes []string
}

// NewServer returns a Server for opts. It panics if opts.Agents or
// opts.Configs is nil (a programming error).
func NewServer(opts Options) *Server {
	if opts.Agents == nil || opts.Configs == nil {
		panic("http.NewServer: Agents and Configs are required")
	}
	s := &Server{
		agents:    opts.Agents,
		configs:   opts.Configs,
		rollouts:  opts.Rollouts,
		previews:  opts.Previews,
		packages:  opts.Packages,
		events:    opts.Events,
		eventLog:  opts.EventLog,
		ready:     opts.Ready,
		metrics:   opts.Metrics,
		telemetry: opts.Telemetry,
		creds:     opts.Credentials,
		log:       opts.Logger,
		heartbeat: opts.HeartbeatInterval,
		closing:   make(chan struct{}),
		root:      http.NewServeMux(),
		api:       http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 15 * time.Second
	}
	s.auth = newAuthenticator(opts)
	s.sso = newSSO(opts.SSO)
	s.auth.hasSSO = s.sso != nil

	// Routes that need no credentials.
	s.handle("POST /api/v1/login", s.handleLogin, public)
	s.handle("POST /api/v1/logout", s.handleLogout, public)
	s.handle("GET /api/v1/session", s.handleSession, public)
	s.handle("GET /api/v1/openapi.yaml", s.handleOpenAPI, public)
	s.registerSSORoutes()

	s.handle("GET /api/v1/agents", s.handleAgents, authed)
	s.handle("POST /api/v1/agents/bulk", s.handleBulkAgents, authed)
	s.handle("GET /api/v1/agents/{id}", s.handleAgent, authed)
	s.handle("DELETE /api/v1/agents/{id}", s.handleDeleteAgent, authed)
	s.handle("PUT /api/v1/agents/{id}/labels", s.handleSetAgentLabels, authed)
	s.handle("POST /api/v1/agents/{id}/restart", s.handleRestartAgent, authed)
	s.handle("POST /api/v1/agents/{id}/custom-messages", s.handleCustomMessage, authed)
	s.handle("GET /api/v1/agents/{id}/events", s.handleAgentEvents, authed)
	s.handle("GET /api/v1/agents/{id}/desired-config", s.handleDesiredConfig, authed)
	s.handle("GET /api/v1/agents/{id}/config", s.handleAgentConfig, authed)

	s.handle("GET /api/v1/configs", s.handleConfigs, authed)
	s.handle("GET /api/v1/configs/{name}", s.handleConfig, authed)
	s.handle("PUT /api/v1/configs/{name}", s.handlePutConfig, authed)
	s.handle("DELETE /api/v1/configs/{name}", s.handleDeleteConfig, authed)
	s.handle("GET /api/v1/configs/{name}/versions", s.handleConfigVersions, authed)
	s.handle("GET /api/v1/configs/{name}/diff", s.handleConfigDiff, authed)

	s.handle("GET /api/v1/assignments", s.handleAssignments, authed)
	s.handle("GET /api/v1/assignments/{name}", s.handleAssignment, authed)
	s.handle("PUT /api/v1/assignments/{name}", s.handlePutAssignment, authed)
	s.handle("DELETE /api/v1/assignments/{name}", s.handleDeleteAssignment, authed)

	s.handle("GET /api/v1/rollouts", s.handleRollouts, authed)
	s.handle("POST /api/v1/rollouts", s.handleStartRollout, authed)
	s.handle("GET /api/v1/rollouts/{name}", s.handleRollout, authed)
	s.handle("POST /api/v1/rollouts/{name}/pause", s.handlePauseRollout, authed)
	s.handle("POST /api/v1/rollouts/{name}/resume", s.handleResumeRollout, authed)
	s.handle("POST /api/v1/rollouts/{name}/rollback", s.handleRollbackRollout, authed)

	s.registerPreviewRoutes()
	s.registerPackageRoutes()
	s.registerCredentialRoutes()
	s.registerOwnTelemetryRoutes()
	s.registerUserRoutes()

	s.handle("GET /api/v1/summary", s.handleSummary, authed)
	s.handle("GET /api/v1/events", s.handleEvents, authed)
	s.handle("GET /api/v1/events/stream", s.handleEventStream, authed)

	s.api.Handle("/", s.adapt(s.handleAPINotFound))

	s.root.Handle("/api/", s.api)
	s.handleRoot("GET /healthz", s.handleHealthz)
	s.handleRoot("GET /readyz", s.handleReadyz)
	s.registerTelemetryRoutes()
	if opts.OpAMP != nil {
		s.root.Handle("/v1/opamp", opts.OpAMP)
	}
	if opts.UI != nil {
		s.root.Handle("/", opts.UI)
	} else {
		s.root.Handle("/", s.adapt(func(w http.ResponseWriter, r *http.Request) error {
			return steward.Errorf(steward.ENOTFOUND, "no page at %s", r.URL.Path)
		}))
	}
	return s
}

// ServeHTTP dispatches r. A panic in a handler is logged and answered with
// a 500 (when nothing was written yet); it never takes the process down.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("http: panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, r, nil, steward.Errorf(steward.EINTERNAL, "panic"))
		}
	}()
	s.root.ServeHTTP(w, r)
}

// Close ends every open event stream, now and for streams opened later
// (they end at once). Other requests are unaffected. Register it with
// net/http.Server.RegisterOnShutdown, as streams never become idle and would
// otherwise hold Shutdown until its deadline. It always returns nil.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	return nil
}

// Routes returns the "METHOD /path" patterns of the REST API and health
// checks, in registration order.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

type access int

const (
	public access = iota
	authed
)

// adapt makes h an http.Handler whose errors are written (and logged) by
// writeError.
func (s *Server) adapt(h handlerFunc) http.Handler { return errorHandler{fn: h, log: s.log} }

// handle registers an API route. Authed routes go through authorize, which
// is the one place where access is decided.
func (s *Server) handle(pattern string, h handlerFunc, a access) {
	s.routes = append(s.routes, pattern)
	if a == authed {
		h = s.authorize(h)
	}
	s.api.Handle(pattern, s.adapt(s.limitBody(h)))
}

func (s *Server) handleRoot(pattern string, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.root.Handle(pattern, s.adapt(h))
}

// limitBody caps request bodies at MaxBodySize (413 beyond) and sets common
// headers.
func (s *Server) limitBody(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.ContentLength > MaxBodySize {
			return &http.MaxBytesError{Limit: MaxBodySize}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
		return next(w, r)
	}
}

// handleAPINotFound answers unknown API paths with a JSON 404, or a 405 when
// the path exists for other methods.
func (s *Server) handleAPINotFound(w http.ResponseWriter, r *http.Request) error {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := s.api.Handler(r2); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: ErrorBody{
			Code:    steward.EINVALID,
			Message: fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")),
		}})
		return nil
	}
	return steward.Errorf(steward.ENOTFOUND, "no API route %s %s", r.Method, r.URL.Path)
}

// handleHealthz reports liveness: the process serves HTTP.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleReadyz reports readiness from Options.Ready: 200, or 503 with the
// reason.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			msg := steward.ErrorMessage(err)
			if steward.ErrorCode(err) == steward.EINTERNAL {
				s.log.Warn("http: not ready", "err", err)
				msg = "not ready"
			}
			writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: ErrorBody{Code: steward.EUNAVAILABLE, Message: msg}})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
