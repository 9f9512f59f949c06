package http

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/stewardhq/steward"
)

// ConfigsResponse is the body of GET /api/v1/configs.
type ConfigsResponse struct {
	Configs []*steward.Config `json:"configs"`
}

// VersionsResponse is the body of GET /api/v1/configs/{name}/versions,
// newest first.
type VersionsResponse struct {
	Versions []*steward.Config `json:"versions"`
}

// PutConfigRequest is the body of PUT /api/v1/configs/{name}.
type PutConfigRequest struct {
	Files   steward.ConfigMap `json:"files"`
	Comment string            `json:"comment,omitempty"`
}

// DiffResponse is the body of GET /api/v1/configs/{name}/diff.
type DiffResponse struct {
	Name string `json:"name"`
	From int    `json:"from"`
	To   int    `json:"to"`
	// Diff is a unified diff (3 lines of context) from one version to the
	// other, file by file; empty when they are identical.
	Diff string `json:"diff"`
}

// AssignmentsResponse is the body of GET /api/v1/assignments.
type AssignmentsResponse struct {
	Assignments []*steward.Assignment `json:"assignments"`
}

func configName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, steward.ValidateName("config", name)
}

func (s *Server) handleConfigs(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.configs.Configs(r.Context())
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []*steward.Config{}
	}
	writeJSON(w, http.StatusOK, ConfigsResponse{Configs: cs})
	return nil
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) error {
	name, err := configName(r)
	if err != nil {
		return err
	}
	version, err := intParam(r.URL.Query(), "version", 0, 0, -1)
	if err != nil {
		return err
	}
	c, err := s.configs.Config(r.Context(), name, version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// handlePutConfig stores a new version: 201 when one was created, 200 when
// the content equals the latest version (which is returned).
func (s *Server) handlePutConfig(w http.ResponseWriter, r *http.Request) error {
	c, err := configBody(r)
	if err != nil {
		return err
	}
	name := c.Name
	prev := 0
	old, err := s.configs.Config(r.Context(), name, 0)
	if err == nil {
		prev = old.Version
	} else if steward.ErrorCode(err) != steward.ENOTFOUND {
		return err
	}
	// Saving the latest content again changes nothing: no check.
	if old == nil || string(old.Hash) != string(c.Files.Hash()) {
		if refused, err := s.guard(w, r, steward.Change{Config: c}, "config "+name+" version "+strconv.Itoa(prev+1)); refused || err != nil {
			return err
		}
	}
	stored, err := s.configs.PutConfig(r.Context(), c)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if stored.Version != prev {
		status = http.StatusCreated
	}
	writeJSON(w, status, stored)
	return nil
}

// configBody reads the config a PUT (or its preview) would save: the
// path's name, the body's files and comment, the caller as author.
func configBody(r *http.Request) (*steward.Config, error) {
	name, err := configName(r)
	if err != nil {
		return nil, err
	}
	var req PutConfigRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	c := &steward.Config{Name: name, Files: req.Files, Comment: req.Comment}
	if p := PrincipalFrom(r.Context()); p != nil {
		c.Author = p.Name
	}
	return c, c.Validate()
}

func (s *Server) handleDeleteConfig(w http.ResponseWriter, r *http.Request) error {
	name, err := configName(r)
	if err != nil {
		return err
	}
	if err := s.configs.DeleteConfig(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleConfigVersions(w http.ResponseWriter, r *http.Request) error {
	name, err := configName(r)
	if err != nil {
		return err
	}
	cs, err := s.configs.ConfigHistory(r.Context(), name)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return steward.Errorf(steward.ENOTFOUND, "config %q not found", name)
	}
	writeJSON(w, http.StatusOK, VersionsResponse{Versions: cs})
	return nil
}

// handleConfigDiff diffs version from against version to. to defaults to
// the latest version and from to the one before to.
func (s *Server) handleConfigDiff(w http.ResponseWriter, r *http.Request) error {
	name, err := configName(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	to, err := intParam(q, "to", 0, 1, -1)
	if err != nil {
		return err
	}
	from, err := intParam(q, "from", 0, 1, -1)
	if err != nil {
		return err
	}
	newer, err := s.configs.Config(r.Context(), name, to)
	if err != nil {
		return err
	}
	if from == 0 {
		from = newer.Version - 1
		if from < 1 {
			return steward.Errorf(steward.EINVALID, "config %q has only version %d: give from", name, newer.Version)
		}
	}
	older, err := s.configs.Config(r.Context(), name, from)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, DiffResponse{Name: name, From: older.Version, To: newer.Version, Diff: DiffConfigs(older, newer)})
	return nil
}

// DiffConfigs returns a unified diff of every file of a against the same
// file of b, in file-name order; files only in one side are diffed against
// nothing. Each file is labelled "name@vN" (single default file) or
// "name@vN/file".
func DiffConfigs(a, b *steward.Config) string {
	label := func(c *steward.Config) func(string) string {
		return func(file string) string {
			l := c.Name + "@v" + strconv.Itoa(c.Version)
			if file != "" {
				l += "/" + file
			}
			return l
		}
	}
	return diffFiles(a.Files, b.Files, label(a), label(b))
}

// diffFiles diffs each file of a against the file of b with the same name,
// in name order; a file only in one side is diffed against /dev/null, and
// binary files are only said to differ. labelA and labelB name a file of
// each side in the headers.
func diffFiles(a, b steward.ConfigMap, labelA, labelB func(string) string) string {
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out string
	for _, n := range sorted {
		fa, inA := a[n]
		fb, inB := b[n]
		la, lb := labelA(n), labelB(n)
		if !inA {
			la = "/dev/null"
		}
		if !inB {
			lb = "/dev/null"
		}
		if !isTextBody(fa.Body) || !isTextBody(fb.Body) {
			if string(fa.Body) != string(fb.Body) || inA != inB {
				out += "Binary files " + la + " and " + lb + " differ\n"
			}
			continue
		}
		out += UnifiedDiff(la, lb, string(fa.Body), string(fb.Body), 3)
	}
	return out
}

func isTextBody(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

func (s *Server) handleAssignments(w http.ResponseWriter, r *http.Request) error {
	as, err := s.configs.Assignments(r.Context())
	if err != nil {
		return err
	}
	if as == nil {
		as = []*steward.Assignment{}
	}
	writeJSON(w, http.StatusOK, AssignmentsResponse{Assignments: as})
	return nil
}

func assignmentName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, steward.ValidateName("assignment", name)
}

func (s *Server) handleAssignment(w http.ResponseWriter, r *http.Request) error {
	name, err := assignmentName(r)
	if err != nil {
		return err
	}
	a, err := s.configs.Assignment(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// handlePutAssignment creates (201) or replaces (200) an assignment. The
// body's name, when given, must equal the path's.
func (s *Server) handlePutAssignment(w http.ResponseWriter, r *http.Request) error {
	a, err := assignmentBody(r)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if _, err := s.configs.Assignment(r.Context(), a.Name); steward.ErrorCode(err) == steward.ENOTFOUND {
		status = http.StatusCreated
	} else if err != nil {
		return err
	}
	if refused, err := s.guard(w, r, steward.Change{Assignment: a}, "assignment "+a.Name); refused || err != nil {
		return err
	}
	stored, err := s.configs.PutAssignment(r.Context(), a)
	if err != nil {
		return err
	}
	writeJSON(w, status, stored)
	return nil
}

// assignmentBody reads an assignment named by the path; the body's name,
// when given, must equal the path's.
func assignmentBody(r *http.Request) (*steward.Assignment, error) {
	name, err := assignmentName(r)
	if err != nil {
		return nil, err
	}
	var a steward.Assignment
	if err := decodeJSON(r, &a); err != nil {
		return nil, err
	}
	if a.Name != "" && a.Name != name {
		return nil, steward.Errorf(steward.EINVALID, "assignment name %q in the body differs from %q in the path", a.Name, name)
	}
	a.Name = name
	return &a, a.Validate()
}

func (s *Server) handleDeleteAssignment(w http.ResponseWriter, r *http.Request) error {
	name, err := assignmentName(r)
	if err != nil {
		return err
	}
	if err := s.configs.DeleteAssignment(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
