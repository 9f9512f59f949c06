package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward"
)

var _ steward.SessionStore = (*DB)(nil)

// PutSession stores a new session; ECONFLICT when its hash exists.
func (db *DB) PutSession(ctx context.Context, s *steward.Session) error {
	if len(s.Hash) == 0 {
		return steward.Errorf(steward.EINVALID, "session needs a hash")
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO sessions(hash, name, csrf, epoch, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.Hash, s.Name, s.CSRF, s.Epoch, ts(s.CreatedAt), ts(s.ExpiresAt))
	return wrap(err, "put session")
}

// SessionByHash returns a session; ENOTFOUND when there is none.
func (db *DB) SessionByHash(ctx context.Context, hash []byte) (*steward.Session, error) {
	s := &steward.Session{}
	err := db.pool.QueryRow(ctx, `SELECT hash, name, csrf, epoch, created_at, expires_at FROM sessions WHERE hash = $1`, hash).
		Scan(&s.Hash, &s.Name, &s.CSRF, &s.Epoch, &s.CreatedAt, &s.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "session not found")
	} else if err != nil {
		return nil, wrap(err, "get session")
	}
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	return s, nil
}

// DeleteSession ends a session; nil when there is none.
func (db *DB) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash)
	return wrap(err, "delete session")
}

// DeleteSessions removes expired sessions and those of other epochs.
func (db *DB) DeleteSessions(ctx context.Context, keepEpoch string, now time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1 OR epoch <> $2`, ts(now), keepEpoch)
	if err != nil {
		return 0, wrap(err, "delete sessions")
	}
	return int(tag.RowsAffected()), nil
}
