package supervisor

import (
	"path/filepath"
	"testing"
)

// The supervisor configs in examples/ (used by the README) load with the
// strict parser: no unknown key, every value valid.
func TestExampleConfigs(t *testing.T) {
	paths, err := filepath.Glob("../examples/supervisor-*.yaml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, p := range paths {
		cfg, err := LoadConfig(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if cfg.Server.Endpoint != "ws://127.0.0.1:4320/v1/opamp" {
			t.Errorf("%s: endpoint %s is not the quickstart server's", p, cfg.Server.Endpoint)
		}
	}
}
