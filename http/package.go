package http

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// PackagesResponse is the body of GET /api/v1/packages.
type PackagesResponse struct {
	Packages []*steward.Package `json:"packages"`
}

// PackageAssignmentsResponse is the body of GET /api/v1/package-assignments.
type PackageAssignmentsResponse struct {
	Assignments []*steward.PackageAssignment `json:"assignments"`
}

// PackageKeysResponse is the body of GET /api/v1/package-keys.
type PackageKeysResponse struct {
	Keys []steward.PackageKey `json:"keys"`
}

// DesiredPackagesResponse is the body of GET /api/v1/agents/{id}/desired-packages.
type DesiredPackagesResponse struct {
	Packages        []*steward.Package `json:"packages"`
	AllPackagesHash steward.Hash       `json:"all_packages_hash"`
}

// registerPackageRoutes adds the package routes. Uploads are not bounded
// by MaxBodySize: the package service enforces its own size limit while it
// streams the content to storage.
func (s *Server) registerPackageRoutes() {
	s.handle("GET /api/v1/packages", s.handlePackages, authed)
	s.handleUpload("PUT /api/v1/packages/{name}/{version}", s.handleUploadPackage)
	s.handle("GET /api/v1/packages/{name}/{version}", s.handlePackage, authed)
	s.handle("DELETE /api/v1/packages/{name}/{version}", s.handleDeletePackage, authed)
	s.handle("GET /api/v1/packages/{name}/{version}/content", s.handlePackageContent, authed)
	s.handle("GET /api/v1/package-content/{hash}", s.handleSignedContent, public)
	s.handle("GET /api/v1/package-keys", s.handlePackageKeys, authed)
	s.handle("GET /api/v1/package-assignments", s.handlePackageAssignments, authed)
	s.handle("GET /api/v1/package-assignments/{name}", s.handlePackageAssignment, authed)
	s.handle("PUT /api/v1/package-assignments/{name}", s.handlePutPackageAssignment, authed)
	s.handle("DELETE /api/v1/package-assignments/{name}", s.handleDeletePackageAssignment, authed)
	s.handle("GET /api/v1/agents/{id}/desired-packages", s.handleDesiredPackages, authed)
}

// handleUpload registers an authenticated route whose body is not capped
// at MaxBodySize.
func (s *Server) handleUpload(pattern string, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	authorized := s.authorize(h)
	s.api.Handle(pattern, s.adapt(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		return authorized(w, r)
	}))
}

// packageService returns the packages service, or ENOTIMPLEMENTED (501) when this
// server has none.
func (s *Server) packageService() (steward.PackageService, error) {
	if s.packages == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "packages are not available on this server")
	}
	return s.packages, nil
}

func packageNameVersion(r *http.Request) (string, string, error) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if err := steward.ValidateName("package", name); err != nil {
		return "", "", err
	}
	if err := steward.ValidateVersion(version); err != nil {
		return "", "", err
	}
	return name, version, nil
}

func (s *Server) handlePackages(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	list, err := ps.Packages(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.Package{}
	}
	writeJSON(w, http.StatusOK, PackagesResponse{Packages: list})
	return nil
}

