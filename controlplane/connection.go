package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"sort"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/opamp/server"
	owntel "github.com/stewardhq/steward/telemetry"
)

var _ steward.CredentialService = (*Service)(nil)

// reloadConnectionSettings refreshes the connection settings snapshot.
func (s *Service) reloadConnectionSettings(ctx context.Context) error {
	if s.cred.conns == nil {
		return nil
	}
	list, err := s.cred.conns.ConnectionSettingsList(ctx)
	if err != nil {
		return err
	}
	s.cred.settings.Store(steward.NewConnectionSettingsSet(list))
	return nil
}

// connectionSettings returns the prepared connection settings (possibly
// empty, never nil).
func (s *Service) connectionSettings() *steward.ConnectionSettingsSet {
	if p := s.cred.settings.Load(); p != nil {
		return p
	}
	return noConnectionSettings
}

var noConnectionSettings = &steward.ConnectionSettingsSet{}

// offerConnectionSettings adds ConnectionSettingsOffers to msg, for the
// agent's connection c, when the agent's desired connection settings (the
// merged ConnectionSettings matching its labels, plus its client
// certificate) hash differently from what it last reported in
// connection_settings_status — level-triggered: the spec (ConnectionSettingsStatus.
// last_connection_settings_hash) says the server MUST include them then. They
// are offered once per connection (a new connection, also after a server
// restart, offers them again) until the agent reports their hash.
//
// Each part goes only to an agent with the matching capability: own
// metrics/traces/logs (ReportsOwn*), other connections
// (AcceptsOtherConnectionSettings), and the OpAMP settings — heartbeat
// interval and certificate, always with the non-empty destination_endpoint
// the spec requires (Config.PublicURL, else the URL the agent connected
// to) — (AcceptsOpAMPConnectionSettings). An agent applies OpAMP settings by
// reconnecting; one that does not report ReportsConnectionSettingsStatus
// cannot say it did, so the OpAMP part is offered to it once per distinct
// value, recorded in the store (Agent.OpAMPSettingsOffered) so that a server
// restart changes nothing. A certificate past two thirds of its lifetime
// is renewed first. ss.mu is held.
func (s *Service) offerConnectionSettings(ss *session, c server.Conn, msg *protobufs.ServerToAgent) bool {
	if !ss.credLoaded {
		return false
	}
	caps := ss.caps
	opamp := caps.Has(steward.AgentAcceptsOpAMPConnectionSettings)
	s.maybeRenew(ss)
	var cert *steward.AgentCertificate
	if opamp {
		cert = ss.creds().cert
	}
	o := s.connectionView(ss, c, cert)
	if o == nil {
		return false
	}
	if cr := ss.creds(); bytes.Equal(o.hash, cr.reported) || bytes.Equal(o.hash, cr.offered) {
		return false
	}
	view := o.view
	offer := &protobufs.ConnectionSettingsOffers{Hash: o.hash,
		OwnMetrics: telemetry(view.OwnMetrics), OwnTraces: telemetry(view.OwnTraces), OwnLogs: telemetry(view.OwnLogs)}
	if len(view.Other) > 0 {
		offer.OtherConnections = map[string]*protobufs.OtherConnectionSettings{}
		for name, d := range view.Other {
			offer.OtherConnections[name] = &protobufs.OtherConnectionSettings{DestinationEndpoint: d.Endpoint, Headers: headers(d.Headers)}
		}
	}
	if o.opampHash != nil && (caps.Has(steward.AgentReportsConnectionSettingsStatus) || !bytes.Equal(o.opampHash, ss.creds().opampOffered)) {
		op := &protobufs.OpAMPConnectionSettings{DestinationEndpoint: o.endpoint, HeartbeatIntervalSeconds: s.heartbeatSeconds(view.HeartbeatIntervalSeconds)}
		if cert != nil {
			op.Certificate = &protobufs.TLSCertificate{Cert: cert.PEM}
			if s.cfg.Auth.CA != nil {
				op.Certificate.CaCert = s.cfg.Auth.CA.CertPEM()
			}
		}
		offer.Opamp = op
		if !caps.Has(steward.AgentReportsConnectionSettingsStatus) {
			s.recordOpAMPOffer(ss, o.opampHash)
		}
	}
	ss.credsForUpdate().offered = o.hash
	if offer.Opamp == nil && offer.OwnMetrics == nil && offer.OwnTraces == nil && offer.OwnLogs == nil && offer.OtherConnections == nil {
		return false // only OpAMP settings, which the agent already took
	}
	msg.ConnectionSettings = offer
	serial := ""
	if cert != nil {
		serial = cert.Serial
	}
	s.emit(&steward.Event{Type: steward.EventConnectionSettingsSent, AgentID: ss.id, Message: "connection settings offered",
		Details: map[string]any{"hash": hexString(o.hash), "certificate": serial, "opamp": offer.Opamp != nil}})
	return true
}

