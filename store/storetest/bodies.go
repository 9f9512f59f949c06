package storetest

import (
	"bytes"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/sqlstore"
)

// sqlStore is what the body tests need of a SQL store to look at its rows.
type sqlStore interface {
	SQL() *sql.DB
	Dialect() *sqlstore.Dialect
}

func countRows(t *testing.T, s steward.Store, query string) int {
	t.Helper()
	db, ok := s.(sqlStore)
	if !ok {
		t.Fatalf("%T does not expose its SQL database", s)
	}
	var n int
	must(t, db.SQL().QueryRowContext(ctx(t), query).Scan(&n), query)
	return n
}

// testConfigBodies: a config body is stored once however many agents run
// it and config versions hold it, reads back byte for byte, and is pruned
// only when nothing references it.
func testConfigBodies(t *testing.T, s steward.Store) {
	c := ctx(t)
	big := steward.ConfigMap{"": {Body: []byte(strings.Repeat("receivers: {otlp: {}}\n", 12000)), ContentType: "text/yaml"}}
	cfg, err := s.PutConfig(c, &steward.Config{Name: "big", Files: big})
	must(t, err, "PutConfig")
	var agents []*steward.Agent
	for i := range 50 {
		m := steward.ConfigMap{"": big[""]} // equal content, another map
		agents = append(agents, &steward.Agent{ID: uid(byte(i + 1)), EffectiveConfig: &m})
	}
	must(t, s.PutAgents(c, agents), "PutAgents")
	if n := countRows(t, s, `SELECT count(*) FROM config_bodies`); n != 1 {
		t.Fatalf("%d bodies stored for one config run by 50 agents, want 1", n)
	}
	got, err := s.Agent(c, uid(7))
	must(t, err, "Agent")
	if got.EffectiveConfig == nil || !bytes.Equal((*got.EffectiveConfig)[""].Body, big[""].Body) || (*got.EffectiveConfig)[""].ContentType != "text/yaml" {
		t.Fatalf("effective config did not read back")
	}
	list, _, err := s.Agents(c, steward.AgentFilter{})
	must(t, err, "Agents")
	for _, a := range list {
		if a.EffectiveConfig == nil || !bytes.Equal(steward.ConfigMap(*a.EffectiveConfig).Hash(), cfg.Hash) {
			t.Fatalf("agent %s listed without its effective config", a.ID)
		}
	}

	// An empty effective config stays empty (not absent); another one is
	// a second body.
	empty := steward.ConfigMap{}
	other := steward.ConfigMap{"x": {Body: []byte("y")}}
	must(t, s.PutAgents(c, []*steward.Agent{{ID: uid(1), EffectiveConfig: &empty}, {ID: uid(2), EffectiveConfig: &other}}), "PutAgents")
	if got, err := s.Agent(c, uid(1)); err != nil || got.EffectiveConfig == nil || len(*got.EffectiveConfig) != 0 {
		t.Fatalf("empty effective config read back as %v (%v)", got, err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM config_bodies`); n != 2 {
		t.Fatalf("%d bodies, want 2", n)
	}

	// Nothing is pruned while referenced or recently used.
	n, err := s.PruneConfigBodies(c, time.Now().Add(time.Hour))
	must(t, err, "PruneConfigBodies")
	if n != 0 {
		t.Fatalf("pruned %d bodies in use", n)
	}
	// Unreferenced and unused for long enough: pruned; the config's body stays.
	must(t, s.PutAgent(c, &steward.Agent{ID: uid(2)}), "PutAgent")
	db := s.(sqlStore)
	old := db.Dialect().Time(time.Now().Add(-2 * sqlstore.MinBodyAge))
	_, err = db.SQL().ExecContext(c, sqlstore.Expand(db.Dialect(), `UPDATE config_bodies SET used_at = ?`), old)
	must(t, err, "age bodies")
	n, err = s.PruneConfigBodies(c, time.Now())
	must(t, err, "PruneConfigBodies")
	if n != 1 || countRows(t, s, `SELECT count(*) FROM config_bodies`) != 1 {
		t.Fatalf("pruned %d bodies, want the unreferenced one", n)
	}
	if got, err := s.Config(c, "big", 0); err != nil || !bytes.Equal(got.Files[""].Body, big[""].Body) {
		t.Fatalf("config after prune: %v", err)
	}
	// Deleting the config and its agents leaves the body to the next prune.
	for _, a := range agents {
		must(t, s.PutAgent(c, &steward.Agent{ID: a.ID}), "PutAgent")
	}
	must(t, s.DeleteConfig(c, "big"), "DeleteConfig")
	_, err = db.SQL().ExecContext(c, sqlstore.Expand(db.Dialect(), `UPDATE config_bodies SET used_at = ?`), old)
	must(t, err, "age bodies")
	if n, err := s.PruneConfigBodies(c, time.Now()); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1", n, err)
	}
}
