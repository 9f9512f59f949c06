package blobfs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/storetest"
)

func TestBlobStore(t *testing.T) {
	d, err := blobfs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storetest.TestBlobStore(t, d)
}

// A refused upload leaves no temporary file behind.
func TestNoLeftovers(t *testing.T) {
	root := t.TempDir()
	d, err := blobfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutBlob(context.Background(), bytes.NewReader(make([]byte, 100)), 10, nil); err == nil {
		t.Fatal("oversized upload accepted")
	}
	if _, _, err := d.PutBlob(context.Background(), bytes.NewReader([]byte("x")), 10, make([]byte, 32)); err == nil {
		t.Fatal("upload with a wrong hash accepted")
	}
	h, _, err := d.PutBlob(context.Background(), bytes.NewReader([]byte("ok")), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(root, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(d.Path(h)) {
		t.Fatalf("directory holds %v, want only the stored blob", entries)
	}
}

// BenchmarkPutBlob measures storing 16 MiB of new content (hash, write,
// fsync, rename); bytes/s is the upload throughput the disk allows.
func BenchmarkPutBlob(b *testing.B) {
	d, err := blobfs.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	content := make([]byte, 16<<20)
	b.SetBytes(int64(len(content)))
	for i := 0; b.Loop(); i++ {
		content[0], content[1], content[2] = byte(i), byte(i>>8), byte(i>>16) // new content each time
		if _, _, err := d.PutBlob(context.Background(), bytes.NewReader(content), 1<<30, nil); err != nil {
			b.Fatal(err)
		}
	}
}
