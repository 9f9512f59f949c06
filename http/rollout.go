package http

import (
	"context"
	"net/http"

	"github.com/stewardhq/steward"
)

func (s *Server) rolloutService(w http.ResponseWriter, r *http.Request) steward.RolloutService {
	if s.rollouts == nil {
		writeError(w, r, s.log, steward.Errorf(steward.ENOTIMPLEMENTED, "rollouts are not available on this server"))
	}
	return s.rollouts
}

func rolloutName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := steward.ValidateName("rollout", name); err != nil {
		return "", err
	}
	return name, nil
}

// handleRollouts lists rollouts, most recently changed first.
func (s *Server) handleRollouts(w http.ResponseWriter, r *http.Request) {
	rs := s.rolloutService(w, r)
	if rs == nil {
		return
	}
	list, err := rs.Rollouts(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if list == nil {
		list = []*steward.Rollout{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rollouts": list})
}

// handleStartRollout starts a rollout (201).
func (s *Server) handleStartRollout(w http.ResponseWriter, r *http.Request) {
	rs := s.rolloutService(w, r)
	if rs == nil {
		return
	}
	var ro steward.Rollout
	if err := decodeJSON(r, &ro); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out, err := rs.StartRollout(r.Context(), &ro)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleRollout(w http.ResponseWriter, r *http.Request) {
	rs := s.rolloutService(w, r)
	if rs == nil {
		return
	}
	name, err := rolloutName(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out, err := rs.Rollout(r.Context(), name)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePauseRollout(w http.ResponseWriter, r *http.Request) {
	s.rolloutAction(w, r, steward.RolloutService.PauseRollout)
}

func (s *Server) handleResumeRollout(w http.ResponseWriter, r *http.Request) {
	s.rolloutAction(w, r, steward.RolloutService.ResumeRollout)
}

func (s *Server) handleRollbackRollout(w http.ResponseWriter, r *http.Request) {
	s.rolloutAction(w, r, steward.RolloutService.RollbackRollout)
}

// rolloutAction applies act to the rollout named in the path.
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request, act func(steward.RolloutService, context.Context, string) (*steward.Rollout, error)) {
	rs := s.rolloutService(w, r)
	if rs == nil {
		return
	}
	name, err := rolloutName(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out, err := act(rs, r.Context(), name)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
