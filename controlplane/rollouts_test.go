package controlplane_test

import (
	"bytes"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// fleetAgent is a connected test agent that remembers the last config hash
// pushed to it.
type fleetAgent struct {
	id   steward.InstanceUID
	conn *testConn
	seq  uint64
}

func (f *fixture) join(env string, labels map[string]string) *fleetAgent {
	a := &fleetAgent{id: steward.NewInstanceUID(), conn: f.connect(server.WebSocket)}
	a.seq = 1
	f.send(a.conn, fullReport(a.id, a.seq, env))
	if labels != nil {
		if err := f.svc.SetAgentLabels(f.ctx, a.id, labels); err != nil {
			f.t.Fatal(err)
		}
	}
	return a
}

// lastPushed returns the hash of the newest remote config pushed.
func (a *fleetAgent) lastPushed() []byte {
	p := a.conn.pushed()
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].RemoteConfig != nil {
			return p[i].RemoteConfig.ConfigHash
		}
	}
	return nil
}

func (f *fixture) report(a *fleetAgent, hash []byte, st protobufs.RemoteConfigStatuses) {
	a.seq++
	m := heartbeat(a.id, a.seq)
	m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash, Status: st}
	f.send(a.conn, m)
}

const (
	applied = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED
	failed  = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED
)

func (f *fixture) rolloutState(name string) *steward.Rollout {
	r, err := f.svc.Rollout(f.ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func TestRolloutInStagesCompletes(t *testing.T) {
	f := newFixture(t)
	canary := f.join("prod", map[string]string{"ring": "canary"})
	rest := []*fleetAgent{f.join("prod", nil), f.join("prod", nil)}
	all := append([]*fleetAgent{canary}, rest...)

	v1, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 1\n")})
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Version: v1.Version, Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	h1 := canary.lastPushed()
	for _, a := range all {
		if !bytes.Equal(a.lastPushed(), h1) {
			t.Fatal("v1 not pushed to every agent")
		}
		f.report(a, h1, applied)
	}
	v2, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 2\n")})
	for _, a := range all {
		if !bytes.Equal(a.lastPushed(), h1) {
			t.Fatal("a pinned assignment moved to the new version by itself")
		}
	}
	r, err := f.svc.StartRollout(f.ctx, &steward.Rollout{Name: "to-v2", Assignment: "prod", ToVersion: v2.Version,
		Stages: []steward.RolloutStage{{Selector: "ring=canary"}, {Percent: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.FromVersion != v1.Version || r.State != steward.RolloutRunning {
		t.Fatalf("started rollout %+v", r)
	}
	h2 := canary.lastPushed()
	if bytes.Equal(h2, h1) {
		t.Fatal("canary did not get v2")
	}
	for _, a := range rest {
		if !bytes.Equal(a.lastPushed(), h1) {
			t.Fatal("stage 2 agent got v2 during stage 1")
		}
	}
	// The canary applies it: the rollout moves to the next stage.
	f.report(canary, h2, applied)
	eventually(t, "stage 2", func() bool { return f.rolloutState("to-v2").Stage == 1 })
	eventually(t, "v2 pushed to the rest", func() bool {
		for _, a := range rest {
			if !bytes.Equal(a.lastPushed(), h2) {
				return false
			}
		}
		return true
	})
	for _, a := range rest {
		f.report(a, h2, applied)
	}
	eventually(t, "rollout completed", func() bool { return f.rolloutState("to-v2").State == steward.RolloutCompleted })
	// The replica that completed it pins the assignment right after.
	eventually(t, "assignment pinned to v2", func() bool {
		as, err := f.svc.Assignment(f.ctx, "prod")
		return err == nil && as.Version == v2.Version
	})
	if p := f.rolloutState("to-v2").Progress; p == nil || p.Applied != 3 || p.Targeted != 3 {
		t.Fatalf("final progress %+v", p)
	}
	// A finished rollout changes nothing more.
	for _, a := range all {
		if !bytes.Equal(a.lastPushed(), h2) {
			t.Fatal("config changed after completion")
		}
	}
}

func TestRolloutPausesOnFailureAndRollsBack(t *testing.T) {
	f := newFixture(t)
	canary := f.join("prod", map[string]string{"ring": "canary"})
	other := f.join("prod", nil)
	v1, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 1\n")})
	f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Version: v1.Version, Selector: "env=prod"})
	h1 := canary.lastPushed()
	f.report(canary, h1, applied)
	f.report(other, h1, applied)
	v2, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: broken\n")})
	if _, err := f.svc.StartRollout(f.ctx, &steward.Rollout{Name: "to-v2", Assignment: "prod", ToVersion: v2.Version,
		Stages: []steward.RolloutStage{{Selector: "ring=canary"}, {Percent: 100}}, MaxFailureRatio: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.StartRollout(f.ctx, &steward.Rollout{Name: "again", Assignment: "prod", ToVersion: v2.Version,
		Stages: []steward.RolloutStage{{Percent: 50}}}); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("second active rollout of one assignment: %v", err)
	}
	h2 := canary.lastPushed()
	if bytes.Equal(h2, h1) {
		t.Fatal("canary did not get v2")
	}
	f.report(canary, h2, failed)
	eventually(t, "pause", func() bool { return f.rolloutState("to-v2").State == steward.RolloutPaused })
	r := f.rolloutState("to-v2")
	if r.Stage != 0 || r.Reason == "" || r.Progress == nil || r.Progress.Failed != 1 {
		t.Fatalf("paused rollout %+v", r)
	}
	if !bytes.Equal(other.lastPushed(), h1) {
		t.Fatal("the failure did not stop the rollout before stage 2")
	}
	// One action rolls everyone back to v1.
	if _, err := f.svc.RollbackRollout(f.ctx, "to-v2"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canary.lastPushed(), h1) {
		t.Fatal("canary was not given v1 back")
	}
	as, _ := f.svc.Assignment(f.ctx, "prod")
	if as.Version != v1.Version {
		t.Fatalf("assignment pinned to %d after rollback", as.Version)
	}
	if _, err := f.svc.ResumeRollout(f.ctx, "to-v2"); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("resume after rollback: %v", err)
	}
}
