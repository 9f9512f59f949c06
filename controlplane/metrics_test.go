package controlplane_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// recorder is a controlplane.Metrics that keeps what it was told.
type recorder struct {
	mu              sync.Mutex
	received, sent  map[server.Transport]int
	handled, passes int
	store           map[controlplane.StoreOp]int
	applied, failed int
	lastAck         time.Duration
}

func newRecorder() *recorder {
	return &recorder{received: map[server.Transport]int{}, sent: map[server.Transport]int{}, store: map[controlplane.StoreOp]int{}}
}

func (r *recorder) MessageReceived(t server.Transport) { r.mu.Lock(); r.received[t]++; r.mu.Unlock() }
func (r *recorder) MessageSent(t server.Transport)     { r.mu.Lock(); r.sent[t]++; r.mu.Unlock() }
func (r *recorder) MessageHandled(time.Duration)       { r.mu.Lock(); r.handled++; r.mu.Unlock() }
func (r *recorder) ReconcilePass(time.Duration)        { r.mu.Lock(); r.passes++; r.mu.Unlock() }
func (r *recorder) StoreCall(op controlplane.StoreOp, _ time.Duration) {
	r.mu.Lock()
	r.store[op]++
	r.mu.Unlock()
}
func (r *recorder) ConfigAcknowledged(applied bool, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if applied {
		r.applied++
	} else {
		r.failed++
	}
	r.lastAck = d
}

func (r *recorder) acks() (applied, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, r.failed
}

// TestMetricsConfigAcknowledgement: the acknowledgement latency is observed
// once per offer, when the agent reports the offered hash APPLIED or
// FAILED; APPLYING, a repeat of the same status and a status for another
// hash are not acknowledgements.
func TestMetricsConfigAcknowledgement(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", Metrics: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	f := &fixture{t: t, ctx: ctx, store: st, svc: svc}

	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	f.send(c, fullReport(uid, 1, "prod"))
	if _, err := svc.PutConfig(ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	pushed := c.pushed()
	if len(pushed) != 1 || pushed[0].RemoteConfig == nil {
		t.Fatalf("want one config push, got %v", pushed)
	}
	hash := pushed[0].RemoteConfig.ConfigHash
	seq := uint64(2)
	report := func(h []byte, s protobufs.RemoteConfigStatuses) {
		m := heartbeat(uid, seq)
		seq++
		m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: h, Status: s}
		f.send(c, m)
	}
	report(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING)
	report([]byte("another hash"), protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	if a, fl := rec.acks(); a != 0 || fl != 0 {
		t.Fatalf("after APPLYING and a foreign hash: %d applied, %d failed acknowledgements; want none", a, fl)
	}
	report(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	report(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	if a, fl := rec.acks(); a != 0 || fl != 1 {
		t.Fatalf("after FAILED twice: %d applied, %d failed; want 0 and 1", a, fl)
	}
	svc.Close() // writes what the group commit holds
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.lastAck <= 0 {
		t.Errorf("acknowledgement latency %v, want > 0", rec.lastAck)
	}
	// 5 messages in (the full report and 4 status reports), each answered;
	// the config went out as a push.
	if rec.received[server.WebSocket] != 5 || rec.handled != 5 {
		t.Errorf("received %d, handled %d; want 5 and 5", rec.received[server.WebSocket], rec.handled)
	}
	if rec.sent[server.WebSocket] != 5+1 {
		t.Errorf("sent %d, want 6 (5 replies and 1 push)", rec.sent[server.WebSocket])
	}
	if rec.passes < 2 {
		t.Errorf("%d reconcile passes, want ≥ 2 (config and assignment)", rec.passes)
	}
	// Agent writes are batched (one group commit, or a few); reads of an
	// agent with unwritten state do not reach the store.
	if rec.store[controlplane.StorePutAgent] < 1 || rec.store[controlplane.StoreGetAgent] < 1 || rec.store[controlplane.StoreLoadDesired] < 1 {
		t.Errorf("store calls %v", rec.store)
	}
}

// TestEventsOfABurstAreStoredTogether: the events of agents connecting at
// once (an "agent connected" each) go to the store in one batch, not one
// transaction per few events; Close stores what is queued.
func TestEventsOfABurstAreStoredTogether(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := newRecorder()
	// A batch waits up to WriteInterval for more events: here longer
	// than the test, so everything below is one batch.
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "r1", Metrics: rec, WriteInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, store: st, svc: svc}
	const n = 100
	for range n {
		f.send(f.connect(server.WebSocket), fullReport(steward.NewInstanceUID(), 1, "prod"))
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx, steward.EventFilter{Types: []string{steward.EventAgentConnected}, Limit: 1000})
	if err != nil || len(evs) != n {
		t.Fatalf("%d agent.connected events stored (%v), want %d", len(evs), err, n)
	}
	all, err := st.Events(ctx, steward.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got, want := rec.store[controlplane.StoreAppendEvents], (len(all)+511)/512; got != want {
		t.Errorf("%d events stored in %d batches, want %d (of up to 512)", len(all), got, want)
	}
}
