package uitest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// narrowPages are the console's main pages, each with a condition that
// holds once its content has loaded.
var narrowPages = []struct{ name, path, ready string }{
	{"overview", "/", `document.querySelector('[data-testid="stat-online-value"]')?.innerText === '1'`},
	{"agents", "/agents", `document.querySelectorAll('[data-testid="agent-row"]').length === 1`},
	{"agent", "/agents/{id}", `document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`},
	{"configs", "/configs", `document.querySelector('main h1')`},
	{"config", "/configs/gw", `[...document.querySelectorAll('main table tbody tr')].length >= 2`},
	{"assignments", "/assignments", `document.querySelector('[data-testid="assignment-row"]')`},
	{"rollouts", "/rollouts", `document.querySelector('[data-testid="rollout-row"]')`},
	{"events", "/events", `document.querySelector('[data-testid="event-row"]')`},
	{"packages", "/packages", `document.querySelector('[data-testid="package-row"]') && document.querySelector('[data-testid="package-status-row"]')`},
	{"tokens", "/admin/tokens", `document.querySelector('[data-testid="token-row"]') && document.querySelector('[data-testid="enrollment-row"]')`},
	{"certificates", "/admin/certificates", `document.querySelector('[data-testid="cert-row"]')`},
	{"connections", "/admin/connection-settings", `document.querySelector('[data-testid="conn-row"]')`},
	{"audit", "/admin/audit", `document.querySelector('[data-testid="audit-row"]')`},
}

// overflow is a script that lists what makes the page wider than the
// window: the document's own scroll width, and any panel whose right edge
// lies beyond the window (a clipped panel).
const overflow = `(() => {
  const w = window.innerWidth, out = [];
  if (document.documentElement.scrollWidth > w) {
    out.push('document ' + document.documentElement.scrollWidth + ' > ' + w);
    // Name the outermost elements that stick out and are not inside a
    // scrolling (or clipping) box.
    const clipped = (e) => { for (let a = e.parentElement; a; a = a.parentElement) { if (getComputedStyle(a).overflowX !== 'visible') return true; } return false; };
    for (const e of document.querySelectorAll('body *')) {
      if (out.length > 8) break;
      const r = e.getBoundingClientRect();
      if (r.right > w + 0.5 && r.width && !clipped(e) && !(e.parentElement && e.parentElement.getBoundingClientRect().right > w + 0.5)) {
        out.push(e.tagName.toLowerCase() + '.' + e.className + ' [' + (e.dataset.testid || '') + '] right edge ' + Math.round(r.right));
      }
    }
  }
  for (const e of document.querySelectorAll('main .panel, main .page-head, main .toolbar, main .tabs, header.topbar')) {
    const r = e.getBoundingClientRect();
    if (r.width && r.right > w + 0.5) out.push((e.getAttribute('aria-label') || e.className) + ' right edge ' + Math.round(r.right));
  }
  return out;
})()`

