package steward_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func yamlFile(body string) steward.ConfigFile {
	return steward.ConfigFile{Body: []byte(body), ContentType: "text/yaml"}
}

// gateway is a realistic gateway collector: OTLP in, memory limiter and
// batch, a span-to-metrics connector, two backends, health and pprof.
const gateway = `extensions:
  health_check:
    endpoint: 0.0.0.0:13133
  pprof: {}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 0.0.0.0:4317}
      http: {endpoint: 0.0.0.0:4318}
  prometheus/self:
    config:
      scrape_configs:
        - job_name: otelcol
          scrape_interval: 30s
          static_configs: [{targets: ["127.0.0.1:8888"]}]
processors:
  memory_limiter: {check_interval: 1s, limit_percentage: 80, spike_limit_percentage: 20}
  batch: {}
connectors:
  spanmetrics:
    histogram: {explicit: {buckets: [2ms, 10ms, 100ms, 1s]}}
exporters:
  otlp/tempo:
    endpoint: tempo.observability:4317
    tls: {insecure: true}
  prometheusremotewrite:
    endpoint: http://mimir.observability/api/v1/push
service:
  extensions: [health_check, pprof]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp/tempo, spanmetrics]
    metrics:
      receivers: [otlp, prometheus/self, spanmetrics]
      processors: [memory_limiter, batch]
      exporters: [prometheusremotewrite]
`

func TestValidateConfig(t *testing.T) {
	example, err := os.ReadFile("examples/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files steward.ConfigMap
		// want lists "severity file:line message-substring" for every finding.
		want      []string
		collector bool
	}{
		{name: "the shipped example is clean", files: steward.ConfigMap{"": {Body: example, ContentType: "text/yaml"}}, collector: true},
		{name: "gateway with a connector is clean", files: steward.ConfigMap{"": yamlFile(gateway)}, collector: true},
		{
			name:  "YAML syntax error names its line",
			files: steward.ConfigMap{"": yamlFile("receivers:\n  otlp:\n    protocols: [grpc\nexporters: {}\n")},
			want:  []string{"error :2 YAML syntax"}, // the line yaml.v3 names
		},
		{
			name:  "a tab in indentation is a syntax error",
			files: steward.ConfigMap{"col.yaml": yamlFile("receivers:\n\totlp: {}\n")},
			want:  []string{"error col.yaml:2 YAML syntax"},
		},
		{
			name:  "duplicate key is a syntax error",
			files: steward.ConfigMap{"": yamlFile("receivers: {otlp: {}}\nreceivers: {nop: {}}\n")},
			want:  []string{"error :2 YAML syntax: mapping key \"receivers\" already defined"},
		},
		{
			name:      "no service section",
			files:     steward.ConfigMap{"": yamlFile("receivers: {otlp: {}}\nexporters: {debug: {}}\n")},
			want:      []string{"error :0 no service section"},
			collector: true,
		},
		{
			name: "pipeline names an undefined exporter (the collector's own startup error)",
			files: steward.ConfigMap{"": yamlFile(`receivers: {nop: {}}
exporters: {nop: {}}
service:
  pipelines:
    traces: {receivers: [nop], exporters: [otlp_grpc/missing]}
`)},
			want:      []string{"warning :2 exporter \"nop\" is defined but no pipeline", "error :5 pipeline \"traces\" uses exporter \"otlp_grpc/missing\", which is not defined under exporters"},
			collector: true,
		},
		{
			name: "undefined processor and extension, empty pipeline",
			files: steward.ConfigMap{"": yamlFile(`receivers: {otlp: {protocols: {grpc: {}}}}
exporters: {debug: {}}
service:
  extensions: [health_check]
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
    metrics: {}
`)},
			want: []string{
				"error :4 service.extensions names extension \"health_check\", which is not defined",
				"error :8 pipeline \"logs\" uses processor \"batch\", which is not defined under processors",
				"error :10 pipeline \"metrics\" has no exporters",
				"error :10 pipeline \"metrics\" has no receivers",
			},
			collector: true,
		},
		{
			name: "connector used only as an exporter",
			files: steward.ConfigMap{"": yamlFile(`receivers: {otlp: {}}
connectors: {count: {}}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug, count]}
`)},
			want:      []string{"error :2 connector \"count\" is used as an exporter but no pipeline uses it as a receiver"},
			collector: true,
		},
		{
			name: "connector used only as a receiver",
			files: steward.ConfigMap{"": yamlFile(`connectors: {forward: {}}
exporters: {debug: {}}
service:
  pipelines:
    logs: {receivers: [forward], exporters: [debug]}
`)},
			want:      []string{"error :1 connector \"forward\" is used as a receiver but no pipeline uses it as an exporter"},
			collector: true,
		},
		{
			name: "unknown signal and bad component id",
			files: steward.ConfigMap{"": yamlFile(`receivers: {"otlp//x": {}, nop: {}}
exporters: {nop: {}}
service:
  pipelines:
    spans: {receivers: [nop], exporters: [nop]}
`)},
			want:      []string{"error :1 invalid receiver id \"otlp//x\"", "error :5 pipeline \"spans\": the id must be traces, metrics, logs or profiles"},
			collector: true,
		},
		{
			name: "unused extension and processor are warnings only",
			files: steward.ConfigMap{"": yamlFile(`extensions: {zpages: {}}
receivers: {nop: {}}
processors: {batch: {}}
exporters: {nop: {}}
service:
  pipelines:
    metrics: {receivers: [nop], exporters: [nop]}
`)},
			want:      []string{"warning :1 extension \"zpages\" is defined but service.extensions does not list it", "warning :3 processor \"batch\" is defined but no pipeline uses it"},
			collector: true,
		},
		{
			name: "files merge in name order: definitions in one, pipelines in another; the later list wins",
			files: steward.ConfigMap{
				"a-components.yaml": yamlFile("receivers: {otlp: {}}\nexporters: {debug: {}, otlp/backend: {endpoint: b:4317}}\n"),
				"b-service.yaml": yamlFile(`service:
  pipelines:
    traces: {receivers: [otlp], exporters: [missing]}
`),
				"c-override.yaml": yamlFile(`service:
  pipelines:
    traces: {exporters: [otlp/backend]}
`),
			},
			want:      []string{"warning a-components.yaml:2 exporter \"debug\" is defined but no pipeline"},
			collector: true,
		},
		{
			name:  "syslog-ng config is not YAML: nothing to check",
			files: steward.ConfigMap{"syslog-ng.conf": {Body: []byte("source s_net { tcp(port(601)); };\nlog { source(s_net); destination(d); };\n"), ContentType: "text/plain"}},
		},
		{
			name:  "YAML that is not a collector config gets only the syntax check",
			files: steward.ConfigMap{"fluent.yaml": yamlFile("pipeline:\n  inputs:\n    - name: tail\n")},
		},
		{
			name:  "a .yml file without content type is YAML",
			files: steward.ConfigMap{"app.yml": {Body: []byte("a: [1\n")}},
			want:  []string{"error app.yml:1 YAML syntax"},
		},
		{
			name: "anchors and aliases resolve",
			files: steward.ConfigMap{"": yamlFile(`receivers: {nop: {}}
exporters: {nop: {}}
service:
  pipelines:
    traces: &p {receivers: [nop], exporters: [nop]}
    logs: *p
`)},
			collector: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := steward.ValidateConfig(tc.files)
			if got.Collector != tc.collector {
				t.Errorf("Collector = %v, want %v", got.Collector, tc.collector)
			}
			if len(got.Findings) != len(tc.want) {
				t.Fatalf("findings:\n%s\nwant:\n%s", show(got.Findings), strings.Join(tc.want, "\n"))
			}
			for i, w := range tc.want {
				if !matches(got.Findings[i], w) {
					t.Errorf("finding %d = %s, want %s\nall:\n%s", i, got.Findings[i], w, show(got.Findings))
				}
			}
		})
	}
}

