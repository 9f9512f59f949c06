package postgres

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// PutConfig validates c (EINVALID) and stores its files as the next version
// of c.Name, unless they hash the same as the latest version, which is then
// returned unchanged. The returned copy has Version, Hash and CreatedAt set
// (CreatedAt is now unless c sets it; microsecond precision). Concurrent
// calls, from any replica, get distinct consecutive versions: a writer that
// loses the race for a version number retries with the next one.
func (db *DB) PutConfig(ctx context.Context, c *steward.Config) (*steward.Config, error) {
	if c == nil {
		return nil, steward.Errorf(steward.EINVALID, "nil config")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	files, err := record.EncodeFiles(c.Name, c.Files)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Hash = c.Files.Hash()
	if out.CreatedAt.IsZero() {
		out.CreatedAt = db.now()
	}
	out.CreatedAt = out.CreatedAt.Truncate(time.Microsecond).UTC()
	var existing *steward.Config
	err = db.tx(ctx, true, func(tx pgx.Tx) error {
		existing = nil
		latest, err := scanConfig(tx.QueryRow(ctx, `SELECT `+configCols+` FROM configs
			WHERE name = $1 ORDER BY version DESC LIMIT 1`, c.Name))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			out.Version = 1
		case err != nil:
			return err
		case bytes.Equal(latest.Hash, out.Hash):
			existing = latest
			return nil
		default:
			out.Version = latest.Version + 1
		}
		_, err = tx.Exec(ctx, `INSERT INTO configs (name, version, hash, files, comment, author, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, out.Name, out.Version, out.Hash, files, out.Comment, out.Author, out.CreatedAt)
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

func scanConfig(r pgx.Row) (*steward.Config, error) {
	var (
		c     steward.Config
		files []byte
	)
	if err := r.Scan(&c.Name, &c.Version, &c.Hash, &files, &c.Comment, &c.Author, &c.CreatedAt); err != nil {
		return nil, err
	}
	m, err := record.DecodeFiles(c.Name, c.Version, files)
	if err != nil {
		return nil, err
	}
	c.Files = m
	c.CreatedAt = c.CreatedAt.UTC()
	return &c, nil
}

// Config returns version of name (0: the latest); ENOTFOUND if missing.
func (db *DB) Config(ctx context.Context, name string, version int) (*steward.Config, error) {
	var r pgx.Row
	if version == 0 {
		r = db.pool.QueryRow(ctx, `SELECT `+configCols+` FROM configs WHERE name = $1 ORDER BY version DESC LIMIT 1`, name)
	} else {
		r = db.pool.QueryRow(ctx, `SELECT `+configCols+` FROM configs WHERE name = $1 AND version = $2`, name, version)
	}
	c, err := scanConfig(r)
	if errors.Is(err, pgx.ErrNoRows) {
		if version == 0 {
			return nil, steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
		}
		return nil, steward.Errorf(steward.ENOTFOUND, "config %q version %d not found", name, version)
	}
	return c, wrap(err, "config %q", name)
}

func (db *DB) listConfigs(ctx context.Context, q string, args ...any) ([]*steward.Config, error) {
	rows, err := db.pool.Query(ctx, q, args...)
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
	out, err := db.listConfigs(ctx, `SELECT DISTINCT ON (name) `+configCols+` FROM configs ORDER BY name, version DESC`)
	return out, wrap(err, "list configs")
}

// ConfigHistory returns every version of name, newest first; ENOTFOUND if
// there is none.
func (db *DB) ConfigHistory(ctx context.Context, name string) ([]*steward.Config, error) {
	out, err := db.listConfigs(ctx, `SELECT `+configCols+` FROM configs WHERE name = $1 ORDER BY version DESC`, name)
	if err != nil {
		return nil, wrap(err, "config history %q", name)
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
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM configs WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
		}
		var assigned string
		err = tx.QueryRow(ctx, `SELECT name FROM assignments WHERE config_name = $1 ORDER BY name LIMIT 1`, name).Scan(&assigned)
		if err == nil {
			return steward.Errorf(steward.ECONFLICT, "config %q is used by assignment %q", name, assigned)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
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
	now := db.nowUS()
	out.UpdatedAt = now
	var agentID *string
	if a.AgentID != nil {
		id := *a.AgentID
		out.AgentID = &id
		s := id.String()
		agentID = &s
	}
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM configs WHERE name = $1 AND ($2 = 0 OR version = $2) LIMIT 1 FOR SHARE`,
			a.ConfigName, a.Version).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			if a.Version == 0 {
				return steward.Errorf(steward.ENOTFOUND, "config %q not found", a.ConfigName)
			}
			return steward.Errorf(steward.ENOTFOUND, "config %q version %d not found", a.ConfigName, a.Version)
		} else if err != nil {
			return err
		}
		var created time.Time
		err = tx.QueryRow(ctx, `INSERT INTO assignments (name, config_name, version, selector, agent_id, priority, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
			ON CONFLICT (name) DO UPDATE SET config_name = excluded.config_name, version = excluded.version,
				selector = excluded.selector, agent_id = excluded.agent_id, priority = excluded.priority,
				updated_at = excluded.updated_at
			RETURNING created_at`,
			a.Name, a.ConfigName, a.Version, a.Selector, agentID, a.Priority, now).Scan(&created)
		out.CreatedAt = created.UTC()
		return err
	})
	if err != nil {
		return nil, wrap(err, "put assignment %q", a.Name)
	}
	return &out, nil
}

const assignmentCols = `name, config_name, version, selector, agent_id, priority, created_at, updated_at`

func scanAssignment(r pgx.Row) (*steward.Assignment, error) {
	var (
		a       steward.Assignment
		agentID *string
	)
	if err := r.Scan(&a.Name, &a.ConfigName, &a.Version, &a.Selector, &agentID, &a.Priority, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return nil, err
	}
	if agentID != nil {
		id, err := steward.ParseInstanceUID(*agentID)
		if err != nil {
			return nil, steward.Errorf(steward.EINTERNAL, "stored assignment %q has a corrupt agent id %q", a.Name, *agentID)
		}
		a.AgentID = &id
	}
	a.CreatedAt = a.CreatedAt.UTC()
	a.UpdatedAt = a.UpdatedAt.UTC()
	return &a, nil
}

// Assignment returns the named assignment; ENOTFOUND if missing.
func (db *DB) Assignment(ctx context.Context, name string) (*steward.Assignment, error) {
	a, err := scanAssignment(db.pool.QueryRow(ctx, `SELECT `+assignmentCols+` FROM assignments WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "assignment %q not found", name)
	}
	return a, wrap(err, "assignment %q", name)
}

// Assignments returns every assignment, ordered by name.
func (db *DB) Assignments(ctx context.Context) ([]*steward.Assignment, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+assignmentCols+` FROM assignments ORDER BY name`)
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
	tag, err := db.pool.Exec(ctx, `DELETE FROM assignments WHERE name = $1`, name)
	if err != nil {
		return wrap(err, "delete assignment %q", name)
	}
	if tag.RowsAffected() == 0 {
		return steward.Errorf(steward.ENOTFOUND, "assignment %q not found", name)
	}
	return nil
}
