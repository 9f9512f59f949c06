package http

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/stewardhq/steward"
)

// AgentsResponse is the body of GET /api/v1/agents.
type AgentsResponse struct {
	Agents []*steward.Agent `json:"agents"`
	Total  int              `json:"total"`
}

// LabelsRequest is the body of PUT /api/v1/agents/{id}/labels.
type LabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

// EventsResponse is the body of the event listings.
type EventsResponse struct {
	Events []*steward.Event `json:"events"`
}

// DesiredConfigResponse is the body of GET /api/v1/agents/{id}/desired-config.
type DesiredConfigResponse struct {
	Files steward.ConfigMap `json:"files"`
	Hash  steward.Hash      `json:"hash"`
}

// Limits for list queries.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

func boolParam(q url.Values, name string) (*bool, error) {
	s := q.Get(name)
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "query parameter %s must be true or false, not %q", name, s)
	}
	return &b, nil
}

// intParam reads an integer in [min, max] (max < 0: unbounded), def when
// absent.
func intParam(q url.Values, name string, def, min, max int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || (max >= 0 && n > max) {
		if max >= 0 {
			return 0, steward.Errorf(steward.EINVALID, "query parameter %s must be an integer from %d to %d, not %q", name, min, max, s)
		}
		return 0, steward.Errorf(steward.EINVALID, "query parameter %s must be an integer >= %d, not %q", name, min, s)
	}
	return n, nil
}

func agentID(r *http.Request) (steward.InstanceUID, error) {
	return steward.ParseInstanceUID(r.PathValue("id"))
}

func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) error {
	f, err := parseAgentFilter(r.URL.Query())
	if err != nil {
		return err
	}
	agents, total, err := s.agents.Agents(r.Context(), f)
	if err != nil {
		return err
	}
	if agents == nil {
		agents = []*steward.Agent{}
	}
	if err := s.scrubAgents(r, agents); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, AgentsResponse{Agents: agents, Total: total})
	return nil
}

func (s *Server) handleAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	a, err := s.scrubbedAgent(r, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) handleDeleteAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	if err := s.agents.DeleteAgent(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleSetAgentLabels replaces the operator labels and returns the agent.
func (s *Server) handleSetAgentLabels(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	var req LabelsRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Labels == nil {
		req.Labels = map[string]string{}
	}
	if err := s.agents.SetAgentLabels(r.Context(), id, req.Labels); err != nil {
		return err
	}
	a, err := s.agents.Agent(r.Context(), id)
	list := []*steward.Agent{a}
	if err == nil {
		err = s.scrubAgents(r, list)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[0])
	return nil
}

func (s *Server) handleRestartAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	d, err := s.agents.RestartAgent(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, d)
	return nil
}

func (s *Server) handleCustomMessage(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	var msg steward.CustomMessage
	if err := decodeJSON(r, &msg); err != nil {
		return err
	}
	if msg.Capability == "" || msg.Type == "" {
		return steward.Errorf(steward.EINVALID, "custom message needs a capability and a type")
	}
	d, err := s.agents.SendCustomMessage(r.Context(), id, msg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, d)
	return nil
}

func (s *Server) handleAgentEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	limit, err := intParam(r.URL.Query(), "limit", DefaultEventLimit, 1, MaxEventLimit)
	if err != nil {
		return err
	}
	if _, err := s.agents.Agent(r.Context(), id); err != nil {
		return err
	}
	events, err := s.agents.AgentEvents(r.Context(), id, limit)
	if err != nil {
		return err
	}
	if events == nil {
		events = []*steward.Event{}
	}
	writeJSON(w, http.StatusOK, EventsResponse{Events: events})
	return nil
}

// handleDesiredConfig returns what the agent should run; 404 for an
// unknown agent.
func (s *Server) handleDesiredConfig(w http.ResponseWriter, r *http.Request) error {
	id, err := agentID(r)
	if err != nil {
		return err
	}
	if _, err := s.agents.Agent(r.Context(), id); err != nil {
		return err
	}
	files, hash, err := s.configs.DesiredConfig(r.Context(), id)
	if err != nil {
		return err
	}
	if files == nil {
		files = steward.ConfigMap{}
	}
	writeJSON(w, http.StatusOK, DesiredConfigResponse{Files: files, Hash: hash})
	return nil
}
