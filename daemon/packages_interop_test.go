package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	nethttp "net/http"
	"sync"
	"testing"
	"time"

	opampclient "github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/daemon"
)

// memPackages is an opamp-go PackagesStateProvider in memory that keeps
// what it downloaded.
type memPackages struct {
	mu       sync.Mutex
	allHash  []byte
	states   map[string]types.PackageState
	content  map[string][]byte
	hashes   map[string][]byte
	sigs     map[string][]byte
	statuses *protobufs.PackageStatuses
}

func newMemPackages() *memPackages {
	return &memPackages{states: map[string]types.PackageState{}, content: map[string][]byte{}, hashes: map[string][]byte{}, sigs: map[string][]byte{}}
}

func (m *memPackages) AllPackagesHash() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.allHash, nil
}
func (m *memPackages) SetAllPackagesHash(h []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allHash = h
	return nil
}
func (m *memPackages) Packages() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.states {
		out = append(out, n)
	}
	return out, nil
}
func (m *memPackages) PackageState(n string) (types.PackageState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states[n], nil
}
func (m *memPackages) SetPackageState(n string, s types.PackageState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[n] = s
	return nil
}
func (m *memPackages) CreatePackage(n string, typ protobufs.PackageType) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[n] = types.PackageState{Exists: true, Type: typ}
	return nil
}
func (m *memPackages) FileContentHash(n string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hashes[n], nil
}
func (m *memPackages) UpdateContent(_ context.Context, n string, data io.Reader, contentHash, signature []byte) error {
	b, err := io.ReadAll(data)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.content[n], m.hashes[n], m.sigs[n] = b, contentHash, signature
	return nil
}
func (m *memPackages) DeletePackage(n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.states, n)
	delete(m.content, n)
	return nil
}
func (m *memPackages) LastReportedStatuses() (*protobufs.PackageStatuses, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statuses == nil {
		return nil, nil
	}
	return proto.Clone(m.statuses).(*protobufs.PackageStatuses), nil
}
func (m *memPackages) SetLastReportedStatuses(s *protobufs.PackageStatuses) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.statuses = proto.Clone(s).(*protobufs.PackageStatuses)
	return nil
}

// An opamp-go agent (the reference client) is offered a package by a whole
// `steward server`, downloads it from the absolute URL in the offer, and
// reports it installed with the offered all-packages hash.
func TestOpAMPGoClientInstallsPackage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opampAddr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	srv := &server{cancel: cancel, done: make(chan error, 1), opamp: opampAddr}
	go func() {
		srv.done <- daemon.Run(ctx, daemon.Options{OpAMPAddr: opampAddr, HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), AdminPassword: "-", Replica: "test",
			Ready: func(o, h net.Addr) { ready <- h }})
	}()
	select {
	case h := <-ready:
		srv.api = "http://" + h.String()
	case err := <-srv.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start in time")
	}
	t.Cleanup(srv.stop)

	content := bytes.Repeat([]byte("addon payload "), 1000)
	sum := sha256.Sum256(content)
	req, _ := nethttp.NewRequest("PUT", srv.api+"/api/v1/packages/myaddon/1.2.3?type=addon&sha256="+hex.EncodeToString(sum[:]), bytes.NewReader(content))
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	var keys struct {
		Keys []steward.PackageKey `json:"keys"`
	}
	srv.call(t, "GET", "/api/v1/package-keys", nil, &keys)

	store := newMemPackages()
	uid := types.InstanceUid(steward.NewInstanceUID())
	c := opampclient.NewWebSocket(nil)
	if err := c.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{Key: "service.name",
		Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "opamp-go-agent"}}}}}); err != nil {
		t.Fatal(err)
	}
	err = c.Start(context.Background(), types.StartSettings{
		OpAMPServerURL:        "ws://" + opampAddr + "/v1/opamp",
		InstanceUid:           uid,
		PackagesStateProvider: store,
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsPackages |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsPackageStatuses,
		Callbacks: types.Callbacks{
			OnMessage: func(ctx context.Context, msg *types.MessageData) {
				if msg.PackageSyncer != nil {
					_ = msg.PackageSyncer.Sync(ctx)
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(sctx)
	})
	id := steward.InstanceUID(uid).String()
	eventually(t, "agent online", func() bool { return srv.call(t, "GET", "/api/v1/agents/"+id, nil, nil) == 200 })
	srv.call(t, "PUT", "/api/v1/package-assignments/one", map[string]any{"agent_id": id,
		"packages": []map[string]string{{"name": "myaddon", "version": "1.2.3"}}}, &steward.PackageAssignment{})

	var desired struct {
		AllPackagesHash steward.Hash `json:"all_packages_hash"`
	}
	srv.call(t, "GET", "/api/v1/agents/"+id+"/desired-packages", nil, &desired)
	eventually(t, "package reported installed", func() bool {
		var a steward.Agent
		srv.call(t, "GET", "/api/v1/agents/"+id, nil, &a)
		if a.PackageStatuses == nil || !bytes.Equal(a.PackageStatuses.ServerProvidedAllPackagesHash, desired.AllPackagesHash) {
			return false
		}
		p := a.PackageStatuses.Packages["myaddon"]
		return p != nil && p.Status == steward.PackageInstalled && p.AgentHasVersion == "1.2.3"
	})
	store.mu.Lock()
	got, gotHash, sig := store.content["myaddon"], store.hashes["myaddon"], store.sigs["myaddon"]
	store.mu.Unlock()
	if !bytes.Equal(got, content) || !bytes.Equal(gotHash, sum[:]) {
		t.Fatalf("opamp-go downloaded %d bytes with content hash %x", len(got), gotHash)
	}
	if !ed25519.Verify(keys.Keys[0].PublicKey, sum[:], sig) {
		t.Fatal("the offered signature does not verify with the server's key")
	}
}
