package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutToken inserts or replaces a token by ID; ECONFLICT if another token
// has the same hash.
func (db *DB) PutToken(ctx context.Context, t *steward.Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return steward.Errorf(steward.EINVALID, "token needs an id and a hash")
	}
	return db.putToken(ctx, "api_tokens", "token", t.ID, t.Hash, t.CreatedAt, t)
}

// putToken inserts or replaces a token of a hashed kind by id.
func (db *DB) putToken(ctx context.Context, table, what, id string, hash []byte, created time.Time, t any) error {
	doc, _ := json.Marshal(t)
	_, err := db.exec(ctx, `INSERT INTO `+table+`(id, hash, created_at, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, doc = excluded.doc`, id, hash, db.time(created), doc)
	return db.wrap(err, "put %s %q", what, id)
}

// hashed is a token kind: its hash is a column, not part of the document.
type hashed interface {
	steward.Token | steward.EnrollmentToken
}

func setHash[T hashed](t *T, hash []byte) {
	switch v := any(t).(type) {
	case *steward.Token:
		v.Hash = hash
	case *steward.EnrollmentToken:
		v.Hash = hash
	}
}

// tokenByHash reads the token of kind T (what, in messages) with hash from
// table; ENOTFOUND if none.
func tokenByHash[T hashed](ctx context.Context, db *DB, table, what string, hash []byte) (*T, error) {
	var h, doc []byte
	if err := db.queryRow(ctx, `SELECT hash, doc FROM `+table+` WHERE hash = ?`, hash).Scan(&h, &doc); err != nil {
		return nil, db.notFound(err, "%s", what)
	}
	t, err := decodeDoc[T](db, what, doc)
	if err == nil {
		setHash(t, h)
	}
	return t, err
}

// tokens lists the tokens of kind T in table, oldest first.
func tokens[T hashed](ctx context.Context, db *DB, table, what string) ([]*T, error) {
	var out []*T
	err := db.each(ctx, `SELECT hash, doc FROM `+table+` ORDER BY created_at, id`, nil, func(r *sql.Rows) error {
		var h, doc []byte
		if err := r.Scan(&h, &doc); err != nil {
			return err
		}
		t, err := decodeDoc[T](db, what, doc)
		if err == nil {
			setHash(t, h)
		}
		out = append(out, t)
		return err
	})
	return out, db.wrap(err, "list %ss", what)
}

// TokenByHash returns the token with that hash; ENOTFOUND if none.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (*steward.Token, error) {
	return tokenByHash[steward.Token](ctx, db, "api_tokens", "token", hash)
}

// Tokens lists every token, oldest first.
func (db *DB) Tokens(ctx context.Context) ([]*steward.Token, error) {
	return tokens[steward.Token](ctx, db, "api_tokens", "token")
}

// DeleteToken removes a token; ENOTFOUND if unknown.
func (db *DB) DeleteToken(ctx context.Context, id string) error {
	return db.deleteRow(ctx, `DELETE FROM api_tokens WHERE id = ?`, id, "token")
}

// PutEnrollmentToken inserts or replaces an enrollment token by ID.
func (db *DB) PutEnrollmentToken(ctx context.Context, t *steward.EnrollmentToken) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return steward.Errorf(steward.EINVALID, "enrollment token needs an id and a hash")
	}
	return db.putToken(ctx, "enrollment_tokens", "enrollment token", t.ID, t.Hash, t.CreatedAt, t)
}

// EnrollmentTokenByHash returns the enrollment token with that hash.
func (db *DB) EnrollmentTokenByHash(ctx context.Context, hash []byte) (*steward.EnrollmentToken, error) {
	return tokenByHash[steward.EnrollmentToken](ctx, db, "enrollment_tokens", "enrollment token", hash)
}

// EnrollmentTokens lists every enrollment token, oldest first.
func (db *DB) EnrollmentTokens(ctx context.Context) ([]*steward.EnrollmentToken, error) {
	return tokens[steward.EnrollmentToken](ctx, db, "enrollment_tokens", "enrollment token")
}

