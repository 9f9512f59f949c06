package controlplane_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// BenchmarkHeartbeat measures the control plane's cost of one bare
// heartbeat from a connected agent that runs its assigned config.
func BenchmarkHeartbeat(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/db")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	svc.PutConfig(ctx, &steward.Config{Name: "base", Files: yamlConfig("a: 1\n")})
	svc.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "base", Selector: "env=prod"})
	uid := steward.NewInstanceUID()
	state, err := svc.Accept(&http.Request{})
	if err != nil {
		b.Fatal(err)
	}
	c := &testConn{transport: server.WebSocket, state: state}
	if _, err := svc.OnMessage(ctx, c, fullReport(uid, 1, "prod")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := svc.OnMessage(ctx, c, heartbeat(uid, uint64(i+2))); err != nil {
			b.Fatal(err)
		}
	}
}
