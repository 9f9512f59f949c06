// Package bridgetest holds what the bridge's tests share: a real Steward
// server in-process for the bridge to connect to.
package bridgetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/sqlite"
)

// Steward is a real Steward server in-process: the control plane over
// SQLite behind Steward's OpAMP transport on a loopback HTTP server.
type Steward struct {
	CP       *controlplane.Service
	Endpoint string // ws:// URL of its OpAMP path
}

// StartSteward starts a Steward that stops when t ends.
func StartSteward(t testing.TB) *Steward {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(ctx, controlplane.Config{Store: st, Replica: "test", FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Handler: cp})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(opamp.DefaultPath, srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		hs.Close()
		cp.Close()
		st.Close()
	})
	return &Steward{CP: cp, Endpoint: "ws" + strings.TrimPrefix(hs.URL, "http") + opamp.DefaultPath}
}
