package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

var (
	_ steward.CredentialStore         = (*DB)(nil)
	_ steward.AuditStore              = (*DB)(nil)
	_ steward.ConnectionSettingsStore = (*DB)(nil)
)

// PutToken inserts or replaces a token by ID; ECONFLICT if another token
// has the same hash.
func (db *DB) PutToken(ctx context.Context, t *steward.Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return steward.Errorf(steward.EINVALID, "token needs an id and a hash")
	}
	doc, _ := json.Marshal(t)
	_, err := db.pool.Exec(ctx, `INSERT INTO api_tokens(id, hash, created_at, doc) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, doc = excluded.doc`, t.ID, t.Hash, ts(t.CreatedAt), doc)
	return wrap(err, "put token %q", t.ID)
}

func decodeToken(hash, doc []byte) (*steward.Token, error) {
	var t steward.Token
	if err := json.Unmarshal(doc, &t); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: token is corrupt: %v", err)
	}
	t.Hash = hash
	return &t, nil
}

// TokenByHash returns the token with that hash; ENOTFOUND if none.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (*steward.Token, error) {
	var h, doc []byte
	err := db.pool.QueryRow(ctx, `SELECT hash, doc FROM api_tokens WHERE hash = $1`, hash).Scan(&h, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "token not found")
	} else if err != nil {
		return nil, wrap(err, "get token")
	}
	return decodeToken(h, doc)
}

// Tokens lists every token, oldest first.
func (db *DB) Tokens(ctx context.Context) ([]*steward.Token, error) {
	var out []*steward.Token
	err := db.each(ctx, `SELECT hash, doc FROM api_tokens ORDER BY created_at, id`, nil, func(r pgx.Rows) error {
		var h, doc []byte
		if err := r.Scan(&h, &doc); err != nil {
			return err
		}
		t, err := decodeToken(h, doc)
		out = append(out, t)
		return err
	})
	return out, wrap(err, "list tokens")
}

// DeleteToken removes a token; ENOTFOUND if unknown.
func (db *DB) DeleteToken(ctx context.Context, id string) error {
	return db.deleteRow(ctx, `DELETE FROM api_tokens WHERE id = $1`, id, "token")
}

// PutEnrollmentToken inserts or replaces an enrollment token by ID.
func (db *DB) PutEnrollmentToken(ctx context.Context, t *steward.EnrollmentToken) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return steward.Errorf(steward.EINVALID, "enrollment token needs an id and a hash")
	}
	doc, _ := json.Marshal(t)
	_, err := db.pool.Exec(ctx, `INSERT INTO enrollment_tokens(id, hash, created_at, doc) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, doc = excluded.doc`, t.ID, t.Hash, ts(t.CreatedAt), doc)
	return wrap(err, "put enrollment token %q", t.ID)
}

func decodeEnrollment(hash, doc []byte) (*steward.EnrollmentToken, error) {
	var t steward.EnrollmentToken
	if err := json.Unmarshal(doc, &t); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: enrollment token is corrupt: %v", err)
	}
	t.Hash = hash
	return &t, nil
}

// EnrollmentTokenByHash returns the enrollment token with that hash.
func (db *DB) EnrollmentTokenByHash(ctx context.Context, hash []byte) (*steward.EnrollmentToken, error) {
	var h, doc []byte
	err := db.pool.QueryRow(ctx, `SELECT hash, doc FROM enrollment_tokens WHERE hash = $1`, hash).Scan(&h, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "enrollment token not found")
	} else if err != nil {
		return nil, wrap(err, "get enrollment token")
	}
	return decodeEnrollment(h, doc)
}

// EnrollmentTokens lists every enrollment token, oldest first.
func (db *DB) EnrollmentTokens(ctx context.Context) ([]*steward.EnrollmentToken, error) {
	var out []*steward.EnrollmentToken
	err := db.each(ctx, `SELECT hash, doc FROM enrollment_tokens ORDER BY created_at, id`, nil, func(r pgx.Rows) error {
		var h, doc []byte
		if err := r.Scan(&h, &doc); err != nil {
			return err
		}
		t, err := decodeEnrollment(h, doc)
		out = append(out, t)
		return err
	})
	return out, wrap(err, "list enrollment tokens")
}

