package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
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
	// RefusalBackoff bounds the cool-down after a refusal: a credential
	// refused from a host is answered 429 with Retry-After at the upgrade
	// until it ends; it doubles with each refusal from Min (default 5 s)
	// to Max (default 5 minutes). See docs/security.md.
	RefusalBackoff Backoff
	// AuditWindow coalesces identical refusals (same action, target and
	// reason): the first is recorded at once, the rest as one entry per
	// window with a count; default 1 minute.
	AuditWindow time.Duration
}

// Backoff bounds a delay that doubles from Min to Max.
type Backoff struct{ Min, Max time.Duration }

// agentAuth is the credential a connection presented, as authenticate
// found it (never modified afterwards).
type agentAuth struct {
	method string // "certificate", "enrollment-token" or "none"
	// certificate
	certUID steward.InstanceUID
	serial  string
	// enrollment token
	token *steward.EnrollmentToken
	// key names the credential and the remote host, for cool-downs (see
	// cooldownKey; empty for noCredentials).
	key string
}

// noCredentials is the agentAuth of every connection that presents no
// credentials: one shared record rather than one kept per connected agent
// (its cool-down key is made from the remote address when a refusal needs
// it).
var noCredentials = &agentAuth{method: "none"}

// cooldownKey names the credential a connection from remote presented and
// the remote host, for cool-downs.
func (a *agentAuth) cooldownKey(remote string) string {
	if a.key == "" {
		return "none " + hostOf(remote)
	}
	return a.key
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
	// bindings keeps which enrollment token admitted each uid.
	bindings steward.AgentBindingStore
	// both reads an agent's certificates and binding at once, when store
	// and bindings are one store that can (nil otherwise).
	both steward.AgentCredentialsStore
	// cooldown answers credentials refused from a host with 429 at the
	// upgrade for a while (cooldown.go); coalesce keeps repeated refusals
	// from flooding the audit log.
	cooldown *cooldowns
	coalesce *coalescer
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
	// bound: the uid belongs to a credential (a certificate or an
	// enrollment binding), so a connection without one may not speak for
	// it.
	bound bool
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
	if a.RefusalBackoff.Min <= 0 {
		a.RefusalBackoff.Min = 5 * time.Second
	}
	if a.RefusalBackoff.Max < a.RefusalBackoff.Min {
		a.RefusalBackoff.Max = max(a.RefusalBackoff.Min, 5*time.Minute)
	}
	if a.AuditWindow <= 0 {
		a.AuditWindow = time.Minute
	}
	s.cred.bindings, _ = s.store.(steward.AgentBindingStore)
	s.cred.cooldown = newCooldowns(a.RefusalBackoff.Min, a.RefusalBackoff.Max)
	s.cred.coalesce = newCoalescer(a.AuditWindow)
	s.cred.store = a.Credentials
	if both, ok := a.Credentials.(steward.AgentCredentialsStore); ok && s.cred.bindings != nil && any(a.Credentials) == any(s.cred.bindings) {
		s.cred.both = both
	}
	s.cred.audit = a.Audit
	s.cred.conns, _ = s.store.(steward.ConnectionSettingsStore)
}

func (s *Service) now() time.Time { return s.cfg.Auth.Now().UTC() }

