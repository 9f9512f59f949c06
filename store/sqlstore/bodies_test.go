package sqlstore

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func TestContentHashesAgreeWithConfigMapHash(t *testing.T) {
	var c contentHashes
	body := []byte(strings.Repeat("receivers: {otlp: {}}\n", 1000))
	files := func(b []byte, contentType string) steward.ConfigMap {
		return steward.ConfigMap{"": {Body: bytes.Clone(b), ContentType: contentType}}
	}
	a := files(body, "text/yaml")
	if got := c.hash(a); !bytes.Equal(got, a.Hash()) {
		t.Fatalf("first hash %x, want %x", got, a.Hash())
	}
	// The same content in another buffer: remembered, same hash.
	if got := c.hash(files(body, "text/yaml")); !bytes.Equal(got, a.Hash()) {
		t.Fatalf("same content: %x, want %x", got, a.Hash())
	}
	// Another content type, another body, another file name: their own.
	other := body[:len(body)-1]
	for _, m := range []steward.ConfigMap{files(body, "text/plain"), files(other, "text/yaml"),
		{"b": {Body: body, ContentType: "text/yaml"}}} {
		if got := c.hash(m); !bytes.Equal(got, m.Hash()) {
			t.Fatalf("%v: %x, want %x", m, got, m.Hash())
		}
	}
	// A caller changing its map after the write changes nothing remembered.
	a[""].Body[0] = 'X'
	if got, want := c.hash(files(body, "text/yaml")), files(body, "text/yaml").Hash(); !bytes.Equal(got, want) {
		t.Fatalf("after the caller's change: %x, want %x", got, want)
	}
	if got := c.hash(a); !bytes.Equal(got, a.Hash()) {
		t.Fatalf("changed map: %x, want %x", got, a.Hash())
	}
}