// UseEnrollmentToken counts one more admitted agent (see
// steward.CredentialStore); the row is locked, so replicas count exactly.
func (db *DB) UseEnrollmentToken(ctx context.Context, id string, at time.Time) (*steward.EnrollmentToken, error) {
	var out *steward.EnrollmentToken
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		var h, doc []byte
		err := tx.QueryRow(ctx, `SELECT hash, doc FROM enrollment_tokens WHERE id = $1 FOR UPDATE`, id).Scan(&h, &doc)
		if errors.Is(err, pgx.ErrNoRows) {
			return steward.Errorf(steward.ENOTFOUND, "enrollment token %q not found", id)
		} else if err != nil {
			return err
		}
		t, err := decodeEnrollment(h, doc)
		if err != nil {
			return err
		}
		if why := t.Usable(at); why != "" {
			return steward.Errorf(steward.EFORBIDDEN, "%s", why)
		}
		t.Uses++
		t.LastUsed = at.UTC()
		doc, _ = json.Marshal(t)
		if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET doc = $1 WHERE id = $2`, doc, id); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, wrap(err, "use enrollment token %q", id)
}

// DeleteEnrollmentToken removes one; ENOTFOUND if unknown.
func (db *DB) DeleteEnrollmentToken(ctx context.Context, id string) error {
	return db.deleteRow(ctx, `DELETE FROM enrollment_tokens WHERE id = $1`, id, "enrollment token")
}

// PutCertificate records an issued certificate; ECONFLICT if the serial
// exists.
func (db *DB) PutCertificate(ctx context.Context, c *steward.AgentCertificate) error {
	if c.Serial == "" {
		return steward.Errorf(steward.EINVALID, "certificate needs a serial")
	}
	doc, _ := json.Marshal(c)
	_, err := db.pool.Exec(ctx, `INSERT INTO agent_certificates(serial, agent_id, created_at, doc) VALUES ($1, $2, $3, $4)`,
		strings.ToLower(c.Serial), c.AgentID.String(), ts(c.CreatedAt), doc)
	return wrap(err, "put certificate %s", c.Serial)
}

func decodeCert(doc []byte) (*steward.AgentCertificate, error) {
	var c steward.AgentCertificate
	if err := json.Unmarshal(doc, &c); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: certificate is corrupt: %v", err)
	}
	return &c, nil
}

// Certificate returns one by serial; ENOTFOUND if unknown.
func (db *DB) Certificate(ctx context.Context, serial string) (*steward.AgentCertificate, error) {
	var doc []byte
	err := db.pool.QueryRow(ctx, `SELECT doc FROM agent_certificates WHERE serial = $1`, strings.ToLower(serial)).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "certificate %s not found", serial)
	} else if err != nil {
		return nil, wrap(err, "get certificate %s", serial)
	}
	return decodeCert(doc)
}

// Certificates lists the certificates of an agent (all when nil), newest
// first.
func (db *DB) Certificates(ctx context.Context, agent *steward.InstanceUID) ([]*steward.AgentCertificate, error) {
	q, args := `SELECT doc FROM agent_certificates ORDER BY created_at DESC, serial`, []any(nil)
	if agent != nil {
		q, args = `SELECT doc FROM agent_certificates WHERE agent_id = $1 ORDER BY created_at DESC, serial`, []any{agent.String()}
	}
	var out []*steward.AgentCertificate
	err := db.each(ctx, q, args, func(r pgx.Rows) error {
		var doc []byte
		if err := r.Scan(&doc); err != nil {
			return err
		}
		c, err := decodeCert(doc)
		out = append(out, c)
		return err
	})
	return out, wrap(err, "list certificates")
}

// RevokeCertificate marks a certificate revoked; ENOTFOUND if unknown.
func (db *DB) RevokeCertificate(ctx context.Context, serial string, at time.Time) (*steward.AgentCertificate, error) {
	var out *steward.AgentCertificate
	serial = strings.ToLower(serial)
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		var doc []byte
		err := tx.QueryRow(ctx, `SELECT doc FROM agent_certificates WHERE serial = $1 FOR UPDATE`, serial).Scan(&doc)
		if errors.Is(err, pgx.ErrNoRows) {
			return steward.Errorf(steward.ENOTFOUND, "certificate %s not found", serial)
		} else if err != nil {
			return err
		}
		c, err := decodeCert(doc)
		if err != nil {
			return err
		}
		if !c.Revoked {
			c.Revoked, c.RevokedAt = true, at.Truncate(time.Microsecond).UTC()
			doc, _ = json.Marshal(c)
			if _, err := tx.Exec(ctx, `UPDATE agent_certificates SET doc = $1 WHERE serial = $2`, doc, serial); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	return out, wrap(err, "revoke certificate %s", serial)
}

// Secret returns the value stored under name, storing value first if there
// is none (the first replica to store it wins).
func (db *DB) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if value != nil {
		if _, err := db.pool.Exec(ctx, `INSERT INTO secrets(name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
			return nil, wrap(err, "secret %q", name)
		}
	}
	var out []byte
	err := db.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "secret %q not found", name)
	}
	return out, wrap(err, "secret %q", name)
}