// recordOpAMPOffer stores, on the agent, the hash of the OpAMP connection
// settings just offered to it (see offerConnectionSettings). A failure is
// logged: the agent is then offered them once more after a server restart.
// ss.mu is held.
func (s *Service) recordOpAMPOffer(ss *session, hash []byte) {
	ss.credsForUpdate().opampOffered = hash
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	a, err := s.getAgent(ctx, ss.id)
	if err == nil {
		a.OpAMPSettingsOffered = hash
		err = s.putAgent(ctx, a)
	}
	if err != nil {
		s.log.Warn("OpAMP connection settings offer not recorded", "agent", ss.id, "error", err)
	}
}

// connOffer is what one agent should be offered.
type connOffer struct {
	// view holds the merged settings narrowed to what the agent takes.
	view *steward.EffectiveConnectionSettings
	// hash covers everything offered (ConnectionSettingsOffers.hash).
	hash []byte
	// endpoint is the OpAMP destination_endpoint; opampHash covers the
	// OpAMP part (endpoint, heartbeat, certificate), nil when there is none.
	endpoint  string
	opampHash []byte
}

// connMemo remembers an agent's last computed offer and what it was
// computed from, so that a heartbeat does not merge and hash again.
type connMemo struct {
	set    *steward.ConnectionSettingsSet
	labels steward.Labels
	caps   steward.AgentCapabilities
	cert   *steward.AgentCertificate
	ep     connEndpoint
	offer  *connOffer
}

// endpointOf returns the OpAMP URL to offer an agent on connection c:
// Config.PublicURL, else the URL c was opened with.
func (s *Service) endpointOf(c server.Conn) connEndpoint {
	if s.publicURL.host != "" {
		return s.publicURL
	}
	if c != nil {
		if st, _ := c.State().(*connState); st != nil {
			return st.endpoint.Value()
		}
	}
	return connEndpoint{}
}

// connectionView returns what the agent should be offered on connection c —
// the merged settings matching its labels, narrowed to what its capabilities
// take, with its certificate and the OpAMP endpoint — and the hashes; nil
// when there is nothing to offer. The result is memoized per session until
// any input changes.
func (s *Service) connectionView(ss *session, c server.Conn, cert *steward.AgentCertificate) *connOffer {
	set, caps := s.connectionSettings(), ss.caps
	if set.Len() == 0 && cert == nil {
		return nil // nothing to offer, and a heartbeat merges nothing
	}
	var ep connEndpoint
	if caps.Has(steward.AgentAcceptsOpAMPConnectionSettings) {
		ep = s.endpointOf(c)
	}
	if cr := ss.cred; cr != nil {
		if m := &cr.memo; m.set == set && m.labels == ss.labels && m.caps == caps && m.cert == cert && m.ep == ep {
			return m.offer
		}
	}
	eff := set.Merge(ss.labels)
	if eff == nil {
		eff = &steward.EffectiveConnectionSettings{}
	}
	// Only what the agent can take is part of its offer (and its hash).
	view := &steward.EffectiveConnectionSettings{}
	if caps.Has(steward.AgentReportsOwnMetrics) {
		view.OwnMetrics = eff.OwnMetrics
	}
	if caps.Has(steward.AgentReportsOwnTraces) {
		view.OwnTraces = eff.OwnTraces
	}
	if caps.Has(steward.AgentReportsOwnLogs) {
		view.OwnLogs = eff.OwnLogs
	}
	if caps.Has(steward.AgentAcceptsOtherConnectionSettings) {
		view.Other = eff.Other
	}
	s.stewardTelemetry(ss, c, view)
	if caps.Has(steward.AgentAcceptsOpAMPConnectionSettings) {
		view.HeartbeatIntervalSeconds = eff.HeartbeatIntervalSeconds
	}
	var o *connOffer
	if !view.Empty() || cert != nil {
		o = &connOffer{view: view}
		serial := ""
		if cert != nil {
			serial = cert.Serial
		}
		extra := serial
		if view.HeartbeatIntervalSeconds != nil || cert != nil {
			o.endpoint = ep.String()
			hb := s.heartbeatSeconds(view.HeartbeatIntervalSeconds)
			o.opampHash = opampSettingsHash(o.endpoint, hb, serial)
			extra = string(o.opampHash)
		}
		o.hash = view.Hash(extra)
	}
	if o != nil || ss.cred != nil {
		ss.credsForUpdate().memo = connMemo{set: set, labels: ss.labels, caps: caps, cert: cert, ep: ep, offer: o}
	}
	return o
}