// authenticate admits or refuses an agent connection before any message is
// read: a client certificate (verified by the CA, known to the store and
// not revoked), else an enrollment token (known, not expired, revoked or
// used up), else nothing when authentication is not required.
// EUNAUTHORIZED (401) for missing, unknown or expired credentials,
// EFORBIDDEN (403) for revoked ones, both with Retry-After; ETOOMANY (429
// with Retry-After) while the credential is cooling down after a refusal
// from the same host; EUNAVAILABLE when the store cannot be read.
func (s *Service) authenticate(r *http.Request) (*agentAuth, error) {
	ctx := r.Context()
	host := hostOf(r.RemoteAddr)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		cert := r.TLS.PeerCertificates[0]
		key := "cert " + ca.Serial(cert) + " " + host
		if err := s.coolingDown(key); err != nil {
			return nil, err
		}
		return s.authCertificate(ctx, key, cert, r.TLS.VerifiedChains, r.RemoteAddr)
	}
	// Only the Bearer scheme is ours; another (e.g. for a proxy in front)
	// counts as no credentials.
	if scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		secret = strings.TrimSpace(secret)
		hash := steward.HashSecret(secret)
		key := "token " + hexString(hash[:8]) + " " + host
		if err := s.coolingDown(key); err != nil {
			return nil, err
		}
		if secret == "" {
			return nil, s.refuse(ctx, key, steward.InstanceUID{}, r.RemoteAddr, steward.Errorf(steward.EUNAUTHORIZED, "empty bearer token: send Authorization: Bearer <enrollment token>"))
		}
		return s.authToken(ctx, key, hash, r.RemoteAddr)
	}
	if s.cfg.Auth.Require {
		key := noCredentials.cooldownKey(r.RemoteAddr)
		if err := s.coolingDown(key); err != nil {
			return nil, err
		}
		// Not audited: such requests carry no identity to record.
		s.cred.cooldown.refused(key, time.Now())
		return nil, server.RetryAfter(steward.Errorf(steward.EUNAUTHORIZED,
			"agent authentication required: present an enrollment token (Authorization: Bearer) or a client certificate"), s.cfg.Auth.RefusalBackoff.Min)
	}
	return noCredentials, nil
}

func (s *Service) authCertificate(ctx context.Context, key string, cert *x509.Certificate, chains [][]*x509.Certificate, remote string) (*agentAuth, error) {
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
			return nil, s.refuse(ctx, key, uid, remote, steward.Errorf(steward.EUNAUTHORIZED, "%s (serial %s)", msg, serial))
		}
	}
	if s.cred.store == nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "client certificates are not accepted: the store keeps no credentials")
	}
	rec, err := s.cred.store.Certificate(ctx, serial)
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		return nil, s.refuse(ctx, key, uid, remote, steward.Errorf(steward.EUNAUTHORIZED, "unknown client certificate (serial %s)", serial))
	case err != nil:
		return nil, steward.Errorf(steward.EUNAVAILABLE, "cannot check the client certificate now")
	case rec.Revoked:
		return nil, s.refuse(ctx, key, rec.AgentID, remote, steward.Errorf(steward.EFORBIDDEN, "client certificate %s was revoked", serial))
	case !s.now().Before(rec.NotAfter):
		return nil, s.refuse(ctx, key, rec.AgentID, remote, steward.Errorf(steward.EUNAUTHORIZED, "client certificate %s expired", serial))
	}
	// The certificate names its uid: a second live connection with it is
	// refused here, before the upgrade (see admit for the others).
	if live, ok := s.liveElsewhere(rec.AgentID, nil); ok && live == serial {
		return nil, s.duplicate(ctx, key, rec.AgentID, remote)
	}
	return &agentAuth{method: "certificate", certUID: rec.AgentID, serial: serial, key: key}, nil
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

func (s *Service) authToken(ctx context.Context, key string, hash []byte, remote string) (*agentAuth, error) {
	if s.cred.store == nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "enrollment tokens are not accepted: the store keeps no credentials")
	}
	t, err := s.cred.store.EnrollmentTokenByHash(ctx, hash)
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		return nil, s.refuse(ctx, key, steward.InstanceUID{}, remote, steward.Errorf(steward.EUNAUTHORIZED, "unknown enrollment token"))
	case err != nil:
		return nil, steward.Errorf(steward.EUNAVAILABLE, "cannot check the enrollment token now")
	case t.Revoked:
		return nil, s.refuse(ctx, key, steward.InstanceUID{}, remote, steward.Errorf(steward.EFORBIDDEN, "enrollment token %q was revoked", t.Name))
	case !t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt):
		return nil, s.refuse(ctx, key, steward.InstanceUID{}, remote, steward.Errorf(steward.EUNAUTHORIZED, "enrollment token %q expired", t.Name))
	}
	// Uses are counted per new agent, in admit.
	return &agentAuth{method: "enrollment-token", token: t, key: key}, nil
}

// coolingDown returns ETOOMANY (429 with Retry-After) while key is cooling
// down after a refusal; the attempt is counted in the coalesced audit.
func (s *Service) coolingDown(key string) error {
	left := s.cred.cooldown.left(key, time.Now())
	if left <= 0 {
		return nil
	}
	return server.RetryAfter(steward.Errorf(steward.ETOOMANY, "refused recently: retry in %s", left.Round(time.Second)), left)
}

