package users_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/users"
)

func newService(t *testing.T) (*users.Service, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := users.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// A hash made with other parameters logs in, and is replaced by one with
// the current parameters.
func TestLoginRehashesOldParameters(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	created, err := s.CreateUser(ctx, "ann", steward.RoleViewer, "ann's long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if steward.NeedsRehash(created.PasswordHash) {
		t.Fatalf("new hash %q needs a rehash", created.PasswordHash)
	}
	stored, _ := db.User(ctx, "ann")
	// The hash an older Steward with lower parameters made.
	stored.PasswordHash = steward.HashPasswordWith("ann's long passphrase", steward.PasswordParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err := db.UpdateUser(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateUser(ctx, "ann", "ann's long passphrase"); err != nil {
		t.Fatalf("login with an old-parameter hash: %v", err)
	}
	after, _ := db.User(ctx, "ann")
	if !strings.HasPrefix(after.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || after.LastLogin.IsZero() {
		t.Errorf("after login: hash %q, last login %v", after.PasswordHash, after.LastLogin)
	}
}

// No password or hash is written to the audit log.
func TestAuditHasNoPassword(t *testing.T) {
	s, db := newService(t)
	ctx := steward.WithActor(context.Background(), "ada")
	const pw, pw2 = "ann's long passphrase", "ann's new passphrase"
	if _, err := s.CreateUser(ctx, "ann", steward.RoleViewer, pw); err != nil {
		t.Fatal(err)
	}
	np := pw2
	if _, err := s.UpdateUser(ctx, "ann", steward.UserChange{Password: &np}); err != nil {
		t.Fatal(err)
	}
	entries, _ := db.Audit(ctx, steward.AuditFilter{})
	if len(entries) != 2 {
		t.Fatalf("%d audit entries, want 2", len(entries))
	}
	for _, e := range entries {
		if e.Actor != "ada" {
			t.Errorf("actor %q", e.Actor)
		}
		for k, v := range e.Details {
			if s, _ := v.(string); strings.Contains(s, "passphrase") || strings.Contains(s, "argon2") {
				t.Errorf("audit %s %s=%v", e.Action, k, v)
			}
		}
	}
}

// SSO users are created at their first login, keep their name, get their
// role from each login, and cannot take a local user's name.
func TestSignInSSO(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	u, err := s.SignInSSO(ctx, "https://idp", "sub-1", "bob", steward.RoleViewer)
	if err != nil || u.Name != "bob" || u.Role != steward.RoleViewer || !u.SSO() {
		t.Fatalf("first SSO login: %+v, %v", u, err)
	}
	u, err = s.SignInSSO(ctx, "https://idp", "sub-1", "robert", steward.RoleOperator)
	if err != nil || u.Name != "bob" || u.Role != steward.RoleOperator {
		t.Fatalf("second SSO login: %+v, %v", u, err)
	}
	if _, err := s.AuthenticateUser(ctx, "bob", ""); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Errorf("password login of an SSO user: %v", err)
	}
	if _, err := s.CreateUser(ctx, "ann", steward.RoleAdmin, "ann's long passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignInSSO(ctx, "https://idp", "sub-2", "ann", steward.RoleAdmin); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Errorf("SSO login taking a local user's name: %v", err)
	}
	yes := true
	if _, err := s.UpdateUser(ctx, "bob", steward.UserChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignInSSO(ctx, "https://idp", "sub-1", "bob", steward.RoleViewer); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Errorf("disabled SSO user: %v", err)
	}
}
