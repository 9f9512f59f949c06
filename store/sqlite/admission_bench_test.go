package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward"
)

// BenchmarkAdmissionReads is what admission reads of an agent with no
// credentials, the common case of a reconnect: one statement
// (AgentCredentials) against the two reads it replaced.
func BenchmarkAdmissionReads(b *testing.B) {
	db, err := Open(context.Background(), filepath.Join(b.TempDir(), "x.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	id := steward.NewInstanceUID()
	b.Run("AgentCredentials", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := db.AgentCredentials(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Certificates+AgentBinding", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Certificates(ctx, &id); err != nil {
				b.Fatal(err)
			}
			if _, err := db.AgentBinding(ctx, id); steward.ErrorCode(err) != steward.ENOTFOUND {
				b.Fatal(err)
			}
		}
	})
}
