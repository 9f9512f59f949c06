package steward

import "context"

// FleetSummary counts the fleet for an overview.
type FleetSummary struct {
	Total   int `json:"total"`
	Online  int `json:"online"`
	Offline int `json:"offline"`
	// Healthy counts online agents that report healthy: an offline
	// agent's health is unknown (see Agent.HealthState).
	Healthy   int `json:"healthy"`
	Unhealthy int `json:"unhealthy"` // unhealthy, or health unknown (offline, not reported)
	// ByType counts agents by service.name ("" when not reported).
	ByType map[string]int `json:"by_type"`
	// ByVersion counts agents by service.version ("" when not reported).
	ByVersion map[string]int `json:"by_version"`
	// ByConfigStatus counts agents by remote config status (UNSET when not
	// reported).
	ByConfigStatus map[string]int `json:"by_config_status"`
	// BySync counts agents by sync state (Agent.SyncState).
	BySync map[string]int `json:"by_sync"`
}

// NewFleetSummary returns a summary with its maps made.
func NewFleetSummary() *FleetSummary {
	return &FleetSummary{ByType: map[string]int{}, ByVersion: map[string]int{}, ByConfigStatus: map[string]int{}, BySync: map[string]int{}}
}

// Add counts one agent.
func (s *FleetSummary) Add(a *Agent) {
	s.AddState(a.Online, a.HealthState() == HealthHealthy, a.Attribute(AttrServiceName), a.Attribute(AttrServiceVersion), a.ConfigState(), a.SyncState())
}

// AddState counts one agent from the values Add reads of it (healthy is
// HealthState() == HealthHealthy).
func (s *FleetSummary) AddState(online, healthy bool, typ, version string, config RemoteConfigState, sync SyncState) {
	s.Total++
	if online {
		s.Online++
	} else {
		s.Offline++
	}
	if healthy {
		s.Healthy++
	} else {
		s.Unhealthy++
	}
	s.ByType[typ]++
	s.ByVersion[version]++
	s.ByConfigStatus[string(config)]++
	s.BySync[string(sync)]++
}

// ConfigState is the agent's reported remote config status, UNSET when it
// reported none.
func (a *Agent) ConfigState() RemoteConfigState {
	if a.RemoteConfigStatus == nil || a.RemoteConfigStatus.Status == "" {
		return RemoteConfigUnset
	}
	return a.RemoteConfigStatus.Status
}

// SummaryStore is implemented by stores that count the fleet in the
// database rather than by reading every agent. Summary counts every stored
// agent except those listed in except, which the caller counts itself
// (from state not yet written, say); unknown ids in except are ignored.
type SummaryStore interface {
	Summary(ctx context.Context, except []InstanceUID) (*FleetSummary, error)
}

// Summarizer is implemented by services that can summarize the fleet.
type Summarizer interface {
	Summary(ctx context.Context) (*FleetSummary, error)
}
