package sqlstore

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/stewardhq/steward"
)

// PutPackage inserts p; ECONFLICT if that name and version exist.
func (db *DB) PutPackage(ctx context.Context, p *steward.Package) error {
	doc, err := encodeDoc(db, fmt.Sprintf("package %q", p.Name), p)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, `INSERT INTO packages(name, version, hash, doc, created_at) VALUES (?, ?, ?, ?, ?)`,
		p.Name, p.Version, p.Hash, doc, db.time(p.CreatedAt))
	if db.d.Unique(err) {
		return steward.Errorf(steward.ECONFLICT, "package %s version %s exists", p.Name, p.Version)
	}
	return db.wrap(err, "put package %s %s", p.Name, p.Version)
}

// Package returns one version; ENOTFOUND if missing.
func (db *DB) Package(ctx context.Context, name, version string) (*steward.Package, error) {
	return getDoc[steward.Package](ctx, db, fmt.Sprintf("package %s version %s", name, version),
		`SELECT doc FROM packages WHERE name = ? AND version = ?`, name, version)
}

// Packages lists every package version by name, newest first within a name.
func (db *DB) Packages(ctx context.Context) ([]*steward.Package, error) {
	return listDocs[steward.Package](ctx, db, "package",
		`SELECT doc FROM packages ORDER BY name{bytewise}, created_at DESC, version{bytewise} DESC`)
}

// DeletePackage removes one version; ENOTFOUND if missing, ECONFLICT while
// an assignment offers it.
func (db *DB) DeletePackage(ctx context.Context, name, version string) error {
	err := db.tx(ctx, false, func(tx *Tx) error {
		users, err := tx.Strings(ctx, `SELECT assignment FROM package_assignment_items
			WHERE package = ? AND version = ? ORDER BY assignment{bytewise}`, name, version)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return steward.Errorf(steward.ECONFLICT, "package %s version %s is offered by package assignment(s) %s", name, version, strings.Join(users, ", "))
		}
		res, err := tx.Exec(ctx, `DELETE FROM packages WHERE name = ? AND version = ?`, name, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return steward.Errorf(steward.ENOTFOUND, "package %s version %s not found", name, version)
		}
		return nil
	})
	return db.wrap(err, "delete package %s %s", name, version)
}

// PutPackageAssignment creates or replaces a package assignment by name;
// ENOTFOUND when a listed package version does not exist. A replaced
// assignment keeps its CreatedAt.
func (db *DB) PutPackageAssignment(ctx context.Context, a *steward.PackageAssignment) (*steward.PackageAssignment, error) {
	var out steward.PackageAssignment
	err := db.tx(ctx, true, func(tx *Tx) error {
		out = *a
		out.Packages = append([]steward.PackageRef(nil), a.Packages...)
		for _, r := range out.Packages {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM packages WHERE name = ? AND version = ?`, r.Name, r.Version).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return steward.Errorf(steward.ENOTFOUND, "package assignment %q: package %s version %s not found", a.Name, r.Name, r.Version)
			}
		}
		var created timeCol
		err := tx.QueryRow(ctx, `SELECT created_at FROM package_assignments WHERE name = ?{for_update}`, a.Name).Scan(&created)
		if err == nil {
			out.CreatedAt = created.Time
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		out.CreatedAt = db.trunc(out.CreatedAt)
		out.UpdatedAt = db.trunc(out.UpdatedAt)
		doc, err := encodeDoc(db, fmt.Sprintf("package assignment %q", a.Name), &out)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO package_assignments(name, doc, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, a.Name, doc, db.time(out.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM package_assignment_items WHERE assignment = ?`, a.Name); err != nil {
			return err
		}
		for _, r := range out.Packages {
			if _, err := tx.Exec(ctx, `INSERT INTO package_assignment_items(assignment, package, version) VALUES (?, ?, ?)`, a.Name, r.Name, r.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, db.wrap(err, "put package assignment %q", a.Name)
	}
	return &out, nil
}

// PackageAssignment returns one; ENOTFOUND if missing.
func (db *DB) PackageAssignment(ctx context.Context, name string) (*steward.PackageAssignment, error) {
	return getDoc[steward.PackageAssignment](ctx, db, fmt.Sprintf("package assignment %q", name),
		`SELECT doc FROM package_assignments WHERE name = ?`, name)
}

// PackageAssignments lists all package assignments by name.
func (db *DB) PackageAssignments(ctx context.Context) ([]*steward.PackageAssignment, error) {
	return listDocs[steward.PackageAssignment](ctx, db, "package assignment",
		`SELECT doc FROM package_assignments ORDER BY name{bytewise}`)
}

// DeletePackageAssignment removes one; ENOTFOUND if missing.
func (db *DB) DeletePackageAssignment(ctx context.Context, name string) error {
	return db.deleteRow(ctx, `DELETE FROM package_assignments WHERE name = ?`, name, "package assignment")
}

// PackageSigningKey returns the stored signing key, storing candidate first
// when there is none; concurrent callers all get the first one stored.
// EINVALID when none is stored and candidate is not a valid key, EINTERNAL
// when the stored one is corrupt.
func (db *DB) PackageSigningKey(ctx context.Context, candidate ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	if len(candidate) == ed25519.PrivateKeySize {
		if _, err := db.exec(ctx, `INSERT INTO package_signing_key(id, private_key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, []byte(candidate)); err != nil {
			return nil, db.wrap(err, "store package signing key")
		}
	}
	var key []byte
	err := db.queryRow(ctx, `SELECT private_key FROM package_signing_key WHERE id = 1`).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, steward.Errorf(steward.EINVALID, "%s: no package signing key stored and no valid candidate given", db.d.Name)
	} else if err != nil {
		return nil, db.wrap(err, "package signing key")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, steward.Errorf(steward.EINTERNAL, "%s: the stored package signing key is corrupt", db.d.Name)
	}
	return ed25519.PrivateKey(key), nil
}
