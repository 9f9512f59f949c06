package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stewardhq/steward"
)

// Storage is the supervisor's persistent state in one directory:
//
//	instance_uid     the agent's OpAMP instance UID (canonical UUID text)
//	state.json       last remote config received, last good config, last
//	                 failed remote config hash and its error
//
// Writes are atomic (temporary file, fsync, rename), so a crash leaves the
// previous or the new content, never a torn file.
type Storage struct {
	dir string
}

// State is what survives a supervisor restart.
type State struct {
	// Remote is the last remote config received from the server.
	Remote *RemoteConfig `json:"remote,omitempty"`
	// Good is the last config the agent ran healthily.
	Good *GoodConfig `json:"good,omitempty"`
	// Failed is the last remote config that failed to apply; it is not
	// retried until the server sends a different one.
	Failed *FailedConfig `json:"failed,omitempty"`
	// Connection is the accepted connection settings (connection.go).
	Connection *ConnectionState `json:"connection,omitempty"`
}

// RemoteConfig is a remote config as received (AgentRemoteConfig).
type RemoteConfig struct {
	Files steward.ConfigMap `json:"files"`
	Hash  []byte            `json:"hash"`
}

// GoodConfig is a config the agent ran healthily: the remote config it came
// from (RemoteHash nil when there was none) and the effective file written.
// The effective file is rendered again from Remote at startup, since parts
// of it (the local endpoint's port, local files) may have changed.
type GoodConfig struct {
	RemoteHash []byte            `json:"remote_hash,omitempty"`
	Remote     steward.ConfigMap `json:"remote,omitempty"`
	Effective  []byte            `json:"effective"`
}

// FailedConfig records a remote config hash that failed to apply.
type FailedConfig struct {
	Hash  []byte `json:"hash"`
	Error string `json:"error"`
}

// OpenStorage creates dir if needed (mode 0700) and returns its Storage.
func OpenStorage(dir string) (*Storage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &Storage{dir: dir}, nil
}

// Dir returns the storage directory.
func (s *Storage) Dir() string { return s.dir }

// Path returns the path of a file in the storage directory.
func (s *Storage) Path(name string) string { return filepath.Join(s.dir, name) }

// InstanceUID returns the persisted instance UID, creating and persisting a
// new UUID v7 on first use. A corrupt file is an error (it is not silently
// replaced: the agent's identity would change).
func (s *Storage) InstanceUID() (steward.InstanceUID, error) {
	b, err := os.ReadFile(s.Path("instance_uid"))
	if errors.Is(err, os.ErrNotExist) {
		uid := steward.NewInstanceUID()
		return uid, s.SetInstanceUID(uid)
	} else if err != nil {
		return steward.InstanceUID{}, fmt.Errorf("storage: %w", err)
	}
	uid, err := steward.ParseInstanceUID(strings.TrimSpace(string(b)))
	if err != nil {
		return uid, fmt.Errorf("storage: %s: %w", s.Path("instance_uid"), err)
	}
	return uid, nil
}

// SetInstanceUID persists uid (e.g. one assigned by the server).
func (s *Storage) SetInstanceUID(uid steward.InstanceUID) error {
	return writeFileAtomic(s.Path("instance_uid"), []byte(uid.String()+"\n"))
}

// LoadState returns the persisted state; an empty State when none exists.
func (s *Storage) LoadState() (*State, error) {
	b, err := os.ReadFile(s.Path("state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("storage: %s: %w", s.Path("state.json"), err)
	}
	return &st, nil
}

// SaveState persists st atomically.
func (s *Storage) SaveState(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.Path("state.json"), b)
}

// writeFileAtomic replaces path with data (mode 0600) via a synced
// temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
