package record

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

// decodeBoth decodes doc with the fast path and with encoding/json; when
// the fast path takes doc, both must read the same agentDoc.
func decodeBoth(t testing.TB, doc []byte) (fast bool) {
	t.Helper()
	return agrees(t, doc, decodeDocFast)
}

// agrees decodes b with fast and with encoding/json; when fast takes b,
// both must read the same.
func agrees[T any](t testing.TB, b []byte, fast func([]byte, *T) bool) (took bool) {
	t.Helper()
	var x, y T
	took = fast(b, &x)
	err := json.Unmarshal(b, &y)
	if took && err != nil {
		t.Fatalf("fast path took %q, encoding/json refused it: %v", b, err)
	}
	if took && !reflect.DeepEqual(x, y) {
		t.Fatalf("fast path read %q as %+v, encoding/json as %+v", b, x, y)
	}
	return took
}

// The fast path reads what encoding/json reads from every document
// EncodeAgent writes, and takes the common ones: string attributes,
// capabilities, labels, custom capabilities.
func TestDecodeDocFastAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	// The first four need no escape; the others make the fast path give up.
	strs := []string{"", "otelcol", "ünïcødé ✓", "node-00042", "a\"quote", "back\\slash", "<html>&", "tab\there", "line\u2028sep", string([]byte{0xff, 'x'})}
	plain := false
	str := func() string {
		if plain {
			return strs[r.IntN(4)]
		}
		return strs[r.IntN(len(strs))]
	}
	val := func() any {
		if plain || r.IntN(2) == 0 {
			return str()
		}
		switch r.IntN(6) {
		case 0:
			return int64(r.IntN(100) - 50)
		case 1:
			return r.IntN(2) == 0
		case 2:
			return 2.5
		case 3:
			return []byte{1, 2}
		case 4:
			return []any{"x", int64(1)}
		}
		return map[string]any{"k": "v"}
	}
	taken := 0
	for range 5000 {
		plain = r.IntN(3) > 0
		a := &steward.Agent{ID: steward.NewInstanceUID(), Capabilities: steward.AgentCapabilities(r.Uint64N(1 << 20))}
		if r.IntN(5) > 0 {
			a.Description = &steward.AgentDescription{}
			for range r.IntN(5) {
				a.Description.IdentifyingAttributes = append(a.Description.IdentifyingAttributes, steward.KeyValue{Key: str(), Value: val()})
			}
			for range r.IntN(12) {
				a.Description.NonIdentifyingAttributes = append(a.Description.NonIdentifyingAttributes, steward.KeyValue{Key: str(), Value: val()})
			}
		}
		if r.IntN(2) == 0 {
			a.Labels = map[string]string{str(): str(), "env": str()}
		}
		if r.IntN(3) == 0 {
			a.CustomCapabilities = []string{str(), "io.opentelemetry.pprof"}
		}
		if r.IntN(6) == 0 {
			a.ConnectionStatus = &steward.ConnectionSettingsStatus{Status: "APPLIED"}
		}
		doc, err := EncodeAgent(a)
		if err != nil {
			t.Fatal(err)
		}
		if decodeBoth(t, doc) {
			taken++
		}
		// PostgreSQL's jsonb, and anyone's, may space the tokens.
		spaced := strings.NewReplacer(`":`, `": `, `,"`, `, "`).Replace(string(doc))
		decodeBoth(t, []byte(spaced))
	}
	if taken < 1000 {
		t.Fatalf("the fast path took %d of 5,000 documents", taken)
	}
	// The benchmark's agents (a collector's 14 string attributes) take it.
	bench := []byte(`{"description":{"identifying":[{"k":"service.name","v":{"s":"io.opentelemetry.collector"}},{"k":"service.instance.id","v":{"s":"01a24fe9-a53a-7006-83a7-81bc4942c92b"}}],"non_identifying":[{"k":"host.name","v":{"s":"node-00000"}}]},"capabilities":14343}`)
	if !decodeBoth(t, bench) {
		t.Fatal("the fast path refused a collector's document")
	}
}

// Documents the fast path must leave to encoding/json (or refuse with it).
func TestDecodeDocFastLeavesTheRest(t *testing.T) {
	for _, doc := range []string{
		``, `{`, `{}x`, `null`, `{"description":null}`, `{"labels":null}`,
		`{"description":{"identifying":[]},"description":{"non_identifying":[]}}`, // twice: merged by encoding/json
		`{"description":{"identifying":[],"identifying":[]}}`,
		`{"capabilities":-1}`, `{"capabilities":1.5}`, `{"capabilities":01}`, `{"capabilities":18446744073709551616}`,
		`{"description":{"identifying":[{"k":"a","v":{"i":"1"}}]}}`,
		`{"description":{"identifying":[{"v":{"s":"x"},"k":"a"}]}}`,
		`{"health":{"healthy":true}}`, `{"sync":{"state":"in_sync"}}`,
		`{"labels":{"a":"\u00e9"}}`, "{\"labels\":{\"a\":\"\xff\"}}",
	} {
		var d agentDoc
		if decodeDocFast([]byte(doc), &d) {
			t.Errorf("fast path took %q", doc)
		}
		decodeBoth(t, []byte(doc))
	}
}

func FuzzDecodeDocFast(f *testing.F) {
	f.Add([]byte(`{"description":{"identifying":[{"k":"service.name","v":{"s":"x"}}]},"capabilities":7,"labels":{"a":"b"},"custom_capabilities":["c"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, doc []byte) { decodeBoth(t, doc) })
}

func BenchmarkDecodeDoc(b *testing.B) {
	doc, err := os.ReadFile("testdata/collector-doc.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			var d agentDoc
			if !decodeDocFast(doc, &d) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var d agentDoc
			if err := json.Unmarshal(doc, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
