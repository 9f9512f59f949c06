package uitest

import (
	"context"
	"io"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// The console never shows a secret: the agent's effective config repeats
// an offered connection-settings header, and the page shows (redacted)
// with a note instead (finding 6 of issue 10). Signing out ends the
// session on the server: the cookie the browser held is refused afterwards
// (finding 7).
func TestConsoleSecretsAndSignOut(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	const secret = "Bearer ui-SECRET-3c7d"
	if _, err := s.cp.PutConnectionSettings(context.Background(), &steward.ConnectionSettings{Name: "prod",
		OwnMetrics: &steward.TelemetryDestination{Endpoint: "https://127.0.0.1:4318/v1/metrics", Headers: map[string]string{"Authorization": secret}}}); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1",
		effective: "service:\n  telemetry:\n    metrics:\n      headers:\n        - name: Authorization\n          value: " + secret + "\n"})
	waitAgent(t, s, agent.id, "its effective config", func(a *steward.Agent) bool {
		return a.EffectiveConfig != nil && strings.Contains(string((*a.EffectiveConfig)[""].Body), "ui-SECRET")
	})
	p := b.newPage(t, s.base, "light")
	p.goTo("/agents/" + agent.id.String())
	login(t, p)
	p.waitFor(`document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`, "the agent page")
	p.click(`[data-testid="tab-config"]`)
	p.waitFor(`document.querySelector('[data-testid="effective-config"]')?.innerText.includes('value: `+steward.RedactedSecret+`')`, "the redacted effective config")
	if got := p.text(`[data-testid="effective-config"]`); strings.Contains(got, "ui-SECRET") {
		t.Errorf("the console shows the secret:\n%s", got)
	}
	if got := p.text(`[data-testid="redacted-note"]`); !strings.Contains(got, "?reveal=true") {
		t.Errorf("no note about redacted values: %q", got)
	}
	var html string
	p.js(`document.documentElement.outerHTML`, &html)
	if strings.Contains(html, "ui-SECRET") {
		t.Error("the secret is in the page's DOM")
	}

	// Sign out, then replay the session cookie the browser held.
	var cookie string
	p.call(func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
		for _, c := range res.Cookies {
			cookie += c.Name + "=" + c.Value + "; "
		}
		return err
	})
	if !strings.Contains(cookie, stewardhttp.SessionCookie+"=") {
		t.Fatalf("no session cookie in the browser: %q", cookie)
	}
	replay := func() int {
		req, _ := nethttp.NewRequest("GET", s.base+"/api/v1/agents", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := replay(); st != 200 {
		t.Fatalf("the browser's cookie before signing out: %d", st)
	}
	p.click(`[data-testid="logout"]`)
	p.waitFor(sel(`[data-testid="login-form"]`), "the sign-in form after signing out")
	if st := replay(); st != 401 {
		t.Errorf("the browser's cookie after signing out: %d, want 401", st)
	}
	noJSErrors(t, p)
}
