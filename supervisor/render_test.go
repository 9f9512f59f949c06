package supervisor

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/internal/yamlmerge"
	"gopkg.in/yaml.v3"
)

func TestRenderOrder(t *testing.T) {
	dir := t.TempDir()
	l1, l2 := filepath.Join(dir, "1.yaml"), filepath.Join(dir, "2.yaml")
	os.WriteFile(l1, []byte("v: local1\nonly_local: 1\nservice: {extensions: [health]}\n"), 0o644)
	os.WriteFile(l2, []byte("v: local2\n"), 0o644)
	remote := steward.ConfigMap{
		"b": {Body: []byte("v: remote-b\n")},
		"a": {Body: []byte("v: remote-a\nonly_a: 1\n")},
	}
	uid := steward.NewInstanceUID()
	out, err := render(renderInput{
		mode: ModeCollector, localFiles: []string{l1, l2}, remote: remote,
		telemetry: &ownTelemetry{metrics: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://127.0.0.1:4318/v1/metrics"}},
		opamp:     &opampExtension{endpoint: "ws://127.0.0.1:1/v1/opamp", instanceUID: uid, ppid: 42},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := yamlmerge.ParseMap("out", out)
	if err != nil {
		t.Fatal(err)
	}
	if m["v"] != "remote-b" || m["only_local"] != 1 || m["only_a"] != 1 {
		t.Errorf("merge order wrong:\n%s", out)
	}
	svc := m["service"].(map[string]any)
	if got := svc["extensions"]; !reflect.DeepEqual(got, []any{"health", extensionName}) {
		t.Errorf("service.extensions = %v", got)
	}
	ext := m["extensions"].(map[string]any)[extensionName].(map[string]any)
	if ext["instance_uid"] != uid.String() || ext["ppid"] != 42 {
		t.Errorf("opamp extension = %v", ext)
	}
	if ws := ext["server"].(map[string]any)["ws"].(map[string]any); ws["endpoint"] != "ws://127.0.0.1:1/v1/opamp" {
		t.Errorf("server = %v", ext["server"])
	}
	metrics := svc["telemetry"].(map[string]any)["metrics"].(map[string]any)
	if metrics["level"] != "normal" || !strings.Contains(string(out), "http://127.0.0.1:4318/v1/metrics") {
		t.Errorf("own metrics not rendered:\n%s", out)
	}

	// Without own telemetry, internal metrics stay off unless configured.
	out, _ = render(renderInput{mode: ModeCollector, remote: steward.ConfigMap{"": {Body: []byte("receivers: {nop: {}}\n")}}})
	if !strings.Contains(string(out), "level: none") {
		t.Errorf("collector default lacks metrics level none:\n%s", out)
	}
	// A bad remote file is an error naming it.
	if _, err := render(renderInput{mode: ModeCollector, remote: steward.ConfigMap{"x.yaml": {Body: []byte("- 1\n")}}}); err == nil || !strings.Contains(err.Error(), `"x.yaml"`) {
		t.Errorf("bad remote err = %v", err)
	}
	if _, err := render(renderInput{mode: ModeGeneric, localFiles: []string{filepath.Join(dir, "missing")}}); err == nil {
		t.Error("missing local file: no error")
	}
}

func TestRenderGenericPassesNonYAMLThrough(t *testing.T) {
	toml := "[server]\nport = 8080\n"
	out, err := render(renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"agent.toml": {Body: []byte(toml)}}})
	if err != nil || string(out) != toml {
		t.Fatalf("out = %q, %v", out, err)
	}
	_, err = render(renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"a": {Body: []byte(toml)}, "b": {Body: []byte("x: 1\n")}}})
	if err == nil {
		t.Fatal("two sources, one not YAML: no error")
	}
}

// Own telemetry offered over plain http:// is exported without TLS (the
// collector's exporter otherwise speaks TLS whatever the scheme, and
// "server gave HTTP response to HTTPS client"), every 10 s, with the
// instance uid as service.instance.id.
func TestOwnTelemetryRendering(t *testing.T) {
	uid := steward.NewInstanceUID()
	tl := &ownTelemetry{
		metrics: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://steward:4320/v1/metrics"},
		logs:    &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "https://steward:4320/v1/logs"}}
	out, err := render(renderInput{mode: ModeCollector, telemetry: tl, opamp: &opampExtension{endpoint: "ws://127.0.0.1:1/v1/opamp", instanceUID: uid}})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Service struct {
			Telemetry struct {
				Resource map[string]string `yaml:"resource"`
				Metrics  struct {
					Readers []struct {
						Periodic struct {
							Interval int `yaml:"interval"`
							Exporter struct {
								OTLP map[string]any `yaml:"otlp"`
							} `yaml:"exporter"`
						} `yaml:"periodic"`
					} `yaml:"readers"`
				} `yaml:"metrics"`
				Logs struct {
					Processors []struct {
						Batch struct {
							Exporter struct {
								OTLP map[string]any `yaml:"otlp"`
							} `yaml:"exporter"`
						} `yaml:"batch"`
					} `yaml:"processors"`
				} `yaml:"logs"`
			} `yaml:"telemetry"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	tel := doc.Service.Telemetry
	if len(tel.Metrics.Readers) != 1 || tel.Metrics.Readers[0].Periodic.Interval != 10000 || tel.Metrics.Readers[0].Periodic.Exporter.OTLP["insecure"] != true {
		t.Fatalf("metrics reader: %+v\n%s", tel.Metrics.Readers, out)
	}
	if len(tel.Logs.Processors) != 1 || tel.Logs.Processors[0].Batch.Exporter.OTLP["insecure"] != nil {
		t.Fatalf("https logs exporter must keep TLS: %+v", tel.Logs.Processors)
	}
	if tel.Resource["service.instance.id"] != uid.String() {
		t.Fatalf("resource: %v", tel.Resource)
	}
}
