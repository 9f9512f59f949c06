package steward

import (
	"sort"
	"strings"
	"unique"
)

// Labels is an immutable, compact label set: the agent's instance uid, its
// sorted label keys (interned: a fleet's agents mostly share one key set)
// and its values in one string. The control plane keeps one per connected
// agent for selector matching, so it is built to cost a few hundred bytes;
// lookups scan, which is cheap for the dozen or two labels an agent has.
// NUL bytes cannot be represented and are dropped from keys and values.
type Labels struct {
	id   InstanceUID
	keys unique.Handle[string] // sorted keys, each followed by NUL
	vals string                // values in key order, each followed by NUL
}

// NewLabels makes a compact set from labels (as Agent.LabelSet returns
// them). The "instance.uid" label is answered from id rather than stored.
func NewLabels(id InstanceUID, labels map[string]string) Labels {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != "instance.uid" && !strings.Contains(k, "\x00") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	// Both strings are made at their final size: a Builder growing by
	// doubling would keep up to twice the values' bytes alive for as long
	// as the agent is connected.
	nk, nv := 0, 0
	for _, k := range keys {
		nk += len(k) + 1
		nv += len(labels[k]) + 1
	}
	var kb, vb strings.Builder
	kb.Grow(nk)
	vb.Grow(nv)
	for _, k := range keys {
		kb.WriteString(k)
		kb.WriteByte(0)
		vb.WriteString(strings.ReplaceAll(labels[k], "\x00", ""))
		vb.WriteByte(0)
	}
	return Labels{id: id, keys: unique.Make(kb.String()), vals: vb.String()}
}

// Label looks key up.
func (l Labels) Label(key string) (string, bool) {
	if key == "instance.uid" {
		if l.id.IsZero() {
			return "", false
		}
		return l.id.String(), true
	}
	if l.vals == "" {
		return "", false
	}
	keys, vals := l.keys.Value(), l.vals
	for keys != "" {
		k, krest, _ := strings.Cut(keys, "\x00")
		v, vrest, _ := strings.Cut(vals, "\x00")
		if k == key {
			return v, true
		}
		if k > key { // sorted: not there
			return "", false
		}
		keys, vals = krest, vrest
	}
	return "", false
}

// Map returns the set as a map, "instance.uid" included.
func (l Labels) Map() map[string]string {
	m := map[string]string{}
	if l.vals != "" {
		keys, vals := l.keys.Value(), l.vals
		for keys != "" {
			var k, v string
			k, keys, _ = strings.Cut(keys, "\x00")
			v, vals, _ = strings.Cut(vals, "\x00")
			m[k] = v
		}
	}
	if !l.id.IsZero() {
		m["instance.uid"] = l.id.String()
	}
	return m
}

// CompactLabels returns LabelSet as compact Labels.
func (a *Agent) CompactLabels() Labels { return NewLabels(a.ID, a.LabelSet()) }
