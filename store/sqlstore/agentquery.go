package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"math"
	"slices"
	"strconv"
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
	return db.AgentsWith(ctx, f, nil)
}

// AgentsWith returns what Agents(ctx, f) would return once live were
// written by PutAgents, without writing them: the live agents' stored rows
// are left out in SQL, those of the live agents f matches (judged on the
// columns PutAgents would store, see liveMatches) are merged into the
// rows in f's order, and the page is cut from the merged order. The page
// holds shallow copies of the live agents; live is only read.
func (db *DB) AgentsWith(ctx context.Context, f steward.AgentFilter, live []*steward.Agent) ([]*steward.Agent, int, error) {
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
	cmp := db.agentCmp(f)
	all := w // the stored rows f matches, live agents' old rows included
	var mine []*steward.Agent
	liveIDs := ""
	if len(live) > 0 {
		ids := make([]steward.InstanceUID, len(live))
		for i, a := range live {
			ids[i] = a.ID
		}
		liveIDs = idsJSON(ids)
		w = where{conds: slices.Clip(all.conds), args: slices.Clip(all.args)}
		w.add("a.id NOT IN (SELECT value FROM {json_strings}(?))", liveIDs)
		mine = liveMatches(f, sel, live)
		slices.SortFunc(mine, cmp)
	}
	order := agentOrderBy(f)
	if len(sel) > 0 {
		rows, err := db.readAgents(ctx, `SELECT `+colsOf(f)+agentFrom+w.String()+order, w.args)
		if err != nil {
			return nil, 0, err
		}
		rows, _ = record.SelectPage(rows, sel, 0, 0)
		all := mergeSorted(rows, mine, cmp)
		return ownPage(cut(all, f.Offset, f.Limit), live), len(all), nil
	}
	total, err := db.countLeaving(ctx, all, liveIDs)
	if err != nil {
		return nil, 0, err
	}
	// At most len(mine) live agents come before the page, so the rows
	// before from lie before it too; rows past f.Offset+f.Limit lie after.
	from := max(0, f.Offset-len(mine))
	q, args := `SELECT `+colsOf(f)+agentFrom+w.String()+order, w.args
	if f.Limit > 0 || from > 0 {
		pf := f
		pf.Offset = from
		if f.Limit > 0 {
			pf.Limit = f.Offset + f.Limit - from
		}
		q, args = pagedAgents(pf, w, order)
	}
	rows, err := db.readAgents(ctx, q, args)
	if err != nil {
		return nil, 0, err
	}
	// The merged list is the listing from position from on, but for the
	// live agents ordered before rows[0], which are all at or before
	// len(mine) in it (and before f.Offset in the listing).
	return ownPage(cut(mergeSorted(rows, mine, cmp), f.Offset-from, f.Limit), live), total + len(mine), nil
}

// countLeaving counts the rows w matches but those of the agents in ids
// (a JSON array, "" for none): all of them less those, which probes the
// id index once per listed agent instead of the list once per row (a NOT
// IN over every row). Both counts are one statement, so they see the same
// rows: counted apart, a group commit writing the live agents between them
// gave a total off by their number.
func (db *DB) countLeaving(ctx context.Context, w where, ids string) (int, error) {
	if ids == "" {
		return db.countAgents(ctx, w)
	}
	in := where{conds: slices.Clip(w.conds), args: slices.Clip(w.args)}
	in.add("a.id IN (SELECT value FROM {json_strings}(?))", ids)
	var n int
	err := db.queryRow(ctx, `SELECT (SELECT count(*) FROM agents a`+w.String()+`) - (SELECT count(*) FROM agents a`+in.String()+`)`,
		append(slices.Clip(w.args), in.args...)...).Scan(&n)
	return n, db.wrap(err, "count agents")
}

// colsOf is what a listing for f selects (AgentFilter.Read): agentCols,
// with no state or a state of the remote config status only ({state_rcs}:
// that document, NULL for a row without a state).
func colsOf(f steward.AgentFilter) string {
	switch f.Read {
	case steward.ReadReport:
		return `a.id, a.doc, NULL, ` + agentColsAfterState
	case steward.ReadConfigStatus:
		return `a.id, a.doc, {state_rcs}, ` + agentColsAfterState
	}
	return agentCols
}

// readAgents reads the agents query q selects (agentCols), in its order.
func (db *DB) readAgents(ctx context.Context, q string, args []any) ([]*steward.Agent, error) {
	out := []*steward.Agent{}
	var refs []bodyRefs
	err := db.each(ctx, q, args, func(rows *sql.Rows) error {
		a, r, err := scanAgent[sql.RawBytes](rows)
		out, refs = append(out, a), append(refs, r)
		return err
	})
	if err == nil {
		err = db.withBodies(ctx, out, refs)
	}
	if err != nil {
		return nil, db.wrap(err, "list agents")
	}
	return out, nil
}