func show(fs []steward.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// matches compares f with "severity file:line message-substring".
func matches(f steward.Finding, want string) bool {
	sev, rest, _ := strings.Cut(want, " ")
	loc, msg, _ := strings.Cut(rest, " ")
	file, line, _ := strings.Cut(loc, ":")
	return f.Severity == sev && f.File == file && line == strconv.Itoa(f.Line) && strings.Contains(f.Message, msg)
}

func TestValidateConfigComponents(t *testing.T) {
	got := steward.ValidateConfig(steward.ConfigMap{"": yamlFile(gateway)}).Components
	want := []steward.Component{
		{Kind: "connectors", ID: "spanmetrics"},
		{Kind: "exporters", ID: "otlp/tempo"}, {Kind: "exporters", ID: "prometheusremotewrite"},
		{Kind: "extensions", ID: "health_check"}, {Kind: "extensions", ID: "pprof"},
		{Kind: "processors", ID: "batch"}, {Kind: "processors", ID: "memory_limiter"},
		{Kind: "receivers", ID: "otlp"}, {Kind: "receivers", ID: "prometheus/self"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("components = %v\nwant %v", got, want)
	}
}

// available builds an AvailableComponents report the way the collector's
// opamp extension sends it: kinds, then component types with their module.
func available(kinds map[string][]string) *steward.ComponentDetails {
	root := &steward.ComponentDetails{Hash: []byte("h"), Components: map[string]*steward.ComponentDetails{}}
	for kind, types := range kinds {
		k := &steward.ComponentDetails{Components: map[string]*steward.ComponentDetails{}}
		for _, t := range types {
			k.Components[t] = &steward.ComponentDetails{Metadata: []steward.KeyValue{{Key: "code.namespace", Value: "go.opentelemetry.io/collector/" + t}}}
		}
		root.Components[kind] = k
	}
	return root
}

func TestMissingComponents(t *testing.T) {
	cs := steward.ValidateConfig(steward.ConfigMap{"": yamlFile(gateway)}).Components
	core := available(map[string][]string{
		"receivers":  {"otlp", "prometheus"},
		"processors": {"batch", "memory_limiter"},
		"exporters":  {"otlp", "debug"},
		"extensions": {"health_check", "pprof"},
	})
	missing, known := steward.MissingComponents(cs, core)
	if !known {
		t.Fatal("known = false for an agent that reported components")
	}
	want := []steward.Component{{Kind: "connectors", ID: "spanmetrics"}, {Kind: "exporters", ID: "prometheusremotewrite"}}
	if !slices.Equal(missing, want) {
		t.Fatalf("missing = %v, want %v", missing, want)
	}
	if missing[0].String() != "connector spanmetrics" {
		t.Errorf("String() = %q", missing[0].String())
	}
	if m, known := steward.MissingComponents(cs, nil); known || m != nil {
		t.Errorf("no report: missing %v known %v, want nil false", m, known)
	}
	if m, known := steward.MissingComponents(cs, &steward.ComponentDetails{Hash: []byte("only-hash")}); known || m != nil {
		t.Errorf("hash-only report: missing %v known %v, want nil false", m, known)
	}
}
