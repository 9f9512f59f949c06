package http

import (
	"context"
	"net/http"

	"github.com/stewardhq/steward"
)

// AuditBulkPrefix prefixes the audit action of a bulk request that acted
// ("agents.bulk.restart"); a dry run is not audited.
const AuditBulkPrefix = "agents.bulk."

// handleBulkAgents serves POST /api/v1/agents/bulk: the agent filter in the
// query (as for GET /api/v1/agents), the action in the body. A request that
// acts is audited once, with its filter and counts.
func (s *Server) handleBulkAgents(w http.ResponseWriter, r *http.Request) error {
	f, err := parseAgentFilter(r.URL.Query())
	if err != nil {
		return err
	}
	var req steward.BulkRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	req.Filter = f
	res, err := s.agents.BulkAgents(r.Context(), &req)
	if res != nil && !res.DryRun {
		s.auditBulk(r, res)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// auditBulk records one entry for a bulk action: who, which action, the
// filter (as the agent list's query, which is also the entry's target) and
// how many agents it matched, did and failed.
func (s *Server) auditBulk(r *http.Request, res *steward.BulkResult) {
	p := PrincipalFrom(r.Context())
	if s.creds == nil || p == nil {
		return
	}
	query := r.URL.Query().Encode()
	e := &steward.AuditEntry{Actor: actorName(p), Action: AuditBulkPrefix + string(res.Action), Target: "/api/v1/agents?" + query,
		Details: map[string]any{"filter": query, "matched": res.Matched, "done": res.Done, "failed": res.Failed}}
	s.recordAudit(r, e)
}

// BulkAgents runs (or, with DryRun, previews) one action on every agent
// req.Filter matches.
func (c *Client) BulkAgents(ctx context.Context, req *steward.BulkRequest) (*steward.BulkResult, error) {
	var res steward.BulkResult
	if _, err := c.do(ctx, "POST", "/api/v1/agents/bulk", AgentFilterQuery(req.Filter), req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
