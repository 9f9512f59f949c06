package http

import (
	"context"
	"net/http"

	"github.com/stewardhq/steward"
)

// rolloutService returns the rollouts service, or ENOTIMPLEMENTED (501) when this
// server has none.
func (s *Server) rolloutService() (steward.RolloutService, error) {
	if s.rollouts == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "rollouts are not available on this server")
	}
	return s.rollouts, nil
}

func rolloutName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := steward.ValidateName("rollout", name); err != nil {
		return "", err
	}
	return name, nil
}

// handleRollouts lists rollouts, most recently changed first.
func (s *Server) handleRollouts(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.rolloutService()
	if err != nil {
		return err
	}
	list, err := rs.Rollouts(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.Rollout{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rollouts": list})
	return nil
}

// handleStartRollout starts a rollout (201).
func (s *Server) handleStartRollout(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.rolloutService()
	if err != nil {
		return err
	}
	var ro steward.Rollout
	if err := decodeJSON(r, &ro); err != nil {
		return err
	}
	if refused, err := s.guard(w, r, steward.Change{Rollout: &ro}, "rollout "+ro.Name); refused || err != nil {
		return err
	}
	out, err := rs.StartRollout(r.Context(), &ro)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleRollout(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.rolloutService()
	if err != nil {
		return err
	}
	name, err := rolloutName(r)
	if err != nil {
		return err
	}
	out, err := rs.Rollout(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handlePauseRollout(w http.ResponseWriter, r *http.Request) error {
	return s.rolloutAction(w, r, steward.RolloutService.PauseRollout)
}

func (s *Server) handleResumeRollout(w http.ResponseWriter, r *http.Request) error {
	return s.rolloutAction(w, r, steward.RolloutService.ResumeRollout)
}

func (s *Server) handleRollbackRollout(w http.ResponseWriter, r *http.Request) error {
	return s.rolloutAction(w, r, steward.RolloutService.RollbackRollout)
}

// rolloutAction applies act to the rollout named in the path.
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request, act func(steward.RolloutService, context.Context, string) (*steward.Rollout, error)) error {
	rs, err := s.rolloutService()
	if err != nil {
		return err
	}
	name, err := rolloutName(r)
	if err != nil {
		return err
	}
	out, err := act(rs, r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
