package http_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// seed stores n agents directly in the store, as reported agents would be.
func (e *env) seed(b *testing.B, n int) {
	ctx := context.Background()
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		a := &steward.Agent{
			ID: steward.NewInstanceUID(),
			Description: &steward.AgentDescription{
				IdentifyingAttributes: []steward.KeyValue{
					{Key: "service.name", Value: "otelcol"}, {Key: "service.version", Value: fmt.Sprintf("0.%d.0", i%5)},
				},
				NonIdentifyingAttributes: []steward.KeyValue{{Key: "host.name", Value: fmt.Sprintf("host-%d", i)}, {Key: "os.type", Value: "linux"}},
			},
			Capabilities:       steward.AgentReportsStatus | steward.AgentAcceptsRemoteConfig | steward.AgentReportsHealth,
			Health:             &steward.ComponentHealth{Healthy: i%10 != 0, Status: "StatusOK"},
			RemoteConfigStatus: &steward.RemoteConfigStatus{Status: steward.RemoteConfigApplied, LastRemoteConfigHash: []byte("0123456789abcdef0123456789abcdef")},
			Labels:             map[string]string{"env": "prod"},
			Online:             true, Transport: "websocket", RemoteAddr: "127.0.0.1:1", ConnectedAt: now, LastSeen: now,
			CreatedAt: now, UpdatedAt: now,
		}
		if err := e.db.PutAgent(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

func (e *env) get(b *testing.B, path string) {
	resp, err := e.ts.Client().Get(e.ts.URL + path)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	b.SetBytes(n)
}

// BenchmarkListAgents measures GET /api/v1/agents?limit=100 (one UI page)
// over HTTP on loopback with 1000 agents in SQLite.
func BenchmarkListAgents(b *testing.B) {
	e := newEnv(b, nil)
	e.seed(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		e.get(b, "/api/v1/agents?limit=100&selector=env%3Dprod")
	}
}

// BenchmarkSummary measures GET /api/v1/summary with 1000 agents.
func BenchmarkSummary(b *testing.B) {
	e := newEnv(b, nil)
	e.seed(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		e.get(b, "/api/v1/summary")
	}
}
