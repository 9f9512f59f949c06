// Package client is Steward's OpAMP client library: it connects any Go agent
// to an OpAMP server over WebSocket (ws://, wss://) or plain HTTP (http://,
// https://), reports the agent's status with status compression, sends
// heartbeats, reconnects with jittered exponential backoff and hands what the
// server offers (remote config, connection settings, packages, commands,
// custom messages) to the agent through Callbacks.
//
// Lifecycle: New validates Settings; Start begins connecting in the
// background and returns at once; the status setters may be called at any
// time (before Start too) and each schedules one coalesced send; Stop sends
// agent_disconnect, closes the connection and waits for every goroutine the
// client started.
//
// Callbacks run on a single goroutine owned by the client, in the order the
// server's messages arrived. The connection's reader and writer never wait
// for a callback, so a slow callback delays later callbacks but never
// heartbeats, reads or status sends.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

// Defaults applied by New to zero-valued Settings fields.
const (
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultPollingInterval   = 30 * time.Second
	DefaultBackoffMin        = 1 * time.Second
	DefaultBackoffMax        = 5 * time.Minute
	DefaultMaxMessageSize    = 64 << 20
)

// knownCapabilities is every bit defined by protobufs.AgentCapabilities in
// opamp-go v0.23.0. The spec requires all other bits to be 0.
const knownCapabilities = protobufs.AgentCapabilities(0xFFFF)

// Errors returned by Client methods.
var (
	// ErrCapability reports a call that needs a capability the agent did
	// not declare in Settings.Capabilities (or, for custom messages, in its
	// custom capabilities).
	ErrCapability = errors.New("opamp client: capability not declared")
	// ErrCustomMessagePending is returned by SendCustomMessage while an
	// earlier custom message is still waiting to be sent; wait on the
	// returned channel and try again.
	ErrCustomMessagePending = errors.New("opamp client: a custom message is already pending")
	// ErrStarted is returned by Start on a client that was already started.
	ErrStarted = errors.New("opamp client: already started")
	// ErrNotStarted is returned by Stop on a client that was never started.
	ErrNotStarted = errors.New("opamp client: not started")
)

// Backoff bounds the delay between connection attempts. The delay doubles
// after each failed attempt from Min up to Max; each wait is drawn uniformly
// from [delay/2, delay] (jitter). A connection on which the server answered
// without an error resets it to Min; refusals and error responses do not.
type Backoff struct {
	Min time.Duration // default 1 s
	Max time.Duration // default 5 min
}

// Settings configure a Client. Only Endpoint is required.
type Settings struct {
	// Endpoint is the server URL. Its scheme picks the transport: ws:// and
	// wss:// use WebSocket, http:// and https:// use plain HTTP polling.
	Endpoint string
	// Header is sent with the WebSocket upgrade request or every HTTP POST.
	Header http.Header
	// HeaderFunc, when set, is called before every connection attempt (and
	// every HTTP POST) with a copy of the headers about to be sent and
	// returns the headers to send; use it for rotating tokens.
	HeaderFunc func(http.Header) http.Header
	// TLSConfig is used for wss:// and https://; nil means Go's defaults.
	TLSConfig *tls.Config

	// InstanceUID identifies this agent instance; the zero value makes New
	// generate a UUID v7. The server may replace it (new_instance_uid); the
	// client then adopts it and calls Callbacks.OnInstanceUIDChange.
	InstanceUID [16]byte
	// Capabilities the agent declares. ReportsStatus is always added (the
	// spec requires it); bits unknown to the protocol make New fail.
	Capabilities protobufs.AgentCapabilities
	// Description is the agent description sent in the first status report
	// and whenever the server asks for the full state.
	Description *protobufs.AgentDescription
	// CustomCapabilities the agent supports (reverse-FQDN names), reported
	// in the first status report.
	CustomCapabilities []string

	// HeartbeatInterval between WebSocket heartbeats when the agent declares
	// ReportsHeartbeat (default 30 s). The server may change it through
	// OpAMPConnectionSettings.heartbeat_interval_seconds (0 disables).
	HeartbeatInterval time.Duration
	// PollingInterval between HTTP polls when nothing else is to be sent
	// (default 30 s). A heartbeat interval offered by the server (>0)
	// replaces it. A status change is sent at once, without waiting.
	PollingInterval time.Duration
	// Backoff between connection attempts (default 1 s to 5 min, jittered).
	// A server's Retry-After or RetryInfo is a floor on the next delay.
	Backoff Backoff
	// MaxMessageSize bounds a received ServerToAgent message (WebSocket
	// message or decompressed HTTP body) and a sent AgentToServer message;
	// default 64 MiB.
	MaxMessageSize int64

	Callbacks Callbacks
	// Logger receives the client's diagnostics; nil discards them.
	Logger *slog.Logger
}

