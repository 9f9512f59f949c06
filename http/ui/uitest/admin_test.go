package uitest

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/supervisor"
)

// setUploadFiles puts files into a file input, as choosing them would.
func (p *page) setUploadFiles(css string, files ...string) {
	p.t.Helper()
	p.waitFor(sel(css), "%s to exist", css)
	p.run(chromedp.SetUploadFiles(chromedp.CSS(css), files))
}

var (
	testAgentOnce sync.Once
	testAgentBin  string
	testAgentErr  error
)

// TestMain removes the test agent built for the package tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if testAgentBin != "" {
		os.RemoveAll(filepath.Dir(testAgentBin))
	}
	os.Exit(code)
}

// buildTestAgent builds the supervisor's test agent (a small real
// process: supervisor/internal/testagent) once per test binary.
func buildTestAgent(t *testing.T) string {
	t.Helper()
	testAgentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "uitest-agent")
		if err != nil {
			testAgentErr = err
			return
		}
		testAgentBin = filepath.Join(dir, "testagent")
		out, err := exec.Command("go", "build", "-o", testAgentBin, "github.com/stewardhq/steward/supervisor/internal/testagent").CombinedOutput()
		if err != nil {
			testAgentErr = fmt.Errorf("build the test agent: %v\n%s", err, out)
		}
	})
	if testAgentErr != nil {
		t.Fatal(testAgentErr)
	}
	return testAgentBin
}

// startSupervisor runs steward-supervisor (in this process) over the test
// agent, trusting the server's package key: it installs the packages
// Steward offers as the agent's executable.
func startSupervisor(t *testing.T, s *stack, dir string) *supervisor.Supervisor {
	t.Helper()
	keys, err := s.cp.PackageKeys(context.Background())
	if err != nil || len(keys) == 0 {
		t.Fatalf("package keys: %v %v", keys, err)
	}
	agentCfg, local, pidFile := filepath.Join(dir, "agent.yaml"), filepath.Join(dir, "local.yaml"), filepath.Join(dir, "pid")
	if err := os.WriteFile(local, []byte("greeting: ui\npid_file: "+pidFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`
server:
  endpoint: %s
agent:
  mode: generic
  executable: %s
  args: [-config, %s]
  config_file: %s
  local_config_files: [%s]
  stop_timeout: 5s
  health: {min_uptime: 500ms, interval: 200ms}
  config_apply_timeout: 20s
  restart: {initial_backoff: 50ms, max_backoff: 400ms}
storage:
  directory: %s
packages:
  trusted_keys: [%s]
`, s.opampURL, buildTestAgent(t), agentCfg, agentCfg, local, filepath.Join(dir, "state"), base64.StdEncoding.EncodeToString(keys[0].PublicKey))
	sup, _ := runSupervisor(t, yaml)
	return sup
}

// runSupervisor runs steward-supervisor in this process with the config
// yaml until the test ends; the context it returns ends then too.
func runSupervisor(t *testing.T, yaml string) (*supervisor.Supervisor, context.Context) {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "supervisor.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := supervisor.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(cfg, supervisor.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the supervisor did not stop")
		}
	})
	return sup, ctx
}

// agentExe is the executable the supervised agent runs now.
func agentExe(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "pid"))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	pid, _ := strconv.Atoi(f[0])
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return exe
}

