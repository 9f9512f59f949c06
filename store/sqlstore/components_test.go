package sqlstore

import (
	"bytes"
	"testing"

	"github.com/stewardhq/steward"
)

func componentSet(namespace string, stability any) *steward.ComponentDetails {
	return &steward.ComponentDetails{Hash: []byte("reported"), Components: map[string]*steward.ComponentDetails{
		"receivers": {Components: map[string]*steward.ComponentDetails{
			"otlp":    {Metadata: []steward.KeyValue{{Key: "code.namespace", Value: namespace}, {Key: "stability", Value: stability}}},
			"hostmet": {Metadata: []steward.KeyValue{{Key: "code.namespace", Value: "x/hostmetrics"}}},
		}},
		"exporters": {Components: map[string]*steward.ComponentDetails{"debug": {}}},
	}}
}

// An equal set reported by another agent (another copy) is known without
// encoding it; any difference, a caller changing its set afterwards
// included, gives the hash of what is stored.
func TestComponentSetsKnowEqualContent(t *testing.T) {
	var c componentSets
	first := componentSet("x/otlp", int64(3))
	enc, hash, err := c.encode(first)
	if err != nil || enc == nil {
		t.Fatalf("first encode: %q %v", enc, err)
	}
	enc2, hash2, err := c.encode(componentSet("x/otlp", int64(3)))
	if err != nil || enc2 != nil || !bytes.Equal(hash2, hash) {
		t.Fatalf("an equal set: encoded %d bytes, hash %x (want none and %x), %v", len(enc2), hash2, hash, err)
	}
	first.Components["receivers"].Components["otlp"].Metadata[0].Value = "x/changed" // after it was known
	for name, set := range map[string]*steward.ComponentDetails{
		"changed after it was known": first,
		"another value":              componentSet("x/otlp", int64(4)),
		"another value type":         componentSet("x/otlp", "3"),
		"another component":          componentSet("x/otlp2", int64(3)),
	} {
		enc, h, err := c.encode(set)
		if err != nil || enc == nil || bytes.Equal(h, hash) {
			t.Errorf("%s: encoded %d bytes, hash %x (the first's %x), %v", name, len(enc), h, hash, err)
		}
	}
	renamed := componentSet("x/otlp", int64(3))
	renamed.Components["exporters"].Components["nop"] = renamed.Components["exporters"].Components["debug"]
	delete(renamed.Components["exporters"].Components, "debug")
	if enc, h, _ := c.encode(renamed); enc == nil || bytes.Equal(h, hash) {
		t.Errorf("a renamed component: encoded %d bytes, hash %x", len(enc), h)
	}
}
