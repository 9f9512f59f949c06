package yamlmerge

import (
	"reflect"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	base, _ := ParseMap("base", []byte("a: {x: 1, y: [1, 2], z: {deep: 1}}\nb: keep\n"))
	over, _ := ParseMap("over", []byte("a: {y: [3], z: {other: 2}, n: null}\nc: new\n"))
	got := Merge(base, over)
	want := map[string]any{
		"a": map[string]any{"x": 1, "y": []any{3}, "z": map[string]any{"deep": 1, "other": 2}, "n": nil},
		"b": "keep", "c": "new",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merge = %#v", got)
	}
	// The source is copied, not aliased.
	over["a"].(map[string]any)["y"].([]any)[0] = 99
	if got["a"].(map[string]any)["y"].([]any)[0] != 3 {
		t.Fatal("merge result aliases its source")
	}
	// A scalar replaces a map and the reverse.
	got = Merge(map[string]any{"a": map[string]any{"x": 1}}, map[string]any{"a": "s"})
	if got["a"] != "s" {
		t.Fatalf("scalar over map = %#v", got)
	}
}

func TestParseYAMLMapErrors(t *testing.T) {
	for body, want := range map[string]string{
		"- a\n- b\n":   "top level must be a mapping",
		"a: [\n":       "invalid YAML",
		"a: 1\n---\nb": "single YAML document",
	} {
		if _, err := ParseMap("f.yaml", []byte(body)); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "f.yaml") {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
	m, err := ParseMap("empty", []byte("# only a comment\n"))
	if err != nil || len(m) != 0 {
		t.Fatalf("empty doc = %v, %v", m, err)
	}
}