// TestConsolePackageInstall uploads a new agent build through the
// Packages page (with its progress bar), assigns it by label selector and
// watches steward-supervisor download it, check its signature, install it
// and run it, as the install status shows without a reload.
func TestConsolePackageInstall(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	dir := t.TempDir()
	sup := startSupervisor(t, s, dir)
	uid := sup.InstanceUID()
	agent := waitAgent(t, s, uid, "connected, accepting packages", func(a *steward.Agent) bool {
		return a.Online && a.Capabilities.Has(steward.AgentAcceptsPackages|steward.AgentReportsPackageStatuses) && a.Description != nil
	})
	var selector string
	for _, kv := range agent.Description.IdentifyingAttributes {
		if kv.Key == "service.instance.id" {
			selector = "service.instance.id=" + fmt.Sprint(kv.Value)
		}
	}
	if selector == "" {
		t.Fatalf("the supervised agent reports no service.instance.id: %+v", agent.Description)
	}

	// A new build: the test agent with a marker, so its hash differs.
	orig, err := os.ReadFile(buildTestAgent(t))
	if err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(t.TempDir(), "testagent-2.0.1")
	if err := os.WriteFile(build, append(orig, "\n#steward-test-version 2.0.1\n"...), 0o755); err != nil {
		t.Fatal(err)
	}

	p := b.newPage(t, s.base, "light")
	p.goTo("/packages")
	login(t, p)
	p.setUploadFiles(`[data-testid="package-file"]`, build)
	p.waitFor(`document.querySelector('[data-testid="package-name"]').value === 'testagent' && document.querySelector('[data-testid="package-version"]').value === '2.0.1'`, "name and version taken from the file name")
	p.click(`[data-testid="package-upload"]`)
	row := `[data-testid="package-row"][data-name="testagent"][data-version="2.0.1"]`
	p.waitFor(sel(row), "the uploaded package listed")
	p.waitFor(`document.querySelector('[data-testid="package-progress"]').value === 100 && document.querySelector('[data-testid="package-progress-text"]').innerText.startsWith('Stored testagent@2.0.1')`, "the progress bar full")
	if got := p.text(row + ` [data-testid="package-signature"]`); got != "Signed" {
		t.Errorf("signature badge %q", got)
	}
	if got := p.text(row); !strings.Contains(got, "server key") {
		t.Errorf("package row %q does not name the server key", got)
	}

	// Assign it by selector.
	p.click(`[data-testid="package-assign"]`)
	p.typeInto(`[data-testid="package-assignment-name"]`, "ui-agents")
	p.click(`[data-testid="package-assignment-pick"][value="testagent@2.0.1"]`)
	p.typeInto(`[data-testid="package-assignment-selector"]`, selector)
	p.click(`[data-testid="package-assignment-dialog-submit"]`)
	p.waitFor(sel(`[data-testid="package-assignment-row"][data-name="ui-agents"]`), "the assignment listed")

	// The supervisor installs it; the page follows live.
	status := fmt.Sprintf(`[data-testid="package-status-row"][data-agent=%q][data-package="testagent"]`, uid.String())
	p.waitFor(sel(status+`[data-status="INSTALLED"]`), "testagent 2.0.1 INSTALLED on the agent")
	if got := p.text(status); !strings.Contains(got, "2.0.1") {
		t.Errorf("install status row %q lacks the version", got)
	}
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(agentExe(dir), filepath.Join("state", "packages")) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent runs %q, not the installed package", agentExe(dir))
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.screenshot("packages")
	noJSErrors(t, p)
}

