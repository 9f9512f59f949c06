package controlplane_test

import (
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// A fleet-wide push is sent before WebSocket messages that arrive during it
// are handled: an ack of an agent pushed first waits until every agent has
// been sent the change (its reply then follows). Plain HTTP polls are not
// held.
func TestFleetPushGoesBeforeMessages(t *testing.T) {
	f := newFixture(t)
	first, last, polling := steward.NewInstanceUID(), steward.NewInstanceUID(), steward.NewInstanceUID()
	cf, cl, ch := f.connect(server.WebSocket), f.connect(server.WebSocket), f.connect(server.HTTP)
	f.send(cf, fullReport(first, 1, "prod"))
	f.send(cl, fullReport(last, 1, "prod"))
	f.send(ch, fullReport(polling, 1, "prod"))
	if _, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}

	// The next change's push stops at whichever WebSocket agent it reaches
	// first until released.
	reached, release := make(chan struct{}, 2), make(chan struct{})
	hold := func() { reached <- struct{}{}; <-release }
	cf.hold, cl.hold = hold, hold
	pushed := make(chan error, 1)
	go func() {
		_, err := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 2\n")})
		pushed <- err
	}()
	<-reached

	handled := make(chan error, 2)
	go func() { _, err := f.svc.OnMessage(f.ctx, cf, heartbeat(first, 2)); handled <- err }()
	go func() { _, err := f.svc.OnMessage(f.ctx, cl, heartbeat(last, 2)); handled <- err }()
	// A poll is answered meanwhile (with the change: the desired state
	// was reloaded before the push began).
	if r := f.send(ch, heartbeat(polling, 2)); r == nil || r.RemoteConfig == nil {
		t.Fatalf("HTTP poll during the push: want the new config, got %v", r)
	}
	select {
	case <-handled:
		t.Fatal("a WebSocket message was handled while the push was under way")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-handled; err != nil {
			t.Fatal(err)
		}
	}
	if len(cf.pushed()) != 2 || len(cl.pushed()) != 2 {
		t.Fatalf("pushes: %d and %d, want 2 each", len(cf.pushed()), len(cl.pushed()))
	}
}
