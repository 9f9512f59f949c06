package http

import (
	"context"
	"net/http"
	"strconv"

	"github.com/stewardhq/steward"
)

// Secrets in responses. Header values of connection settings (such as
// "Authorization: Bearer …") are secrets: every response shows them as
// steward.RedactedSecret, and so does an agent's reported effective config
// wherever it repeats one (its supervisor writes the offered headers into
// the collector's config). Only an admin may read them, by asking with
// ?reveal=true, which is audited as "secrets.revealed". Operators write
// them; sending back the marker keeps the stored value.

// AuditSecretsRevealed is the audit action of a request that read secrets
// with ?reveal=true.
const AuditSecretsRevealed = "secrets.revealed"

// reveal reports whether r asks to see secrets (?reveal=true): EINVALID for
// a value that is not a boolean, EFORBIDDEN unless the caller is an admin.
// A granted reveal is audited.
func (s *Server) reveal(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("reveal")
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, steward.Errorf(steward.EINVALID, "invalid reveal=%q: use true or false", v)
	}
	if !on {
		return false, nil
	}
	p := PrincipalFrom(r.Context())
	if p == nil || !p.Role.Allows(steward.RoleAdmin) {
		return false, steward.Errorf(steward.EFORBIDDEN, "reveal=true needs the admin role: secrets are write-only for other roles")
	}
	if s.creds != nil {
		e := &steward.AuditEntry{Actor: actorName(p), Action: AuditSecretsRevealed, Target: r.URL.Path}
		if err := s.creds.RecordAudit(r.Context(), e); err != nil {
			return false, err // no unaudited reveal
		}
	}
	return true, nil
}

// scrubber returns what hides the secrets known to the server in agent
// reports; one that changes nothing when there are none (or no
// credentials service).
func (s *Server) scrubber(ctx context.Context) (*steward.SecretScrubber, error) {
	if s.creds == nil {
		return steward.NewSecretScrubber(nil), nil
	}
	all, err := s.creds.ConnectionSettingsList(ctx)
	if err != nil && steward.ErrorCode(err) != steward.ENOTIMPLEMENTED {
		return nil, err
	}
	return steward.NewSecretScrubber(all), nil
}

// scrubAgents hides known secrets in the agents' reports unless r asked
// (as an admin) to reveal them.
func (s *Server) scrubAgents(r *http.Request, agents []*steward.Agent) error {
	if on, err := s.reveal(r); on || err != nil {
		return err
	}
	sc, err := s.scrubber(r.Context())
	if err != nil {
		return err
	}
	for i, a := range agents {
		agents[i] = sc.Agent(a)
	}
	return nil
}

// redactSettings replaces secret values in list unless r asked (as an
// admin) to reveal them.
func (s *Server) redactSettings(r *http.Request, list []*steward.ConnectionSettings) error {
	if on, err := s.reveal(r); on || err != nil {
		return err
	}
	for i, c := range list {
		list[i] = c.Redacted()
	}
	return nil
}
