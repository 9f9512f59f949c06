package uitest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// waitAgent polls the control plane until cond holds for the agent.
func waitAgent(t *testing.T, s *stack, id steward.InstanceUID, what string, cond func(*steward.Agent) bool) *steward.Agent {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		a, err := s.cp.Agent(context.Background(), id)
		if err == nil && cond(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s: timed out waiting for %s (last error %v)", id, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func login(t *testing.T, p *page) {
	t.Helper()
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form")
	p.typeInto(`[data-testid="login-password"]`, adminPassword)
	p.press("Enter")
	p.waitFor(`!document.querySelector('[data-testid="login-form"]')`, "the sign-in form to go away")
}

func noJSErrors(t *testing.T, p *page) {
	t.Helper()
	if errs := p.jsErrors(); len(errs) > 0 {
		t.Errorf("the page logged script errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestConsoleEndToEnd walks through the console as an operator would: sign
// in, see the fleet, open an agent, write two versions of a configuration,
// compare them, push the configuration to the agent and watch its remote
// config status turn APPLIED without reloading the page.
func TestConsoleEndToEnd(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-eu-west-1a", hold: true})
	waitAgent(t, s, agent.id, "online with health", func(a *steward.Agent) bool { return a.Online && a.Health != nil && a.EffectiveConfig != nil })
	p := b.newPage(t, s.base, "light")

	// Signed out, every route leads to the sign-in form; a wrong password
	// is refused with a message.
	p.goTo("/agents/" + agent.id.String())
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form")
	p.waitFor("location.pathname === '/login'", "the /login URL")
	p.screenshot("login")
	p.typeInto(`[data-testid="login-password"]`, "wrong")
	p.press("Enter")
	p.waitFor(`document.querySelector('[data-testid="login-error"]') && !document.querySelector('[data-testid="login-error"]').hidden`, "the wrong-password message")
	if got := p.text(`[data-testid="login-error"]`); !strings.Contains(got, "Wrong user name or password") {
		t.Errorf("login error %q", got)
	}
	// The right one returns to the page asked for.
	login(t, p)
	p.waitFor(`location.pathname === `+jsString("/agents/"+agent.id.String()), "the agent page after sign-in")
	p.waitFor(`document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`, "the agent's name")

	// Overview: counts, by type, by version, live indicator.
	p.click(`[data-testid="nav-overview"]`)
	p.waitFor(`document.querySelector('[data-testid="stat-online-value"]')?.innerText === '1'`, "1 agent online")
	p.waitFor(`document.querySelector('[data-testid="live"]')?.dataset.state === 'live'`, "the event stream to connect")
	if got := p.text(`[data-testid="stat-total-value"]`); got != "1" {
		t.Errorf("total %q, want 1", got)
	}
	if got := p.text(`[data-testid="stat-healthy-value"]`); got != "1" {
		t.Errorf("healthy %q, want 1", got)
	}
	if got := p.text(`[data-testid="by-type"]`); !strings.Contains(got, "otelcol-gateway") {
		t.Errorf("by type %q lacks otelcol-gateway", got)
	}
	if got := p.text(`[data-testid="by-version"]`); !strings.Contains(got, "0.120.0") {
		t.Errorf("by version %q lacks 0.120.0", got)
	}

	// A second agent connecting shows up live on the overview.
	p.js("window.__noReload = 'overview'", nil)
	second := startAgent(t, s.opampURL, agentOptions{name: "otelcol-agent", version: "0.119.0", host: "node-7"})
	p.waitFor(`document.querySelector('[data-testid="stat-online-value"]')?.innerText === '2'`, "2 agents online, live")
	p.waitFor(`document.querySelector('[data-testid="by-version"]')?.innerText.includes('0.119.0')`, "the second version, live")
	p.waitFor(`document.querySelector('[data-testid="activity"]')?.innerText.includes('agent.connected')`, "the connection in the activity feed")
	var marker string
	p.js("window.__noReload", &marker)
	if marker != "overview" {
		t.Fatalf("the overview reloaded the page to update (marker %q)", marker)
	}
	p.screenshot("overview")

	// Agent list: both agents; search narrows; a bad selector explains
	// itself; a good selector filters; sorting reorders.
	p.click(`[data-testid="nav-agents"]`)
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2`, "2 rows")
	p.typeInto(`[data-testid="agents-search"]`, "gateway")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 1`, "the search to keep one row")
	p.waitFor(`location.search.includes('q=gateway')`, "the search in the URL")
	p.typeInto(`[data-testid="agents-search"]`, "")
	p.press("Enter")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2`, "2 rows again")
	p.typeInto(`[data-testid="agents-selector"]`, "service.version in (0.119.0")
	p.press("Enter")
	p.waitFor(`document.querySelector('[data-testid="agents-selector-error"]')?.innerText.includes('selector')`, "the selector error")
	p.typeInto(`[data-testid="agents-selector"]`, "service.version=0.119.0")
	p.press("Enter")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 1 && document.querySelector('[data-testid="agent-row"]').dataset.agentId === `+jsString(second.id.String()), "the selector to keep the second agent")
	if got := p.text(`[data-testid="agents-selector-error"]`); got != "" {
		t.Errorf("selector error %q left after a valid selector", got)
	}
	p.typeInto(`[data-testid="agents-selector"]`, "")
	p.press("Enter")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2`, "2 rows again")
	p.click(`[data-testid="sort-name"]`)
	p.waitFor(`[...document.querySelectorAll('[data-testid="agent-link"]')].map(a => a.innerText).join() === 'otelcol-agent,otelcol-gateway'`, "ascending by name")
	p.click(`[data-testid="sort-name"]`)
	p.waitFor(`[...document.querySelectorAll('[data-testid="agent-link"]')].map(a => a.innerText).join() === 'otelcol-gateway,otelcol-agent'`, "descending by name")
	p.screenshot("agents")

	// Configurations: create v1, save v2 in the editor, compare them.
	p.click(`[data-testid="nav-configs"]`)
	p.click(`[data-testid="config-new"]`)
	p.typeInto(`[data-testid="new-config-name"]`, "gateway")
	p.setValue(`[data-testid="new-config-body"]`, "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n")
	p.typeInto(`[data-testid="new-config-comment"]`, "Initial gateway pipeline")
	p.click(`[data-testid="new-config-dialog-submit"]`)
	p.waitFor(`location.pathname === '/configs/gateway'`, "the new config's page")
	p.waitFor(`document.querySelectorAll('[data-testid="config-version"]').length === 1`, "v1 listed")
	p.click(`[data-testid="config-tab-edit"]`)
	p.waitFor(sel(`[data-testid="editor-body"]`), "the editor")
	var body string
	p.js(`document.querySelector('[data-testid="editor-body"]').value`, &body)
	if !strings.Contains(body, "exporters: [debug]") {
		t.Fatalf("the editor did not load v1: %q", body)
	}
	v2 := strings.Replace(body, "exporters:\n  debug: {}\n", "exporters:\n  debug: {}\n  otlphttp:\n    endpoint: https://traces.example.internal:4318\n", 1)
	v2 = strings.Replace(v2, "exporters: [debug]", "exporters: [debug, otlphttp]", 1)
	p.setValue(`[data-testid="editor-body"]`, v2)
	p.typeInto(`[data-testid="editor-comment"]`, "Export traces to the central backend")
	p.click(`[data-testid="editor-save"]`)
	// Saving opens the review; nothing is saved until it is confirmed.
	p.waitFor(sel(`[data-testid="config-review-dialog"] [data-testid="review-affected"]`), "the review of v2")
	p.click(`[data-testid="config-review-dialog-submit"]`)
	p.waitFor(`document.querySelectorAll('[data-testid="config-version"]').length === 2`, "v2 listed")
	if c, err := s.cp.Config(context.Background(), "gateway", 0); err != nil || c.Version != 2 || string(c.Files[""].Body) != v2 {
		t.Fatalf("stored latest: %+v, %v", c, err)
	}
	p.screenshot("config-versions")
	p.click(`[data-testid="version-diff"]`)
	p.waitFor(sel(`[data-testid="diff-add"]`), "the rendered diff")
	var adds, dels []string
	p.js(`[...document.querySelectorAll('[data-testid="diff-add"] td.txt')].map(e => e.innerText)`, &adds)
	p.js(`[...document.querySelectorAll('[data-testid="diff-del"] td.txt')].map(e => e.innerText)`, &dels)
	if strings.Join(adds, "\n") != "  otlphttp:\n    endpoint: https://traces.example.internal:4318\n      exporters: [debug, otlphttp]" ||
		strings.Join(dels, "\n") != "      exporters: [debug]" {
		t.Errorf("diff lines: added %q, removed %q", adds, dels)
	}
	var colours struct{ Add, Del, Ctx string }
	p.js(`(() => { const bg = s => getComputedStyle(document.querySelector(s)).backgroundColor; return {Add: bg('[data-testid="diff-add"]'), Del: bg('[data-testid="diff-del"]'), Ctx: bg('table.diff tr.ctx')}; })()`, &colours)
	if colours.Add == colours.Ctx || colours.Del == colours.Ctx || colours.Add == colours.Del {
		t.Errorf("added, removed and context lines are not coloured apart: %+v", colours)
	}
	if got := p.text(`[data-testid="diff-stat"]`); got != "+3 −1" {
		t.Errorf("diff stat %q, want +3 −1", got)
	}
	p.screenshot("config-diff")

	// Agent page: what the agent reported.
	p.goTo("/agents/" + agent.id.String())
	p.waitFor(`document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`, "the agent page")
	for _, want := range []string{"service.version", "0.120.0", "gw-eu-west-1a", "deployment.environment"} {
		if got := p.text(`[data-testid="tab-panel-overview"]`); !strings.Contains(got, want) {
			t.Errorf("overview tab lacks %q", want)
		}
	}
	if got := p.text(`[data-testid="capabilities"]`); !strings.Contains(got, "AcceptsRemoteConfig") {
		t.Errorf("capabilities %q", got)
	}
	p.click(`[data-testid="tab-health"]`)
	p.waitFor(`document.querySelectorAll('[data-testid="health-node"]').length === 5`, "the health tree: agent, 2 components, 2 sub-components")
	p.waitFor(sel(`[data-testid="health-node"][data-name="receiver:otlp"]`), "receiver:otlp in the tree")
	p.screenshot("agent-health")
	p.click(`[data-testid="tab-config"]`)
	p.waitFor(`document.querySelector('[data-testid="effective-config"]')?.innerText.includes('exporters: [debug]')`, "the effective config")

	// Labels: add one and save.
	p.click(`[data-testid="tab-overview"]`)
	p.click(`[data-testid="label-add"]`)
	p.typeInto(`[data-testid="label-key"]`, "team")
	p.typeInto(`[data-testid="label-value"]`, "observability")
	p.click(`[data-testid="labels-save"]`)
	waitAgent(t, s, agent.id, "label team=observability", func(a *steward.Agent) bool { return a.Labels["team"] == "observability" })

	// Push the config; the agent holds it in APPLYING until released, so the
	// change to APPLIED can only reach the page through the event stream.
	p.js("window.__noReload = 'agent'", nil)
	p.click(`[data-testid="push-config"]`)
	p.waitFor(`document.querySelector('[data-testid="push-config-version"]')?.options.length === 3`, "the version list (latest, v2, v1)")
	p.setValue(`[data-testid="push-config-select"]`, "gateway")
	if got := p.text(`[data-testid="push-config-dialog"] h2`); got != "Push configuration" {
		t.Errorf("dialog title %q", got)
	}
	p.click(`[data-testid="push-config-dialog-submit"]`)
	p.waitFor(`!document.querySelector('[data-testid="push-config-dialog"]')`, "the dialog to close")
	rc := agent.waitOffer()
	if got := string(rc.GetConfig().GetConfigMap()["gateway"].GetBody()); got != v2 {
		t.Fatalf("the agent was offered %q, want v2", got)
	}
	p.waitFor(`document.querySelector('[data-testid="remote-config-status"]')?.innerText === 'APPLYING'`, "APPLYING, live")
	p.screenshot("agent-applying")
	agent.releaseApply()
	p.waitFor(`document.querySelector('[data-testid="remote-config-status"]')?.innerText === 'APPLIED'`, "APPLIED, live")
	p.js("window.__noReload", &marker)
	if marker != "agent" {
		t.Fatalf("the agent page reloaded to show the new status (marker %q)", marker)
	}
	p.click(`[data-testid="tab-config"]`)
	p.waitFor(`document.querySelector('[data-testid="effective-config"]')?.innerText.includes('otlphttp')`, "the new effective config")
	p.waitFor(`document.querySelector('[data-testid="desired-config"]')?.innerText.includes('otlphttp')`, "the desired config")
	p.waitFor(`document.querySelector('[data-testid="agent-assignments"]')?.innerText.includes('gateway')`, "the agent's assignment")
	p.screenshot("agent-config")
	p.click(`[data-testid="tab-events"]`)
	p.waitFor(sel(`[data-testid="agent-event"][data-type="agent.config_status"]`), "the config status event in the history")
	p.click(`[data-testid="tab-overview"]`)
	p.waitFor(`document.querySelector('[data-testid="remote-config-status"]')?.innerText === 'APPLIED'`, "APPLIED on the overview tab")
	p.screenshot("agent")

	// Assignments by label selector.
	p.click(`[data-testid="nav-assignments"]`)
	p.waitFor(`document.querySelectorAll('[data-testid="assignment-row"]').length === 1`, "the agent's assignment listed")
	p.click(`[data-testid="assignment-new"]`)
	p.typeInto(`[data-testid="assignment-name"]`, "edge-collectors")
	p.typeInto(`[data-testid="assignment-selector"]`, "service.name=otelcol-agent,deployment.environment=production")
	p.typeInto(`[data-testid="assignment-priority"]`, "10")
	p.click(`[data-testid="assignment-dialog-submit"]`)
	p.waitFor(`document.querySelectorAll('[data-testid="assignment-row"]').length === 2`, "the new assignment listed")
	second.waitOffer()
	waitAgent(t, s, second.id, "the selector assignment APPLIED", func(a *steward.Agent) bool {
		return a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied
	})
	p.screenshot("assignments")
	p.click(`[data-testid="assignment-row"][data-name="edge-collectors"] [data-testid="assignment-delete"]`)
	p.click(`[data-testid="assignment-delete-dialog-submit"]`)
	p.waitFor(`document.querySelectorAll('[data-testid="assignment-row"]').length === 1`, "the assignment deleted")
	if _, err := s.cp.Assignment(context.Background(), "edge-collectors"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("deleted assignment still there: %v", err)
	}

	// Signing out ends the session: the API answers 401 again.
	p.click(`[data-testid="logout"]`)
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form after sign-out")
	var status int
	p.js(`fetch('/api/v1/summary').then(r => r.status)`, &status)
	if status != 401 {
		t.Errorf("after sign-out the API answered %d, want 401", status)
	}
	noJSErrors(t, p)
}

// TestConsoleDarkScheme renders the main pages with prefers-color-scheme:
// dark and checks that the dark palette is in force.
func TestConsoleDarkScheme(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-eu-west-1a"})
	waitAgent(t, s, agent.id, "online", func(a *steward.Agent) bool { return a.Online && a.Health != nil })
	p := b.newPage(t, s.base, "dark")
	p.goTo("/")
	login(t, p)
	p.waitFor(`document.querySelector('[data-testid="stat-online-value"]')?.innerText === '1'`, "1 agent online")
	var bg string
	p.js(`getComputedStyle(document.body).backgroundColor`, &bg)
	var r, g, bl int
	if _, err := fmt.Sscanf(bg, "rgb(%d, %d, %d)", &r, &g, &bl); err != nil || r+g+bl > 3*60 {
		t.Errorf("dark scheme body background %q is not dark", bg)
	}
	p.screenshot("overview-dark")
	p.goTo("/agents/" + agent.id.String())
	p.waitFor(`document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`, "the agent page")
	p.screenshot("agent-dark")
	noJSErrors(t, p)
}

// TestConsoleKeyboard checks that the console is usable from the keyboard:
// the tabs of the agent page follow the arrow keys, and the sign-in form
// takes focus on its own.
func TestConsoleKeyboard(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1"})
	waitAgent(t, s, agent.id, "online", func(a *steward.Agent) bool { return a.Online })
	if _, err := s.cp.PutConfig(context.Background(), &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	p := b.newPage(t, s.base, "light")
	p.goTo("/agents/" + agent.id.String())
	p.waitFor(`document.activeElement?.dataset.testid === 'login-name'`, "focus in the user name field")
	login(t, p)
	p.waitFor(sel(`[data-testid="tab-overview"]`), "the tabs")
	// The modules arrived compressed and were decoded.
	var sizes struct{ Encoded, Decoded int }
	p.js(`(() => { const e = performance.getEntriesByType('resource').find(e => e.name.endsWith('/js/pages/agent.js')); return {Encoded: e.encodedBodySize, Decoded: e.decodedBodySize}; })()`, &sizes)
	if sizes.Encoded <= 0 || sizes.Encoded >= sizes.Decoded {
		t.Errorf("agent.js: %d bytes on the wire for %d decoded, want gzip", sizes.Encoded, sizes.Decoded)
	}
	p.js(`document.querySelector('[data-testid="tab-overview"]').focus()`, nil)
	p.press("ArrowRight")
	p.waitFor(`document.activeElement?.dataset.testid === 'tab-health' && document.activeElement.getAttribute('aria-selected') === 'true'`, "the Health tab selected and focused")
	p.waitFor(`!document.querySelector('[data-testid="tab-panel-health"]').hidden && document.querySelector('[data-testid="tab-panel-overview"]').hidden`, "the Health panel shown")
	p.press("ArrowLeft")
	p.waitFor(`document.activeElement?.dataset.testid === 'tab-overview'`, "back to Overview")
	// Every form control in the push dialog has a label.
	p.click(`[data-testid="push-config"]`)
	p.waitFor(`document.querySelector('dialog[open]') !== null`, "a dialog")
	var unlabelled []string
	p.js(`[...document.querySelectorAll('dialog[open] input, dialog[open] select, dialog[open] textarea')].filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML)`, &unlabelled)
	if len(unlabelled) > 0 {
		t.Errorf("controls without a label: %v", unlabelled)
	}
	p.press("Escape")
	p.waitFor(`document.querySelector('dialog[open]') === null`, "Escape to close the dialog")

	// Navigating moves focus to the new page's content.
	p.click(`[data-testid="nav-agents"]`)
	p.waitFor(`location.pathname === '/agents' && document.activeElement?.id === 'main'`, "focus on the content after navigating")

	// A configuration without assignments can be deleted.
	p.goTo("/configs/base")
	p.click(`[data-testid="config-delete"]`)
	p.click(`[data-testid="config-delete-dialog-submit"]`)
	p.waitFor(`location.pathname === '/configs' && document.querySelectorAll('[data-testid="config-link"]').length === 0`, "the empty configuration list")
	if _, err := s.cp.Config(context.Background(), "base", 0); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("deleted config: %v", err)
	}
	noJSErrors(t, p)
}

// TestConsoleAgentList covers the agent list's pagination and filters with
// live updates, an unhealthy agent's component tree, a configuration the
// agent fails to apply, and the restart command.
func TestConsoleAgentList(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	a1 := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1", packages: true})
	a2 := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-2", unhealthy: true})
	a3 := startAgent(t, s.opampURL, agentOptions{name: "otelcol-agent", version: "0.119.0", host: "node-3"})
	for _, a := range []*testAgent{a1, a2, a3} {
		waitAgent(t, s, a.id, "online with health", func(x *steward.Agent) bool { return x.Online && x.Health != nil })
	}
	p := b.newPage(t, s.base, "light")
	p.goTo("/agents?limit=2")
	login(t, p)
	rows := `document.querySelectorAll('[data-testid="agent-row"]').length`
	p.waitFor(rows+` === 2 && document.querySelector('[data-testid="agents-range"]').innerText === '1–2 of 3'`, "the first page of 2")
	p.click(`[data-testid="agents-next"]`)
	p.waitFor(rows+` === 1 && document.querySelector('[data-testid="agents-range"]').innerText === '3–3 of 3'`, "the second page")
	p.waitFor(`document.querySelector('[data-testid="agents-next"]').disabled && !document.querySelector('[data-testid="agents-prev"]').disabled`, "next disabled, previous enabled")
	p.waitFor(`location.search.includes('offset=2')`, "the offset in the URL")
	p.click(`[data-testid="agents-prev"]`)
	p.waitFor(rows+` === 2`, "the first page again")

	// Health filter.
	p.goTo("/agents?healthy=false")
	p.waitFor(rows+` === 1 && document.querySelector('[data-testid="agent-row"]').dataset.agentId === `+jsString(a2.id.String()), "only the unhealthy agent")
	if got := p.text(`[data-testid="agent-row"] [data-testid="agent-health"]`); got != "Unhealthy" {
		t.Errorf("health cell %q", got)
	}

	// Connection filter, updated live when an agent disconnects.
	p.setValue(`[data-testid="agents-health"]`, "")
	p.setValue(`[data-testid="agents-online"]`, "false")
	p.waitFor(`document.querySelector('[data-testid="agents-empty"]') !== null`, "no offline agent yet")
	p.js("window.__noReload = 'list'", nil)
	a3.stop()
	p.waitFor(rows+` === 1 && document.querySelector('[data-testid="agent-row"]').dataset.agentId === `+jsString(a3.id.String()), "the stopped agent listed as offline, live")
	if got := p.text(`[data-testid="agent-row"] [data-testid="agent-online"]`); got != "Offline" {
		t.Errorf("connection cell %q", got)
	}
	var marker string
	p.js("window.__noReload", &marker)
	if marker != "list" {
		t.Fatalf("the list reloaded the page (marker %q)", marker)
	}

	// An offline agent can be forgotten from its page.
	p.click(`[data-testid="agent-row"] [data-testid="agent-link"]`)
	p.waitFor(`location.pathname === `+jsString("/agents/"+a3.id.String()), "the offline agent's page")
	p.click(`[data-testid="forget"]`)
	p.click(`[data-testid="forget-dialog-submit"]`)
	p.waitFor(`location.pathname === '/agents'`, "back to the list")
	if _, err := s.cp.Agent(context.Background(), a3.id); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("forgotten agent: %v", err)
	}
	p.goTo("/agents/" + a1.id.String())
	p.waitFor(sel(`[data-testid="push-config"]`), "an online agent's page")
	var hidden bool
	p.js(`document.querySelector('[data-testid="forget"]').hidden`, &hidden)
	if !hidden {
		t.Error("Forget is offered for an online agent")
	}

	// The unhealthy agent's tree shows which component fails and why.
	p.goTo("/agents/" + a2.id.String() + "?tab=health")
	p.waitFor(sel(`[data-testid="health-node"][data-name="exporter:debug"]`), "the health tree")
	if got := p.text(`[data-testid="health-node"][data-name="exporter:debug"]`); !strings.Contains(got, "unhealthy") || !strings.Contains(got, "connection refused") {
		t.Errorf("failing exporter node: %q", got)
	}
	p.screenshot("agent-unhealthy")

	// Packages as reported.
	p.goTo("/agents/" + a1.id.String() + "?tab=packages")
	p.waitFor(`document.querySelectorAll('[data-testid="packages"] tbody tr').length === 2`, "2 packages")
	if got := p.text(`[data-testid="packages"]`); !strings.Contains(got, "INSTALL_FAILED") || !strings.Contains(got, "checksum mismatch") || !strings.Contains(got, "INSTALLED") {
		t.Errorf("packages table: %q", got)
	}

	// A configuration the agent cannot apply: FAILED with its message.
	if _, err := s.cp.PutConfig(context.Background(), &steward.Config{Name: "broken", Files: steward.ConfigMap{"": {Body: []byte(brokenConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	p.goTo("/agents/" + a1.id.String())
	p.click(`[data-testid="push-config"]`)
	p.waitFor(`document.querySelector('[data-testid="push-config-version"]')?.options.length >= 2`, "the push dialog")
	p.setValue(`[data-testid="push-config-select"]`, "broken")
	p.waitFor(`document.querySelector('[data-testid="push-config-name"]').value.endsWith('-broken')`, "the assignment name to follow the config")
	p.click(`[data-testid="push-config-dialog-submit"]`)
	p.waitFor(`document.querySelector('[data-testid="remote-config-status"]')?.innerText === 'FAILED'`, "FAILED, live")
	p.waitFor(`document.querySelector('[data-testid="remote-config-error"]')?.innerText.includes('unknown exporter type "otlpx"')`, "the agent's error message")
	p.screenshot("agent-failed")

	// Restart: confirm, and the agent receives the command.
	p.click(`[data-testid="restart"]`)
	p.click(`[data-testid="restart-dialog-submit"]`)
	select {
	case cmd := <-a1.commands:
		if cmd.GetType().String() != "CommandType_Restart" {
			t.Errorf("command %v, want Restart", cmd.GetType())
		}
	case <-time.After(waitTimeout):
		t.Fatal("the agent received no restart command")
	}
	p.waitFor(`[...document.querySelectorAll('[data-testid="toast"]')].some(e => e.innerText.includes('Restart command sent'))`, "the confirmation")
	noJSErrors(t, p)
}

// brokenConfig is well formed (Steward's validation passes it: the agent
// reports no available components to check against) but names an exporter
// type the agent's collector does not have, so the agent fails to apply it.
const brokenConfig = `receivers:
  otlp: {}
exporters:
  otlpx/central: {} # FAIL_ME
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [otlpx/central]}
`

// TestConsoleFleet runs a fleet of two dozen agents of several types,
// versions and states, and checks that the overview and the agent list add
// them up as they are (these are also the documentation's screenshots).
func TestConsoleFleet(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	type spec struct {
		name, version  string
		n              int
		unhealthy, bad int // how many of the n are unhealthy / fail configs
	}
	specs := []spec{
		{"otelcol-agent", "0.120.0", 8, 1, 1},
		{"otelcol-agent", "0.119.0", 6, 1, 0},
		{"otelcol-gateway", "0.120.0", 4, 1, 0},
		{"otelcol-gateway", "0.118.0", 2, 0, 0},
		{"otelcol-contrib", "0.119.0", 4, 0, 0},
	}
	var all []*testAgent
	for _, sp := range specs {
		for i := 0; i < sp.n; i++ {
			host := fmt.Sprintf("ip-10-0-%d-%d", len(all)/8+1, 10+len(all)*7%90)
			all = append(all, startAgent(t, s.opampURL, agentOptions{name: sp.name, version: sp.version, host: host,
				unhealthy: i < sp.unhealthy, failConfig: i >= sp.unhealthy && i < sp.unhealthy+sp.bad}))
		}
	}
	for _, a := range all {
		waitAgent(t, s, a.id, "online with health", func(x *steward.Agent) bool { return x.Online && x.Health != nil })
	}
	// Every otelcol-agent gets a config by selector; one of them fails it.
	ctx := context.Background()
	if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "node-agent", Comment: "Node-level collection", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "all-node-agents", ConfigName: "node-agent", Selector: "service.name=otelcol-agent"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range all[:14] {
		waitAgent(t, s, a.id, "config status", func(x *steward.Agent) bool {
			return x.RemoteConfigStatus != nil && (x.RemoteConfigStatus.Status == steward.RemoteConfigApplied || x.RemoteConfigStatus.Status == steward.RemoteConfigFailed)
		})
	}
	// Two contrib collectors go away.
	all[len(all)-1].stop()
	all[len(all)-2].stop()
	for _, a := range all[len(all)-2:] {
		waitAgent(t, s, a.id, "offline", func(x *steward.Agent) bool { return !x.Online })
	}

	p := b.newPage(t, s.base, "light")
	p.goTo("/")
	login(t, p)
	want := map[string]string{
		"stat-total-value": "24", "stat-online-value": "22", "stat-offline-value": "2",
		// The two offline collectors last reported healthy: their health is
		// unknown now, counted with the unhealthy.
		"stat-healthy-value": "19", "stat-unhealthy-value": "5", "stat-config-failed-value": "1",
	}
	for id, v := range want {
		p.waitFor(`document.querySelector('[data-testid="`+id+`"]')?.innerText === `+jsString(v), "%s = %s", id, v)
	}
	counts := func(testid string) map[string]string {
		var m map[string]string
		p.js(`Object.fromEntries([...document.querySelectorAll('[data-testid="`+testid+`-item"]')].map(li => [li.dataset.name, li.querySelector('.count').innerText]))`, &m)
		return m
	}
	if got, want := fmt.Sprint(counts("by-type")), fmt.Sprint(map[string]string{"otelcol-agent": "14", "otelcol-gateway": "6", "otelcol-contrib": "4"}); got != want {
		t.Errorf("by type %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(counts("by-version")), fmt.Sprint(map[string]string{"0.120.0": "12", "0.119.0": "10", "0.118.0": "2"}); got != want {
		t.Errorf("by version %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(counts("by-config-status")), fmt.Sprint(map[string]string{"APPLIED": "13", "FAILED": "1", "UNSET": "10"}); got != want {
		t.Errorf("by config status %s, want %s", got, want)
	}
	p.screenshot("fleet-overview")

	// A version on the overview links to the agents that run it.
	p.click(`[data-testid="by-version-item"][data-name="0.118.0"] a`)
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2`, "the 2 agents on 0.118.0")
	if got := p.text(`[data-testid="agents-count"]`); got != "2 agents" {
		t.Errorf("count %q", got)
	}
	p.goTo("/agents?limit=25")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 24`, "24 rows")
	p.click(`[data-testid="sort-version"]`)
	p.screenshot("fleet-agents")
	noJSErrors(t, p)
}

// TestConsoleSessionEnds checks that losing the session mid-use (cookies
// gone, as when it expires) leads to the sign-in form and, after signing in
// again, back to the page the user was going to.
func TestConsoleSessionEnds(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1"})
	waitAgent(t, s, agent.id, "online", func(a *steward.Agent) bool { return a.Online })
	p := b.newPage(t, s.base, "light")
	p.goTo("/")
	login(t, p)
	p.waitFor(`document.querySelector('[data-testid="stat-online-value"]')?.innerText === '1'`, "the overview")
	p.clearCookies()
	p.click(`[data-testid="nav-agents"]`)
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form after the session ended")
	p.waitFor(`location.pathname === '/login' && new URLSearchParams(location.search).get('next') === '/agents'`, "the way back in the URL")
	login(t, p)
	p.waitFor(`location.pathname === '/agents' && document.querySelectorAll('[data-testid="agent-row"]').length === 1`, "the agent list after signing in again")
	// State-changing requests carry the CSRF header from the new cookie.
	p.click(`[data-testid="agent-link"]`)
	p.click(`[data-testid="label-add"]`)
	p.typeInto(`[data-testid="label-key"]`, "env")
	p.typeInto(`[data-testid="label-value"]`, "prod")
	p.click(`[data-testid="labels-save"]`)
	waitAgent(t, s, agent.id, "label env=prod", func(a *steward.Agent) bool { return a.Labels["env"] == "prod" })
	noJSErrors(t, p)
}

// TestConsoleRollout starts a staged rollout from the console and follows
// it live: the first stage (one host by selector) waits while its agent is
// still applying; pause and resume work; then it completes and the
// assignment is pinned to the new version.
func TestConsoleRollout(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	ctx := context.Background()
	first := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1"})
	second := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-2"})
	seedGateways(t, s)
	for _, a := range []*testAgent{first, second} {
		a.waitOffer()
		waitAgent(t, s, a.id, "v1 APPLIED", func(x *steward.Agent) bool {
			return x.RemoteConfigStatus != nil && x.RemoteConfigStatus.Status == steward.RemoteConfigApplied
		})
	}
	// The first stage's agent holds the new version in APPLYING.
	first.mu.Lock()
	first.hold, first.release = true, make(chan struct{})
	first.mu.Unlock()

	p := b.newPage(t, s.base, "light")
	p.goTo("/rollouts")
	login(t, p)
	p.click(`[data-testid="rollout-new"]`)
	p.waitFor(`document.querySelector('[data-testid="rollout-to"]')?.options.length === 2`, "the versions of gw")
	p.setValue(`[data-testid="rollout-to"]`, "2")
	p.waitFor(`document.querySelector('[data-testid="rollout-name"]').value === 'gateways-v2'`, "the suggested name")
	p.setValue(`[data-testid="rollout-stages"]`, "host.name=gw-1\n100")
	p.click(`[data-testid="rollout-dialog-submit"]`)
	row := `[data-testid="rollout-row"][data-name="gateways-v2"]`
	p.waitFor(sel(row+`[data-state="running"]`), "the running rollout")
	if got := p.text(row + ` [data-testid="rollout-stage"]`); got != "1 of 2" {
		t.Errorf("stage %q, want 1 of 2", got)
	}
	first.waitOffer()
	p.waitFor(`document.querySelector('`+row+` [data-testid="rollout-progress"]')?.innerText.includes('1 pending')`, "the first stage pending, live")
	p.screenshot("rollout")

	p.click(row + ` [data-testid="rollout-pause"]`)
	p.waitFor(sel(row+`[data-state="paused"]`), "paused")
	p.click(row + ` [data-testid="rollout-resume"]`)
	p.waitFor(sel(row+`[data-state="running"]`), "running again")

	first.releaseApply()
	second.waitOffer()
	p.waitFor(sel(row+`[data-state="completed"]`), "completed, live")
	if a, err := s.cp.Assignment(ctx, "gateways"); err != nil || a.Version != 2 {
		t.Errorf("assignment after the rollout: %+v, %v", a, err)
	}
	noJSErrors(t, p)
}

// TestConsoleManyPageLoads loads one page after another in the same tab, as
// a user opening links in place would. Each page holds an event stream; a
// page kept in the back/forward cache must not keep its stream, or after six
// the browser has no connection left to the server and the console stalls.
func TestConsoleManyPageLoads(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1"})
	waitAgent(t, s, agent.id, "online", func(a *steward.Agent) bool { return a.Online })
	p := b.newPage(t, s.base, "light")
	p.goTo("/")
	login(t, p)
	pages := []struct{ path, ready string }{
		{"/", `document.querySelector('[data-testid="stat-online-value"]')?.innerText === '1'`},
		{"/agents", `document.querySelectorAll('[data-testid="agent-row"]').length === 1`},
		{"/agents/" + agent.id.String(), `document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`},
		{"/configs", sel(`[data-testid="config-new"]`)},
		{"/assignments", sel(`[data-testid="assignment-new"]`)},
		{"/rollouts", sel(`[data-testid="rollout-new"]`)},
		{"/events", `document.querySelector('[data-testid="event-row"][data-type="agent.connected"]') !== null`},
	}
	for round := 0; round < 2; round++ {
		for _, pg := range pages {
			p.goTo(pg.path)
			p.waitFor(pg.ready+` && document.querySelector('[data-testid="live"]')?.dataset.state === 'live'`, "%s loaded and live (round %d)", pg.path, round+1)
		}
	}
	// One page is open, so one stream: those of the pages left behind are
	// closed (the server sees them end).
	deadline := time.Now().Add(waitTimeout)
	for s.streams.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d event streams open after 12 page loads in one tab, want 1", s.streams.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Back: the page may come from the back/forward cache; it must be live.
	p.js("history.back()", nil)
	p.waitFor(`location.pathname === '/rollouts' && document.querySelector('[data-testid="live"]')?.dataset.state === 'live'`, "the previous page, live")
	p.goTo("/agents/" + agent.id.String())
	p.waitFor(`document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`, "the agent page after 15 loads")

	// The event log, filtered by type, grows live.
	p.goTo("/events")
	p.setValue(`[data-testid="events-type"]`, "agent.connected")
	p.waitFor(`location.search === '?type=agent.connected' && document.querySelectorAll('[data-testid="event-row"]').length === 1`, "one agent.connected event")
	other := startAgent(t, s.opampURL, agentOptions{name: "otelcol-agent", version: "0.120.0", host: "node-1"})
	p.waitFor(`document.querySelectorAll('[data-testid="event-row"]').length === 2 && document.querySelector('[data-testid="event-row"] a')?.title === `+jsString(other.id.String()), "the new connection on top, live")
	var types []string
	p.js(`[...document.querySelectorAll('[data-testid="event-row"]')].map(r => r.dataset.type)`, &types)
	for _, ty := range types {
		if ty != "agent.connected" {
			t.Errorf("filtered list shows a %s event", ty)
		}
	}
	p.screenshot("events")
	noJSErrors(t, p)
}
