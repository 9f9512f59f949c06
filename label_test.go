package steward

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// Agent.Label answers as LabelSet's map does, for every key it holds and
// for keys it does not, whatever the attributes' order, repetitions and
// value types.
func TestAgentLabelIsLabelSet(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	keys := []string{"service.name", "env", "region", "instance.uid", "host.name", "k8s.pod.name", "missing"}
	value := func() any {
		switch r.IntN(5) {
		case 0:
			return int64(r.IntN(3))
		case 1:
			return []any{"x"} // not a scalar: not a label
		case 2:
			return r.IntN(2) == 0
		}
		return "v" + strconv.Itoa(r.IntN(3))
	}
	kvs := func() []KeyValue {
		var out []KeyValue
		for range r.IntN(6) {
			out = append(out, KeyValue{Key: keys[r.IntN(len(keys))], Value: value()})
		}
		return out
	}
	for range 2000 {
		a := &Agent{ID: NewInstanceUID()}
		if r.IntN(4) > 0 {
			a.Description = &AgentDescription{IdentifyingAttributes: kvs(), NonIdentifyingAttributes: kvs()}
		}
		if r.IntN(2) == 0 {
			a.Labels = map[string]string{keys[r.IntN(len(keys))]: "label"}
		}
		set := a.LabelSet()
		for _, k := range keys {
			want, wantOK := set[k]
			if got, ok := a.Label(k); got != want || ok != wantOK {
				t.Fatalf("Label(%q) = %q, %v; LabelSet has %q, %v (agent %+v %+v)", k, got, ok, want, wantOK, a.Description, a.Labels)
			}
		}
	}
}