// MessageData is what one ServerToAgent message offers the agent. Only the
// parts whose capability the agent declared are set.
type MessageData struct {
	RemoteConfig *protobufs.AgentRemoteConfig // AcceptsRemoteConfig

	OwnMetrics        *protobufs.TelemetryConnectionSettings        // ReportsOwnMetrics
	OwnTraces         *protobufs.TelemetryConnectionSettings        // ReportsOwnTraces
	OwnLogs           *protobufs.TelemetryConnectionSettings        // ReportsOwnLogs
	OtherConnSettings map[string]*protobufs.OtherConnectionSettings // AcceptsOtherConnectionSettings
	// ConnectionSettingsHash is ConnectionSettingsOffers.hash, to report in
	// SetConnectionSettingsStatus.
	ConnectionSettingsHash []byte

	// HeartbeatInterval is the interval the server offered in its OpAMP
	// connection settings (ReportsHeartbeat), already applied by the
	// client; the agent may persist it for its next start.
	HeartbeatInterval *time.Duration

	PackagesAvailable   *protobufs.PackagesAvailable // AcceptsPackages
	AgentIdentification *protobufs.AgentIdentification
	CustomCapabilities  *protobufs.CustomCapabilities // the server's
	CustomMessage       *protobufs.CustomMessage      // only for a declared custom capability
}

func (m *MessageData) empty() bool {
	return m.RemoteConfig == nil && m.OwnMetrics == nil && m.OwnTraces == nil && m.OwnLogs == nil &&
		m.OtherConnSettings == nil && m.PackagesAvailable == nil && m.AgentIdentification == nil &&
		m.CustomCapabilities == nil && m.CustomMessage == nil && m.HeartbeatInterval == nil
}

// Callbacks connect the client to the agent. Every field is optional. They
// run one at a time on the client's callback goroutine, in message order;
// ctx is cancelled when Stop is called. Callbacks may call the client's
// methods except Stop, which waits for the callback goroutine: to stop from
// a callback, call Stop on a new goroutine.
type Callbacks struct {
	// OnConnect is called when a connection is established (WebSocket
	// handshake done, or first successful HTTP exchange after a failure).
	OnConnect func(ctx context.Context)
	// OnConnectFailed is called when a connection attempt or an established
	// connection fails; the client retries on its own.
	OnConnectFailed func(ctx context.Context, err error)
	// OnError is called for a ServerErrorResponse. UNAVAILABLE is already
	// handled by the client (reconnect after RetryInfo or backoff).
	OnError func(ctx context.Context, resp *protobufs.ServerErrorResponse)
	// OnMessage is called for a ServerToAgent message carrying anything
	// for the agent (see MessageData). Report the outcome with the status
	// setters (e.g. SetRemoteConfigStatus, then UpdateEffectiveConfig).
	OnMessage func(ctx context.Context, msg *MessageData)
	// OnOpAMPConnectionSettings is called for an offer of new OpAMP
	// connection settings when the agent declared
	// AcceptsOpAMPConnectionSettings. Returning nil accepts it: the client
	// then reconnects with the offered endpoint, headers, certificate and
	// TLS settings, verifies the connection and keeps them, or reverts to
	// the previous settings if connecting fails. The callback may persist
	// the settings, and may set settings.Certificate.PrivateKey (PEM) for
	// a certificate issued from its CSR. An error rejects the offer. Nil
	// callback: offers are rejected. The heartbeat interval in an offer is
	// applied by the client whenever the agent declared ReportsHeartbeat.
	OnOpAMPConnectionSettings func(ctx context.Context, settings *protobufs.OpAMPConnectionSettings) error
	// OnCommand is called for a server command (Restart) when the agent
	// declared AcceptsRestartCommand.
	OnCommand func(ctx context.Context, cmd *protobufs.ServerToAgentCommand) error
	// GetEffectiveConfig returns the agent's current effective config. It
	// is called on UpdateEffectiveConfig and once before the first status
	// report when the agent declared ReportsEffectiveConfig. Unlike the
	// other callbacks it runs on the calling (or connecting) goroutine.
	GetEffectiveConfig func(ctx context.Context) (*protobufs.EffectiveConfig, error)
	// OnInstanceUIDChange is called after the client adopted a
	// new_instance_uid from the server, so the agent can persist it.
	OnInstanceUIDChange func(newUID [16]byte)
}

