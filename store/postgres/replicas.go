package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward"
)

var _ steward.ReplicaStore = (*DB)(nil)

// ReplicaAlive records replica's lease.
func (db *DB) ReplicaAlive(ctx context.Context, replica string, at time.Time) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO replicas(name, seen_at) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET seen_at = GREATEST(replicas.seen_at, EXCLUDED.seen_at)`, replica, ts(at))
	return wrap(err, "replica alive %q", replica)
}

// ReapReplicas removes replicas whose lease is older than before and marks
// their agents offline, in one transaction (rows locked, so two replicas
// reaping at once do it once).
func (db *DB) ReapReplicas(ctx context.Context, before time.Time) ([]string, error) {
	var dead []string
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		dead = dead[:0]
		rows, err := tx.Query(ctx, `DELETE FROM replicas WHERE seen_at < $1 RETURNING name`, ts(before))
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
		if err := rows.Err(); err != nil {
			return err
		}
		for _, n := range dead {
			if _, err := tx.Exec(ctx, `UPDATE agents SET online = false, disconnected_at = $1 WHERE online AND replica = $2`, ts(before), n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "reap replicas")
	}
	return dead, nil
}