// PutConnectionSettings creates or replaces connection settings by name.
func (db *DB) PutConnectionSettings(ctx context.Context, c *steward.ConnectionSettings) error {
	if err := c.Validate(); err != nil {
		return err
	}
	doc, _ := json.Marshal(c)
	_, err := db.pool.Exec(ctx, `INSERT INTO connection_settings(name, doc) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, c.Name, doc)
	return wrap(err, "put connection settings %q", c.Name)
}

func decodeConn(doc []byte) (*steward.ConnectionSettings, error) {
	var c steward.ConnectionSettings
	if err := json.Unmarshal(doc, &c); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: connection settings are corrupt: %v", err)
	}
	return &c, nil
}

// ConnectionSettings returns one by name; ENOTFOUND if unknown.
func (db *DB) ConnectionSettings(ctx context.Context, name string) (*steward.ConnectionSettings, error) {
	var doc []byte
	err := db.pool.QueryRow(ctx, `SELECT doc FROM connection_settings WHERE name = $1`, name).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "connection settings %q not found", name)
	} else if err != nil {
		return nil, wrap(err, "get connection settings %q", name)
	}
	return decodeConn(doc)
}

// ConnectionSettingsList lists all connection settings by name.
func (db *DB) ConnectionSettingsList(ctx context.Context) ([]*steward.ConnectionSettings, error) {
	var out []*steward.ConnectionSettings
	err := db.each(ctx, `SELECT doc FROM connection_settings ORDER BY name`, nil, func(r pgx.Rows) error {
		var doc []byte
		if err := r.Scan(&doc); err != nil {
			return err
		}
		c, err := decodeConn(doc)
		out = append(out, c)
		return err
	})
	return out, wrap(err, "list connection settings")
}

// DeleteConnectionSettings removes one; ENOTFOUND if unknown.
func (db *DB) DeleteConnectionSettings(ctx context.Context, name string) error {
	return db.deleteRow(ctx, `DELETE FROM connection_settings WHERE name = $1`, name, "connection settings")
}

// AppendAudit stores entries and sets their IDs (and Time when zero).
func (db *DB) AppendAudit(ctx context.Context, entries ...*steward.AuditEntry) error {
	now := db.nowUS()
	ids := make([]int64, len(entries))
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		for i, e := range entries {
			at := e.Time
			if at.IsZero() {
				at = now
			}
			var details []byte
			if len(e.Details) > 0 {
				details, _ = json.Marshal(e.Details)
			}
			if err := tx.QueryRow(ctx, `INSERT INTO audit_log(time, actor, action, target, details) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
				ts(at), e.Actor, e.Action, e.Target, details).Scan(&ids[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap(err, "append %d audit entries", len(entries))
	}
	for i, e := range entries {
		e.ID = ids[i]
		if e.Time.IsZero() {
			e.Time = now
		}
	}
	return nil
}

// Audit returns entries matching f, newest first.
func (db *DB) Audit(ctx context.Context, f steward.AuditFilter) ([]*steward.AuditEntry, error) {
	if err := record.CheckPage(0, f.Limit); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Actor != "" {
		where = append(where, "actor = "+arg(f.Actor))
	}
	if strings.HasSuffix(f.Action, ".") {
		where = append(where, "left(action, "+arg(len(f.Action))+") = "+arg(f.Action))
	} else if f.Action != "" {
		where = append(where, "action = "+arg(f.Action))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(f.Since))
	}
	q := `SELECT id, time, actor, action, target, details FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY time DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	var out []*steward.AuditEntry
	err := db.each(ctx, q, args, func(r pgx.Rows) error {
		var e steward.AuditEntry
		var details []byte
		if err := r.Scan(&e.ID, &e.Time, &e.Actor, &e.Action, &e.Target, &details); err != nil {
			return err
		}
		e.Time = e.Time.UTC()
		if len(details) > 0 {
			if err := json.Unmarshal(details, &e.Details); err != nil {
				return steward.Errorf(steward.EINTERNAL, "postgres: audit entry %d is corrupt: %v", e.ID, err)
			}
		}
		out = append(out, &e)
		return nil
	})
	return out, wrap(err, "list audit entries")
}

// each runs a query and calls fn for every row.
func (db *DB) each(ctx context.Context, q string, args []any, fn func(pgx.Rows) error) error {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// deleteRow runs a DELETE of one keyed row; ENOTFOUND when none went.
func (db *DB) deleteRow(ctx context.Context, q, key, what string) error {
	tag, err := db.pool.Exec(ctx, q, key)
	if err != nil {
		return wrap(err, "delete %s %q", what, key)
	}
	if tag.RowsAffected() == 0 {
		return steward.Errorf(steward.ENOTFOUND, "%s %q not found", what, key)
	}
	return nil
}
