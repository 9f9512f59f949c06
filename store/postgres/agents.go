package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutAgent inserts or replaces the whole agent row. A zero CreatedAt keeps
// the stored creation time (now for a new agent); a zero UpdatedAt becomes
// now. Both are written back to a, at the microsecond precision stored.
// EINVALID for a nil agent, a zero id or a value JSON cannot carry.
func (db *DB) PutAgent(ctx context.Context, a *steward.Agent) error {
	if a == nil || a.ID.IsZero() {
		return steward.Errorf(steward.EINVALID, "agent must have a non-zero id")
	}
	doc, err := record.EncodeAgent(a)
	if err != nil {
		return err
	}
	c := record.Columns(a)
	now := db.nowUS()
	created, keepCreated := a.CreatedAt, a.CreatedAt.IsZero()
	if keepCreated {
		created = now
	}
	updated := a.UpdatedAt
	if updated.IsZero() {
		updated = now
	}
	var createdAt time.Time
	err = db.tx(ctx, false, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
		INSERT INTO agents (id, doc, online, healthy, service_name, host_name, service_version, search,
			replica, disconnected_at, created_at, updated_at, config_status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14)
		ON CONFLICT (id) DO UPDATE SET
			doc = excluded.doc, online = excluded.online, healthy = excluded.healthy,
			service_name = excluded.service_name, host_name = excluded.host_name,
			service_version = excluded.service_version, search = excluded.search,
			config_status = excluded.config_status,
			replica = excluded.replica, disconnected_at = excluded.disconnected_at,
			created_at = CASE WHEN $13 THEN agents.created_at ELSE excluded.created_at END,
			updated_at = excluded.updated_at
		RETURNING created_at`,
			c.ID, doc, a.Online, c.Healthy, c.ServiceName, c.HostName, c.ServiceVersion, c.Search,
			a.Replica, ts(a.DisconnectedAt), ts(created), ts(updated), keepCreated, c.ConfigStatus,
		).Scan(&createdAt)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO agent_seen (id, last_seen) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen`, c.ID, ts(a.LastSeen))
		return err
	})
	if err != nil {
		return wrap(err, "put agent %s", c.ID)
	}
	a.CreatedAt = createdAt.UTC()
	a.UpdatedAt = updated.Truncate(time.Microsecond).UTC()
	return nil
}

// TouchAgents sets last_seen for each listed agent in one statement. A time
// earlier than the stored one is ignored (last_seen never goes back);
// unknown agents are ignored.
func (db *DB) TouchAgents(ctx context.Context, seen map[steward.InstanceUID]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	ids := make([]string, 0, len(seen))
	times := make([]time.Time, 0, len(seen))
	for _, id := range record.SortedIDs(seen) {
		if t := seen[id]; !t.IsZero() {
			ids = append(ids, id.String())
			times = append(times, t.Truncate(time.Microsecond))
		}
	}
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE agent_seen s SET last_seen = GREATEST(s.last_seen, v.t)
			FROM unnest($1::text[], $2::timestamptz[]) AS v(id, t) WHERE s.id = v.id`, ids, times)
		return err
	})
	return wrap(err, "touch %d agents", len(seen))
}

// MarkOffline sets Online=false and DisconnectedAt=at on every online agent
// held by replica, or by any replica when replica is "".
func (db *DB) MarkOffline(ctx context.Context, replica string, at time.Time) error {
	_, err := db.pool.Exec(ctx, `UPDATE agents SET online = false, disconnected_at = $1
		WHERE online AND ($2 = '' OR replica = $2)`, ts(at), replica)
	return wrap(err, "mark offline (replica %q)", replica)
}

// agentCols and agentFrom select what scanAgent reads.
const (
	agentCols = `a.id, a.doc, a.online, a.replica, s.last_seen, a.disconnected_at, a.created_at, a.updated_at`
	agentFrom = ` FROM agents a LEFT JOIN agent_seen s ON s.id = a.id`
)

func scanAgent(r pgx.Row) (*steward.Agent, error) {
	var (
		id, replica            string
		doc                    []byte
		online                 bool
		lastSeen, disconnected pgtype.Timestamptz
		created, updated       time.Time
	)
	if err := r.Scan(&id, &doc, &online, &replica, &lastSeen, &disconnected, &created, &updated); err != nil {
		return nil, err
	}
	a, err := record.DecodeAgent(id, doc)
	if err != nil {
		return nil, err
	}
	a.Online = online
	a.Replica = replica
	a.LastSeen = fromTS(lastSeen)
	a.DisconnectedAt = fromTS(disconnected)
	a.CreatedAt = created.UTC()
	a.UpdatedAt = updated.UTC()
	return a, nil
}

func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// Agent returns one agent; ENOTFOUND if unknown, EINTERNAL naming the agent
// if its stored document is corrupt.
func (db *DB) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	a, err := scanAgent(db.pool.QueryRow(ctx, `SELECT `+agentCols+agentFrom+` WHERE a.id = $1`, id.String()))
	if errors.Is(err, pgx.ErrNoRows) {
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Online != nil {
		where = append(where, "a.online = "+arg(*f.Online))
	}
	if f.Healthy != nil {
		where = append(where, "a.healthy = "+arg(*f.Healthy))
	}
	if f.Search != "" {
		term, ok := record.SearchTerm(f.Search)
		if !ok {
			return []*steward.Agent{}, 0, nil
		}
		where = append(where, "strpos(a.search, "+arg(term)+") > 0")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	q := `SELECT ` + agentCols + agentFrom + cond + ` ORDER BY a.id`
	total := -1
	if len(sel) == 0 {
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM agents a`+cond, args...).Scan(&total); err != nil {
			return nil, 0, wrap(err, "count agents")
		}
		if f.Offset > 0 {
			q += ` OFFSET ` + arg(f.Offset)
		}
		if f.Limit > 0 {
			q += ` LIMIT ` + arg(f.Limit)
		}
	}
	rows, err := db.pool.Query(ctx, q, args...)
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
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM agents WHERE id = $1`, id.String())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return steward.Errorf(steward.ENOTFOUND, "agent %s not found", id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM events WHERE agent_id = $1`, id.String())
		return err
	})
	return wrap(err, "delete agent %s", id)
}
