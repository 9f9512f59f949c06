// Package loadgen simulates a fleet of OpAMP agents against a server, cheaply
// enough to run tens of thousands of them in one process: WebSocket agents
// live on a few epoll loops (no goroutine, timer or read buffer per idle
// agent) and all heartbeats and reconnects are driven by one timing wheel;
// plain-HTTP agents poll through a small pool of workers.
//
// Each simulated agent has a UUID v7 instance uid and a realistic
// description (an OpenTelemetry Collector on a Kubernetes node, with an
// "env" label selectors can target). It reports its full status on connect,
// heartbeats at a jittered interval, applies every remote config it is
// offered (reporting APPLIED with the config's hash and the config as its
// effective config), answers ReportFullState, adopts a new instance uid when
// told to, and reconnects with jittered exponential backoff after losing
// the server. With Config.Components it also reports a Collector's
// available components, the list only when the server asks for it.
//
// A Generator is created with New, started with Start and stopped with
// Close. Stats reports counters; TrackRollout measures how long a config
// change takes to be acknowledged by N agents.
package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward/opamp"
)

// Config configures a Generator. Zero values take the documented defaults.
type Config struct {
	// URL is the server's OpAMP endpoint: ws://host:port/v1/opamp for
	// WebSocket agents, http://host:port/v1/opamp for plain-HTTP agents.
	// Required unless URLs is set. Only loopback hosts are expected
	// (127.0.0.0/8).
	URL string
	// URLs, when set, replaces URL with the endpoints of several server
	// replicas, all WebSocket or all plain HTTP. Agent i first connects to
	// URLs[i mod len(URLs)], spreading the fleet evenly; after a failed
	// connect attempt (or poll) it tries the next endpoint, as a load
	// balancer would route around a dead replica. At most 255 endpoints.
	URLs []string
	// Agents is the number of simulated agents. Required, > 0.
	Agents int
	// HeartbeatInterval is how often a connected agent sends a heartbeat
	// (HTTP agents: polls); default 30s.
	HeartbeatInterval time.Duration
	// Jitter spreads heartbeats uniformly over ±Jitter×interval; default
	// 0.1. The first heartbeat is at a uniformly random point of the
	// interval, so the load is even from the start.
	Jitter float64
	// Dialers is the number of connections opened in parallel; default 64.
	Dialers int
	// ConnectRate limits new connections per second (0: no limit).
	ConnectRate int
	// BackoffMin and BackoffMax bound the jittered exponential backoff
	// between failed connect attempts; defaults 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// ReconnectJitter: after losing an established connection an agent
	// waits a uniformly random time in [0, ReconnectJitter) before its
	// first reconnect attempt, so a restarted server is not hit by every
	// agent at the same instant; default 4s.
	ReconnectJitter time.Duration
	// SourceAddrs is the number of local addresses 127.0.0.1 .. 127.0.0.N
	// connections are bound to, round-robin, so more agents than the
	// ephemeral port range (about 28k per source/destination pair, see
	// net.ipv4.ip_local_port_range) can connect; default 1 + Agents/10000.
	// Only used for loopback servers.
	SourceAddrs int
	// Header is added to every handshake and HTTP request (e.g.
	// Authorization).
	Header http.Header
	// Envs are the values of the "env" attribute, assigned round-robin by
	// agent index; default prod, staging, dev.
	Envs []string
	// Workers is the number of epoll loops (WebSocket) or HTTP pollers;
	// default 2 epoll loops and 64 HTTP pollers.
	Workers int
	// Components, when > 0, makes every agent report that many available
	// components, as a Collector (contrib: about 225) reports them through
	// its opampextension: the capability ReportsAvailableComponents, only
	// the components' hash on connect, the whole list when the server sets
	// ReportAvailableComponents (or ReportFullState). All agents share one
	// list. 0: nothing reported, no capability.
	Components int
	// HandshakeTimeout bounds a connect and handshake (or an HTTP poll);
	// default 30s.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
}

