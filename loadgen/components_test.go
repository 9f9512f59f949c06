package loadgen

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestSplitComponents(t *testing.T) {
	if got := splitComponents(225); !slices.Equal(got, []int{95, 30, 50, 40, 10}) {
		t.Fatalf("225 components split %v, want contrib's 95:30:50:40:10", got)
	}
	for n := 1; n <= 500; n++ {
		sum := 0
		for _, c := range splitComponents(n) {
			sum += c
		}
		if sum != n {
			t.Fatalf("%d components split %v", n, splitComponents(n))
		}
	}
}

func TestComponentsAreStableAndContribLike(t *testing.T) {
	if newComponents(0) != nil {
		t.Fatal("0 components: want nothing reported")
	}
	a, b := newComponents(225), newComponents(225)
	if len(a.full.Hash) != 32 || !bytes.Equal(a.full.Hash, b.full.Hash) || !bytes.Equal(a.hashOnly.Hash, a.full.Hash) {
		t.Fatalf("hashes %x, %x, hash-only %x: want one stable SHA-256", a.full.Hash, b.full.Hash, a.hashOnly.Hash)
	}
	if a.hashOnly.Components != nil {
		t.Fatal("the hash-only report carries components")
	}
	if bytes.Equal(newComponents(224).full.Hash, a.full.Hash) {
		t.Fatal("another component list has the same hash")
	}
	ref := a.full.Components["exporters"].SubComponentMap["contrib049"].Metadata[0]
	if ref.Key != "code.namespace" || !strings.HasPrefix(ref.Value.GetStringValue(), "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/contrib049exporter ") {
		t.Fatalf("metadata %v", ref)
	}
	// The core components every contrib build has come first: the
	// configs the benchmark pushes validate against them.
	for kind, names := range map[string][]string{"receivers": {"otlp"}, "processors": {"batch"}, "exporters": {"otlphttp", "debug"}} {
		for _, name := range names {
			c := a.full.Components[kind].SubComponentMap[name]
			if c == nil || !strings.HasPrefix(c.Metadata[0].Value.GetStringValue(), "go.opentelemetry.io/collector/") {
				t.Fatalf("%s %s: %v, want the core component", kind, name, c)
			}
		}
	}
	// A contrib collector's list is ~30 KB on the wire (~37 KB as JSON).
	if size := proto.Size(a.full); size < 20<<10 || size > 40<<10 {
		t.Fatalf("225 components encode to %d bytes", size)
	}
}