// handleUploadPackage stores the request body as a package version. Query:
// type (top_level, default, or addon), sha256 (hex, optional: the upload is
// refused unless the content matches), signature (base64, optional: an
// ed25519 signature over the raw sha256 by a trusted key; without it the
// server signs). The Content-Type header is kept as the package's.
func (s *Server) handleUploadPackage(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, version, err := packageNameVersion(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	p := &steward.Package{Name: name, Version: version, Type: steward.PackageType(q.Get("type")), ContentType: r.Header.Get("Content-Type")}
	if h := q.Get("sha256"); h != "" {
		if p.Hash, err = hex.DecodeString(h); err != nil || len(p.Hash) != 32 {
			return steward.Errorf(steward.EINVALID, "sha256 must be 64 hex digits")
		}
	}
	if sig := q.Get("signature"); sig != "" {
		if p.Signature, err = base64.StdEncoding.DecodeString(sig); err != nil {
			if p.Signature, err = base64.URLEncoding.DecodeString(sig); err != nil {
				return steward.Errorf(steward.EINVALID, "signature must be base64")
			}
		}
	}
	if err := p.Validate(); err != nil {
		return err
	}
	out, err := ps.UploadPackage(r.Context(), p, r.Body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handlePackage(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, version, err := packageNameVersion(r)
	if err != nil {
		return err
	}
	p, err := ps.Package(r.Context(), name, version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) handleDeletePackage(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, version, err := packageNameVersion(r)
	if err != nil {
		return err
	}
	if err := ps.DeletePackage(r.Context(), name, version); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handlePackageContent serves a version's content to API users.
func (s *Server) handlePackageContent(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, version, err := packageNameVersion(r)
	if err != nil {
		return err
	}
	p, err := ps.Package(r.Context(), name, version)
	if err != nil {
		return err
	}
	return s.serveContent(w, r, ps, p.Hash)
}

// handleSignedContent serves content to agents through the signed,
// expiring download URLs the control plane puts in its offers.
func (s *Server) handleSignedContent(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	hash, err := hex.DecodeString(strings.ToLower(r.PathValue("hash")))
	if err != nil || len(hash) != 32 {
		return steward.Errorf(steward.ENOTFOUND, "no package content %q", r.PathValue("hash"))
	}
	q := r.URL.Query()
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return steward.Errorf(steward.EUNAUTHORIZED, "download URL without a valid expiry")
	}
	if err := ps.VerifyDownload(hash, expires, q.Get("token")); err != nil {
		return err
	}
	return s.serveContent(w, r, ps, hash)
}

// serveContent streams content with range support; the ETag is its hash.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request, ps steward.PackageService, hash []byte) error {
	f, _, err := ps.OpenPackageContent(r.Context(), hash)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"sha256:`+hex.EncodeToString(hash)+`"`)
	w.Header().Set("Cache-Control", "private, max-age=3600, immutable")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (s *Server) handlePackageKeys(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	keys, err := ps.PackageKeys(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PackageKeysResponse{Keys: keys})
	return nil
}

func (s *Server) handlePackageAssignments(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	list, err := ps.PackageAssignments(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.PackageAssignment{}
	}
	writeJSON(w, http.StatusOK, PackageAssignmentsResponse{Assignments: list})
	return nil
}

func packageAssignmentName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, steward.ValidateName("package assignment", name)
}

func (s *Server) handlePackageAssignment(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, err := packageAssignmentName(r)
	if err != nil {
		return err
	}
	a, err := ps.PackageAssignment(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// handlePutPackageAssignment creates or replaces a package assignment; the
// name in the path wins over one in the body.
func (s *Server) handlePutPackageAssignment(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, err := packageAssignmentName(r)
	if err != nil {
		return err
	}
	var a steward.PackageAssignment
	if err := decodeJSON(r, &a); err != nil {
		return err
	}
	if a.Name != "" && a.Name != name {
		return steward.Errorf(steward.EINVALID, "body names package assignment %q, path %q", a.Name, name)
	}
	a.Name = name
	out, err := ps.PutPackageAssignment(r.Context(), &a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleDeletePackageAssignment(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	name, err := packageAssignmentName(r)
	if err != nil {
		return err
	}
	if err := ps.DeletePackageAssignment(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleDesiredPackages(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.packageService()
	if err != nil {
		return err
	}
	id, err := agentID(r)
	if err != nil {
		return err
	}
	pkgs, hash, err := ps.DesiredPackages(r.Context(), id)
	if err != nil {
		return err
	}
	if pkgs == nil {
		pkgs = []*steward.Package{}
	}
	writeJSON(w, http.StatusOK, DesiredPackagesResponse{Packages: pkgs, AllPackagesHash: hash})
	return nil
}
