package steward

import (
	"context"
	"time"
)

// Session is a signed-in browser session of the REST API and the web UI.
// The cookie carries a random secret; stores keep only its SHA-256 (Hash),
// so that a copy of the database logs nobody in. Sessions are stored so
// that every replica accepts them and a logout on one ends them on all.
type Session struct {
	Hash []byte
	// Name is who logged in: a user's name, or AdminUser for the
	// built-in admin account.
	Name string
	// CSRF is the double-submit token bound to the session.
	CSRF string
	// Epoch names the credentials the session was opened with (the admin
	// password, or User.SessionEpoch); a server accepts a session only
	// while they are unchanged, so a new password ends every session
	// opened with the old one.
	Epoch     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SessionStore keeps sessions. Stores implement it in addition to Store
// (store/sqlstore does, on SQLite and PostgreSQL). Errors as for Store.
type SessionStore interface {
	// PutSession stores a new session; ECONFLICT when its hash exists.
	PutSession(ctx context.Context, s *Session) error
	// SessionByHash returns the session whose secret hashes to hash;
	// ENOTFOUND when there is none (never created, ended or removed).
	SessionByHash(ctx context.Context, hash []byte) (*Session, error)
	// DeleteSession ends one session; nil when there is none.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteSessions removes every session that expired at now, and the
	// sessions of name whose epoch is not keepEpoch (all of name's when
	// keepEpoch is ""), and returns how many.
	DeleteSessions(ctx context.Context, name, keepEpoch string, now time.Time) (int, error)
}
