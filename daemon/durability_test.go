package daemon_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// The durability contract of the group commit (docs/controlplane.md):
// what the API has shown is stored at most one write interval (100 ms)
// plus a transaction later, so a kill -9 that long after the API showed
// every ack loses none of them.
func TestKillNineKeepsAcknowledgedState(t *testing.T) {
	bin, err := buildSteward()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := startProcess(t, bin, "k0", "--data-dir", dir, "--replica", "k")
	api := srv.server()
	var agents []*agent
	for i := 0; i < 8; i++ {
		agents = append(agents, startAgent(t, "ws", "ws://"+srv.opamp+"/v1/opamp", "prod"))
	}
	for _, a := range agents {
		eventually(t, "agent "+a.id()+" online", func() bool {
			var got steward.Agent
			return api.call(t, "GET", "/api/v1/agents/"+a.id(), nil, nil) == 200 &&
				api.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got) == 200 && got.Online
		})
	}
	body := fmt.Sprintf("pushed: %d\n", time.Now().UnixNano())
	api.call(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": body}}}, &steward.Config{})
	api.call(t, "PUT", "/api/v1/assignments/prod", map[string]any{"name": "prod", "config": "base", "selector": "env=prod"}, &steward.Assignment{})
	waitApplied(t, api, agents, body)
	// The stated bound: one write interval plus the transaction.
	time.Sleep(250 * time.Millisecond)
	srv.kill()

	srv = startProcess(t, bin, "k1", "--data-dir", dir, "--replica", "k")
	api = srv.server()
	for _, a := range agents {
		var got steward.Agent
		if code := api.call(t, "GET", "/api/v1/agents/"+a.id(), nil, &got); code != 200 {
			t.Fatalf("agent %s after the restart: HTTP %d", a.id(), code)
		}
		if got.RemoteConfigStatus == nil || got.RemoteConfigStatus.Status != steward.RemoteConfigApplied ||
			got.EffectiveConfig == nil || string((*got.EffectiveConfig)["base"].Body) != body {
			t.Fatalf("agent %s lost its acknowledged state in the kill: %+v", a.id(), got.RemoteConfigStatus)
		}
	}
}
