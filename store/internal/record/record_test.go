package record

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func TestValueRoundTrip(t *testing.T) {
	for _, v := range []any{
		nil, "", "text", true, false,
		`with "quotes" and \ a backslash`, "tab\tand\nnewline", "ünïcødé 😀", "<b>&amp;</b>", "\u2028",
		int64(0), int64(math.MinInt64), int64(math.MaxInt64),
		0.0, -1.5, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1),
		[]byte{}, []byte{0, 0xff},
		[]any{}, []any{"a", int64(1), []any{nil, 2.5}},
		map[string]any{}, map[string]any{"m": map[string]any{"b": []byte("x")}},
		uint64(math.MaxUint64),
	} {
		b, err := json.Marshal(value{v})
		if err != nil {
			t.Fatalf("marshal %#v: %v", v, err)
		}
		var got value
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if !reflect.DeepEqual(got.v, v) {
			t.Errorf("%#v came back as %#v (%s)", v, got.v, b)
		}
	}
	// NaN is not equal to itself: check it separately.
	b, _ := json.Marshal(value{math.NaN()})
	var got value
	if err := json.Unmarshal(b, &got); err != nil || !math.IsNaN(got.v.(float64)) {
		t.Fatalf("NaN came back as %#v (%v)", got.v, err)
	}
	// Narrower Go types widen to the AnyValue ones.
	for in, want := range map[any]any{int(7): int64(7), int32(-7): int64(-7), uint8(7): int64(7), float32(0.5): 0.5} {
		b, _ := json.Marshal(value{in})
		var got value
		if err := json.Unmarshal(b, &got); err != nil || got.v != want {
			t.Errorf("%#v came back as %#v (%v)", in, got.v, err)
		}
	}
	// Other types go through plain JSON.
	b, _ = json.Marshal(value{[]string{"a", "b"}})
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got.v, []any{"a", "b"}) {
		t.Fatalf("[]string came back as %#v (%v)", got.v, err)
	}
}

func TestValueReadsPostgresText(t *testing.T) {
	// jsonb gives documents back with a space after each colon.
	for doc, want := range map[string]any{`{"s": "text"}`: "text", `{"s": "a\"b"}`: `a"b`, `{"s": ""}`: ""} {
		var v value
		if err := json.Unmarshal([]byte(doc), &v); err != nil || v.v != want {
			t.Errorf("%s decoded as %#v (%v), want %q", doc, v.v, err, want)
		}
	}
}

func TestValueRejectsBadDocuments(t *testing.T) {
	for _, doc := range []string{`{}`, `{"s":"a","b":true}`, `{"s":"a","b":"c"}`, `{"s":1}`, `{"q":1}`, `{"i":"x"}`, `{"i":1}`, `{"d":"one"}`, `[]`, `"bare"`} {
		var v value
		if err := json.Unmarshal([]byte(doc), &v); err == nil {
			t.Errorf("%s decoded as %#v", doc, v.v)
		}
	}
}

func TestColumnsAndSearch(t *testing.T) {
	a := &steward.Agent{ID: steward.NewInstanceUID(), Description: &steward.AgentDescription{
		IdentifyingAttributes:    []steward.KeyValue{{Key: steward.AttrServiceName, Value: "Svc\x00X"}},
		NonIdentifyingAttributes: []steward.KeyValue{{Key: steward.AttrHostName, Value: "HOST"}},
	}, Health: &steward.ComponentHealth{Healthy: true}}
	c := Columns(a)
	if c.ServiceName != "SvcX" || c.HostName != "HOST" || !c.Healthy || c.ID != a.ID.String() {
		t.Fatalf("columns %+v", c)
	}
	if !strings.Contains(c.Search, "svcx"+SearchSep+"host") {
		t.Fatalf("search column %q", c.Search)
	}
	if _, ok := SearchTerm("a" + SearchSep); ok {
		t.Fatalf("a term holding the separator must match nothing")
	}
	if term, ok := SearchTerm("HoSt"); !ok || term != "host" {
		t.Fatalf("SearchTerm = %q, %v", term, ok)
	}
}

