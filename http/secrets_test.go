package http_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

const (
	metricsSecret = "Bearer metrics-SECRET-4f9c"
	otherSecret   = "other-SECRET-77aa"
)

// putSecretSettings stores connection settings with two secret headers as
// the given bearer token.
func (e *env) putSecretSettings(t *testing.T, bearer string) {
	t.Helper()
	body := map[string]any{
		"selector":    "",
		"own_metrics": map[string]any{"endpoint": "https://127.0.0.1:4318/v1/metrics", "headers": map[string]string{"Authorization": metricsSecret}},
		"other":       map[string]any{"backup": map[string]any{"endpoint": "https://127.0.0.1:4319", "headers": map[string]string{"X-Api-Key": otherSecret}}},
	}
	if r := e.do("PUT", "/api/v1/connection-settings/prod", body, "Authorization", "Bearer "+bearer); r.status/100 != 2 {
		t.Fatalf("put settings: %d %s", r.status, r.body)
	}
}

// reportEffectiveConfig has an agent report a collector config that
// repeats an offered header, as the supervisor writes it.
func (e *env) reportEffectiveConfig(t *testing.T, body string) steward.InstanceUID {
	t.Helper()
	id := steward.NewInstanceUID()
	st, err := e.cp.Accept(httptest.NewRequest("GET", "/v1/opamp", nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.cp.OnMessage(context.Background(), &testConn{st: st}, &protobufs.AgentToServer{
		InstanceUid: id[:], SequenceNum: 1,
		Capabilities: uint64(steward.AgentReportsStatus | steward.AgentReportsEffectiveConfig),
		EffectiveConfig: &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"collector.yaml": {Body: []byte(body), ContentType: "text/yaml"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Secrets are write-only below admin: viewers and operators never read a
// header value of connection settings, nor its copy in an agent's reported
// effective config; an operator can still write one and can update the
// settings by sending the marker back; only an admin reveals, audited
// (finding 6 of issue 10: a viewer token read "Authorization: Bearer …").
func TestSecretsRedacted(t *testing.T) {
	e := newCredEnv(t)
	viewer := e.createToken(t, "dash", steward.RoleViewer, "static-admin")
	operator := e.createToken(t, "ci", steward.RoleOperator, "static-admin")
	admin := e.createToken(t, "ops", steward.RoleAdmin, "static-admin")

	e.putSecretSettings(t, operator) // operators write secrets
	id := e.reportEffectiveConfig(t, "service:\n  telemetry:\n    metrics:\n      headers:\n        - name: Authorization\n          value: "+metricsSecret+"\n")

	noSecret := func(who, path string, r response) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("%s GET %s: %d %s", who, path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "SECRET") {
			t.Errorf("%s GET %s shows a secret: %s", who, path, r.body)
		}
		if !strings.Contains(string(r.body), steward.RedactedSecret) {
			t.Errorf("%s GET %s: no %q marker: %s", who, path, steward.RedactedSecret, r.body)
		}
	}
	paths := []string{"/api/v1/connection-settings", "/api/v1/connection-settings/prod", "/api/v1/agents", "/api/v1/agents/" + id.String()}
	for who, tok := range map[string]string{"viewer": viewer, "operator": operator, "admin": admin} {
		for _, p := range paths {
			noSecret(who, p, e.do("GET", p, nil, "Authorization", "Bearer "+tok))
		}
	}
	for who, tok := range map[string]string{"viewer": viewer, "operator": operator} {
		for _, p := range paths {
			if r := e.do("GET", p+"?reveal=true", nil, "Authorization", "Bearer "+tok); r.status != 403 {
				t.Errorf("%s reveals %s: %d %s", who, p, r.status, r.body)
			}
		}
	}
	for _, p := range paths {
		r := e.do("GET", p+"?reveal=true", nil, "Authorization", "Bearer "+admin)
		if r.status != 200 || !strings.Contains(string(r.body), "metrics-SECRET-4f9c") {
			t.Errorf("admin reveal %s: %d %s", p, r.status, r.body)
		}
	}
	var audit stewardhttp.AuditResponse
	e.do("GET", "/api/v1/audit?action="+stewardhttp.AuditSecretsRevealed, nil, "Authorization", "Bearer "+admin).decode(t, &audit)
	if len(audit.Entries) != len(paths) || audit.Entries[0].Actor != "ops" {
		t.Errorf("reveals audited: %+v", audit.Entries)
	}

	// An operator edits what it read (redacted) and the secrets are kept.
	var got steward.ConnectionSettings
	e.do("GET", "/api/v1/connection-settings/prod", nil, "Authorization", "Bearer "+operator).decode(t, &got)
	got.Priority = 5
	if r := e.do("PUT", "/api/v1/connection-settings/prod", got, "Authorization", "Bearer "+operator); r.status != 200 || strings.Contains(string(r.body), "SECRET") {
		t.Fatalf("put back redacted: %d %s", r.status, r.body)
	}
	var revealed steward.ConnectionSettings
	e.do("GET", "/api/v1/connection-settings/prod?reveal=true", nil, "Authorization", "Bearer "+admin).decode(t, &revealed)
	if revealed.Priority != 5 || revealed.OwnMetrics.Headers["Authorization"] != metricsSecret || revealed.Other["backup"].Headers["X-Api-Key"] != otherSecret {
		t.Fatalf("secrets not kept: %+v", revealed)
	}
	// A kept secret never goes to a new endpoint: moving it needs the value.
	moved := got
	moved.OwnMetrics = &steward.TelemetryDestination{Endpoint: "https://127.0.0.2:4318/v1/metrics", Headers: map[string]string{"Authorization": steward.RedactedSecret}}
	if r := e.do("PUT", "/api/v1/connection-settings/prod", moved, "Authorization", "Bearer "+operator); r.status != 400 {
		t.Errorf("marker with a changed endpoint: %d %s", r.status, r.body)
	}
	// A marker for a header that has no stored value is refused.
	extra := got
	extra.OwnMetrics = &steward.TelemetryDestination{Endpoint: got.OwnMetrics.Endpoint, Headers: map[string]string{"X-New": steward.RedactedSecret}}
	if r := e.do("PUT", "/api/v1/connection-settings/prod", extra, "Authorization", "Bearer "+operator); r.status != 400 {
		t.Errorf("marker without a stored value: %d %s", r.status, r.body)
	}
	// An operator replaces a secret with a new value.
	fresh := got
	fresh.OwnMetrics = &steward.TelemetryDestination{Endpoint: got.OwnMetrics.Endpoint, Headers: map[string]string{"Authorization": "Bearer rotated-SECRET"}}
	if r := e.do("PUT", "/api/v1/connection-settings/prod", fresh, "Authorization", "Bearer "+operator); r.status != 200 {
		t.Fatalf("new secret: %d %s", r.status, r.body)
	}
	e.do("GET", "/api/v1/connection-settings/prod?reveal=true", nil, "Authorization", "Bearer "+admin).decode(t, &revealed)
	if revealed.OwnMetrics.Headers["Authorization"] != "Bearer rotated-SECRET" || revealed.Other["backup"].Headers["X-Api-Key"] != otherSecret {
		t.Errorf("rotated: %+v", revealed)
	}
}