// refuse records a refused agent — an event on the agent when known and an
// audit entry, both coalesced per reason (see coalescer) — starts or
// extends the cool-down of the credential key and returns err, carrying
// that cool-down as its Retry-After.
func (s *Service) refuse(ctx context.Context, key string, id steward.InstanceUID, remote string, err error) error {
	msg := steward.ErrorMessage(err)
	target := hostOf(remote)
	if !id.IsZero() {
		target = id.String()
	}
	wait := s.cred.cooldown.refused(key, time.Now())
	code := steward.ErrorCode(err)
	s.cred.coalesce.note(steward.AuditAgentRefused+" "+target+" "+msg, time.Now(), func(n int, first, last time.Time) {
		s.recordRefusal(ctx, id, target, remote, msg, code, n, first, last)
	})
	return server.RetryAfter(err, wait)
}

// recordRefusal writes one (possibly coalesced) refusal: n occurrences
// between first and last.
func (s *Service) recordRefusal(ctx context.Context, id steward.InstanceUID, target, remote, msg, code string, n int, first, last time.Time) {
	s.log.Info("agent refused", "agent", id, "remote", remote, "reason", msg, "count", n)
	details := map[string]any{"reason": msg, "remote_addr": remote}
	if n > 1 {
		details["count"], details["first_time"], details["last_time"] = n, first.UTC(), last.UTC()
	}
	if !id.IsZero() {
		s.emit(&steward.Event{Type: steward.EventAgentRefused, AgentID: id, Message: "agent refused: " + msg,
			Details: map[string]any{"remote_addr": remote, "code": code, "count": n}})
	}
	s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(id), Action: steward.AuditAgentRefused, Target: target, Details: details})
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

// uidBinding is what binds a uid to credentials, as the store says.
type uidBinding struct {
	certs   []*steward.AgentCertificate // newest first
	tokenID string                      // the enrollment token that admitted it
}

// cert returns the newest certificate in force, or nil.
func (b *uidBinding) cert(now time.Time) *steward.AgentCertificate {
	for _, c := range b.certs {
		if !c.Revoked && now.Before(c.NotAfter) {
			return c
		}
	}
	return nil
}

// revoked returns a revoked certificate of the uid, or nil.
func (b *uidBinding) revoked() *steward.AgentCertificate {
	for _, c := range b.certs {
		if c.Revoked {
			return c
		}
	}
	return nil
}

func (b *uidBinding) bound() bool { return len(b.certs) > 0 || b.tokenID != "" }

// bindingOf reads what binds uid id.
func (s *Service) bindingOf(ctx context.Context, id steward.InstanceUID) (*uidBinding, error) {
	b := &uidBinding{}
	if s.cred.both != nil {
		certs, eb, err := s.cred.both.AgentCredentials(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read credentials of agent %s: %w", id, err)
		}
		b.certs = certs
		if eb != nil {
			b.tokenID = eb.EnrollmentTokenID
		}
		return b, nil
	}
	if s.cred.store != nil {
		var err error
		if b.certs, err = s.cred.store.Certificates(ctx, &id); err != nil {
			return nil, fmt.Errorf("read certificates of agent %s: %w", id, err)
		}
	}
	if s.cred.bindings != nil {
		eb, err := s.cred.bindings.AgentBinding(ctx, id)
		switch {
		case err == nil:
			b.tokenID = eb.EnrollmentTokenID
		case steward.ErrorCode(err) != steward.ENOTFOUND:
			return nil, fmt.Errorf("read binding of agent %s: %w", id, err)
		}
	}
	return b, nil
}

// admission is what admit established for a uid on a connection.
type admission struct {
	id      steward.InstanceUID
	renamed bool        // id was assigned by the server in this reply
	binding *uidBinding // nil: the session already holds it (HTTP poll)
}