// ownPage replaces every agent of page by a shallow copy when live is not
// empty: the live ones are shared with the caller (copying the page's
// rows as well costs less than telling them apart).
func ownPage(page, live []*steward.Agent) []*steward.Agent {
	if len(live) == 0 {
		return page
	}
	for i, a := range page {
		cp := *a
		page[i] = &cp
	}
	return page
}

// mergeSorted merges two lists ordered by cmp.
func mergeSorted(a, b []*steward.Agent, cmp func(a, b *steward.Agent) int) []*steward.Agent {
	out := make([]*steward.Agent, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if cmp(b[0], a[0]) < 0 {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// cut returns list[offset:] up to limit agents (0: no limit).
func cut(list []*steward.Agent, offset, limit int) []*steward.Agent {
	if offset >= len(list) {
		return []*steward.Agent{}
	}
	list = list[offset:]
	if limit > 0 && limit < len(list) {
		list = list[:limit]
	}
	return list
}

// agentWhere is the SQL part of f (all but the selector); ok is false when
// f can match nothing (a search term no row can hold).
func (db *DB) agentWhere(f steward.AgentFilter) (w where, ok bool) {
	if f.Online != nil {
		w.add("a.online = ?", *f.Online)
	}
	if f.NotHeldBy != "" {
		// Spelt so that both halves search the (online, replica) index:
		// the rows left out are never read.
		w.add("(a.online = ? OR (a.online = ? AND a.replica <> ?))", false, true, f.NotHeldBy)
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

// liveMatches returns the agents of live that f's SQL conditions
// (agentWhere, condition by condition) and sel would match once written:
// judged on the values PutAgents stores (record.Columns, whose costlier
// attribute and search columns are made only for a filter on them).
func liveMatches(f steward.AgentFilter, sel steward.Selector, live []*steward.Agent) []*steward.Agent {
	var attrs []string
	for _, k := range f.SortedAttributes() {
		term, _ := record.AttributeTerm(k, f.Attributes[k]) // agentWhere checked ok
		attrs = append(attrs, term)
	}
	search, _ := record.SearchTerm(f.Search)
	var out []*steward.Agent
	for _, a := range live {
		switch {
		case f.Online != nil && a.Online != *f.Online,
			f.NotHeldBy != "" && a.Online && a.Replica == f.NotHeldBy,
			f.Healthy != nil && a.Healthy() != *f.Healthy,
			f.Sync != "" && a.SyncState() != f.Sync,
			len(f.SyncAny) > 0 && !slices.Contains(f.SyncAny, a.SyncState()),
			f.ConfigStatus != "" && a.ConfigState() != f.ConfigStatus,
			f.Health != "" && a.HealthState() != f.Health,
			f.Type != "" && record.AttributeColumn(a, steward.AttrServiceName) != f.Type,
			f.Version != "" && record.AttributeColumn(a, steward.AttrServiceVersion) != f.Version,
			len(sel) > 0 && !sel.MatchLabels(a):
			continue
		}
		if len(attrs) > 0 || search != "" {
			c := record.Columns(a)
			if slices.ContainsFunc(attrs, func(t string) bool { return !strings.Contains(c.Attributes, t) }) ||
				!strings.Contains(c.Search, search) {
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// agentCmp orders agents as agentOrderBy orders their rows, on the values
// PutAgents stores (record.Columns; last seen at the stored precision).
func (db *DB) agentCmp(f steward.AgentFilter) func(a, b *steward.Agent) int {
	var key func(*steward.Agent) string
	switch f.Sort {
	case steward.SortSync:
		key = func(a *steward.Agent) string { return string(a.SyncState()) }
	case steward.SortHealth:
		key = func(a *steward.Agent) string { return string(a.HealthState()) }
	case steward.SortOnline:
		key = func(a *steward.Agent) string { return strconv.FormatBool(a.Online) } // false < true
	case steward.SortType:
		key = func(a *steward.Agent) string { return record.AttributeColumn(a, steward.AttrServiceName) }
	case steward.SortVersion:
		key = func(a *steward.Agent) string { return record.AttributeColumn(a, steward.AttrServiceVersion) }
	case steward.SortHost:
		key = func(a *steward.Agent) string { return record.AttributeColumn(a, steward.AttrHostName) }
	}
	dir := 1
	if f.Desc {
		dir = -1
	}
	return func(a, b *steward.Agent) int {
		c := 0
		switch {
		case key != nil:
			c = strings.Compare(key(a), key(b))
		case f.Sort == steward.SortLastSeen:
			c = db.trunc(a.LastSeen).Compare(db.trunc(b.LastSeen)) // never seen (zero, NULL) first
		}
		if c == 0 {
			c = bytes.Compare(a.ID[:], b.ID[:])
		}
		return dir * c
	}
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
	q := `SELECT ` + colsOf(f) + agentFrom + ` WHERE a.id IN (SELECT a.id` + from + w.String() + order + ` LIMIT ? OFFSET ?)` + order
	return q, append(slices.Clip(w.args), limit, f.Offset)
}
