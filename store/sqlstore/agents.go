package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutAgent inserts or replaces the whole agent row. A zero CreatedAt keeps
// the stored creation time (now for a new agent); a zero UpdatedAt becomes
// now; a LastSeen earlier than the stored one keeps the stored one. Both are written back to a, at the precision stored. EINVALID for a
// nil agent, a zero id or a value JSON cannot carry.
func (db *DB) PutAgent(ctx context.Context, a *steward.Agent) error {
	if a == nil || a.ID.IsZero() {
		return steward.Errorf(steward.EINVALID, "agent must have a non-zero id")
	}
	return db.PutAgents(ctx, []*steward.Agent{a})
}

// agentRow is what PutAgents writes for one agent.
type agentRow struct {
	a             *steward.Agent
	doc           []byte
	state         []byte
	c             record.AgentColumns
	effective     []byte // the effective config's hash when stored apart
	components    []byte // the available components' hash (always stored apart)
	set           body   // the available components, to store when missing
	created       time.Time
	keepCreated   bool
	updated       time.Time
	storedCreated timeCol
}

// PutAgents does what PutAgent does for every agent, in one transaction:
// all are written or none. Rows are written in id order, those with a
// zero CreatedAt first (see putAgentRows); two batches writing the same
// agents, one with a zero CreatedAt and the other not, can still deadlock
// in PostgreSQL, which fails one, and tx retries it. A non-empty
// effective config is stored apart, once per content hash (see
// bodies.go), and is not sent again while stored.
func (db *DB) PutAgents(ctx context.Context, agents []*steward.Agent) error {
	now := db.nowT()
	rows, err := db.newAgentRows(agents, now)
	if err != nil {
		return err
	}
	write := lastOfEach(rows)
	var seen [][]byte
	err = db.tx(ctx, false, func(tx *Tx) error {
		var err error
		seen, err = db.putWholeRows(ctx, tx, write, now)
		return err
	})
	if err != nil {
		return wrapAgentsErr(db, err, rows)
	}
	db.bodies.sawStored(seen, now)
	writeBack(db, rows)
	return nil
}

// PutAgentStates writes the state of each agent (see
// steward.AgentStateStore) in one transaction: the state document, state
// columns and effective config hash (its body stored apart, as by
// PutAgents) of the stored rows by multi-row UPDATEs, their last-seen rows
// as PutAgents writes them; agents without a row are written whole.
// Neither the agent's document nor its attribute, search and name columns
// (and their indexes) are touched.
func (db *DB) PutAgentStates(ctx context.Context, agents []*steward.Agent) error {
	now := db.nowT()
	rows := make([]*agentRow, 0, len(agents))
	for _, a := range agents {
		if a == nil || a.ID.IsZero() {
			return steward.Errorf(steward.EINVALID, "agent must have a non-zero id")
		}
		r := &agentRow{a: a, created: a.CreatedAt, updated: a.UpdatedAt}
		var err error
		if r.state, err = record.EncodeState(a); err != nil {
			return err
		}
		if r.updated.IsZero() {
			r.updated = now
		}
		r.c.ID = a.ID.String()
		if a.EffectiveConfig != nil && len(*a.EffectiveConfig) > 0 {
			r.effective = db.hashes.hash(*a.EffectiveConfig)
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(x, y *agentRow) int { return bytes.Compare(x.a.ID[:], y.a.ID[:]) })
	write := lastOfEach(rows)
	var seen [][]byte
	err := db.tx(ctx, false, func(tx *Tx) error {
		var err error
		if seen, err = db.storeBodies(ctx, tx, wantedBodies(write), now); err != nil {
			return err
		}
		missing, err := db.updateStates(ctx, tx, write)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			return db.upsertSeenRows(ctx, tx, write)
		}
		whole, err := db.newAgentRows(agentsOf(missing), now)
		if err != nil {
			return err
		}
		if _, err = db.putWholeRows(ctx, tx, whole, now); err != nil {
			return err
		}
		for i, r := range missing {
			r.storedCreated = whole[i].storedCreated
		}
		return db.upsertSeenRows(ctx, tx, slices.DeleteFunc(slices.Clone(write), func(r *agentRow) bool { return slices.Contains(missing, r) }))
	})
	if err != nil {
		return wrapAgentsErr(db, err, rows)
	}
	db.bodies.sawStored(seen, now)
	writeBack(db, rows)
	return nil
}

