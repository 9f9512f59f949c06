package http

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/stewardhq/steward"
)

// CreateToken creates an API token; the response carries its secret.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (*CreatedTokenResponse, error) {
	var out CreatedTokenResponse
	_, err := c.do(ctx, "POST", "/api/v1/tokens", nil, req, &out)
	return &out, err
}

// Tokens lists API tokens.
func (c *Client) Tokens(ctx context.Context) ([]*steward.Token, error) {
	var out TokensResponse
	_, err := c.do(ctx, "GET", "/api/v1/tokens", nil, nil, &out)
	return out.Tokens, err
}

// DeleteToken revokes an API token.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// CreateEnrollmentToken creates an agent enrollment token.
func (c *Client) CreateEnrollmentToken(ctx context.Context, req CreateEnrollmentTokenRequest) (*CreatedEnrollmentTokenResponse, error) {
	var out CreatedEnrollmentTokenResponse
	_, err := c.do(ctx, "POST", "/api/v1/enrollment-tokens", nil, req, &out)
	return &out, err
}

// EnrollmentTokens lists enrollment tokens.
func (c *Client) EnrollmentTokens(ctx context.Context) ([]*steward.EnrollmentToken, error) {
	var out EnrollmentTokensResponse
	_, err := c.do(ctx, "GET", "/api/v1/enrollment-tokens", nil, nil, &out)
	return out.Tokens, err
}

// RevokeEnrollmentToken revokes an enrollment token.
func (c *Client) RevokeEnrollmentToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/enrollment-tokens/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// Certificates lists agent certificates (of one agent when agent is set).
func (c *Client) Certificates(ctx context.Context, agent *steward.InstanceUID) ([]*steward.AgentCertificate, error) {
	var q url.Values
	if agent != nil {
		q = url.Values{"agent": {agent.String()}}
	}
	var out CertificatesResponse
	_, err := c.do(ctx, "GET", "/api/v1/certificates", q, nil, &out)
	return out.Certificates, err
}

// RevokeCertificate revokes an agent certificate by serial.
func (c *Client) RevokeCertificate(ctx context.Context, serial string) (*steward.AgentCertificate, error) {
	var out steward.AgentCertificate
	_, err := c.do(ctx, "POST", "/api/v1/certificates/"+url.PathEscape(serial)+"/revoke", nil, nil, &out)
	return &out, err
}

// PutConnectionSettings creates or replaces connection settings.
func (c *Client) PutConnectionSettings(ctx context.Context, cs *steward.ConnectionSettings) (*steward.ConnectionSettings, error) {
	var out steward.ConnectionSettings
	_, err := c.do(ctx, "PUT", "/api/v1/connection-settings/"+url.PathEscape(cs.Name), nil, cs, &out)
	return &out, err
}

// ConnectionSettingsList lists connection settings.
func (c *Client) ConnectionSettingsList(ctx context.Context) ([]*steward.ConnectionSettings, error) {
	var out ConnectionSettingsListResponse
	_, err := c.do(ctx, "GET", "/api/v1/connection-settings", c.revealQuery(nil), nil, &out)
	return out.Settings, err
}

// DeleteConnectionSettings deletes connection settings.
func (c *Client) DeleteConnectionSettings(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/connection-settings/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// Audit lists audit entries, newest first.
func (c *Client) Audit(ctx context.Context, f steward.AuditFilter) ([]*steward.AuditEntry, error) {
	q := url.Values{}
	if f.Actor != "" {
		q.Set("actor", f.Actor)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out AuditResponse
	_, err := c.do(ctx, "GET", "/api/v1/audit", q, nil, &out)
	return out.Entries, err
}
