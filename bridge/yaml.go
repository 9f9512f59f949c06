package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"gopkg.in/yaml.v3"

	"github.com/stewardhq/steward/internal/yamlmerge"
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
		m, err := yamlmerge.ParseMap(name, files[k].GetBody())
		if err != nil {
			return nil, err
		}
		j, err := jsonCompatible(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = yamlmerge.Merge(out, j.(map[string]any))
	}
	return out, nil
}

// jsonCompatible converts a value decoded by yaml.v3 into the types
// unstructured objects accept (yamlmerge.ParseMap already made keys
// strings): integers become int64.
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