// admit decides, before any state of the uid is touched, whether
// connection c may speak for uid id (the first message of a WebSocket, a
// uid the server assigned on it, or any plain-HTTP request):
//
//   - a certificate speaks for the uid it names (or one the server
//     assigned to it);
//   - an enrollment token speaks for a uid bound to the same enrollment,
//     or for an unbound uid, which it then enrolls: the uid is bound to it,
//     agent.enrolled is audited and the token's use is counted (max_uses)
//     unless the agent was already known. It never speaks for a uid bound
//     to a certificate (revoked or not) or to another enrollment;
//   - no credentials speak only for uids bound to nothing.
//
// One live connection speaks for a uid: a certificate whose uid is live on
// another connection with the same certificate is refused with
// EUNAVAILABLE and a Retry-After (with another credential, it takes over:
// the agent moved to its new certificate);
// anything else claiming a live uid — or a bound uid it holds no
// credential for, without authentication required — is given a uid of its
// own (AgentIdentification), admitted as a new agent. Refusals are
// EFORBIDDEN (audited, coalesced); EUNAVAILABLE when the store cannot be
// read.
func (s *Service) admit(ctx context.Context, c server.Conn, st *connState, id steward.InstanceUID, msg *protobufs.AgentToServer, assigned bool) (*admission, error) {
	a := st.auth
	if c.Transport() == server.HTTP && !assigned {
		if ss := s.lookup(id); ss != nil && ss.admittedWith(a) {
			return &admission{id: id}, nil // the next poll of an admitted agent
		}
	}
	remote := c.RemoteAddr()
	if a.method == "certificate" && id != a.certUID && !assigned {
		if from, _ := s.cred.renamed.Load(id); from != a.certUID {
			return nil, s.refuse(ctx, a.cooldownKey(remote), a.certUID, remote, steward.Errorf(steward.EFORBIDDEN,
				"client certificate %s belongs to agent %s, not %s", a.serial, a.certUID, id))
		}
	}
	b, err := s.bindingOf(ctx, id)
	if err != nil {
		s.log.Warn("cannot admit agent now", "agent", id, "error", err)
		return nil, steward.Errorf(steward.EUNAVAILABLE, "cannot check the agent's credentials now")
	}
	adm := &admission{id: id, binding: b}
	switch a.method {
	case "enrollment-token":
		if rc := b.revoked(); rc != nil {
			return nil, s.refuse(ctx, a.cooldownKey(remote), id, remote, steward.Errorf(steward.EFORBIDDEN,
				"agent %s had its certificate %s revoked; an enrollment token does not readmit it", id, rc.Serial))
		}
		if len(b.certs) > 0 {
			return nil, s.refuse(ctx, a.cooldownKey(remote), id, remote, steward.Errorf(steward.EFORBIDDEN,
				"agent %s holds a client certificate; connect with it (an enrollment token does not speak for it)", id))
		}
		if b.tokenID != "" && b.tokenID != a.token.ID {
			return nil, s.refuse(ctx, a.cooldownKey(remote), id, remote, steward.Errorf(steward.EFORBIDDEN,
				"agent %s was enrolled with another enrollment token", id))
		}
	case "none":
		if b.bound() {
			s.noteReassigned(ctx, id, remote, "the uid is bound to credentials this connection does not present")
			adm.renew()
		}
	}
	if live, ok := s.liveElsewhere(id, c); ok && !adm.renamed {
		switch {
		case a.method == "certificate" && live == a.serial:
			return nil, s.duplicate(ctx, a.cooldownKey(remote), id, remote)
		case a.method == "certificate":
			// The agent moved to a newer credential (a certificate
			// from the CSR flow, or a renewal): it takes over.
		default:
			s.noteReassigned(ctx, id, remote, "the uid is in use by another live connection")
			adm.renew()
		}
	}
	if a.method == "certificate" && (assigned || adm.renamed) {
		// The agent may use the new uid, also on later connections with
		// its old certificate, until it has one naming it (spec: "Using
		// instance_uid in the CSR").
		s.cred.renamed.Store(adm.id, a.certUID)
	}
	if a.method == "enrollment-token" && adm.binding.tokenID == "" {
		if err := s.enroll(ctx, c, a, adm.id, msg); err != nil {
			return nil, err
		}
		adm.binding.tokenID = a.token.ID
	}
	return adm, nil
}

