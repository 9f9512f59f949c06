package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"gopkg.in/yaml.v3"
)

// MergeConfigFiles merges the files of an offered remote config into one
// collector configuration. Files are taken in byte order of their keys;
// each must be a single YAML (or JSON) document whose top level is a
// mapping, or empty. Mappings merge key by key, recursively; any other value
// (scalars, lists, null) in a later file replaces the earlier one. The
// result uses only JSON-compatible types (map[string]any, []any, string,
// bool, int64, float64, nil), so it can be stored in an unstructured
// Kubernetes object. It fails, naming the file, on invalid YAML or a
// top level that is not a mapping; nothing is merged then.
func MergeConfigFiles(files map[string]*protobufs.AgentConfigFile) (map[string]any, error) {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]any{}
	for _, k := range keys {
		name := k
		if name == "" {
			name = "(unnamed file)"
		}
		m, err := parseYAMLMap(name, files[k].GetBody())
		if err != nil {
			return nil, err
		}
		out = mergeMaps(out, m)
	}
	return out, nil
}

// parseYAMLMap decodes body as a single YAML mapping, converted to
// JSON-compatible types. An empty document is an empty map.
func parseYAMLMap(name string, body []byte) (map[string]any, error) {
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
	j, err := jsonCompatible(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m, ok := j.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: top level must be a mapping, got %s", name, kindOf(v))
	}
	return m, nil
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

// jsonCompatible converts a value decoded by yaml.v3 into the types
// unstructured objects accept: map keys become strings, integers int64.
func jsonCompatible(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			c, err := jsonCompatible(x)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			c, err := jsonCompatible(x)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			c, err := jsonCompatible(x)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	case int:
		return int64(t), nil
	case int64:
		return t, nil
	case uint64:
		if t > 1<<63-1 {
			return float64(t), nil
		}
		return int64(t), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, fmt.Errorf("%v cannot be stored in spec.config (JSON has no infinities or NaN); quote it", t)
		}
		return t, nil
	case time.Time:
		// An unquoted timestamp: keep it as text, in the form it was
		// most likely written in.
		if t.Location() == time.UTC && t.Equal(t.Truncate(24*time.Hour)) {
			return t.Format(time.DateOnly), nil
		}
		return t.Format(time.RFC3339Nano), nil
	case string, bool, nil:
		return t, nil
	case []byte: // !!binary
		return string(t), nil
	default:
		// Timestamps and other tagged scalars: keep their text form.
		b, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("unsupported YAML value %T", v)
		}
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return string(b), nil
		}
		return s, nil
	}
}

func mergeMaps(dst, src map[string]any) map[string]any {
	for k, sv := range src {
		sm, sIsMap := sv.(map[string]any)
		dm, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			dst[k] = mergeMaps(dm, sm)
			continue
		}
		dst[k] = sv
	}
	return dst
}

// renderYAML encodes v with sorted keys and 2-space indentation.
func renderYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
