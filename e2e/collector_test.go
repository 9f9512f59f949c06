package e2e_test

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/e2e/e2eutil"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestCollectorUnderSupervisorWithSteward is the whole system: a Steward
// server, steward-supervisor in collector mode and a real collector. A good
// config pushed through the REST API runs; a bad one is reported FAILED,
// the previous config is restored and the collector keeps running; restart
// works; SIGTERM leaves no collector behind.
func TestCollectorUnderSupervisorWithSteward(t *testing.T) {
	otelcol := testenv.Getenv(t, "STEWARD_OTELCOL_BIN",
		"build a collector with scripts/build-otelcol.sh and export STEWARD_OTELCOL_BIN=<the path it prints>")
	// The Steward server.
	st := e2eutil.StartSteward(t)
	s := st.API

	// The supervisor, with a local base config: a nop pipeline.
	sup := e2eutil.StartCollectorSupervisor(t, st.WS(), otelcol,
		"receivers: {nop: {}}\nexporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [nop], exporters: [nop]}\n",
		"  description:\n    non_identifying_attributes: {env: e2e}\n")
	id, storage, exited := sup.ID, sup.Storage, sup.Exited
	e2eutil.Eventually(t, "the collector in Steward's inventory, healthy", 90*time.Second, func() bool {
		a := s.Agent(id)
		return a != nil && a.Online && a.Healthy() && a.Attribute("service.name") != "" && a.Attribute("env") == "e2e" &&
			a.Capabilities.Has(steward.AgentAcceptsRemoteConfig)
	})

	// A good config, assigned by label selector through the API.
	// The remote config defines the receiver it uses (the local file does
	// too): Steward validates a remote config on its own and refuses one
	// naming components it does not define (unless forced).
	good := "receivers: {nop: {}}\nexporters:\n  debug: {verbosity: basic}\nservice:\n  pipelines:\n    traces: {receivers: [nop], exporters: [debug]}\n"
	s.Call("PUT", "/api/v1/configs/pipeline", map[string]any{"files": map[string]any{"": map[string]string{"body": good, "content_type": "text/yaml"}}}, &steward.Config{})
	s.Call("PUT", "/api/v1/assignments/e2e", map[string]any{"name": "e2e", "config": "pipeline", "selector": "env=e2e"}, &steward.Assignment{})
	var goodHash []byte
	e2eutil.Eventually(t, "good config APPLIED and running", 90*time.Second, func() bool {
		a := s.Agent(id)
		if a == nil || a.RemoteConfigStatus == nil || a.RemoteConfigStatus.Status != steward.RemoteConfigApplied || a.EffectiveConfig == nil {
			return false
		}
		goodHash = a.RemoteConfigStatus.LastRemoteConfigHash
		for _, f := range *a.EffectiveConfig {
			if strings.Contains(string(f.Body), "debug") {
				return a.Healthy()
			}
		}
		return false
	})
	pids := e2eutil.ProcessesUnder(storage, "steward-supervisor")
	if len(pids) != 1 {
		t.Fatalf("want one collector running, found %v", pids)
	}

	// A bad config: FAILED with the collector's reason, previous config
	// restored, collector still running.
	bad := "receivers: {nop: {}}\nexporters:\n  debug: {verbosity: nonsense}\nservice:\n  pipelines:\n    traces: {receivers: [nop], exporters: [debug]}\n"
	s.Call("PUT", "/api/v1/configs/pipeline", map[string]any{"files": map[string]any{"": map[string]string{"body": bad, "content_type": "text/yaml"}}}, &steward.Config{})
	e2eutil.Eventually(t, "bad config FAILED", 90*time.Second, func() bool {
		a := s.Agent(id)
		return a != nil && a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigFailed &&
			!bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, goodHash)
	})
	a := s.Agent(id)
	if a.RemoteConfigStatus.ErrorMessage == "" {
		t.Fatal("FAILED without a reason")
	}
	t.Logf("reported failure: %s", a.RemoteConfigStatus.ErrorMessage)
	e2eutil.Eventually(t, "collector healthy again on the previous config", 90*time.Second, func() bool {
		a := s.Agent(id)
		return a != nil && a.Healthy() && len(e2eutil.ProcessesUnder(storage, "steward-supervisor")) == 1
	})
	var events struct{ Events []steward.Event }
	s.Call("GET", "/api/v1/agents/"+id.String()+"/events?limit=200", nil, &events)
	failed := 0
	for _, e := range events.Events {
		if e.Type == steward.EventRemoteConfigStatus && strings.Contains(e.Message, "FAILED") {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no FAILED status event in the agent's history")
	}

	// Restart through the API: a new collector process.
	before := e2eutil.ProcessesUnder(storage, "steward-supervisor")
	if code := s.Call("POST", "/api/v1/agents/"+id.String()+"/restart", nil, nil); code >= 300 {
		t.Fatalf("restart: %d", code)
	}
	e2eutil.Eventually(t, "a new collector process after restart", 90*time.Second, func() bool {
		now := e2eutil.ProcessesUnder(storage, "steward-supervisor")
		return len(now) == 1 && len(before) == 1 && now[0] != before[0]
	})
	e2eutil.Eventually(t, "healthy after restart", 90*time.Second, func() bool { a := s.Agent(id); return a != nil && a.Healthy() })

	// SIGTERM: the supervisor stops the collector, says goodbye, and exits.
	_ = sup.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not exit on SIGTERM")
	}
	if left := e2eutil.ProcessesUnder(storage, "steward-supervisor"); len(left) != 0 {
		t.Fatalf("collector processes left behind: %v", left)
	}
	e2eutil.Eventually(t, "agent offline in Steward", 30*time.Second, func() bool { a := s.Agent(id); return a != nil && !a.Online })
}
