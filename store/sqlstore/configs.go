package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutConfig validates c (EINVALID) and stores its files as the next version
// of c.Name, unless they hash the same as the latest version, which is then
// returned unchanged. The returned copy has Version, Hash and CreatedAt set
// (CreatedAt is now unless c sets it; at the precision stored). Concurrent
// calls, from any process, get distinct consecutive versions: a writer that
// loses the race for a version number retries with the next one.
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
	out.CreatedAt = db.trunc(out.CreatedAt)
	var existing *steward.Config
	var seen [][]byte
	now := db.nowT()
	err := db.tx(ctx, true, func(tx *Tx) error {
		existing = nil
		var latest struct {
			version int
			hash    []byte
		}
		err := tx.QueryRow(ctx, `SELECT version, hash FROM configs WHERE name = ? ORDER BY version DESC LIMIT 1`, c.Name).
			Scan(&latest.version, &latest.hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out.Version = 1
		case err != nil:
			return err
		case bytes.Equal(latest.hash, out.Hash):
			existing, err = scanConfig(tx.QueryRow(ctx, `SELECT `+configCols+configFrom+` WHERE c.name = ? AND c.version = ?`,
				c.Name, latest.version))
			return err
		default:
			out.Version = latest.version + 1
		}
		if seen, err = db.storeBodies(ctx, tx, map[string]body{string(out.Hash): {files: out.Files}}, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO configs (name, version, hash, comment, author, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, out.Name, out.Version, out.Hash, out.Comment, out.Author, db.time(out.CreatedAt))
		return err
	})
	if err != nil {
		return nil, db.wrap(err, "put config %q", c.Name)
	}
	db.bodies.sawStored(seen, now)
	if existing != nil {
		return existing, nil
	}
	return &out, nil
}

// configCols and configFrom select what scanConfig reads: a version and
// its body.
const (
	configCols = `c.name, c.version, c.hash, b.files, c.comment, c.author, c.created_at`
	configFrom = ` FROM configs c JOIN config_bodies b ON b.hash = c.hash`
)

func scanConfig(r scanner) (*steward.Config, error) {
	var (
		c       steward.Config
		files   []byte
		created timeCol
	)
	if err := r.Scan(&c.Name, &c.Version, &c.Hash, &files, &c.Comment, &c.Author, &created); err != nil {
		return nil, err
	}
	m, err := record.DecodeFiles(c.Name, c.Version, files)
	if err != nil {
		return nil, err
	}
	c.Files = m
	c.CreatedAt = created.Time
	return &c, nil
}

// Config returns version of name (0: the latest); ENOTFOUND if missing.
func (db *DB) Config(ctx context.Context, name string, version int) (*steward.Config, error) {
	if version == 0 {
		c, err := scanConfig(db.queryRow(ctx, `SELECT `+configCols+configFrom+` WHERE c.name = ? ORDER BY c.version DESC LIMIT 1`, name))
		return c, db.notFound(err, "config %q", name)
	}
	c, err := scanConfig(db.queryRow(ctx, `SELECT `+configCols+configFrom+` WHERE c.name = ? AND c.version = ?`, name, version))
	return c, db.notFound(err, "config %q version %d", name, version)
}

func (db *DB) listConfigs(ctx context.Context, q string, args ...any) ([]*steward.Config, error) {
	out := []*steward.Config{}
	err := db.each(ctx, q, args, func(rows *sql.Rows) error {
		c, err := scanConfig(rows)
		out = append(out, c)
		return err
	})
	return out, err
}

// Configs returns the latest version of every config, ordered by name.
func (db *DB) Configs(ctx context.Context) ([]*steward.Config, error) {
	out, err := db.listConfigs(ctx, `SELECT `+configCols+configFrom+`
		WHERE c.version = (SELECT max(version) FROM configs WHERE name = c.name) ORDER BY c.name`)
	if err != nil {
		return nil, db.wrap(err, "list configs")
	}
	return out, nil
}