// UseEnrollmentToken counts one more admitted agent (see
// steward.CredentialStore); the row is locked, so replicas count exactly.
func (db *DB) UseEnrollmentToken(ctx context.Context, id string, at time.Time) (*steward.EnrollmentToken, error) {
	var out *steward.EnrollmentToken
	err := db.tx(ctx, false, func(tx *Tx) error {
		var h, doc []byte
		err := tx.QueryRow(ctx, `SELECT hash, doc FROM enrollment_tokens WHERE id = ?{for_update}`, id).Scan(&h, &doc)
		if errors.Is(err, sql.ErrNoRows) {
			return steward.Errorf(steward.ENOTFOUND, "enrollment token %q not found", id)
		} else if err != nil {
			return err
		}
		t, err := decodeDoc[steward.EnrollmentToken](db, "enrollment token", doc)
		if err != nil {
			return err
		}
		t.Hash = h
		if why := t.Usable(at); why != "" {
			return steward.Errorf(steward.EFORBIDDEN, "%s", why)
		}
		t.Uses++
		t.LastUsed = at.UTC()
		doc, _ = json.Marshal(t)
		if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET doc = ? WHERE id = ?`, doc, id); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, db.wrap(err, "use enrollment token %q", id)
}

// DeleteEnrollmentToken removes one; ENOTFOUND if unknown.
func (db *DB) DeleteEnrollmentToken(ctx context.Context, id string) error {
	return db.deleteRow(ctx, `DELETE FROM enrollment_tokens WHERE id = ?`, id, "enrollment token")
}

// PutCertificate records an issued certificate; ECONFLICT if the serial
// exists.
func (db *DB) PutCertificate(ctx context.Context, c *steward.AgentCertificate) error {
	if c.Serial == "" {
		return steward.Errorf(steward.EINVALID, "certificate needs a serial")
	}
	doc, _ := json.Marshal(c)
	_, err := db.exec(ctx, `INSERT INTO agent_certificates(serial, agent_id, created_at, doc) VALUES (?, ?, ?, ?)`,
		strings.ToLower(c.Serial), c.AgentID.String(), db.time(c.CreatedAt), doc)
	return db.wrap(err, "put certificate %s", c.Serial)
}

// Certificate returns one by serial; ENOTFOUND if unknown.
func (db *DB) Certificate(ctx context.Context, serial string) (*steward.AgentCertificate, error) {
	return getDoc[steward.AgentCertificate](ctx, db, "certificate "+serial,
		`SELECT doc FROM agent_certificates WHERE serial = ?`, strings.ToLower(serial))
}

// Certificates lists the certificates of an agent (all when nil), newest
// first.
func (db *DB) Certificates(ctx context.Context, agent *steward.InstanceUID) ([]*steward.AgentCertificate, error) {
	if agent != nil {
		// Read by every admission of the agent: prepared once.
		return listDocsPrepared[steward.AgentCertificate](ctx, db, "certificate",
			`SELECT doc FROM agent_certificates WHERE agent_id = ? ORDER BY created_at DESC, serial`, agent.String())
	}
	return listDocs[steward.AgentCertificate](ctx, db, "certificate",
		`SELECT doc FROM agent_certificates ORDER BY created_at DESC, serial`)
}

// RevokeCertificate marks a certificate revoked; ENOTFOUND if unknown.
func (db *DB) RevokeCertificate(ctx context.Context, serial string, at time.Time) (*steward.AgentCertificate, error) {
	var out *steward.AgentCertificate
	serial = strings.ToLower(serial)
	err := db.tx(ctx, false, func(tx *Tx) error {
		var doc []byte
		err := tx.QueryRow(ctx, `SELECT doc FROM agent_certificates WHERE serial = ?{for_update}`, serial).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			return steward.Errorf(steward.ENOTFOUND, "certificate %s not found", serial)
		} else if err != nil {
			return err
		}
		c, err := decodeDoc[steward.AgentCertificate](db, "certificate", doc)
		if err != nil {
			return err
		}
		if !c.Revoked {
			c.Revoked, c.RevokedAt = true, db.trunc(at)
			doc, _ = json.Marshal(c)
			if _, err := tx.Exec(ctx, `UPDATE agent_certificates SET doc = ? WHERE serial = ?`, doc, serial); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	return out, db.wrap(err, "revoke certificate %s", serial)
}

// Secret returns the value stored under name, storing value first if there
// is none (the first caller, of any replica, to store it wins).
func (db *DB) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if value != nil {
		if _, err := db.exec(ctx, `INSERT INTO secrets(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
			return nil, db.wrap(err, "secret %q", name)
		}
	}
	var out []byte
	err := db.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&out)
	return out, db.notFound(err, "secret %q", name)
}

