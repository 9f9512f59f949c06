package controlplane_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// An agent whose effective config changes with every report leaves a body
// behind each time; the periodic pass deletes those unused for ten
// minutes (it asked for an hour before), not the one the agent runs.
func TestChurnedEffectiveConfigsArePruned(t *testing.T) {
	f, st := newResyncingFixture(t, "r1")
	ctx, svc := f.ctx, f.svc
	uid := steward.NewInstanceUID()
	c := f.connect(server.WebSocket)
	bodies := func() (n int) {
		if err := st.SQL().QueryRowContext(ctx, `SELECT count(*) FROM config_bodies`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for seq := uint64(1); seq <= 4; seq++ {
		m := fullReport(uid, seq, "prod")
		m.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"": {Body: []byte("receivers: {otlp: {}}\n# started at " + strconv.Itoa(int(seq)) + "\n"), ContentType: "text/yaml"}}}}
		f.send(c, m)
		eventually(t, "the report stored", func() bool { return svc.PendingWrites() == 0 })
	}
	if n := bodies(); n != 4 {
		t.Fatalf("%d bodies after 4 reports, want 4", n)
	}
	if _, err := st.SQL().ExecContext(ctx, `UPDATE config_bodies SET used_at = ?`, time.Now().Add(-10*time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bodies the agent no longer runs pruned", func() bool { return bodies() == 1 })
	a, err := svc.Agent(ctx, uid)
	if err != nil || a.EffectiveConfig == nil || string((*a.EffectiveConfig)[""].Body) != "receivers: {otlp: {}}\n# started at 4\n" {
		t.Fatalf("agent after the prune: %+v (%v)", a, err)
	}
}
