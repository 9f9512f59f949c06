package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// AppendEvents stores events in one transaction and sets their IDs (and
// Time, when zero, to now). EINVALID, with nothing stored, when an event
// has no type or details JSON cannot carry.
func (db *DB) AppendEvents(ctx context.Context, events ...*steward.Event) error {
	if len(events) == 0 {
		return nil
	}
	details := make([][]byte, len(events))
	for i, e := range events {
		if e == nil || e.Type == "" {
			return steward.Errorf(steward.EINVALID, "event %d has no type", i)
		}
		b, err := record.EncodeDetails(e)
		if err != nil {
			return err
		}
		details[i] = b
	}
	now := db.now()
	ids := make([]int64, len(events))
	err := db.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO events (type, agent_id, message, details, time) VALUES (?, ?, ?, ?, ?) RETURNING id`)
		if err != nil {
			return err
		}
		defer st.Close()
		for i, e := range events {
			t := e.Time
			if t.IsZero() {
				t = now
			}
			if err := st.QueryRowContext(ctx, e.Type, e.AgentID.String(), e.Message, details[i], nanos(t)).Scan(&ids[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap(err, "append %d events", len(events))
	}
	for i, e := range events {
		e.ID = ids[i]
		if e.Time.IsZero() {
			e.Time = now
		}
	}
	return nil
}

// Events returns events matching f, newest first (by time, then id).
func (db *DB) Events(ctx context.Context, f steward.EventFilter) ([]*steward.Event, error) {
	if err := record.CheckPage(0, f.Limit); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.AgentID != nil {
		where, args = append(where, "agent_id = ?"), append(args, f.AgentID.String())
	}
	if len(f.Types) > 0 {
		where = append(where, "type IN (?"+strings.Repeat(", ?", len(f.Types)-1)+")")
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, nanos(f.Since))
	}
	q := `SELECT id, type, agent_id, message, details, time FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(err, "list events")
	}
	defer rows.Close()
	out := []*steward.Event{}
	for rows.Next() {
		var (
			e       steward.Event
			agent   string
			details []byte
			t       int64
		)
		if err := rows.Scan(&e.ID, &e.Type, &agent, &e.Message, &details, &t); err != nil {
			return nil, wrap(err, "list events")
		}
		id, err := steward.ParseInstanceUID(agent)
		if err != nil {
			return nil, steward.Errorf(steward.EINTERNAL, "stored event %d has a corrupt agent id %q", e.ID, agent)
		}
		e.AgentID = id
		if e.Details, err = record.DecodeDetails(e.ID, details); err != nil {
			return nil, err
		}
		e.Time = time.Unix(0, t).UTC()
		out = append(out, &e)
	}
	return out, wrap(rows.Err(), "list events")
}

// PruneEvents deletes events older than before and returns how many.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM events WHERE time < ?`, nanos(before))
	if err != nil {
		return 0, wrap(err, "prune events")
	}
	n, err := res.RowsAffected()
	return int(n), wrap(err, "prune events")
}
