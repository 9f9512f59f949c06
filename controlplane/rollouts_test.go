package controlplane_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
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
	applying = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING
	applied  = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED
	failed   = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED
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

// measureCounter counts the agent listings of the control plane (each
// progress measurement of a running rollout is one).
type measureCounter struct {
	*sqlite.DB
	n atomic.Int64
}

func (s *measureCounter) AgentsWith(ctx context.Context, f steward.AgentFilter, live []*steward.Agent) ([]*steward.Agent, int, error) {
	s.n.Add(1)
	return s.DB.AgentsWith(ctx, f, live)
}

// A running rollout is measured at a bounded pace, however fast agents
// report: each measurement reads every online agent of the assignment, and
// every status report asked for one (here agents flapping between APPLYING
// and APPLIED as fast as the test can send, while one agent that never
// applies holds the stage open); so did every flush tick.
func TestRolloutProgressIsMeasuredAtABoundedPace(t *testing.T) {
	db, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	st := &measureCounter{DB: db}
	f := newFixtureWith(t, st)
	var all []*fleetAgent
	for range 20 {
		all = append(all, f.join("prod", nil))
	}
	v1, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 1\n")})
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Version: v1.Version, Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	v2, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 2\n")})
	if _, err := f.svc.StartRollout(f.ctx, &steward.Rollout{Name: "to-v2", Assignment: "prod", ToVersion: v2.Version,
		Stages: []steward.RolloutStage{{Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	h2 := all[0].lastPushed()
	eventually(t, "a first measurement", func() bool { return f.rolloutState("to-v2").Progress != nil })
	start, before := time.Now(), st.n.Load()
	reports := 0
	for time.Since(start) < time.Second {
		for _, a := range all[1:] { // all[0] never applies: the rollout stays running
			f.report(a, h2, applying)
			f.report(a, h2, applied)
			reports += 2
		}
	}
	took, n := time.Since(start), st.n.Load()-before
	if max := int64(took/(100*time.Millisecond)) + 2; n > max {
		t.Fatalf("%d measurements in %v of %d status reports, want at most %d (one per 100 ms)", n, took.Round(time.Millisecond), reports, max)
	}
	if n == 0 {
		t.Fatal("no measurement while agents reported")
	}
	eventually(t, "progress counting the applied agents", func() bool {
		p := f.rolloutState("to-v2").Progress
		return p != nil && p.Applied == len(all)-1 && p.Pending == 1
	})
}

// One replica measures a running rollout: the other leaves it to the
// replica that measured it last while that one keeps doing so (each
// measurement reads every online agent of the assignment: every replica
// measuring multiplied that by the replicas), and takes over once it
// stopped (half a replica lease after).
func TestOneReplicaMeasuresARollout(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &hub{sent: map[string]int{}}
	open := func(name string) (*controlplane.Service, *measureCounter) {
		st := &measureCounter{DB: db}
		svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Broadcaster: h, Replica: name,
			FlushInterval: 50 * time.Millisecond, ReplicaLease: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return svc, st
	}
	r1, c1 := open("r1")
	r2, c2 := open("r2")
	var closed sync.Map
	for _, r := range []*controlplane.Service{r1, r2} {
		t.Cleanup(func() {
			if _, done := closed.LoadOrStore(r, true); !done {
				r.Close()
			}
		})
	}
	f1, f2 := &fixture{t: t, ctx: ctx, svc: r1}, &fixture{t: t, ctx: ctx, svc: r2}
	var all []*fleetAgent
	for i := range 10 {
		f := f1
		if i%2 == 1 {
			f = f2
		}
		all = append(all, f.join("prod", nil))
	}
	v1, _ := r1.PutConfig(ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 1\n")})
	if _, err := r1.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Version: v1.Version, Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v1 pushed on both replicas", func() bool {
		for _, a := range all {
			if a.lastPushed() == nil {
				return false
			}
		}
		return true
	})
	h1 := all[0].lastPushed()
	v2, _ := r1.PutConfig(ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 2\n")})
	if _, err := r1.StartRollout(ctx, &steward.Rollout{Name: "to-v2", Assignment: "prod", ToVersion: v2.Version,
		Stages: []steward.RolloutStage{{Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	var measurer string
	eventually(t, "a first measurement", func() bool {
		r, err := r1.Rollout(ctx, "to-v2")
		measurer = r.MeasuredBy
		return err == nil && r.Progress != nil
	})
	// The agents on both replicas apply v2 but all[0] (on r1) and all[1]
	// (on r2), which hold the rollout running, on whichever replica
	// survives the measurer below; both replicas hear status reports.
	eventually(t, "v2 pushed on both replicas", func() bool {
		for _, a := range all {
			if bytes.Equal(a.lastPushed(), h1) {
				return false
			}
		}
		return true
	})
	before1, before2 := c1.n.Load(), c2.n.Load()
	start := time.Now()
	for time.Since(start) < 600*time.Millisecond {
		for i, a := range all[2:] {
			f := f1
			if i%2 == 1 {
				f = f2
			}
			f.report(a, a.lastPushed(), applying)
			f.report(a, a.lastPushed(), applied)
		}
	}
	time.Sleep(300 * time.Millisecond) // ticks of both replicas
	n1, n2 := c1.n.Load()-before1, c2.n.Load()-before2
	if measurer == "r1" && (n1 == 0 || n2 != 0) || measurer == "r2" && (n2 == 0 || n1 != 0) {
		t.Fatalf("measurements while %s measures: r1 %d, r2 %d; want only %s's", measurer, n1, n2, measurer)
	}
	// The measurer counts the agents it holds (from their sessions) and
	// those of the other replica (from the store) alike.
	eventually(t, "progress counting the agents of both replicas", func() bool {
		r, err := r1.Rollout(ctx, "to-v2")
		p := r.Progress
		return err == nil && p != nil && p.Targeted == 10 && p.Applied == 8 && p.Pending == 2
	})
	// The measurer stops; the other carries the rollout on.
	gone, other := r1, r2
	if measurer == "r2" {
		gone, other = r2, r1
	}
	closed.Store(gone, true)
	gone.Close()
	eventually(t, "the other replica measuring", func() bool {
		r, err := other.Rollout(ctx, "to-v2")
		return err == nil && r.MeasuredBy != measurer && time.Since(r.MeasuredAt) < time.Second
	})
}

// A new measurement of a running rollout that moves neither its state nor
// its stage is published live (the console updates without polling) and
// is not stored: the event log keeps what changed, not every count.
func TestRolloutProgressIsPublishedLive(t *testing.T) {
	f := newFixture(t)
	all := []*fleetAgent{f.join("prod", nil), f.join("prod", nil), f.join("prod", nil)}
	v1, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 1\n")})
	if _, err := f.svc.PutAssignment(f.ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Version: v1.Version, Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	v2, _ := f.svc.PutConfig(f.ctx, &steward.Config{Name: "base", Files: yamlConfig("v: 2\n")})
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	live := f.svc.Bus().Subscribe(ctx)
	if _, err := f.svc.StartRollout(f.ctx, &steward.Rollout{Name: "to-v2", Assignment: "prod", ToVersion: v2.Version,
		Stages: []steward.RolloutStage{{Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v2 pushed", func() bool { return all[0].lastPushed() != nil && all[1].lastPushed() != nil })
	f.report(all[0], all[0].lastPushed(), applied)
	deadline := time.After(10 * time.Second)
	for {
		var e *steward.Event
		select {
		case e = <-live:
		case <-deadline:
			t.Fatal("no rollout.progress event with one agent applied")
		}
		if e.Type != steward.EventRolloutProgress {
			continue
		}
		d, _ := e.Details.(map[string]any)
		p, _ := d["progress"].(*steward.RolloutProgress)
		if d["rollout"] != "to-v2" || p == nil {
			t.Fatalf("progress event %+v", e)
		}
		if p.Applied == 1 && p.Targeted == 3 && p.Pending == 2 {
			break
		}
	}
	f.svc.Close() // the event writer stores what was queued
	stored, err := f.store.Events(f.ctx, steward.EventFilter{Types: []string{steward.EventRolloutProgress, steward.EventRolloutChanged}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stored {
		if e.Type == steward.EventRolloutProgress {
			t.Fatalf("a progress event was stored: %+v", e)
		}
	}
	if len(stored) == 0 {
		t.Fatal("the rollout's start is not in the event log either: the check above proves nothing")
	}
}