// TestConsoleNarrow opens every main page in a 390×844 window (a phone):
// nothing may be wider than the window, and the navigation, the live
// indicator and Sign out must be reachable through the menu button.
func TestConsoleNarrow(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-eu-west-1a-with-a-long-host-name.example.internal", packages: true, csr: true})
	waitAgent(t, s, agent.id, "online with health", func(a *steward.Agent) bool { return a.Online && a.Health != nil })
	seedRollout(t, s)
	seedAdmin(t, s)

	p := b.newPage(t, s.base, "light")
	p.resize(390, 844)
	p.goTo("/")
	login(t, p)
	for _, pg := range narrowPages {
		path := strings.ReplaceAll(pg.path, "{id}", agent.id.String())
		p.goTo(path)
		p.waitFor(pg.ready, "the %s page", pg.name)
		p.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", nil)
		var wide []string
		p.js(overflow, &wide)
		if len(wide) > 0 {
			t.Errorf("%s at 390 px: wider than the window: %s", path, strings.Join(wide, "; "))
		}
		p.screenshot("narrow-" + pg.name)
		// Every tab of the page (the agent's, a configuration's) too.
		var tabs []string
		p.js(`[...document.querySelectorAll('main [role="tab"][id]')].map(t => t.id)`, &tabs)
		for _, id := range tabs {
			p.click("#" + id)
			p.waitFor(`(() => { const t = document.getElementById(`+jsString(id)+`); const pn = t && document.getElementById(t.getAttribute('aria-controls'));
				return t.getAttribute('aria-selected') === 'true' && pn && pn.children.length > 0 && !pn.querySelector('.skeleton'); })()`, "tab %s of %s", id, path)
			p.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", nil)
			p.js(overflow, &wide)
			if len(wide) > 0 {
				t.Errorf("%s, tab %s, at 390 px: wider than the window: %s", path, id, strings.Join(wide, "; "))
			}
		}
	}

	// The navigation is folded: the menu button opens it, every link is
	// inside the window, and following one folds it again.
	p.goTo("/")
	p.waitFor(narrowPages[0].ready, "the overview")
	inside := func(css string) string {
		return `(() => { const e = ` + sel(css) + `; if (!e) return false; const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth && r.bottom <= window.innerHeight; })()`
	}
	for _, css := range []string{`[data-testid="live"]`, `[data-testid="logout"]`, `[data-testid="nav-menu"]`} {
		p.waitFor(inside(css), "%s inside the 390 px window", css)
	}
	var shown bool
	p.js(inside(`[data-testid="nav-agents"]`), &shown)
	if shown {
		t.Error("the navigation is not folded at 390 px")
	}
	p.click(`[data-testid="nav-menu"]`)
	var links []string
	p.js(`[...document.querySelectorAll('nav.nav a')].map(a => a.dataset.testid)`, &links)
	if len(links) < 6 {
		t.Fatalf("navigation links %v", links)
	}
	for _, l := range links {
		p.waitFor(inside(fmt.Sprintf(`[data-testid=%q]`, l)), "%s inside the window with the menu open", l)
	}
	p.screenshot("narrow-menu")
	p.click(`[data-testid="nav-agents"]`)
	p.waitFor(`location.pathname === '/agents' && !document.querySelector('header.topbar').classList.contains('open')`, "the agent list, the menu folded")
	p.waitFor(`document.querySelector('[data-testid="nav-menu"]').getAttribute('aria-expanded') === 'false'`, "aria-expanded false")

	// Sign out is reachable and works.
	p.click(`[data-testid="logout"]`)
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form")
	var wide []string
	p.js(overflow, &wide)
	if len(wide) > 0 {
		t.Errorf("sign-in at 390 px: %v", wide)
	}
	noJSErrors(t, p)
}

// seedRollout stores config gw and its assignment (seedGateways) and a
// rollout of version 2 whose first stage targets no agent, so it stays
// running.
func seedRollout(t *testing.T, s *stack) {
	t.Helper()
	seedGateways(t, s)
	if _, err := s.cp.StartRollout(context.Background(), &steward.Rollout{Name: "gateways-v2", Assignment: "gateways", ToVersion: 2,
		Stages: []steward.RolloutStage{{Selector: "host.name=canary"}, {Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
}

// seedGateways stores two versions of config gw and an assignment of the
// first to the otelcol-gateway agents.
func seedGateways(t *testing.T, s *stack) {
	t.Helper()
	ctx := context.Background()
	for i, body := range []string{initialCollectorConfig, strings.Replace(initialCollectorConfig, "debug: {}", "debug:\n    verbosity: detailed", 1)} {
		if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "gw", Comment: fmt.Sprintf("version %d", i+1), Files: steward.ConfigMap{"": {Body: []byte(body), ContentType: "text/yaml"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "gateways", ConfigName: "gw", Version: 1, Selector: "service.name=otelcol-gateway"}); err != nil {
		t.Fatal(err)
	}
}

// seedAdmin stores what the admin pages list: a package offered by an
// assignment, an API token, an enrollment token and connection settings
// with a secret header.
func seedAdmin(t *testing.T, s *stack) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.cp.UploadPackage(ctx, &steward.Package{Name: "otelcol-contrib", Version: "0.121.0"}, strings.NewReader("#!/bin/sh\necho collector\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutPackageAssignment(ctx, &steward.PackageAssignment{Name: "collectors", Selector: "service.name=otelcol-gateway",
		Packages: []steward.PackageRef{{Name: "otelcol-contrib", Version: "0.121.0"}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.cp.CreateToken(ctx, "ci-deploy", steward.RoleOperator, 720*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.cp.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "eu-west-collectors", Selector: "env=prod", MaxUses: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "prod-telemetry", Selector: "deployment.environment=production",
		OwnMetrics: &steward.TelemetryDestination{Endpoint: "https://otlp.example.com:4318/v1/metrics", Headers: map[string]string{"Authorization": "Bearer s3cr3t-metrics"}}}); err != nil {
		t.Fatal(err)
	}
}
