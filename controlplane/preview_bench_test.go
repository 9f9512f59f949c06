package controlplane_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/store/sqlite"
)

// BenchmarkPreview measures a preview of a new config version over a fleet
// of 10,000 stored agents that an assignment following the latest version
// reaches, a quarter of them lacking a component the new version defines:
// what the review dialog and the 422 guard cost on every save.
func BenchmarkPreview(b *testing.B) {
	const fleet = 10000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/db")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	core, contrib := stewardComponents(coreComponents), stewardComponents(contribComponents)
	now := time.Now().UTC()
	known := func(v int) steward.KnownConfig {
		h := sha256.Sum256([]byte{byte(v)})
		return steward.KnownConfig{Hash: h[:], Configs: steward.ConfigRefs{{Assignment: "prod", Config: "gw", Version: v}}}
	}
	v1, v2 := known(1), known(2)
	agents := make([]*steward.Agent, fleet)
	for i := range agents {
		ac := contrib
		if i%4 == 0 {
			ac = core
		}
		agents[i] = &steward.Agent{ID: steward.NewInstanceUID(), Capabilities: steward.AgentAcceptsRemoteConfig | steward.AgentReportsAvailableComponents,
			Description: &steward.AgentDescription{IdentifyingAttributes: []steward.KeyValue{{Key: "service.name", Value: "otelcol"}},
				NonIdentifyingAttributes: []steward.KeyValue{{Key: "env", Value: "prod"}, {Key: "host.name", Value: "node-" + strconv.Itoa(i)}}},
			AvailableComponents: ac,
			// The state a connected collector has after two config changes.
			Online: true, Transport: "websocket", RemoteAddr: "10.0.0.1:40000", ConnectedAt: now, SequenceNum: 7,
			Health:             &steward.ComponentHealth{Healthy: true, StartTime: now, StatusTime: now, Status: "StatusOK"},
			RemoteConfigStatus: &steward.RemoteConfigStatus{LastRemoteConfigHash: v2.Hash, Status: steward.RemoteConfigApplied},
			Sync: &steward.AgentSync{State: steward.SyncInSync, Desired: &v2, Running: &v2, RunningHash: v2.Hash, Since: now,
				History: []steward.KnownConfig{v2, v1}}}
	}
	if err := st.PutAgents(ctx, agents); err != nil {
		b.Fatal(err)
	}
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.PutConfig(ctx, &steward.Config{Name: "gw", Files: yamlConfig(gatewayV1)}); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "gw", Selector: "env=prod"}); err != nil {
		b.Fatal(err)
	}
	ch := steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)}}
	b.ReportAllocs()
	// The machine is shared: wall time says little, the process's CPU
	// time per preview is reported as cpu-ms/op.
	before := cpuTime(b)
	for b.Loop() {
		p, err := svc.Preview(ctx, ch, steward.PreviewOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if p.Changed != fleet || p.Missing != fleet/4 {
			b.Fatalf("changed %d missing %d", p.Changed, p.Missing)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-before).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stewardComponents is the stored form of componentsReport(kinds).
func stewardComponents(kinds map[string][]string) *steward.ComponentDetails {
	d := &steward.ComponentDetails{Hash: componentsReport(kinds).Hash, Components: map[string]*steward.ComponentDetails{}}
	for kind, types := range kinds {
		k := &steward.ComponentDetails{Components: map[string]*steward.ComponentDetails{}}
		for _, t := range types {
			k.Components[t] = &steward.ComponentDetails{Metadata: []steward.KeyValue{{Key: "code.namespace", Value: "go.opentelemetry.io/collector/" + kind + "/" + t}}}
		}
		d.Components[kind] = k
	}
	return d
}

// BenchmarkPreviewHeld is BenchmarkPreview for a fleet this replica holds:
// 10,000 connected collectors (a quarter lacking a component the new
// version defines), weighed from their sessions as the push weighs them.
func BenchmarkPreviewHeld(b *testing.B) {
	const fleet = 10000
	st, err := sqlite.Open(context.Background(), b.TempDir()+"/db")
	if err != nil {
		b.Fatal(err)
	}
	f := newFixtureWith(b, st)
	for i := range fleet {
		kinds := contribComponents
		if i%4 == 0 {
			kinds = coreComponents
		}
		f.joinCollector("prod", kinds)
	}
	if _, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "gw", Files: yamlConfig(gatewayV1)}); err != nil {
		b.Fatal(err)
	}
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "gw", Selector: "env=prod"}); err != nil {
		b.Fatal(err)
	}
	// The pushes and the writes they cause settle before the clock runs.
	for quiet := 0; quiet < 5; {
		time.Sleep(100 * time.Millisecond)
		if quiet++; f.svc.PendingWrites() > 0 {
			quiet = 0
		}
	}
	ch := steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)}}
	b.ReportAllocs()
	before := cpuTime(b)
	for b.Loop() {
		p, err := f.svc.Preview(f.ctx, ch, steward.PreviewOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if p.Changed != fleet || p.Missing != fleet/4 {
			b.Fatalf("changed %d missing %d", p.Changed, p.Missing)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-before).Milliseconds())/float64(b.N), "cpu-ms/op")
}
