package storetest

import (
	"bytes"
	"database/sql"
	"reflect"
	"strconv"
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

// testChurningEffectiveConfigs: an agent whose effective config changes
// with every report (a volatile value in its config, or a hostile agent)
// leaves a body behind each time; those it reported more than ten minutes
// ago are pruned, the one it reports now stays.
func testChurningEffectiveConfigs(t *testing.T, s steward.Store) {
	c := ctx(t)
	db := s.(sqlStore)
	age := func(d time.Duration) {
		t.Helper()
		_, err := db.SQL().ExecContext(c, sqlstore.Expand(db.Dialect(), `UPDATE config_bodies SET used_at = ?`), db.Dialect().Time(time.Now().Add(-d)))
		must(t, err, "age bodies")
	}
	report := func(i int) {
		t.Helper()
		m := steward.ConfigMap{"": {Body: []byte("receivers: {otlp: {}}\n# started at " + strconv.Itoa(i) + "\n")}}
		must(t, s.PutAgent(c, &steward.Agent{ID: uid(1), EffectiveConfig: &m}), "PutAgent")
	}
	for i := range 5 {
		report(i)
	}
	if n := countRows(t, s, `SELECT count(*) FROM config_bodies`); n != 5 {
		t.Fatalf("%d bodies after 5 reports, want 5", n)
	}
	age(10 * time.Minute)
	report(5)
	if n, err := s.PruneConfigBodies(c, time.Now()); err != nil || n != 5 {
		t.Fatalf("pruned %d (%v) of the 5 bodies unused for ten minutes, want all", n, err)
	}
	if got, err := s.Agent(c, uid(1)); err != nil || got.EffectiveConfig == nil || !strings.Contains(string((*got.EffectiveConfig)[""].Body), "started at 5") {
		t.Fatalf("after the prune the agent reads back as %+v (%v)", got, err)
	}
}

// testComponentSets: the available components many agents report alike
// are stored once, read back equal (by Agent, Agents and after a narrow
// state write), replaced when an agent reports others, and pruned only
// when no agent references them.
func testComponentSets(t *testing.T, s steward.Store) {
	c := ctx(t)
	set := func(kinds ...string) *steward.ComponentDetails {
		d := &steward.ComponentDetails{Hash: []byte(strings.Join(kinds, ",")), Components: map[string]*steward.ComponentDetails{}}
		for _, k := range kinds {
			d.Components[k] = &steward.ComponentDetails{Components: map[string]*steward.ComponentDetails{
				"otlp": {Metadata: []steward.KeyValue{{Key: "code.namespace", Value: "go.opentelemetry.io/collector/" + k}, {Key: "stability", Value: int64(3)}}}}}
		}
		return d
	}
	var agents []*steward.Agent
	for i := range 20 {
		agents = append(agents, &steward.Agent{ID: uid(byte(i + 1)), AvailableComponents: set("receivers", "exporters")})
	}
	must(t, s.PutAgents(c, agents), "PutAgents")
	if n := countRows(t, s, `SELECT count(*) FROM config_bodies`); n != 1 {
		t.Fatalf("%d bodies stored for the components 20 agents report alike, want 1", n)
	}
	if n := countRows(t, s, `SELECT count(*) FROM agents WHERE `+containsText(s, "doc", "code.namespace")); n != 0 {
		t.Fatalf("%d agent documents carry their components inline", n)
	}
	want := set("receivers", "exporters")
	got, err := s.Agent(c, uid(3))
	must(t, err, "Agent")
	if !reflect.DeepEqual(got.AvailableComponents, want) {
		t.Fatalf("components read back as %+v, want %+v", got.AvailableComponents, want)
	}
	list, _, err := s.Agents(c, steward.AgentFilter{})
	must(t, err, "Agents")
	for _, a := range list {
		if !reflect.DeepEqual(a.AvailableComponents, want) {
			t.Fatalf("agent %s listed with components %+v", a.ID, a.AvailableComponents)
		}
	}
	// A narrow state write keeps them; a whole write of the agent read
	// back (its shared decoded value) keeps them too.
	if ss, ok := s.(steward.AgentStateStore); ok {
		got.Online = true
		must(t, ss.PutAgentStates(c, []*steward.Agent{got}), "PutAgentStates")
	}
	got.Labels = map[string]string{"env": "prod"}
	must(t, s.PutAgent(c, got), "PutAgent")
	if back, err := s.Agent(c, uid(3)); err != nil || !reflect.DeepEqual(back.AvailableComponents, want) || back.Labels["env"] != "prod" {
		t.Fatalf("after writing it back: %+v (%v)", back, err)
	}
	// Another set is a second body; an agent without components has none.
	must(t, s.PutAgents(c, []*steward.Agent{{ID: uid(1), AvailableComponents: set("receivers")}, {ID: uid(2)}}), "PutAgents")
	if back, err := s.Agent(c, uid(1)); err != nil || !reflect.DeepEqual(back.AvailableComponents, set("receivers")) {
		t.Fatalf("replaced components read back as %+v (%v)", back, err)
	}
	if back, err := s.Agent(c, uid(2)); err != nil || back.AvailableComponents != nil {
		t.Fatalf("agent without components read back with %+v (%v)", back, err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM config_bodies`); n != 2 {
		t.Fatalf("%d bodies, want 2", n)
	}
	// Pruned once no agent references a set and it went unused long enough.
	db := s.(sqlStore)
	old := db.Dialect().Time(time.Now().Add(-2 * sqlstore.MinBodyAge))
	_, err = db.SQL().ExecContext(c, sqlstore.Expand(db.Dialect(), `UPDATE config_bodies SET used_at = ?`), old)
	must(t, err, "age bodies")
	if n, err := s.PruneConfigBodies(c, time.Now()); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) referenced component sets", n, err)
	}
	must(t, s.PutAgent(c, &steward.Agent{ID: uid(1)}), "PutAgent")
	if n, err := s.PruneConfigBodies(c, time.Now()); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the set no agent references", n, err)
	}
	if back, err := s.Agent(c, uid(5)); err != nil || !reflect.DeepEqual(back.AvailableComponents, want) {
		t.Fatalf("after the prune: %+v (%v)", back, err)
	}
}

// containsText is a condition true where column's text contains s.
func containsText(st steward.Store, column, s string) string {
	return sqlstore.Expand(st.(sqlStore).Dialect(), `{instr}(CAST(`+column+` AS TEXT), '`+s+`') > 0`)
}
