package uitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/client"
)

// testAgent is a real OpAMP agent (Steward's opamp/client) that behaves like
// a collector: it reports a description, health with a component tree and
// its effective config, and applies remote configs. With hold set, an
// offered config is reported APPLYING and applied only after release, so a
// test can watch the status change.
type testAgent struct {
	t          *testing.T
	failConfig bool
	c          *client.Client
	id         steward.InstanceUID
	hold       bool
	offers     chan *protobufs.AgentRemoteConfig
	// commands receives every command the server sends.
	commands chan *protobufs.ServerToAgentCommand

	mu        sync.Mutex
	effective map[string]*protobufs.AgentConfigFile
	release   chan struct{}
}

type agentOptions struct {
	name, version, host string
	hold                bool
	// unhealthy reports the exporter failing.
	unhealthy bool
	// failConfig reports every remote config FAILED.
	failConfig bool
	// packages reports package statuses (one installed, one failed).
	packages bool
	// effective replaces the initial effective config reported.
	effective string
	// components are reported as AvailableComponents (kind → types), as
	// a collector's opamp extension reports them; nil: none.
	components map[string][]string
	// csr asks the server for a client certificate (a CSR naming the
	// agent's uid); the certificate offered is declined, so the agent
	// stays on its plain connection.
	csr bool
}

const initialCollectorConfig = `receivers:
  otlp:
    protocols:
      grpc: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`

func str(k, v string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
}

func startAgent(t *testing.T, url string, o agentOptions) *testAgent {
	t.Helper()
	a := &testAgent{
		t:          t,
		hold:       o.hold,
		failConfig: o.failConfig,
		offers:     make(chan *protobufs.AgentRemoteConfig, 16),
		commands:   make(chan *protobufs.ServerToAgentCommand, 4),
		release:    make(chan struct{}),
		effective: map[string]*protobufs.AgentConfigFile{
			"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"},
		},
	}
	if o.effective != "" {
		a.effective[""] = &protobufs.AgentConfigFile{Body: []byte(o.effective), ContentType: "text/yaml"}
	}
	caps := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsRestartCommand |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat
	now := uint64(time.Now().Add(-2 * time.Hour).UnixNano())
	if o.packages {
		caps |= protobufs.AgentCapabilities_AgentCapabilities_ReportsPackageStatuses
	}
	if o.csr {
		caps |= protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings
	}
	if o.components != nil {
		caps |= protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents
	}
	c, err := client.New(client.Settings{
		Endpoint:     url,
		Capabilities: caps,
		Description: &protobufs.AgentDescription{
			IdentifyingAttributes: []*protobufs.KeyValue{
				str("service.name", o.name), str("service.version", o.version), str("service.instance.id", o.host+"-1"),
			},
			NonIdentifyingAttributes: []*protobufs.KeyValue{
				str("host.name", o.host), str("os.type", "linux"), str("host.arch", "amd64"), str("deployment.environment", "production"),
			},
		},
		HeartbeatInterval: 5 * time.Second,
		Backoff:           client.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second},
		Callbacks: client.Callbacks{
			GetEffectiveConfig: func(ctx context.Context) (*protobufs.EffectiveConfig, error) {
				a.mu.Lock()
				defer a.mu.Unlock()
				m := map[string]*protobufs.AgentConfigFile{}
				for k, v := range a.effective {
					m[k] = v
				}
				return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: m}}, nil
			},
			OnMessage: func(ctx context.Context, msg *client.MessageData) {
				if msg.RemoteConfig != nil {
					a.apply(msg.RemoteConfig)
				}
			},
			OnOpAMPConnectionSettings: func(ctx context.Context, s *protobufs.OpAMPConnectionSettings) error {
				return errors.New("test agent: keeps its plain connection")
			},
			OnCommand: func(ctx context.Context, cmd *protobufs.ServerToAgentCommand) error {
				select {
				case a.commands <- cmd:
				default:
				}
				return nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.c = c
	a.id = steward.InstanceUID(c.InstanceUID())
	exporter := &protobufs.ComponentHealth{Healthy: true, StartTimeUnixNano: now, Status: "StatusOK"}
	if o.unhealthy {
		exporter = &protobufs.ComponentHealth{Healthy: false, StartTimeUnixNano: now, Status: "StatusRecoverableError",
			LastError: "sending queue is full: connection refused by traces.example.internal:4318"}
	}
	if err := c.SetHealth(&protobufs.ComponentHealth{
		Healthy: !o.unhealthy, StartTimeUnixNano: now, Status: exporter.Status, LastError: exporter.LastError,
		ComponentHealthMap: map[string]*protobufs.ComponentHealth{
			"pipeline:traces": {Healthy: !o.unhealthy, StartTimeUnixNano: now, Status: exporter.Status,
				ComponentHealthMap: map[string]*protobufs.ComponentHealth{
					"receiver:otlp":  {Healthy: true, StartTimeUnixNano: now, Status: "StatusOK"},
					"exporter:debug": exporter,
				}},
			"extension:health_check": {Healthy: true, StartTimeUnixNano: now, Status: "StatusOK"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if o.packages {
		if err := c.SetPackageStatuses(&protobufs.PackageStatuses{Packages: map[string]*protobufs.PackageStatus{
			"otelcol-contrib": {Name: "otelcol-contrib", AgentHasVersion: "0.120.0", ServerOfferedVersion: "0.120.0",
				Status: protobufs.PackageStatusEnum_PackageStatusEnum_Installed},
			"geoip-db": {Name: "geoip-db", AgentHasVersion: "2024.10", ServerOfferedVersion: "2024.11",
				Status: protobufs.PackageStatusEnum_PackageStatusEnum_InstallFailed, ErrorMessage: "checksum mismatch"},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	if o.components != nil {
		if err := c.SetAvailableComponents(availableComponents(o.components)); err != nil {
			t.Fatal(err)
		}
	}
	if o.csr {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: a.id.String()}}, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RequestConnectionSettings(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.releaseApply()
		a.stop()
	})
	return a
}

func (a *testAgent) apply(rc *protobufs.AgentRemoteConfig) {
	select {
	case a.offers <- rc:
	default:
	}
	if err := a.c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
		LastRemoteConfigHash: rc.ConfigHash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING,
	}); err != nil {
		a.t.Errorf("report APPLYING: %v", err)
	}
	if rc.GetConfig() != nil {
		for _, f := range rc.Config.ConfigMap {
			if a.failConfig || strings.Contains(string(f.Body), "FAIL_ME") {
				if err := a.c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
					LastRemoteConfigHash: rc.ConfigHash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED,
					ErrorMessage: `cannot build pipelines: unknown exporter type "otlpx" for "otlpx/central"`,
				}); err != nil {
					a.t.Errorf("report FAILED: %v", err)
				}
				return
			}
		}
	}
	done := func() {
		a.mu.Lock()
		a.effective = map[string]*protobufs.AgentConfigFile{}
		if rc.Config != nil {
			for k, v := range rc.Config.ConfigMap {
				a.effective[k] = v
			}
		}
		a.mu.Unlock()
		if err := a.c.UpdateEffectiveConfig(context.Background()); err != nil {
			a.t.Errorf("report effective config: %v", err)
		}
		if err := a.c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
			LastRemoteConfigHash: rc.ConfigHash, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
		}); err != nil {
			a.t.Errorf("report APPLIED: %v", err)
		}
	}
	a.mu.Lock()
	hold, release := a.hold, a.release
	a.mu.Unlock()
	if !hold {
		done()
		return
	}
	go func() {
		<-release
		done()
	}()
}

