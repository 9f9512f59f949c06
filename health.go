package steward

import (
	"encoding/json"
	"maps"
	"slices"
)

// HealthState is an agent's health as the console and CLI show it.
type HealthState string

const (
	HealthHealthy   HealthState = "healthy"
	HealthUnhealthy HealthState = "unhealthy"
	// HealthUnknown: the agent is offline (what it last reported may no
	// longer hold) or has not reported its health.
	HealthUnknown HealthState = "unknown"
)

// HealthState returns the agent's health: unknown when it is offline or
// never reported health, else what it last reported.
func (a *Agent) HealthState() HealthState {
	switch {
	case !a.Online || a.Health == nil:
		return HealthUnknown
	case a.Health.Healthy:
		return HealthHealthy
	}
	return HealthUnhealthy
}

// HealthReason says why an online agent is unhealthy (see
// ComponentHealth.Reason); "" otherwise.
func (a *Agent) HealthReason() string {
	if a.HealthState() != HealthUnhealthy {
		return ""
	}
	return a.Health.Reason()
}

// Reason explains an unhealthy health tree: the top-level last_error, else
// the first unhealthy component (depth first, by name) that gives a
// last_error or status, as "path/to/component: message", else the top-level
// status. "" when healthy or when nothing says why.
func (h *ComponentHealth) Reason() string {
	if h == nil || h.Healthy {
		return ""
	}
	if h.LastError != "" {
		return h.LastError
	}
	if r := h.componentReason(""); r != "" {
		return r
	}
	return h.Status
}

func (h *ComponentHealth) componentReason(prefix string) string {
	for _, n := range slices.Sorted(maps.Keys(h.Components)) {
		c := h.Components[n]
		if c == nil || c.Healthy {
			continue
		}
		path := prefix + n
		if r := c.componentReason(path + "/"); r != "" {
			return r
		}
		if msg := c.LastError; msg != "" {
			return path + ": " + msg
		}
		if c.Status != "" {
			return path + ": " + c.Status
		}
	}
	return ""
}

// agentJSON has Agent's fields without its MarshalJSON.
type agentJSON Agent

// MarshalJSON writes the agent's fields plus the derived health_state and
// health_reason, so that every client reads offline agents as unknown
// rather than as what they last reported.
func (a Agent) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		*agentJSON
		HealthState  HealthState `json:"health_state"`
		HealthReason string      `json:"health_reason,omitempty"`
	}{(*agentJSON)(&a), a.HealthState(), a.HealthReason()})
}