// Stats are a Generator's counters since Start.
type Stats struct {
	Agents        int    // simulated agents
	Connected     int64  // WebSocket: open connections; HTTP: agents whose last poll succeeded
	Connects      uint64 // successful connects (HTTP: first successful poll, and after an error)
	ConnectErrors uint64 // failed connects, refused handshakes and failed polls
	Disconnects   uint64 // established connections lost
	Dropped       uint64 // of Disconnects, those the agents made (malformed data, send queue overflow); the server or the kernel made the rest
	Sent          uint64 // AgentToServer messages sent
	Received      uint64 // ServerToAgent messages received
	ServerErrors  uint64 // ServerToAgent messages carrying an error_response
	Malformed     uint64 // undecodable messages from the server
	Applied       uint64 // remote configs applied (APPLIED reports sent)
	// LastApplied is when the latest APPLIED report was sent (zero before
	// the first): with a count of APPLIED before a change, the time the
	// change took to reach every agent.
	LastApplied time.Time
	FullStates  uint64 // full state reports sent on ReportFullState
	// ComponentLists counts messages carrying the whole component list
	// (Config.Components), sent when the server asked for it.
	ComponentLists uint64
}

// Generator runs a simulated fleet.
type Generator struct {
	cfg    Config
	log    *slog.Logger
	eps    []*url.URL // endpoints; an agent's current one is eps[agent.ep]
	http   bool
	agents []*agent
	caps   uint64      // capabilities every agent reports
	comps  *components // reported by every agent; nil without Config.Components
	wheel  *wheel
	srcIPs []net.IP
	srcRR  atomic.Uint32

	connectq chan *agent
	pollq    chan *agent
	limiter  <-chan time.Time
	loops    []*loop
	client   *http.Client

	rollout atomic.Pointer[Rollout]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	connected      atomic.Int64
	connects       atomic.Uint64
	connectErrors  atomic.Uint64
	disconnects    atomic.Uint64
	dropped        atomic.Uint64
	sent           atomic.Uint64
	received       atomic.Uint64
	serverErrors   atomic.Uint64
	malformed      atomic.Uint64
	applied        atomic.Uint64
	lastApplied    atomic.Int64 // unix nanoseconds
	fullStates     atomic.Uint64
	componentLists atomic.Uint64
}

// New validates cfg and prepares the simulated agents (fresh instance uids).
// Nothing connects before Start. It fails on a missing or unsupported URL
// (schemes ws and http) or a non-positive agent count.
func New(cfg Config) (*Generator, error) {
	if cfg.Agents <= 0 {
		return nil, fmt.Errorf("loadgen: Agents must be > 0, got %d", cfg.Agents)
	}
	urls := cfg.URLs
	if len(urls) == 0 {
		urls = []string{cfg.URL}
	}
	if len(urls) > 255 {
		return nil, fmt.Errorf("loadgen: %d URLs, at most 255", len(urls))
	}
	g := &Generator{}
	for i, raw := range urls {
		u, err := parseURL(raw)
		if err != nil {
			return nil, err
		}
		if i > 0 && u.Scheme != g.eps[0].Scheme {
			return nil, fmt.Errorf("loadgen: URLs mix schemes %s and %s", g.eps[0].Scheme, u.Scheme)
		}
		g.eps = append(g.eps, u)
	}
	g.http = g.eps[0].Scheme == "http"
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.Jitter <= 0 {
		cfg.Jitter = 0.1
	}
	if cfg.Jitter > 1 {
		cfg.Jitter = 1
	}
	if cfg.Dialers <= 0 {
		cfg.Dialers = 64
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 500 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.ReconnectJitter <= 0 {
		cfg.ReconnectJitter = 4 * time.Second
	}
	if cfg.SourceAddrs <= 0 {
		cfg.SourceAddrs = 1 + cfg.Agents/10000
	}
	if cfg.SourceAddrs > 254 {
		cfg.SourceAddrs = 254
	}
	if len(cfg.Envs) == 0 {
		cfg.Envs = []string{"prod", "staging", "dev"}
	}
	if cfg.Workers <= 0 {
		if g.http {
			cfg.Workers = 64
		} else {
			cfg.Workers = 2
		}
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g.cfg = cfg
	g.log = cfg.Logger
	if allLoopback4(g.eps) {
		for i := 1; i <= cfg.SourceAddrs; i++ {
			g.srcIPs = append(g.srcIPs, net.IPv4(127, 0, 0, byte(i)))
		}
	}
	g.caps, g.comps = Capabilities, newComponents(cfg.Components)
	if g.comps != nil {
		g.caps |= uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents)
	}
	g.agents = make([]*agent, cfg.Agents)
	for i := range g.agents {
		g.agents[i] = newAgent(g, i)
	}
	span := max(cfg.HeartbeatInterval*2, cfg.BackoffMax*2, 10*time.Second)
	g.wheel = newWheel(100*time.Millisecond, span)
	return g, nil
}

// parseURL checks one endpoint: scheme ws or http, a host; the path
// defaults to the OpAMP path.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: bad URL: %w", err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("loadgen: URL %q has no host", raw)
	}
	if u.Scheme != "ws" && u.Scheme != "http" {
		return nil, fmt.Errorf("loadgen: unsupported URL scheme %q, want ws or http", u.Scheme)
	}
	if u.Path == "" {
		u.Path = opamp.DefaultPath
	}
	return u, nil
}

