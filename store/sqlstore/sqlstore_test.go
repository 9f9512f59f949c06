package sqlstore

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestExpandNumbersPlaceholdersOutsideQuotes(t *testing.T) {
	d := &Dialect{Numbered: true, Macros: map[string]string{"for_update": " FOR UPDATE"}}
	got := Expand(d, `SELECT '?', "a?" FROM t WHERE a = ? AND b = ?{for_update}`)
	want := `SELECT '?', "a?" FROM t WHERE a = $1 AND b = $2 FOR UPDATE`
	if got != want {
		t.Fatalf("Expand = %q, want %q", got, want)
	}
	if got := Expand(&Dialect{}, `SELECT ? {nope}`); got != `SELECT ? {nope}` {
		t.Fatalf("unnumbered dialect changed %q", got)
	}
}

// Every dialect gets the same numbered sequence, with every macro expanded.
func TestMigrationsOneSequence(t *testing.T) {
	a := Migrations(&Dialect{Name: "sqlite", Macros: map[string]string{}})
	b := Migrations(&Dialect{Name: "postgres", Macros: map[string]string{}})
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d sqlite and %d postgres migrations", len(a), len(b))
	}
	if !strings.Contains(b[3], "package_blob_chunks") || strings.Contains(a[3], "package_blob_chunks") {
		t.Fatal("migration 4 does not add the postgres-only file to postgres alone")
	}
	if !strings.Contains(a[5], "json_extract") || !strings.Contains(b[5], "->>") {
		t.Fatal("migration 6 lacks its dialect-specific part")
	}
}

// Two branches that each added "the next" migration must not both land as
// one version: a database that applied one would never get the other.
func TestMigrationsRefuseTwoChangesOfOneVersion(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	d := &Dialect{Name: "sqlite"}
	ok := fstest.MapFS{"0001_a.sql": file("A;"), "0001_a.sqlite.sql": file("B;"), "0002_b.sql": file("C;")}
	if got, _ := migrationsIn(ok, d); len(got) != 2 || got[0] != "A;B;" {
		t.Fatalf("migrations %q", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "renumber") {
			t.Fatalf("no refusal: %v", r)
		}
	}()
	migrationsIn(fstest.MapFS{"0001_a.sql": file("A;"), "0001_b.sql": file("B;")}, d)
}
