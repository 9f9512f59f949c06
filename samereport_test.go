package steward_test

import (
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// SameReport tells a change of state only (what a narrow write stores)
// from a change of anything else, comparing nested values by content.
func TestSameReport(t *testing.T) {
	base := func() *steward.Agent {
		return &steward.Agent{ID: steward.NewInstanceUID(), Capabilities: steward.AgentReportsStatus,
			Description:     &steward.AgentDescription{IdentifyingAttributes: []steward.KeyValue{{Key: "service.name", Value: "a"}}},
			EffectiveConfig: &steward.ConfigMap{"": {Body: []byte("receivers: {}")}},
			Labels:          map[string]string{"env": "prod"}}
	}
	now := time.Now()
	for _, tt := range []struct {
		name   string
		change func(a *steward.Agent)
		same   bool
	}{
		{"state fields", func(a *steward.Agent) {
			a.Online, a.Replica, a.DisconnectedAt, a.UpdatedAt, a.LastSeen, a.SequenceNum = true, "r2", now, now, now, 9
			a.Transport, a.RemoteAddr, a.ConnectedAt, a.CreatedAt = "http", "1.2.3.4:5", now, now
			a.RemoteConfigStatus = &steward.RemoteConfigStatus{Status: steward.RemoteConfigApplied}
			a.Sync = &steward.AgentSync{State: steward.SyncInSync}
		}, true},
		{"equal effective config anew", func(a *steward.Agent) {
			a.EffectiveConfig = &steward.ConfigMap{"": {Body: []byte("receivers: {}")}}
		}, true},
		{"another effective config (state: stored apart by hash)", func(a *steward.Agent) {
			a.EffectiveConfig = &steward.ConfigMap{"": {Body: []byte("receivers: {otlp: {}}")}}
		}, true},
		{"effective config emptied", func(a *steward.Agent) { a.EffectiveConfig = &steward.ConfigMap{} }, false},
		{"effective config gone", func(a *steward.Agent) { a.EffectiveConfig = nil }, false},
		{"description", func(a *steward.Agent) {
			a.Description = &steward.AgentDescription{IdentifyingAttributes: []steward.KeyValue{{Key: "service.name", Value: "b"}}}
		}, false},
		{"labels", func(a *steward.Agent) { a.Labels = map[string]string{"env": "dev"} }, false},
		{"capabilities", func(a *steward.Agent) { a.Capabilities |= steward.AgentReportsHealth }, false},
		{"health (state)", func(a *steward.Agent) { a.Health = &steward.ComponentHealth{Healthy: true} }, true},
		{"OpAMP settings offered", func(a *steward.Agent) { a.OpAMPSettingsOffered = steward.Hash{1} }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := base()
			b := *a
			tt.change(&b)
			if got := steward.SameReport(a, &b); got != tt.same {
				t.Fatalf("SameReport = %v, want %v", got, tt.same)
			}
		})
	}
}