// renew gives the admission a fresh uid, bound to nothing.
func (adm *admission) renew() {
	adm.id = steward.NewInstanceUID()
	adm.renamed = true
	adm.binding = &uidBinding{}
}

// duplicate refuses a certificate whose uid another live connection speaks
// for: EUNAVAILABLE with a Retry-After past the liveness window, so a
// connection that died without closing has been replaced by then.
func (s *Service) duplicate(ctx context.Context, key string, id steward.InstanceUID, remote string) error {
	msg := "instance_uid " + id.String() + " is in use by another live connection"
	s.cred.coalesce.note("agent.duplicate_uid "+id.String(), time.Now(), func(n int, first, last time.Time) {
		s.recordRefusal(ctx, id, id.String(), remote, msg, steward.EUNAVAILABLE, n, first, last)
	})
	wait := max(s.cred.cooldown.refused(key, time.Now()), s.livenessWindow())
	return server.RetryAfter(steward.Errorf(steward.EUNAVAILABLE, "%s; retry later", msg), wait)
}

// noteReassigned records (coalesced) that a connection claiming id was
// given a uid of its own.
func (s *Service) noteReassigned(ctx context.Context, id steward.InstanceUID, remote, why string) {
	s.log.Warn("instance_uid claimed by another agent: assigning a new one", "instance_uid", id, "remote", remote, "reason", why)
	s.cred.coalesce.note("agent.uid_reassigned "+id.String()+" "+why, time.Now(), func(n int, first, last time.Time) {
		details := map[string]any{"remote_addr": remote, "reason": why, "count": n}
		if n > 1 {
			details["first_time"], details["last_time"] = first.UTC(), last.UTC()
		}
		s.emit(&steward.Event{Type: steward.EventDuplicateUID, AgentID: id, Message: "another agent claimed this instance_uid and was given a new one: " + why, Details: details})
		s.audit(ctx, &steward.AuditEntry{Actor: "agent", Action: steward.AuditAgentUIDReassigned, Target: id.String(), Details: details})
	})
}

// livenessWindow is how recently a connection must have been heard from to
// be taken as alive when another claims its uid.
func (s *Service) livenessWindow() time.Duration {
	return s.cfg.HeartbeatInterval + s.cfg.HeartbeatInterval/2
}

// liveElsewhere reports whether a WebSocket other than c speaks for uid id
// and was heard from within the liveness window (an older one is taken to
// have died without closing, and is replaced), and the certificate serial
// that connection presented ("" for none).
func (s *Service) liveElsewhere(id steward.InstanceUID, c server.Conn) (serial string, live bool) {
	ss := s.lookup(id)
	if ss == nil {
		return "", false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conn == nil || ss.conn == c || ss.closed {
		return "", false
	}
	w := s.livenessWindow()
	live = time.Since(time.Unix(0, ss.lastSeen)) <= w || time.Since(ss.conn.LastReceived()) <= w
	return ss.creds().connSerial, live
}

// admittedWith reports whether the plain-HTTP session was admitted with
// credential a (so the agent's next poll needs no store access).
func (ss *session) admittedWith(a *agentAuth) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.credLoaded || ss.closed || !ss.http {
		return false // (a WebSocket agent's uid goes through admit)
	}
	c := ss.creds()
	switch a.method {
	case "certificate":
		return c.connSerial == a.serial
	case "enrollment-token":
		return c.tokenID == a.token.ID
	}
	return !c.bound
}

