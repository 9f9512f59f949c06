package sqlstore

import (
	"context"
	"database/sql"

	"github.com/stewardhq/steward"
)

var _ steward.UserStore = (*DB)(nil)

// userRow returns the columns of u: the document (without the password
// hash, which is a column) and issuer and subject (NULL for local users).
func (db *DB) userRow(u *steward.User) (doc []byte, issuer, subject any, err error) {
	if err := steward.ValidateUserName(u.Name); err != nil {
		return nil, nil, nil, err
	}
	if doc, err = encodeDoc(db, "user", u); err != nil {
		return nil, nil, nil, err
	}
	if u.Issuer != "" {
		issuer, subject = u.Issuer, u.Subject
	}
	return doc, issuer, subject, nil
}

// InsertUser stores a new user; ECONFLICT when the name or SSO subject is
// taken.
func (db *DB) InsertUser(ctx context.Context, u *steward.User) error {
	doc, issuer, subject, err := db.userRow(u)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, `INSERT INTO users(name, password_hash, issuer, subject, doc) VALUES (?, ?, ?, ?, ?)`,
		u.Name, u.PasswordHash, issuer, subject, doc)
	return db.wrap(err, "insert user %q", u.Name)
}

// UpdateUser replaces the user of u.Name; ENOTFOUND if none.
func (db *DB) UpdateUser(ctx context.Context, u *steward.User) error {
	doc, issuer, subject, err := db.userRow(u)
	if err != nil {
		return err
	}
	res, err := db.exec(ctx, `UPDATE users SET password_hash = ?, issuer = ?, subject = ?, doc = ? WHERE name = ?`,
		u.PasswordHash, issuer, subject, doc, u.Name)
	if err != nil {
		return db.wrap(err, "update user %q", u.Name)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "user %q not found", u.Name)
	}
	return nil
}

func (db *DB) scanUser(sc interface{ Scan(...any) error }) (*steward.User, error) {
	var hash string
	var doc []byte
	if err := sc.Scan(&hash, &doc); err != nil {
		return nil, err
	}
	u, err := decodeDoc[steward.User](db, "user", doc)
	if err == nil {
		u.PasswordHash = hash
	}
	return u, err
}

// User returns one user by name; ENOTFOUND if none.
func (db *DB) User(ctx context.Context, name string) (*steward.User, error) {
	u, err := db.scanUser(db.queryRow(ctx, `SELECT password_hash, doc FROM users WHERE name = ?`, name))
	if err != nil {
		return nil, db.notFound(err, "user %q", name)
	}
	return u, nil
}

// UserBySubject returns the SSO user of issuer and subject; ENOTFOUND if
// none.
func (db *DB) UserBySubject(ctx context.Context, issuer, subject string) (*steward.User, error) {
	u, err := db.scanUser(db.queryRow(ctx, `SELECT password_hash, doc FROM users WHERE issuer = ? AND subject = ?`, issuer, subject))
	if err != nil {
		return nil, db.notFound(err, "user of %s subject %q", issuer, subject)
	}
	return u, nil
}

// Users lists every user by name.
func (db *DB) Users(ctx context.Context) ([]*steward.User, error) {
	var out []*steward.User
	err := db.each(ctx, `SELECT password_hash, doc FROM users ORDER BY name`, nil, func(r *sql.Rows) error {
		u, err := db.scanUser(r)
		out = append(out, u)
		return err
	})
	return out, db.wrap(err, "list users")
}

// DeleteUser removes a user and their sessions; ENOTFOUND if none.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.tx(ctx, false, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM users WHERE name = ?`, name)
		if err != nil {
			return db.wrap(err, "delete user %q", name)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "user %q not found", name)
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE name = ?`, name)
		return db.wrap(err, "end the sessions of user %q", name)
	})
}
