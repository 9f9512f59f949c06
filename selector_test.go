package steward_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/stewardhq/steward"
)

// k8sLabels lets a Kubernetes selector read Steward's label sets.
type k8sLabels struct{ l steward.Labeled }

func (k k8sLabels) Has(key string) bool              { _, ok := k.l.Label(key); return ok }
func (k k8sLabels) Get(key string) string            { v, _ := k.l.Label(key); return v }
func (k k8sLabels) Lookup(key string) (string, bool) { return k.l.Label(key) }

const benchSelector = "service.name=otelcol-contrib,deployment.environment in (production,staging),!canary"

func benchLabels() map[string]string {
	return map[string]string{
		"service.name": "otelcol-contrib", "service.version": "0.120.0", "service.instance.id": "gw-eu-west-1a-1",
		"host.name": "gw-eu-west-1a", "host.arch": "amd64", "os.type": "linux", "deployment.environment": "production",
		"team": "observability", "region": "eu-west-1", "tier": "gateway",
	}
}

func BenchmarkSelectorParse(b *testing.B) {
	b.Run("steward", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := steward.ParseSelector(benchSelector); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("k8s", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := labels.Parse(benchSelector); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSelectorMatch(b *testing.B) {
	m := benchLabels()
	compact := steward.NewLabels(steward.NewInstanceUID(), m)
	ours, _ := steward.ParseSelector(benchSelector)
	theirs, _ := labels.Parse(benchSelector)
	if !ours.MatchLabels(compact) || !theirs.Matches(k8sLabels{compact}) {
		b.Fatal("the selector should match")
	}
	b.Run("steward/compact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ours.MatchLabels(compact)
		}
	})
	b.Run("k8s/compact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			theirs.Matches(k8sLabels{compact})
		}
	})
	b.Run("steward/map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ours.Matches(m)
		}
	})
	b.Run("k8s/map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			theirs.Matches(labels.Set(m))
		}
	})
}

// TestSelectorAttributeValues checks selectors over values that OpAMP agents
// report as OpenTelemetry resource attributes and Kubernetes label syntax
// rejects (paths, image references, values over 63 bytes, ':' in keys):
// they parse and match. This is one reason Steward keeps its own parser
// (see selector.go).
func TestSelectorAttributeValues(t *testing.T) {
	long := strings.Repeat("0123456789", 7)
	attrs := map[string]string{
		"process.executable.path": "/usr/bin/otelcol-contrib",
		"container.image.name":    "ghcr.io/open-telemetry/otelcol:0.120.0",
		"host.id":                 long,
		"k8s:cluster":             "prod",
	}
	for _, s := range []string{
		"process.executable.path=/usr/bin/otelcol-contrib",
		"container.image.name in (ghcr.io/open-telemetry/otelcol:0.120.0,docker.io/otel/collector:0.119.0)",
		"host.id=" + long,
		"k8s:cluster=prod",
	} {
		sel, err := steward.ParseSelector(s)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", s, err)
		}
		if !sel.Matches(attrs) {
			t.Errorf("%q does not match %v", s, attrs)
		}
		if _, err := labels.Parse(s); err == nil {
			t.Logf("%q is now valid Kubernetes selector syntax too: revisit the choice in selector.go", s)
		}
	}
}
