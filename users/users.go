// Package users manages the people who use Steward's console and REST API:
// local users with argon2id-hashed passwords, created by an admin, and
// users who sign in through OpenID Connect, created at their first login.
// It implements steward.UserService on a steward.UserStore; every change
// is recorded in the audit log under the actor of the request's context
// (never a password or its hash). The built-in admin account
// (steward.AdminUser) is not kept here: the http package checks its
// password itself.
package users

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/stewardhq/steward"
)

// Service implements steward.UserService.
type Service struct {
	store    steward.UserStore
	sessions steward.SessionStore // optional: ends sessions at once
	audit    steward.AuditStore   // optional
	now      func() time.Time
	log      *slog.Logger
	// dummy is a hash checked when a login names no local user, so that
	// the answer takes as long as for a wrong password.
	dummy string
}

var _ steward.UserService = (*Service)(nil)

// New returns a Service on store, which must implement steward.UserStore
// (ENOTIMPLEMENTED otherwise); sessions end at once and the audit log is
// kept when it also implements steward.SessionStore and
// steward.AuditStore. A nil log discards.
func New(store any, log *slog.Logger) (*Service, error) {
	us, ok := store.(steward.UserStore)
	if !ok {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "the store keeps no users")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: us, now: time.Now, log: log}
	s.sessions, _ = store.(steward.SessionStore)
	s.audit, _ = store.(steward.AuditStore)
	s.dummy, _ = steward.HashPassword("steward dummy password, never a user's")
	return s, nil
}

// record appends an audit entry; a failure is logged, never hidden from the
// log, and does not undo the change it records.
func (s *Service) record(ctx context.Context, action, target string, details map[string]any) {
	if s.audit == nil {
		return
	}
	e := &steward.AuditEntry{Time: s.now().UTC(), Actor: steward.ActorFrom(ctx), Action: action, Target: target, Details: details}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.audit.AppendAudit(ctx, e); err != nil {
		s.log.Warn("users: audit entry not stored", "action", action, "target", target, "err", err)
	}
}

// CreateUser creates a local user.
func (s *Service) CreateUser(ctx context.Context, name string, role steward.Role, password string) (*steward.User, error) {
	if err := steward.ValidateUserName(name); err != nil {
		return nil, err
	}
	if _, err := steward.ParseRole(string(role)); err != nil {
		return nil, err
	}
	hash, err := steward.HashPassword(password)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Second)
	u := &steward.User{Name: name, Role: role, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.store.InsertUser(ctx, u); err != nil {
		if steward.ErrorCode(err) == steward.ECONFLICT {
			return nil, steward.Errorf(steward.ECONFLICT, "user %q exists", name)
		}
		return nil, err
	}
	s.record(ctx, steward.AuditUserCreate, name, map[string]any{"role": string(role)})
	return u, nil
}

// Users lists users by name.
func (s *Service) Users(ctx context.Context) ([]*steward.User, error) { return s.store.Users(ctx) }

// User returns one user.
func (s *Service) User(ctx context.Context, name string) (*steward.User, error) {
	return s.store.User(ctx, name)
}

// UpdateUser changes role, disabled flag or password (see
// steward.UserService).
func (s *Service) UpdateUser(ctx context.Context, name string, c steward.UserChange) (*steward.User, error) {
	u, err := s.store.User(ctx, name)
	if err != nil {
		return nil, err
	}
	details := map[string]any{}
	if c.Role != nil {
		if _, err := steward.ParseRole(string(*c.Role)); err != nil {
			return nil, err
		}
		if *c.Role != u.Role {
			details["role"] = string(*c.Role)
			details["previous_role"] = string(u.Role)
		}
		u.Role = *c.Role
	}
	if c.Password != nil {
		if u.SSO() {
			return nil, steward.Errorf(steward.EINVALID, "user %q signs in through single sign-on and has no password", name)
		}
		if u.PasswordHash, err = steward.HashPassword(*c.Password); err != nil {
			return nil, err
		}
		details["password_changed"] = true
	}
	if c.Disabled != nil && *c.Disabled != u.Disabled {
		u.Disabled = *c.Disabled
		details["disabled"] = u.Disabled
	}
	if len(details) == 0 {
		return u, nil
	}
	u.UpdatedAt = s.now().UTC().Truncate(time.Second)
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return nil, err
	}
	if u.Disabled || c.Password != nil {
		s.endSessions(ctx, u)
	}
	s.record(ctx, steward.AuditUserUpdate, name, details)
	return u, nil
}