// ConfigHistory returns every version of name, newest first; ENOTFOUND if
// there is none.
func (db *DB) ConfigHistory(ctx context.Context, name string) ([]*steward.Config, error) {
	out, err := db.listConfigs(ctx, `SELECT `+configCols+configFrom+` WHERE c.name = ? ORDER BY c.version DESC`, name)
	if err != nil {
		return nil, db.wrap(err, "config history %q", name)
	}
	if len(out) == 0 {
		return nil, steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
	}
	return out, nil
}

// DeleteConfig removes every version of name; ENOTFOUND if there is none,
// ECONFLICT (nothing deleted) while an assignment names it. The versions are
// deleted (and so locked) before assignments are checked, and PutAssignment
// locks the config it names, so neither can slip past the other.
func (db *DB) DeleteConfig(ctx context.Context, name string) error {
	err := db.tx(ctx, false, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM configs WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
		}
		var assigned string
		err = tx.QueryRow(ctx, `SELECT name FROM assignments WHERE config_name = ? ORDER BY name LIMIT 1`, name).Scan(&assigned)
		if err == nil {
			return steward.Errorf(steward.ECONFLICT, "config %q is used by assignment %q", name, assigned)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return nil
	})
	return db.wrap(err, "delete config %q", name)
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
	now := db.nowT()
	out.UpdatedAt = now
	var agentID sql.NullString
	if a.AgentID != nil {
		id := *a.AgentID
		out.AgentID = &id
		agentID = sql.NullString{String: id.String(), Valid: true}
	}
	err := db.tx(ctx, false, func(tx *Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM configs WHERE name = ? AND (? = 0 OR version = ?) LIMIT 1{for_share}`,
			a.ConfigName, a.Version, a.Version).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			if a.Version == 0 {
				return steward.Errorf(steward.ENOTFOUND, "config %q not found", a.ConfigName)
			}
			return steward.Errorf(steward.ENOTFOUND, "config %q version %d not found", a.ConfigName, a.Version)
		} else if err != nil {
			return err
		}
		var created timeCol
		err = tx.QueryRow(ctx, `INSERT INTO assignments (name, config_name, version, selector, agent_id, priority, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET config_name = excluded.config_name, version = excluded.version,
				selector = excluded.selector, agent_id = excluded.agent_id, priority = excluded.priority,
				updated_at = excluded.updated_at
			RETURNING created_at`,
			a.Name, a.ConfigName, a.Version, a.Selector, agentID, a.Priority, db.time(now), db.time(now)).Scan(&created)
		out.CreatedAt = created.Time
		return err
	})
	if err != nil {
		return nil, db.wrap(err, "put assignment %q", a.Name)
	}
	return &out, nil
}

const assignmentCols = `name, config_name, version, selector, agent_id, priority, created_at, updated_at`

func scanAssignment(r scanner) (*steward.Assignment, error) {
	var (
		a                steward.Assignment
		agentID          sql.NullString
		created, updated timeCol
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
	a.CreatedAt = created.Time
	a.UpdatedAt = updated.Time
	return &a, nil
}

// Assignment returns the named assignment; ENOTFOUND if missing.
func (db *DB) Assignment(ctx context.Context, name string) (*steward.Assignment, error) {
	a, err := scanAssignment(db.queryRow(ctx, `SELECT `+assignmentCols+` FROM assignments WHERE name = ?`, name))
	return a, db.notFound(err, "assignment %q", name)
}

// Assignments returns every assignment, ordered by name.
func (db *DB) Assignments(ctx context.Context) ([]*steward.Assignment, error) {
	out := []*steward.Assignment{}
	err := db.each(ctx, `SELECT `+assignmentCols+` FROM assignments ORDER BY name`, nil, func(rows *sql.Rows) error {
		a, err := scanAssignment(rows)
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, db.wrap(err, "list assignments")
	}
	return out, nil
}

// DeleteAssignment removes the named assignment; ENOTFOUND if missing.
func (db *DB) DeleteAssignment(ctx context.Context, name string) error {
	return db.deleteRow(ctx, `DELETE FROM assignments WHERE name = ?`, name, "assignment")
}
