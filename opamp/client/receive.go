package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
)

// callbackQueue runs callbacks one at a time, in order, on one goroutine,
// so that the connection's reader and writer never wait for the agent.
type callbackQueue struct {
	ctx    context.Context
	mu     sync.Mutex
	q      []func(context.Context)
	signal chan struct{}
	done   chan struct{}
}

func newCallbackQueue(ctx context.Context) *callbackQueue {
	q := &callbackQueue{ctx: ctx, signal: make(chan struct{}, 1), done: make(chan struct{})}
	go q.loop()
	return q
}

func (q *callbackQueue) push(f func(context.Context)) {
	q.mu.Lock()
	q.q = append(q.q, f)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *callbackQueue) loop() {
	defer close(q.done)
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-q.signal:
		}
		for {
			q.mu.Lock()
			if len(q.q) == 0 || q.ctx.Err() != nil {
				q.mu.Unlock()
				break
			}
			f := q.q[0]
			q.q[0] = nil
			q.q = q.q[1:]
			q.mu.Unlock()
			f(q.ctx)
		}
	}
}

// stop waits for the callback goroutine, whose context is already
// cancelled, to return.
func (q *callbackQueue) stop(ctx context.Context) error {
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// verdict is what the transport must do after a ServerToAgent message.
type verdict struct {
	unavailable bool          // server overloaded: disconnect and retry later
	retryAfter  time.Duration // from RetryInfo, 0 if none
	badRequest  bool          // do not retry the last message
}

// receive processes one ServerToAgent message. Protocol state (instance
// UID, ReportFullState, heartbeat interval) is updated at once; agent
// callbacks are queued.
func (c *Client) receive(msg *protobufs.ServerToAgent) verdict {
	cb := c.s.Callbacks
	uid := c.InstanceUID()
	if len(msg.InstanceUid) != 0 && !bytes.Equal(msg.InstanceUid, uid[:]) {
		c.log.Warn("opamp client: dropping message addressed to another instance_uid", "instance_uid", fmt.Sprintf("%x", msg.InstanceUid))
		return verdict{}
	}
	if msg.Capabilities != 0 {
		c.mu.Lock()
		c.serverCaps = msg.Capabilities
		c.mu.Unlock()
	}
	if e := msg.ErrorResponse; e != nil {
		var v verdict
		switch e.Type {
		case protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable:
			v.unavailable = true
			if ri := e.GetRetryInfo(); ri != nil {
				v.retryAfter = time.Duration(min(ri.RetryAfterNanoseconds, uint64(maxRetryAfter)))
			}
		case protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest:
			v.badRequest = true
		}
		c.log.Warn("opamp client: server error", "type", e.Type.String(), "message", e.ErrorMessage)
		if cb.OnError != nil {
			c.cbq.push(func(ctx context.Context) { cb.OnError(ctx, e) })
		}
		return v
	}
	if msg.Command != nil {
		// A command comes alone; other fields are ignored (spec).
		if c.has(protobufs.AgentCapabilities_AgentCapabilities_AcceptsRestartCommand) && cb.OnCommand != nil {
			cmd := msg.Command
			c.cbq.push(func(ctx context.Context) {
				if err := cb.OnCommand(ctx, cmd); err != nil {
					c.log.Warn("opamp client: command failed", "command", cmd.Type.String(), "err", err)
				}
			})
		}
		return verdict{}
	}

	var data MessageData
	if id := msg.AgentIdentification; id != nil && len(id.NewInstanceUid) > 0 {
		if len(id.NewInstanceUid) != 16 {
			c.log.Error("opamp client: ignoring new_instance_uid that is not 16 bytes", "len", len(id.NewInstanceUid))
		} else {
			var nu [16]byte
			copy(nu[:], id.NewInstanceUid)
			c.mu.Lock()
			c.st.uid = nu
			c.st.flags &^= uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid)
			c.mu.Unlock()
			data.AgentIdentification = id
			if cb.OnInstanceUIDChange != nil {
				c.cbq.push(func(context.Context) { cb.OnInstanceUIDChange(nu) })
			}
		}
	}
	if msg.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) != 0 {
		c.markFull()
		c.changed()
	}
	if msg.Flags&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents) != 0 &&
		c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents) {
		c.mu.Lock()
		c.st.fullComponents = true
		c.st.dirty |= fAvailableComponents
		c.mu.Unlock()
		c.changed()
	}
	if c.has(protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig) {
		data.RemoteConfig = msg.RemoteConfig
	}
	if c.has(protobufs.AgentCapabilities_AgentCapabilities_AcceptsPackages) {
		data.PackagesAvailable = msg.PackagesAvailable
	}
	data.CustomCapabilities = msg.CustomCapabilities
	if cm := msg.CustomMessage; cm != nil {
		c.mu.Lock()
		ok := containsString(c.st.customCaps.GetCapabilities(), cm.Capability)
		c.mu.Unlock()
		if ok {
			data.CustomMessage = cm
		} else {
			c.log.Debug("opamp client: ignoring custom message of undeclared capability", "capability", cm.Capability)
		}
	}
	if cs := msg.ConnectionSettings; cs != nil {
		if c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnMetrics) {
			data.OwnMetrics = cs.OwnMetrics
		}
		if c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnTraces) {
			data.OwnTraces = cs.OwnTraces
		}
		if c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsOwnLogs) {
			data.OwnLogs = cs.OwnLogs
		}
		if c.has(protobufs.AgentCapabilities_AgentCapabilities_AcceptsOtherConnectionSettings) {
			data.OtherConnSettings = cs.OtherConnections
		}
		if data.OwnMetrics != nil || data.OwnTraces != nil || data.OwnLogs != nil || data.OtherConnSettings != nil {
			data.ConnectionSettingsHash = cs.Hash
		}
		if cs.Opamp != nil {
			c.offerOpAMP(cs.Opamp, cs.Hash)
			if c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat) {
				d := time.Duration(min(cs.Opamp.HeartbeatIntervalSeconds, uint64(maxRetryAfter/time.Second))) * time.Second
				data.HeartbeatInterval = &d
			}
		}
	}
	if !data.empty() && cb.OnMessage != nil {
		c.cbq.push(func(ctx context.Context) { cb.OnMessage(ctx, &data) })
	}
	return verdict{}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// maxRetryAfter caps a server-requested delay so that a bogus value cannot
