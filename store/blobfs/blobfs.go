// Package blobfs implements steward.BlobStore on a directory: each blob is
// the file sha256/<hex> under the root, written to a temporary file in the
// same directory, synced and renamed into place, so a reader sees a whole
// blob or none. It suits single-server (SQLite) deployments; replicas that
// share a PostgreSQL database keep blobs in the database instead (see
// store/postgres), as they do not share a file system.
package blobfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stewardhq/steward"
)

// Dir is a steward.BlobStore on a directory. It is safe for concurrent use
// (also by several processes on one directory).
type Dir struct {
	root string
}

var _ steward.BlobStore = (*Dir)(nil)

// Open creates root/sha256 if needed (mode 0700) and returns the store.
// EUNAVAILABLE when it cannot be created.
func Open(root string) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(root, "sha256"), 0o700); err != nil {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	return &Dir{root: root}, nil
}

// Path returns the file that holds (or would hold) the blob with hash.
func (d *Dir) Path(hash []byte) string {
	return filepath.Join(d.root, "sha256", hex.EncodeToString(hash))
}

// PutBlob streams r to a temporary file while hashing it, then renames it to
// its content address. EINVALID, with nothing kept, when r holds more than
// maxSize bytes or the hash differs from want; EUNAVAILABLE on disk errors.
func (d *Dir) PutBlob(ctx context.Context, r io.Reader, maxSize int64, want []byte) ([]byte, int64, error) {
	dir := filepath.Join(d.root, "sha256")
	f, sum, n, err := Spool(ctx, dir, r, maxSize, want)
	if err != nil {
		return nil, 0, err
	}
	tmp := f.Name()
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Sync(); err != nil {
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	if err := f.Close(); err != nil {
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	if err := os.Rename(tmp, d.Path(sum)); err != nil {
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	keep = true
	if df, err := os.Open(dir); err == nil { // make the rename durable
		_ = df.Sync()
		df.Close()
	}
	return sum, n, nil
}

// OpenBlob opens the blob's file; ENOTFOUND if it does not exist.
func (d *Dir) OpenBlob(ctx context.Context, hash []byte) (io.ReadSeekCloser, int64, error) {
	if len(hash) != sha256.Size {
		return nil, 0, steward.Errorf(steward.ENOTFOUND, "no package content with hash %x", hash)
	}
	f, err := os.Open(d.Path(hash))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, steward.Errorf(steward.ENOTFOUND, "no package content with hash %x", hash)
	} else if err != nil {
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	return f, st.Size(), nil
}

// DeleteBlob removes the blob's file; a missing one is not an error.
func (d *Dir) DeleteBlob(ctx context.Context, hash []byte) error {
	if len(hash) != sha256.Size {
		return nil
	}
	if err := os.Remove(d.Path(hash)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return steward.Errorf(steward.EUNAVAILABLE, "blobfs: %v", err)
	}
	return nil
}

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("upload cancelled: %w", err)
	}
	return c.r.Read(p)
}

// Spool copies r, up to maxSize bytes, into a new temporary file in dir (the
// system's temporary directory when "") while hashing it, and returns the
// file (open, positioned at its end; the caller closes and removes it), the
// SHA-256 and the size. EINVALID, with the file removed, when r holds more
// than maxSize bytes, fails, or hashes differently from want (when not nil);
// EUNAVAILABLE when the file cannot be written.
func Spool(ctx context.Context, dir string, r io.Reader, maxSize int64, want []byte) (*os.File, []byte, int64, error) {
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return nil, nil, 0, steward.Errorf(steward.EUNAVAILABLE, "spool package content: %v", err)
	}
	fail := func(code, format string, args ...any) (*os.File, []byte, int64, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, 0, steward.Errorf(code, format, args...)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, maxSize+1)})
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fail(steward.EUNAVAILABLE, "spool package content: %v", err)
		}
		return fail(steward.EINVALID, "reading package content: %v", err)
	}
	if n > maxSize {
		return fail(steward.EINVALID, "package content exceeds the limit of %d bytes", maxSize)
	}
	sum := h.Sum(nil)
	if want != nil && string(want) != string(sum) {
		return fail(steward.EINVALID, "hash mismatch: content has sha256 %x, expected %x (corrupt or truncated upload)", sum, want)
	}
	return f, sum, n, nil
}