// allLoopback4 reports whether every endpoint is an IPv4 loopback
// address, so connections can come from several 127.0.0.x sources.
func allLoopback4(eps []*url.URL) bool {
	for _, u := range eps {
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return false
		}
	}
	return true
}

// Start connects every agent (at most Dialers at a time, ConnectRate per
// second) and keeps them running until Close or until ctx ends. It returns
// at once; watch Stats or WaitConnected for progress. It fails if the
// epoll loops cannot be created.
func (g *Generator) Start(ctx context.Context) error {
	g.ctx, g.cancel = context.WithCancel(ctx)
	if g.cfg.ConnectRate > 0 {
		t := time.NewTicker(time.Second / time.Duration(g.cfg.ConnectRate))
		g.limiter = t.C
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			<-g.ctx.Done()
			t.Stop()
		}()
	}
	if g.http {
		g.startHTTP()
	} else {
		if err := g.startWS(); err != nil {
			g.cancel()
			return err
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.wheel.run(g.ctx, g.fire)
	}()
	// Feed every agent to the connectors (or pollers) in index order.
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for _, a := range g.agents {
			if !g.enqueue(a) {
				return
			}
		}
	}()
	return nil
}

// enqueue hands a to the connectors (WebSocket) or pollers (HTTP); false
// once the generator stops.
func (g *Generator) enqueue(a *agent) bool {
	q := g.connectq
	if g.http {
		q = g.pollq
	}
	select {
	case q <- a:
		return true
	case <-g.ctx.Done():
		return false
	}
}

// fire runs when an agent's timer in the wheel expires: a heartbeat for a
// connected agent, a connect attempt for a disconnected one, a poll for an
// HTTP agent. The hand-off never blocks the wheel: a busy queue is tried
// again on a later tick.
func (g *Generator) fire(e entry) {
	a := e.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.tok != a.timer {
		return
	}
	if g.http {
		if a.polling {
			return
		}
		select {
		case g.pollq <- a:
		default:
			a.afterLocked(100 * time.Millisecond)
		}
		return
	}
	switch a.state {
	case stateConnected:
		a.sendLocked(a.nextLocked())
		if a.state == stateConnected {
			a.afterLocked(g.heartbeatDelay())
		}
	case stateWaiting:
		select {
		case g.connectq <- a:
		default:
			a.afterLocked(100 * time.Millisecond)
		}
	}
}

// heartbeatDelay is the interval with ±Jitter.
func (g *Generator) heartbeatDelay() time.Duration {
	iv := float64(g.cfg.HeartbeatInterval)
	return time.Duration(iv * (1 + g.cfg.Jitter*(2*rand.Float64()-1)))
}

// backoff returns the delay before attempt number n (0-based) after a
// failure: full jitter over min(BackoffMax, BackoffMin×2^n).
func (g *Generator) backoff(n int) time.Duration {
	d := g.cfg.BackoffMin << min(n, 20)
	if d > g.cfg.BackoffMax || d <= 0 {
		d = g.cfg.BackoffMax
	}
	return g.cfg.BackoffMin/2 + time.Duration(rand.Int64N(int64(d)))
}

