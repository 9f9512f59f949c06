package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutConfig validates c (EINVALID) and stores its files as the next version
// of c.Name, unless they hash the same as the latest version, which is then
// returned unchanged. The returned copy has Version, Hash and CreatedAt set
// (CreatedAt is now unless c sets it). Version assignment happens inside a
// write transaction on the single writer connection, so concurrent calls get
// consecutive versions.
func (db *DB) PutConfig(ctx context.Context, c *steward.Config) (*steward.Config, error) {
	if c == nil {
		return nil, steward.Errorf(steward.EINVALID, "nil config")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := *c
	out.Hash = c.Files.Hash()
	if out.CreatedAt.IsZero() {
		out.CreatedAt = db.now()
	}
	out.CreatedAt = out.CreatedAt.UTC()
	files, err := record.EncodeFiles(c.Name, c.Files)
	if err != nil {
		return nil, err
	}
	var existing *steward.Config
	err = db.tx(ctx, func(tx *sql.Tx) error {
		latest, err := scanConfig(tx.QueryRowContext(ctx, `SELECT `+configCols+` FROM configs
			WHERE name = ? ORDER BY version DESC LIMIT 1`, c.Name))
		switch {
		case err == sql.ErrNoRows:
			out.Version = 1
		case err != nil:
			return err
		case bytes.Equal(latest.Hash, out.Hash):
			existing = latest
			return nil
		default:
			out.Version = latest.Version + 1
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO configs (name, version, hash, files, comment, author, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, out.Name, out.Version, out.Hash, files, out.Comment, out.Author, nanos(out.CreatedAt))
		return err
	})
	if err != nil {
		return nil, wrap(err, "put config %q", c.Name)
	}
	if existing != nil {
		return existing, nil
	}
	return &out, nil
}

const configCols = `name, version, hash, files, comment, author, created_at`

func scanConfig(r scanner) (*steward.Config, error) {
	var (
		c       steward.Config
		files   []byte
		created int64
	)
	if err := r.Scan(&c.Name, &c.Version, &c.Hash, &files, &c.Comment, &c.Author, &created); err != nil {
		return nil, err
	}
	m, err := record.DecodeFiles(c.Name, c.Version, files)
	if err != nil {
		return nil, err
	}
	c.Files = m
	c.CreatedAt = time.Unix(0, created).UTC()
	return &c, nil
}

// Config returns version of name (0: the latest); ENOTFOUND if missing.
func (db *DB) Config(ctx context.Context, name string, version int) (*steward.Config, error) {
	var r *sql.Row
	if version == 0 {
		r = db.read.QueryRowContext(ctx, `SELECT `+configCols+` FROM configs WHERE name = ? ORDER BY version DESC LIMIT 1`, name)
	} else {
		r = db.read.QueryRowContext(ctx, `SELECT `+configCols+` FROM configs WHERE name = ? AND version = ?`, name, version)
	}
	c, err := scanConfig(r)
	if err == sql.ErrNoRows {
		if version == 0 {
			return nil, steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
		}
		return nil, steward.Errorf(steward.ENOTFOUND, "config %q version %d not found", name, version)
	}
	return c, wrap(err, "config %q", name)
}

func (db *DB) listConfigs(ctx context.Context, q string, args ...any) ([]*steward.Config, error) {
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*steward.Config{}
	for rows.Next() {
		c, err := scanConfig(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Configs returns the latest version of every config, ordered by name.
func (db *DB) Configs(ctx context.Context) ([]*steward.Config, error) {
	out, err := db.listConfigs(ctx, `SELECT `+configCols+` FROM configs c
		WHERE version = (SELECT max(version) FROM configs WHERE name = c.name) ORDER BY name`)
	return out, wrap(err, "list configs")
}

// ConfigHistory returns every version of name, newest first; ENOTFOUND if
// there is none.
func (db *DB) ConfigHistory(ctx context.Context, name string) ([]*steward.Config, error) {
	out, err := db.listConfigs(ctx, `SELECT `+configCols+` FROM configs WHERE name = ? ORDER BY version DESC`, name)
	if err != nil {
		return nil, wrap(err, "config history %q", name)
	}
	if len(out) == 0 {
		return nil, steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
	}
	return out, nil
}

// DeleteConfig removes every version of name; ENOTFOUND if there is none,
// ECONFLICT (nothing deleted) while an assignment names it.
func (db *DB) DeleteConfig(ctx context.Context, name string) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var assigned string
		err := tx.QueryRowContext(ctx, `SELECT name FROM assignments WHERE config_name = ? ORDER BY name LIMIT 1`, name).Scan(&assigned)
		if err == nil {
			return steward.Errorf(steward.ECONFLICT, "config %q is used by assignment %q", name, assigned)
		} else if err != sql.ErrNoRows {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM configs WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
		}
		return nil
	})
	return wrap(err, "delete config %q", name)
}

// PutAssignment validates a (EINVALID) and creates or replaces the
// assignment of that name; ENOTFOUND if its config (or pinned version) does
// not exist. The returned copy has CreatedAt (kept from the stored row when
// replacing) and UpdatedAt (now) set.
func (db *DB) PutAssignment(ctx context.Context, a *steward.Assignment) (*steward.Assignment, error) {
	if a == nil {
		return nil, steward.Errorf(steward.EINVALID, "nil assignment")
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	out := *a
	now := db.now().UTC()
	out.UpdatedAt = now
	var agentID sql.NullString
	if a.AgentID != nil {
		id := *a.AgentID
		out.AgentID = &id
		agentID = sql.NullString{String: id.String(), Valid: true}
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		if err := configExists(ctx, tx, a.ConfigName, a.Version); err != nil {
			return err
		}
		var created int64
		err := tx.QueryRowContext(ctx, `INSERT INTO assignments (name, config_name, version, selector, agent_id, priority, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET config_name = excluded.config_name, version = excluded.version,
				selector = excluded.selector, agent_id = excluded.agent_id, priority = excluded.priority,
				updated_at = excluded.updated_at
			RETURNING created_at`,
			a.Name, a.ConfigName, a.Version, a.Selector, agentID, a.Priority, nanos(now), nanos(now)).Scan(&created)
		out.CreatedAt = time.Unix(0, created).UTC()
		return err
	})
	if err != nil {
		return nil, wrap(err, "put assignment %q", a.Name)
	}
	return &out, nil
}

func configExists(ctx context.Context, tx *sql.Tx, name string, version int) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM configs WHERE name = ? AND (? = 0 OR version = ?)`, name, version, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if version == 0 {
		return steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
	}
	return steward.Errorf(steward.ENOTFOUND, "config %q version %d not found", name, version)
}

const assignmentCols = `name, config_name, version, selector, agent_id, priority, created_at, updated_at`

func scanAssignment(r scanner) (*steward.Assignment, error) {
	var (
		a                steward.Assignment
		agentID          sql.NullString
		created, updated int64
	)
	if err := r.Scan(&a.Name, &a.ConfigName, &a.Version, &a.Selector, &agentID, &a.Priority, &created, &updated); err != nil {
		return nil, err
	}
	if agentID.Valid {
		id, err := steward.ParseInstanceUID(agentID.String)
		if err != nil {
			return nil, steward.Errorf(steward.EINTERNAL, "stored assignment %q has a corrupt agent id %q", a.Name, agentID.String)
		}
		a.AgentID = &id
	}
	a.CreatedAt = time.Unix(0, created).UTC()
	a.UpdatedAt = time.Unix(0, updated).UTC()
	return &a, nil
}

// Assignment returns the named assignment; ENOTFOUND if missing.
func (db *DB) Assignment(ctx context.Context, name string) (*steward.Assignment, error) {
	a, err := scanAssignment(db.read.QueryRowContext(ctx, `SELECT `+assignmentCols+` FROM assignments WHERE name = ?`, name))
	if err == sql.ErrNoRows {
		return nil, steward.Errorf(steward.ENOTFOUND, "assignment %q not found", name)
	}
	return a, wrap(err, "assignment %q", name)
}

// Assignments returns every assignment, ordered by name.
func (db *DB) Assignments(ctx context.Context) ([]*steward.Assignment, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+assignmentCols+` FROM assignments ORDER BY name`)
	if err != nil {
		return nil, wrap(err, "list assignments")
	}
	defer rows.Close()
	out := []*steward.Assignment{}
	for rows.Next() {
		a, err := scanAssignment(rows)
		if err != nil {
			return nil, wrap(err, "list assignments")
		}
		out = append(out, a)
	}
	return out, wrap(rows.Err(), "list assignments")
}

// DeleteAssignment removes the named assignment; ENOTFOUND if missing.
func (db *DB) DeleteAssignment(ctx context.Context, name string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM assignments WHERE name = ?`, name)
	if err != nil {
		return wrap(err, "delete assignment %q", name)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "assignment %q not found", name)
	}
	return nil
}
