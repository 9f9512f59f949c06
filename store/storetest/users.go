package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

func testUsers(t *testing.T, s steward.Store) {
	ctx := context.Background()
	us, ok := s.(steward.UserStore)
	if !ok {
		t.Fatal("store does not implement steward.UserStore")
	}
	now := time.Now().UTC().Truncate(time.Second)
	ann := &steward.User{Name: "ann", Role: steward.RoleOperator, PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$dGFn", CreatedAt: now, UpdatedAt: now}
	bob := &steward.User{Name: "bob@example.com", Role: steward.RoleViewer, Issuer: "https://idp.example", Subject: "42", CreatedAt: now, UpdatedAt: now}
	cy := &steward.User{Name: "cy", Role: steward.RoleAdmin, PasswordHash: "h", CreatedAt: now, UpdatedAt: now}
	for _, u := range []*steward.User{cy, ann, bob} {
		if err := us.InsertUser(ctx, u); err != nil {
			t.Fatalf("InsertUser %s: %v", u.Name, err)
		}
	}
	if err := us.InsertUser(ctx, &steward.User{Name: "ann", Role: steward.RoleViewer}); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Errorf("second ann: %v, want ECONFLICT", err)
	}
	twin := &steward.User{Name: "bob2", Role: steward.RoleViewer, Issuer: bob.Issuer, Subject: bob.Subject}
	if err := us.InsertUser(ctx, twin); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Errorf("second user of one SSO subject: %v, want ECONFLICT", err)
	}
	if err := us.InsertUser(ctx, &steward.User{Name: steward.AdminUser, Role: steward.RoleAdmin}); steward.ErrorCode(err) != steward.EINVALID {
		t.Errorf("a stored user named %q: %v, want EINVALID", steward.AdminUser, err)
	}

	got, err := us.User(ctx, "ann")
	if err != nil || got.Role != steward.RoleOperator || got.PasswordHash != ann.PasswordHash || !got.CreatedAt.Equal(now) || got.SSO() {
		t.Fatalf("User(ann) = %+v, %v", got, err)
	}
	got, err = us.UserBySubject(ctx, bob.Issuer, bob.Subject)
	if err != nil || got.Name != bob.Name || got.PasswordHash != "" || !got.SSO() {
		t.Fatalf("UserBySubject = %+v, %v", got, err)
	}
	if _, err := us.UserBySubject(ctx, bob.Issuer, "43"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("unknown subject: %v", err)
	}
	if _, err := us.User(ctx, "nobody"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("unknown user: %v", err)
	}

	ann.Role, ann.Disabled, ann.PasswordHash = steward.RoleViewer, true, "new"
	if err := us.UpdateUser(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if got, _ := us.User(ctx, "ann"); got == nil || got.Role != steward.RoleViewer || !got.Disabled || got.PasswordHash != "new" {
		t.Errorf("after UpdateUser: %+v", got)
	}
	if err := us.UpdateUser(ctx, &steward.User{Name: "nobody", Role: steward.RoleViewer}); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("update unknown: %v", err)
	}

	list, err := us.Users(ctx)
	if err != nil || len(list) != 3 || list[0].Name != "ann" || list[1].Name != "bob@example.com" || list[2].Name != "cy" {
		t.Fatalf("Users = %v, %v; want ann, bob@example.com, cy", names(list), err)
	}

	// Deleting a user ends their sessions, and only theirs.
	if ss, ok := s.(steward.SessionStore); ok {
		for _, n := range []string{"cy", "ann"} {
			if err := ss.PutSession(ctx, &steward.Session{Hash: steward.HashSecret(n), Name: n, CSRF: "c", Epoch: "e", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := us.DeleteUser(ctx, "cy"); err != nil {
			t.Fatal(err)
		}
		if _, err := ss.SessionByHash(ctx, steward.HashSecret("cy")); steward.ErrorCode(err) != steward.ENOTFOUND {
			t.Errorf("session of a deleted user: %v", err)
		}
		if _, err := ss.SessionByHash(ctx, steward.HashSecret("ann")); err != nil {
			t.Errorf("another user's session went: %v", err)
		}
	} else if err := us.DeleteUser(ctx, "cy"); err != nil {
		t.Fatal(err)
	}
	if err := us.DeleteUser(ctx, "cy"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("second delete: %v", err)
	}
	if _, err := us.User(ctx, "cy"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("deleted user: %v", err)
	}
}

func names(us []*steward.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Name)
	}
	return out
}
