package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/opamp/server"
)

// AgentAuth configures how agents authenticate and obtain credentials.
//
// An agent connects with an enrollment token ("Authorization: Bearer
// <secret>" on the OpAMP request) or with a client certificate the CA
// issued; a certificate wins when both are present. With Require unset an
// agent presenting neither is admitted (for trusted networks), but wrong,
// expired or revoked credentials are always refused.
type AgentAuth struct {
	// Require refuses (HTTP 401) agents that present no credentials.
	Require bool
	// CA signs the CSRs agents send (ConnectionSettingsRequest); nil:
	// CSRs are refused and certificates are not verified by this package
	// (the TLS listener still verifies them).
	CA *ca.CA
	// CertLifetime of issued certificates; default ca.DefaultLifetime. A
	// certificate is renewed (re-issued for the same key and offered)
	// after two thirds of it.
	CertLifetime time.Duration
	// Credentials keeps tokens and certificates; default the Store when it
	// implements steward.CredentialStore.
	Credentials steward.CredentialStore
	// Audit keeps the audit log; default the Store when it implements
	// steward.AuditStore.
	Audit steward.AuditStore
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// agentAuth is what authenticate returns for a connection.
type agentAuth struct {
	method string // "certificate", "enrollment-token" or "none"
	// certificate
	certUID steward.InstanceUID
	serial  string
	// enrollment token
	token *steward.EnrollmentToken
	// assigned is a uid the server gave the agent on this connection.
	assigned atomic.Pointer[steward.InstanceUID]
	// admitted is set once the connection's agent passed admit.
	admitted atomic.Bool
}

// credState is the Service's credential machinery.
type credState struct {
	store    steward.CredentialStore
	audit    steward.AuditStore
	conns    steward.ConnectionSettingsStore
	settings atomic.Pointer[steward.ConnectionSettingsSet]
	// renamed maps a uid the server assigned to a certificate-authenticated
	// agent to the uid its certificate names (in memory only).
	renamed sync.Map
}

// agentCred is the per-session credential state (guarded by session.mu).
type agentCred struct {
	// cert is the agent's newest unrevoked certificate, offered in its
	// OpAMP connection settings.
	cert *steward.AgentCertificate
	// connSerial is the certificate the current connection presented,
	// tokenID the enrollment token.
	connSerial string
	tokenID    string
	// reported is the agent's last_connection_settings_hash; offered the
	// hash last offered on this connection; opampOffered the hash of the
	// OpAMP settings last offered to an agent that does not report their
	// status (stored as Agent.OpAMPSettingsOffered).
	reported     []byte
	offered      []byte
	opampOffered []byte
	// memo keeps the last computed offer (see connectionView).
	memo connMemo
}

func (s *Service) initCredentials() {
	a := &s.cfg.Auth
	if a.Credentials == nil {
		a.Credentials, _ = s.store.(steward.CredentialStore)
	}
	if a.Audit == nil {
		a.Audit, _ = s.store.(steward.AuditStore)
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.CertLifetime <= 0 {
		a.CertLifetime = ca.DefaultLifetime
	}
	s.cred.store = a.Credentials
	s.cred.audit = a.Audit
	s.cred.conns, _ = s.store.(steward.ConnectionSettingsStore)
}

func (s *Service) now() time.Time { return s.cfg.Auth.Now().UTC() }

// authenticate admits or refuses an agent connection before any message is
// read: a client certificate (verified by the CA, known to the store and
// not revoked), else an enrollment token (known, not expired, revoked or
// used up), else nothing when authentication is not required.
// EUNAUTHORIZED (401) for missing, unknown or expired credentials,
// EFORBIDDEN (403) for revoked ones, EUNAVAILABLE when the store cannot be
// read.
func (s *Service) authenticate(r *http.Request) (any, error) {
	ctx := r.Context()
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return s.authCertificate(ctx, r.TLS.PeerCertificates[0], r.TLS.VerifiedChains, r.RemoteAddr)
	}
	// Only the Bearer scheme is ours; another (e.g. for a proxy in front)
	// counts as no credentials.
	if scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if secret = strings.TrimSpace(secret); secret == "" {
			return nil, s.refuse(ctx, steward.InstanceUID{}, r.RemoteAddr, steward.Errorf(steward.EUNAUTHORIZED, "empty bearer token: send Authorization: Bearer <enrollment token>"))
		}
		return s.authToken(ctx, secret, r.RemoteAddr)
	}
	if s.cfg.Auth.Require {
		// Not audited: such requests carry no identity to record.
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "agent authentication required: present an enrollment token (Authorization: Bearer) or a client certificate")
	}
	return noAuth, nil
}

