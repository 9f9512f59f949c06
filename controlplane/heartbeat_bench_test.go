package controlplane_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/prometheus"
	"github.com/stewardhq/steward/store/sqlite"
)

// BenchmarkHeartbeat measures the control plane's cost of one bare
// heartbeat from a connected agent that runs its assigned config.
func BenchmarkHeartbeat(b *testing.B) {
	b.Run("config", func(b *testing.B) { benchHeartbeat(b, false, nil) })
	b.Run("config+connection-settings", func(b *testing.B) { benchHeartbeat(b, true, nil) })
	// As `steward server` runs it: with the Prometheus metrics.
	b.Run("config+prometheus", func(b *testing.B) { benchHeartbeat(b, false, prometheus.New(nil)) })
}

func benchHeartbeat(b *testing.B, withSettings bool, metrics controlplane.Metrics) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/db")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "bench", Metrics: metrics})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	svc.PutConfig(ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")})
	svc.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"})
	if withSettings {
		for i, sel := range []string{"env=prod", "env=dev", "region in (eu,us)"} {
			if _, err := svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "s" + strconv.Itoa(i), Selector: sel,
				OwnMetrics: &steward.TelemetryDestination{Endpoint: "https://otlp.example.com/v1/metrics"}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	uid := steward.NewInstanceUID()
	state, err := svc.Accept(&http.Request{})
	if err != nil {
		b.Fatal(err)
	}
	c := &testConn{transport: server.WebSocket, state: state}
	// The agent takes own-metrics settings, so they are part of its offer.
	first := fullReport(uid, 1, "prod")
	first.Capabilities |= uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics)
	if _, err := svc.OnMessage(ctx, c, first); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hb := heartbeat(uid, uint64(i+2))
		hb.Capabilities = first.Capabilities
		if _, err := svc.OnMessage(ctx, c, hb); err != nil {
			b.Fatal(err)
		}
	}
}