func TestDecodeAgentCorrupt(t *testing.T) {
	id := steward.NewInstanceUID().String()
	for _, doc := range []string{``, `{`, `{"capabilities":"x"}`, `{"labels":[1]}`} {
		_, err := DecodeAgent(id, []byte(doc), nil)
		if steward.ErrorCode(err) != steward.EINTERNAL || !strings.Contains(err.Error(), id) {
			t.Errorf("%q: %v", doc, err)
		}
	}
	if _, err := DecodeAgent("not-a-uid", []byte(`{}`), nil); steward.ErrorCode(err) != steward.EINTERNAL {
		t.Errorf("bad id: %v", err)
	}
}

// benchDoc is an agent document as the connect storm benchmark stores it.
var benchDoc = []byte(`{"description":{"identifying":[{"k":"service.name","v":{"s":"io.opentelemetry.collector"}},{"k":"service.version","v":{"s":"0.120.0"}},{"k":"service.instance.id","v":{"s":"01a24e64-ff42-7016-8f0f-2d7f5c47fa36"}},{"k":"service.namespace","v":{"s":"observability"}}],"non_identifying":[{"k":"host.name","v":{"s":"node-00026"}},{"k":"os.type","v":{"s":"linux"}},{"k":"host.arch","v":{"s":"amd64"}},{"k":"env","v":{"s":"staging"}},{"k":"region","v":{"s":"eu-west-1"}},{"k":"k8s.cluster.name","v":{"s":"cluster-8"}},{"k":"k8s.namespace.name","v":{"s":"observability"}},{"k":"k8s.node.name","v":{"s":"node-00026"}},{"k":"k8s.pod.name","v":{"s":"otel-agent-00208"}},{"k":"k8s.daemonset.name","v":{"s":"otel-agent"}}]},"capabilities":14343,"health":{"healthy":true,"start_time":"2026-12-07T02:46:11.522290274Z","status_time":"2026-12-07T02:46:42.834017373Z","status":"StatusOK"},"remote_config_status":{"last_remote_config_hash":"f66f1a066dcd8bbb96d7b95ce6be3e5c35cac040964792fbe3e01286783e09aa","status":"APPLIED"},"sequence_num":5,"transport":"websocket","remote_addr":"127.0.0.1:44062","connected_at":"2026-12-07T02:46:42.85203691Z","sync":{"state":"in_sync","desired":{"hash":"f66f1a066dcd8bbb96d7b95ce6be3e5c35cac040964792fbe3e01286783e09aa","configs":[{"assignment":"all-collectors","config":"collector","version":1}]},"running":{"hash":"f66f1a066dcd8bbb96d7b95ce6be3e5c35cac040964792fbe3e01286783e09aa","configs":[{"assignment":"all-collectors","config":"collector","version":1}]},"running_hash":"f66f1a066dcd8bbb96d7b95ce6be3e5c35cac040964792fbe3e01286783e09aa","since":"2026-12-07T02:46:11.611796229Z","history":[{"hash":"f66f1a066dcd8bbb96d7b95ce6be3e5c35cac040964792fbe3e01286783e09aa","configs":[{"assignment":"all-collectors","config":"collector","version":1}]}]}}`)

// benchAgent is the agent of benchDoc.
func benchAgent(t testing.TB) *steward.Agent {
	a, err := DecodeAgent("01a24e64-ff42-7008-a2a4-1d41bf734add", benchDoc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// BenchmarkDecodeAgent decodes the document of an agent as the connect
// storm benchmark stores it (description of 14 attributes, health, an
// APPLIED config and its sync state), as a document and a state document:
// what every reconnect and every acknowledgement reads.
func BenchmarkDecodeAgent(b *testing.B) {
	a := benchAgent(b)
	doc, err := EncodeAgent(a)
	if err != nil {
		b.Fatal(err)
	}
	state := benchState(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAgent("01a24e64-ff42-7008-a2a4-1d41bf734add", doc, state); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeState encodes the state document of an agent as the
// connect storm benchmark stores it (the state of BenchmarkDecodeAgent's
// document): what every narrow write encodes.
func BenchmarkEncodeState(b *testing.B) {
	a := benchAgent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeState(a); err != nil {
			b.Fatal(err)
		}
	}
}