// Client is an OpAMP client. Its methods are safe for concurrent use.
type Client struct {
	s      Settings
	log    *slog.Logger
	caps   uint64
	maxMsg int64

	mu sync.Mutex
	st state
	// conn is the connection configuration in use; cand, when set, is an
	// accepted offer being verified.
	conn       connParams
	cand       *connParams
	candHash   []byte
	hb         time.Duration // current heartbeat interval; 0 disables
	hbSet      bool          // hb came from the server
	serverCaps uint64        // last capabilities the server announced
	started    bool
	stopCtx    context.Context
	cancel     context.CancelFunc

	wake      chan struct{} // a status change is waiting to be sent
	hbChanged chan struct{} // the heartbeat interval changed
	reconnect chan struct{} // new connection settings: reconnect now
	done      chan struct{} // closed when the transport goroutine exits
	cbq       *callbackQueue
}

// connParams is what a connection is made with.
type connParams struct {
	endpoint *url.URL
	header   http.Header
	tls      *tls.Config
}

// New validates s, applies defaults and returns a stopped Client. It fails
// on an empty or malformed Endpoint, an unsupported scheme, undefined
// capability bits or negative durations.
func New(s Settings) (*Client, error) {
	u, err := parseEndpoint(s.Endpoint)
	if err != nil {
		return nil, err
	}
	if s.Capabilities&^knownCapabilities != 0 {
		return nil, fmt.Errorf("opamp client: undefined capability bits %#x", uint64(s.Capabilities&^knownCapabilities))
	}
	if s.HeartbeatInterval < 0 || s.PollingInterval < 0 || s.Backoff.Min < 0 || s.Backoff.Max < 0 || s.MaxMessageSize < 0 {
		return nil, errors.New("opamp client: intervals, backoff and MaxMessageSize must not be negative")
	}
	s.Capabilities |= protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if s.PollingInterval == 0 {
		s.PollingInterval = DefaultPollingInterval
	}
	if s.Backoff.Min == 0 {
		s.Backoff.Min = DefaultBackoffMin
	}
	if s.Backoff.Max == 0 {
		s.Backoff.Max = DefaultBackoffMax
	}
	if s.Backoff.Max < s.Backoff.Min {
		return nil, errors.New("opamp client: Backoff.Max is below Backoff.Min")
	}
	if s.MaxMessageSize == 0 {
		s.MaxMessageSize = DefaultMaxMessageSize
	}
	if s.InstanceUID == ([16]byte{}) {
		s.InstanceUID = newUUIDv7()
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		s:         s,
		log:       log,
		caps:      uint64(s.Capabilities),
		maxMsg:    s.MaxMessageSize,
		conn:      connParams{endpoint: u, header: s.Header.Clone(), tls: s.TLSConfig},
		wake:      make(chan struct{}, 1),
		hbChanged: make(chan struct{}, 1),
		reconnect: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat) {
		c.hb = s.HeartbeatInterval
	}
	c.st.uid = s.InstanceUID
	c.st.full = true
	if s.Description != nil {
		c.st.description = proto.Clone(s.Description).(*protobufs.AgentDescription)
	}
	if len(s.CustomCapabilities) > 0 {
		c.st.customCaps = &protobufs.CustomCapabilities{Capabilities: slices.Clone(s.CustomCapabilities)}
	}
	return c, nil
}

func parseEndpoint(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("opamp client: Endpoint is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("opamp client: invalid Endpoint: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return nil, fmt.Errorf("opamp client: Endpoint scheme %q is not ws, wss, http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("opamp client: Endpoint %q has no host", s)
	}
	return u, nil
}

func (c *Client) has(capability protobufs.AgentCapabilities) bool {
	return c.caps&uint64(capability) != 0
}

// InstanceUID returns the instance UID in use (it changes when the server
// assigns a new one).
func (c *Client) InstanceUID() [16]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.uid
}

// ServerCapabilities returns the capabilities the server announced last
// (0 before its first message).
func (c *Client) ServerCapabilities() protobufs.ServerCapabilities {
	c.mu.Lock()
	defer c.mu.Unlock()
	return protobufs.ServerCapabilities(c.serverCaps)
}

