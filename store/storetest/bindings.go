package storetest

import (
	"fmt"
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

// testAgentCredentials: the one-statement read of an agent's certificates
// and binding agrees with the two reads it replaces, for an agent with
// neither, either or both (and another agent's credentials beside them).
func testAgentCredentials(t *testing.T, s steward.Store) {
	ac, ok := s.(steward.AgentCredentialsStore)
	if !ok {
		t.Skipf("%T does not implement steward.AgentCredentialsStore", s)
	}
	c := ctx(t)
	cs, bs := credStore(t, s), s.(steward.AgentBindingStore)
	now := time.Now().UTC().Truncate(time.Millisecond)
	none, certsOnly, bindOnly, both := steward.NewInstanceUID(), steward.NewInstanceUID(), steward.NewInstanceUID(), steward.NewInstanceUID()
	for i, id := range []steward.InstanceUID{certsOnly, both} {
		for j, at := range []time.Time{now, now.Add(time.Second), now.Add(time.Second)} { // two of one time: ordered by serial
			cert := &steward.AgentCertificate{Serial: fmt.Sprintf("c%d%d", i, 2-j), AgentID: id, NotBefore: now, NotAfter: now.Add(time.Hour), CreatedAt: at}
			if err := cs.PutCertificate(c, cert); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []steward.InstanceUID{bindOnly, both} {
		if _, _, err := bs.BindAgent(c, &steward.AgentBinding{AgentID: id, EnrollmentTokenID: "tok-" + id.String()[:4], CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []steward.InstanceUID{none, certsOnly, bindOnly, both} {
		certs, b, err := ac.AgentCredentials(c, id)
		if err != nil {
			t.Fatal(err)
		}
		wantCerts, err := cs.Certificates(c, &id)
		if err != nil {
			t.Fatal(err)
		}
		wantB, err := bs.AgentBinding(c, id)
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			wantB, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != len(wantCerts) {
			t.Fatalf("agent %s: %d certificates, want %d", id, len(certs), len(wantCerts))
		}
		for i := range certs {
			if certs[i].Serial != wantCerts[i].Serial || certs[i].AgentID != id || !certs[i].CreatedAt.Equal(wantCerts[i].CreatedAt) {
				t.Fatalf("agent %s: certificate %d is %+v, want %+v", id, i, certs[i], wantCerts[i])
			}
		}
		if (b == nil) != (wantB == nil) || b != nil && (b.EnrollmentTokenID != wantB.EnrollmentTokenID || !b.CreatedAt.Equal(wantB.CreatedAt) || b.AgentID != id) {
			t.Fatalf("agent %s: binding %+v, want %+v", id, b, wantB)
		}
	}
}
