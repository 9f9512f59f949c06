package sqlite

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/stewardhq/steward"
)

var _ steward.PackageStore = (*DB)(nil)

// PutPackage inserts p; ECONFLICT if that name and version exist.
func (db *DB) PutPackage(ctx context.Context, p *steward.Package) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return steward.Errorf(steward.EINVALID, "sqlite: encode package %q: %v", p.Name, err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM packages WHERE name = ? AND version = ?`, p.Name, p.Version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return steward.Errorf(steward.ECONFLICT, "package %s version %s exists", p.Name, p.Version)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO packages(name, version, hash, doc, created_at) VALUES (?, ?, ?, ?, ?)`,
			p.Name, p.Version, p.Hash, doc, nanos(p.CreatedAt))
		return err
	})
	return wrap(err, "put package %s %s", p.Name, p.Version)
}

// Package returns one version; ENOTFOUND if missing.
func (db *DB) Package(ctx context.Context, name, version string) (*steward.Package, error) {
	var doc []byte
	err := db.read.QueryRowContext(ctx, `SELECT doc FROM packages WHERE name = ? AND version = ?`, name, version).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "package %s version %s not found", name, version)
	} else if err != nil {
		return nil, wrap(err, "get package %s %s", name, version)
	}
	var p steward.Package
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "sqlite: package %s %s is corrupt: %v", name, version, err)
	}
	return &p, nil
}

// Packages lists every package version by name, newest first within a name.
func (db *DB) Packages(ctx context.Context) ([]*steward.Package, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT doc FROM packages ORDER BY name, created_at DESC, version DESC`)
	if err != nil {
		return nil, wrap(err, "list packages")
	}
	defer rows.Close()
	var out []*steward.Package
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, wrap(err, "list packages")
		}
		var p steward.Package
		if err := json.Unmarshal(doc, &p); err != nil {
			return nil, steward.Errorf(steward.EINTERNAL, "sqlite: a package row is corrupt: %v", err)
		}
		out = append(out, &p)
	}
	return out, wrap(rows.Err(), "list packages")
}

// DeletePackage removes one version; ENOTFOUND if missing, ECONFLICT while
// an assignment offers it.
func (db *DB) DeletePackage(ctx context.Context, name, version string) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var users []string
		rows, err := tx.QueryContext(ctx, `SELECT assignment FROM package_assignment_items WHERE package = ? AND version = ? ORDER BY assignment`, name, version)
		if err != nil {
			return err
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return err
			}
			users = append(users, a)
		}
		rows.Close()
		if len(users) > 0 {
			return steward.Errorf(steward.ECONFLICT, "package %s version %s is offered by package assignment(s) %s", name, version, strings.Join(users, ", "))
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM packages WHERE name = ? AND version = ?`, name, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "package %s version %s not found", name, version)
		}
		return nil
	})
	return wrap(err, "delete package %s %s", name, version)
}

// PutPackageAssignment creates or replaces a package assignment by name;
// ENOTFOUND when a listed package version does not exist.
func (db *DB) PutPackageAssignment(ctx context.Context, a *steward.PackageAssignment) (*steward.PackageAssignment, error) {
	out := *a
	out.Packages = append([]steward.PackageRef(nil), a.Packages...)
	err := db.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range out.Packages {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM packages WHERE name = ? AND version = ?`, r.Name, r.Version).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return steward.Errorf(steward.ENOTFOUND, "package assignment %q: package %s version %s not found", a.Name, r.Name, r.Version)
			}
		}
		var created sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT created_at FROM package_assignments WHERE name = ?`, a.Name).Scan(&created)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if created.Valid {
			out.CreatedAt = fromNanos(created)
		}
		doc, err := json.Marshal(&out)
		if err != nil {
			return steward.Errorf(steward.EINVALID, "sqlite: encode package assignment %q: %v", a.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO package_assignments(name, doc, created_at) VALUES (?, ?, ?)
			ON CONFLICT(name) DO UPDATE SET doc = excluded.doc`, a.Name, doc, nanos(out.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM package_assignment_items WHERE assignment = ?`, a.Name); err != nil {
			return err
		}
		for _, r := range out.Packages {
			if _, err := tx.ExecContext(ctx, `INSERT INTO package_assignment_items(assignment, package, version) VALUES (?, ?, ?)`, a.Name, r.Name, r.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "put package assignment %q", a.Name)
	}
	return &out, nil
}

// PackageAssignment returns one; ENOTFOUND if missing.
func (db *DB) PackageAssignment(ctx context.Context, name string) (*steward.PackageAssignment, error) {
	var doc []byte
	err := db.read.QueryRowContext(ctx, `SELECT doc FROM package_assignments WHERE name = ?`, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "package assignment %q not found", name)
	} else if err != nil {
		return nil, wrap(err, "get package assignment %q", name)
	}
	var a steward.PackageAssignment
	if err := json.Unmarshal(doc, &a); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "sqlite: package assignment %q is corrupt: %v", name, err)
	}
	return &a, nil
}

// PackageAssignments lists all package assignments by name.
func (db *DB) PackageAssignments(ctx context.Context) ([]*steward.PackageAssignment, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT doc FROM package_assignments ORDER BY name`)
	if err != nil {
		return nil, wrap(err, "list package assignments")
	}
	defer rows.Close()
	var out []*steward.PackageAssignment
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, wrap(err, "list package assignments")
		}
		var a steward.PackageAssignment
		if err := json.Unmarshal(doc, &a); err != nil {
			return nil, steward.Errorf(steward.EINTERNAL, "sqlite: a package assignment row is corrupt: %v", err)
		}
		out = append(out, &a)
	}
	return out, wrap(rows.Err(), "list package assignments")
}

// DeletePackageAssignment removes one; ENOTFOUND if missing.
func (db *DB) DeletePackageAssignment(ctx context.Context, name string) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM package_assignments WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "package assignment %q not found", name)
		}
		return nil
	})
	return wrap(err, "delete package assignment %q", name)
}

// PackageSigningKey returns the stored signing key, storing candidate first
// when there is none.
func (db *DB) PackageSigningKey(ctx context.Context, candidate ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	var key []byte
	err := db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT private_key FROM package_signing_key WHERE id = 1`).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			if len(candidate) != ed25519.PrivateKeySize {
				return steward.Errorf(steward.EINVALID, "sqlite: package signing key must be %d bytes", ed25519.PrivateKeySize)
			}
			key = candidate
			_, err = tx.ExecContext(ctx, `INSERT INTO package_signing_key(id, private_key) VALUES (1, ?)`, []byte(candidate))
		}
		return err
	})
	if err != nil {
		return nil, wrap(err, "package signing key")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, steward.Errorf(steward.EINTERNAL, "sqlite: the stored package signing key is corrupt")
	}
	return ed25519.PrivateKey(key), nil
}
