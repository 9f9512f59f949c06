package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// EventBatch is the events of one AppendEvents call in
// BenchmarkAppendEvents: the control plane's event writer stores up to 512
// at a time.
const EventBatch = 512

// BenchmarkAppendEvents measures AppendEvents of batches of EventBatch
// events like those a fleet-wide config change emits (one
// agent.config_status and one agent.sync per acknowledging agent of a
// 10,000-agent fleet, with their details) into a log that keeps growing.
// It reports µs/event.
func BenchmarkAppendEvents(b *testing.B, s steward.Store) {
	ctx := context.Background()
	ids := make([]steward.InstanceUID, 10000)
	for i := range ids {
		ids[i] = steward.NewInstanceUID()
	}
	t0 := time.Now().UTC()
	batch := make([]*steward.Event, EventBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		at := t0.Add(time.Duration(n) * time.Millisecond)
		for i := 0; i < EventBatch/2; i++ {
			id := ids[(n*EventBatch/2+i)%len(ids)]
			batch[2*i] = &steward.Event{Type: steward.EventRemoteConfigStatus, AgentID: id, Time: at,
				Message: "remote config APPLIED collector@3",
				Details: map[string]any{"status": "APPLIED", "hash": "f66f1a066dcd8bbb96d7b95ce6be3e5c35cac040964792fbe3e01286783e09aa", "error_message": ""}}
			batch[2*i+1] = &steward.Event{Type: steward.EventSyncChanged, AgentID: id, Time: at,
				Message: "in_sync: runs collector@3",
				Details: map[string]any{"state": "in_sync", "previous": "in_sync", "desired": "collector@3", "running": "collector@3"}}
		}
		if err := s.AppendEvents(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*EventBatch), "µs/event")
	for _, e := range batch {
		if e.ID == 0 {
			b.Fatal("an appended event has no id")
		}
	}
}
