package bench_test

import (
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/bench"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// build compiles one of the benchmark servers.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestScenarios runs every scenario with a small fleet against both real
// servers, as separate processes, and checks what each one reports.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the benchmark servers")
	}
	dir := t.TempDir()
	bins := map[string]string{
		bench.Steward: build(t, dir, "github.com/stewardhq/steward/bench/steward-server"),
		bench.OpAMPGo: build(t, dir, "github.com/stewardhq/steward/bench/opampgo-server"),
	}
	const n = 100
	for _, srv := range []string{bench.Steward, bench.OpAMPGo} {
		for _, sc := range []string{"idle", "heartbeat", "rollout", "storm"} {
			t.Run(srv+"/"+sc, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				res, err := bench.Run(ctx, bench.Config{
					Scenario: sc, Server: srv, ServerBin: bins[srv], Agents: n,
					OpAMPAddr: freeAddr(t), APIAddr: freeAddr(t), DataDir: t.TempDir(),
					Window: 2 * time.Second, Settle: 500 * time.Millisecond, Timeout: time.Minute,
					ReconnectJitter: 200 * time.Millisecond, Log: io.Discard, ConfigBytes: 4 << 10,
				})
				if err != nil {
					t.Fatalf("%v (result %s)", err, res.JSON())
				}
				if res.ConnectSeconds <= 0 || res.ServerErrors != 0 {
					t.Fatalf("result %s: want a connect time and no server errors", res.JSON())
				}
				switch sc {
				case "idle":
					// RSS of 100 agents is within the noise of what the
					// runtime returns to the OS; the heap must grow.
					if res.ServerRSS == 0 || res.HeapPerAgent <= 0 {
						t.Fatalf("result %s: no memory measured", res.JSON())
					}
					if srv == bench.OpAMPGo && res.GoroutinesPerAgent < 0.9 {
						t.Fatalf("result %s: the opamp-go server runs a goroutine per connection", res.JSON())
					}
				case "heartbeat":
					if res.MessagesPerSecond <= 0 || res.CPUPerMessageUS <= 0 {
						t.Fatalf("result %s: no heartbeat CPU measured", res.JSON())
					}
				case "rollout":
					if res.ServerApplied != n || res.RolloutSeconds <= 0 || res.RolloutCPUSeconds <= 0 || res.RolloutDisconnects != 0 {
						t.Fatalf("result %s: want %d agents APPLIED on the server, its CPU time, no disconnects", res.JSON(), n)
					}
				case "storm":
					if res.ReconnectSeconds <= 0 || res.StormCPUPer1k <= 0 || (srv == bench.Steward && !res.InventoryOK) {
						t.Fatalf("result %s: want every agent back (and the inventory complete)", res.JSON())
					}
				}
			})
		}
	}
}

// TestComponentsRecorded: a fleet reporting a contrib Collector's
// components goes through a storm on both servers, Steward's inventory
// holds every agent's components after it, and each result line records
// the setting.
func TestComponentsRecorded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the benchmark servers")
	}
	dir := t.TempDir()
	for _, srv := range []string{bench.Steward, bench.OpAMPGo} {
		bin := build(t, dir, "github.com/stewardhq/steward/bench/"+srv+"-server")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		res, err := bench.Run(ctx, bench.Config{
			Scenario: "storm", Server: srv, ServerBin: bin, Agents: 50, Components: 225, ReconnectJitter: 200 * time.Millisecond,
			OpAMPAddr: freeAddr(t), APIAddr: freeAddr(t), DataDir: t.TempDir(),
			Settle: 500 * time.Millisecond, Timeout: time.Minute, Log: io.Discard,
		})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v (result %s)", srv, err, res.JSON())
		}
		if !strings.Contains(res.JSON(), `"components":225`) || res.ServerErrors != 0 || (srv == bench.Steward && !res.InventoryOK) {
			t.Fatalf("result %s: want the setting recorded, no errors (and the inventory complete)", res.JSON())
		}
	}
	if got := (&bench.Result{}).JSON(); !strings.Contains(got, `"components":0`) {
		t.Fatalf("result %s: the default setting is not recorded", got)
	}
}

func TestRunValidates(t *testing.T) {
	for _, c := range []bench.Config{
		{Scenario: "idle", Server: bench.Steward, ServerBin: "x"},
		{Scenario: "idle", Server: "nginx", ServerBin: "x", Agents: 1},
		{Scenario: "idle", Server: bench.Steward, Agents: 1},
		{Scenario: "rollout", Server: bench.Steward, ServerBin: "x", Agents: 1, HTTP: true},
	} {
		if _, err := bench.Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", c)
		}
	}
}

func TestRatio(t *testing.T) {
	st := &bench.Result{Scenario: "rollout", Server: bench.Steward, Agents: 10, Components: 225, RolloutSeconds: 3, RSSPerAgent: 1000, ServerApplied: 10}
	peer := &bench.Result{Scenario: "rollout", Server: bench.OpAMPGo, Agents: 10, Components: 225, RolloutSeconds: 2, ServerApplied: 10}
	r := bench.Ratio(st, peer)
	if r.Ratio["rollout_seconds"] != 1.5 || r.Ratio["server_applied"] != 1 {
		t.Fatalf("ratios %v", r.Ratio)
	}
	if _, ok := r.Ratio["rss_per_agent_bytes"]; ok {
		t.Fatalf("a measure the peer lacks has a ratio: %v", r.Ratio)
	}
	for _, k := range []string{"agents", "components"} {
		if _, ok := r.Ratio[k]; ok {
			t.Fatalf("%s is a setting, not a measure: %v", k, r.Ratio)
		}
	}
}
