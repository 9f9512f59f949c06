package sqlstore

import (
	"context"
	"database/sql"
	"math"
	"time"

	"github.com/stewardhq/steward"
)

var _ steward.TelemetryStore = (*DB)(nil)

// telemetryColumns are the series' columns, in steward.TelemetrySeries order.
const telemetryColumns = `cpu, memory_rss, received, refused, sent, send_failed, queue_size, queue_capacity`

// rollupBatch bounds the rows of one INSERT (PostgreSQL allows 65,535
// parameters, SQLite 32,766).
const rollupBatch = 500

// PutTelemetryRollups inserts rollups in one transaction, replacing any
// of the same agent and minute.
func (db *DB) PutTelemetryRollups(ctx context.Context, rollups []steward.TelemetryRollup) error {
	err := db.tx(ctx, false, func(tx *Tx) error {
		for len(rollups) > 0 {
			n := min(len(rollups), rollupBatch)
			q := `INSERT INTO telemetry_rollups(agent_id, minute, ` + telemetryColumns + `) VALUES `
			args := make([]any, 0, n*(2+int(steward.TelemetrySeriesCount)))
			for i, r := range rollups[:n] {
				if i > 0 {
					q += ", "
				}
				q += "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
				args = append(args, r.AgentID.String(), r.Minute.Unix())
				for _, v := range r.Values {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						args = append(args, nil)
					} else {
						args = append(args, v)
					}
				}
			}
			q += ` ON CONFLICT (agent_id, minute) DO UPDATE SET cpu = excluded.cpu, memory_rss = excluded.memory_rss,
				received = excluded.received, refused = excluded.refused, sent = excluded.sent, send_failed = excluded.send_failed,
				queue_size = excluded.queue_size, queue_capacity = excluded.queue_capacity`
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
			rollups = rollups[n:]
		}
		return nil
	})
	return db.wrap(err, "put telemetry rollups")
}

// TelemetryRollups returns the rollups of minutes at or after since, by
// minute then agent.
func (db *DB) TelemetryRollups(ctx context.Context, since time.Time) ([]steward.TelemetryRollup, error) {
	var out []steward.TelemetryRollup
	err := db.each(ctx, `SELECT agent_id, minute, `+telemetryColumns+` FROM telemetry_rollups WHERE minute >= ? ORDER BY minute, agent_id`,
		[]any{since.Unix()}, func(rows *sql.Rows) error {
			var id string
			var minute int64
			var vals [steward.TelemetrySeriesCount]sql.NullFloat64
			dst := []any{&id, &minute}
			for i := range vals {
				dst = append(dst, &vals[i])
			}
			if err := rows.Scan(dst...); err != nil {
				return err
			}
			uid, err := steward.ParseInstanceUID(id)
			if err != nil {
				return err
			}
			r := steward.TelemetryRollup{AgentID: uid, Minute: time.Unix(minute, 0).UTC()}
			for i, v := range vals {
				r.Values[i] = math.NaN()
				if v.Valid {
					r.Values[i] = v.Float64
				}
			}
			out = append(out, r)
			return nil
		})
	return out, db.wrap(err, "read telemetry rollups")
}

// DeleteTelemetryRollups removes the minutes before before.
func (db *DB) DeleteTelemetryRollups(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM telemetry_rollups WHERE minute < ?`, before.Unix())
	if err != nil {
		return 0, db.wrap(err, "delete telemetry rollups")
	}
	n, _ := res.RowsAffected()
	return n, nil
}