// noAuth is shared by every connection that presented no credentials (its
// admitted flag is never consulted for method "none").
var noAuth = &agentAuth{method: "none"}

func (s *Service) authCertificate(ctx context.Context, cert *x509.Certificate, chains [][]*x509.Certificate, remote string) (any, error) {
	uid, _ := ca.InstanceUID(cert)
	serial := ca.Serial(cert)
	if s.cfg.Auth.CA != nil {
		var err error
		if verifiedBy(chains, s.cfg.Auth.CA.Certificate()) {
			// The TLS layer verified the chain to our CA; only the
			// validity period is checked again, on our clock.
			if now := s.now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
				err = x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}
			}
		} else {
			err = s.cfg.Auth.CA.Verify(cert, s.now())
		}
		if err != nil {
			var inv x509.CertificateInvalidError
			msg := "client certificate not issued by this server's CA"
			if errors.As(err, &inv) && inv.Reason == x509.Expired {
				msg = "client certificate expired or not yet valid"
			}
			return nil, s.refuse(ctx, uid, remote, steward.Errorf(steward.EUNAUTHORIZED, "%s (serial %s)", msg, serial))
		}
	}
	if s.cred.store == nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "client certificates are not accepted: the store keeps no credentials")
	}
	rec, err := s.cred.store.Certificate(ctx, serial)
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		return nil, s.refuse(ctx, uid, remote, steward.Errorf(steward.EUNAUTHORIZED, "unknown client certificate (serial %s)", serial))
	case err != nil:
		return nil, steward.Errorf(steward.EUNAVAILABLE, "cannot check the client certificate now")
	case rec.Revoked:
		return nil, s.refuse(ctx, rec.AgentID, remote, steward.Errorf(steward.EFORBIDDEN, "client certificate %s was revoked", serial))
	case !s.now().Before(rec.NotAfter):
		return nil, s.refuse(ctx, rec.AgentID, remote, steward.Errorf(steward.EUNAUTHORIZED, "client certificate %s expired", serial))
	}
	return &agentAuth{method: "certificate", certUID: rec.AgentID, serial: serial}, nil
}

// verifiedBy reports whether one of the verified chains ends at root.
func verifiedBy(chains [][]*x509.Certificate, root *x509.Certificate) bool {
	for _, c := range chains {
		if len(c) > 0 && c[len(c)-1].Equal(root) {
			return true
		}
	}
	return false
}

func (s *Service) authToken(ctx context.Context, secret, remote string) (any, error) {
	if s.cred.store == nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "enrollment tokens are not accepted: the store keeps no credentials")
	}
	t, err := s.cred.store.EnrollmentTokenByHash(ctx, steward.HashSecret(secret))
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		return nil, s.refuse(ctx, steward.InstanceUID{}, remote, steward.Errorf(steward.EUNAUTHORIZED, "unknown enrollment token"))
	case err != nil:
		return nil, steward.Errorf(steward.EUNAVAILABLE, "cannot check the enrollment token now")
	case t.Revoked:
		return nil, s.refuse(ctx, steward.InstanceUID{}, remote, steward.Errorf(steward.EFORBIDDEN, "enrollment token %q was revoked", t.Name))
	case !t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt):
		return nil, s.refuse(ctx, steward.InstanceUID{}, remote, steward.Errorf(steward.EUNAUTHORIZED, "enrollment token %q expired", t.Name))
	}
	// Uses are counted per new agent, in admit.
	return &agentAuth{method: "enrollment-token", token: t}, nil
}

