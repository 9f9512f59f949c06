package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutAgent inserts or replaces the whole agent row. A zero CreatedAt keeps
// the stored creation time (now for a new agent); a zero UpdatedAt becomes
// now. Both are written back to a. EINVALID for a nil agent, a zero id or
// a value JSON cannot carry.
func (db *DB) PutAgent(ctx context.Context, a *steward.Agent) error {
	if a == nil || a.ID.IsZero() {
		return steward.Errorf(steward.EINVALID, "agent must have a non-zero id")
	}
	doc, err := record.EncodeAgent(a)
	if err != nil {
		return err
	}
	c := record.Columns(a)
	now := db.now()
	created, keepCreated := a.CreatedAt, a.CreatedAt.IsZero()
	if keepCreated {
		created = now
	}
	updated := a.UpdatedAt
	if updated.IsZero() {
		updated = now
	}
	var createdN int64
	err = db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `
		INSERT INTO agents (id, doc, online, healthy, service_name, host_name, service_version, search,
			replica, disconnected_at, created_at, updated_at, config_status)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			doc = excluded.doc, online = excluded.online, healthy = excluded.healthy,
			service_name = excluded.service_name, host_name = excluded.host_name,
			service_version = excluded.service_version, search = excluded.search,
			config_status = excluded.config_status,
			replica = excluded.replica, disconnected_at = excluded.disconnected_at,
			created_at = CASE WHEN ? THEN agents.created_at ELSE excluded.created_at END,
			updated_at = excluded.updated_at
		RETURNING created_at`,
			c.ID, doc, boolInt(a.Online), boolInt(c.Healthy), c.ServiceName, c.HostName, c.ServiceVersion, c.Search,
			a.Replica, toNanos(a.DisconnectedAt), nanos(created), nanos(updated), c.ConfigStatus,
			boolInt(keepCreated),
		).Scan(&createdN)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO agent_seen (id, last_seen) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen`, c.ID, toNanos(a.LastSeen))
		return err
	})
	if err != nil {
		return wrap(err, "put agent %s", c.ID)
	}
	a.CreatedAt = time.Unix(0, createdN).UTC()
	a.UpdatedAt = updated
	return nil
}

// TouchAgents sets last_seen for each listed agent in one transaction. A
// time earlier than the stored one is ignored (last_seen never goes back);
// unknown agents are ignored.
func (db *DB) TouchAgents(ctx context.Context, seen map[steward.InstanceUID]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	ids := record.SortedIDs(seen)
	err := db.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE agent_seen SET last_seen = max(coalesce(last_seen, ?1), ?1) WHERE id = ?2`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, id := range ids {
			t := seen[id]
			if t.IsZero() {
				continue
			}
			if _, err := st.ExecContext(ctx, nanos(t), id.String()); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(err, "touch %d agents", len(seen))
}

// MarkOffline sets Online=false and DisconnectedAt=at on every online agent
// held by replica, or by any replica when replica is "".
func (db *DB) MarkOffline(ctx context.Context, replica string, at time.Time) error {
	_, err := db.write.ExecContext(ctx, `UPDATE agents SET online = 0, disconnected_at = ?
		WHERE online = 1 AND (? = '' OR replica = ?)`, toNanos(at), replica, replica)
	return wrap(err, "mark offline (replica %q)", replica)
}

// agentCols and agentFrom select what scanAgent reads.
const (
	agentCols = `a.id, a.doc, a.online, a.replica, s.last_seen, a.disconnected_at, a.created_at, a.updated_at`
	agentFrom = ` FROM agents a LEFT JOIN agent_seen s ON s.id = a.id`
)

type scanner interface{ Scan(dest ...any) error }

func scanAgent(r scanner) (*steward.Agent, error) {
	var (
		id, replica            string
		doc                    []byte
		online                 bool
		lastSeen, disconnected sql.NullInt64
		createdN, updatedN     int64
	)
	if err := r.Scan(&id, &doc, &online, &replica, &lastSeen, &disconnected, &createdN, &updatedN); err != nil {
		return nil, err
	}
	a, err := record.DecodeAgent(id, doc)
	if err != nil {
		return nil, err
	}
	a.Online = online
	a.Replica = replica
	a.LastSeen = fromNanos(lastSeen)
	a.DisconnectedAt = fromNanos(disconnected)
	a.CreatedAt = time.Unix(0, createdN).UTC()
	a.UpdatedAt = time.Unix(0, updatedN).UTC()
	return a, nil
}

// Agent returns one agent; ENOTFOUND if unknown, EINTERNAL naming the agent
// if its stored document is corrupt.
func (db *DB) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	a, err := scanAgent(db.read.QueryRowContext(ctx, `SELECT `+agentCols+agentFrom+` WHERE a.id = ?`, id.String()))
	if err == sql.ErrNoRows {
		return nil, steward.Errorf(steward.ENOTFOUND, "agent %s not found", id)
	}
	return a, wrap(err, "agent %s", id)
}

// Agents returns the agents matching f ordered by id, and the number of
// matches before f.Offset and f.Limit. Online, Healthy and Search are SQL
// conditions; a Selector is evaluated in Go on the rows those leave.
// EINVALID for a bad selector or a negative offset/limit.
func (db *DB) Agents(ctx context.Context, f steward.AgentFilter) ([]*steward.Agent, int, error) {
	if err := record.CheckPage(f.Offset, f.Limit); err != nil {
		return nil, 0, err
	}
	sel, err := steward.ParseSelector(f.Selector)
	if err != nil {
		return nil, 0, err
	}
	var where []string
	var args []any
	if f.Online != nil {
		where, args = append(where, "a.online = ?"), append(args, boolInt(*f.Online))
	}
	if f.Healthy != nil {
		where, args = append(where, "a.healthy = ?"), append(args, boolInt(*f.Healthy))
	}
	if f.Search != "" {
		term, ok := record.SearchTerm(f.Search)
		if !ok {
			return []*steward.Agent{}, 0, nil
		}
		where, args = append(where, "instr(a.search, ?) > 0"), append(args, term)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	q := `SELECT ` + agentCols + agentFrom + cond + ` ORDER BY a.id`
	total := -1
	if len(sel) == 0 {
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM agents a`+cond, args...).Scan(&total); err != nil {
			return nil, 0, wrap(err, "count agents")
		}
		if f.Limit > 0 {
			q += ` LIMIT ? OFFSET ?`
			args = append(args, f.Limit, f.Offset)
		} else if f.Offset > 0 {
			q += ` LIMIT -1 OFFSET ?`
			args = append(args, f.Offset)
		}
	}
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, wrap(err, "list agents")
	}
	defer rows.Close()
	out := []*steward.Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, 0, wrap(err, "list agents")
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrap(err, "list agents")
	}
	if total < 0 {
		out, total = record.SelectPage(out, sel, f.Offset, f.Limit)
	}
	return out, total, nil
}

// DeleteAgent removes an agent and its events; ENOTFOUND if unknown.
func (db *DB) DeleteAgent(ctx context.Context, id steward.InstanceUID) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM agents WHERE id = ?`, id.String())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "agent %s not found", id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM agent_seen WHERE id = ?`, id.String()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE agent_id = ?`, id.String())
		return err
	})
	return wrap(err, "delete agent %s", id)
}
