package controlplane

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/stewardhq/steward"
	owntel "github.com/stewardhq/steward/telemetry"
)

// Own-telemetry credentials. The StewardTelemetry preset offers each agent
// Steward's OTLP receiver with "Authorization: Bearer stwt1.<uid>.<mac>",
// an HMAC of the uid under a key derived from the agent CA's private key
// (so replicas sharing the CA agree, and no secret is stored): Steward
// cannot offer an enrollment token back (it keeps only their hashes), and
// the supervisors put offered headers, not their OpAMP credentials, on the
// exporter. The receiver also admits the agents' OpAMP credentials.
const telemetryTokenPrefix = "stwt1."

var _ owntel.Authenticator = (*Service)(nil)

// initTelemetryKey derives the own-telemetry key: from the CA, else a
// random one for this process (tokens change at a restart; the new hash
// of the offer makes the server offer them again).
func (s *Service) initTelemetryKey() {
	if s.cfg.Auth.CA != nil {
		s.telemetryKey = s.cfg.Auth.CA.DeriveKey("own-telemetry token v1")
		return
	}
	s.telemetryKey = make([]byte, 32)
	_, _ = rand.Read(s.telemetryKey)
}

// TelemetryToken returns the bearer credential offered to agent id for
// Steward's own-telemetry receiver.
func (s *Service) TelemetryToken(id steward.InstanceUID) string {
	return telemetryTokenPrefix + hex.EncodeToString(id[:]) + "." + base64.RawURLEncoding.EncodeToString(s.telemetryMAC(id))
}

func (s *Service) telemetryMAC(id steward.InstanceUID) []byte {
	m := hmac.New(sha256.New, s.telemetryKey)
	m.Write(id[:])
	return m.Sum(nil)
}

// telemetryEndpoint is the receiver's URL for an agent connected at ep:
// the same host over http(s), the path replaced.
func telemetryEndpoint(ep connEndpoint, path string) string {
	scheme := "http"
	if ep.scheme == "wss" || ep.scheme == "https" {
		scheme = "https"
	}
	return scheme + "://" + ep.host + path
}

// AuthenticateTelemetry admits a request to the own-telemetry receiver:
// an own-telemetry token Steward offered (it names its agent), or what the
// OpAMP listener accepts (authenticate: a client certificate, an
// enrollment token, or nothing when authentication is not required), with
// the same refusals, cool-downs and audit.
func (s *Service) AuthenticateTelemetry(r *http.Request) (owntel.Caller, error) {
	if scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") &&
		strings.HasPrefix(strings.TrimSpace(secret), telemetryTokenPrefix) {
		return s.authTelemetryToken(r, strings.TrimSpace(secret))
	}
	a, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	c := &telemetryCaller{s: s, auth: a}
	if a.method == "certificate" {
		c.uid = a.certUID
	}
	return c, nil
}

func (s *Service) authTelemetryToken(r *http.Request, secret string) (owntel.Caller, error) {
	key := "telemetry " + hostOf(r.RemoteAddr)
	if err := s.coolingDown(key); err != nil {
		return nil, err
	}
	rest := strings.TrimPrefix(secret, telemetryTokenPrefix)
	uidHex, macB64, _ := strings.Cut(rest, ".")
	id, err1 := steward.ParseInstanceUID(uidHex)
	mac, err2 := base64.RawURLEncoding.DecodeString(macB64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.telemetryMAC(id)) {
		return nil, s.refuse(r.Context(), key, steward.InstanceUID{}, r.RemoteAddr, steward.Errorf(steward.EUNAUTHORIZED, "invalid own-telemetry token"))
	}
	if err := s.telemetryAgentInForce(r.Context(), id); err != nil {
		return nil, s.refuse(r.Context(), key, id, r.RemoteAddr, err)
	}
	return &telemetryCaller{s: s, uid: id}, nil
}

