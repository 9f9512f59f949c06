package http

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/stewardhq/steward"
)

func packagePath(name, version string) string {
	return "/api/v1/packages/" + url.PathEscape(name) + "/" + url.PathEscape(version)
}

// UploadPackage streams content to PUT /api/v1/packages/{name}/{version}:
// p.Type, p.Hash (checked by the server), p.Signature (an external
// signature; without it the server signs) and p.ContentType are sent along.
func (c *Client) UploadPackage(ctx context.Context, p *steward.Package, content io.Reader) (*steward.Package, error) {
	q := url.Values{}
	if p.Type != "" {
		q.Set("type", string(p.Type))
	}
	if p.Hash != nil {
		q.Set("sha256", hex.EncodeToString(p.Hash))
	}
	if len(p.Signature) > 0 {
		q.Set("signature", base64.StdEncoding.EncodeToString(p.Signature))
	}
	u := strings.TrimRight(c.URL, "/") + packagePath(p.Name, p.Version) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, content)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "bad server URL %q: %v", c.URL, err)
	}
	ct := p.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	req.Header.Set("Content-Type", ct)
	var out steward.Package
	if err := c.raw(ctx, req, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadPackage writes a version's content to w.
func (c *Client) DownloadPackage(ctx context.Context, name, version string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+packagePath(name, version)+"/content", nil)
	if err != nil {
		return steward.Errorf(steward.EINVALID, "bad server URL %q: %v", c.URL, err)
	}
	return c.raw(ctx, req, nil, w)
}

// raw sends req with the token; a 2xx body is decoded into out (JSON) or
// copied to w. Uploads and downloads may take long: no client timeout
// applies beyond ctx.
func (c *Client) raw(ctx context.Context, req *http.Request, out any, w io.Writer) error {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return steward.Errorf(steward.EUNAVAILABLE, "cannot reach the Steward server at %s: %v", c.URL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return responseError(resp.StatusCode, b)
	}
	if w != nil {
		if _, err := io.Copy(w, resp.Body); err != nil {
			return steward.Errorf(steward.EUNAVAILABLE, "download from %s: %v", c.URL, err)
		}
		return nil
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return steward.Errorf(steward.EINTERNAL, "unexpected response from %s: %v", req.URL.Path, err)
		}
	}
	return nil
}

// Package returns one version's metadata.
func (c *Client) Package(ctx context.Context, name, version string) (*steward.Package, error) {
	var out steward.Package
	if _, err := c.do(ctx, "GET", packagePath(name, version), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Packages lists every package version.
func (c *Client) Packages(ctx context.Context) ([]*steward.Package, error) {
	var out PackagesResponse
	if _, err := c.do(ctx, "GET", "/api/v1/packages", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Packages, nil
}

// DeletePackage removes a version.
func (c *Client) DeletePackage(ctx context.Context, name, version string) error {
	_, err := c.do(ctx, "DELETE", packagePath(name, version), nil, nil, nil)
	return err
}

// PackageKeys lists the server's and the trusted package signing keys.
func (c *Client) PackageKeys(ctx context.Context) ([]steward.PackageKey, error) {
	var out PackageKeysResponse
	if _, err := c.do(ctx, "GET", "/api/v1/package-keys", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

func packageAssignmentPath(name string) string {
	return "/api/v1/package-assignments/" + url.PathEscape(name)
}

// PutPackageAssignment creates or replaces a package assignment.
func (c *Client) PutPackageAssignment(ctx context.Context, a *steward.PackageAssignment) (*steward.PackageAssignment, error) {
	var out steward.PackageAssignment
	if _, err := c.do(ctx, "PUT", packageAssignmentPath(a.Name), nil, a, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PackageAssignment returns one package assignment.
func (c *Client) PackageAssignment(ctx context.Context, name string) (*steward.PackageAssignment, error) {
	var out steward.PackageAssignment
	if _, err := c.do(ctx, "GET", packageAssignmentPath(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PackageAssignments lists the package assignments.
func (c *Client) PackageAssignments(ctx context.Context) ([]*steward.PackageAssignment, error) {
	var out PackageAssignmentsResponse
	if _, err := c.do(ctx, "GET", "/api/v1/package-assignments", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Assignments, nil
}

// DeletePackageAssignment removes a package assignment.
func (c *Client) DeletePackageAssignment(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", packageAssignmentPath(name), nil, nil, nil)
	return err
}

// DesiredPackages returns what an agent is offered.
func (c *Client) DesiredPackages(ctx context.Context, id steward.InstanceUID) ([]*steward.Package, []byte, error) {
	var out DesiredPackagesResponse
	if _, err := c.do(ctx, "GET", "/api/v1/agents/"+id.String()+"/desired-packages", nil, nil, &out); err != nil {
		return nil, nil, err
	}
	return out.Packages, out.AllPackagesHash, nil
}
