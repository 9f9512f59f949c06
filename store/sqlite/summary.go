package sqlite

import (
	"context"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

var _ steward.SummaryStore = (*DB)(nil)

// Summary counts the fleet with aggregate queries over indexed columns,
// without reading agent documents.
func (db *DB) Summary(ctx context.Context) (*steward.FleetSummary, error) {
	s := steward.NewFleetSummary()
	err := db.read.QueryRowContext(ctx, `SELECT count(*), COALESCE(sum(online), 0), COALESCE(sum(healthy), 0) FROM agents`).
		Scan(&s.Total, &s.Online, &s.Healthy)
	if err != nil {
		return nil, wrap(err, "summary")
	}
	s.Offline, s.Unhealthy = s.Total-s.Online, s.Total-s.Healthy
	for col, m := range map[string]map[string]int{"service_name": s.ByType, "service_version": s.ByVersion, "config_status": s.ByConfigStatus} {
		rows, err := db.read.QueryContext(ctx, `SELECT `+col+`, count(*) FROM agents GROUP BY `+col)
		if err != nil {
			return nil, wrap(err, "summary by %s", col)
		}
		err = record.CountInto(rows, m)
		rows.Close()
		if err != nil {
			return nil, wrap(err, "summary by %s", col)
		}
	}
	return s, nil
}
