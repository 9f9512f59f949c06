package steward

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

// Role is what an API token (or session) may do through the REST API.
// Roles are ordered: each includes everything the ones before it may do.
type Role string

const (
	// RoleViewer may read everything (GET) and change nothing.
	RoleViewer Role = "viewer"
	// RoleOperator may also change configs, assignments, rollouts and act
	// on agents (labels, restart, custom messages, delete).
	RoleOperator Role = "operator"
	// RoleAdmin may also manage API tokens, enrollment tokens, agent
	// certificates and connection settings.
	RoleAdmin Role = "admin"
)

// ParseRole returns the named role; EINVALID for any other name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleViewer, RoleOperator, RoleAdmin:
		return r, nil
	}
	return "", Errorf(EINVALID, "invalid role %q: use viewer, operator or admin", s)
}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Allows reports whether a holder of r may do what need requires. An
// unknown role allows nothing.
func (r Role) Allows(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// Token is an API token for the REST API and the UI. The secret is shown
// once, when the token is created; only its SHA-256 is stored.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt: zero means the token does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

// Expired reports whether the token has expired at now.
func (t *Token) Expired(now time.Time) bool { return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) }

// EnrollmentToken admits new agents: an agent presents the secret as
// "Authorization: Bearer <secret>" on its OpAMP connection until it holds a
// client certificate. It may be limited by expiry, number of uses (distinct
// agents) and labels the agent must report.
type EnrollmentToken struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Hash []byte `json:"-"`
	// Selector, when set, must match the labels the agent reports in its
	// description; otherwise the agent is refused (checked on its first
	// status report).
	Selector string `json:"selector,omitempty"`
	// MaxUses bounds the number of distinct agents admitted; 0: no limit.
	MaxUses int `json:"max_uses,omitempty"`
	// Uses counts the distinct agents admitted so far.
	Uses      int       `json:"uses"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// Usable reports why the token cannot admit a new agent at now ("" if it
// can).
func (t *EnrollmentToken) Usable(now time.Time) string {
	switch {
	case t.Revoked:
		return "enrollment token revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "enrollment token expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return "enrollment token used up"
	}
	return ""
}

// AgentCertificate is a client certificate the server's CA issued to an
// agent from its CSR.
type AgentCertificate struct {
	// Serial is the certificate's serial number in lower-case hex.
	Serial    string      `json:"serial"`
	AgentID   InstanceUID `json:"agent_id"`
	NotBefore time.Time   `json:"not_before"`
	NotAfter  time.Time   `json:"not_after"`
	// PEM is the certificate (no private key: the agent keeps it).
	PEM       []byte    `json:"pem,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// AuditEntry records one change: who (Actor: a user's name, "admin" for
