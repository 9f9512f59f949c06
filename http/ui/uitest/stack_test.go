package uitest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/http/ui"
	"github.com/stewardhq/steward/opamp/server"
	"github.com/stewardhq/steward/store/blobfs"
	"github.com/stewardhq/steward/store/sqlite"
	"github.com/stewardhq/steward/telemetry"
	"github.com/stewardhq/steward/users"
)

// stack is a running Steward server: store/sqlite, the control plane, the
// OpAMP transport, the REST API and the UI, on one 127.0.0.1 listener.
type stack struct {
	base     string // http://127.0.0.1:port
	opampURL string // ws://127.0.0.1:port/v1/opamp
	password string
	cp       *controlplane.Service
	tel      *telemetry.Hub
	db       *sqlite.DB
	ca       *ca.CA // the agent CA
	// streams counts the event streams being served now.
	streams atomic.Int64
}

const adminPassword = "correct horse battery staple"

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, nil)
}

// startStackWith is startStack with options changed by configure (which
// may be nil) before the server is made; ln is the server's listener, for
// options that need its address.
func startStackWith(t *testing.T, configure func(o *stewardhttp.Options, ln net.Listener)) *stack {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "steward.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobfs.Open(filepath.Join(t.TempDir(), "packages"))
	if err != nil {
		t.Fatal(err)
	}
	// Agents download packages from the server's own listener, made below.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(ctx, controlplane.Config{Store: db, Replica: "uitest", FlushInterval: time.Second, Logger: log,
		Auth:     controlplane.AgentAuth{CA: authority},
		Packages: controlplane.PackageOptions{Blobs: blobs, BaseURL: "http://" + ln.Addr().String()}})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	opamp, err := server.New(server.Config{Handler: cp, Logger: log})
	if err != nil {
		cp.Close()
		db.Close()
		t.Fatal(err)
	}
	// The agents' own telemetry, received on the same listener.
	tel, err := telemetry.New(ctx, telemetry.Options{Store: db, Agents: db, Logger: log})
	if err != nil {
		cp.Close()
		db.Close()
		t.Fatal(err)
	}
	receiver := nethttp.NewServeMux()
	telemetry.NewReceiver(tel, cp, 0, log).Register(receiver)
	people, err := users.New(db, log)
	if err != nil {
		t.Fatal(err)
	}
	opts := stewardhttp.Options{
		Agents:            cp,
		Configs:           cp,
		Rollouts:          cp,
		Previews:          cp,
		Events:            cp.Bus(),
		EventLog:          cp.Events,
		Credentials:       cp,
		Users:             people,
		Packages:          cp,
		AdminPassword:     adminPassword,
		Sessions:          db,
		UI:                ui.Handler(),
		OpAMP:             opamp,
		Telemetry:         tel,
		HeartbeatInterval: 5 * time.Second,
		Logger:            log,
	}
	if configure != nil {
		configure(&opts, ln)
	}
	api := stewardhttp.NewServer(opts)
	st := &stack{password: adminPassword, cp: cp, tel: tel, db: db, ca: authority}
	// Count open event streams, to check that pages do not leak them.
	counted := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		switch r.URL.Path {
		case "/api/v1/events/stream":
			st.streams.Add(1)
			defer st.streams.Add(-1)
		case telemetry.MetricsPath, telemetry.LogsPath:
			receiver.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	srv := &nethttp.Server{Handler: counted, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		// The event streams of open pages never end on their own.
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
		if err := <-served; err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		_ = opamp.Shutdown(sctx)
		tel.Close()
		if err := cp.Close(); err != nil {
			t.Errorf("controlplane close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	addr := ln.Addr().String()
	st.base, st.opampURL = "http://"+addr, "ws://"+addr+"/v1/opamp"
	return st
}
