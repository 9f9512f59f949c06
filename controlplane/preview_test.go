package controlplane_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
)

// componentsReport is what a collector's opamp extension reports: kinds,
// then component types with the module that provides them.
func componentsReport(kinds map[string][]string) *protobufs.AvailableComponents {
	ac := &protobufs.AvailableComponents{Hash: []byte("components"), Components: map[string]*protobufs.ComponentDetails{}}
	for kind, types := range kinds {
		k := &protobufs.ComponentDetails{SubComponentMap: map[string]*protobufs.ComponentDetails{}}
		for _, t := range types {
			ac.Hash = append(ac.Hash, t...)
			k.SubComponentMap[t] = &protobufs.ComponentDetails{Metadata: []*protobufs.KeyValue{str("code.namespace", "go.opentelemetry.io/collector/"+kind+"/"+t)}}
		}
		ac.Components[kind] = k
	}
	return ac
}

var coreComponents = map[string][]string{
	"receivers": {"otlp", "nop"}, "processors": {"batch"}, "exporters": {"debug", "otlp", "nop"}, "extensions": {"health_check"},
}

var contribComponents = map[string][]string{
	"receivers": {"otlp", "nop"}, "processors": {"batch"}, "exporters": {"debug", "otlp", "nop"},
	"extensions": {"health_check"}, "connectors": {"spanmetrics", "forward"},
}

// joinCollector connects a collector in env that reports kinds (nil: no
// AvailableComponents at all).
func (f *fixture) joinCollector(env string, kinds map[string][]string) *fleetAgent {
	a := f.join(env, nil)
	if kinds != nil {
		a.seq++
		m := heartbeat(a.id, a.seq)
		m.Capabilities |= uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents)
		m.AvailableComponents = componentsReport(kinds)
		f.send(a.conn, m)
	}
	return a
}

const gatewayV1 = `receivers: {otlp: {protocols: {grpc: {}}}}
processors: {batch: {}}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
`

// gatewayV2 adds span metrics through a connector, which core lacks.
const gatewayV2 = `receivers: {otlp: {protocols: {grpc: {}}}}
processors: {batch: {}}
connectors: {spanmetrics: {}}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug, spanmetrics]}
    metrics: {receivers: [spanmetrics], exporters: [debug]}
`