// telemetryAgentInForce checks that the agent an own-telemetry token names
// still exists and, when certificates bind it, that one is in force (a
// revoked agent's token stops working). A live session on this replica
// was admitted with its credentials and is enough.
func (s *Service) telemetryAgentInForce(ctx context.Context, id steward.InstanceUID) error {
	if ss := s.lookup(id); ss != nil {
		return nil
	}
	if _, err := s.getAgent(ctx, id); err != nil {
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			return steward.Errorf(steward.EUNAUTHORIZED, "own-telemetry token of an unknown agent %s", id)
		}
		return steward.Errorf(steward.EUNAVAILABLE, "cannot check the agent now")
	}
	b, err := s.bindingOf(ctx, id)
	if err != nil {
		return steward.Errorf(steward.EUNAVAILABLE, "cannot check the agent's credentials now")
	}
	if len(b.certs) > 0 && b.cert(s.now()) == nil {
		return steward.Errorf(steward.EFORBIDDEN, "the certificates of agent %s are revoked or expired", id)
	}
	return nil
}

// telemetryCaller is an admitted own-telemetry request: uid is the agent
// its credential names (an own-telemetry token or a client certificate),
// else auth (an enrollment token or no credentials) speaks for the agents
// admit would let it speak for.
type telemetryCaller struct {
	s    *Service
	auth *agentAuth
	uid  steward.InstanceUID
}

// Agent maps service.instance.id to an agent. A credential that names an
// agent takes data without service.instance.id, or with one that is not
// another known agent's (a collector makes up its own when not told the
// uid); an enrollment token or no credentials need the uid in
// service.instance.id, of an agent bound to that token (or to nothing).
func (c *telemetryCaller) Agent(ctx context.Context, sid string) (steward.InstanceUID, error) {
	var claimed steward.InstanceUID
	if sid != "" {
		claimed, _ = steward.ParseInstanceUID(sid)
	}
	if !c.uid.IsZero() {
		if claimed.IsZero() || claimed == c.uid || !c.s.agentKnown(ctx, claimed) {
			return c.uid, nil
		}
		if v, ok := c.s.cred.renamed.Load(claimed); ok && v.(steward.InstanceUID) == c.uid {
			return c.uid, nil
		}
		return steward.InstanceUID{}, steward.Errorf(steward.EFORBIDDEN, "service.instance.id %s is another agent than the credential's %s", claimed, c.uid)
	}
	if claimed.IsZero() {
		return steward.InstanceUID{}, steward.Errorf(steward.EINVALID,
			"resource attribute service.instance.id must be the agent's instance uid (%q is not) when authenticating with an enrollment token or none", sid)
	}
	tokenID, bound, err := c.s.credentialOf(ctx, claimed)
	if err != nil {
		return steward.InstanceUID{}, err
	}
	switch {
	case c.auth.method == "enrollment-token" && tokenID == c.auth.token.ID:
		return claimed, nil
	case c.auth.method == "none" && !bound:
		return claimed, nil
	}
	return steward.InstanceUID{}, steward.Errorf(steward.EFORBIDDEN, "these credentials do not speak for agent %s", claimed)
}

// agentKnown reports whether id is connected here or stored.
func (s *Service) agentKnown(ctx context.Context, id steward.InstanceUID) bool {
	if s.lookup(id) != nil {
		return true
	}
	_, err := s.getAgent(ctx, id)
	return err == nil
}

// credentialOf returns the enrollment token a known agent is bound to and
// whether any credential binds it: from its live session here, else from
// the store. ENOTFOUND for an unknown agent.
func (s *Service) credentialOf(ctx context.Context, id steward.InstanceUID) (tokenID string, bound bool, err error) {
	if ss := s.lookup(id); ss != nil {
		ss.mu.Lock()
		loaded, cr := ss.credLoaded, ss.cred
		if cr != nil {
			tokenID, bound = cr.tokenID, cr.bound
		}
		ss.mu.Unlock()
		if loaded {
			return tokenID, bound, nil
		}
	}
	if _, err := s.getAgent(ctx, id); err != nil {
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			return "", false, steward.Errorf(steward.EFORBIDDEN, "unknown agent %s", id)
		}
		return "", false, steward.Errorf(steward.EUNAVAILABLE, "cannot read agent %s now", id)
	}
	b, err := s.bindingOf(ctx, id)
	if err != nil {
		return "", false, steward.Errorf(steward.EUNAVAILABLE, "cannot read the credentials of agent %s now", id)
	}
	return b.tokenID, b.bound(), nil
}