// newAgentRows encodes agents as whole rows, sorted by id (stable: of
// several writes of one agent the last stays last). A non-empty effective
// config and the available components are left out of the document, to
// be stored apart (effective and components are their hashes).
func (db *DB) newAgentRows(agents []*steward.Agent, now time.Time) ([]*agentRow, error) {
	rows := make([]*agentRow, 0, len(agents))
	for _, a := range agents {
		if a == nil || a.ID.IsZero() {
			return nil, steward.Errorf(steward.EINVALID, "agent must have a non-zero id")
		}
		r := &agentRow{a: a, c: record.Columns(a), created: a.CreatedAt, updated: a.UpdatedAt}
		docOf := *a
		if a.EffectiveConfig != nil && len(*a.EffectiveConfig) > 0 {
			r.effective = db.hashes.hash(*a.EffectiveConfig)
			docOf.EffectiveConfig = nil
		}
		var err error
		if a.AvailableComponents != nil {
			r.set = body{components: a.AvailableComponents}
			if r.set.enc, r.components, err = db.sets.encode(a.AvailableComponents); err != nil {
				return nil, err
			}
			docOf.AvailableComponents = nil
		}
		if r.doc, err = record.EncodeAgent(&docOf); err != nil {
			return nil, err
		}
		if r.state, err = record.EncodeState(a); err != nil {
			return nil, err
		}
		if r.keepCreated = r.created.IsZero(); r.keepCreated {
			r.created = now
		}
		if r.updated.IsZero() {
			r.updated = now
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(x, y *agentRow) int { return bytes.Compare(x.a.ID[:], y.a.ID[:]) })
	return rows, nil
}

// putWholeRows writes rows (sorted by id, each id once) whole: their
// effective configs apart (see bodies.go), then their agent and last-seen
// rows. It returns the body hashes it saw stored.
func (db *DB) putWholeRows(ctx context.Context, tx *Tx, rows []*agentRow, now time.Time) ([][]byte, error) {
	seen, err := db.storeBodies(ctx, tx, wantedBodies(rows), now)
	if err != nil {
		return nil, err
	}
	return seen, db.putAgentRows(ctx, tx, rows)
}

// wantedBodies returns what rows store apart (effective configs and
// available components), by hash.
func wantedBodies(rows []*agentRow) map[string]body {
	want := make(map[string]body)
	for _, r := range rows {
		if r.effective != nil {
			want[string(r.effective)] = body{files: *r.a.EffectiveConfig}
		}
		if r.components != nil {
			want[string(r.components)] = r.set
		}
	}
	return want
}

// lastOfEach returns the last row of each agent in rows (sorted by id).
func lastOfEach(rows []*agentRow) []*agentRow {
	write := make([]*agentRow, 0, len(rows))
	for i, r := range rows {
		if i+1 == len(rows) || rows[i+1].a.ID != r.a.ID {
			write = append(write, r)
		}
	}
	return write
}

func agentsOf(rows []*agentRow) []*steward.Agent {
	as := make([]*steward.Agent, len(rows))
	for i, r := range rows {
		as[i] = r.a
	}
	return as
}

func wrapAgentsErr(db *DB, err error, rows []*agentRow) error {
	if len(rows) == 1 {
		return db.wrap(err, "put agent %s", rows[0].a.ID)
	}
	return db.wrap(err, "put %d agents", len(rows))
}

// writeBack sets CreatedAt (as stored by the row written for the agent,
// the last of its rows) and UpdatedAt (at the precision stored) on the
// agents of rows, sorted by id.
func writeBack(db *DB, rows []*agentRow) {
	var last *agentRow
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if last == nil || last.a.ID != r.a.ID {
			last = r
		}
		r.a.CreatedAt = last.storedCreated.Time
		r.a.UpdatedAt = db.trunc(r.updated)
	}
}

// updateStates writes the state of rows (sorted by id, each id once) to
// the stored agent rows and returns the rows that have no stored agent. A
// row without an effective config hash keeps the stored one. Where a
// statement costs no round trip (Dialect.RowStatements) it runs one
// UPDATE per row: SQLite runs a multi-row UPDATE ... FROM in two passes
// over a materialized join, which cost it more than the rows themselves
// (storetest.BenchmarkPutAgentStates).
func (db *DB) updateStates(ctx context.Context, tx *Tx, rows []*agentRow) ([]*agentRow, error) {
	if !db.d.RowStatements {
		return db.updateStatesBatched(ctx, tx, rows)
	}
	st, err := tx.tx.PrepareContext(ctx, Expand(db.d, `UPDATE agents SET state = ?, online = ?, replica = ?,
			disconnected_at = ?, updated_at = ?, config_status = ?, sync_state = ?, health = ?, healthy = ?,
			effective_hash = COALESCE(?, effective_hash)
		WHERE id = ? RETURNING created_at`))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var missing []*agentRow
	for _, r := range rows {
		a, c := r.a, record.StateColumnsOf(r.a)
		err := st.QueryRowContext(ctx, r.state, a.Online, a.Replica, db.time(a.DisconnectedAt), db.time(r.updated),
			c.ConfigStatus, c.SyncState, c.Health, c.Healthy, r.effective, c.ID).Scan(&r.storedCreated)
		switch {
		case err == sql.ErrNoRows:
			missing = append(missing, r)
		case err != nil:
			return nil, err
		}
	}
	return missing, nil
}

