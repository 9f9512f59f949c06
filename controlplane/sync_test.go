package controlplane_test

import (
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// A desired-config change reaches the stored sync state without any report
// from the agent (the flusher derives it), and heartbeats derive nothing.
func TestSyncStateFollowsDesiredChangesWithoutReports(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, fullReport(uid, 1, "prod"))
	stored := func() *steward.AgentSync {
		a, err := f.svc.Agent(f.ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		return a.Sync
	}
	if s := stored(); s == nil || s.State != steward.SyncInSync || s.Desired != nil {
		t.Fatalf("nothing assigned: %+v", s)
	}
	f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")})
	f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"})
	eventually(t, "pending stored", func() bool {
		s := stored()
		return s != nil && s.State == steward.SyncPending && s.Desired != nil && s.Desired.Configs.String() == "base@1"
	})
	hash := c.pushed()[0].RemoteConfig.ConfigHash
	m := heartbeat(uid, 2)
	m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	f.send(c, m)
	if s := stored(); s.State != steward.SyncInSync || s.Running == nil || s.Running.Configs.String() != "base@1" {
		t.Fatalf("after APPLIED: %+v", s)
	}
	before := stored().Since
	for i := uint64(3); i < 10; i++ {
		f.send(c, heartbeat(uid, i))
	}
	if s := stored(); !s.Since.Equal(before) || s.State != steward.SyncInSync {
		t.Fatalf("heartbeats changed the sync state: %+v", s)
	}
	// Disconnected: offline, in the API view.
	c.Close()
	eventually(t, "offline", func() bool {
		a, err := f.svc.Agent(f.ctx, uid)
		return err == nil && a.Sync.State == steward.SyncOffline && a.SyncState() == steward.SyncOffline
	})
}

// Config events say, on one line, which config version they are about:
// the offer, the agent's status report (with the first line of its error)
// and the sync state that follows (issue 13: "config events do not name
// the config and version").
func TestConfigEventsNameTheVersion(t *testing.T) {
	f := newFixture(t)
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, fullReport(uid, 1, "prod"))
	f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")})
	f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"})
	eventually(t, "offer", func() bool { return len(c.pushed()) > 0 && c.pushed()[0].RemoteConfig != nil })
	hash := c.pushed()[0].RemoteConfig.ConfigHash
	m := heartbeat(uid, 2)
	m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED,
		ErrorMessage: "'exporters' unknown type: \"bad\"\nsecond line\nthird line"}
	f.send(c, m)
	want := map[string]string{
		steward.EventRemoteConfigSent:   "offered base@1",
		steward.EventRemoteConfigStatus: "remote config FAILED base@1: 'exporters' unknown type: \"bad\" …",
		steward.EventSyncChanged:        "failed: base@1: 'exporters' unknown type: \"bad\" …",
	}
	eventually(t, "config events", func() bool {
		evs, _ := f.svc.AgentEvents(f.ctx, uid, 50)
		got := 0
		for _, ev := range evs {
			if w, ok := want[ev.Type]; ok && ev.Message == w {
				got++
			}
		}
		if got != len(want) {
			for _, ev := range evs {
				t.Logf("%s %q", ev.Type, ev.Message)
			}
		}
		return got == len(want)
	})
	evs, _ := f.svc.AgentEvents(f.ctx, uid, 50)
	for _, ev := range evs {
		if strings.Contains(ev.Message, "\n") {
			t.Errorf("%s message is not one line: %q", ev.Type, ev.Message)
		}
	}
}
