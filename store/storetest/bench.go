package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// TouchBatch is the number of agents per TouchAgents call in
// BenchmarkTouchAgents: one heartbeat flush of a 10k-agent fleet.
const TouchBatch = 10_000

// BenchmarkTouchAgents measures one TouchAgents call over TouchBatch known
// agents; it reports agents/s besides ns/op.
func BenchmarkTouchAgents(b *testing.B, s steward.Store) {
	ctx := context.Background()
	ids := make([]steward.InstanceUID, TouchBatch)
	for i := range ids {
		ids[i] = steward.NewInstanceUID()
		if err := s.PutAgent(ctx, benchAgent(ids[i], i)); err != nil {
			b.Fatal(err)
		}
	}
	seen := make(map[steward.InstanceUID]steward.Seen, TouchBatch)
	t0 := time.Now()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		at := t0.Add(time.Duration(n+1) * time.Second)
		for _, id := range ids {
			seen[id] = steward.Seen{At: at, SequenceNum: uint64(n)}
		}
		if err := s.TouchAgents(ctx, seen); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(TouchBatch*b.N)/b.Elapsed().Seconds(), "agents/s")
	a, err := s.Agent(ctx, ids[0])
	if err != nil || a.LastSeen.Sub(t0.Add(time.Duration(b.N)*time.Second)).Abs() >= time.Microsecond {
		b.Fatalf("last touch not stored: %v %v", a, err)
	}
}