// updateStatesBatched is updateStates with rowsPerStatement rows per
// UPDATE. A row without an effective config
// hash keeps the stored one. Every value is cast to its column's type: the
// VALUES list gives PostgreSQL nothing else to infer it from.
func (db *DB) updateStatesBatched(ctx context.Context, tx *Tx, rows []*agentRow) ([]*agentRow, error) {
	byID := make(map[string]*agentRow, len(rows))
	for _, r := range rows {
		byID[r.c.ID] = r
	}
	row := `(CAST(? AS text), CAST(? AS {json}), CAST(? AS {bool}), CAST(? AS text), CAST(? AS {time}), CAST(? AS {time}),
		CAST(? AS text), CAST(? AS text), CAST(? AS text), CAST(? AS {blob}), CAST(? AS {bool}))`
	err := inStatements(ctx, tx, rows, func(n int) string {
		return `WITH v (id, state, online, replica, disconnected_at, updated_at, config_status, sync_state, health, effective_hash, healthy) AS (
			VALUES ` + strings.Repeat(row+", ", n-1) + row + `)
		UPDATE agents SET state = v.state, online = v.online, replica = v.replica, disconnected_at = v.disconnected_at,
			updated_at = v.updated_at, config_status = v.config_status, sync_state = v.sync_state, health = v.health,
			healthy = v.healthy, effective_hash = COALESCE(v.effective_hash, agents.effective_hash)
		FROM v WHERE agents.id = v.id
		RETURNING agents.id, agents.created_at`
	}, func(st *sql.Stmt, part []*agentRow) error {
		args := make([]any, 0, len(part)*11)
		for _, r := range part {
			a, c := r.a, record.StateColumnsOf(r.a)
			args = append(args, c.ID, r.state, a.Online, a.Replica, db.time(a.DisconnectedAt), db.time(r.updated),
				c.ConfigStatus, c.SyncState, c.Health, r.effective, c.Healthy)
		}
		return queryCreated(ctx, st, args, byID, true)
	})
	if err != nil {
		return nil, err
	}
	var missing []*agentRow
	for _, r := range rows {
		if _, ok := byID[r.c.ID]; ok {
			missing = append(missing, r)
		}
	}
	return missing, nil
}

// rowsPerStatement is how many agents one upsert writes: a statement per
// rowsPerStatement agents, not two per agent, saves PostgreSQL a round
// trip per row; 19 parameters each stay far below either database's
// limit (PostgreSQL 65,535, SQLite 32,766).
const rowsPerStatement = 250

// putAgentRows writes the agent rows and last-seen rows of rows (sorted by
// id, each id once), with multi-row upserts of rowsPerStatement rows, each
// statement prepared once per call; rows keeping their stored creation
// time and rows replacing it are written by separate statements.
func (db *DB) putAgentRows(ctx context.Context, tx *Tx, rows []*agentRow) error {
	var keep, replace []*agentRow
	for _, r := range rows {
		if r.keepCreated {
			keep = append(keep, r)
		} else {
			replace = append(replace, r)
		}
	}
	for _, group := range [][]*agentRow{keep, replace} {
		if err := db.upsertAgentRows(ctx, tx, group); err != nil {
			return err
		}
	}
	return db.upsertSeenRows(ctx, tx, rows)
}

