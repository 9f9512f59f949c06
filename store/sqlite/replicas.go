package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/stewardhq/steward"
)

var _ steward.ReplicaStore = (*DB)(nil)

// ReplicaAlive records replica's lease (a single SQLite server only ever has
// its own, but the contract is the same as PostgreSQL's).
func (db *DB) ReplicaAlive(ctx context.Context, replica string, at time.Time) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO replicas(name, seen_at) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)`, replica, nanos(at))
		return err
	})
	return wrap(err, "replica alive %q", replica)
}

// ReapReplicas removes replicas whose lease is older than before and marks
// their agents offline.
func (db *DB) ReapReplicas(ctx context.Context, before time.Time) ([]string, error) {
	var dead []string
	err := db.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM replicas WHERE seen_at < ?`, nanos(before))
		if err != nil {
			return err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			dead = append(dead, n)
		}
		rows.Close()
		for _, n := range dead {
			if _, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE name = ?`, n); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET online = 0, disconnected_at = ? WHERE online = 1 AND replica = ?`, nanos(before), n); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(err, "reap replicas")
	}
	return dead, nil
}
