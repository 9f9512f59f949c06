package postgres

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward"
)

var (
	_ steward.PackageStore = (*DB)(nil)
	_ steward.BlobStore    = (*DB)(nil)
)

// PutPackage inserts p; ECONFLICT if that name and version exist.
func (db *DB) PutPackage(ctx context.Context, p *steward.Package) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return steward.Errorf(steward.EINVALID, "postgres: encode package %q: %v", p.Name, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO packages(name, version, hash, doc, created_at) VALUES ($1, $2, $3, $4, $5)`,
		p.Name, p.Version, p.Hash, doc, ts(p.CreatedAt))
	if pgCode(err) == "23505" {
		return steward.Errorf(steward.ECONFLICT, "package %s version %s exists", p.Name, p.Version)
	}
	return wrap(err, "put package %s %s", p.Name, p.Version)
}

// Package returns one version; ENOTFOUND if missing.
func (db *DB) Package(ctx context.Context, name, version string) (*steward.Package, error) {
	var doc []byte
	err := db.pool.QueryRow(ctx, `SELECT doc FROM packages WHERE name = $1 AND version = $2`, name, version).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "package %s version %s not found", name, version)
	} else if err != nil {
		return nil, wrap(err, "get package %s %s", name, version)
	}
	var p steward.Package
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: package %s %s is corrupt: %v", name, version, err)
	}
	return &p, nil
}

// Packages lists every package version by name, newest first within a name.
func (db *DB) Packages(ctx context.Context) ([]*steward.Package, error) {
	rows, err := db.pool.Query(ctx, `SELECT doc FROM packages ORDER BY name COLLATE "C", created_at DESC, version COLLATE "C" DESC`)
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
			return nil, steward.Errorf(steward.EINTERNAL, "postgres: a package row is corrupt: %v", err)
		}
		out = append(out, &p)
	}
	return out, wrap(rows.Err(), "list packages")
}

// DeletePackage removes one version; ENOTFOUND if missing, ECONFLICT while
// an assignment offers it.
func (db *DB) DeletePackage(ctx context.Context, name, version string) error {
	err := db.tx(ctx, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT assignment FROM package_assignment_items WHERE package = $1 AND version = $2 ORDER BY assignment COLLATE "C"`, name, version)
		if err != nil {
			return err
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return steward.Errorf(steward.ECONFLICT, "package %s version %s is offered by package assignment(s) %s", name, version, strings.Join(users, ", "))
		}
		tag, err := tx.Exec(ctx, `DELETE FROM packages WHERE name = $1 AND version = $2`, name, version)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return steward.Errorf(steward.ENOTFOUND, "package %s version %s not found", name, version)
		}
		return nil
	})
	return wrap(err, "delete package %s %s", name, version)
}

// PutPackageAssignment creates or replaces a package assignment by name;
// ENOTFOUND when a listed package version does not exist.
func (db *DB) PutPackageAssignment(ctx context.Context, a *steward.PackageAssignment) (*steward.PackageAssignment, error) {
	var out steward.PackageAssignment
	err := db.tx(ctx, true, func(tx pgx.Tx) error {
		out = *a
		out.Packages = append([]steward.PackageRef(nil), a.Packages...)
		for _, r := range out.Packages {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM packages WHERE name = $1 AND version = $2`, r.Name, r.Version).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return steward.Errorf(steward.ENOTFOUND, "package assignment %q: package %s version %s not found", a.Name, r.Name, r.Version)
			}
		}
		var created time.Time
		err := tx.QueryRow(ctx, `SELECT created_at FROM package_assignments WHERE name = $1 FOR UPDATE`, a.Name).Scan(&created)
		if err == nil {
			out.CreatedAt = created.UTC()
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		out.CreatedAt = out.CreatedAt.Truncate(time.Microsecond).UTC()
		out.UpdatedAt = out.UpdatedAt.Truncate(time.Microsecond).UTC()
		doc, err := json.Marshal(&out)
		if err != nil {
			return steward.Errorf(steward.EINVALID, "postgres: encode package assignment %q: %v", a.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO package_assignments(name, doc, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, a.Name, doc, ts(out.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM package_assignment_items WHERE assignment = $1`, a.Name); err != nil {
			return err
		}
		for _, r := range out.Packages {
			if _, err := tx.Exec(ctx, `INSERT INTO package_assignment_items(assignment, package, version) VALUES ($1, $2, $3)`, a.Name, r.Name, r.Version); err != nil {
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
	err := db.pool.QueryRow(ctx, `SELECT doc FROM package_assignments WHERE name = $1`, name).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.ENOTFOUND, "package assignment %q not found", name)
	} else if err != nil {
		return nil, wrap(err, "get package assignment %q", name)
	}
	var a steward.PackageAssignment
	if err := json.Unmarshal(doc, &a); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: package assignment %q is corrupt: %v", name, err)
	}
	return &a, nil
}

// PackageAssignments lists all package assignments by name.
func (db *DB) PackageAssignments(ctx context.Context) ([]*steward.PackageAssignment, error) {
	rows, err := db.pool.Query(ctx, `SELECT doc FROM package_assignments ORDER BY name COLLATE "C"`)
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
			return nil, steward.Errorf(steward.EINTERNAL, "postgres: a package assignment row is corrupt: %v", err)
		}
		out = append(out, &a)
	}
	return out, wrap(rows.Err(), "list package assignments")
}