func TestPreview(t *testing.T) {
	f := newFixture(t)
	core := f.joinCollector("prod", coreComponents)
	contrib := f.joinCollector("prod", contribComponents)
	silent := f.joinCollector("prod", nil)
	staging := f.joinCollector("staging", contribComponents)
	v1, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "gw", Files: yamlConfig(gatewayV1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "gw-prod", ConfigName: "gw", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	preview := func(ch steward.Change) *steward.Preview {
		t.Helper()
		p, err := f.svc.Preview(f.ctx, ch, steward.PreviewOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("new config version lacking a component on one agent is blocked", func(t *testing.T) {
		p := preview(steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)}})
		if p.Matched != 3 || p.Changed != 3 || !p.Blocked || p.Missing != 1 || p.Unchecked != 1 {
			t.Fatalf("matched %d changed %d blocked %v missing %d unchecked %d; want 3 3 true 1 1", p.Matched, p.Changed, p.Blocked, p.Missing, p.Unchecked)
		}
		if got := p.MissingAgents[0]; got.ID != core.id || !slices.Equal(got.Missing, []steward.Component{{Kind: "connectors", ID: "spanmetrics"}}) {
			t.Errorf("missing agents = %+v, want %s lacking connector spanmetrics", got, core.id)
		}
		if len(p.Findings) != 0 {
			t.Errorf("findings = %v, want none", p.Findings)
		}
		if len(p.Agents) != 3 {
			t.Fatalf("agents page = %d entries, want 3", len(p.Agents))
		}
		for _, a := range p.Agents {
			if bytes.Equal(a.CurrentHash, a.DesiredHash) || string(a.Desired["gw"].Body) != gatewayV2 {
				t.Errorf("agent %s: current %x desired %x body %q", a.ID, a.CurrentHash, a.DesiredHash, a.Desired["gw"].Body)
			}
		}
		ids := []steward.InstanceUID{p.Agents[0].ID, p.Agents[1].ID, p.Agents[2].ID}
		for _, want := range []steward.InstanceUID{core.id, contrib.id, silent.id} {
			if !slices.Contains(ids, want) {
				t.Errorf("agents page %v lacks %s", ids, want)
			}
		}
		if staging.id == ids[0] || staging.id == ids[1] || staging.id == ids[2] {
			t.Error("a staging agent is in the preview of a prod-only change")
		}
	})

	t.Run("paging", func(t *testing.T) {
		p, err := f.svc.Preview(f.ctx, steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)}}, steward.PreviewOptions{Offset: 1, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if p.Changed != 3 || len(p.Agents) != 1 {
			t.Fatalf("changed %d, page %d; want 3 and 1", p.Changed, len(p.Agents))
		}
	})

	t.Run("identical content changes nothing", func(t *testing.T) {
		p := preview(steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV1)}})
		if p.Matched != 3 || p.Changed != 0 || p.Blocked || len(p.Agents) != 0 {
			t.Fatalf("matched %d changed %d blocked %v agents %d; want 3 0 false 0", p.Matched, p.Changed, p.Blocked, len(p.Agents))
		}
	})

	t.Run("a config no agent gets: structure is a warning, syntax an error", func(t *testing.T) {
		p := preview(steward.Change{Config: &steward.Config{Name: "unassigned", Files: yamlConfig("receivers: {otlp: {}}\nexporters: {debug: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [kafka]}\n")}})
		if p.Matched != 0 || p.Blocked || len(p.Findings) != 2 || p.Findings[1].Line != 5 || p.Findings[1].Severity != steward.SeverityWarning {
			t.Fatalf("matched %d blocked %v findings %v; want 0, false, two warnings (unused exporter, undefined kafka at line 5)", p.Matched, p.Blocked, p.Findings)
		}
		p = preview(steward.Change{Config: &steward.Config{Name: "unassigned", Files: yamlConfig("receivers: [otlp\n")}})
		if !p.Blocked || len(p.Findings) != 1 || p.Findings[0].Rule != steward.RuleSyntax {
			t.Fatalf("syntax error: blocked %v findings %v", p.Blocked, p.Findings)
		}
	})

	t.Run("structural error in the config agents would get blocks", func(t *testing.T) {
		p := preview(steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig("receivers: {otlp: {}}\nexporters: {debug: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [kafka]}\n")}})
		if p.Changed != 3 || !p.Blocked || len(p.Findings) != 2 || p.Findings[1].Line != 5 || p.Findings[1].File != "gw" || p.Findings[1].Rule != steward.RuleStructure || p.Findings[1].Severity != steward.SeverityError {
			t.Fatalf("changed %d blocked %v findings %v; want 3, true, the error at gw:5", p.Changed, p.Blocked, p.Findings)
		}
	})

	t.Run("new assignment reaches the agents its selector matches", func(t *testing.T) {
		p := preview(steward.Change{Assignment: &steward.Assignment{ConfigName: "gw", Selector: "env=staging"}})
		if p.Matched != 1 || p.Changed != 1 || p.Agents[0].ID != staging.id || p.Blocked {
			t.Fatalf("matched %d changed %d blocked %v; want 1 1 false", p.Matched, p.Changed, p.Blocked)
		}
		if p := preview(steward.Change{Assignment: &steward.Assignment{ConfigName: "gw", Selector: "env in (prod,staging)"}}); p.Matched != 4 {
			t.Errorf("env in (prod,staging) matched %d, want 4", p.Matched)
		}
	})

	t.Run("replacing an assignment reaches the agents it leaves", func(t *testing.T) {
		p := preview(steward.Change{Assignment: &steward.Assignment{Name: "gw-prod", ConfigName: "gw", Selector: "env=staging"}})
		if p.Matched != 4 || p.Changed != 4 {
			t.Fatalf("matched %d changed %d; want 4 4 (3 lose it, 1 gains it)", p.Matched, p.Changed)
		}
		for _, a := range p.Agents {
			if a.ID != staging.id && len(a.Desired) != 0 {
				t.Errorf("agent %s leaving the assignment would get %v", a.ID, a.Desired)
			}
		}
	})

	t.Run("rollout stage reaches only its stage", func(t *testing.T) {
		v2, err := f.store.PutConfig(f.ctx, &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.svc.SetAgentLabels(f.ctx, contrib.id, map[string]string{"ring": "canary"}); err != nil {
			t.Fatal(err)
		}
		// The store write above is not yet in the desired state; the
		// assignment follows latest, so pin it to v1 first.
		if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "gw-prod", ConfigName: "gw", Version: v1.Version, Selector: "env=prod"}); err != nil {
			t.Fatal(err)
		}
		r := &steward.Rollout{Name: "spanmetrics", Assignment: "gw-prod", ToVersion: v2.Version,
			Stages: []steward.RolloutStage{{Selector: "ring=canary"}, {Percent: 100}}}
		p := preview(steward.Change{Rollout: r})
		// Stage 0 changes the canary only, but the rollout is validated
		// over every agent it will reach: core, in the last stage, lacks
		// the connector.
		if p.Matched != 3 || p.Changed != 1 || p.Agents[0].ID != contrib.id || !p.Blocked || p.Missing != 1 || p.MissingAgents[0].ID != core.id {
			t.Fatalf("stage 0: matched %d changed %d blocked %v missing %d; want 3 1 true 1", p.Matched, p.Changed, p.Blocked, p.Missing)
		}
		r.Stages = r.Stages[:1]
		if p := preview(steward.Change{Rollout: r}); p.Blocked || p.Changed != 1 {
			t.Fatalf("canary-only rollout: changed %d blocked %v; want 1 false", p.Changed, p.Blocked)
		}
		r.Stages = append(r.Stages, steward.RolloutStage{Percent: 100})
		r.Stage = 1
		if p := preview(steward.Change{Rollout: r}); p.Changed != 3 || !p.Blocked || p.Missing != 1 {
			t.Fatalf("stage 1: changed %d blocked %v missing %d; want 3 true 1", p.Changed, p.Blocked, p.Missing)
		}
	})

	t.Run("bad changes", func(t *testing.T) {
		for _, ch := range []steward.Change{
			{},
			{Config: &steward.Config{Name: "x", Files: yamlConfig("a: 1\n")}, Assignment: &steward.Assignment{ConfigName: "x", Selector: "a=b"}},
			{Assignment: &steward.Assignment{ConfigName: "nope", Selector: "a=b"}},
			{Rollout: &steward.Rollout{Assignment: "gw-prod", ToVersion: 1, Stages: []steward.RolloutStage{{Percent: 10}}, Stage: 3}},
		} {
			if _, err := f.svc.Preview(f.ctx, ch, steward.PreviewOptions{}); err == nil {
				t.Errorf("Preview(%+v) succeeded", ch)
			}
		}
	})
}

