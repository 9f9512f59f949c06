package steward

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// AdminUser is the built-in account of the server's admin password
// (--admin-password, or the one generated at first start). It is not
// stored: its role is always admin, and no stored user may take its name.
const AdminUser = "admin"

// User is a person who signs in to the console and the REST API, with a
// password (local users, created by an admin) or through OpenID Connect
// (SSO users, created at their first login).
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// PasswordHash is the argon2id hash of a local user's password
	// (HashPassword); empty for SSO users, who cannot log in with one.
	PasswordHash string `json:"-"`
	// Issuer and Subject identify an SSO user at their OpenID provider
	// (the "iss" and "sub" claims); empty for local users.
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Disabled users cannot log in, and their sessions end at once.
	Disabled  bool      `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	LastLogin time.Time `json:"last_login,omitzero"`
}

// SSO reports whether the user signs in through OpenID Connect.
func (u *User) SSO() bool { return u.Issuer != "" }

// SessionEpoch names the user's current credentials in their sessions: a
// server accepts a session only while its user's epoch is unchanged, so a
// new password ends every session opened with the old one.
func (u *User) SessionEpoch() string {
	h := sha256.Sum256([]byte("steward user session v1\x00" + u.Issuer + "\x00" + u.Subject + "\x00" + u.PasswordHash))
	return hex.EncodeToString(h[:16])
}

// ValidateUserName checks a user name: 1-128 letters, digits, '.', '_',
// '-' or '@' (e-mail addresses are common SSO names), not AdminUser.
func ValidateUserName(name string) error {
	if name == AdminUser {
		return Errorf(EINVALID, "user name %q is reserved for the built-in admin account", name)
	}
	if len(name) == 0 || len(name) > 128 {
		return Errorf(EINVALID, "invalid user name %q: use 1-128 letters, digits, '.', '_', '-' or '@'", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-' || c == '@')
		if !ok {
			return Errorf(EINVALID, "invalid user name %q: use 1-128 letters, digits, '.', '_', '-' or '@', starting with a letter or digit", name)
		}
	}
	return nil
}

// UserStore keeps users. Stores implement it in addition to Store
// (store/sqlstore does, on SQLite and PostgreSQL). Errors as for Store.
type UserStore interface {
	// InsertUser stores a new user; ECONFLICT when the name, or the
	// issuer and subject of an SSO user, is taken.
	InsertUser(ctx context.Context, u *User) error
	// UpdateUser replaces the stored user of u.Name; ENOTFOUND if none.
	UpdateUser(ctx context.Context, u *User) error
	// User returns one user by name; ENOTFOUND if none.
	User(ctx context.Context, name string) (*User, error)
	// UserBySubject returns the SSO user of issuer and subject; ENOTFOUND
	// if none.
	UserBySubject(ctx context.Context, issuer, subject string) (*User, error)
	// Users lists every user by name.
	Users(ctx context.Context) ([]*User, error)
	// DeleteUser removes a user and ends their sessions; ENOTFOUND if
	// none.
	DeleteUser(ctx context.Context, name string) error
}

// UserChange is a change to a user; nil fields stay as they are.
type UserChange struct {
	Role     *Role   `json:"role,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
	Password *string `json:"password,omitempty"`
}

// UserService manages the people who use the console. Every change is
// audited under ActorFrom(ctx), and no password (or hash) is ever
// recorded. Errors: EINVALID for bad input, ENOTFOUND, ECONFLICT,
// ENOTIMPLEMENTED when the store keeps no users.
type UserService interface {
	// CreateUser creates a local user with a password (at least
	// MinPasswordLength characters).
	CreateUser(ctx context.Context, name string, role Role, password string) (*User, error)
	// Users lists users by name.
	Users(ctx context.Context) ([]*User, error)
	// User returns one user.
	User(ctx context.Context, name string) (*User, error)
	// UpdateUser changes a user's role, disabled flag or password.
	// Disabling ends the user's sessions; a new password ends the ones
	// opened with the old. An SSO user has no password, and the role of an
	// SSO user is set again from the provider's claims at each login.
	UpdateUser(ctx context.Context, name string, c UserChange) (*User, error)
	// DeleteUser removes a user; their sessions end.
	DeleteUser(ctx context.Context, name string) error
	// AuthenticateUser checks a local user's password; EUNAUTHORIZED for
	// an unknown or disabled user, an SSO user or a wrong password (one
	// message for all, taking as long). It sets LastLogin.
	AuthenticateUser(ctx context.Context, name, password string) (*User, error)
	// SignInSSO is an OpenID Connect login of issuer/subject, known to the
	// provider as name and given role by the claim mapping: it creates the
	// user at their first login and sets the role again at each later one
	// (the name stays the one of the first login). EFORBIDDEN when the
	// user is disabled, or when name belongs to another user.
	SignInSSO(ctx context.Context, issuer, subject, name string, role Role) (*User, error)
}

// Audit actions recorded for users and logins.
const (
	AuditUserCreate = "user.create"
	AuditUserUpdate = "user.update"
	AuditUserDelete = "user.delete"
	AuditLogin      = "session.login"
)