// refuse records a refused agent (event on the agent when known, audit
// entry) and returns err.
func (s *Service) refuse(ctx context.Context, id steward.InstanceUID, remote string, err error) error {
	msg := steward.ErrorMessage(err)
	s.log.Info("agent refused", "agent", id, "remote", remote, "reason", msg)
	if !id.IsZero() {
		s.emit(&steward.Event{Type: steward.EventAgentRefused, AgentID: id, Message: "agent refused: " + msg,
			Details: map[string]any{"remote_addr": remote, "code": steward.ErrorCode(err)}})
	}
	target := remote
	if !id.IsZero() {
		target = id.String()
	}
	s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(id), Action: steward.AuditAgentRefused, Target: target,
		Details: map[string]any{"reason": msg, "remote_addr": remote}})
	return err
}

func actorAgent(id steward.InstanceUID) string {
	if id.IsZero() {
		return "agent"
	}
	return "agent " + id.String()
}

// audit appends an entry off the caller's error path: a failure is logged.
func (s *Service) audit(ctx context.Context, e *steward.AuditEntry) {
	if s.cred.audit == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cred.audit.AppendAudit(ctx, e); err != nil {
		s.log.Warn("audit entry not stored", "action", e.Action, "target", e.Target, "error", err)
	}
}

// admit runs on every message, with ss.mu held, before the report is
// applied. On a connection's first message it binds the credentials to the
// agent: a certificate must belong to the agent sending (or to the uid the
// server just assigned it); an enrollment token admits an agent the store
// does not know yet only if it has uses left and its selector matches the
// agent's description, and never an agent with a revoked certificate. It
// also loads the agent's certificate for its connection settings offers.
func (s *Service) admit(ctx context.Context, c server.Conn, ss *session, msg *protobufs.AgentToServer, reply *protobufs.ServerToAgent, fresh bool) error {
	st, _ := c.State().(*connState)
	var auth *agentAuth
	if st != nil {
		auth, _ = st.auth.(*agentAuth)
	}
	if auth != nil && auth.method == "certificate" {
		if reply.AgentIdentification != nil {
			// The server assigned this connection a new uid; the agent
			// may use it, also on later connections with its old
			// certificate, until it has one naming the new uid (spec:
			// "Using instance_uid in the CSR").
			auth.assigned.Store(&ss.id)
			s.cred.renamed.Store(ss.id, auth.certUID)
		}
		renamedFrom, _ := s.cred.renamed.Load(ss.id)
		if a := auth.assigned.Load(); auth.certUID != ss.id && (a == nil || *a != ss.id) && renamedFrom != auth.certUID {
			return s.refuse(ctx, auth.certUID, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
				"client certificate %s belongs to agent %s, not %s", auth.serial, auth.certUID, ss.id))
		}
	}
	if ss.credLoaded && !fresh && (auth == nil || auth.method == "none" || auth.admitted.Load() ||
		(auth.method == "certificate" && ss.creds().connSerial == auth.serial) ||
		(auth.method == "enrollment-token" && ss.creds().tokenID == auth.token.ID)) {
		// The same credentials as on this agent's previous message (HTTP
		// agents authenticate every request).
		if auth != nil {
			auth.admitted.Store(true)
		}
		s.noteConnStatus(ss, msg)
		return nil
	}
	var certs []*steward.AgentCertificate
	if s.cred.store != nil {
		var err error
		if certs, err = s.cred.store.Certificates(ctx, &ss.id); err != nil {
			return err
		}
	}
	if auth != nil && auth.method == "enrollment-token" && !auth.admitted.Load() {
		for _, ct := range certs {
			if ct.Revoked {
				return s.refuse(ctx, ss.id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
					"agent %s had its certificate %s revoked; an enrollment token does not readmit it", ss.id, ct.Serial))
			}
		}
		stored, err := s.store.Agent(ctx, ss.id)
		if err != nil && steward.ErrorCode(err) != steward.ENOTFOUND {
			return err
		}
		if stored == nil {
			if err := s.enroll(ctx, c, ss, auth.token, msg); err != nil {
				return err
			}
		}
		auth.admitted.Store(true)
	} else if auth != nil {
		auth.admitted.Store(true)
	}
	// The reported connection settings hash is restored from the store
	// with the rest of the agent's state (applyReport).
	ss.credLoaded = true
	var cert *steward.AgentCertificate
	for _, ct := range certs { // newest first
		if !ct.Revoked && s.now().Before(ct.NotAfter) {
			cert = ct
			break
		}
	}
	var serial, tokenID string
	if auth != nil && auth.method == "certificate" {
		serial = auth.serial
	} else if auth != nil && auth.method == "enrollment-token" {
		tokenID = auth.token.ID
	}
	if ss.cred != nil || cert != nil || serial != "" || tokenID != "" {
		c := ss.credsForUpdate()
		c.cert, c.connSerial, c.tokenID = cert, serial, tokenID
		if fresh {
			c.offered = nil
		}
	}
	s.noteConnStatus(ss, msg)
	return nil
}

