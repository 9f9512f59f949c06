package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/postgres/pgtest"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/store/sqlstore"
)

// The fixtures in testdata were made by the code before store/sqlstore
// (commit aa257cf, schema version 6, one implementation per database):
// testdata/v6.sqlite is the database file it wrote, testdata/v6.postgres.sql
// a pg_dump --inserts of the schema it wrote (schema steward_v6). Both hold
// one record of every kind; see docs/storage.md for how they were made.
var (
	fixtureAt       = time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)
	fixtureAgent, _ = steward.ParseInstanceUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	// fixtureEffective is the agent's effective config, written into the
	// fixture's agent document the way the code before migration 10 did:
	// the same content as config "base", so both share one body.
	fixtureEffective = `{"": {"body": "receivers: {}\n", "content_type": "text/yaml"}}`
	// fixtureComponents are the agent's available components, inline in
	// its document as the code before migration 18 wrote them (spaced as
	// PostgreSQL renders jsonb: the migration must encode them anew).
	fixtureComponents = `{"hash": "Y29tcG9uZW50cw==", "components": {"receivers": {"components": {"otlp": {"metadata": [{"k": "code.namespace", "v": {"s": "go.opentelemetry.io/collector/receiver/otlpreceiver"}}]}}}}}`
)

// A SQLite database written by the earlier code opens, reads and writes.
func TestUpgradeSQLiteDatabase(t *testing.T) {
	b, err := os.ReadFile("testdata/v6.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "steward.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// Agents stored their effective config inline until migration 10, their
	// available components until migration 18.
	_, err = raw.Exec(`UPDATE agents SET doc = CAST(json_set(CAST(doc AS TEXT), '$.effective_config', json(?), '$.available_components', json(?)) AS BLOB)`,
		fixtureEffective, fixtureComponents)
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	open := func() *sqlstore.DB {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatalf("open the earlier database: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db.DB
	}
	checkUpgraded(t, open)
}

// A PostgreSQL schema written by the earlier code opens, reads and writes.
func TestUpgradePostgresSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, restoreScript(t, schema)); err != nil {
		t.Fatalf("restore the earlier schema: %v", err)
	}
	// Agents stored their effective config inline until migration 10, their
	// available components until migration 18.
	if _, err := conn.Exec(ctx, `UPDATE `+schema+`.agents SET doc = (doc::jsonb || jsonb_build_object('effective_config', $1::jsonb,
		'available_components', $2::jsonb))::json`, fixtureEffective, fixtureComponents); err != nil {
		t.Fatal(err)
	}
	open := func() *sqlstore.DB {
		db, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("open the earlier schema: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db.DB
	}
	checkUpgraded(t, open)
}

// restoreScript is testdata/v6.postgres.sql for schema: psql meta-commands
// and the CREATE SCHEMA dropped, steward_v6 renamed.
func restoreScript(t *testing.T, schema string) string {
	b, err := os.ReadFile("testdata/v6.postgres.sql")
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^(\\.*|CREATE SCHEMA steward_v6;)$`).ReplaceAll(b, nil)
	return string(bytes.ReplaceAll(b, []byte("steward_v6."), []byte(schema+".")))
}

func checkUpgraded(t *testing.T, open func() *sqlstore.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := open()
	if v, err := db.SchemaVersion(ctx); err != nil || v != len(sqlstore.Migrations(db.Dialect())) {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(sqlstore.Migrations(db.Dialect())))
	}
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	a, err := db.Agent(ctx, fixtureAgent)
	must(err, "agent")
	if a.EffectiveConfig == nil || string((*a.EffectiveConfig)[""].Body) != "receivers: {}\n" {
		t.Fatalf("effective config read back as %v", a.EffectiveConfig)
	}
	var bodies, inline int
	must(db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM config_bodies`).Scan(&bodies), "count bodies")
	must(db.SQL().QueryRowContext(ctx, sqlstore.Expand(db.Dialect(),
		`SELECT count(*) FROM agents WHERE effective_hash IS NULL OR {instr}(CAST(doc AS TEXT), 'effective_config') > 0`)).Scan(&inline), "count inline")
	if bodies != 2 || inline != 0 {
		t.Fatalf("after the upgrade: %d config bodies (want 2: one shared by the config and the agent, the agent's components), %d agents with an inline effective config", bodies, inline)
	}
	must(db.SQL().QueryRowContext(ctx, sqlstore.Expand(db.Dialect(),
		`SELECT count(*) FROM agents WHERE components_hash IS NULL OR {instr}(CAST(doc AS TEXT), 'available_components') > 0`)).Scan(&inline), "count inline components")
	var otlp *steward.ComponentDetails
	if ac := a.AvailableComponents; ac != nil && ac.Components["receivers"] != nil {
		otlp = ac.Components["receivers"].Components["otlp"]
	}
	if inline != 0 || string(a.AvailableComponents.Hash) != "components" || otlp == nil || len(otlp.Metadata) != 1 ||
		otlp.Metadata[0].Value != "go.opentelemetry.io/collector/receiver/otlpreceiver" {
		t.Fatalf("after the upgrade: %d agents with inline components; components read back as %+v", inline, a.AvailableComponents)
	}
	if a.Attribute(steward.AttrServiceName) != "otelcol" || a.Labels["env"] != "prod" || !a.Online || a.Replica != "r1" ||
		!a.CreatedAt.Equal(fixtureAt) || !a.LastSeen.Equal(fixtureAt.Add(time.Minute)) || a.ConfigState() != steward.RemoteConfigApplied {
		t.Fatalf("agent read back as %+v", a)
	}
	agents, total, err := db.Agents(ctx, steward.AgentFilter{Selector: "env=prod", Search: "OTELCOL"})
	if err != nil || total != 1 || len(agents) != 1 {
		t.Fatalf("agents by selector and search: %d %d %v", len(agents), total, err)
	}
	// Migrations 12 and 13 derive the health and attribute columns from
	// the stored documents.
	for _, f := range []steward.AgentFilter{
		{Health: a.HealthState()},
		{Attributes: map[string]string{steward.AttrServiceName: "otelcol"}},
	} {
		if _, total, err := db.Agents(ctx, f); err != nil || total != 1 {
			t.Fatalf("agents by %+v after the upgrade: %d %v", f, total, err)
		}
	}
	c, err := db.Config(ctx, "base", 0)
	must(err, "config")
	if c.Version != 1 || c.Author != "ann" || !c.CreatedAt.Equal(fixtureAt) || string(c.Files[""].Body) != "receivers: {}\n" {
		t.Fatalf("config read back as %+v", c)
	}
	as, err := db.Assignment(ctx, "prod")
	if err != nil || as.Selector != "env=prod" || as.ConfigName != "base" {
		t.Fatalf("assignment %+v %v", as, err)
	}
	events, err := db.Events(ctx, steward.EventFilter{AgentID: &fixtureAgent})
	if err != nil || len(events) != 1 || events[0].Message != "hello" || !events[0].Time.Equal(fixtureAt) {
		t.Fatalf("events %+v %v", events, err)
	}
	if r, err := db.Rollout(ctx, "ro"); err != nil || r.Assignment != "prod" || r.Revision != 1 {
		t.Fatalf("rollout %+v %v", r, err)
	}
	if p, err := db.Package(ctx, "otelcol", "1.0.0"); err != nil || len(p.Hash) != 32 {
		t.Fatalf("package %+v %v", p, err)
	}
	if pa, err := db.PackageAssignment(ctx, "pa"); err != nil || len(pa.Packages) != 1 || !pa.CreatedAt.Equal(fixtureAt) {
		t.Fatalf("package assignment %+v %v", pa, err)
	}
	if key, err := db.PackageSigningKey(ctx, nil); err != nil || len(key) != 64 {
		t.Fatalf("signing key of %d bytes: %v", len(key), err)
	}
	if tok, err := db.TokenByHash(ctx, []byte("token-hash")); err != nil || tok.ID != "tok" {
		t.Fatalf("token %+v %v", tok, err)
	}
	if et, err := db.EnrollmentTokenByHash(ctx, []byte("enroll-hash")); err != nil || et.ID != "enr" {
		t.Fatalf("enrollment token %+v %v", et, err)
	}
	if cert, err := db.Certificate(ctx, "AB01"); err != nil || cert.AgentID != fixtureAgent {
		t.Fatalf("certificate %+v %v", cert, err)
	}
	if s, err := db.Secret(ctx, "ca", nil); err != nil || string(s) != "secret" {
		t.Fatalf("secret %q %v", s, err)
	}
	if au, err := db.Audit(ctx, steward.AuditFilter{Action: "config."}); err != nil || len(au) != 1 || au[0].Target != "base" {
		t.Fatalf("audit %+v %v", au, err)
	}
	if sum, err := db.Summary(ctx, nil); err != nil || sum.Total != 1 || sum.Online != 1 || sum.ByConfigStatus["APPLIED"] != 1 {
		t.Fatalf("summary %+v %v", sum, err)
	}

	// Writing goes on where the earlier code left off.
	c2, err := db.PutConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("receivers: {otlp: {}}\n")}}})
	if err != nil || c2.Version != 2 {
		t.Fatalf("next config version %+v %v", c2, err)
	}
	next := &steward.Event{Type: "disconnected", AgentID: fixtureAgent}
	must(db.AppendEvents(ctx, next), "append event")
	entry := &steward.AuditEntry{Actor: "bob", Action: "config.put", Target: "base"}
	must(db.AppendAudit(ctx, entry), "append audit")
	if next.ID <= events[0].ID || entry.ID < 2 {
		t.Fatalf("new ids: event %d after %d, audit %d", next.ID, events[0].ID, entry.ID)
	}
	must(db.PutAgent(ctx, &steward.Agent{ID: steward.NewInstanceUID()}), "put agent")
	must(db.TouchAgents(ctx, map[steward.InstanceUID]steward.Seen{fixtureAgent: {At: fixtureAt.Add(time.Hour), SequenceNum: 8}}), "touch")
	if a, err := db.Agent(ctx, fixtureAgent); err != nil || !a.LastSeen.Equal(fixtureAt.Add(time.Hour)) {
		t.Fatalf("touched agent %+v %v", a, err)
	}

	// A narrow write of the agent's state (migration 17: rows before it
	// keep their state in the document) changes the state and keeps the
	// rest.
	a, err = db.Agent(ctx, fixtureAgent)
	must(err, "agent before the narrow write")
	a.Online, a.SequenceNum, a.LastSeen, a.Transport = false, 9, a.LastSeen.Add(time.Minute), "http"
	a.RemoteConfigStatus = &steward.RemoteConfigStatus{Status: steward.RemoteConfigFailed, ErrorMessage: "bad"}
	must(db.PutAgentStates(ctx, []*steward.Agent{a}), "put agent state")
	b, err := db.Agent(ctx, fixtureAgent)
	must(err, "agent after the narrow write")
	if b.Online || b.SequenceNum != 9 || b.Transport != "http" || b.ConfigState() != steward.RemoteConfigFailed ||
		b.Labels["env"] != "prod" || b.Attribute(steward.AttrServiceName) != "otelcol" || b.EffectiveConfig == nil {
		t.Fatalf("agent after the narrow write %+v", b)
	}

	// Opening again applies nothing and keeps everything.
	db.Close()
	db = open()
	if v, err := db.SchemaVersion(ctx); err != nil || v != len(sqlstore.Migrations(db.Dialect())) {
		t.Fatalf("reopened schema version %d (%v)", v, err)
	}
	if _, total, err := db.Agents(ctx, steward.AgentFilter{}); err != nil || total != 2 {
		t.Fatalf("reopened: %d agents (%v)", total, err)
	}
}

// The dialects define every macro the migrations use.
func TestDialectsExpandEveryMacro(t *testing.T) {
	for _, d := range []*sqlstore.Dialect{sqlite.Dialect, postgres.Dialect} {
		for i, m := range sqlstore.Migrations(d) {
			if loc := regexp.MustCompile(`\{\w+\}`).FindString(m); loc != "" {
				t.Errorf("%s migration %d: %s is not expanded", d.Name, i+1, loc)
			}
		}
	}
}