// releaseApply lets held configs be applied (and later ones at once).
func (a *testAgent) releaseApply() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hold = false
	select {
	case <-a.release:
	default:
		close(a.release)
	}
}

// waitOffer waits for the server to offer a remote config.
func (a *testAgent) waitOffer() *protobufs.AgentRemoteConfig {
	a.t.Helper()
	select {
	case rc := <-a.offers:
		return rc
	case <-time.After(waitTimeout):
		a.t.Fatalf("agent %s got no remote config within %s", a.id, waitTimeout)
		return nil
	}
}

// stop disconnects the agent (it says goodbye with agent_disconnect).
func (a *testAgent) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.c.Stop(ctx)
}

// availableComponents builds the AvailableComponents report of a collector
// build: each kind maps component types to the module that provides them,
// and the hash changes with the set.
func availableComponents(kinds map[string][]string) *protobufs.AvailableComponents {
	ac := &protobufs.AvailableComponents{Components: map[string]*protobufs.ComponentDetails{}}
	h := sha256.New()
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		types := kinds[kind]
		k := &protobufs.ComponentDetails{SubComponentMap: map[string]*protobufs.ComponentDetails{}}
		for _, typ := range types {
			h.Write([]byte(kind + "/" + typ + ";"))
			k.SubComponentMap[typ] = &protobufs.ComponentDetails{Metadata: []*protobufs.KeyValue{
				str("code.namespace", "github.com/open-telemetry/opentelemetry-collector-contrib/"+strings.TrimSuffix(kind, "s")+"/"+typ+strings.TrimSuffix(kind, "s")),
				str("code.version", "v0.149.0"),
			}}
		}
		ac.Components[kind] = k
	}
	ac.Hash = h.Sum(nil)
	return ac
}