// endSessions removes u's sessions that its current state does not allow
// (all of them when disabled); the http layer refuses them anyway.
func (s *Service) endSessions(ctx context.Context, u *steward.User) {
	if s.sessions == nil {
		return
	}
	keep := u.SessionEpoch()
	if u.Disabled {
		keep = ""
	}
	if _, err := s.sessions.DeleteSessions(ctx, u.Name, keep, s.now()); err != nil {
		s.log.Warn("users: sessions not removed", "user", u.Name, "err", err)
	}
}

// DeleteUser removes a user and their sessions.
func (s *Service) DeleteUser(ctx context.Context, name string) error {
	if err := s.store.DeleteUser(ctx, name); err != nil {
		return err
	}
	s.record(ctx, steward.AuditUserDelete, name, nil)
	return nil
}

// AuthenticateUser checks a local user's password and records the time of
// the login (the http layer audits logins, of every kind, in one place). A hash made with older
// parameters is replaced by one with the current ones.
func (s *Service) AuthenticateUser(ctx context.Context, name, password string) (*steward.User, error) {
	denied := steward.Errorf(steward.EUNAUTHORIZED, "wrong user name or password")
	u, err := s.store.User(ctx, name)
	switch {
	case steward.ErrorCode(err) == steward.ENOTFOUND:
		steward.CheckPassword(s.dummy, password)
		return nil, denied
	case err != nil:
		return nil, err
	case u.PasswordHash == "":
		steward.CheckPassword(s.dummy, password)
		return nil, denied
	case !steward.CheckPassword(u.PasswordHash, password) || u.Disabled:
		return nil, denied
	}
	u.LastLogin = s.now().UTC().Truncate(time.Second)
	if steward.NeedsRehash(u.PasswordHash) {
		// The session epoch changes with the hash: other sessions of this
		// user end, once, when the parameters change.
		if h, err := steward.HashPassword(password); err == nil {
			u.PasswordHash = h
		}
	}
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return nil, fmt.Errorf("record login of %s: %w", name, err)
	}
	return u, nil
}

// SignInSSO creates or updates the user of an OpenID Connect login.
func (s *Service) SignInSSO(ctx context.Context, issuer, subject, name string, role steward.Role) (*steward.User, error) {
	if issuer == "" || subject == "" {
		return nil, steward.Errorf(steward.EINVALID, "an SSO user needs an issuer and a subject")
	}
	if err := steward.ValidateUserName(name); err != nil {
		return nil, err
	}
	if _, err := steward.ParseRole(string(role)); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Second)
	ctx = steward.WithActor(ctx, name)
	u, err := s.store.UserBySubject(ctx, issuer, subject)
	if steward.ErrorCode(err) == steward.ENOTFOUND {
		u = &steward.User{Name: name, Role: role, Issuer: issuer, Subject: subject, CreatedAt: now, UpdatedAt: now, LastLogin: now}
		if err := s.store.InsertUser(ctx, u); steward.ErrorCode(err) == steward.ECONFLICT {
			return nil, steward.Errorf(steward.EFORBIDDEN, "the name %q belongs to another Steward user; ask an admin to rename or delete that user", name)
		} else if err != nil {
			return nil, err
		}
		s.record(ctx, steward.AuditUserCreate, name, map[string]any{"role": string(role), "sso": issuer})
	} else if err != nil {
		return nil, err
	} else {
		if u.Disabled {
			return nil, steward.Errorf(steward.EFORBIDDEN, "user %q is disabled in Steward; ask an admin", u.Name)
		}
		// The subject is the identity: a changed name at the provider
		// keeps the Steward name (and its audit history).
		name = u.Name
		ctx = steward.WithActor(ctx, name)
		details := map[string]any{}
		if u.Role != role {
			details["role"], details["previous_role"] = string(role), string(u.Role)
		}
		u.Role, u.LastLogin, u.UpdatedAt = role, now, now
		if err := s.store.UpdateUser(ctx, u); err != nil {
			return nil, err
		}
		if len(details) > 0 {
			details["sso"] = issuer
			s.record(ctx, steward.AuditUserUpdate, name, details)
		}
	}
	return u, nil
}
