package supervisor

import (
	"fmt"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
)

// BenchmarkRender measures assembling a collector's effective config from
// a remote config of 10 files with 20 pipelines each, plus own telemetry
// and the injected opamp extension.
func BenchmarkRender(b *testing.B) {
	remote := steward.ConfigMap{}
	for f := 0; f < 10; f++ {
		var sb strings.Builder
		sb.WriteString("receivers:\n")
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&sb, "  otlp/f%d_%d: {protocols: {grpc: {endpoint: 127.0.0.1:%d}}}\n", f, i, 10000+f*100+i)
		}
		sb.WriteString("service:\n  pipelines:\n")
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&sb, "    traces/f%d_%d: {receivers: [otlp/f%d_%d], exporters: [debug]}\n", f, i, f, i)
		}
		remote[fmt.Sprintf("file%02d.yaml", f)] = steward.ConfigFile{Body: []byte(sb.String())}
	}
	in := renderInput{
		mode:      ModeCollector,
		remote:    remote,
		telemetry: &ownTelemetry{metrics: &protobufs.TelemetryConnectionSettings{DestinationEndpoint: "http://127.0.0.1:4318/v1/metrics"}},
		opamp:     &opampExtension{endpoint: "ws://127.0.0.1:1/v1/opamp", instanceUID: steward.NewInstanceUID(), ppid: 1},
	}
	size := 0
	for _, f := range remote {
		size += len(f.Body)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := render(in); err != nil {
			b.Fatal(err)
		}
	}
}
