package loadgen

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-telemetry/opamp-go/protobufs"
)

// componentKind is one kind of Collector component, with its share of a
// contrib build's ~225 components (95:30:50:40:10 at v0.120).
type componentKind struct {
	kind  string // key of AvailableComponents.components, as the opampextension reports it
	dir   string // directory of the kind's modules in the contrib repository
	share int
}

var componentKinds = []componentKind{
	{"receivers", "receiver", 95},
	{"processors", "processor", 30},
	{"exporters", "exporter", 50},
	{"extensions", "extension", 40},
	{"connectors", "connector", 10},
}

// componentsVersion is the version in every component's module reference,
// the service.version the agents report.
const componentsVersion = "v0.120.0"

// components is what every agent of a generator reports as its available
// components, built once and shared (read-only) by all of them: a fleet of
// 100k agents must not hold 100k copies of a 35 KB tree.
type components struct {
	full     *protobufs.AvailableComponents // hash and every component
	hashOnly *protobufs.AvailableComponents // what an agent sends until asked for more
}

// newComponents builds n components (nil for n <= 0) shaped as the
// Collector's opampextension reports them: kind -> component type ->
// metadata code.namespace = module reference.
func newComponents(n int) *components {
	if n <= 0 {
		return nil
	}
	full := &protobufs.AvailableComponents{Components: map[string]*protobufs.ComponentDetails{}}
	for i, count := range splitComponents(n) {
		k := componentKinds[i]
		full.Components[k.kind] = &protobufs.ComponentDetails{SubComponentMap: kindComponents(k, count)}
	}
	full.Hash = componentsHash(full)
	return &components{full: full, hashOnly: &protobufs.AvailableComponents{Hash: full.Hash}}
}

// splitComponents divides n among componentKinds by their shares (largest
// remainder), so the counts add up to exactly n.
func splitComponents(n int) []int {
	total := 0
	for _, k := range componentKinds {
		total += k.share
	}
	counts := make([]int, len(componentKinds))
	rem := make([]int, len(componentKinds))
	left := n
	for i, k := range componentKinds {
		counts[i] = n * k.share / total
		rem[i] = n * k.share % total
		left -= counts[i]
	}
	order := make([]int, len(componentKinds))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rem[b] - rem[a] })
	for _, i := range order[:left] {
		counts[i]++
	}
	return counts
}

// coreComponents are the components of the collector's core repository
// that every contrib build has, by kind: the ones the benchmark's configs
// use among them, so that the server's validation of a config against the
// agents' components passes, as it does for a real contrib collector.
var coreComponents = map[string][]string{
	"receivers":  {"otlp"},
	"processors": {"batch", "memory_limiter"},
	"exporters":  {"otlp", "otlphttp", "debug"},
	"extensions": {"zpages"},
	"connectors": {"forward"},
}

// kindComponents makes count components of kind k: the core ones first
// (module go.opentelemetry.io/collector/receiver/otlpreceiver), then
// generated, contrib-like names ("contrib007" from module
// receiver/contrib007receiver of the contrib repository).
func kindComponents(k componentKind, count int) map[string]*protobufs.ComponentDetails {
	m := make(map[string]*protobufs.ComponentDetails, count)
	core := coreComponents[k.kind]
	for i := range count {
		name := fmt.Sprintf("contrib%03d", i)
		ref := fmt.Sprintf("github.com/open-telemetry/opentelemetry-collector-contrib/%s/%s%s %s", k.dir, name, k.dir, componentsVersion)
		if i < len(core) {
			name = core[i]
			ref = fmt.Sprintf("go.opentelemetry.io/collector/%s/%s%s %s", k.dir, name, k.dir, componentsVersion)
		}
		m[name] = &protobufs.ComponentDetails{Metadata: []*protobufs.KeyValue{{
			Key:   "code.namespace",
			Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: ref}},
		}}}
	}
	return m
}

// componentsHash is the SHA-256 of the encoding the opampextension hashes:
// per kind "kind:" then "type=module;" sorted by type. It depends on the
// components only, never on map order.
func componentsHash(ac *protobufs.AvailableComponents) []byte {
	var b strings.Builder
	for _, k := range componentKinds {
		sub := ac.Components[k.kind].GetSubComponentMap()
		b.WriteString(k.dir + ":")
		for _, name := range slices.Sorted(maps.Keys(sub)) {
			b.WriteString(name + "=" + sub[name].Metadata[0].Value.GetStringValue() + ";")
		}
	}
	h := sha256.Sum256([]byte(b.String()))
	return h[:]
}