// opampSettingsHash is the hash of an OpAMPConnectionSettings offer.
func opampSettingsHash(endpoint string, heartbeat uint64, serial string) []byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(len(endpoint)))
	h.Write(b[:])
	h.Write([]byte(endpoint))
	binary.BigEndian.PutUint64(b[:], heartbeat)
	h.Write(b[:])
	h.Write([]byte(serial))
	return h.Sum(nil)
}

// checkPublicURL accepts "" or an absolute ws, wss, http or https URL with
// a host (the spec requires a WebSocket or HTTP URL).
func checkPublicURL(raw string) (connEndpoint, error) {
	if raw == "" {
		return connEndpoint{}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		return connEndpoint{}, steward.Errorf(steward.EINVALID, "public OpAMP URL %q must be a ws, wss, http or https URL with a host", raw)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/v1/opamp"
	}
	return connEndpoint{scheme: u.Scheme, host: u.Host, path: path}, nil
}

// heartbeatSeconds is the interval offered: the configured one when it is
// between 1 s and the server's own HeartbeatInterval (which the server
// enforces), else the server's.
func (s *Service) heartbeatSeconds(v *uint64) uint64 {
	limit := uint64(s.cfg.HeartbeatInterval / time.Second)
	if v != nil && *v > 0 && *v <= limit {
		return *v
	}
	return max(limit, 1)
}

func telemetry(d *steward.TelemetryDestination) *protobufs.TelemetryConnectionSettings {
	if d == nil {
		return nil
	}
	return &protobufs.TelemetryConnectionSettings{DestinationEndpoint: d.Endpoint, Headers: headers(d.Headers)}
}

func headers(h map[string]string) *protobufs.Headers {
	if len(h) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := &protobufs.Headers{}
	for _, k := range keys {
		out.Headers = append(out.Headers, &protobufs.Header{Key: k, Value: h[k]})
	}
	return out
}

// maybeRenew re-issues the agent's certificate for the same public key
// once two thirds of its lifetime have passed, so the next offer carries
// the new one. ss.mu is held.
func (s *Service) maybeRenew(ss *session) {
	cur := ss.creds().cert
	if cur == nil || s.cfg.Auth.CA == nil || s.cred.store == nil || s.now().Before(ca.RenewAt(cur)) {
		return
	}
	b, _ := pem.Decode(cur.PEM)
	if b == nil {
		return
	}
	prev, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return
	}
	next, err := s.cfg.Auth.CA.Renew(prev, s.cfg.Auth.CertLifetime)
	if err != nil {
		s.log.Warn("certificate renewal failed", "agent", ss.id, "serial", cur.Serial, "error", err)
		return
	}
	rec := ca.Record(next, ss.id)
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.cred.store.PutCertificate(ctx, rec); err != nil {
		s.log.Warn("certificate renewal not stored", "agent", ss.id, "error", err)
		return
	}
	ss.credsForUpdate().cert = rec
	s.audit(ctx, &steward.AuditEntry{Actor: "system", Action: steward.AuditCertificateRotated, Target: ss.id.String(),
		Details: map[string]any{"serial": rec.Serial, "previous": cur.Serial, "not_after": rec.NotAfter}})
	s.emit(&steward.Event{Type: steward.EventCertificateIssued, AgentID: ss.id, Message: "client certificate renewed",
		Details: map[string]any{"serial": rec.Serial, "previous": cur.Serial, "not_after": rec.NotAfter}})
}

