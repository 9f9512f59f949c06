package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/stewardhq/steward/internal/yamlmerge"
)

// Check looks for the errors a valid config file can still hold on this
// host, as `steward-supervisor --check` does: the agent executable is
// missing, a directory or not executable (a name without a slash is looked
// up in PATH, as when the agent is started); a local or initial config
// file is unreadable (or, in collector mode, not a YAML mapping); a server
// TLS file does not load; the storage directory is a file. It returns all of
// them joined, nil when none.
func (c *Config) Check() error {
	var errs []error
	a := &c.Agent
	if err := checkExecutable(a.Executable); err != nil {
		errs = append(errs, fmt.Errorf("agent.executable: %w", err))
	}
	for _, path := range a.LocalConfigFiles {
		b, err := os.ReadFile(path)
		if err == nil && a.Mode == ModeCollector {
			_, err = yamlmerge.ParseMap(path, b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("agent.local_config_files: %w", err))
		}
	}
	if path := a.InitialConfigFile; path != "" {
		if _, err := os.ReadFile(path); err != nil {
			errs = append(errs, fmt.Errorf("agent.initial_config_file: %w", err))
		}
	}
	if _, err := clientTLS(c.Server.TLS); err != nil {
		errs = append(errs, err)
	}
	if st, err := os.Stat(c.Storage.Directory); err == nil && !st.IsDir() {
		errs = append(errs, fmt.Errorf("storage.directory: %s is not a directory", c.Storage.Directory))
	}
	return errors.Join(errs...)
}

// checkExecutable fails unless path names an executable regular file.
func checkExecutable(path string) error {
	if !strings.Contains(path, "/") {
		if _, err := exec.LookPath(path); err != nil {
			return fmt.Errorf("%q not found in PATH", path)
		}
		return nil
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s is a directory", path)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable (mode %v)", path, st.Mode().Perm())
	}
	return nil
}
