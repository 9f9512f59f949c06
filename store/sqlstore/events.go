package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// AppendEvents stores events in one transaction and sets their IDs (and
// Time, when zero, to now; times are kept at the precision stored).
// EINVALID, with nothing stored, when an event has no type or details JSON
// cannot carry.
func (db *DB) AppendEvents(ctx context.Context, events ...*steward.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	now := db.nowT()
	times := make([]time.Time, len(events))
	for i, e := range events {
		if e == nil || e.Type == "" {
			return steward.Errorf(steward.EINVALID, "event %d has no type", i)
		}
		details, err := record.EncodeDetails(e)
		if err != nil {
			return err
		}
		times[i] = now
		if !e.Time.IsZero() {
			times[i] = db.trunc(e.Time)
		}
		rows[i] = []any{e.Type, e.AgentID.String(), e.Message, nullBytes(details), db.time(times[i])}
	}
	ids, err := db.insertMany(ctx, `INSERT INTO events (type, agent_id, message, details, time) VALUES `, `(?, ?, ?, ?, ?)`, rows)
	if err != nil {
		return db.wrap(err, "append %d events", len(events))
	}
	for i, e := range events {
		e.ID, e.Time = ids[i], times[i]
	}
	return nil
}

// nullBytes is b, or NULL when b is nil.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// insertBatch is the number of rows per INSERT in insertMany, well below
// the parameter limits of SQLite (32766) and PostgreSQL (65535).
const insertBatch = 500

// insertMany inserts rows (each the arguments of one row placeholder) with
// multi-row INSERTs in one transaction and returns the generated ids in row
// order. Both databases give ids in VALUES order; RETURNING may list them in
// any order, so they are sorted.
func (db *DB) insertMany(ctx context.Context, insert, row string, rows [][]any) ([]int64, error) {
	ids := make([]int64, 0, len(rows))
	err := db.tx(ctx, false, func(tx *Tx) error {
		ids = ids[:0]
		for start := 0; start < len(rows); start += insertBatch {
			chunk := rows[start:min(start+insertBatch, len(rows))]
			var args []any
			for _, r := range chunk {
				args = append(args, r...)
			}
			q := insert + strings.Repeat(row+", ", len(chunk)-1) + row + ` RETURNING id`
			res, err := tx.tx.QueryContext(ctx, Expand(db.d, q), args...)
			if err != nil {
				return err
			}
			got := make([]int64, 0, len(chunk))
			for res.Next() {
				var id int64
				if err := res.Scan(&id); err != nil {
					res.Close()
					return err
				}
				got = append(got, id)
			}
			res.Close()
			if err := res.Err(); err != nil {
				return err
			}
			slices.Sort(got)
			ids = append(ids, got...)
		}
		return nil
	})
	return ids, err
}

// Events returns events matching f, newest first (by time, then id).
func (db *DB) Events(ctx context.Context, f steward.EventFilter) ([]*steward.Event, error) {
	if err := record.CheckPage(0, f.Limit); err != nil {
		return nil, err
	}
	var w where
	if f.AgentID != nil {
		w.add("agent_id = ?", f.AgentID.String())
	}
	if len(f.Types) > 0 {
		types := make([]any, len(f.Types))
		for i, t := range f.Types {
			types[i] = t
		}
		w.add("type IN (?"+strings.Repeat(", ?", len(f.Types)-1)+")", types...)
	}
	if !f.Since.IsZero() {
		w.add("time >= ?", db.time(f.Since))
	}
	q, args := `SELECT id, type, agent_id, message, details, time FROM events`+w.String()+` ORDER BY time DESC, id DESC`, w.args
	if f.Limit > 0 {
		q, args = q+` LIMIT ?`, append(args, f.Limit)
	}
	out := []*steward.Event{}
	err := db.each(ctx, q, args, func(rows *sql.Rows) error {
		var (
			e       steward.Event
			agent   string
			details []byte
			t       timeCol
		)
		if err := rows.Scan(&e.ID, &e.Type, &agent, &e.Message, &details, &t); err != nil {
			return err
		}
		id, err := steward.ParseInstanceUID(agent)
		if err != nil {
			return steward.Errorf(steward.EINTERNAL, "stored event %d has a corrupt agent id %q", e.ID, agent)
		}
		e.AgentID = id
		if e.Details, err = record.DecodeDetails(e.ID, details); err != nil {
			return err
		}
		e.Time = t.Time
		out = append(out, &e)
		return nil
	})
	if err != nil {
		return nil, db.wrap(err, "list events")
	}
	return out, nil
}

// PruneEvents deletes events older than before and returns how many.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, nil
	}
	res, err := db.exec(ctx, `DELETE FROM events WHERE time < ?`, db.time(before))
	if err != nil {
		return 0, db.wrap(err, "prune events")
	}
	n, err := res.RowsAffected()
	return int(n), db.wrap(err, "prune events")
}