// TestConsoleCredentials creates an enrollment token (its secret shown
// once) and an API token, revokes an agent's certificate from the
// Certificates page, edits connection settings without ever seeing their
// secret, and finds all of it in the audit log, filtered and linked.
func TestConsoleCredentials(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	ctx := context.Background()
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1", csr: true})
	var serial string
	waitAgent(t, s, agent.id, "a certificate issued", func(*steward.Agent) bool {
		certs, err := s.cp.Certificates(ctx, &agent.id)
		if err == nil && len(certs) == 1 {
			serial = certs[0].Serial
		}
		return serial != ""
	})
	p := b.newPage(t, s.base, "light")
	p.goTo("/admin/tokens")
	login(t, p)

	// Enrollment token: created, shown once, listed with its uses.
	p.click(`[data-testid="enrollment-new"]`)
	p.typeInto(`[data-testid="enrollment-name"]`, "eu-west")
	p.typeInto(`[data-testid="enrollment-selector"]`, "env=prod")
	p.typeInto(`[data-testid="enrollment-max-uses"]`, "25")
	p.click(`[data-testid="enrollment-dialog-submit"]`)
	p.waitFor(sel(`[data-testid="token-secret"]`), "the new secret")
	var secret string
	p.js(`document.querySelector('[data-testid="token-secret"]').value`, &secret)
	if len(secret) < 20 {
		t.Fatalf("enrollment secret %q", secret)
	}
	p.screenshot("enrollment-token-created")
	p.click(`[data-testid="enrollment-dialog-secret-submit"]`)
	erow := `[data-testid="enrollment-row"][data-name="eu-west"]`
	p.waitFor(sel(erow), "the enrollment token listed")
	if got := p.text(erow + ` [data-testid="enrollment-uses"]`); got != "0 of 25" {
		t.Errorf("uses %q, want 0 of 25", got)
	}
	var shown bool
	p.js(`document.body.innerText.includes(`+jsString(secret)+`) || !!document.querySelector('[data-testid="token-secret"]')`, &shown)
	if shown {
		t.Error("the secret is still on the page after closing its dialog")
	}
	toks, err := s.cp.EnrollmentTokens(ctx)
	if err != nil || len(toks) != 1 || toks[0].MaxUses != 25 || toks[0].Selector != "env=prod" {
		t.Fatalf("stored enrollment tokens %+v, %v", toks, err)
	}
	p.goTo("/admin/tokens")
	p.waitFor(sel(erow), "the token after a reload")
	p.js(`document.body.innerText.includes(`+jsString(secret)+`)`, &shown)
	if shown {
		t.Error("the secret is shown again after a reload")
	}
	p.click(`[data-testid="token-new"]`)
	p.typeInto(`[data-testid="token-name"]`, "ci-deploy")
	p.setValue(`[data-testid="token-role"]`, "operator")
	p.click(`[data-testid="token-dialog-submit"]`)
	p.waitFor(sel(`[data-testid="token-secret"]`), "the API token's secret")
	p.click(`[data-testid="token-dialog-secret-submit"]`)
	p.waitFor(sel(`[data-testid="token-row"][data-name="ci-deploy"]`), "the API token listed")
	p.screenshot("tokens")

	// Revoke the agent's certificate, after confirming.
	p.click(`[data-testid="admin-tab-certificates"]`)
	crow := fmt.Sprintf(`[data-testid="cert-row"][data-serial=%q]`, serial)
	p.waitFor(sel(crow+`[data-state="valid"]`), "the valid certificate")
	p.screenshot("certificates")
	p.click(crow + ` [data-testid="cert-revoke"]`)
	p.waitFor(sel(`[data-testid="cert-revoke-dialog"]`), "the confirmation")
	p.click(`[data-testid="cert-revoke-dialog-cancel"]`)
	if certs, _ := s.cp.Certificates(ctx, &agent.id); len(certs) != 1 || certs[0].Revoked {
		t.Fatalf("cancelled revoke changed the certificate: %+v", certs)
	}
	p.click(crow + ` [data-testid="cert-revoke"]`)
	p.click(`[data-testid="cert-revoke-dialog-submit"]`)
	p.waitFor(sel(crow+`[data-state="revoked"]`), "the certificate revoked")
	if certs, _ := s.cp.Certificates(ctx, &agent.id); len(certs) != 1 || !certs[0].Revoked {
		t.Fatalf("certificate after revoke: %+v", certs)
	}

	// Connection settings: the secret is written, shown as "(set)" and
	// kept when the settings are edited without retyping it.
	p.click(`[data-testid="admin-tab-connections"]`)
	p.click(`[data-testid="conn-new"]`)
	p.typeInto(`[data-testid="conn-name"]`, "prod")
	p.typeInto(`[data-testid="conn-selector"]`, "env=prod")
	p.typeInto(`[data-testid="conn-own_metrics-endpoint"]`, "https://otlp.example.com:4318/v1/metrics")
	p.click(`[data-testid="conn-own_metrics-add-header"]`)
	p.typeInto(`[data-testid="conn-own_metrics"] [data-testid="conn-header-name"]`, "Authorization")
	p.typeInto(`[data-testid="conn-own_metrics"] [data-testid="conn-header-value"]`, "Bearer s3cr3t")
	p.click(`[data-testid="conn-dialog-submit"]`)
	cs := `[data-testid="conn-row"][data-name="prod"]`
	p.waitFor(sel(cs), "the connection settings listed")
	if got := p.text(cs); !strings.Contains(got, "Authorization: (set)") || strings.Contains(got, "s3cr3t") {
		t.Errorf("settings row %q", got)
	}
	p.click(cs + ` [data-testid="conn-edit"]`)
	var value, placeholder string
	p.waitFor(sel(`[data-testid="conn-header-value"][data-set]`), "the stored header")
	p.js(`document.querySelector('[data-testid="conn-header-value"]').value`, &value)
	p.js(`document.querySelector('[data-testid="conn-header-value"]').placeholder`, &placeholder)
	if value != "" || !strings.HasPrefix(placeholder, "(set)") {
		t.Errorf("stored secret field: value %q, placeholder %q", value, placeholder)
	}
	p.screenshot("connection-settings-edit")
	p.setValue(`[data-testid="conn-heartbeat"]`, "30")
	p.click(`[data-testid="conn-dialog-submit"]`)
	p.waitFor(`document.querySelector('`+cs+`')?.innerText.includes('30 s')`, "the heartbeat saved")
	got, err := s.cp.ConnectionSettings(ctx, "prod")
	if err != nil || got.OwnMetrics == nil || got.OwnMetrics.Headers["Authorization"] != "Bearer s3cr3t" || got.HeartbeatIntervalSeconds == nil || *got.HeartbeatIntervalSeconds != 30 {
		t.Fatalf("stored settings after an edit: %+v, %v", got, err)
	}

	// The audit log: filtered by target, each entry linking to it.
	p.click(`[data-testid="admin-tab-audit"]`)
	p.waitFor(sel(`[data-testid="audit-row"][data-action="certificate.revoked"]`), "the revocation audited")
	p.typeInto(`[data-testid="audit-target"]`, "prod")
	p.waitFor(`[...document.querySelectorAll('[data-testid="audit-row"]')].every(r => r.dataset.action.startsWith('connection_settings.')) && document.querySelectorAll('[data-testid="audit-row"]').length === 2`, "only the two changes of prod")
	p.waitFor(`location.search === '?target=prod'`, "the filter in the URL")
	p.screenshot("audit")
	p.click(`[data-testid="audit-row"] [data-testid="audit-target-link"]`)
	p.waitFor(`location.pathname === '/admin/connection-settings'`, "the target's page")
	p.goTo("/admin/audit?action=certificate.revoked")
	p.waitFor(`document.querySelectorAll('[data-testid="audit-row"]').length === 1`, "one revocation")
	p.click(`[data-testid="audit-row"] [data-testid="audit-target-link"]`)
	p.waitFor(`location.pathname === '/admin/certificates' && location.search === '?agent=`+agent.id.String()+`'`, "the agent's certificates")
	p.waitFor(sel(crow+`[data-state="revoked"]`), "the revoked certificate listed")
	noJSErrors(t, p)
}

