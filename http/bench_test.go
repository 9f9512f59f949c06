package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
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

// BenchmarkListAgentsScrubbed is BenchmarkListAgents with connection
// settings holding secrets, which every agent's effective config is
// scrubbed of (secrets.go): the cost of reading the settings and
// replacing.
func BenchmarkListAgentsScrubbed(b *testing.B) {
	e := newEnv(b, nil)
	e.seed(b, 1000)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := e.cp.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: fmt.Sprintf("s%d", i),
			OwnMetrics: &steward.TelemetryDestination{Endpoint: "https://127.0.0.1:4318", Headers: map[string]string{"Authorization": fmt.Sprintf("Bearer secret-%d-0123456789", i)}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		e.get(b, "/api/v1/agents?limit=100&selector=env%3Dprod")
	}
}

// BenchmarkSessionRequest measures GET /api/v1/session authenticated by a
// stored session cookie (one SQLite lookup per request).
func BenchmarkSessionRequest(b *testing.B) {
	e := newEnv(b, func(o *stewardhttp.Options) { o.AdminPassword = "pw" })
	resp, err := e.ts.Client().Post(e.ts.URL+"/api/v1/login", "application/json", strings.NewReader(`{"password":"pw"}`))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	var cookie string
	for _, c := range resp.Cookies() {
		cookie += c.Name + "=" + c.Value + "; "
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/session", nil)
	req.Header.Set("Cookie", cookie)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"authenticated":true`) {
			b.Fatalf("not authenticated: %s", body)
		}
	}
}