// upsertAgentRows writes rows, all keeping or all replacing their stored
// creation time, and reads that time back into storedCreated.
func (db *DB) upsertAgentRows(ctx context.Context, tx *Tx, rows []*agentRow) error {
	if len(rows) == 0 {
		return nil
	}
	created := "excluded.created_at"
	if rows[0].keepCreated {
		created = "agents.created_at"
	}
	byID := make(map[string]*agentRow, min(len(rows), rowsPerStatement))
	return inStatements(ctx, tx, rows, func(n int) string {
		return `INSERT INTO agents (id, doc, online, healthy, service_name, host_name, service_version, search,
			replica, disconnected_at, created_at, updated_at, config_status, sync_state, effective_hash, health, attrs, state,
			components_hash)
		VALUES ` + placeholders(n, 19) + `
		ON CONFLICT (id) DO UPDATE SET
			doc = excluded.doc, state = excluded.state, online = excluded.online, healthy = excluded.healthy,
			service_name = excluded.service_name, host_name = excluded.host_name,
			service_version = excluded.service_version, search = excluded.search,
			config_status = excluded.config_status, sync_state = excluded.sync_state, health = excluded.health, attrs = excluded.attrs,
			replica = excluded.replica, disconnected_at = excluded.disconnected_at, created_at = ` + created + `,
			updated_at = excluded.updated_at, effective_hash = excluded.effective_hash,
			components_hash = excluded.components_hash
		RETURNING id, created_at`
	}, func(st *sql.Stmt, part []*agentRow) error {
		args := make([]any, 0, len(part)*19)
		clear(byID)
		for _, r := range part {
			a, c := r.a, r.c
			args = append(args, c.ID, r.doc, a.Online, c.Healthy, c.ServiceName, c.HostName, c.ServiceVersion, c.Search,
				a.Replica, db.time(a.DisconnectedAt), db.time(r.created), db.time(r.updated), c.ConfigStatus, c.SyncState,
				r.effective, c.Health, c.Attributes, r.state, r.components)
			byID[c.ID] = r
		}
		return queryCreated(ctx, st, args, byID, false)
	})
}

// queryCreated runs st, a statement RETURNING (id, created_at), with args,
// and sets storedCreated on the row of byID each id names; with drop, the
// rows found are removed from byID, which then holds those not written.
func queryCreated(ctx context.Context, st *sql.Stmt, args []any, byID map[string]*agentRow, drop bool) error {
	rs, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var id string
		var at timeCol
		if err := rs.Scan(&id, &at); err != nil {
			return err
		}
		if r := byID[id]; r != nil {
			r.storedCreated = at
			if drop {
				delete(byID, id)
			}
		}
	}
	return rs.Err()
}

// upsertSeenRows writes the last-seen rows of rows. A batched write may
// carry an older last-seen time than a heartbeat flush (TouchAgents)
// stored meanwhile: a non-zero time never goes back (a zero one clears
// it, as a replacement should).
func (db *DB) upsertSeenRows(ctx context.Context, tx *Tx, rows []*agentRow) error {
	const newer = `(excluded.last_seen IS NULL OR agent_seen.last_seen IS NULL OR excluded.last_seen > agent_seen.last_seen)`
	return inStatements(ctx, tx, rows, func(n int) string {
		return `INSERT INTO agent_seen (id, last_seen, sequence_num) VALUES ` + placeholders(n, 3) + `
		ON CONFLICT (id) DO UPDATE SET
			last_seen = CASE WHEN ` + newer + ` THEN excluded.last_seen ELSE agent_seen.last_seen END,
			sequence_num = CASE WHEN ` + newer + ` THEN excluded.sequence_num ELSE agent_seen.sequence_num END`
	}, func(st *sql.Stmt, part []*agentRow) error {
		args := make([]any, 0, len(part)*3)
		for _, r := range part {
			args = append(args, r.c.ID, db.time(r.a.LastSeen), int64(r.a.SequenceNum))
		}
		_, err := st.ExecContext(ctx, args...)
		return err
	})
}

