package loadgen

import (
	"bytes"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/websocket"
)

// Agent connection states.
const (
	stateWaiting    uint8 = iota // disconnected: in the wheel or a queue, waiting to connect
	stateConnecting              // a dialer owns it
	stateConnected               // registered with an epoll loop
	stateClosed                  // generator closed
)

// Capabilities every simulated agent reports; with Config.Components > 0
// also ReportsAvailableComponents.
const Capabilities = uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
	protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat)

// agent is one simulated agent. Its fields are guarded by mu; what a
// connected agent holds is kept small: the remote config it runs is shared
// with the decoded message it came in.
type agent struct {
	g   *Generator
	idx int32

	mu       sync.Mutex
	state    uint8
	failures uint8  // consecutive failed connects
	loop     uint8  // index of the epoll loop
	ep       uint8  // index of the endpoint the agent connects (polls) to
	fd       int32  // socket while connected, else -1
	connGen  uint32 // bumped on every connect; tags epoll events
	timer    uint32 // token of the agent's live wheel entry
	uid      [16]byte
	seq      uint64
	started  int64 // unix nanoseconds the agent "process" started
	parser   *websocket.Parser
	pending  []byte // bytes not yet accepted by the socket
	remote   *protobufs.AgentRemoteConfig
	status   *protobufs.RemoteConfigStatus
	rollout  uint32 // generation of the rollout this agent was counted in
	full     bool   // HTTP: the next poll must carry the full state
	polling  bool   // HTTP: a poller owns it
	online   bool   // HTTP: the last poll succeeded
}

func newAgent(g *Generator, i int) *agent {
	return &agent{
		g:       g,
		idx:     int32(i),
		ep:      uint8(i % len(g.eps)),
		fd:      -1,
		uid:     steward.NewInstanceUID(),
		started: time.Now().UnixNano(),
		full:    true,
		status:  &protobufs.RemoteConfigStatus{Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_UNSET},
	}
}

// description is what agent i reports: a Collector on a Kubernetes node.
func (a *agent) description() *protobufs.AgentDescription {
	i := int(a.idx)
	s := func(k, v string) *protobufs.KeyValue {
		return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
	}
	node := fmt.Sprintf("node-%05d", i/8)
	pod := fmt.Sprintf("otel-agent-%05d", i)
	return &protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{
			s(steward.AttrServiceName, "io.opentelemetry.collector"),
			s(steward.AttrServiceVersion, "0.120.0"),
			s(steward.AttrServiceInstanceID, steward.InstanceUID(a.uid).String()),
			s(steward.AttrServiceNamespace, "observability"),
		},
		NonIdentifyingAttributes: []*protobufs.KeyValue{
			s(steward.AttrHostName, node),
			s(steward.AttrOSType, "linux"),
			s(steward.AttrHostArch, "amd64"),
			s("env", a.g.Env(i)),
			s("region", []string{"eu-west-1", "us-east-1", "ap-south-1", "us-west-2"}[i%4]),
			s("k8s.cluster.name", fmt.Sprintf("cluster-%d", i%10)),
			s("k8s.namespace.name", "observability"),
			s("k8s.node.name", node),
			s("k8s.pod.name", pod),
			s("k8s.daemonset.name", "otel-agent"),
		},
	}
}

// nextLocked returns a message with the header fields every message
// carries: instance uid, the next sequence number and capabilities.
func (a *agent) nextLocked() *protobufs.AgentToServer {
	a.seq++
	return &protobufs.AgentToServer{
		InstanceUid:  append([]byte(nil), a.uid[:]...),
		SequenceNum:  a.seq,
		Capabilities: a.g.caps,
	}
}

// fullLocked returns a message carrying the agent's whole status.
func (a *agent) fullLocked() *protobufs.AgentToServer {
	m := a.nextLocked()
	m.AgentDescription = a.description()
	now := uint64(time.Now().UnixNano())
	m.Health = &protobufs.ComponentHealth{
		Healthy:            true,
		StartTimeUnixNano:  uint64(a.started),
		StatusTimeUnixNano: now,
		Status:             "StatusOK",
	}
	m.EffectiveConfig = a.effectiveLocked()
	m.RemoteConfigStatus = a.status
	if c := a.g.comps; c != nil {
		// On connect opamp-go's client reports only the hash; the
		// server asks for the components if it lacks them.
		m.AvailableComponents = c.hashOnly
	}
	return m
}