// BenchmarkPutAgent measures PutAgent of a typical agent (description,
// health, a small effective config, labels), cycling over 1000 ids so most
// calls replace an existing row, as status reports do.
func BenchmarkPutAgent(b *testing.B, s steward.Store) {
	ctx := context.Background()
	const fleet = 1000
	agents := make([]*steward.Agent, fleet)
	for i := range agents {
		agents[i] = benchAgent(steward.NewInstanceUID(), i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		a := agents[n%fleet]
		a.SequenceNum++
		if err := s.PutAgent(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutAgentParallel is BenchmarkPutAgent from GOMAXPROCS
// goroutines, each on its own agents.
func BenchmarkPutAgentParallel(b *testing.B, s steward.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		agents := make([]*steward.Agent, 100)
		for i := range agents {
			agents[i] = benchAgent(steward.NewInstanceUID(), i)
		}
		n := 0
		for pb.Next() {
			a := agents[n%len(agents)]
			a.SequenceNum++
			if err := s.PutAgent(ctx, a); err != nil {
				b.Error(err)
				return
			}
			n++
		}
	})
}

func benchAgent(id steward.InstanceUID, i int) *steward.Agent {
	now := time.Now().UTC()
	return &steward.Agent{
		ID: id,
		Description: &steward.AgentDescription{
			IdentifyingAttributes: []steward.KeyValue{
				{Key: steward.AttrServiceName, Value: "otelcol-contrib"},
				{Key: steward.AttrServiceVersion, Value: "0.120.0"},
				{Key: steward.AttrServiceInstanceID, Value: id.String()},
			},
			NonIdentifyingAttributes: []steward.KeyValue{
				{Key: steward.AttrHostName, Value: fmt.Sprintf("host-%05d", i)},
				{Key: steward.AttrOSType, Value: "linux"},
				{Key: steward.AttrHostArch, Value: "amd64"},
			},
		},
		Capabilities: steward.AgentReportsStatus | steward.AgentAcceptsRemoteConfig | steward.AgentReportsEffectiveConfig | steward.AgentReportsHealth,
		Health: &steward.ComponentHealth{Healthy: true, StartTime: now, StatusTime: now, Status: "StatusOK",
			Components: map[string]*steward.ComponentHealth{
				"pipeline:traces":  {Healthy: true, Status: "StatusOK"},
				"pipeline:metrics": {Healthy: true, Status: "StatusOK"},
			}},
		EffectiveConfig: &steward.ConfigMap{"": {Body: []byte(benchConfig), ContentType: "text/yaml"}},
		RemoteConfigStatus: &steward.RemoteConfigStatus{
			LastRemoteConfigHash: make([]byte, 32), Status: steward.RemoteConfigApplied,
		},
		Labels:      map[string]string{"env": "prod", "region": fmt.Sprintf("r%d", i%4)},
		Online:      true,
		Transport:   "websocket",
		RemoteAddr:  "127.0.0.1:40000",
		ConnectedAt: now,
		LastSeen:    now,
		Replica:     "replica-a",
	}
}

const benchConfig = `receivers:
  otlp:
    protocols:
      grpc: {endpoint: 0.0.0.0:4317}
      http: {endpoint: 0.0.0.0:4318}
processors:
  batch: {}
exporters:
  otlphttp:
    endpoint: https://collector.example:4318
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [otlphttp]}
    metrics: {receivers: [otlp], processors: [batch], exporters: [otlphttp]}
`

// BenchmarkPutAgentStates compares the group commit's two writes of one
// batch (2,000 stored agents, as large as its transactions get): whole
// rows (PutAgents) and state only (PutAgentStates), each agent
// acknowledging a new config, as in a rollout.
func BenchmarkPutAgentStates(b *testing.B, s steward.Store) {
	ss, ok := s.(steward.AgentStateStore)
	if !ok {
		b.Skip("not an AgentStateStore")
	}
	c := context.Background()
	agents := make([]*steward.Agent, 2000)
	for i := range agents {
		a := fullAgent()
		a.ID = steward.NewInstanceUID()
		agents[i] = a
	}
	if err := s.PutAgents(c, agents); err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		put  func(context.Context, []*steward.Agent) error
	}{{"whole", s.PutAgents}, {"state", ss.PutAgentStates}} {
		b.Run(tt.name, func(b *testing.B) {
			for n := 0; b.Loop(); n++ {
				for _, a := range agents {
					a.SequenceNum++
					a.RemoteConfigStatus = &steward.RemoteConfigStatus{LastRemoteConfigHash: []byte{byte(n), 1}, Status: steward.RemoteConfigApplied}
				}
				if err := tt.put(c, agents); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// contribComponents is what a contrib collector reports in
// AvailableComponents: about 225 components, each with its Go package.
func contribComponents() *steward.ComponentDetails {
	d := &steward.ComponentDetails{Hash: []byte("otelcol-contrib 0.120.0"), Components: map[string]*steward.ComponentDetails{}}
	for kind, n := range map[string]int{"receivers": 95, "processors": 30, "exporters": 50, "extensions": 40, "connectors": 10} {
		k := &steward.ComponentDetails{Components: map[string]*steward.ComponentDetails{}}
		for i := range n {
			name := fmt.Sprintf("%s%03d", kind[:len(kind)-1], i)
			k.Components[name] = &steward.ComponentDetails{Metadata: []steward.KeyValue{
				{Key: "code.namespace", Value: "github.com/open-telemetry/opentelemetry-collector-contrib/" + kind + "/" + name}}}
		}
		d.Components[kind] = k
	}
	return d
}

// BenchmarkContribAgents measures reads and writes of agents that report
// what a contrib collector does (benchAgent plus contribComponents, each
// agent its own equal copy, as decoded from its report), 2,000 stored:
// read is one Agent, list one page of 500, put one PutAgents of 500
// agents as read back, put-reported one PutAgents of 500 agents whose
// sets are each their own copy (as reports decode them).
func BenchmarkContribAgents(b *testing.B, s steward.Store) {
	ctx := context.Background()
	agents := make([]*steward.Agent, 2000)
	for i := range agents {
		agents[i] = benchAgent(steward.NewInstanceUID(), i)
		agents[i].AvailableComponents = contribComponents()
	}
	if err := s.PutAgents(ctx, agents); err != nil {
		b.Fatal(err)
	}
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Agent(ctx, agents[i%len(agents)].ID); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("list", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.Agents(ctx, steward.AgentFilter{Limit: 500}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("put-reported", func(b *testing.B) {
		page := agents[:500]
		b.ReportAllocs()
		for b.Loop() {
			for _, a := range page {
				a.AvailableComponents = contribComponents()
			}
			if err := s.PutAgents(ctx, page); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("put", func(b *testing.B) {
		page, _, err := s.Agents(ctx, steward.AgentFilter{Limit: 500})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.PutAgents(ctx, page); err != nil {
				b.Fatal(err)
			}
		}
	})
}