// DeletePackageAssignment removes one; ENOTFOUND if missing.
func (db *DB) DeletePackageAssignment(ctx context.Context, name string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM package_assignments WHERE name = $1`, name)
	if err != nil {
		return wrap(err, "delete package assignment %q", name)
	}
	if tag.RowsAffected() == 0 {
		return steward.Errorf(steward.ENOTFOUND, "package assignment %q not found", name)
	}
	return nil
}

// PackageSigningKey returns the stored signing key, storing candidate first
// when there is none; concurrent replicas all get the first one stored.
func (db *DB) PackageSigningKey(ctx context.Context, candidate ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	if len(candidate) == ed25519.PrivateKeySize {
		if _, err := db.pool.Exec(ctx, `INSERT INTO package_signing_key(id, private_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, []byte(candidate)); err != nil {
			return nil, wrap(err, "store package signing key")
		}
	}
	var key []byte
	err := db.pool.QueryRow(ctx, `SELECT private_key FROM package_signing_key WHERE id = 1`).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, steward.Errorf(steward.EINVALID, "postgres: no package signing key stored and no valid candidate given")
	} else if err != nil {
		return nil, wrap(err, "package signing key")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, steward.Errorf(steward.EINTERNAL, "postgres: the stored package signing key is corrupt")
	}
	return ed25519.PrivateKey(key), nil
}

// blobChunk is the size of one package_blob_chunks row.
const blobChunk = 1 << 20

// PutBlob implements steward.BlobStore in the database, so that every
// replica serves every package: the content is first spooled to a temporary
// file while it is hashed and measured, then written in 1 MiB rows in one
// transaction. EINVALID, nothing stored, when it exceeds maxSize or its hash
// differs from want.
func (db *DB) PutBlob(ctx context.Context, r io.Reader, maxSize int64, want []byte) ([]byte, int64, error) {
	f, err := os.CreateTemp("", "steward-blob-*")
	if err != nil {
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "postgres: spool package content: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, 0, steward.Errorf(steward.EINVALID, "reading package content: %v", err)
	}
	if n > maxSize {
		return nil, 0, steward.Errorf(steward.EINVALID, "package content exceeds the limit of %d bytes", maxSize)
	}
	sum := h.Sum(nil)
	if want != nil && string(want) != string(sum) {
		return nil, 0, steward.Errorf(steward.EINVALID, "hash mismatch: content has sha256 %x, expected %x (corrupt or truncated upload)", sum, want)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	err = db.tx(ctx, true, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO package_blobs(hash, size) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, sum, n)
		if err != nil || tag.RowsAffected() == 0 {
			return err // exists already: content addressed, nothing to do
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		buf := make([]byte, blobChunk)
		for seq := 0; ; seq++ {
			k, err := io.ReadFull(f, buf)
			if k > 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO package_blob_chunks(hash, seq, data) VALUES ($1, $2, $3)`, sum, seq, buf[:k]); err != nil {
					return err
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	})
	if err != nil {
		return nil, 0, wrap(err, "store package content")
	}
	return sum, n, nil
}

// OpenBlob returns a reader that fetches chunks on demand; ENOTFOUND if no
// blob has that hash.
func (db *DB) OpenBlob(ctx context.Context, hash []byte) (io.ReadSeekCloser, int64, error) {
	var size int64
	err := db.pool.QueryRow(ctx, `SELECT size FROM package_blobs WHERE hash = $1`, hash).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, steward.Errorf(steward.ENOTFOUND, "no package content with hash %x", hash)
	} else if err != nil {
		return nil, 0, wrap(err, "open package content")
	}
	return &chunkReader{ctx: ctx, db: db, hash: hash, size: size}, size, nil
}

// DeleteBlob removes a blob and its chunks.
func (db *DB) DeleteBlob(ctx context.Context, hash []byte) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM package_blobs WHERE hash = $1`, hash)
	return wrap(err, "delete package content")
}

// chunkReader reads a blob chunk by chunk.
type chunkReader struct {
	ctx   context.Context
	db    *DB
	hash  []byte
	size  int64
	off   int64
	seq   int
	chunk []byte // chunk seq, when loaded
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	seq := int(c.off / blobChunk)
	if c.chunk == nil || c.seq != seq {
		var data []byte
		err := c.db.pool.QueryRow(c.ctx, `SELECT data FROM package_blob_chunks WHERE hash = $1 AND seq = $2`, c.hash, seq).Scan(&data)
		if err != nil {
			return 0, wrap(err, "read package content chunk %d", seq)
		}
		c.chunk, c.seq = data, seq
	}
	start := int(c.off - int64(seq)*blobChunk)
	if start >= len(c.chunk) {
		return 0, fmt.Errorf("postgres: package content %x is shorter than recorded", c.hash)
	}
	n := copy(p, c.chunk[start:])
	c.off += int64(n)
	return n, nil
}

func (c *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	c.off = offset
	return offset, nil
}

func (c *chunkReader) Close() error { return nil }