// the built-in admin account, an API token's name, "agent <uid>" or
// "system"), what (Action, e.g. "config.put"), to what (Target), and
// any details.
type AuditEntry struct {
	ID      int64          `json:"id"`
	Time    time.Time      `json:"time"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Target  string         `json:"target,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// AuditFilter narrows audit queries; zero fields match everything.
type AuditFilter struct {
	Actor  string
	Action string // exact action, or a prefix ending in "." ("token.")
	// Target is the exact target, or the last segment of a path target
	// ("gw" matches "/api/v1/configs/gw").
	Target string
	Since  time.Time
	Limit  int
}

// CredentialStore keeps API tokens, enrollment tokens and agent
// certificates. Stores implement it in addition to Store (store/sqlite and
// store/postgres do). Errors as for Store: ENOTFOUND, ECONFLICT (a
// duplicate id or hash), EUNAVAILABLE.
type CredentialStore interface {
	// PutToken inserts or replaces a token by ID.
	PutToken(ctx context.Context, t *Token) error
	// TokenByHash returns the token whose secret hashes to hash.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// Tokens lists every token by creation time.
	Tokens(ctx context.Context) ([]*Token, error)
	// DeleteToken removes a token; ENOTFOUND if unknown.
	DeleteToken(ctx context.Context, id string) error

	// PutEnrollmentToken inserts or replaces an enrollment token by ID.
	PutEnrollmentToken(ctx context.Context, t *EnrollmentToken) error
	// EnrollmentTokenByHash returns the token whose secret hashes to hash.
	EnrollmentTokenByHash(ctx context.Context, hash []byte) (*EnrollmentToken, error)
	// EnrollmentTokens lists every enrollment token by creation time.
	EnrollmentTokens(ctx context.Context) ([]*EnrollmentToken, error)
	// UseEnrollmentToken atomically counts one more admitted agent and sets
	// LastUsed; EFORBIDDEN (nothing changed) when the token is revoked,
	// expired or used up at at; ENOTFOUND if unknown.
	UseEnrollmentToken(ctx context.Context, id string, at time.Time) (*EnrollmentToken, error)
	// DeleteEnrollmentToken removes one; ENOTFOUND if unknown.
	DeleteEnrollmentToken(ctx context.Context, id string) error

	// PutCertificate records an issued certificate; ECONFLICT if the
	// serial exists.
	PutCertificate(ctx context.Context, c *AgentCertificate) error
	// Certificate returns one by serial; ENOTFOUND if unknown.
	Certificate(ctx context.Context, serial string) (*AgentCertificate, error)
	// Certificates lists the certificates of agent (all agents when nil),
	// newest first.
	Certificates(ctx context.Context, agent *InstanceUID) ([]*AgentCertificate, error)
	// RevokeCertificate marks a certificate revoked at at (a second call
	// keeps the first time); ENOTFOUND if unknown.
	RevokeCertificate(ctx context.Context, serial string, at time.Time) (*AgentCertificate, error)

	// Secret returns the value stored under name, storing value first when
	// name has none yet (the first writer wins, so replicas sharing a
	// database agree, e.g. on the CA key). A nil value only reads:
	// ENOTFOUND when there is none.
	Secret(ctx context.Context, name string, value []byte) ([]byte, error)
}

// AuditStore keeps the audit log.
type AuditStore interface {
	// AppendAudit stores entries and sets their IDs (and Time when zero).
	AppendAudit(ctx context.Context, entries ...*AuditEntry) error
	// Audit returns entries matching f, newest first.
	Audit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}

// NewSecret returns a random secret for a token: prefix, "_", then 32
// random bytes in URL-safe base64.
func NewSecret(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret returns the SHA-256 of a token secret, which is what stores
// keep and look tokens up by.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// EqualHash compares two hashes in constant time.
func EqualHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// NewID returns a short random identifier for tokens.
func NewID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Audit actions recorded for agent credential events.
const (
	AuditAgentEnrolled       = "agent.enrolled"
	AuditAgentRefused        = "agent.refused"
	AuditCertificateIssued   = "certificate.issued"
	AuditCertificateRotated  = "certificate.rotated"
	AuditCertificateRevoked  = "certificate.revoked"
	AuditCertificateRejected = "certificate.csr_rejected"
	// AuditAgentUIDReassigned: a connection claimed an instance uid that
	// another live connection (or a credential it lacks) speaks for, and
	// was given a new uid.
	AuditAgentUIDReassigned = "agent.uid_reassigned"
)

// EventDuplicateUID records on an agent that another connection claimed
// its instance uid and was given a new one (coalesced: once per minute,
// with a count).
const EventDuplicateUID = "agent.duplicate_uid"

// EventAgentRefused records an agent connection or request refused for its
// credentials (bad, expired or revoked certificate or enrollment token, or
// a rejected CSR).
const EventAgentRefused = "agent.refused"

// EventCertificateIssued records a client certificate issued to an agent.
const EventCertificateIssued = "agent.certificate_issued"

type actorKey struct{}

// WithActor returns ctx carrying the name of who acts (for the audit log).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor in ctx, or "system".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// CredentialService manages API tokens, agent enrollment tokens, agent
// certificates, connection settings and the audit log. Every change is
// audited under ActorFrom(ctx). Errors: EINVALID for bad input, ENOTFOUND,
// ENOTIMPLEMENTED when the store keeps no credentials.
type CredentialService interface {
	// CreateToken creates an API token and returns it with its secret,
	// which is not kept and cannot be shown again. ttl 0: no expiry.
	CreateToken(ctx context.Context, name string, role Role, ttl time.Duration) (*Token, string, error)
	// Tokens lists API tokens (never their secrets).
	Tokens(ctx context.Context) ([]*Token, error)
	// DeleteToken revokes an API token at once.
	DeleteToken(ctx context.Context, id string) error
	// AuthenticateToken returns the token whose secret this is;
	// EUNAUTHORIZED when unknown or expired. It records LastUsed.
	AuthenticateToken(ctx context.Context, secret string) (*Token, error)

	// CreateEnrollmentToken creates an enrollment token from t (Name,
	// Selector, MaxUses, ExpiresAt) and returns it with its secret.
	CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) (*EnrollmentToken, string, error)
	EnrollmentTokens(ctx context.Context) ([]*EnrollmentToken, error)
	// RevokeEnrollmentToken stops a token from admitting new agents (agents
	// already admitted keep their certificates).
	RevokeEnrollmentToken(ctx context.Context, id string) error

	// Certificates lists issued agent certificates (of one agent, or all).
	Certificates(ctx context.Context, agent *InstanceUID) ([]*AgentCertificate, error)
	// RevokeCertificate revokes a certificate and disconnects the agent
	// using it; its later connections with it are refused.
	RevokeCertificate(ctx context.Context, serial string) (*AgentCertificate, error)
	// CACertificate returns the PEM certificate of the CA that signs agent
	// certificates; ENOTFOUND when none is configured.
	CACertificate(ctx context.Context) ([]byte, error)

	// PutConnectionSettings creates or replaces connection settings by name
	// and offers the result to the matching agents at once.
	PutConnectionSettings(ctx context.Context, c *ConnectionSettings) (*ConnectionSettings, error)
	ConnectionSettings(ctx context.Context, name string) (*ConnectionSettings, error)
	ConnectionSettingsList(ctx context.Context) ([]*ConnectionSettings, error)
	DeleteConnectionSettings(ctx context.Context, name string) error

	// Audit lists audit entries, newest first.
	Audit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
	// RecordAudit appends an entry (Actor from ctx when empty). Failures
	// are returned, never hidden.
	RecordAudit(ctx context.Context, e *AuditEntry) error
}

// NoticeRevoked tells the other replicas that the certificate whose serial
// (a JSON string) is in Data was revoked, so that they close the
// connection of Agent that presented it.
const NoticeRevoked = "revoked"