// Start begins connecting in the background and returns at once; ctx only
// bounds Start itself. Connection failures are retried forever (reported to
// OnConnectFailed) until Stop. Start fails with ErrStarted if called twice
// (also after Stop): a Client is single-use.
func (c *Client) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return ErrStarted
	}
	c.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.cbq = newCallbackQueue(runCtx)
	go c.run(runCtx)
	return nil
}

// Stop ends the client: it sends a final message with agent_disconnect (on
// WebSocket, then a close frame; on HTTP, one last POST) when connected,
// closes the connection and waits until every goroutine of the client has
// exited. ctx bounds the whole: when it expires Stop returns ctx.Err(), the
// connection is cut without waiting for the server and the goroutines exit
// on their own (a callback still running finishes first). Stop fails with ErrNotStarted on a client
// never started; a second Stop returns nil once the first finished.
func (c *Client) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.started {
		c.mu.Unlock()
		return ErrNotStarted
	}
	if c.stopCtx == nil {
		c.stopCtx = ctx
	}
	cancel := c.cancel
	c.mu.Unlock()
	cancel()
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.cbq.stop(ctx)
}

// stopContext returns the context given to Stop, bounding the final
// agent_disconnect send.
func (c *Client) stopContext() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopCtx == nil {
		return context.Background()
	}
	return c.stopCtx
}

// changed schedules a send of pending status.
func (c *Client) changed() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Client) requireCap(capability protobufs.AgentCapabilities) error {
	if !c.has(capability) {
		return fmt.Errorf("%w: %s", ErrCapability, capability.String())
	}
	return nil
}

// SetAgentDescription replaces the agent description and schedules a send.
// It fails if d is nil.
func (c *Client) SetAgentDescription(d *protobufs.AgentDescription) error {
	if d == nil {
		return errors.New("opamp client: agent description is nil")
	}
	d = proto.Clone(d).(*protobufs.AgentDescription)
	c.set(fDescription, func(s *state) { s.description = d })
	return nil
}

// SetHealth replaces the reported health and schedules a send. It fails with
// ErrCapability without ReportsHealth, or if h is nil.
func (c *Client) SetHealth(h *protobufs.ComponentHealth) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth); err != nil {
		return err
	}
	if h == nil {
		return errors.New("opamp client: health is nil")
	}
	h = proto.Clone(h).(*protobufs.ComponentHealth)
	c.set(fHealth, func(s *state) { s.health = h })
	return nil
}

// UpdateEffectiveConfig pulls the effective config from
// Callbacks.GetEffectiveConfig on the calling goroutine and schedules a send.
// It fails with ErrCapability without ReportsEffectiveConfig, when the
// callback is missing, or with the callback's error.
func (c *Client) UpdateEffectiveConfig(ctx context.Context) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig); err != nil {
		return err
	}
	if c.s.Callbacks.GetEffectiveConfig == nil {
		return errors.New("opamp client: Callbacks.GetEffectiveConfig is not set")
	}
	ec, err := c.s.Callbacks.GetEffectiveConfig(ctx)
	if err != nil {
		return fmt.Errorf("opamp client: get effective config: %w", err)
	}
	if ec == nil {
		return errors.New("opamp client: GetEffectiveConfig returned nil")
	}
	ec = proto.Clone(ec).(*protobufs.EffectiveConfig)
	c.set(fEffectiveConfig, func(s *state) { s.effectiveConfig = ec })
	return nil
}

// SetRemoteConfigStatus replaces the remote config status and schedules a
// send. It fails with ErrCapability without ReportsRemoteConfig, or if st is
// nil.
func (c *Client) SetRemoteConfigStatus(st *protobufs.RemoteConfigStatus) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig); err != nil {
		return err
	}
	if st == nil {
		return errors.New("opamp client: remote config status is nil")
	}
	st = proto.Clone(st).(*protobufs.RemoteConfigStatus)
	c.set(fRemoteConfigStatus, func(s *state) { s.remoteConfigStatus = st })
	return nil
}

// SetPackageStatuses replaces the package statuses and schedules a send. It
// fails with ErrCapability without ReportsPackageStatuses, or if ps is nil.
func (c *Client) SetPackageStatuses(ps *protobufs.PackageStatuses) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_ReportsPackageStatuses); err != nil {
		return err
	}
	if ps == nil {
		return errors.New("opamp client: package statuses are nil")
	}
	ps = proto.Clone(ps).(*protobufs.PackageStatuses)
	c.set(fPackageStatuses, func(s *state) { s.packageStatuses = ps })
	return nil
}

