package sqlstore

import (
	"context"
	"database/sql"
	"math"
	"slices"
	"strings"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// agentOrder maps each sort key to the expression it orders by. Free text
// compares bytewise so both dialects order alike; sync_state and health
// hold ASCII names that sort the same in every collation, and keep the
// plain column so their (column, id) indexes serve the sort.
var agentOrder = map[steward.AgentSort]string{
	steward.SortID:       "",
	steward.SortSync:     "a.sync_state",
	steward.SortHealth:   "a.health",
	steward.SortOnline:   "a.online",
	steward.SortType:     "a.service_name{bytewise}",
	steward.SortVersion:  "a.service_version{bytewise}",
	steward.SortHost:     "a.host_name{bytewise}",
	steward.SortLastSeen: "s.last_seen",
}

// Agents returns the agents matching f in f's order (ties by id) and the
// number of matches before f.Offset and f.Limit. Every field but the
// Selector is an SQL condition; a Selector is evaluated in Go on the rows
// the others leave, read in order. EINVALID for a bad filter (see
// AgentFilter.Validate).
func (db *DB) Agents(ctx context.Context, f steward.AgentFilter) ([]*steward.Agent, int, error) {
	if err := f.Validate(); err != nil {
		return nil, 0, err
	}
	sel, err := steward.ParseSelector(f.Selector)
	if err != nil {
		return nil, 0, err
	}
	w, ok := db.agentWhere(f)
	if !ok {
		return []*steward.Agent{}, 0, nil
	}
	order := agentOrderBy(f)
	q, args := `SELECT `+agentCols+agentFrom+w.String()+order, w.args
	total := -1
	if len(sel) == 0 {
		if total, err = db.countAgents(ctx, w); err != nil {
			return nil, 0, err
		}
		if f.Limit > 0 || f.Offset > 0 {
			q, args = pagedAgents(f, w, order)
		}
	}
	out := []*steward.Agent{}
	var effective [][]byte
	err = db.each(ctx, q, args, func(rows *sql.Rows) error {
		a, h, err := scanAgent[sql.RawBytes](rows)
		out, effective = append(out, a), append(effective, h)
		return err
	})
	if err == nil {
		err = db.withBodies(ctx, out, effective)
	}
	if err != nil {
		return nil, 0, db.wrap(err, "list agents")
	}
	if total < 0 {
		out, total = record.SelectPage(out, sel, f.Offset, f.Limit)
	}
	return out, total, nil
}

// agentWhere is the SQL part of f (all but the selector); ok is false when
// f can match nothing (a search term no row can hold).
func (db *DB) agentWhere(f steward.AgentFilter) (w where, ok bool) {
	if f.Online != nil {
		w.add("a.online = ?", *f.Online)
	}
	if f.Healthy != nil {
		w.add("a.healthy = ?", *f.Healthy)
	}
	if f.Sync != "" {
		w.add("a.sync_state = ?", string(f.Sync))
	}
	if len(f.SyncAny) > 0 {
		args := make([]any, len(f.SyncAny))
		for i, st := range f.SyncAny {
			args[i] = string(st)
		}
		w.add("a.sync_state IN (?"+strings.Repeat(", ?", len(args)-1)+")", args...)
	}
	if f.ConfigStatus != "" {
		w.add("a.config_status = ?", string(f.ConfigStatus))
	}
	if f.Health != "" {
		w.add("a.health = ?", string(f.Health))
	}
	if f.Type != "" {
		w.add("a.service_name = ?", f.Type)
	}
	if f.Version != "" {
		w.add("a.service_version = ?", f.Version)
	}
	for _, k := range f.SortedAttributes() {
		term, ok := record.AttributeTerm(k, f.Attributes[k])
		if !ok {
			return w, false
		}
		w.add("{instr}(a.attrs, ?) > 0", term)
	}
	if f.Search != "" {
		term, ok := record.SearchTerm(f.Search)
		if !ok {
			return w, false
		}
		w.add("{instr}(a.search, ?) > 0", term)
	}
	return w, true
}

// countAgents counts the rows w matches.
func (db *DB) countAgents(ctx context.Context, w where) (int, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM agents a`+w.String(), w.args...).Scan(&n)
	return n, db.wrap(err, "count agents")
}

// agentOrderBy is the ORDER BY clause of f: its sort key, then id, both in
// f's direction. Last-seen times never recorded (NULL) sort as the oldest
// in both dialects.
func agentOrderBy(f steward.AgentFilter) string {
	dir, nulls := " ASC", " NULLS FIRST"
	if f.Desc {
		dir, nulls = " DESC", " NULLS LAST"
	}
	expr := agentOrder[f.Sort]
	switch {
	case expr == "":
		return " ORDER BY a.id" + dir
	case f.Sort == steward.SortLastSeen:
		return " ORDER BY " + expr + dir + nulls + ", a.id" + dir
	}
	return " ORDER BY " + expr + dir + ", a.id" + dir
}

// pagedAgents is the query for one page of the agents w matches in order:
// the page's ids are found first, from the indexed columns alone, and only
// those rows' documents are read. Sorting or skipping whole rows would
// carry every matching document through the sort (a first page of 10,000
// failed agents sorted by last seen took 134 ms on SQLite that way, see
// docs/performance.md).
func pagedAgents(f steward.AgentFilter, w where, order string) (string, []any) {
	limit := f.Limit
	if limit == 0 {
		limit = math.MaxInt64
	}
	from := ` FROM agents a`
	if f.Sort == steward.SortLastSeen {
		from = agentFrom
	}
	q := `SELECT ` + agentCols + agentFrom + ` WHERE a.id IN (SELECT a.id` + from + w.String() + order + ` LIMIT ? OFFSET ?)` + order
	return q, append(slices.Clip(w.args), limit, f.Offset)
}
