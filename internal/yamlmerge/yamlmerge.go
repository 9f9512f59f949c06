// Package yamlmerge parses and deep-merges YAML configuration documents, as
// the supervisor and the Kubernetes bridge compose an agent's configuration
// from several files: mappings merge key by key, anything else is replaced
// by the later document.
package yamlmerge

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// Source is one named YAML document taking part in a merge.
type Source struct {
	Name string // for error messages: a file path or a remote config key
	Body []byte
}

// ParseMap decodes body as a single YAML mapping; keys that are not text
// (`1: one`) become text. An empty document (or only comments) is an empty
// map. Anything else at the top level (a list, a scalar, several documents)
// is an error naming the source.
func ParseMap(name string, body []byte) (map[string]any, error) {
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
	m, ok := stringKeys(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: top level must be a mapping, got %s", name, kindOf(v))
	}
	return m, nil
}

// stringKeys turns mappings with non-string keys (`1: one`, `true: yes`)
// into string-keyed ones, at every level, as configuration keys are text.
func stringKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = stringKeys(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = stringKeys(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = stringKeys(x)
		}
		return t
	}
	return v
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// Merge deep-merges src into dst and returns dst: mappings are merged
// key by key, recursively; any other value (scalars, lists, null) in src
// replaces the one in dst. Values taken from src are deep-copied so later
// merges never alias a source.
func Merge(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, sv := range src {
		sm, sIsMap := sv.(map[string]any)
		dm, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			dst[k] = Merge(dm, sm)
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

// Sources parses and merges sources in order (later wins) into one map.
func Sources(sources []Source) (map[string]any, error) {
	out := map[string]any{}
	for _, s := range sources {
		m, err := ParseMap(s.Name, s.Body)
		if err != nil {
			return nil, err
		}
		out = Merge(out, m)
	}
	return out, nil
}

// Render encodes m as YAML with sorted keys and 2-space indentation.
func Render(m map[string]any) ([]byte, error) {
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
