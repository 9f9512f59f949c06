package supervisor

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/client"
)

func TestLocalServerRecordsOnlyItsCollector(t *testing.T) {
	uid := steward.NewInstanceUID()
	changes := make(chan struct{}, 100)
	ls, err := startLocalServer(slog.New(slog.DiscardHandler), func() steward.InstanceUID { return uid }, func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Shutdown(context.Background())
	ext := ls.extension(1)
	if ext.instanceUID != uid || !strings.HasPrefix(ext.endpoint, "ws://127.0.0.1:") {
		t.Fatalf("extension = %+v", ext)
	}

	connect := func(id steward.InstanceUID, name string) *client.Client {
		c, err := client.New(client.Settings{
			Endpoint:     ls.url,
			InstanceUID:  id,
			Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth | protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents,
			Description:  &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{strKV("service.name", name)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "StatusOK"})
		_ = c.SetAvailableComponents(&protobufs.AvailableComponents{Hash: []byte("h1"), Components: map[string]*protobufs.ComponentDetails{
			"receivers": {SubComponentMap: map[string]*protobufs.ComponentDetails{"nop": {}}},
		}})
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
		return c
	}

	// A stranger's reports are refused and not recorded.
	connect(steward.NewInstanceUID(), "stranger")
	time.Sleep(300 * time.Millisecond)
	if r := ls.report(); r.messageCount != 0 || r.description != nil {
		t.Fatalf("stranger recorded: %+v", r)
	}

	c := connect(uid, "collector")
	eventually(t, "collector report", func() bool {
		r := ls.report()
		return r.connected && r.description != nil && r.health != nil && r.health.Healthy && r.components != nil
	})
	if name := ls.report().description.IdentifyingAttributes[0].GetValue().GetStringValue(); name != "collector" {
		t.Fatalf("description = %v", name)
	}
	_ = c.Stop(context.Background())
	eventually(t, "disconnect seen", func() bool { return !ls.report().connected })
	if len(changes) == 0 {
		t.Fatal("onChange never called")
	}
}
