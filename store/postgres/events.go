package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// AppendEvents stores events in one transaction and sets their IDs (and
// Time, when zero, to now; times are kept to the microsecond). EINVALID,
// with nothing stored, when an event has no type or details JSON cannot
// carry.
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
	now := db.nowUS()
	times := make([]time.Time, len(events))
	for i, e := range events {
		times[i] = now
		if !e.Time.IsZero() {
			times[i] = e.Time.Truncate(time.Microsecond).UTC()
		}
	}
	ids := make([]int64, len(events))
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i, e := range events {
			var d any
			if details[i] != nil {
				d = details[i]
			}
			b.Queue(`INSERT INTO events (type, agent_id, message, details, time) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
				e.Type, e.AgentID.String(), e.Message, d, times[i])
		}
		br := tx.SendBatch(ctx, b)
		for i := range events {
			if err := br.QueryRow().Scan(&ids[i]); err != nil {
				br.Close()
				return err
			}
		}
		return br.Close()
	})
	if err != nil {
		return wrap(err, "append %d events", len(events))
	}
	for i, e := range events {
		e.ID = ids[i]
		e.Time = times[i]
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.AgentID != nil {
		where = append(where, "agent_id = "+arg(f.AgentID.String()))
	}
	if len(f.Types) > 0 {
		where = append(where, "type = ANY("+arg(f.Types)+"::text[])")
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(f.Since))
	}
	q := `SELECT id, type, agent_id, message, details, time FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ` + arg(f.Limit)
	}
	rows, err := db.pool.Query(ctx, q, args...)
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
		)
		if err := rows.Scan(&e.ID, &e.Type, &agent, &e.Message, &details, &e.Time); err != nil {
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
		e.Time = e.Time.UTC()
		out = append(out, &e)
	}
	return out, wrap(rows.Err(), "list events")
}

// PruneEvents deletes events older than before and returns how many.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, nil
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM events WHERE time < $1`, before)
	if err != nil {
		return 0, wrap(err, "prune events")
	}
	return int(tag.RowsAffected()), nil
}
