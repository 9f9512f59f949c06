package sqlstore

import (
	"context"
	"database/sql"

	"github.com/stewardhq/steward"
)

var (
	_ steward.AgentBindingStore     = (*DB)(nil)
	_ steward.AgentCredentialsStore = (*DB)(nil)
)

// BindAgent records b unless the agent is bound already (the first writer
// wins, atomically); it returns the binding in force and whether it was
// created.
func (db *DB) BindAgent(ctx context.Context, b *steward.AgentBinding) (*steward.AgentBinding, bool, error) {
	if b.AgentID.IsZero() || b.EnrollmentTokenID == "" {
		return nil, false, steward.Errorf(steward.EINVALID, "agent binding needs an agent id and an enrollment token id")
	}
	at := b.CreatedAt
	if at.IsZero() {
		at = db.now()
	}
	res, err := db.exec(ctx, `INSERT INTO agent_bindings(agent_id, enrollment_token, created_at) VALUES (?, ?, ?)
		ON CONFLICT (agent_id) DO NOTHING`, b.AgentID.String(), b.EnrollmentTokenID, db.time(at))
	if err != nil {
		return nil, false, db.wrap(err, "bind agent %s", b.AgentID)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return &steward.AgentBinding{AgentID: b.AgentID, EnrollmentTokenID: b.EnrollmentTokenID, CreatedAt: db.trunc(at)}, true, nil
	}
	got, err := db.AgentBinding(ctx, b.AgentID)
	return got, false, err
}

// AgentBinding returns the agent's binding; ENOTFOUND if none.
func (db *DB) AgentBinding(ctx context.Context, id steward.InstanceUID) (*steward.AgentBinding, error) {
	b := &steward.AgentBinding{AgentID: id}
	var at timeCol
	// Read by every admission of the agent: prepared once.
	row, err := db.queryRowPrepared(ctx, `SELECT enrollment_token, created_at FROM agent_bindings WHERE agent_id = ?`, id.String())
	if err != nil {
		return nil, db.wrap(err, "binding of agent %s", id)
	}
	if err := row.Scan(&b.EnrollmentTokenID, &at); err != nil {
		return nil, db.notFound(err, "binding of agent %s", id)
	}
	b.CreatedAt = at.Time
	return b, nil
}

// UnbindAgent removes the agent's binding; ENOTFOUND if none.
func (db *DB) UnbindAgent(ctx context.Context, id steward.InstanceUID) error {
	return db.deleteRow(ctx, `DELETE FROM agent_bindings WHERE agent_id = ?`, id.String(), "agent binding")
}

// AgentCredentials returns the agent's certificates, newest first, and its
// binding (nil if none) in one statement (steward.AgentCredentialsStore).
func (db *DB) AgentCredentials(ctx context.Context, id steward.InstanceUID) ([]*steward.AgentCertificate, *steward.AgentBinding, error) {
	var certs []*steward.AgentCertificate
	var b *steward.AgentBinding
	// Read by every admission of the agent: prepared once.
	err := db.eachPrepared(ctx, `SELECT 0, doc, '', created_at, serial FROM agent_certificates WHERE agent_id = ?
		UNION ALL SELECT 1, NULL, enrollment_token, created_at, '' FROM agent_bindings WHERE agent_id = ?
		ORDER BY 1, 4 DESC, 5`, []any{id.String(), id.String()}, func(rows *sql.Rows) error {
		var (
			kind   int
			doc    []byte
			token  string
			at     timeCol
			serial string
		)
		if err := rows.Scan(&kind, &doc, &token, &at, &serial); err != nil {
			return err
		}
		if kind == 1 {
			b = &steward.AgentBinding{AgentID: id, EnrollmentTokenID: token, CreatedAt: at.Time}
			return nil
		}
		c, err := decodeDoc[steward.AgentCertificate](db, "a certificate row", doc)
		certs = append(certs, c)
		return err
	})
	if err != nil {
		return nil, nil, db.wrap(err, "credentials of agent %s", id)
	}
	return certs, b, nil
}
