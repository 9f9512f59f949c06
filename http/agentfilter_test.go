package http_test

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// Every filter the agent listing has travels through the client's query
// and back into the same filter.
func TestAgentFilterQueryRoundTrip(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.APITokens = []string{"secret"} })
	healthy, bad := true, false
	id1, _ := e.connect(agentSpec{name: "otelcol", version: "1.0", host: "b", healthy: &healthy})
	id2, _ := e.connect(agentSpec{name: "otelcol", version: "2.0", host: "a", healthy: &bad})
	id3, _ := e.connect(agentSpec{name: "fluentbit", version: "2.0", host: "c", configStatus: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED})
	c := stewardhttp.NewClient(e.ts.URL, "secret")
	ctx := context.Background()
	cases := []struct {
		name string
		f    steward.AgentFilter
		want []steward.InstanceUID
	}{
		{"type", steward.AgentFilter{Type: "otelcol", Sort: steward.SortHost}, []steward.InstanceUID{id2, id1}},
		{"version, host descending", steward.AgentFilter{Version: "2.0", Sort: steward.SortHost, Desc: true}, []steward.InstanceUID{id3, id2}},
		{"health", steward.AgentFilter{Health: steward.HealthUnhealthy}, []steward.InstanceUID{id2}},
		{"health unknown", steward.AgentFilter{Health: steward.HealthUnknown}, []steward.InstanceUID{id3}},
		{"attribute", steward.AgentFilter{Attributes: map[string]string{"host.name": "c"}}, []steward.InstanceUID{id3}},
		{"page of a sort", steward.AgentFilter{Sort: steward.SortHost, Offset: 1, Limit: 1}, []steward.InstanceUID{id1}},
	}
	for _, tc := range cases {
		q := stewardhttp.AgentFilterQuery(tc.f)
		agents, total, err := c.Agents(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s (?%s): %v", tc.name, q.Encode(), err)
		}
		var got []steward.InstanceUID
		for _, a := range agents {
			got = append(got, a.ID)
		}
		if !slices.Equal(got, tc.want) || (tc.f.Limit == 0 && total != len(tc.want)) {
			t.Errorf("%s (?%s): got %v (total %d), want %v", tc.name, q.Encode(), got, total, tc.want)
		}
	}
	full := steward.AgentFilter{Selector: "env=prod", Search: "x", Sync: steward.SyncFailed, Health: steward.HealthUnknown,
		Online: &healthy, Healthy: &bad, Type: "t", Version: "v", Attributes: map[string]string{"a.b": "1", "c": ""},
		Sort: steward.SortLastSeen, Desc: true, Offset: 3, Limit: 7}
	if q := stewardhttp.AgentFilterQuery(full); q.Get("sort") != "-last_seen" || q.Get("attr.a.b") != "1" || !q.Has("attr.c") {
		t.Errorf("query of a full filter: %s", q.Encode())
	}
}

// Bad filter parameters are 400s that name the parameter's problem.
func TestAgentFilterRejectsBadParameters(t *testing.T) {
	e := newEnv(t, nil)
	for _, q := range []string{"sort=colour", "health=sick", "sync=APPLIED", "attr.a=1&attr.a=2", "offset=-1", "online=maybe", "sort=--id"} {
		r := e.do("GET", "/api/v1/agents?"+q, nil)
		if r.status != 400 || r.errorCode(t) != steward.EINVALID {
			t.Errorf("?%s: %d %s", q, r.status, r.body)
		}
	}
	r := e.do("GET", "/api/v1/agents?"+url.Values{"sort": {"-id"}, "attr.host.name": {""}}.Encode(), nil)
	if r.status != 200 {
		t.Errorf("valid filter: %d %s", r.status, r.body)
	}
}
