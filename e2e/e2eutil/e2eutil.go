// Package e2eutil holds what the end-to-end tests share: a Steward server
// run in the test process (and restarted on the same addresses and data),
// a REST API client that fails the test on transport errors, polling with a
// deadline, and process lookup by command line.
package e2eutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/daemon"
)

// Steward is a real Steward server (daemon.Run: SQLite in a temp dir,
// loopback ephemeral ports, no admin password) started by StartSteward.
type Steward struct {
	t       testing.TB
	dataDir string
	// OpAMPAddr and HTTPAddr are the bound addresses; Restart keeps them.
	OpAMPAddr, HTTPAddr string
	API                 *API
	cancel              context.CancelFunc
	done                chan error
}

// StartSteward starts a server; it is stopped when the test ends.
func StartSteward(t testing.TB) *Steward {
	s := &Steward{t: t, dataDir: filepath.Join(t.TempDir(), "steward"), OpAMPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// WS and HTTP are the OpAMP endpoints over WebSocket and plain HTTP.
func (s *Steward) WS() string   { return "ws://" + s.OpAMPAddr + "/v1/opamp" }
func (s *Steward) HTTP() string { return "http://" + s.OpAMPAddr + "/v1/opamp" }

func (s *Steward) start() {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{OpAMPAddr: s.OpAMPAddr, HTTPAddr: s.HTTPAddr, DataDir: s.dataDir,
			AdminPassword: "-", Replica: "e2e", Ready: func(o, h net.Addr) { ready <- [2]net.Addr{o, h} }})
	}()
	select {
	case a := <-ready:
		s.OpAMPAddr, s.HTTPAddr = a[0].String(), a[1].String()
	case err := <-done:
		cancel()
		s.t.Fatalf("steward server: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		s.t.Fatal("steward server did not start within 2m")
	}
	s.cancel, s.done = cancel, done
	s.API = &API{T: s.t, Base: "http://" + s.HTTPAddr}
}

// Stop stops the server (idempotent).
func (s *Steward) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("steward server: %v", err)
	}
	s.cancel = nil
}

// Restart stops the server and starts it again on the same addresses and
// data directory.
func (s *Steward) Restart() {
	s.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for { // the old listeners are closed; retry briefly if the port is still held
		ln, err := net.Listen("tcp", s.OpAMPAddr)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("OpAMP port still in use: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.start()
}

// API calls Steward's REST API.
type API struct {
	T    testing.TB
	Base string
}

// Call sends body (JSON) and decodes the answer into out; it returns the
// status. A transport error, or (with out set) a status over 299, fails the
// test.
func (a *API) Call(method, path string, body, out any) int {
	a.T.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := nethttp.NewRequest(method, a.Base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		a.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 && out != nil {
		a.T.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.T.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// Agent returns the agent, nil when Steward does not know it.
func (a *API) Agent(id steward.InstanceUID) *steward.Agent {
	a.T.Helper()
	var ag steward.Agent
	if a.Call("GET", "/api/v1/agents/"+id.String(), nil, nil) != 200 {
		return nil
	}
	a.Call("GET", "/api/v1/agents/"+id.String(), nil, &ag)
	return &ag
}

// Events returns the agent's events, newest first.
func (a *API) Events(id steward.InstanceUID) []steward.Event {
	a.T.Helper()
	var out struct{ Events []steward.Event }
	a.Call("GET", "/api/v1/agents/"+id.String()+"/events?limit=1000", nil, &out)
	return out.Events
}

// PutConfig stores a single-file YAML config under name.
func (a *API) PutConfig(name, body string) {
	a.T.Helper()
	a.Call("PUT", "/api/v1/configs/"+name, map[string]any{"files": map[string]any{"": map[string]string{"body": body, "content_type": "text/yaml"}}}, &steward.Config{})
}

// Assign assigns config to the agents matching selector.
func (a *API) Assign(name, config, selector string) {
	a.T.Helper()
	a.Call("PUT", "/api/v1/assignments/"+name, map[string]any{"name": name, "config": config, "selector": selector}, &steward.Assignment{})
}

// Eventually polls cond every 100ms until it holds, failing the test after
// timeout.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LockedBuffer is a bytes.Buffer safe for concurrent writers (process
// output) and readers.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// ProcessesUnder lists live processes (not zombies, not this one) whose
// command line mentions marker but not any of the excluded strings.
func ProcessesUnder(marker string, exclude ...string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
next:
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(marker)) {
			continue
		}
		for _, x := range exclude {
			if bytes.Contains(b, []byte(x)) {
				continue next
			}
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && bytes.Contains(st, []byte(") Z ")) {
			continue // a zombie is already dead
		}
		out = append(out, pid)
	}
	return out
}
