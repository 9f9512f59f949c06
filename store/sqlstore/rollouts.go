package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/stewardhq/steward"
)

// PutRollout inserts r (Revision 0; ECONFLICT if the name is taken) or
// updates it if the stored revision equals r.Revision (ECONFLICT otherwise:
// someone, perhaps another replica, moved it first). On success r.Revision
// is incremented.
func (db *DB) PutRollout(ctx context.Context, r *steward.Rollout) error {
	next := *r
	next.Revision = r.Revision + 1
	doc, err := encodeDoc(db, fmt.Sprintf("rollout %q", r.Name), &next)
	if err != nil {
		return err
	}
	if r.Revision == 0 {
		_, err = db.exec(ctx, `INSERT INTO rollouts(name, assignment, revision, doc, updated_at) VALUES (?, ?, 1, ?, ?)`,
			r.Name, r.Assignment, doc, db.time(r.UpdatedAt))
		if db.d.Unique(err) {
			return steward.Errorf(steward.ECONFLICT, "rollout %q exists", r.Name)
		} else if err != nil {
			return db.wrap(err, "put rollout %q", r.Name)
		}
	} else {
		res, err := db.exec(ctx, `UPDATE rollouts SET assignment = ?, revision = ?, doc = ?, updated_at = ? WHERE name = ? AND revision = ?`,
			r.Assignment, next.Revision, doc, db.time(r.UpdatedAt), r.Name, r.Revision)
		if err != nil {
			return db.wrap(err, "put rollout %q", r.Name)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ECONFLICT, "rollout %q was changed by someone else (revision %d is no longer current)", r.Name, r.Revision)
		}
	}
	r.Revision = next.Revision
	return nil
}

// Rollout returns one rollout; ENOTFOUND if missing.
func (db *DB) Rollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return getDoc[steward.Rollout](ctx, db, fmt.Sprintf("rollout %q", name), `SELECT doc FROM rollouts WHERE name = ?`, name)
}

// Rollouts lists every rollout, most recently updated first.
func (db *DB) Rollouts(ctx context.Context) ([]*steward.Rollout, error) {
	return listDocs[steward.Rollout](ctx, db, "rollout", `SELECT doc FROM rollouts ORDER BY updated_at DESC, name`)
}

// ReplicaAlive records replica's lease (a lease never goes back in time)
// and reports whether it renewed one: an update that matched no row means
// there was none, and the lease is inserted.
func (db *DB) ReplicaAlive(ctx context.Context, replica string, at time.Time) (bool, error) {
	res, err := db.exec(ctx, `UPDATE replicas SET seen_at = CASE WHEN seen_at < ? THEN ? ELSE seen_at END WHERE name = ?`,
		db.time(at), db.time(at), replica)
	if err != nil {
		return false, db.wrap(err, "replica alive %q", replica)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return true, nil
	}
	_, err = db.exec(ctx, `INSERT INTO replicas(name, seen_at) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET seen_at = CASE WHEN excluded.seen_at > replicas.seen_at
			THEN excluded.seen_at ELSE replicas.seen_at END`, replica, db.time(at))
	return false, db.wrap(err, "replica alive %q", replica)
}

// ReapReplicas removes replicas whose lease is older than before and marks
// their agents offline, in one transaction (rows locked, so two replicas
// reaping at once do it once).
func (db *DB) ReapReplicas(ctx context.Context, before time.Time) ([]string, error) {
	var dead []string
	err := db.tx(ctx, false, func(tx *Tx) error {
		var err error
		dead, err = tx.Strings(ctx, `DELETE FROM replicas WHERE seen_at < ? RETURNING name`, db.time(before))
		if err != nil {
			return err
		}
		for _, n := range dead {
			if _, err := tx.Exec(ctx, `UPDATE agents SET online = false, sync_state = 'offline', health = 'unknown', disconnected_at = ? WHERE online AND replica = ?`, db.time(before), n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, db.wrap(err, "reap replicas")
	}
	return dead, nil
}

// Summary counts the fleet in one aggregate query over the indexed
// columns, without reading agent documents (one statement: every count is
// of the same snapshot); the agents in except are left out (the caller
// counts their live state itself).
func (db *DB) Summary(ctx context.Context, except []steward.InstanceUID) (*steward.FleetSummary, error) {
	s := steward.NewFleetSummary()
	where, args := "", []any(nil)
	if len(except) > 0 {
		where, args = ` WHERE id NOT IN (SELECT value FROM {json_strings}(?))`, []any{idsJSON(except)}
	}
	const cols = `online, healthy, service_name, service_version, config_status, sync_state`
	err := db.each(ctx, `SELECT `+cols+`, count(*) FROM agents`+where+` GROUP BY `+cols, args, func(rows *sql.Rows) error {
		var (
			online, healthy             bool
			typ, version, config, syncd string
			n                           int
		)
		if err := rows.Scan(&online, &healthy, &typ, &version, &config, &syncd, &n); err != nil {
			return err
		}
		s.Total += n
		if online {
			s.Online += n
			if healthy {
				s.Healthy += n
			}
		}
		s.ByType[typ] += n
		s.ByVersion[version] += n
		s.ByConfigStatus[config] += n
		s.BySync[syncd] += n
		return nil
	})
	if err != nil {
		return nil, db.wrap(err, "summary")
	}
	s.Offline, s.Unhealthy = s.Total-s.Online, s.Total-s.Healthy
	return s, nil
}

// idsJSON returns ids as a JSON array of their canonical strings, the
// form agents.id stores.
func idsJSON(ids []steward.InstanceUID) string {
	b := make([]byte, 0, 2+len(ids)*39)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, id.String()...)
		b = append(b, '"')
	}
	return string(append(b, ']'))
}