// handleCSR signs the CSR in a ConnectionSettingsRequest with the CA; the
// certificate is then offered (offerConnectionSettings). EINVALID (a
// BadRequest ServerErrorResponse, as the spec requires) when the agent
// lacks AcceptsOpAMPConnectionSettings, no CA is configured, or the CSR is
// malformed, badly signed, names no uid or another agent's uid. ss.mu is
// held.
func (s *Service) handleCSR(ctx context.Context, c server.Conn, ss *session, req *protobufs.ConnectionSettingsRequest) error {
	cr := req.GetOpamp().GetCertificateRequest()
	if cr == nil {
		return nil
	}
	fail := func(err error) error {
		s.emit(&steward.Event{Type: steward.EventAgentRefused, AgentID: ss.id, Message: "certificate request refused: " + steward.ErrorMessage(err)})
		s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(ss.id), Action: steward.AuditCertificateRejected, Target: ss.id.String(),
			Details: map[string]any{"reason": steward.ErrorMessage(err), "remote_addr": c.RemoteAddr()}})
		return err
	}
	switch {
	case !ss.caps.Has(steward.AgentAcceptsOpAMPConnectionSettings):
		return fail(steward.Errorf(steward.EINVALID, "certificate request refused: the agent does not declare AcceptsOpAMPConnectionSettings, so it cannot be offered the certificate"))
	case s.cfg.Auth.CA == nil || s.cred.store == nil:
		return fail(steward.Errorf(steward.EINVALID, "certificate request refused: this server has no CA for agent certificates"))
	}
	cert, err := s.cfg.Auth.CA.SignCSR(cr.Csr, ss.id, s.cfg.Auth.CertLifetime)
	if err != nil {
		return fail(steward.Errorf(steward.EINVALID, "certificate request refused: %s", steward.ErrorMessage(err)))
	}
	rec := ca.Record(cert, ss.id)
	if err := s.cred.store.PutCertificate(ctx, rec); err != nil {
		// The spec wants BadRequest for any failure to issue; the agent
		// may send its CSR again.
		s.log.Warn("issued certificate not recorded", "agent", ss.id, "error", err)
		return steward.Errorf(steward.EINVALID, "certificate request failed: the certificate could not be recorded (%s); send the request again later", steward.ErrorMessage(err))
	}
	ss.credsForUpdate().cert = rec
	s.audit(ctx, &steward.AuditEntry{Actor: actorAgent(ss.id), Action: steward.AuditCertificateIssued, Target: ss.id.String(),
		Details: map[string]any{"serial": rec.Serial, "not_after": rec.NotAfter}})
	s.emit(&steward.Event{Type: steward.EventCertificateIssued, AgentID: ss.id, Message: "client certificate issued",
		Details: map[string]any{"serial": rec.Serial, "not_after": rec.NotAfter}})
	return nil
}

// ---- steward.CredentialService ----

func (s *Service) credStore() (steward.CredentialStore, error) {
	if s.cred.store == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "the store keeps no credentials")
	}
	return s.cred.store, nil
}

// RecordAudit appends an audit entry; Actor defaults to ActorFrom(ctx).
func (s *Service) RecordAudit(ctx context.Context, e *steward.AuditEntry) error {
	if s.cred.audit == nil {
		return steward.Errorf(steward.ENOTIMPLEMENTED, "the store keeps no audit log")
	}
	if e.Actor == "" {
		e.Actor = steward.ActorFrom(ctx)
	}
	return s.cred.audit.AppendAudit(ctx, e)
}

// Audit lists audit entries, newest first.
func (s *Service) Audit(ctx context.Context, f steward.AuditFilter) ([]*steward.AuditEntry, error) {
	if s.cred.audit == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "the store keeps no audit log")
	}
	return s.cred.audit.Audit(ctx, f)
}

func (s *Service) audited(ctx context.Context, action, target string, details map[string]any) {
	s.audit(ctx, &steward.AuditEntry{Actor: steward.ActorFrom(ctx), Action: action, Target: target, Details: details})
}

// CreateToken creates an API token; EINVALID for a bad name or role.
func (s *Service) CreateToken(ctx context.Context, name string, role steward.Role, ttl time.Duration) (*steward.Token, string, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, "", err
	}
	if err := steward.ValidateName("token", name); err != nil {
		return nil, "", err
	}
	if _, err := steward.ParseRole(string(role)); err != nil {
		return nil, "", err
	}
	if ttl < 0 {
		return nil, "", steward.Errorf(steward.EINVALID, "token lifetime must be >= 0")
	}
	secret := steward.NewSecret("stw")
	now := time.Now().UTC()
	t := &steward.Token{ID: steward.NewID(), Name: name, Role: role, Hash: steward.HashSecret(secret), CreatedAt: now}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	if err := cs.PutToken(ctx, t); err != nil {
		return nil, "", err
	}
	s.audited(ctx, "token.create", name, map[string]any{"id": t.ID, "role": string(role), "expires_at": t.ExpiresAt})
	return t, secret, nil
}

// Tokens lists API tokens.
func (s *Service) Tokens(ctx context.Context) ([]*steward.Token, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, err
	}
	return cs.Tokens(ctx)
}