// attach keeps what admission established in the session (ss.mu held):
// the credential of the connection and the certificate to offer.
func (s *Service) attach(ss *session, a *agentAuth, adm *admission, fresh bool) {
	if adm.binding == nil {
		return
	}
	ss.credLoaded = true
	cert := adm.binding.cert(s.now())
	var serial, tokenID string
	switch a.method {
	case "certificate":
		serial = a.serial
	case "enrollment-token":
		tokenID = a.token.ID
	}
	bound := adm.binding.bound()
	if ss.cred != nil || cert != nil || serial != "" || tokenID != "" || bound {
		c := ss.credsForUpdate()
		c.cert, c.connSerial, c.tokenID, c.bound = cert, serial, tokenID, bound
		if fresh {
			c.offered = nil
		}
	}
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

// enroll admits an unbound agent with an enrollment token: its selector
// must match the agent's description, the uid is bound to the token (the
// first binding wins across replicas), and the use is counted — unless the
// store already knows the agent (see below).
func (s *Service) enroll(ctx context.Context, c server.Conn, a *agentAuth, id steward.InstanceUID, msg *protobufs.AgentToServer) error {
	t := a.token
	if t.Selector != "" {
		sel, err := steward.ParseSelector(t.Selector)
		if err != nil {
			return err
		}
		if msg.AgentDescription == nil {
			return s.refuse(ctx, a.cooldownKey(c.RemoteAddr()), id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
				"enrollment token %q requires labels; the first message must carry the agent description", t.Name))
		}
		ag := &steward.Agent{ID: id, Description: fromDescription(msg.AgentDescription)}
		if !sel.MatchLabels(ag) {
			return s.refuse(ctx, a.cooldownKey(c.RemoteAddr()), id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
				"enrollment token %q does not admit this agent: its labels do not match %q", t.Name, t.Selector))
		}
	}
	if s.cred.bindings != nil {
		b, created, err := s.cred.bindings.BindAgent(ctx, &steward.AgentBinding{AgentID: id, EnrollmentTokenID: t.ID, CreatedAt: s.now()})
		if err != nil {
			return steward.Errorf(steward.EUNAVAILABLE, "cannot enroll the agent now")
		}
		if !created {
			if b.EnrollmentTokenID != t.ID {
				return s.refuse(ctx, a.cooldownKey(c.RemoteAddr()), id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
					"agent %s was enrolled with another enrollment token", id))
			}
			return nil // enrolled by a concurrent connection with this token
		}
	}
	if known, err := s.getAgent(ctx, id); err == nil && known != nil {
		// An agent this server knew before it was bound (admitted
		// before bindings existed, or without credentials): bound now,
		// not counted again, so an upgrade does not lock out agents of
		// a used-up token.
		s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(id), Action: steward.AuditAgentEnrolled, Target: id.String(),
			Details: map[string]any{"enrollment_token": t.Name, "remote_addr": c.RemoteAddr(), "known_agent": true}})
		return nil
	} else if err != nil && steward.ErrorCode(err) != steward.ENOTFOUND {
		return steward.Errorf(steward.EUNAVAILABLE, "cannot enroll the agent now")
	}
	if _, err := s.cred.store.UseEnrollmentToken(ctx, t.ID, s.now()); err != nil {
		if s.cred.bindings != nil {
			if uerr := s.cred.bindings.UnbindAgent(ctx, id); uerr != nil {
				s.log.Warn("binding of a refused enrollment not removed", "agent", id, "error", uerr)
			}
		}
		if code := steward.ErrorCode(err); code == steward.EFORBIDDEN || code == steward.ENOTFOUND {
			return s.refuse(ctx, a.cooldownKey(c.RemoteAddr()), id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN, "enrollment token %q: %s", t.Name, steward.ErrorMessage(err)))
		}
		return steward.Errorf(steward.EUNAVAILABLE, "cannot enroll the agent now")
	}
	s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(id), Action: steward.AuditAgentEnrolled, Target: id.String(),
		Details: map[string]any{"enrollment_token": t.Name, "remote_addr": c.RemoteAddr()}})
	return nil
}

// noteConnStatus keeps the connection settings hash the agent reported.
func (s *Service) noteConnStatus(ss *session, msg *protobufs.AgentToServer) {
	if st := msg.ConnectionSettingsStatus; st != nil && (ss.cred != nil || len(st.LastConnectionSettingsHash) > 0) {
		ss.credsForUpdate().reported = st.LastConnectionSettingsHash
	}
}

// refuseConn ends a WebSocket whose message was refused: it is closed
// after the error response.
func refuseConn(c server.Conn, err error) {
	if c.Transport() != server.WebSocket {
		return
	}
	switch steward.ErrorCode(err) {
	case steward.EFORBIDDEN, steward.EUNAUTHORIZED, steward.EUNAVAILABLE:
		// The error response is queued after OnMessage returns; the
		// close frame must follow it.
		time.AfterFunc(100*time.Millisecond, func() { _ = c.Close() })
	}
}
