package bridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/bridge"
	"github.com/stewardhq/steward/bridge/internal/bridgetest"
	"github.com/stewardhq/steward/opamp/client"
)

// BenchmarkMergeConfigFiles merges a three-file remote config of a typical
// gateway (receivers, processors, exporters and pipelines).
func BenchmarkMergeConfigFiles(b *testing.B) {
	files := map[string]*protobufs.AgentConfigFile{
		"base":      {Body: []byte("receivers:\n  otlp:\n    protocols:\n      grpc: {endpoint: 0.0.0.0:4317}\n      http: {endpoint: 0.0.0.0:4318}\nprocessors:\n  batch: {}\n  memory_limiter: {check_interval: 1s, limit_percentage: 80}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [debug]}\n    metrics: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [debug]}\n")},
		"exporters": {Body: []byte("exporters:\n  debug: {verbosity: basic}\n  otlp/backend: {endpoint: backend:4317, tls: {insecure: true}}\n")},
		"prod":      {Body: []byte("service:\n  pipelines:\n    traces: {exporters: [otlp/backend]}\n    metrics: {exporters: [otlp/backend]}\n")},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bridge.MergeConfigFiles(files); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartup measures one bridge start with 100 pools: from Run until
// all 100 agents are online in an in-process Steward server.
func BenchmarkStartup(b *testing.B) {
	const pools = 100
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		stew := bridgetest.StartSteward(b) // closed when the benchmark ends
		objs := make([]runtime.Object, pools)
		for i := range objs {
			objs[i] = collectorObj("observability", fmt.Sprintf("pool-%03d", i), fmt.Sprintf("00000000-0000-4000-8000-%012d", i), map[string]string{"env": "prod"}, nil, baseConfig())
		}
		c := newCluster(objs)
		br, err := bridge.New(bridge.Config{Endpoint: stew.Endpoint, Dynamic: c.dyn, Kube: c.kube, Namespaces: []string{"observability"},
			Backoff: client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- br.Run(ctx) }()
		online := true
		deadline := time.Now().Add(2 * time.Minute)
		for {
			_, n, err := stew.CP.Agents(context.Background(), steward.AgentFilter{Online: &online, Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			if n == pools {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d pools online", n, pools)
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64((i+1)*pools), "µs/pool")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
