package controlplane

import (
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

func TestSameState(t *testing.T) {
	now := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	stored := func() *steward.Agent {
		return &steward.Agent{ID: steward.NewInstanceUID(), Online: true, Transport: "websocket", RemoteAddr: "10.0.0.1:5000",
			ConnectedAt: now, Replica: "r1", LastSeen: now, SequenceNum: 7, UpdatedAt: now,
			Description:     &steward.AgentDescription{IdentifyingAttributes: []steward.KeyValue{{Key: "service.name", Value: "otelcol"}}},
			EffectiveConfig: &steward.ConfigMap{"": {Body: []byte("a: 1\n"), ContentType: "text/yaml"}}}
	}
	for _, tc := range []struct {
		name   string
		change func(a *steward.Agent)
		same   bool
	}{
		{"a heartbeat changes nothing stored", func(a *steward.Agent) {
			a.LastSeen, a.SequenceNum, a.UpdatedAt = now.Add(time.Second), 8, now.Add(time.Second)
		}, true},
		{"a reconnect after a restart comes online", func(a *steward.Agent) { a.Online = false }, false},
		{"a reconnect from another address", func(a *steward.Agent) { a.RemoteAddr = "10.0.0.2:5000" }, false},
		{"a reconnect at a later time", func(a *steward.Agent) { a.ConnectedAt = now.Add(time.Minute) }, false},
		{"another replica", func(a *steward.Agent) { a.Replica = "r2" }, false},
		{"another transport", func(a *steward.Agent) { a.Transport = "http" }, false},
		{"a new effective config", func(a *steward.Agent) {
			a.EffectiveConfig = &steward.ConfigMap{"": {Body: []byte("a: 2\n"), ContentType: "text/yaml"}}
		}, false},
		{"a new description", func(a *steward.Agent) { a.Description = &steward.AgentDescription{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := stored(), stored()
			b.ID = a.ID
			tc.change(b)
			if got := sameState(a, b); got != tc.same {
				t.Fatalf("sameState = %v, want %v", got, tc.same)
			}
		})
	}
}
