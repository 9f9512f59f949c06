package http_test

import (
	"slices"
	"testing"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// A bulk action previews the count first (changing nothing and writing no
// audit entry), then acts on exactly the agents the filter matches and is
// audited once with the counts.
func TestBulkAgentsPreviewThenAct(t *testing.T) {
	e := newCredEnv(t)
	auth := []string{"Authorization", "Bearer static-admin"}
	yes, no := true, false
	a1, c1 := e.connect(agentSpec{name: "otelcol", version: "1", healthy: &no, caps: steward.AgentAcceptsRestartCommand})
	a2, c2 := e.connect(agentSpec{name: "otelcol", version: "1", healthy: &no})
	e.connect(agentSpec{name: "otelcol", version: "1", healthy: &yes, caps: steward.AgentAcceptsRestartCommand})
	gone, cg := e.connect(agentSpec{name: "otelcol", version: "1", healthy: &no})
	e.cp.OnClose(cg)

	before := len(c1.messages()) + len(c2.messages())
	var res steward.BulkResult
	r := e.do("POST", "/api/v1/agents/bulk?health=unhealthy", map[string]any{"action": "restart", "dry_run": true}, auth...)
	if r.status != 200 {
		t.Fatalf("preview: %d %s", r.status, r.body)
	}
	r.decode(t, &res)
	want := []steward.InstanceUID{a1, a2}
	slices.SortFunc(want, func(x, y steward.InstanceUID) int { return slices.Compare(x[:], y[:]) })
	if res.Matched != 2 || !slices.Equal(res.IDs, want) || res.Done != 0 || !res.DryRun {
		t.Fatalf("preview of restart of unhealthy agents: %+v, want the two online unhealthy ones", res)
	}
	if len(c1.messages())+len(c2.messages()) != before {
		t.Fatalf("a dry run sent commands")
	}
	if r := e.do("POST", "/api/v1/agents/bulk?health=unhealthy", map[string]any{"action": "restart", "expect": 3}, auth...); r.status != 409 {
		t.Fatalf("restart with a stale preview count: %d %s", r.status, r.body)
	}
	e.do("POST", "/api/v1/agents/bulk?health=unhealthy", map[string]any{"action": "restart", "expect": 2}, auth...).decode(t, &res)
	if res.Matched != 2 || res.Done != 1 || res.Failed != 1 || len(res.Failures) != 1 || res.Failures[0].ID != a2 {
		t.Fatalf("restart: %+v, want a1 restarted and a2 (no restart capability) failed", res)
	}
	if m := c1.messages(); m[len(m)-1].GetCommand() == nil {
		t.Errorf("a1 got no restart command")
	}

	// Label: merge and remove; the filter is the list's.
	e.do("POST", "/api/v1/agents/bulk?type=otelcol&online=true", map[string]any{"action": "label", "set_labels": map[string]string{"team": "obs", "tier": "1"}}, auth...).decode(t, &res)
	if res.Done != 3 {
		t.Fatalf("label: %+v", res)
	}
	e.do("POST", "/api/v1/agents/bulk?selector=team%3Dobs", map[string]any{"action": "label", "remove_labels": []string{"team"}}, auth...).decode(t, &res)
	if res.Done != 3 {
		t.Fatalf("unlabel by the label selected on: %+v", res)
	}
	a, _ := e.cp.Agent(t.Context(), a1)
	if a.Labels["tier"] != "1" || a.Labels["team"] != "" {
		t.Errorf("labels after label and unlabel: %v", a.Labels)
	}

	// Forget acts on offline agents only.
	e.do("POST", "/api/v1/agents/bulk", map[string]any{"action": "forget"}, auth...).decode(t, &res)
	if res.Matched != 1 || res.Done != 1 || res.IDs[0] != gone {
		t.Fatalf("forget: %+v, want the one offline agent", res)
	}
	if r := e.do("POST", "/api/v1/agents/bulk?online=true", map[string]any{"action": "forget"}, auth...); r.status != 400 {
		t.Errorf("forget online agents: %d %s", r.status, r.body)
	}
	for _, body := range []map[string]any{{"action": "explode"}, {"action": "label"}, {"action": "label", "set_labels": map[string]string{"a b": "c"}}} {
		if r := e.do("POST", "/api/v1/agents/bulk", body, auth...); r.status != 400 {
			t.Errorf("%v: %d %s", body, r.status, r.body)
		}
	}

	// One audit entry per action taken, none for previews or refusals.
	var audit stewardhttp.AuditResponse
	e.do("GET", "/api/v1/audit?action="+stewardhttp.AuditBulkPrefix, nil, auth...).decode(t, &audit)
	var got []string
	for _, x := range audit.Entries {
		got = append(got, x.Action+" "+x.Target)
	}
	wantAudit := []string{"agents.bulk.forget /api/v1/agents?", "agents.bulk.label /api/v1/agents?selector=team%3Dobs",
		"agents.bulk.label /api/v1/agents?online=true&type=otelcol", "agents.bulk.restart /api/v1/agents?health=unhealthy"}
	if !slices.Equal(got, wantAudit) {
		t.Errorf("audit: %q, want %q", got, wantAudit)
	}
	if d := audit.Entries[3].Details; d["matched"] != float64(2) || d["done"] != float64(1) || d["failed"] != float64(1) {
		t.Errorf("restart audit details: %v", d)
	}
}

// The client sends the filter and the request the way the handler reads
// them.
func TestClientBulkAgents(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.APITokens = []string{"secret"} })
	a1, _ := e.connect(agentSpec{name: "otelcol", version: "1"})
	e.connect(agentSpec{name: "fluentbit", version: "1"})
	c := stewardhttp.NewClient(e.ts.URL, "secret")
	res, err := c.BulkAgents(t.Context(), &steward.BulkRequest{Action: steward.BulkLabel, Filter: steward.AgentFilter{Type: "otelcol"},
		SetLabels: map[string]string{"x": "y"}})
	if err != nil || res.Done != 1 || res.IDs[0] != a1 {
		t.Fatalf("BulkAgents: %+v %v", res, err)
	}
}
