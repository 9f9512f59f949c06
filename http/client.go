package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Client is a Go client of the REST API. It implements steward.AgentService
// and steward.ConfigService over HTTP; every error it returns is a
// *steward.Error carrying the server's code (EUNAVAILABLE when the server
// cannot be reached).
type Client struct {
	// URL is the server's base URL, e.g. http://localhost:8080.
	URL string
	// Token is sent as "Authorization: Bearer <token>" when set.
	Token string
	// HTTPClient defaults to a client with a 60 second timeout.
	HTTPClient *http.Client
	// RevealSecrets asks for secrets in clear (?reveal=true) when reading
	// agents and connection settings; the server allows it to admins only
	// (EFORBIDDEN otherwise) and audits it.
	RevealSecrets bool
	// Force makes changes their preview blocks (validation errors, agents
	// lacking components): PUT config, PUT assignment and start rollout
	// send ?force=true. The server audits each override.
	Force bool
}

// forceQuery returns ?force=true when Force is set.
func (c *Client) forceQuery() url.Values {
	if !c.Force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

// revealQuery returns q with reveal=true when RevealSecrets is set.
func (c *Client) revealQuery(q url.Values) url.Values {
	if !c.RevealSecrets {
		return q
	}
	if q == nil {
		q = url.Values{}
	}
	q.Set("reveal", "true")
	return q
}

var (
	_ steward.AgentService  = (*Client)(nil)
	_ steward.ConfigService = (*Client)(nil)
)

// NewClient returns a Client for the server at baseURL.
func NewClient(baseURL, token string) *Client {
	return &Client{URL: strings.TrimRight(baseURL, "/"), Token: token}
}

var defaultHTTPClient = &http.Client{Timeout: 60 * time.Second}

// do sends a request and decodes a JSON response into out (unless nil). A
// non-2xx status becomes a *steward.Error from the error body.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	u := strings.TrimRight(c.URL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, steward.Errorf(steward.EINVALID, "cannot encode request: %v", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, steward.Errorf(steward.EINVALID, "bad server URL %q: %v", c.URL, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, steward.Errorf(steward.EUNAVAILABLE, "cannot reach the Steward server at %s: %v", c.URL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, steward.Errorf(steward.EUNAVAILABLE, "reading the response from %s: %v", c.URL, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, responseError(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, steward.Errorf(steward.EINTERNAL, "unexpected response from %s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// responseError converts an error response to a *steward.Error.
func responseError(status int, body []byte) *steward.Error {
	var er ErrorResponse
	if json.Unmarshal(body, &er) == nil && er.Error.Code != "" {
		return &steward.Error{Code: er.Error.Code, Message: er.Error.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return steward.Errorf(FromErrorStatusCode(status), "HTTP %d: %s", status, msg)
}

func agentPath(id steward.InstanceUID, rest string) string {
	return "/api/v1/agents/" + id.String() + rest
}

// Agent returns one agent.
func (c *Client) Agent(ctx context.Context, id steward.InstanceUID) (*steward.Agent, error) {
	var a steward.Agent
	if _, err := c.do(ctx, "GET", agentPath(id, ""), c.revealQuery(nil), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Agents lists agents matching f and the total number of matches.
func (c *Client) Agents(ctx context.Context, f steward.AgentFilter) ([]*steward.Agent, int, error) {
	q := AgentFilterQuery(f)
	var resp AgentsResponse
	if _, err := c.do(ctx, "GET", "/api/v1/agents", c.revealQuery(q), nil, &resp); err != nil {
		return nil, 0, err
	}
	return resp.Agents, resp.Total, nil
}

// SetAgentLabels replaces the operator labels of an agent.
func (c *Client) SetAgentLabels(ctx context.Context, id steward.InstanceUID, labels map[string]string) error {
	if labels == nil {
		labels = map[string]string{}
	}
	_, err := c.do(ctx, "PUT", agentPath(id, "/labels"), nil, LabelsRequest{Labels: labels}, nil)
	return err
}

// DeleteAgent forgets an agent.
func (c *Client) DeleteAgent(ctx context.Context, id steward.InstanceUID) error {
	_, err := c.do(ctx, "DELETE", agentPath(id, ""), nil, nil, nil)
	return err
}

// RestartAgent sends the agent the Restart command; the Delivery says
// whether it was sent or queued for a plain-HTTP agent's next poll.
func (c *Client) RestartAgent(ctx context.Context, id steward.InstanceUID) (*steward.Delivery, error) {
	var d steward.Delivery
	if _, err := c.do(ctx, "POST", agentPath(id, "/restart"), nil, struct{}{}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// SendCustomMessage sends the agent a custom message.
func (c *Client) SendCustomMessage(ctx context.Context, id steward.InstanceUID, msg steward.CustomMessage) (*steward.Delivery, error) {
	var d steward.Delivery
	if _, err := c.do(ctx, "POST", agentPath(id, "/custom-messages"), nil, msg, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// AgentEvents lists an agent's events, newest first (limit 0: the server's
// default of 100).
func (c *Client) AgentEvents(ctx context.Context, id steward.InstanceUID, limit int) ([]*steward.Event, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var resp EventsResponse
	if _, err := c.do(ctx, "GET", agentPath(id, "/events"), q, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Events, nil
}

// DesiredConfig returns the config map the agent should run and its hash.
func (c *Client) DesiredConfig(ctx context.Context, id steward.InstanceUID) (steward.ConfigMap, []byte, error) {
	var resp DesiredConfigResponse
	if _, err := c.do(ctx, "GET", agentPath(id, "/desired-config"), nil, nil, &resp); err != nil {
		return nil, nil, err
	}
	return resp.Files, resp.Hash, nil
}

// AgentConfig returns the agent's config view: the assignments that apply,
// the desired and running config by name@version, and the diff of its
// effective config against the desired one.
func (c *Client) AgentConfig(ctx context.Context, id steward.InstanceUID) (*AgentConfigResponse, error) {
	var resp AgentConfigResponse
	if _, err := c.do(ctx, "GET", agentPath(id, "/config"), c.revealQuery(nil), nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func configPath(name, rest string) string {
	return "/api/v1/configs/" + url.PathEscape(name) + rest
}

// PutConfig saves c.Files (and c.Comment) under c.Name and returns the
// stored version.
func (c *Client) PutConfig(ctx context.Context, cfg *steward.Config) (*steward.Config, error) {
	stored, _, err := c.ApplyConfig(ctx, cfg)
	return stored, err
}

// ApplyConfig is PutConfig that also reports whether a new version was
// created (false: the content equals the latest version).
func (c *Client) ApplyConfig(ctx context.Context, cfg *steward.Config) (*steward.Config, bool, error) {
	var out steward.Config
	status, err := c.do(ctx, "PUT", configPath(cfg.Name, ""), c.forceQuery(), PutConfigRequest{Files: cfg.Files, Comment: cfg.Comment}, &out)
	if err != nil {
		return nil, false, err
	}
	return &out, status == http.StatusCreated, nil
}

// Config returns a version of a config (0: the latest).
func (c *Client) Config(ctx context.Context, name string, version int) (*steward.Config, error) {
	q := url.Values{}
	if version != 0 {
		q.Set("version", strconv.Itoa(version))
	}
	var out steward.Config
	if _, err := c.do(ctx, "GET", configPath(name, ""), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Configs lists the latest version of every config.
func (c *Client) Configs(ctx context.Context) ([]*steward.Config, error) {
	var resp ConfigsResponse
	if _, err := c.do(ctx, "GET", "/api/v1/configs", nil, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Configs, nil
}

// ConfigHistory lists every version of a config, newest first.
func (c *Client) ConfigHistory(ctx context.Context, name string) ([]*steward.Config, error) {
	var resp VersionsResponse
	if _, err := c.do(ctx, "GET", configPath(name, "/versions"), nil, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Versions, nil
}

// ConfigDiff returns a unified diff between two versions of a config (0:
// the server's default, the latest for to and the one before to for from).
func (c *Client) ConfigDiff(ctx context.Context, name string, from, to int) (*DiffResponse, error) {
	q := url.Values{}
	if from != 0 {
		q.Set("from", strconv.Itoa(from))
	}
	if to != 0 {
		q.Set("to", strconv.Itoa(to))
	}
	var resp DiffResponse
	if _, err := c.do(ctx, "GET", configPath(name, "/diff"), q, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// DeleteConfig removes a config and all its versions.
func (c *Client) DeleteConfig(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", configPath(name, ""), nil, nil, nil)
	return err
}

func assignmentPath(name string) string { return "/api/v1/assignments/" + url.PathEscape(name) }

// PutAssignment creates or replaces an assignment.
func (c *Client) PutAssignment(ctx context.Context, a *steward.Assignment) (*steward.Assignment, error) {
	var out steward.Assignment
	if _, err := c.do(ctx, "PUT", assignmentPath(a.Name), c.forceQuery(), a, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Assignment returns one assignment.
func (c *Client) Assignment(ctx context.Context, name string) (*steward.Assignment, error) {
	var out steward.Assignment
	if _, err := c.do(ctx, "GET", assignmentPath(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Assignments lists every assignment.
func (c *Client) Assignments(ctx context.Context) ([]*steward.Assignment, error) {
	var resp AssignmentsResponse
	if _, err := c.do(ctx, "GET", "/api/v1/assignments", nil, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Assignments, nil
}

// DeleteAssignment removes an assignment.
func (c *Client) DeleteAssignment(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", assignmentPath(name), nil, nil, nil)
	return err
}

// Summary returns the fleet overview.
func (c *Client) Summary(ctx context.Context) (*SummaryResponse, error) {
	var resp SummaryResponse
	if _, err := c.do(ctx, "GET", "/api/v1/summary", nil, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Events lists recent fleet events, newest first.
func (c *Client) Events(ctx context.Context, f steward.EventFilter) ([]*steward.Event, error) {
	q := url.Values{}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.AgentID != nil {
		q.Set("agent", f.AgentID.String())
	}
	if len(f.Types) > 0 {
		q.Set("type", strings.Join(f.Types, ","))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	var resp EventsResponse
	if _, err := c.do(ctx, "GET", "/api/v1/events", q, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Events, nil
}

// String describes the client for messages.
func (c *Client) String() string { return fmt.Sprintf("steward API at %s", c.URL) }

var _ steward.RolloutService = (*Client)(nil)

func rolloutPath(name string) string { return "/api/v1/rollouts/" + url.PathEscape(name) }

// StartRollout starts a staged rollout.
func (c *Client) StartRollout(ctx context.Context, r *steward.Rollout) (*steward.Rollout, error) {
	var out steward.Rollout
	if _, err := c.do(ctx, "POST", "/api/v1/rollouts", c.forceQuery(), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollout returns one rollout with its progress.
func (c *Client) Rollout(ctx context.Context, name string) (*steward.Rollout, error) {
	var out steward.Rollout
	if _, err := c.do(ctx, "GET", rolloutPath(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollouts lists rollouts, most recently changed first.
func (c *Client) Rollouts(ctx context.Context) ([]*steward.Rollout, error) {
	var out struct {
		Rollouts []*steward.Rollout `json:"rollouts"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/rollouts", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Rollouts, nil
}

func (c *Client) rolloutAction(ctx context.Context, name, action string) (*steward.Rollout, error) {
	var out steward.Rollout
	if _, err := c.do(ctx, "POST", rolloutPath(name)+"/"+action, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PauseRollout stops a running rollout where it is.
func (c *Client) PauseRollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return c.rolloutAction(ctx, name, "pause")
}

// ResumeRollout continues a paused rollout.
func (c *Client) ResumeRollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return c.rolloutAction(ctx, name, "resume")
}

// RollbackRollout returns every agent to the rollout's from_version.
func (c *Client) RollbackRollout(ctx context.Context, name string) (*steward.Rollout, error) {
	return c.rolloutAction(ctx, name, "rollback")
}

func previewQuery(opts steward.PreviewOptions) url.Values {
	q := url.Values{}
	if opts.Offset > 0 {
		q.Set("offset", strconv.Itoa(opts.Offset))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	return q
}

// PreviewConfig previews saving cfg.Files as the next version of cfg.Name.
func (c *Client) PreviewConfig(ctx context.Context, cfg *steward.Config, opts steward.PreviewOptions) (*PreviewResponse, error) {
	var out PreviewResponse
	if _, err := c.do(ctx, "POST", configPath(cfg.Name, "/preview"), previewQuery(opts), PutConfigRequest{Files: cfg.Files, Comment: cfg.Comment}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PreviewAssignment previews creating or replacing a.
func (c *Client) PreviewAssignment(ctx context.Context, a *steward.Assignment, opts steward.PreviewOptions) (*PreviewResponse, error) {
	var out PreviewResponse
	if _, err := c.do(ctx, "POST", assignmentPath(a.Name)+"/preview", previewQuery(opts), a, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PreviewRollout previews r at stage r.Stage.
func (c *Client) PreviewRollout(ctx context.Context, r *steward.Rollout, opts steward.PreviewOptions) (*PreviewResponse, error) {
	var out PreviewResponse
	if _, err := c.do(ctx, "POST", "/api/v1/rollouts/preview", previewQuery(opts), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
