package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/sqlstore"
)

var _ steward.BlobStore = (*DB)(nil)

// blobChunk is the size of one package_blob_chunks row.
const blobChunk = 1 << 20

// PutBlob implements steward.BlobStore in the database, so that every
// replica serves every package: the content is first spooled to a temporary
// file while it is hashed and measured, then written in 1 MiB rows in one
// transaction. EINVALID, nothing stored, when it exceeds maxSize or its hash
// differs from want.
func (db *DB) PutBlob(ctx context.Context, r io.Reader, maxSize int64, want []byte) ([]byte, int64, error) {
	f, sum, n, err := blobfs.Spool(ctx, "", r, maxSize, want)
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	err = db.Transact(ctx, true, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO package_blobs(hash, size) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING`, sum, n)
		if err != nil {
			return err
		}
		if added, _ := res.RowsAffected(); added == 0 {
			return nil // exists already: content addressed, nothing to do
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		buf := make([]byte, blobChunk)
		for seq := 0; ; seq++ {
			k, err := io.ReadFull(f, buf)
			if k > 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO package_blob_chunks(hash, seq, data) VALUES (?, ?, ?)`, sum, seq, buf[:k]); err != nil {
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
		return nil, 0, db.Wrap(err, "store package content")
	}
	return sum, n, nil
}

// OpenBlob returns a reader that fetches chunks on demand; ENOTFOUND if no
// blob has that hash.
func (db *DB) OpenBlob(ctx context.Context, hash []byte) (io.ReadSeekCloser, int64, error) {
	var size int64
	err := db.SQL().QueryRowContext(ctx, `SELECT size FROM package_blobs WHERE hash = $1`, hash).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, steward.Errorf(steward.ENOTFOUND, "no package content with hash %x", hash)
	} else if err != nil {
		return nil, 0, db.Wrap(err, "open package content")
	}
	c := &chunks{ctx: ctx, db: db, hash: hash, size: size}
	return struct {
		*io.SectionReader
		io.Closer
	}{io.NewSectionReader(c, 0, size), io.NopCloser(nil)}, size, nil
}

// DeleteBlob removes a blob and its chunks.
func (db *DB) DeleteBlob(ctx context.Context, hash []byte) error {
	_, err := db.SQL().ExecContext(ctx, `DELETE FROM package_blobs WHERE hash = $1`, hash)
	return db.Wrap(err, "delete package content")
}

// chunks reads a blob at any offset, fetching one chunk at a time and
// keeping the last one; io.SectionReader makes it a ReadSeeker. It is not
// safe for concurrent ReadAt calls.
type chunks struct {
	ctx   context.Context
	db    *DB
	hash  []byte
	size  int64
	seq   int
	chunk []byte // chunk seq, when loaded
}

func (c *chunks) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) && off < c.size {
		seq := int(off / blobChunk)
		if c.chunk == nil || c.seq != seq {
			var data []byte
			err := c.db.SQL().QueryRowContext(c.ctx, `SELECT data FROM package_blob_chunks WHERE hash = $1 AND seq = $2`, c.hash, seq).Scan(&data)
			if err != nil {
				return n, c.db.Wrap(err, "read package content chunk %d", seq)
			}
			c.chunk, c.seq = data, seq
		}
		start := int(off - int64(seq)*blobChunk)
		if start >= len(c.chunk) {
			return n, fmt.Errorf("postgres: package content %x is shorter than recorded", c.hash)
		}
		k := copy(p[n:], c.chunk[start:])
		n, off = n+k, off+int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
