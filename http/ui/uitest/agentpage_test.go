package uitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
)

// TestConsoleAgentPage checks that the agent page tells the truth an
// operator needs (issue 13): the assignment that applies by selector (the
// page used to list only assignments naming the agent), the config version
// desired and running by name, the unhealthy reason on the overview, an
// offline agent's health as unknown, events on one line with their details
// collapsed; and (issue 16) that a certificate revoked from the agent page
// refuses the agent's next connection with it.
func TestConsoleAgentPage(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	ctx := context.Background()
	agent := startAgent(t, s.opampURL, agentOptions{name: "otelcol-gateway", version: "0.120.0", host: "gw-1", unhealthy: true})
	waitAgent(t, s, agent.id, "online with health", func(a *steward.Agent) bool { return a.Online && a.Health != nil })

	// A selector assignment, not one naming the agent.
	if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "gateway", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "all-gateways", ConfigName: "gateway", Selector: "service.name=otelcol-gateway"}); err != nil {
		t.Fatal(err)
	}
	waitAgent(t, s, agent.id, "in sync", func(a *steward.Agent) bool { return a.SyncState() == steward.SyncInSync && a.Sync.Desired != nil })

	// A certificate issued to the agent, admitted before it is revoked.
	cert := issueCertificate(t, s, agent.id)
	if _, err := s.cp.Accept(tlsRequest(cert)); err != nil {
		t.Fatalf("a connection with the certificate before revocation: %v", err)
	}

	p := b.newPage(t, s.base, "light")
	p.goTo("/agents/" + agent.id.String())
	login(t, p)
	p.waitFor(`document.querySelector('[data-testid="agent-name"]')?.innerText === 'otelcol-gateway'`, "the agent page")

	// Config versions by name, and the selector assignment.
	p.waitFor(`document.querySelector('[data-testid="agent-desired-config"]')?.dataset.label === 'gateway@1'`, "desired gateway@1")
	p.waitFor(`document.querySelector('[data-testid="agent-running-config"]')?.dataset.label === 'gateway@1'`, "running gateway@1")
	if got := p.text(`[data-testid="agent-desired-config"]`); !strings.Contains(got, "gateway@1") {
		t.Errorf("desired config reads %q", got)
	}
	if got := p.text(`[data-testid="agent-assignment-names"]`); !strings.Contains(got, "all-gateways") || !strings.Contains(got, "selector") {
		t.Errorf("assignments on the overview read %q, want all-gateways (selector)", got)
	}
	// The unhealthy reason on the overview, not only on the Health tab.
	if got := p.text(`[data-testid="agent-health-reason"]`); !strings.Contains(got, "sending queue is full") {
		t.Errorf("health reason %q", got)
	}
	if got := p.text(`[data-testid="agent-health"]`); got != "Unhealthy" {
		t.Errorf("health badge %q", got)
	}
	p.screenshot("agent-overview")

	p.click(`[data-testid="tab-config"]`)
	p.waitFor(`document.querySelector('[data-testid="agent-assignment"][data-name="all-gateways"]')?.dataset.match === 'selector'`, "the selector assignment in 'Assignments to this agent'")
	if got := p.text(`[data-testid="agent-config-diff"]`); !strings.Contains(got, "effective configuration is the desired one") {
		t.Errorf("diff panel %q", got)
	}

	// Events: one line each, details collapsed until clicked, hashes short.
	p.click(`[data-testid="tab-events"]`)
	p.waitFor(sel(`[data-testid="agent-event"][data-type="agent.config_sent"]`), "the config offer in the history")
	if got := p.text(`[data-testid="agent-event"][data-type="agent.config_sent"] [data-testid="event-message"]`); got != "offered gateway@1" {
		t.Errorf("offer message %q, want it to name gateway@1", got)
	}
	var tall []string
	p.js(`[...document.querySelectorAll('[data-testid="agent-event"] [data-testid="event-message"]')]
		.filter(e => e.getClientRects().length !== 1 || e.getBoundingClientRect().height > 2 * parseFloat(getComputedStyle(e).fontSize))
		.map(e => e.innerText)`, &tall)
	if len(tall) > 0 {
		t.Errorf("messages over more than one line: %q", tall)
	}
	var open int
	p.js(`document.querySelectorAll('[data-testid="agent-event"] details[open]').length`, &open)
	if open != 0 {
		t.Errorf("%d event details open before any click", open)
	}
	row := `[data-testid="agent-event"][data-type="agent.config_sent"]`
	p.click(row + ` [data-testid="event-details"] summary`)
	p.waitFor(sel(row+` [data-testid="event-details"][open] [data-testid="hash"]`), "the offer's hash in its opened details")
	var shown, full string
	p.js(`document.querySelector('`+row+` [data-testid="hash"] .mono').innerText`, &shown)
	p.js(`document.querySelector('`+row+` [data-testid="hash"]').dataset.hash`, &full)
	if len(full) != 64 || utf8.RuneCountInString(shown) > 13 || !strings.HasPrefix(full, strings.TrimSuffix(shown, "…")) {
		t.Errorf("hash shown %q of %q, want its first 12 digits", shown, full)
	}
	if !p.has(row + ` [data-testid="copy-hash"]`) {
		t.Errorf("no copy button next to the hash")
	}

	// Revoke the certificate from the agent page.
	p.click(`[data-testid="tab-overview"]`)
	p.waitFor(sel(`[data-testid="agent-certificate"][data-serial="`+ca.Serial(cert)+`"]`), "the certificate on the agent page")
	p.js(sel(`[data-testid="cert-revoke"]`)+`.scrollIntoView({block: 'center'})`, nil)
	p.click(`[data-testid="agent-certificate"] [data-testid="cert-revoke"]`)
	p.waitFor(sel(`[data-testid="revoke-cert-dialog"]`), "the confirmation")
	p.click(`[data-testid="revoke-cert-dialog"] button.primary`)
	p.waitFor(`document.querySelector('[data-testid="agent-certificate"] [data-testid="cert-status"]')?.innerText === 'Revoked'`, "the certificate shown revoked")
	if _, err := s.cp.Accept(tlsRequest(cert)); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Errorf("a connection with the revoked certificate: %v, want forbidden", err)
	}

	// Offline: health unknown, in the header and on the overview.
	agent.stop()
	p.waitFor(`document.querySelector('[data-testid="agent-online"]')?.innerText === 'Offline'`, "the agent offline, live")
	p.waitFor(`document.querySelector('[data-testid="agent-health"]')?.innerText === 'Health unknown'`, "health unknown in the header")
	if got := p.text(`[data-testid="agent-health-state"]`); got != "Health unknown" {
		t.Errorf("overview health %q", got)
	}
	if p.has(`[data-testid="agent-health-reason"]`) {
		t.Errorf("an offline agent still shows an unhealthy reason")
	}
	p.screenshot("agent-offline")
	noJSErrors(t, p)
}

// issueCertificate signs a certificate for the agent with the server's
// agent CA and records it as the control plane records those it issues.
func issueCertificate(t *testing.T, s *stack, id steward.InstanceUID) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id.String()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := s.ca.SignCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.PutCertificate(context.Background(), ca.Record(cert, id)); err != nil {
		t.Fatal(err)
	}
	return cert
}

// tlsRequest is an OpAMP connection request presenting cert, as the TLS
// listener hands it to the control plane.
func tlsRequest(cert *x509.Certificate) *http.Request {
	r := httptest.NewRequest("GET", "/v1/opamp", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	return r
}

// has reports whether an element matches css.
func (p *page) has(css string) bool {
	p.t.Helper()
	var ok bool
	p.js("!!"+sel(css), &ok)
	return ok
}
