// Command opampgo-server is the comparison peer of the benchmarks: a
// minimal OpAMP server built on opamp-go's server package, doing what a
// small control plane built on it would do and nothing more. It accepts
// every agent, answers every message, remembers its connections and each
// agent's full last status in memory (description, effective config,
// health, remote config status, component health, available components,
// as a real server must to show them), pushes a remote config to all of
// them on POST /debug/push and counts the agents that report it APPLIED. GET /debug/stats reports its memory, goroutines,
// CPU time and counters (see loadgen.ProcStats).
//
// Like opamp-go's server package, which sets no flags itself, it never
// asks for the full list of available components (ReportAvailableComponents):
// of agents that report only the hash on connect, as opamp-go's client
// does, it keeps the hash.
//
// It is used only by the benchmarks, never by Steward itself.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/stewardhq/steward/loadgen"
)

// agentStatus is an agent's last full status. OpAMP agents send a field
// only when it changed, so each report updates what it carries.
type agentStatus struct {
	description     *protobufs.AgentDescription
	effectiveConfig *protobufs.EffectiveConfig
	health          *protobufs.ComponentHealth // with its component health map
	remoteConfig    *protobufs.RemoteConfigStatus
	components      *protobufs.AvailableComponents
	capabilities    uint64
	sequenceNum     uint64
}

func (a *agentStatus) update(m *protobufs.AgentToServer) {
	if m.AgentDescription != nil {
		a.description = m.AgentDescription
	}
	if m.EffectiveConfig != nil {
		a.effectiveConfig = m.EffectiveConfig
	}
	if m.Health != nil {
		a.health = m.Health
	}
	if m.RemoteConfigStatus != nil {
		a.remoteConfig = m.RemoteConfigStatus
	}
	a.updateComponents(m.AvailableComponents)
	a.capabilities, a.sequenceNum = m.Capabilities, m.SequenceNum
}

// updateComponents keeps the reported components; a hash-only report of
// the hash already kept keeps the list it came with.
func (a *agentStatus) updateComponents(ac *protobufs.AvailableComponents) {
	if ac == nil {
		return
	}
	if len(ac.Components) > 0 || a.components == nil || !bytes.Equal(ac.Hash, a.components.Hash) {
		a.components = ac
	}
}

type state struct {
	mu       sync.Mutex
	conns    map[types.Connection]struct{}
	agents   sync.Map // instance uid (string) -> *agentStatus
	pushed   atomic.Pointer[protobufs.AgentRemoteConfig]
	applied  sync.Map // instance uid (string) -> hash applied ([]byte)
	nApplied atomic.Int64
	messages atomic.Uint64
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4320", "OpAMP listen address (path /v1/opamp)")
	debug := flag.String("debug", "127.0.0.1:6060", "address of /debug/stats and /debug/push")
	flag.Parse()
	if _, err := loadgen.RaiseFileLimit(); err != nil {
		log.Printf("raising the file limit: %v", err)
	}

	st := &state{conns: make(map[types.Connection]struct{})}
	cb := types.ConnectionCallbacks{
		OnConnected: func(ctx context.Context, c types.Connection) {
			st.mu.Lock()
			st.conns[c] = struct{}{}
			st.mu.Unlock()
		},
		OnMessage: func(ctx context.Context, c types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			st.messages.Add(1)
			a, _ := st.agents.Load(string(m.InstanceUid))
			if a == nil {
				a, _ = st.agents.LoadOrStore(string(m.InstanceUid), &agentStatus{})
			}
			// Messages of one connection arrive one at a time.
			a.(*agentStatus).update(m)
			reply := &protobufs.ServerToAgent{InstanceUid: m.InstanceUid}
			if rc := st.pushed.Load(); rc != nil {
				if s := m.RemoteConfigStatus; s != nil && s.Status == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED &&
					bytes.Equal(s.LastRemoteConfigHash, rc.ConfigHash) {
					if old, loaded := st.applied.Swap(string(m.InstanceUid), rc.ConfigHash); !loaded || !bytes.Equal(old.([]byte), rc.ConfigHash) {
						st.nApplied.Add(1)
					}
				}
			}
			return reply
		},
		OnConnectionClose: func(c types.Connection) {
			st.mu.Lock()
			delete(st.conns, c)
			st.mu.Unlock()
		},
	}
	srv := server.New(nil)
	err := srv.Start(server.StartSettings{
		ListenEndpoint: *addr,
		Settings: server.Settings{
			Callbacks: types.Callbacks{
				OnConnecting: func(r *http.Request) types.ConnectionResponse {
					return types.ConnectionResponse{Accept: true, ConnectionCallbacks: cb}
				},
			},
		},
	})
	if err != nil {
		log.Fatalf("start: %v", err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /debug/stats", loadgen.StatsHandler(func(p *loadgen.ProcStats) {
		st.mu.Lock()
		p.Connections = int64(len(st.conns))
		st.mu.Unlock()
		p.Messages = st.messages.Load()
		p.Applied = st.nApplied.Load()
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	// POST /debug/push: the body is the new config file; it is offered to
	// every connected agent.
	mux.HandleFunc("POST /debug/push", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := sha256.Sum256(body)
		rc := &protobufs.AgentRemoteConfig{
			ConfigHash: h[:],
			Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
				"": {Body: body, ContentType: "text/yaml"},
			}},
		}
		st.nApplied.Store(0)
		st.applied.Clear()
		st.pushed.Store(rc)
		st.mu.Lock()
		list := make([]types.Connection, 0, len(st.conns))
		for c := range st.conns {
			list = append(list, c)
		}
		st.mu.Unlock()
		var failed atomic.Int64
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for _, c := range list {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := c.Send(r.Context(), &protobufs.ServerToAgent{RemoteConfig: rc}); err != nil {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, fmt.Sprintf("{\"sent\":%d,\"failed\":%d}\n", int64(len(list))-failed.Load(), failed.Load()))
	})
	go func() {
		if err := http.ListenAndServe(*debug, mux); err != nil {
			log.Fatalf("debug listener: %v", err)
		}
	}()
	log.Printf("opamp-go server on ws://%s/v1/opamp, stats on http://%s/debug/stats", *addr, *debug)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = srv.Stop(context.Background())
}