// localAddr picks the next source address, round-robin.
func (g *Generator) localAddr() *net.TCPAddr {
	if len(g.srcIPs) == 0 {
		return nil
	}
	i := g.srcRR.Add(1)
	return &net.TCPAddr{IP: g.srcIPs[int(i)%len(g.srcIPs)]}
}

// Close disconnects every agent and stops all goroutines. It is safe to
// call more than once.
func (g *Generator) Close() error {
	g.once.Do(func() {
		if g.cancel == nil {
			return
		}
		g.cancel()
		g.wg.Wait()
		for _, a := range g.agents {
			a.mu.Lock()
			a.closeLocked(false)
			a.mu.Unlock()
		}
		for _, l := range g.loops {
			l.close()
		}
		if g.client != nil {
			g.client.CloseIdleConnections()
		}
	})
	return nil
}

// Stats returns the current counters.
func (g *Generator) Stats() Stats {
	return Stats{
		Agents:         len(g.agents),
		Connected:      g.connected.Load(),
		Connects:       g.connects.Load(),
		ConnectErrors:  g.connectErrors.Load(),
		Disconnects:    g.disconnects.Load(),
		Dropped:        g.dropped.Load(),
		Sent:           g.sent.Load(),
		Received:       g.received.Load(),
		ServerErrors:   g.serverErrors.Load(),
		Malformed:      g.malformed.Load(),
		Applied:        g.applied.Load(),
		LastApplied:    unixNano(g.lastApplied.Load()),
		FullStates:     g.fullStates.Load(),
		ComponentLists: g.componentLists.Load(),
	}
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// InstanceUIDs returns the current instance uid of every agent, by index.
func (g *Generator) InstanceUIDs() [][16]byte {
	out := make([][16]byte, len(g.agents))
	for i, a := range g.agents {
		a.mu.Lock()
		out[i] = a.uid
		a.mu.Unlock()
	}
	return out
}

// Env returns the env attribute agent i reports.
func (g *Generator) Env(i int) string { return g.cfg.Envs[i%len(g.cfg.Envs)] }

// WaitConnected polls until at least n agents are connected (HTTP: have
// polled successfully) or ctx ends, returning ctx's error then.
func (g *Generator) WaitConnected(ctx context.Context, n int) error {
	return waitFor(ctx, func() bool { return g.connected.Load() >= int64(n) })
}

func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Rollout tracks one config change: how many agents have reported APPLIED
// for a remote config whose files contain Marker, and when the last of them
// did. Create it with TrackRollout before making the change.
type Rollout struct {
	Marker  []byte
	Started time.Time
	gen     uint32
	applied atomic.Int64
	last    atomic.Int64 // unix nanoseconds of the latest APPLIED
}

var rolloutGen atomic.Uint32

// TrackRollout starts tracking a config change identified by marker, a byte
// string that appears in the new config's content and in no older one. It
// replaces any rollout tracked before; each agent counts at most once.
func (g *Generator) TrackRollout(marker []byte) *Rollout {
	r := &Rollout{Marker: append([]byte(nil), marker...), Started: time.Now(), gen: rolloutGen.Add(1)}
	g.rollout.Store(r)
	return r
}

// Applied returns how many agents have reported APPLIED for the rollout.
func (r *Rollout) Applied() int { return int(r.applied.Load()) }

// Last returns when the latest counted APPLIED report was sent.
func (r *Rollout) Last() time.Time { return time.Unix(0, r.last.Load()) }

// Wait polls until n agents have applied the rollout or ctx ends, and
// returns the time from Started (or from a later start the caller passes
// as since, if not zero) to the last APPLIED report.
func (r *Rollout) Wait(ctx context.Context, n int, since time.Time) (time.Duration, error) {
	if err := waitFor(ctx, func() bool { return r.applied.Load() >= int64(n) }); err != nil {
		return 0, fmt.Errorf("loadgen: %d of %d agents applied the rollout: %w", r.Applied(), n, err)
	}
	if since.IsZero() {
		since = r.Started
	}
	return r.Last().Sub(since), nil
}
