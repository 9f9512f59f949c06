package bench

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Ratios is Steward's result divided by the peer's, measure by measure,
// from one run of the same scenario on each.
type Ratios struct {
	Scenario string             `json:"scenario"`
	Agents   int                `json:"agents"`
	Ratio    map[string]float64 `json:"steward_per_opampgo"`
}

// Ratio divides each numeric measure that both results have (non-zero in
// the peer's) — per-agent memory, CPU, times — Steward's by the peer's.
func Ratio(steward, peer *Result) *Ratios {
	r := &Ratios{Scenario: steward.Scenario, Agents: steward.Agents, Ratio: map[string]float64{}}
	a, b := numbers(steward), numbers(peer)
	for k, v := range a {
		if k == "agents" || k == "config_bytes" || k == "components" { // settings, not measures
			continue
		}
		if p, ok := b[k]; ok && p != 0 {
			r.Ratio[k] = v / p
		}
	}
	return r
}

func numbers(res *Result) map[string]float64 {
	raw, _ := json.Marshal(res)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	out := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

// JSON renders the ratios as one line of JSON.
func (r *Ratios) JSON() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// String is a one-line human summary: "steward/opampgo rollout 10000: a 1.23, b 0.45".
func (r *Ratios) String() string {
	keys := make([]string, 0, len(r.Ratio))
	for k := range r.Ratio {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, r.Ratio[k])
	}
	return fmt.Sprintf("steward/opampgo %s %d: %s", r.Scenario, r.Agents, strings.Join(parts, ", "))
}
