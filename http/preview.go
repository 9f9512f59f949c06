package http

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/stewardhq/steward"
)

// Previews and the guard that stops a blocked change: every change to a
// config, an assignment or a rollout can be previewed (POST …/preview), and
// the same preview runs before the change is made. A change the preview
// blocks (validation errors, or agents lacking components the config
// defines) is refused with 422 and the preview, unless the request says
// force=true; an override is recorded in the audit log with what it
// overrode.

// PreviewResponse is the body of every POST …/preview.
type PreviewResponse struct {
	*steward.Preview
	// Version is the version a previewed config would be saved as (the
	// latest one when its content is unchanged); ConfigDiff is the diff
	// from the latest version to it. Both only for config previews.
	Version    int    `json:"version,omitempty"`
	ConfigDiff string `json:"config_diff,omitempty"`
}

// BlockedResponse is the 422 body of a change the preview blocks.
type BlockedResponse struct {
	Error   ErrorBody        `json:"error"`
	Preview *steward.Preview `json:"preview"`
}

// EVALIDATION is the error code of a change refused for its validation
// findings (HTTP 422).
const EVALIDATION = "validation_failed"

func (s *Server) registerPreviewRoutes() {
	s.handle("POST /api/v1/configs/{name}/preview", s.handlePreviewConfig, authed)
	s.handle("POST /api/v1/assignments/{name}/preview", s.handlePreviewAssignment, authed)
	s.handle("POST /api/v1/rollouts/preview", s.handlePreviewRollout, authed)
}

func (s *Server) previewService() (steward.PreviewService, error) {
	if s.previews == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "previews are not available on this server")
	}
	return s.previews, nil
}

func previewOptions(r *http.Request) (steward.PreviewOptions, error) {
	q := r.URL.Query()
	offset, err := intParam(q, "offset", 0, 0, -1)
	if err != nil {
		return steward.PreviewOptions{}, err
	}
	limit, err := intParam(q, "limit", 20, 0, 500)
	if err != nil {
		return steward.PreviewOptions{}, err
	}
	return steward.PreviewOptions{Offset: offset, Limit: limit}, nil
}

// preview runs the preview and fills each listed agent's diff.
func (s *Server) preview(w http.ResponseWriter, r *http.Request, ch steward.Change) (*PreviewResponse, error) {
	ps, err := s.previewService()
	if err != nil {
		return nil, err
	}
	opts, err := previewOptions(r)
	if err != nil {
		return nil, err
	}
	p, err := ps.Preview(r.Context(), ch, opts)
	if err != nil {
		return nil, err
	}
	for _, a := range p.Agents {
		a.Diff, a.DiffNote = effectiveDiff(a.Desired, a.Effective)
	}
	return &PreviewResponse{Preview: p}, nil
}

func (s *Server) handlePreviewConfig(w http.ResponseWriter, r *http.Request) error {
	c, err := configBody(r)
	if err != nil {
		return err
	}
	name := c.Name
	out, err := s.preview(w, r, steward.Change{Config: c})
	if err != nil {
		return err
	}
	latest, err := s.configs.Config(r.Context(), name, 0)
	switch {
	case err == nil && string(latest.Hash) == string(c.Files.Hash()):
		out.Version = latest.Version
	case err == nil:
		c.Version = latest.Version + 1
		out.Version, out.ConfigDiff = c.Version, DiffConfigs(latest, c)
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		c.Version = 1
		out.Version, out.ConfigDiff = 1, DiffConfigs(&steward.Config{Name: name}, c)
	default:
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handlePreviewAssignment(w http.ResponseWriter, r *http.Request) error {
	a, err := assignmentBody(r)
	if err != nil {
		return err
	}
	out, err := s.preview(w, r, steward.Change{Assignment: a})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handlePreviewRollout previews a rollout at its "stage" (0: the first),
// new or running (by name).
func (s *Server) handlePreviewRollout(w http.ResponseWriter, r *http.Request) error {
	var ro steward.Rollout
	if err := decodeJSON(r, &ro); err != nil {
		return err
	}
	out, err := s.preview(w, r, steward.Change{Rollout: &ro})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// forceParam reads ?force=true.
func forceParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, steward.Errorf(steward.EINVALID, "force=%q: use true or false", v)
	}
	return b, nil
}

// guard previews ch before it is made. When the preview blocks it, it
// answers 422 with the preview and returns refused, unless the request
// forces it; a forced change is audited with what it overrode. Without a
// preview service nothing is checked.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, ch steward.Change, what string) (refused bool, err error) {
	force, err := forceParam(r)
	if err != nil || s.previews == nil {
		return false, err
	}
	p, err := s.previews.Preview(r.Context(), ch, steward.PreviewOptions{Limit: 1})
	if err != nil || !p.Blocked {
		return false, err
	}
	if !force {
		writeJSON(w, http.StatusUnprocessableEntity, BlockedResponse{
			Error:   ErrorBody{Code: EVALIDATION, Message: blockedMessage(what, p)},
			Preview: p,
		})
		return true, nil
	}
	s.auditOverride(r, what, p)
	return false, nil
}

// blockedMessage says in one paragraph why a change was refused, for
// people and the CLI.
func blockedMessage(what string, p *steward.Preview) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is blocked by validation", what)
	var errs []string
	for _, f := range p.Findings {
		if f.Severity == steward.SeverityError {
			errs = append(errs, f.String())
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "; %d error(s): %s", len(errs), strings.Join(errs, "; "))
	}
	if p.Missing > 0 {
		fmt.Fprintf(&b, "; %d agent(s) lack components it defines:", p.Missing)
		for i, m := range p.MissingAgents {
			if i == 5 {
				fmt.Fprintf(&b, " and %d more", p.Missing-5)
				break
			}
			fmt.Fprintf(&b, " %s (%s)", agentLabel(m.ID, m.Name), componentList(m.Missing))
		}
	}
	b.WriteString(". Fix the config, or repeat the request with force=true to override (audited).")
	return b.String()
}

func agentLabel(id steward.InstanceUID, name string) string {
	if name == "" {
		return id.String()
	}
	return name + " " + id.String()
}

func componentList(cs []steward.Component) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// auditOverride records a forced change's findings.
func (s *Server) auditOverride(r *http.Request, what string, p *steward.Preview) {
	actor := "anonymous"
	if pr := PrincipalFrom(r.Context()); pr != nil {
		actor = actorName(pr)
	}
	s.log.Warn("http: blocked change forced", "actor", actor, "change", what, "missing_agents", p.Missing, "findings", len(p.Findings))
	if s.creds == nil {
		return
	}
	var errs []string
	for _, f := range p.Findings {
		if f.Severity == steward.SeverityError {
			errs = append(errs, f.String())
		}
	}
	e := &steward.AuditEntry{Actor: actor, Action: "validation.override", Target: r.URL.Path,
		Details: map[string]any{"change": what, "errors": errs, "agents_missing_components": p.Missing, "agents_changed": p.Changed}}
	s.recordAudit(r, e)
}
