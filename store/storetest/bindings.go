package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// testBindings: the first binding of a uid wins, also when several are
// attempted at once; a binding reads back; unbinding removes it.
func testBindings(t *testing.T, s steward.Store) {
	bs, ok := s.(steward.AgentBindingStore)
	if !ok {
		t.Fatalf("%T does not implement steward.AgentBindingStore", s)
	}
	c := ctx(t)
	uid := steward.NewInstanceUID()
	if _, err := bs.AgentBinding(c, uid); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("unbound agent: %v, want ENOTFOUND", err)
	}
	if _, _, err := bs.BindAgent(c, &steward.AgentBinding{AgentID: uid}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("binding without a token: %v, want EINVALID", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var wg sync.WaitGroup
	winners := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := string(rune('a' + i))
			got, created, err := bs.BindAgent(c, &steward.AgentBinding{AgentID: uid, EnrollmentTokenID: tok, CreatedAt: now})
			if err != nil {
				t.Error(err)
				return
			}
			if created != (got.EnrollmentTokenID == tok) {
				t.Errorf("BindAgent(%s) = %+v, created %v", tok, got, created)
			}
			if created {
				winners <- tok
			}
		}()
	}
	wg.Wait()
	close(winners)
	var won []string
	for w := range winners {
		won = append(won, w)
	}
	if len(won) != 1 {
		t.Fatalf("%d bindings created for one uid: %v", len(won), won)
	}
	got, err := bs.AgentBinding(c, uid)
	if err != nil || got.AgentID != uid || got.EnrollmentTokenID != won[0] || !got.CreatedAt.Equal(now) {
		t.Fatalf("AgentBinding = %+v, %v; want token %s at %v", got, err, won[0], now)
	}
	if err := bs.UnbindAgent(c, uid); err != nil {
		t.Fatal(err)
	}
	if err := bs.UnbindAgent(c, uid); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("second unbind: %v, want ENOTFOUND", err)
	}
	if _, created, err := bs.BindAgent(c, &steward.AgentBinding{AgentID: uid, EnrollmentTokenID: "z"}); err != nil || !created {
		t.Fatalf("bind after unbind: created %v, %v", created, err)
	}
}
