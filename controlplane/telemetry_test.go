package controlplane_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
)

// The "send own telemetry to Steward" preset offers each matched agent
// Steward's receiver on the listener it reached, with a token naming it;
// the receiver admits that token for that agent only, and enrollment
// tokens for the agents they enrolled.
func TestStewardTelemetryPreset(t *testing.T) {
	f := newAuthFixture(t, controlplane.AgentAuth{Require: true})
	ctx := steward.WithActor(f.ctx, "admin session")
	if _, err := f.svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "bad", Selector: "env=prod", StewardTelemetry: true,
		OwnMetrics: &steward.TelemetryDestination{Endpoint: "http://x:4318/v1/metrics"}}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("preset with own_metrics: %v, want EINVALID", err)
	}
	if _, err := f.svc.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "tel", Selector: "env=prod", StewardTelemetry: true}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := f.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	_, otherSecret, _ := f.svc.CreateEnrollmentToken(ctx, steward.EnrollmentToken{Name: "other"})
	request := func(auth string) *http.Request {
		r := &http.Request{Host: "steward.test:4320", Header: http.Header{}, RemoteAddr: "127.0.0.1:1"}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r.WithContext(ctx)
	}
	connect := func(secret string) *testConn {
		r := request("Bearer " + secret)
		r.Header.Set("Upgrade", "websocket") // ws:// is offered http://, not https://
		st, err := f.svc.Accept(r)
		if err != nil {
			t.Fatal(err)
		}
		c := &testConn{transport: server.WebSocket, state: st}
		c.onClose = func() { f.svc.OnClose(c) }
		return c
	}
	uid, other := steward.NewInstanceUID(), steward.NewInstanceUID()
	cs := f.send(connect(secret), connReport(uid, 0, "prod", connCaps)).GetConnectionSettings()
	f.send(connect(otherSecret), connReport(other, 0, "prod", connCaps))
	if cs.GetOwnMetrics().GetDestinationEndpoint() != "http://steward.test:4320/v1/metrics" ||
		cs.GetOwnLogs().GetDestinationEndpoint() != "http://steward.test:4320/v1/logs" {
		t.Fatalf("offer: metrics %v logs %v", cs.GetOwnMetrics(), cs.GetOwnLogs())
	}
	hs := cs.OwnMetrics.GetHeaders().GetHeaders()
	if len(hs) != 1 || hs[0].Key != "Authorization" || !strings.HasPrefix(hs[0].Value, "Bearer stwt1.") || hs[0].Value != "Bearer "+f.svc.TelemetryToken(uid) {
		t.Fatalf("offered headers: %v", hs)
	}

	// The offered token speaks for its agent, with or without its uid in
	// service.instance.id, or with a collector's own made-up one.
	caller, err := f.svc.AuthenticateTelemetry(request(hs[0].Value))
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range []string{"", uid.String(), steward.NewInstanceUID().String(), "not-a-uid"} {
		if got, err := caller.Agent(ctx, sid); err != nil || got != uid {
			t.Fatalf("token, service.instance.id %q: %v, %v; want %s", sid, got, err, uid)
		}
	}
	if _, err := caller.Agent(ctx, other.String()); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("token for another known agent: %v, want EFORBIDDEN", err)
	}
	tampered := hs[0].Value[:len(hs[0].Value)-2] + "xx"
	if _, err := f.svc.AuthenticateTelemetry(request(tampered)); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("tampered token: %v, want EUNAUTHORIZED", err)
	}
	if _, err := f.svc.AuthenticateTelemetry(request("")); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("no credentials with authentication required: %v, want EUNAUTHORIZED", err)
	}

	// An enrollment token speaks for the agents it enrolled, named in
	// service.instance.id.
	caller, err = f.svc.AuthenticateTelemetry(request("Bearer " + secret))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := caller.Agent(ctx, uid.String()); err != nil || got != uid {
		t.Fatalf("enrollment token for its agent: %v, %v", got, err)
	}
	if _, err := caller.Agent(ctx, ""); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("enrollment token without service.instance.id: %v, want EINVALID", err)
	}
	if _, err := caller.Agent(ctx, other.String()); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("enrollment token for another token's agent: %v, want EFORBIDDEN", err)
	}
	if _, err := caller.Agent(ctx, steward.NewInstanceUID().String()); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("enrollment token for an unknown agent: %v, want EFORBIDDEN", err)
	}
}
