package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

func testSessions(t *testing.T, s steward.Store) {
	ctx := context.Background()
	ss, ok := s.(steward.SessionStore)
	if !ok {
		t.Fatal("store does not implement steward.SessionStore")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(secret, epoch string, ttl time.Duration) *steward.Session {
		return &steward.Session{Hash: steward.HashSecret(secret), Name: "admin", CSRF: "csrf-" + secret, Epoch: epoch,
			CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}
	live, old, expired := mk("live", "e2", time.Hour), mk("old", "e1", time.Hour), mk("expired", "e2", -time.Second)
	for _, x := range []*steward.Session{live, old, expired} {
		if err := ss.PutSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.PutSession(ctx, mk("live", "e2", time.Hour)); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Errorf("duplicate hash: %v", err)
	}
	got, err := ss.SessionByHash(ctx, steward.HashSecret("live"))
	if err != nil || got.Name != "admin" || got.CSRF != "csrf-live" || got.Epoch != "e2" ||
		!got.CreatedAt.Equal(now) || !got.ExpiresAt.Equal(now.Add(time.Hour)) || !steward.EqualHash(got.Hash, live.Hash) {
		t.Fatalf("SessionByHash = %+v, %v", got, err)
	}
	if _, err := ss.SessionByHash(ctx, steward.HashSecret("nope")); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("unknown session: %v", err)
	}
	ann := &steward.Session{Hash: steward.HashSecret("ann"), Name: "ann", CSRF: "c", Epoch: "a1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := ss.PutSession(ctx, ann); err != nil {
		t.Fatal(err)
	}
	n, err := ss.DeleteSessions(ctx, "admin", "e2", now)
	if err != nil || n != 2 {
		t.Fatalf("DeleteSessions = %d, %v; want admin's old epoch and the expired one", n, err)
	}
	if _, err := ss.SessionByHash(ctx, ann.Hash); err != nil {
		t.Errorf("another user's session of another epoch went with admin's: %v", err)
	}
	if n, err := ss.DeleteSessions(ctx, "ann", "", now); err != nil || n != 1 {
		t.Errorf("DeleteSessions(ann, all) = %d, %v; want 1", n, err)
	}
	for _, gone := range []string{"old", "expired"} {
		if _, err := ss.SessionByHash(ctx, steward.HashSecret(gone)); steward.ErrorCode(err) != steward.ENOTFOUND {
			t.Errorf("%s session kept: %v", gone, err)
		}
	}
	if err := ss.DeleteSession(ctx, live.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.SessionByHash(ctx, live.Hash); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("deleted session: %v", err)
	}
	if err := ss.DeleteSession(ctx, live.Hash); err != nil {
		t.Errorf("second delete: %v", err)
	}
}
