package steward

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Config is one immutable version of a named configuration. Saving new
// content under a name creates the next version; saving identical content
// returns the current version unchanged.
type Config struct {
	Name    string    `json:"name"`
	Version int       `json:"version"`
	Files   ConfigMap `json:"files"`
	// Hash is the content hash of Files (see ConfigMap.Hash).
	Hash      Hash      `json:"hash"`
	Comment   string    `json:"comment,omitempty"`
	Author    string    `json:"author,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`)

// ValidateName checks a config or assignment name: 1-128 characters, letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func ValidateName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid %s name %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, name)
	}
	return nil
}

// Validate checks a config before it is saved.
func (c *Config) Validate() error {
	if err := ValidateName("config", c.Name); err != nil {
		return err
	}
	if len(c.Files) == 0 {
		return Errorf(EINVALID, "config %q has no files", c.Name)
	}
	for name, f := range c.Files {
		if len(f.Body) > MaxConfigFileSize {
			return Errorf(EINVALID, "config %q file %q is %d bytes; the limit is %d", c.Name, name, len(f.Body), MaxConfigFileSize)
		}
	}
	return nil
}

// MaxConfigFileSize bounds one configuration file (4 MiB).
const MaxConfigFileSize = 4 << 20

// Hash returns a deterministic SHA-256 over the files' names, content types
// and bodies (sorted by name). An empty map hashes to nil.
func (m ConfigMap) Hash() []byte {
	if len(m) == 0 {
		return nil
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	var lb [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(lb[:], uint64(len(b)))
		h.Write(lb[:])
		h.Write(b)
	}
	for _, n := range names {
		f := m[n]
		put([]byte(n))
		put([]byte(f.ContentType))
		put(f.Body)
	}
	return h.Sum(nil)
}

// RemoteFileKey is the key under which a file of config c is offered in
// an agent's remote config map (see Assignment): the config's name for its
// single file when that file is unnamed or named like the config, else
// "config/file".
func (c *Config) RemoteFileKey(file string) string {
	if file == "" || (len(c.Files) == 1 && file == c.Name) {
		return c.Name
	}
	return c.Name + "/" + file
}

// RemoteConfigMap is the remote config map of an agent that config c alone
// is assigned to.
func (c *Config) RemoteConfigMap() ConfigMap {
	m := make(ConfigMap, len(c.Files))
	for name, f := range c.Files {
		m[c.RemoteFileKey(name)] = f
	}
	return m
}

// ContentTypeOf guesses a config file's content type from its name:
// text/yaml, application/json, application/toml, else text/plain.
func ContentTypeOf(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		return "text/yaml"
	case ".json":
		return "application/json"
	case ".toml":
		return "application/toml"
	default:
		return "text/plain"
	}
}

// Assignment binds a named configuration to agents: to one agent by id, or to
// every agent whose labels match Selector. An agent's desired remote config
// is the map of the files of every assignment that matches it; each file is
// keyed by the config's name (a config holding several files contributes
// "name/file" keys; a config whose single file has the empty name
// contributes just "name").
type Assignment struct {
	Name       string `json:"name"`
	ConfigName string `json:"config"`
	// Version pins a config version; 0 follows the latest.
	Version  int          `json:"version,omitempty"`
	Selector string       `json:"selector,omitempty"`
	AgentID  *InstanceUID `json:"agent_id,omitempty"`
	// Priority orders assignments; higher wins when two contribute the same
	// file key.
	Priority  int       `json:"priority,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Validate checks an assignment: a valid name, a config name, and exactly one
// of Selector or AgentID (a parseable selector).
func (a *Assignment) Validate() error {
	if err := ValidateName("assignment", a.Name); err != nil {
		return err
	}
	if err := ValidateName("config", a.ConfigName); err != nil {
		return err
	}
	if a.Version < 0 {
		return Errorf(EINVALID, "assignment %q: version must be >= 0", a.Name)
	}
	if (a.Selector == "") == (a.AgentID == nil) {
		return Errorf(EINVALID, "assignment %q: set exactly one of selector or agent_id", a.Name)
	}
	if a.Selector != "" {
		if _, err := ParseSelector(a.Selector); err != nil {
			return err
		}
	}
	return nil
}

// Matches reports whether the assignment applies to agent a.
func (as *Assignment) Matches(a *Agent) bool {
	if as.AgentID != nil {
		return *as.AgentID == a.ID
	}
	sel, err := ParseSelector(as.Selector)
	if err != nil {
		return false
	}
	return sel.MatchLabels(a)
}

// ConfigService manages named configurations and their assignments.
type ConfigService interface {
	// PutConfig saves content under c.Name and returns the stored version
	// (a new one, or the current one if the files are identical).
	PutConfig(ctx context.Context, c *Config) (*Config, error)
	// Config returns a version of a config; version 0 is the latest.
	Config(ctx context.Context, name string, version int) (*Config, error)
	// Configs lists the latest version of every config, by name.
	Configs(ctx context.Context) ([]*Config, error)
	// ConfigHistory lists every version of a config, newest first.
	ConfigHistory(ctx context.Context, name string) ([]*Config, error)
	// DeleteConfig removes a config and all its versions; ECONFLICT while an
	// assignment refers to it.
	DeleteConfig(ctx context.Context, name string) error

	// PutAssignment creates or replaces an assignment by name; ENOTFOUND if
	// its config (or pinned version) does not exist.
	PutAssignment(ctx context.Context, a *Assignment) (*Assignment, error)
	Assignment(ctx context.Context, name string) (*Assignment, error)
	Assignments(ctx context.Context) ([]*Assignment, error)
	DeleteAssignment(ctx context.Context, name string) error

	// DesiredConfig returns the remote config map the agent should run, and
	// its hash; an empty map when nothing is assigned.
	DesiredConfig(ctx context.Context, id InstanceUID) (ConfigMap, []byte, error)
}

// DesiredConfigDescriber is a ConfigService that also says what an agent's
// desired config is made of.
type DesiredConfigDescriber interface {
	// DescribeDesiredConfig returns the agent's desired config — its
	// hash and the config versions composing it, highest priority first —
	// and its files; nil and an empty map when nothing is assigned.
	// ENOTFOUND for an unknown agent.
	DescribeDesiredConfig(ctx context.Context, id InstanceUID) (*KnownConfig, ConfigMap, error)
}
