package sqlstore

import (
	"context"
	"time"

	"github.com/stewardhq/steward"
)

var _ steward.SessionStore = (*DB)(nil)

// PutSession stores a new session; ECONFLICT when its hash exists.
func (db *DB) PutSession(ctx context.Context, s *steward.Session) error {
	if len(s.Hash) == 0 {
		return steward.Errorf(steward.EINVALID, "session needs a hash")
	}
	_, err := db.exec(ctx, `INSERT INTO sessions(hash, name, csrf, epoch, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.Hash, s.Name, s.CSRF, s.Epoch, db.time(s.CreatedAt), db.time(s.ExpiresAt))
	return db.wrap(err, "put session")
}

// SessionByHash returns a session; ENOTFOUND when there is none.
func (db *DB) SessionByHash(ctx context.Context, hash []byte) (*steward.Session, error) {
	s := &steward.Session{}
	var created, expires timeCol
	err := db.queryRow(ctx, `SELECT hash, name, csrf, epoch, created_at, expires_at FROM sessions WHERE hash = ?`, hash).
		Scan(&s.Hash, &s.Name, &s.CSRF, &s.Epoch, &created, &expires)
	if err != nil {
		return nil, db.notFound(err, "session")
	}
	s.CreatedAt, s.ExpiresAt = created.Time, expires.Time
	return s, nil
}

// DeleteSession ends a session; nil when there is none.
func (db *DB) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := db.exec(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)
	return db.wrap(err, "delete session")
}

// DeleteSessions removes expired sessions and those of name not of
// keepEpoch (all of name's when keepEpoch is empty).
func (db *DB) DeleteSessions(ctx context.Context, name, keepEpoch string, now time.Time) (int, error) {
	res, err := db.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR (name = ? AND epoch <> ?)`, db.time(now), name, keepEpoch)
	if err != nil {
		return 0, db.wrap(err, "delete sessions")
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
