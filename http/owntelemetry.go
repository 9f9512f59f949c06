package http

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// TelemetryLogsResponse is the body of GET /api/v1/agents/{id}/telemetry/logs.
type TelemetryLogsResponse struct {
	Logs []steward.TelemetryLog `json:"logs"`
}

// registerOwnTelemetryRoutes serves the agents' own telemetry (what they
// send to Steward's OTLP receiver); ENOTFOUND without Options.Telemetry.
func (s *Server) registerOwnTelemetryRoutes() {
	s.handle("GET /api/v1/agents/{id}/telemetry", s.handleAgentTelemetry, authed)
	s.handle("GET /api/v1/agents/{id}/telemetry/logs", s.handleAgentTelemetryLogs, authed)
	s.handle("GET /api/v1/telemetry", s.handleFleetTelemetry, authed)
}

// windowParam reads ?window= as a Go duration ("15m", "1h") or whole days
// ("7d"); default an hour.
func windowParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("window")
	if v == "" {
		return time.Hour, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	return 0, steward.Errorf(steward.EINVALID, "query parameter window must be a duration such as 15m, 1h or 7d, not %q", v)
}

var errNoTelemetry = steward.Errorf(steward.ENOTFOUND, "own telemetry is not enabled on this server")

func (s *Server) handleAgentTelemetry(w http.ResponseWriter, r *http.Request) error {
	if s.telemetry == nil {
		return errNoTelemetry
	}
	id, err := agentID(r)
	if err != nil {
		return err
	}
	d, err := windowParam(r)
	if err != nil {
		return err
	}
	t, err := s.telemetry.AgentTelemetry(r.Context(), id, d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) handleAgentTelemetryLogs(w http.ResponseWriter, r *http.Request) error {
	if s.telemetry == nil {
		return errNoTelemetry
	}
	id, err := agentID(r)
	if err != nil {
		return err
	}
	logs, err := s.telemetry.AgentTelemetryLogs(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, TelemetryLogsResponse{Logs: logs})
	return nil
}

func (s *Server) handleFleetTelemetry(w http.ResponseWriter, r *http.Request) error {
	if s.telemetry == nil {
		return errNoTelemetry
	}
	d, err := windowParam(r)
	if err != nil {
		return err
	}
	top, err := intParam(r.URL.Query(), "top", 10, 0, 100)
	if err != nil {
		return err
	}
	t, err := s.telemetry.FleetTelemetry(r.Context(), d, top)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}