// noCreds is what creds returns for a session without credential state.
var noCreds agentCred

// creds returns the session's credential state for reading (never nil; do
// not modify the result).
func (ss *session) creds() *agentCred {
	if ss.cred == nil {
		return &noCreds
	}
	return ss.cred
}

// credsForUpdate returns the session's credential state, made on first use.
func (ss *session) credsForUpdate() *agentCred {
	if ss.cred == nil {
		ss.cred = &agentCred{}
	}
	return ss.cred
}

// enroll admits a new agent with an enrollment token.
func (s *Service) enroll(ctx context.Context, c server.Conn, ss *session, t *steward.EnrollmentToken, msg *protobufs.AgentToServer) error {
	if t.Selector != "" {
		sel, err := steward.ParseSelector(t.Selector)
		if err != nil {
			return err
		}
		if msg.AgentDescription == nil {
			return s.refuse(ctx, ss.id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
				"enrollment token %q requires labels; the first message must carry the agent description", t.Name))
		}
		a := &steward.Agent{ID: ss.id, Description: fromDescription(msg.AgentDescription)}
		if !sel.Matches(a.LabelSet()) {
			return s.refuse(ctx, ss.id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
				"enrollment token %q does not admit this agent: its labels do not match %q", t.Name, t.Selector))
		}
	}
	if _, err := s.cred.store.UseEnrollmentToken(ctx, t.ID, s.now()); err != nil {
		if steward.ErrorCode(err) == steward.EFORBIDDEN || steward.ErrorCode(err) == steward.ENOTFOUND {
			return s.refuse(ctx, ss.id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN, "enrollment token %q: %s", t.Name, steward.ErrorMessage(err)))
		}
		return err
	}
	s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(ss.id), Action: steward.AuditAgentEnrolled, Target: ss.id.String(),
		Details: map[string]any{"enrollment_token": t.Name, "remote_addr": c.RemoteAddr()}})
	return nil
}

// noteConnStatus keeps the connection settings hash the agent reported.
func (s *Service) noteConnStatus(ss *session, msg *protobufs.AgentToServer) {
	if st := msg.ConnectionSettingsStatus; st != nil && (ss.cred != nil || len(st.LastConnectionSettingsHash) > 0) {
		ss.credsForUpdate().reported = st.LastConnectionSettingsHash
	}
}

// refuseConn answers a message refused by admit: the WebSocket is closed
// after the error response.
func refuseConn(c server.Conn, err error) {
	if c.Transport() == server.WebSocket {
		switch steward.ErrorCode(err) {
		case steward.EFORBIDDEN, steward.EUNAUTHORIZED:
			// The error response is queued after OnMessage returns; the
			// close frame must follow it.
			time.AfterFunc(100*time.Millisecond, func() { _ = c.Close() })
		}
	}
}
