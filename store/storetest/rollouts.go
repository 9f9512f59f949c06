package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// testRollouts checks RolloutStore: insert, compare-and-swap updates,
// ordering and concurrent writers (exactly one wins each revision).
func testRollouts(t *testing.T, s steward.Store) {
	rs, ok := s.(steward.RolloutStore)
	if !ok {
		t.Fatalf("%T does not implement steward.RolloutStore", s)
	}
	c := ctx(t)
	_, err := rs.Rollout(c, "nope")
	wantCode(t, err, steward.ENOTFOUND, "missing rollout")

	r := &steward.Rollout{Name: "r1", Assignment: "a", FromVersion: 1, ToVersion: 2,
		Stages: []steward.RolloutStage{{Percent: 10}, {Selector: "env=prod"}}, MaxFailureRatio: 0.2,
		State: steward.RolloutRunning, CreatedAt: ts(100, 0), UpdatedAt: ts(100, 0)}
	must(t, rs.PutRollout(c, r), "insert")
	if r.Revision != 1 {
		t.Fatalf("revision after insert = %d, want 1", r.Revision)
	}
	dup := *r
	dup.Revision = 0
	wantCode(t, rs.PutRollout(c, &dup), steward.ECONFLICT, "insert of a taken name")

	got, err := rs.Rollout(c, "r1")
	must(t, err, "get")
	sameJSON(t, got, r, "rollout round trip")

	// A stale writer loses.
	stale := *got
	got.Stage, got.UpdatedAt = 1, ts(200, 0)
	must(t, rs.PutRollout(c, got), "update")
	if got.Revision != 2 {
		t.Fatalf("revision after update = %d", got.Revision)
	}
	stale.State = steward.RolloutPaused
	wantCode(t, rs.PutRollout(c, &stale), steward.ECONFLICT, "stale update")
	again, _ := rs.Rollout(c, "r1")
	if again.Stage != 1 || again.State != steward.RolloutRunning {
		t.Fatalf("stale write landed: %+v", again)
	}

	// Newest first.
	must(t, rs.PutRollout(c, &steward.Rollout{Name: "r2", Assignment: "b", ToVersion: 3, State: steward.RolloutCompleted, UpdatedAt: ts(300, 0)}), "insert r2")
	list, err := rs.Rollouts(c)
	must(t, err, "list")
	if len(list) != 2 || list[0].Name != "r2" || list[1].Name != "r1" {
		t.Fatalf("list order: %v", list)
	}

	// Concurrent writers of the same revision: exactly one wins.
	base, _ := rs.Rollout(c, "r1")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mine := *base
			mine.Stage = 10 + i
			mine.UpdatedAt = time.Unix(400, int64(i)*1000).UTC()
			err := rs.PutRollout(c, &mine)
			switch steward.ErrorCode(err) {
			case "":
				wins.Add(1)
			case steward.ECONFLICT:
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent writers won, want exactly 1", wins.Load())
	}
}