// park the client forever.
const maxRetryAfter = time.Hour

// offerOpAMP handles OpAMPConnectionSettings: the heartbeat interval is
// applied at once (ReportsHeartbeat); the rest goes to the agent's callback
// and, when accepted, becomes the candidate connection.
func (c *Client) offerOpAMP(o *protobufs.OpAMPConnectionSettings, hash []byte) {
	if c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat) {
		d := time.Duration(min(o.HeartbeatIntervalSeconds, uint64(maxRetryAfter/time.Second))) * time.Second
		c.mu.Lock()
		changed := c.hb != d || !c.hbSet
		c.hb, c.hbSet = d, true
		c.mu.Unlock()
		if changed {
			select {
			case c.hbChanged <- struct{}{}:
			default:
			}
		}
	}
	if !c.has(protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings) {
		return
	}
	if (o.DestinationEndpoint == "" || c.isCurrentEndpoint(o.DestinationEndpoint)) && o.Headers == nil && o.Certificate == nil && o.Tls == nil && o.Proxy == nil {
		// Only the heartbeat interval, with the endpoint in use (the spec
		// requires a non-empty destination_endpoint in every offer):
		// nothing to reconnect for.
		return
	}
	cb := c.s.Callbacks.OnOpAMPConnectionSettings
	c.cbq.push(func(ctx context.Context) {
		if cb == nil {
			c.log.Info("opamp client: OpAMP connection settings offer rejected: no OnOpAMPConnectionSettings callback")
			c.reportConnStatus(hash, protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED, "offer rejected by agent")
			return
		}
		if err := cb(ctx, o); err != nil {
			c.log.Info("opamp client: OpAMP connection settings offer rejected", "err", err)
			c.reportConnStatus(hash, protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED, err.Error())
			return
		}
		p, err := c.candidate(o)
		if err != nil {
			c.log.Warn("opamp client: invalid OpAMP connection settings offer", "err", err)
			c.reportConnStatus(hash, protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED, err.Error())
			return
		}
		c.mu.Lock()
		c.cand, c.candHash = p, hash
		c.mu.Unlock()
		c.reportConnStatus(hash, protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLYING, "")
		select {
		case c.reconnect <- struct{}{}:
		default:
		}
	})
}

// reportConnStatus sets connection_settings_status when the agent declared
// ReportsConnectionSettingsStatus.
func (c *Client) reportConnStatus(hash []byte, st protobufs.ConnectionSettingsStatuses, msg string) {
	if !c.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus) {
		return
	}
	s := &protobufs.ConnectionSettingsStatus{LastConnectionSettingsHash: hash, Status: st, ErrorMessage: msg}
	c.set(fConnectionSettingsStatus, func(x *state) { x.connStatus = s })
}