// DeleteToken revokes an API token; ENOTFOUND if unknown.
func (s *Service) DeleteToken(ctx context.Context, id string) error {
	cs, err := s.credStore()
	if err != nil {
		return err
	}
	if err := cs.DeleteToken(ctx, id); err != nil {
		return err
	}
	s.audited(ctx, "token.delete", id, nil)
	return nil
}

// AuthenticateToken returns the API token with this secret; EUNAUTHORIZED
// when unknown or expired. LastUsed is updated at most once a minute.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (*steward.Token, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "API tokens are not available")
	}
	t, err := cs.TokenByHash(ctx, steward.HashSecret(secret))
	if steward.ErrorCode(err) == steward.ENOTFOUND {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "unknown API token")
	} else if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if t.Expired(now) {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "API token %q expired", t.Name)
	}
	if now.Sub(t.LastUsed) > time.Minute {
		t.LastUsed = now
		if err := cs.PutToken(ctx, t); err != nil {
			s.log.Debug("token last-used not stored", "error", err)
		}
	}
	return t, nil
}

// CreateEnrollmentToken creates an enrollment token.
func (s *Service) CreateEnrollmentToken(ctx context.Context, t steward.EnrollmentToken) (*steward.EnrollmentToken, string, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, "", err
	}
	if err := steward.ValidateName("enrollment token", t.Name); err != nil {
		return nil, "", err
	}
	if t.Selector != "" {
		if _, err := steward.ParseSelector(t.Selector); err != nil {
			return nil, "", err
		}
	}
	if t.MaxUses < 0 {
		return nil, "", steward.Errorf(steward.EINVALID, "max_uses must be >= 0")
	}
	secret := steward.NewSecret("stwe")
	out := &steward.EnrollmentToken{ID: steward.NewID(), Name: t.Name, Hash: steward.HashSecret(secret), Selector: t.Selector,
		MaxUses: t.MaxUses, ExpiresAt: t.ExpiresAt.UTC(), CreatedAt: time.Now().UTC()}
	if t.ExpiresAt.IsZero() {
		out.ExpiresAt = time.Time{}
	}
	if err := cs.PutEnrollmentToken(ctx, out); err != nil {
		return nil, "", err
	}
	s.audited(ctx, "enrollment_token.create", t.Name, map[string]any{"id": out.ID, "selector": t.Selector, "max_uses": t.MaxUses, "expires_at": out.ExpiresAt})
	return out, secret, nil
}

// EnrollmentTokens lists enrollment tokens.
func (s *Service) EnrollmentTokens(ctx context.Context) ([]*steward.EnrollmentToken, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, err
	}
	return cs.EnrollmentTokens(ctx)
}

// RevokeEnrollmentToken marks an enrollment token revoked; ENOTFOUND if
// unknown.
func (s *Service) RevokeEnrollmentToken(ctx context.Context, id string) error {
	cs, err := s.credStore()
	if err != nil {
		return err
	}
	list, err := cs.EnrollmentTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range list {
		if t.ID == id {
			t.Revoked = true
			if err := cs.PutEnrollmentToken(ctx, t); err != nil {
				return err
			}
			s.audited(ctx, "enrollment_token.revoke", t.Name, map[string]any{"id": id})
			return nil
		}
	}
	return steward.Errorf(steward.ENOTFOUND, "enrollment token %q not found", id)
}

// Certificates lists issued agent certificates.
func (s *Service) Certificates(ctx context.Context, agent *steward.InstanceUID) ([]*steward.AgentCertificate, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, err
	}
	return cs.Certificates(ctx, agent)
}