// SetCustomCapabilities replaces the agent's custom capabilities and
// schedules a send. It fails if cc is nil.
func (c *Client) SetCustomCapabilities(cc *protobufs.CustomCapabilities) error {
	if cc == nil {
		return errors.New("opamp client: custom capabilities are nil")
	}
	cc = proto.Clone(cc).(*protobufs.CustomCapabilities)
	c.set(fCustomCapabilities, func(s *state) { s.customCaps = cc })
	return nil
}

// SetAvailableComponents replaces the available components (hash and full
// map) and schedules a send. Status reports carry only the hash unless the
// server asks for the full map (ReportAvailableComponents flag). It fails
// with ErrCapability without ReportsAvailableComponents, or if ac or its
// hash is empty.
func (c *Client) SetAvailableComponents(ac *protobufs.AvailableComponents) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents); err != nil {
		return err
	}
	if ac == nil || len(ac.Hash) == 0 {
		return errors.New("opamp client: available components need a hash")
	}
	ac = proto.Clone(ac).(*protobufs.AvailableComponents)
	c.set(fAvailableComponents, func(s *state) { s.components = ac })
	return nil
}

// SetConnectionSettingsStatus replaces the connection settings status and
// schedules a send. It fails with ErrCapability without
// ReportsConnectionSettingsStatus, or if st is nil. The client itself reports
// APPLYING, APPLIED and FAILED for OpAMP connection settings it applies.
func (c *Client) SetConnectionSettingsStatus(st *protobufs.ConnectionSettingsStatus) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus); err != nil {
		return err
	}
	if st == nil {
		return errors.New("opamp client: connection settings status is nil")
	}
	st = proto.Clone(st).(*protobufs.ConnectionSettingsStatus)
	c.set(fConnectionSettingsStatus, func(s *state) { s.connStatus = st })
	return nil
}

// SetFlags sets the AgentToServer flags (e.g. RequestInstanceUid) carried by
// every following message and schedules a send. RequestInstanceUid is
// cleared by the client once the server assigned a new instance UID.
func (c *Client) SetFlags(flags protobufs.AgentToServerFlags) {
	c.mu.Lock()
	c.st.flags = uint64(flags)
	c.st.sendFlags = true
	c.mu.Unlock()
	c.changed()
}

// RequestConnectionSettings sends a ConnectionSettingsRequest carrying csr
// (a PEM-encoded certificate signing request) in the next message. The
// server answers with an OpAMP connection settings offer, handled like any
// other (OnOpAMPConnectionSettings). It fails with ErrCapability without
// AcceptsOpAMPConnectionSettings, or if csr is empty.
func (c *Client) RequestConnectionSettings(csr []byte) error {
	if err := c.requireCap(protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings); err != nil {
		return err
	}
	if len(csr) == 0 {
		return errors.New("opamp client: CSR is empty")
	}
	req := &protobufs.ConnectionSettingsRequest{Opamp: &protobufs.OpAMPConnectionSettingsRequest{
		CertificateRequest: &protobufs.CertificateRequest{Csr: slices.Clone(csr)},
	}}
	c.mu.Lock()
	c.st.csr = req
	c.mu.Unlock()
	c.changed()
	return nil
}

// SendCustomMessage queues msg for the next AgentToServer message. The
// returned channel is closed once the message was written to the server
// (WebSocket) or the POST carrying it succeeded (HTTP). Only one custom
// message may be pending: a second call fails with ErrCustomMessagePending
// and returns the pending message's channel. It fails with ErrCapability
// when msg.Capability is not among the agent's custom capabilities.
func (c *Client) SendCustomMessage(msg *protobufs.CustomMessage) (pending <-chan struct{}, err error) {
	if msg == nil || msg.Capability == "" {
		return nil, errors.New("opamp client: custom message needs a capability")
	}
	msg = proto.Clone(msg).(*protobufs.CustomMessage)
	c.mu.Lock()
	if !slices.Contains(c.st.customCaps.GetCapabilities(), msg.Capability) {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: custom capability %q", ErrCapability, msg.Capability)
	}
	if c.st.custom != nil {
		ch := c.st.customDone
		c.mu.Unlock()
		return ch, ErrCustomMessagePending
	}
	ch := make(chan struct{})
	c.st.custom, c.st.customDone = msg, ch
	c.mu.Unlock()
	c.changed()
	return ch, nil
}

func (c *Client) set(f fieldSet, apply func(*state)) {
	c.mu.Lock()
	apply(&c.st)
	c.st.dirty |= f
	c.mu.Unlock()
	c.changed()
}