// TestConsoleViewerSeesNoWriteControls signs in with a viewer's API token:
// the admin pages show what a viewer may read and no control to change it.
func TestConsoleViewerSeesNoWriteControls(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	seedAdmin(t, s)
	_, secret, err := s.cp.CreateToken(context.Background(), "dashboard", steward.RoleViewer, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := b.newPage(t, s.base, "light")
	p.setHeaders(map[string]any{"Authorization": "Bearer " + secret})
	for _, c := range []struct{ path, ready, write string }{
		{"/packages", `[data-testid="package-row"]`, `[data-testid="package-upload-form"], [data-testid="package-assign"], [data-testid="package-delete"]`},
		{"/admin/certificates", `[data-testid="certs-table"]`, `[data-testid="cert-revoke"]`},
		{"/admin/connection-settings", `[data-testid="conn-row"]`, `[data-testid="conn-new"], [data-testid="conn-edit"], [data-testid="conn-delete"]`},
		{"/admin/tokens", `[data-testid="load-error"]`, `[data-testid="token-new"], [data-testid="enrollment-new"]`},
	} {
		p.goTo(c.path)
		p.waitFor(sel(c.ready), "%s for a viewer", c.path)
		var n int
		p.js(`document.querySelectorAll(`+jsString(c.write)+`).length`, &n)
		if n != 0 {
			t.Errorf("%s shows a viewer %d write controls", c.path, n)
		}
	}
	if got := p.text(`[data-testid="load-error"]`); !strings.Contains(got, "admin") {
		t.Errorf("tokens page for a viewer: %q", got)
	}
	p.goTo("/admin/connection-settings")
	p.waitFor(sel(`[data-testid="conn-row"]`), "the settings")
	var rows int
	p.js(`document.querySelectorAll('[data-testid="conn-headers"]').length`, &rows)
	if got := p.text(`[data-testid="conn-row"]`); rows != 1 || strings.Contains(got, "s3cr3t") {
		t.Errorf("connection settings for a viewer: %q", got)
	}
}
