package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

func credStore(t *testing.T, s steward.Store) steward.CredentialStore {
	t.Helper()
	cs, ok := s.(steward.CredentialStore)
	if !ok {
		t.Fatalf("%T does not implement steward.CredentialStore", s)
	}
	return cs
}

func testTokens(t *testing.T, s steward.Store) {
	ctx := context.Background()
	cs := credStore(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := &steward.Token{ID: "a", Name: "ci", Role: steward.RoleOperator, Hash: steward.HashSecret("secret-a"), CreatedAt: now}
	b := &steward.Token{ID: "b", Name: "ro", Role: steward.RoleViewer, Hash: steward.HashSecret("secret-b"), CreatedAt: now.Add(time.Second)}
	for _, tok := range []*steward.Token{a, b} {
		if err := cs.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cs.TokenByHash(ctx, steward.HashSecret("secret-a"))
	if err != nil || got.ID != "a" || got.Role != steward.RoleOperator || got.Name != "ci" || !steward.EqualHash(got.Hash, a.Hash) {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := cs.TokenByHash(ctx, steward.HashSecret("wrong")); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("wrong secret: %v, want ENOTFOUND", err)
	}
	// Another token with the same hash is a conflict.
	dup := &steward.Token{ID: "c", Name: "dup", Role: steward.RoleAdmin, Hash: a.Hash, CreatedAt: now}
	if err := cs.PutToken(ctx, dup); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("duplicate hash: %v, want ECONFLICT", err)
	}
	// Replace by id (LastUsed update).
	a.LastUsed = now.Add(time.Minute)
	if err := cs.PutToken(ctx, a); err != nil {
		t.Fatal(err)
	}
	list, err := cs.Tokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || !list[0].LastUsed.Equal(a.LastUsed) {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	if err := cs.DeleteToken(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := cs.DeleteToken(ctx, "a"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := cs.TokenByHash(ctx, a.Hash); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("deleted token still found: %v", err)
	}
	if err := cs.PutToken(ctx, &steward.Token{ID: "x"}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("token without hash: %v", err)
	}
}

func testEnrollmentTokens(t *testing.T, s steward.Store) {
	ctx := context.Background()
	cs := credStore(t, s)
	now := time.Now().UTC()
	e := &steward.EnrollmentToken{ID: "e1", Name: "prod", Hash: steward.HashSecret("enroll"), MaxUses: 3, CreatedAt: now, Selector: "env=prod"}
	if err := cs.PutEnrollmentToken(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := cs.EnrollmentTokenByHash(ctx, steward.HashSecret("enroll"))
	if err != nil || got.ID != "e1" || got.Selector != "env=prod" || got.MaxUses != 3 {
		t.Fatalf("EnrollmentTokenByHash = %+v, %v", got, err)
	}
	// Concurrent uses never exceed MaxUses.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cs.UseEnrollmentToken(ctx, "e1", now)
			mu.Lock()
			defer mu.Unlock()
			switch steward.ErrorCode(err) {
			case "":
				ok++
			case steward.EFORBIDDEN:
				refused++
			default:
				t.Errorf("UseEnrollmentToken: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || refused != 5 {
		t.Fatalf("uses: %d admitted, %d refused; want 3 and 5", ok, refused)
	}
	got, _ = cs.EnrollmentTokenByHash(ctx, e.Hash)
	if got.Uses != 3 || got.LastUsed.IsZero() {
		t.Fatalf("after uses: %+v", got)
	}
	// Expired and revoked tokens are refused.
	exp := &steward.EnrollmentToken{ID: "e2", Hash: steward.HashSecret("old"), CreatedAt: now, ExpiresAt: now.Add(-time.Second)}
	rev := &steward.EnrollmentToken{ID: "e3", Hash: steward.HashSecret("rev"), CreatedAt: now, Revoked: true}
	for _, x := range []*steward.EnrollmentToken{exp, rev} {
		if err := cs.PutEnrollmentToken(ctx, x); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.UseEnrollmentToken(ctx, x.ID, now); steward.ErrorCode(err) != steward.EFORBIDDEN {
			t.Fatalf("use of %s: %v, want EFORBIDDEN", x.ID, err)
		}
	}
	if _, err := cs.UseEnrollmentToken(ctx, "nope", now); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("unknown: %v", err)
	}
	list, err := cs.EnrollmentTokens(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("EnrollmentTokens = %d, %v", len(list), err)
	}
	if err := cs.DeleteEnrollmentToken(ctx, "e2"); err != nil {
		t.Fatal(err)
	}
	if err := cs.DeleteEnrollmentToken(ctx, "e2"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
}

func testCertificates(t *testing.T, s steward.Store) {
	ctx := context.Background()
	cs := credStore(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	a1, a2 := steward.NewInstanceUID(), steward.NewInstanceUID()
	certs := []*steward.AgentCertificate{
		{Serial: "0a01", AgentID: a1, NotBefore: now, NotAfter: now.Add(time.Hour), PEM: []byte("pem1"), CreatedAt: now},
		{Serial: "0a02", AgentID: a1, NotBefore: now, NotAfter: now.Add(2 * time.Hour), CreatedAt: now.Add(time.Second)},
		{Serial: "0b01", AgentID: a2, NotBefore: now, NotAfter: now.Add(time.Hour), CreatedAt: now},
	}
	for _, c := range certs {
		if err := cs.PutCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs.PutCertificate(ctx, certs[0]); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("duplicate serial: %v, want ECONFLICT", err)
	}
	got, err := cs.Certificate(ctx, "0A01")
	if err != nil || got.AgentID != a1 || string(got.PEM) != "pem1" || !got.NotAfter.Equal(certs[0].NotAfter) || got.Revoked {
		t.Fatalf("Certificate = %+v, %v", got, err)
	}
	list, err := cs.Certificates(ctx, &a1)
	if err != nil || len(list) != 2 || list[0].Serial != "0a02" {
		t.Fatalf("Certificates(a1) = %+v, %v", list, err)
	}
	all, err := cs.Certificates(ctx, nil)
	if err != nil || len(all) != 3 {
		t.Fatalf("Certificates(nil) = %d, %v", len(all), err)
	}
	r, err := cs.RevokeCertificate(ctx, "0a01", now.Add(time.Minute))
	if err != nil || !r.Revoked || !r.RevokedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("RevokeCertificate = %+v, %v", r, err)
	}
	r, err = cs.RevokeCertificate(ctx, "0a01", now.Add(time.Hour))
	if err != nil || !r.RevokedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("second revoke changed the time: %+v, %v", r, err)
	}
	if got, _ := cs.Certificate(ctx, "0a01"); !got.Revoked {
		t.Fatal("revocation not stored")
	}
	if _, err := cs.RevokeCertificate(ctx, "ffff", now); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("revoke unknown: %v", err)
	}
}

func testSecrets(t *testing.T, s steward.Store) {
	ctx := context.Background()
	cs := credStore(t, s)
	if _, err := cs.Secret(ctx, "ca", nil); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("missing secret: %v", err)
	}
	v, err := cs.Secret(ctx, "ca", []byte("first"))
	if err != nil || string(v) != "first" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	v, err = cs.Secret(ctx, "ca", []byte("second"))
	if err != nil || string(v) != "first" {
		t.Fatalf("the first writer must win: %q, %v", v, err)
	}
	v, err = cs.Secret(ctx, "ca", nil)
	if err != nil || string(v) != "first" {
		t.Fatalf("read: %q, %v", v, err)
	}
}

func testConnectionSettingsStore(t *testing.T, s steward.Store) {
	ctx := context.Background()
	cs, ok := s.(steward.ConnectionSettingsStore)
	if !ok {
		t.Fatalf("%T does not implement steward.ConnectionSettingsStore", s)
	}
	hb := uint64(15)
	c := &steward.ConnectionSettings{Name: "prod", Selector: "env=prod", Priority: 2,
		OwnMetrics:               &steward.TelemetryDestination{Endpoint: "http://127.0.0.1:4318/v1/metrics", Headers: map[string]string{"X-Key": "k"}},
		HeartbeatIntervalSeconds: &hb}
	if err := cs.PutConnectionSettings(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := cs.ConnectionSettings(ctx, "prod")
	if err != nil || got.OwnMetrics == nil || got.OwnMetrics.Headers["X-Key"] != "k" || *got.HeartbeatIntervalSeconds != 15 || got.Priority != 2 {
		t.Fatalf("ConnectionSettings = %+v, %v", got, err)
	}
	bad := &steward.ConnectionSettings{Name: "bad", OwnLogs: &steward.TelemetryDestination{Endpoint: "not a url"}}
	if err := cs.PutConnectionSettings(ctx, bad); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("bad endpoint: %v, want EINVALID", err)
	}
	if err := cs.PutConnectionSettings(ctx, &steward.ConnectionSettings{Name: "all"}); err != nil {
		t.Fatal(err)
	}
	list, err := cs.ConnectionSettingsList(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "all" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := cs.DeleteConnectionSettings(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ConnectionSettings(ctx, "prod"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("after delete: %v", err)
	}
	if err := cs.DeleteConnectionSettings(ctx, "prod"); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
}

func testAudit(t *testing.T, s steward.Store) {
	ctx := context.Background()
	as, ok := s.(steward.AuditStore)
	if !ok {
		t.Fatalf("%T does not implement steward.AuditStore", s)
	}
	base := time.Now().UTC().Truncate(time.Millisecond)
	entries := []*steward.AuditEntry{
		{Time: base, Actor: "admin session", Action: "token.create", Target: "ci", Details: map[string]any{"role": "operator"}},
		{Time: base.Add(time.Second), Actor: "ci", Action: "config.put", Target: "base"},
		{Actor: "ci", Action: "token.delete", Target: "old"}, // time set by the store
	}
	if err := as.AppendAudit(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.ID == 0 || e.Time.IsZero() {
			t.Fatalf("entry not numbered/timed: %+v", e)
		}
	}
	all, err := as.Audit(ctx, steward.AuditFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("Audit = %d, %v", len(all), err)
	}
	if all[2].Action != "token.create" || all[2].Details["role"] != "operator" {
		t.Fatalf("oldest entry = %+v", all[2])
	}
	byActor, _ := as.Audit(ctx, steward.AuditFilter{Actor: "ci"})
	if len(byActor) != 2 {
		t.Fatalf("actor filter: %d entries", len(byActor))
	}
	prefix, _ := as.Audit(ctx, steward.AuditFilter{Action: "token."})
	if len(prefix) != 2 {
		t.Fatalf("action prefix filter: %d entries", len(prefix))
	}
	exact, _ := as.Audit(ctx, steward.AuditFilter{Action: "config.put"})
	if len(exact) != 1 || exact[0].Target != "base" {
		t.Fatalf("exact action filter: %+v", exact)
	}
	// A target matches exactly, or as the last segment of a path; LIKE
	// wildcards in it are literal.
	if err := as.AppendAudit(ctx, &steward.AuditEntry{Actor: "ci", Action: "PUT /api/v1/configs/{name}", Target: "/api/v1/configs/base"},
		&steward.AuditEntry{Actor: "ci", Action: "PUT /api/v1/configs/{name}", Target: "/api/v1/configs/base2"},
		&steward.AuditEntry{Actor: "ci", Action: "PUT /api/v1/configs/{name}", Target: "/api/v1/configs/a_b"}); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]int{"base": 2, "/api/v1/configs/base": 1, "a_b": 1, "a%": 0, "_": 0, "ase": 0} {
		got, err := as.Audit(ctx, steward.AuditFilter{Target: target})
		if err != nil || len(got) != want {
			t.Errorf("target %q: %d entries, want %d (%v)", target, len(got), want, err)
		}
	}
	limited, _ := as.Audit(ctx, steward.AuditFilter{Limit: 1})
	if len(limited) != 1 {
		t.Fatalf("limit: %d entries", len(limited))
	}
	if _, err := as.Audit(ctx, steward.AuditFilter{Limit: -1}); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("negative limit: %v", err)
	}
}