// PutConnectionSettings creates or replaces connection settings by name.
func (db *DB) PutConnectionSettings(ctx context.Context, c *steward.ConnectionSettings) error {
	if err := c.Validate(); err != nil {
		return err
	}
	doc, _ := json.Marshal(c)
	_, err := db.exec(ctx, `INSERT INTO connection_settings(name, doc) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, c.Name, doc)
	return db.wrap(err, "put connection settings %q", c.Name)
}

// ConnectionSettings returns one by name; ENOTFOUND if unknown.
func (db *DB) ConnectionSettings(ctx context.Context, name string) (*steward.ConnectionSettings, error) {
	return getDoc[steward.ConnectionSettings](ctx, db, fmt.Sprintf("connection settings %q", name),
		`SELECT doc FROM connection_settings WHERE name = ?`, name)
}

// ConnectionSettingsList lists all connection settings by name.
func (db *DB) ConnectionSettingsList(ctx context.Context) ([]*steward.ConnectionSettings, error) {
	return listDocs[steward.ConnectionSettings](ctx, db, "connection setting",
		`SELECT doc FROM connection_settings ORDER BY name`)
}

// DeleteConnectionSettings removes one; ENOTFOUND if unknown.
func (db *DB) DeleteConnectionSettings(ctx context.Context, name string) error {
	return db.deleteRow(ctx, `DELETE FROM connection_settings WHERE name = ?`, name, "connection settings")
}

// AppendAudit stores entries and sets their IDs (and Time when zero).
func (db *DB) AppendAudit(ctx context.Context, entries ...*steward.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := db.nowT()
	rows := make([][]any, len(entries))
	times := make([]time.Time, len(entries))
	for i, e := range entries {
		times[i] = now
		if !e.Time.IsZero() {
			times[i] = e.Time
		}
		var details []byte
		if len(e.Details) > 0 {
			details, _ = json.Marshal(e.Details)
		}
		rows[i] = []any{db.time(times[i]), e.Actor, e.Action, e.Target, nullBytes(details)}
	}
	ids, err := db.insertMany(ctx, `INSERT INTO audit_log(time, actor, action, target, details) VALUES `, `(?, ?, ?, ?, ?)`, rows)
	if err != nil {
		return db.wrap(err, "append %d audit entries", len(entries))
	}
	for i, e := range entries {
		e.ID, e.Time = ids[i], times[i]
	}
	return nil
}

// Audit returns entries matching f, newest first. An Action ending in "."
// matches every action with that prefix.
func (db *DB) Audit(ctx context.Context, f steward.AuditFilter) ([]*steward.AuditEntry, error) {
	if err := record.CheckPage(0, f.Limit); err != nil {
		return nil, err
	}
	var w where
	if f.Actor != "" {
		w.add("actor = ?", f.Actor)
	}
	if strings.HasSuffix(f.Action, ".") {
		w.add("substr(action, 1, ?) = ?", len(f.Action), f.Action)
	} else if f.Action != "" {
		w.add("action = ?", f.Action)
	}
	if f.Target != "" {
		w.add(`(target = ? OR target LIKE ? ESCAPE '\')`, f.Target, "%/"+likeEscaper.Replace(f.Target))
	}
	if !f.Since.IsZero() {
		w.add("time >= ?", db.time(f.Since))
	}
	q, args := `SELECT id, time, actor, action, target, details FROM audit_log`+w.String()+` ORDER BY time DESC, id DESC`, w.args
	if f.Limit > 0 {
		q, args = q+` LIMIT ?`, append(args, f.Limit)
	}
	var out []*steward.AuditEntry
	err := db.each(ctx, q, args, func(r *sql.Rows) error {
		var e steward.AuditEntry
		var t timeCol
		var details []byte
		if err := r.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.Target, &details); err != nil {
			return err
		}
		e.Time = t.Time
		if len(details) > 0 {
			if err := json.Unmarshal(details, &e.Details); err != nil {
				return steward.Errorf(steward.EINTERNAL, "%s: audit entry %d is corrupt: %v", db.d.Name, e.ID, err)
			}
		}
		out = append(out, &e)
		return nil
	})
	return out, db.wrap(err, "list audit entries")
}

// likeEscaper escapes the LIKE wildcards in a literal (ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)