// inStatements runs rows through run in parts of rowsPerStatement (the
// last one smaller), each with the statement query(len(part)) prepared
// once per part size.
func inStatements(ctx context.Context, tx *Tx, rows []*agentRow, query func(n int) string, run func(*sql.Stmt, []*agentRow) error) error {
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	for len(rows) > 0 {
		n := min(len(rows), rowsPerStatement)
		st := stmts[n]
		if st == nil {
			var err error
			if st, err = tx.tx.PrepareContext(ctx, Expand(tx.db.d, query(n))); err != nil {
				return err
			}
			stmts[n] = st
		}
		if err := run(st, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// placeholders returns n parenthesized groups of cols placeholders:
// "(?, ?), (?, ?)".
func placeholders(n, cols int) string {
	group := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(group+", ", n-1) + group
}

// TouchAgents sets last_seen and its sequence number for each listed agent
// in one transaction. A time earlier than the stored one is ignored
// (last_seen never goes back); unknown agents are ignored.
func (db *DB) TouchAgents(ctx context.Context, seen map[steward.InstanceUID]steward.Seen) error {
	if len(seen) == 0 {
		return nil
	}
	ids := record.SortedIDs(seen)
	err := db.tx(ctx, false, func(tx *Tx) error { return db.d.TouchSeen(ctx, tx.tx, ids, seen) })
	return db.wrap(err, "touch %d agents", len(seen))
}

// MarkOffline sets Online=false (sync state offline, health unknown) and DisconnectedAt=at
// on every online agent held by replica, or by any replica when replica is
// "".
func (db *DB) MarkOffline(ctx context.Context, replica string, at time.Time) error {
	_, err := db.exec(ctx, `UPDATE agents SET online = false, sync_state = 'offline', health = 'unknown', disconnected_at = ?
		WHERE online AND (? = '' OR replica = ?)`, db.time(at), replica, replica)
	return db.wrap(err, "mark offline (replica %q)", replica)
}

// NotHeldBy returns those of ids whose stored agent is offline or held by
// another replica (steward.HeldAgentStore).
func (db *DB) NotHeldBy(ctx context.Context, replica string, ids []steward.InstanceUID) ([]steward.InstanceUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []steward.InstanceUID
	err := db.each(ctx, `SELECT id FROM agents WHERE id IN (SELECT value FROM {json_strings}(?)) AND (NOT online OR replica <> ?)`,
		[]any{idsJSON(ids), replica}, func(rows *sql.Rows) error {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			uid, err := steward.ParseInstanceUID(id)
			out = append(out, uid)
			return err
		})
	return out, db.wrap(err, "agents not held by %s", replica)
}

// agentCols and agentFrom select what scanAgent reads.
const (
	agentCols = `a.id, a.doc, a.state, ` + agentColsAfterState
	// agentColsAfterState follows the state column in agentCols and in
	// the listings that read less of it (colsOf).
	agentColsAfterState = `a.online, a.replica, s.last_seen, a.disconnected_at, a.created_at, a.updated_at, a.effective_hash, s.sequence_num, a.components_hash`
	agentFrom           = ` FROM agents a LEFT JOIN agent_seen s ON s.id = a.id`
)

type scanner interface{ Scan(dest ...any) error }

// scanAgent reads what agentCols select, and the hashes of what the row
// stores apart (see withBodies). Listings scan
// the document as sql.RawBytes, saving a copy per row (DecodeAgent keeps
// no reference to it); a single row (sql.Row) must use []byte.
func scanAgent[Doc []byte | sql.RawBytes](r scanner) (*steward.Agent, bodyRefs, error) {
	var (
		id, replica                              string
		doc, state                               Doc
		online                                   bool
		lastSeen, disconnected, created, updated timeCol
		refs                                     bodyRefs
		seq                                      sql.NullInt64
	)
	if err := r.Scan(&id, &doc, &state, &online, &replica, &lastSeen, &disconnected, &created, &updated, &refs.effective, &seq, &refs.components); err != nil {
		return nil, refs, err
	}
	a, err := record.DecodeAgent(id, []byte(doc), []byte(state))
	if err != nil {
		return nil, refs, err
	}
	a.Online = online
	a.Replica = replica
	a.LastSeen = lastSeen.Time
	a.DisconnectedAt = disconnected.Time
	a.CreatedAt = created.Time
	a.UpdatedAt = updated.Time
	if seq.Valid { // stored with the newest last_seen (uint64 bits in a bigint)
		a.SequenceNum = uint64(seq.Int64)
	}
	return a, refs, nil
}

// Agent returns one agent; ENOTFOUND if unknown, EINTERNAL naming the agent
// if its stored document is corrupt.
func (db *DB) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	row, err := db.queryRowPrepared(ctx, `SELECT `+agentCols+agentFrom+` WHERE a.id = ?`, id.String())
	if err != nil {
		return nil, db.wrap(err, "agent %s", id)
	}
	a, refs, err := scanAgent[[]byte](row)
	if err != nil {
		return nil, db.notFound(err, "agent %s", id)
	}
	if err := db.withBodies(ctx, []*steward.Agent{a}, []bodyRefs{refs}); err != nil {
		return nil, err
	}
	return a, nil
}

// DeleteAgent removes an agent and its events; ENOTFOUND if unknown.
func (db *DB) DeleteAgent(ctx context.Context, id steward.InstanceUID) error {
	err := db.tx(ctx, false, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM agents WHERE id = ?`, id.String())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "agent %s not found", id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM agent_seen WHERE id = ?`, id.String()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM events WHERE agent_id = ?`, id.String())
		return err
	})
	return db.wrap(err, "delete agent %s", id)
}