// A preview changes nothing: no config version, nothing pushed.
func TestPreviewChangesNothing(t *testing.T) {
	f := newFixture(t)
	a := f.joinCollector("prod", coreComponents)
	if _, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "gw", Files: yamlConfig(gatewayV1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "gw", ConfigName: "gw", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	pushed := len(a.conn.pushed())
	if _, err := f.svc.Preview(f.ctx, steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)}}, steward.PreviewOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Preview(f.ctx, steward.Change{Assignment: &steward.Assignment{Name: "other", ConfigName: "gw", Selector: "env=prod", Priority: 5}}, steward.PreviewOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := len(a.conn.pushed()); got != pushed {
		t.Errorf("previews pushed %d messages", got-pushed)
	}
	if hist, _ := f.svc.ConfigHistory(f.ctx, "gw"); len(hist) != 1 {
		t.Errorf("config versions = %d after previews, want 1", len(hist))
	}
	if as, _ := f.svc.Assignments(f.ctx); len(as) != 1 {
		t.Errorf("assignments = %d after previews, want 1", len(as))
	}
}

// A preview weighs the agents this replica holds from their sessions and
// reads the rest: agents that left, agents online on another replica. It
// counts, checks and lists all of them alike.
func TestPreviewWeighsHeldAndStoredAgents(t *testing.T) {
	f := newFixture(t)
	core := f.joinCollector("prod", coreComponents)
	contrib := f.joinCollector("prod", contribComponents)
	left := f.joinCollector("prod", contribComponents)
	f.joinCollector("staging", coreComponents)
	stored := func(online bool, replica string, kinds map[string][]string) steward.InstanceUID {
		a := &steward.Agent{ID: steward.NewInstanceUID(), Online: online, Replica: replica,
			Capabilities:        steward.AgentAcceptsRemoteConfig | steward.AgentReportsAvailableComponents,
			Description:         &steward.AgentDescription{NonIdentifyingAttributes: []steward.KeyValue{{Key: "env", Value: "prod"}, {Key: "host.name", Value: "far"}}},
			AvailableComponents: stewardComponents(kinds)}
		if err := f.store.PutAgent(f.ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	remote := stored(true, "r2", coreComponents)
	gone := stored(false, "r1", contribComponents)
	if _, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "gw", Files: yamlConfig(gatewayV1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "gw-prod", ConfigName: "gw", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	left.conn.Close()
	eventually(t, "the agent that left to be offline", func() bool {
		a, err := f.svc.Agent(f.ctx, left.id)
		return err == nil && !a.Online
	})

	p, err := f.svc.Preview(f.ctx, steward.Change{Config: &steward.Config{Name: "gw", Files: yamlConfig(gatewayV2)}}, steward.PreviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Matched != 5 || p.Changed != 5 || p.Missing != 2 || p.Unchecked != 0 || !p.Blocked {
		t.Fatalf("matched %d changed %d missing %d unchecked %d blocked %v; want 5 5 2 0 true", p.Matched, p.Changed, p.Missing, p.Unchecked, p.Blocked)
	}
	var lacking []steward.InstanceUID
	for _, m := range p.MissingAgents {
		lacking = append(lacking, m.ID)
		if m.ID == remote && m.Name != "far" || m.ID == core.id && m.Name != "otelcol" {
			t.Errorf("missing agent %s named %q", m.ID, m.Name)
		}
	}
	if len(lacking) != 2 || !slices.Contains(lacking, core.id) || !slices.Contains(lacking, remote) {
		t.Errorf("agents lacking components = %v, want %s and %s", lacking, core.id, remote)
	}
	online := map[steward.InstanceUID]bool{core.id: true, contrib.id: true, left.id: false, remote: true, gone: false}
	for _, a := range p.Agents {
		want, ok := online[a.ID]
		if !ok || a.Online != want || string(a.Desired["gw"].Body) != gatewayV2 {
			t.Errorf("listed %s (%s): online %v, desired %q", a.ID, a.Name, a.Online, a.Desired["gw"].Body)
		}
		delete(online, a.ID)
	}
	if len(online) != 0 {
		t.Errorf("not listed: %v", online)
	}
	if held := p.Agents[slices.IndexFunc(p.Agents, func(a *steward.PreviewAgent) bool { return a.ID == contrib.id })]; held.Name != "otelcol" {
		t.Errorf("a held agent is listed without what is stored of it: %+v", held)
	}
}
