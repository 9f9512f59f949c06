package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"

	"gopkg.in/yaml.v3"
)

// Source is one named YAML document taking part in a merge.
type Source struct {
	Name string // for error messages: a file path or a remote config key
	Body []byte
}

// ParseYAMLMap decodes body as a single YAML mapping. An empty document (or
// only comments) is an empty map. Anything else at the top level (a list, a
// scalar, several documents) is an error naming the source.
func ParseYAMLMap(name string, body []byte) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(body))
	var v any
	if err := dec.Decode(&v); errors.Is(err, io.EOF) {
		return map[string]any{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %w", name, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: expected a single YAML document", name)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: top level must be a mapping with string keys, got %T", name, v)
	}
	return m, nil
}

// MergeYAML deep-merges src into dst and returns dst: mappings are merged
// key by key, recursively; any other value (scalars, lists, null) in src
// replaces the one in dst. Values taken from src are deep-copied so later
// merges never alias a source.
func MergeYAML(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, sv := range src {
		sm, sIsMap := sv.(map[string]any)
		dm, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			dst[k] = MergeYAML(dm, sm)
			continue
		}
		dst[k] = deepCopy(sv)
	}
	return dst
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	default:
		return v
	}
}

// MergeSources parses and merges sources in order (later wins) into one map.
func MergeSources(sources []Source) (map[string]any, error) {
	out := map[string]any{}
	for _, s := range sources {
		m, err := ParseYAMLMap(s.Name, s.Body)
		if err != nil {
			return nil, err
		}
		out = MergeYAML(out, m)
	}
	return out, nil
}

// RenderYAML encodes m as YAML with sorted keys and 2-space indentation.
func RenderYAML(m map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