// RevokeCertificate revokes a certificate and closes the connection of the
// agent that presented it, on this replica and (through the Broadcaster) on
// the others; every later connection with it is refused. ENOTFOUND if
// unknown.
func (s *Service) RevokeCertificate(ctx context.Context, serial string) (*steward.AgentCertificate, error) {
	cs, err := s.credStore()
	if err != nil {
		return nil, err
	}
	c, err := cs.RevokeCertificate(ctx, serial, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	s.audited(ctx, steward.AuditCertificateRevoked, c.AgentID.String(), map[string]any{"serial": c.Serial})
	s.emit(&steward.Event{Type: steward.EventAgentRefused, AgentID: c.AgentID, Message: "client certificate " + c.Serial + " revoked",
		Details: map[string]any{"serial": c.Serial}})
	s.dropRevoked(c.AgentID, c.Serial)
	data, _ := json.Marshal(c.Serial)
	s.broadcast(steward.Notice{Kind: steward.NoticeRevoked, Agent: c.AgentID, Data: data})
	return c, nil
}

// dropRevoked closes the connection of agent id unless it presented
// another certificate, and stops offering the revoked one.
func (s *Service) dropRevoked(id steward.InstanceUID, serial string) {
	ss := s.lookup(id)
	if ss == nil {
		return
	}
	ss.mu.Lock()
	var conn server.Conn
	if cs := ss.creds().connSerial; cs == serial || cs == "" {
		// Its connection with that certificate, or with a token or
		// nothing (the uid is no longer theirs to speak for).
		conn = ss.conn
	}
	if c := ss.cred; c != nil && c.cert != nil && c.cert.Serial == serial {
		c.cert = nil
	}
	ss.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

// CACertificate returns the agent CA's certificate (PEM).
func (s *Service) CACertificate(ctx context.Context) ([]byte, error) {
	if s.cfg.Auth.CA == nil {
		return nil, steward.Errorf(steward.ENOTFOUND, "no agent CA is configured")
	}
	return s.cfg.Auth.CA.CertPEM(), nil
}

func (s *Service) connStore() (steward.ConnectionSettingsStore, error) {
	if s.cred.conns == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "the store keeps no connection settings")
	}
	return s.cred.conns, nil
}

// PutConnectionSettings stores c and reconciles every agent at once. A
// header value equal to steward.RedactedSecret keeps the stored value (see
// ConnectionSettings.KeepSecrets); c itself is not changed.
func (s *Service) PutConnectionSettings(ctx context.Context, c *steward.ConnectionSettings) (*steward.ConnectionSettings, error) {
	cs, err := s.connStore()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	out := *c
	out.UpdatedAt = now
	prev, err := cs.ConnectionSettings(ctx, c.Name)
	switch {
	case err == nil:
		out.CreatedAt = prev.CreatedAt
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		prev, out.CreatedAt = nil, now
	default:
		return nil, err
	}
	if err := out.KeepSecrets(prev); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	if err := cs.PutConnectionSettings(ctx, &out); err != nil {
		return nil, err
	}
	s.audited(ctx, "connection_settings.put", c.Name, map[string]any{"selector": c.Selector})
	s.changed(ctx)
	return &out, nil
}

// ConnectionSettings returns one by name.
func (s *Service) ConnectionSettings(ctx context.Context, name string) (*steward.ConnectionSettings, error) {
	cs, err := s.connStore()
	if err != nil {
		return nil, err
	}
	return cs.ConnectionSettings(ctx, name)
}

// ConnectionSettingsList lists all, by name.
func (s *Service) ConnectionSettingsList(ctx context.Context) ([]*steward.ConnectionSettings, error) {
	cs, err := s.connStore()
	if err != nil {
		return nil, err
	}
	return cs.ConnectionSettingsList(ctx)
}

// DeleteConnectionSettings removes one and reconciles; ENOTFOUND if
// unknown.
func (s *Service) DeleteConnectionSettings(ctx context.Context, name string) error {
	cs, err := s.connStore()
	if err != nil {
		return err
	}
	if err := cs.DeleteConnectionSettings(ctx, name); err != nil {
		return err
	}
	s.audited(ctx, "connection_settings.delete", name, nil)
	s.changed(ctx)
	return nil
}

// stewardTelemetry replaces the StewardTelemetry preset's placeholder in
// view with Steward's receiver on the listener c reached (or the public
// URL) and the agent's own-telemetry token; without a known endpoint the
// destination is not offered.
func (s *Service) stewardTelemetry(ss *session, c server.Conn, view *steward.EffectiveConnectionSettings) {
	if view.OwnMetrics != steward.StewardTelemetryDestination && view.OwnLogs != steward.StewardTelemetryDestination {
		return
	}
	ep := s.endpointOf(c)
	dest := func(path string) *steward.TelemetryDestination {
		if ep.host == "" {
			return nil
		}
		return &steward.TelemetryDestination{Endpoint: telemetryEndpoint(ep, path),
			Headers: map[string]string{"Authorization": "Bearer " + s.TelemetryToken(ss.id)}}
	}
	if view.OwnMetrics == steward.StewardTelemetryDestination {
		view.OwnMetrics = dest(owntel.MetricsPath)
	}
	if view.OwnLogs == steward.StewardTelemetryDestination {
		view.OwnLogs = dest(owntel.LogsPath)
	}
}
