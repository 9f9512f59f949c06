package uitest

import (
	"context"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

// coreComponents is what a core collector build reports; contribComponents
// adds connectors.
var (
	coreComponents = map[string][]string{
		"receivers": {"otlp", "nop"}, "processors": {"batch", "memory_limiter"},
		"exporters": {"debug", "otlp", "otlphttp"}, "extensions": {"health_check", "opamp"},
	}
	contribComponents = map[string][]string{
		"receivers": {"otlp", "nop", "filelog"}, "processors": {"batch", "memory_limiter"},
		"exporters": {"debug", "otlp", "otlphttp"}, "extensions": {"health_check", "opamp"},
		"connectors": {"count", "spanmetrics"},
	}
)

// spanCounting adds the count connector to initialCollectorConfig.
const spanCounting = `receivers:
  otlp:
    protocols:
      grpc: {}
connectors:
  count: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug, count]
    metrics:
      receivers: [count]
      exporters: [debug]
`

// The new-assignment dialog counts the agents its selector matches while
// it is typed, says when a selector is malformed, and the list then shows
// how many agents the assignment matches and how many applied it.
func TestAssignmentMatchCount(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	edge := startAgent(t, s.opampURL, agentOptions{name: "otelcol-agent", version: "0.149.0", host: "edge-1"})
	gw := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.149.0", host: "gw-1"})
	for _, a := range []*testAgent{edge, gw} {
		waitAgent(t, s, a.id, "online", func(a *steward.Agent) bool { return a.Online && a.EffectiveConfig != nil })
	}
	if _, err := s.cp.PutConfig(context.Background(), &steward.Config{Name: "pipeline", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	p := b.newPage(t, s.base, "light")
	p.goTo("/assignments")
	login(t, p)
	p.click(`[data-testid="assignment-new"]`)
	p.typeInto(`[data-testid="assignment-name"]`, "edge")
	count := `document.querySelector('[data-testid="assignment-match-count"]')`
	p.typeInto(`[data-testid="assignment-selector"]`, "service.name=otelcol-agent")
	p.waitFor(count+`.dataset.matched === '1' && `+count+`.innerText.includes('Matches 1 agent; 1 would change.')`, "1 agent matched")
	p.typeInto(`[data-testid="assignment-selector"]`, "deployment.environment=production")
	p.waitFor(count+`.dataset.matched === '2'`, "2 agents matched")
	p.typeInto(`[data-testid="assignment-selector"]`, "service.name in (otelcol-agent")
	p.waitFor(count+`.classList.contains('error-text') && `+count+`.innerText.includes('selector')`, "the malformed selector explained")
	p.typeInto(`[data-testid="assignment-selector"]`, "service.name=nothing-runs-this")
	p.waitFor(count+`.dataset.matched === '0'`, "no agent matched")
	p.typeInto(`[data-testid="assignment-selector"]`, "service.name=otelcol-agent")
	p.waitFor(count+`.dataset.matched === '1'`, "1 agent matched again")
	p.screenshot("assignment-match-count")
	p.click(`[data-testid="assignment-dialog-submit"]`)
	row := `[data-testid="assignment-row"][data-name="edge"]`
	p.waitFor(sel(row+` [data-testid="assignment-matched"][data-count="1"]`), "the matched count in the list")
	p.waitFor(sel(row+` [data-testid="assignment-applied"][data-count="1"]`), "the applied count once the agent applied it")
	p.waitFor(sel(row+` [data-testid="assignment-failed"][data-count="0"]`), "no failure")
	var href string
	p.js(`document.querySelector('`+row+` [data-testid="assignment-matched"]').getAttribute('href')`, &href)
	if href != "/agents?selector=service.name%3Dotelcol-agent" {
		t.Errorf("matched count links to %q", href)
	}
	noJSErrors(t, p)
}

// Saving a new version opens a review: the diff against the current
// version, the validation findings and the agents affected. A config
// defining a component some agents lack is blocked there, naming those
// agents; only an explicit override saves it.
func TestConfigReviewBlocksMissingComponent(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	edge := startAgent(t, s.opampURL, agentOptions{name: "otelcol-agent", version: "0.149.0", host: "edge-1", components: coreComponents})
	gw := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.149.0", host: "gw-1", components: contribComponents})
	for _, a := range []*testAgent{edge, gw} {
		waitAgent(t, s, a.id, "its available components", func(a *steward.Agent) bool {
			return a.Online && a.AvailableComponents != nil && len(a.AvailableComponents.Components) > 0
		})
	}
	ctx := context.Background()
	if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "pipeline", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "production", ConfigName: "pipeline", Selector: "deployment.environment=production"}); err != nil {
		t.Fatal(err)
	}
	p := b.newPage(t, s.base, "light")
	p.goTo("/configs/pipeline?tab=edit")
	login(t, p)
	p.waitFor(sel(`[data-testid="editor-body"]`), "the editor")
	p.setValue(`[data-testid="editor-body"]`, spanCounting)
	p.typeInto(`[data-testid="editor-comment"]`, "Count spans")
	p.click(`[data-testid="editor-save"]`)
	dlg := `[data-testid="config-review-dialog"] `
	p.waitFor(sel(dlg+`[data-testid="review-blocked"]`), "the review, blocked")
	var missing []string
	p.js(`[...document.querySelectorAll('`+dlg+`[data-testid="review-missing-agent"]')].map(e => e.dataset.agentId + ' ' + e.innerText)`, &missing)
	if len(missing) != 1 || !strings.HasPrefix(missing[0], edge.id.String()+" ") || !strings.Contains(missing[0], "otelcol-agent") || !strings.Contains(missing[0], "connector count") {
		t.Errorf("agents lacking components: %q, want only %s (otelcol-agent) lacking connector count", missing, edge.id)
	}
	if got := p.text(dlg + `[data-testid="review-affected"]`); !strings.Contains(got, "2 agents would get pipeline v2") {
		t.Errorf("affected: %q", got)
	}
	var adds []string
	p.js(`[...document.querySelectorAll('`+dlg+`[data-testid="diff-add"] td.txt')].map(e => e.innerText)`, &adds)
	if !strings.Contains(strings.Join(adds, "\n"), "count: {}") {
		t.Errorf("the review's diff against v1 lacks the connector: %q", adds)
	}
	var disabled bool
	p.js(`document.querySelector('[data-testid="config-review-dialog-submit"]').disabled`, &disabled)
	if !disabled {
		t.Error("the confirm button of a blocked review is enabled")
	}
	p.screenshot("config-review-blocked")
	// Nothing was saved, and cancelling keeps it so.
	p.click(`[data-testid="config-review-dialog-cancel"]`)
	p.waitFor(`!document.querySelector('[data-testid="config-review-dialog"]')`, "the review closed")
	if h, err := s.cp.ConfigHistory(ctx, "pipeline"); err != nil || len(h) != 1 {
		t.Fatalf("versions after a blocked review: %d %v", len(h), err)
	}

	// Overriding, explicitly, saves it.
	p.click(`[data-testid="editor-save"]`)
	p.waitFor(sel(dlg+`[data-testid="review-override"]`), "the review again")
	p.click(dlg + `[data-testid="review-override"]`)
	p.waitFor(`!document.querySelector('[data-testid="config-review-dialog-submit"]').disabled`, "confirm enabled by the override")
	p.click(`[data-testid="config-review-dialog-submit"]`)
	p.waitFor(`!document.querySelector('[data-testid="config-review-dialog"]')`, "the review closed after confirming")
	if c, err := s.cp.Config(ctx, "pipeline", 0); err != nil || c.Version != 2 || string(c.Files[""].Body) != spanCounting {
		t.Fatalf("latest after the override: %+v %v", c, err)
	}
	entries, err := s.cp.Audit(ctx, steward.AuditFilter{Action: "validation.override"})
	if err != nil || len(entries) != 1 {
		t.Errorf("override audit entries: %d %v", len(entries), err)
	}
	noJSErrors(t, p)
}

// "Start a staged rollout" in the review pins the assignments that follow
// the latest version to the current one, saves the new version and starts
// a rollout of each in the stages typed; no agent gets the new version
// before its stage.
func TestConfigReviewStagedRollout(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	gw := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.149.0", host: "gw-1", components: contribComponents})
	waitAgent(t, s, gw.id, "its available components", func(a *steward.Agent) bool { return a.Online && a.AvailableComponents != nil })
	ctx := context.Background()
	if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "pipeline", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "production", ConfigName: "pipeline", Selector: "deployment.environment=production"}); err != nil {
		t.Fatal(err)
	}
	p := b.newPage(t, s.base, "light")
	p.goTo("/configs/pipeline?tab=edit")
	login(t, p)
	p.waitFor(sel(`[data-testid="editor-body"]`), "the editor")
	p.setValue(`[data-testid="editor-body"]`, spanCounting)
	p.click(`[data-testid="editor-save"]`)
	dlg := `[data-testid="config-review-dialog"] `
	p.waitFor(sel(dlg+`[data-testid="review-affected"][data-changed="1"]`), "the review: one agent affected")
	if p.text(dlg+`[data-testid="review-blocked"]`) != "" {
		t.Fatal("a config every agent has the components for is blocked")
	}
	p.click(dlg + `[data-testid="review-mode-rollout"]`)
	p.setValue(dlg+`[data-testid="review-stages"]`, "host.name=gw-1, 100%")
	p.click(`[data-testid="config-review-dialog-submit"]`)
	p.waitFor(`!document.querySelector('[data-testid="config-review-dialog"]')`, "the review closed")
	a, err := s.cp.Assignment(ctx, "production")
	if err != nil || a.Version != 1 {
		t.Fatalf("assignment after a staged save: %+v %v (want pinned to v1)", a, err)
	}
	r, err := s.cp.Rollout(ctx, "production-v2")
	if err != nil {
		t.Fatal(err)
	}
	if r.FromVersion != 1 || r.ToVersion != 2 || len(r.Stages) != 2 || r.Stages[0].Selector != "host.name=gw-1" || r.Stages[1].Percent != 100 {
		t.Errorf("rollout: %+v", r)
	}
	noJSErrors(t, p)
}