// candidate derives the connection parameters of an accepted offer from the
// current ones.
func (c *Client) candidate(o *protobufs.OpAMPConnectionSettings) (*connParams, error) {
	c.mu.Lock()
	cur := c.conn
	c.mu.Unlock()
	p := &connParams{endpoint: cur.endpoint, header: cur.header.Clone(), tls: cur.tls}
	if p.header == nil {
		p.header = http.Header{}
	}
	if o.DestinationEndpoint != "" {
		u, err := parseEndpoint(o.DestinationEndpoint)
		if err != nil {
			return nil, err
		}
		p.endpoint = u
	}
	for _, h := range o.Headers.GetHeaders() {
		if h.Key == "" {
			return nil, errors.New("opamp client: offered header with an empty name")
		}
		p.header.Set(h.Key, h.Value)
	}
	hasClientCert := cur.tls != nil && (len(cur.tls.Certificates) > 0 || cur.tls.GetClientCertificate != nil)
	if o.Certificate != nil || o.Tls != nil || hasClientCert {
		var cfg *tls.Config
		if cur.tls != nil {
			cfg = cur.tls.Clone()
		} else {
			cfg = &tls.Config{}
		}
		if t := o.Tls; t != nil {
			if err := applyTLSSettings(cfg, t); err != nil {
				return nil, err
			}
		}
		if o.Certificate == nil {
			// An offer without a certificate means: no client
			// certificate (spec, OpAMPConnectionSettings.certificate).
			cfg.Certificates, cfg.GetClientCertificate = nil, nil
		}
		if cert := o.Certificate; cert != nil {
			if len(cert.Cert) == 0 || len(cert.PrivateKey) == 0 {
				return nil, errors.New("opamp client: offered certificate needs cert and private_key (set PrivateKey in OnOpAMPConnectionSettings for a CSR-issued certificate)")
			}
			kp, err := tls.X509KeyPair(cert.Cert, cert.PrivateKey)
			if err != nil {
				return nil, fmt.Errorf("opamp client: offered certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		p.tls = cfg
	}
	if o.Proxy != nil {
		c.log.Warn("opamp client: proxy settings in OpAMP connection settings offers are not supported; ignored")
	}
	return p, nil
}

var tlsVersions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func applyTLSSettings(cfg *tls.Config, t *protobufs.TLSConnectionSettings) error {
	if t.CaPemContents != "" {
		var pool *x509.CertPool
		if t.IncludeSystemCaCertsPool {
			sys, err := x509.SystemCertPool()
			if err != nil {
				return fmt.Errorf("opamp client: system CA pool: %w", err)
			}
			pool = sys
		} else {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(t.CaPemContents)) {
			return errors.New("opamp client: offered ca_pem_contents holds no certificate")
		}
		cfg.RootCAs = pool
	}
	cfg.InsecureSkipVerify = t.InsecureSkipVerify
	if t.MinVersion != "" {
		v, ok := tlsVersions[t.MinVersion]
		if !ok {
			return fmt.Errorf("opamp client: unknown TLS min_version %q", t.MinVersion)
		}
		cfg.MinVersion = v
	}
	if t.MaxVersion != "" {
		v, ok := tlsVersions[t.MaxVersion]
		if !ok {
			return fmt.Errorf("opamp client: unknown TLS max_version %q", t.MaxVersion)
		}
		cfg.MaxVersion = v
	}
	return nil
}

// params returns the connection parameters for the next attempt: the
// candidate if one is being verified.
func (c *Client) params() (p connParams, candidate bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cand != nil {
		return *c.cand, true
	}
	return c.conn, false
}

// settle ends the verification of a candidate: ok keeps it, otherwise the
// previous settings are restored. Status is reported either way.
func (c *Client) settle(ok bool, cause error) {
	c.mu.Lock()
	cand, hash := c.cand, c.candHash
	if cand == nil {
		c.mu.Unlock()
		return
	}
	if ok {
		c.conn = *cand
	}
	c.cand, c.candHash = nil, nil
	c.mu.Unlock()
	if ok {
		c.log.Info("opamp client: new OpAMP connection settings verified", "endpoint", cand.endpoint.Redacted())
		c.reportConnStatus(hash, protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLIED, "")
		return
	}
	msg := "connecting with the offered settings failed"
	if cause != nil {
		msg += ": " + cause.Error()
	}
	c.log.Warn("opamp client: new OpAMP connection settings failed; reverted", "err", cause)
	c.reportConnStatus(hash, protobufs.ConnectionSettingsStatuses_ConnectionSettingsStatuses_FAILED, msg)
}

// header returns the headers for one connection attempt or POST.
func (c *Client) header(p connParams) http.Header {
	h := p.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if c.s.HeaderFunc != nil {
		if nh := c.s.HeaderFunc(h.Clone()); nh != nil {
			h = nh
		}
	}
	return h
}

// heartbeat returns the current heartbeat interval (0: none).
func (c *Client) heartbeat() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hb
}

// pollInterval returns the HTTP polling interval.
func (c *Client) pollInterval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hbSet && c.hb > 0 {
		return c.hb
	}
	return c.s.PollingInterval
}

// isCurrentEndpoint reports whether endpoint is the one the client is
// connected to.
func (c *Client) isCurrentEndpoint(endpoint string) bool {
	u, err := parseEndpoint(endpoint)
	if err != nil {
		return false
	}
	c.mu.Lock()
	cur := c.conn.endpoint
	c.mu.Unlock()
	return cur != nil && u.String() == cur.String()
}