// fullStateLocked answers ReportFullState: the whole status, with the
// whole component list, as opamp-go's client answers it.
func (a *agent) fullStateLocked() *protobufs.AgentToServer {
	m := a.fullLocked()
	if c := a.g.comps; c != nil {
		m.AvailableComponents = c.full
		a.g.componentLists.Add(1)
	}
	a.g.fullStates.Add(1)
	return m
}

// withComponentsLocked answers ReportAvailableComponents: the first of the
// messages out carries the whole component list, or a message is added for
// it.
func (a *agent) withComponentsLocked(out []*protobufs.AgentToServer) []*protobufs.AgentToServer {
	c := a.g.comps
	if c == nil {
		return out // the flag is for agents with the capability
	}
	if len(out) == 0 {
		out = append(out, a.nextLocked())
	}
	if out[0].AvailableComponents != c.full {
		out[0].AvailableComponents = c.full
		a.g.componentLists.Add(1)
	}
	return out
}

// effectiveLocked reports the applied remote config as the effective
// config, or a small local default when none was applied.
func (a *agent) effectiveLocked() *protobufs.EffectiveConfig {
	if a.remote != nil && a.remote.Config != nil {
		return &protobufs.EffectiveConfig{ConfigMap: a.remote.Config}
	}
	return &protobufs.EffectiveConfig{ConfigMap: defaultConfig}
}

var defaultConfig = &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
	"": {ContentType: "text/yaml", Body: []byte("receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n")},
}}

// handleLocked reacts to one message from the server and returns the
// messages the agent sends in reply, in order.
func (a *agent) handleLocked(m *protobufs.ServerToAgent) []*protobufs.AgentToServer {
	g := a.g
	g.received.Add(1)
	if m.ErrorResponse != nil {
		g.serverErrors.Add(1)
	}
	if id := m.AgentIdentification; id != nil && len(id.NewInstanceUid) == 16 {
		copy(a.uid[:], id.NewInstanceUid)
	}
	var out []*protobufs.AgentToServer
	full := m.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) != 0
	if rc := m.RemoteConfig; rc != nil && !bytes.Equal(rc.ConfigHash, a.status.LastRemoteConfigHash) {
		// Apply: nothing to do in a simulation but adopt and report it.
		a.remote = rc
		a.status = &protobufs.RemoteConfigStatus{
			LastRemoteConfigHash: rc.ConfigHash,
			Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
		}
		var r *protobufs.AgentToServer
		if full {
			r = a.fullStateLocked()
			full = false
		} else {
			r = a.nextLocked()
			r.RemoteConfigStatus = a.status
			r.EffectiveConfig = a.effectiveLocked()
		}
		out = append(out, r)
		g.applied.Add(1)
		storeMax(&g.lastApplied, time.Now().UnixNano())
		a.countRolloutLocked(rc)
	}
	if full {
		out = append(out, a.fullStateLocked())
	}
	if m.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents) != 0 {
		out = a.withComponentsLocked(out)
	}
	return out
}

// countRolloutLocked counts the agent in the tracked rollout when rc
// carries its marker.
func (a *agent) countRolloutLocked(rc *protobufs.AgentRemoteConfig) {
	r := a.g.rollout.Load()
	if r == nil || a.rollout == r.gen || rc.Config == nil {
		return
	}
	for _, f := range rc.Config.ConfigMap {
		if f != nil && bytes.Contains(f.Body, r.Marker) {
			a.rollout = r.gen
			storeMax(&r.last, time.Now().UnixNano())
			r.applied.Add(1)
			return
		}
	}
}

// storeMax raises v to t unless it is already later.
func storeMax(v *atomic.Int64, t int64) {
	for {
		old := v.Load()
		if t <= old || v.CompareAndSwap(old, t) {
			return
		}
	}
}

// endpointLocked is the endpoint the agent connects (polls) to.
func (a *agent) endpointLocked() *url.URL { return a.g.eps[a.ep] }

// failoverLocked moves the agent to the next endpoint after a failed
// attempt: a dead replica's agents spread over the live ones.
func (a *agent) failoverLocked() { a.ep = uint8((int(a.ep) + 1) % len(a.g.eps)) }

// afterLocked (re)schedules the agent's single timer; an earlier pending
// entry becomes stale.
func (a *agent) afterLocked(d time.Duration) {
	a.timer++
	a.g.wheel.add(entry{a, a.timer}, d)
}
