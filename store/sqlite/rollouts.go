package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

var _ steward.RolloutStore = (*DB)(nil)

// PutRollout inserts r (Revision 0; ECONFLICT if the name is taken) or
// updates it if the stored revision equals r.Revision (ECONFLICT otherwise).
// On success r.Revision is incremented.
func (db *DB) PutRollout(ctx context.Context, r *steward.Rollout) error {
	next := *r
	next.Revision = r.Revision + 1
	doc, err := json.Marshal(&next)
	if err != nil {
		return steward.Errorf(steward.EINVALID, "sqlite: encode rollout %q: %v", r.Name, err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if r.Revision == 0 {
			_, err := tx.ExecContext(ctx, `INSERT INTO rollouts(name, assignment, revision, doc, updated_at) VALUES (?, ?, 1, ?, ?)`,
				r.Name, r.Assignment, doc, nanos(r.UpdatedAt))
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET assignment = ?, revision = ?, doc = ?, updated_at = ? WHERE name = ? AND revision = ?`,
			r.Assignment, next.Revision, doc, nanos(r.UpdatedAt), r.Name, r.Revision)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ECONFLICT, "rollout %q was changed by someone else (revision %d is no longer current)", r.Name, r.Revision)
		}
		return nil
	})
	if err != nil {
		if steward.ErrorCode(err) == steward.ECONFLICT && r.Revision == 0 {
			return steward.Errorf(steward.ECONFLICT, "rollout %q exists", r.Name)
		}
		return wrap(err, "put rollout %q", r.Name)
	}
	r.Revision = next.Revision
	return nil
}

// Rollout returns one rollout; ENOTFOUND if missing.
func (db *DB) Rollout(ctx context.Context, name string) (*steward.Rollout, error) {
	var doc []byte
	err := db.read.QueryRowContext(ctx, `SELECT doc FROM rollouts WHERE name = ?`, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "rollout %q not found", name)
	} else if err != nil {
		return nil, wrap(err, "get rollout %q", name)
	}
	return record.DecodeRollout(name, doc)
}

// Rollouts lists every rollout, most recently updated first.
func (db *DB) Rollouts(ctx context.Context) ([]*steward.Rollout, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, doc FROM rollouts ORDER BY updated_at DESC, name`)
	if err != nil {
		return nil, wrap(err, "list rollouts")
	}
	defer rows.Close()
	var out []*steward.Rollout
	for rows.Next() {
		var name string
		var doc []byte
		if err := rows.Scan(&name, &doc); err != nil {
			return nil, wrap(err, "list rollouts")
		}
		r, err := record.DecodeRollout(name, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, wrap(rows.Err(), "list rollouts")
}
