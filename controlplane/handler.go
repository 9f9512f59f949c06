package controlplane

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
)

// session is the control plane's small in-memory record of an agent it is
// talking to: just what reconciliation needs. Full reported state lives in
// the store and is read-modified-written only when the agent reports a
// change, so an idle agent costs a few hundred bytes here.
type session struct {
	id steward.InstanceUID

	mu     sync.Mutex
	conn   server.Conn // the WebSocket; nil for plain HTTP
	caps   steward.AgentCapabilities
	labels steward.Labels // compact: one per connected agent
	seq    uint64
	// The flags are together: a session is kept per connected agent, so
	// padding costs memory per agent (TestSessionFitsItsSizeClass).
	http     bool // plain HTTP: no conn to push on
	closed   bool
	needFull bool
	// reportedOutcome is what the agent reported of reportedHash, as a
	// rollout counts it (in the flags' padding).
	reportedOutcome configOutcome
	// credLoaded is set once admit has looked at the agent's credentials;
	// cred holds them (auth.go), made only when there is something to keep.
	credLoaded bool
	lastSeen   int64 // Unix nanoseconds
	// reportedHash is the agent's last_remote_config_hash; offeredHash the
	// hash last offered to it by this session.
	reportedHash   []byte
	offeredHash    []byte
	offeredAt      int64 // Unix nanoseconds of that offer; 0 once acknowledged
	componentsHash []byte
	// desiredHash is the hash of the remote config the agent should run
	// as of its last sync derivation.
	desiredHash []byte
	cred        *agentCred
	// extra holds what few agents need (sessionExtra); nil until then.
	extra *sessionExtra

	// pending holds commands waiting for an HTTP agent's next poll.
	pending *pendingCommands
}

// sessionExtra is the part of a session that few agents need: packages,
// a desired config reported FAILED, custom capabilities. It is kept apart so that a session
// (one per connected agent) fits a 288-byte allocation (memory_internal_test.go).
type sessionExtra struct {
	// failedHash is the desired config the agent reported FAILED
	// (AgentSync.FailedHash), not offered again.
	failedHash []byte
	// pkgReported is the agent's server_provided_all_packages_hash;
	// pkgOffered the all-packages hash last offered on this connection.
	pkgReported []byte
	pkgOffered  []byte
	// customCaps are the custom capabilities the agent declared.
	customCaps []string
}

// extras returns the session's sessionExtra, made on first use. ss.mu is
// held.
func (ss *session) extras() *sessionExtra {
	if ss.extra == nil {
		ss.extra = &sessionExtra{}
	}
	return ss.extra
}

// setCustomCaps records the custom capabilities the agent declared. ss.mu
// is held.
func (ss *session) setCustomCaps(caps []string) {
	if len(caps) > 0 || ss.extra != nil {
		ss.extras().customCaps = caps
	}
}

// hasCustomCap reports whether the agent declared custom capability c.
// ss.mu is held.
func (ss *session) hasCustomCap(c string) bool {
	return ss.extra != nil && slices.Contains(ss.extra.customCaps, c)
}

// failedHash returns the desired config the agent reported FAILED (nil:
// none). ss.mu is held.
func (ss *session) failedHash() []byte {
	if ss.extra == nil {
		return nil
	}
	return ss.extra.failedHash
}

// setFailedHash records h as the desired config the agent reported FAILED.
// ss.mu is held.
func (ss *session) setFailedHash(h []byte) {
	if h != nil || ss.extra != nil {
		ss.extras().failedHash = h
	}
}

// pendingCommands wait for a plain-HTTP agent's next poll, until expiry.
type pendingCommands struct {
	command *protobufs.ServerToAgentCommand
	custom  []*protobufs.CustomMessage
	until   time.Time
}

// queue returns the session's pending commands, made on first use.
func (ss *session) queue() *pendingCommands {
	if ss.pending == nil {
		ss.pending = &pendingCommands{}
	}
	return ss.pending
}

// connState is what Accept attaches to a connection. Its fields are used
// by the connection's messages, which are handled one at a time.
type connState struct {
	auth *agentAuth // what authenticate returned
	// sess is the session this WebSocket speaks for, set by its first
	// admitted message; later messages must carry its uid (or one the
	// server assigns on this connection).
	sess *session
	// endpoint is what the agent connected to, the default
	// destination_endpoint of its OpAMP connection settings offers. A
	// fleet connects to a few URLs: each is kept once (unique.Make copies
	// it out of the request), and a connection holds a pointer to it
	// rather than its own three strings and the request bytes under them.
	endpoint unique.Handle[connEndpoint]
}

// connEndpoint is the URL an agent connected to, kept in parts (taken from
// the request without copying) and joined only when an offer needs it.
type connEndpoint struct {
	scheme, host, path string
}

// String returns the URL, e.g. "wss://steward.example.com:4320/v1/opamp".
func (e connEndpoint) String() string { return e.scheme + "://" + e.host + e.path }

// requestEndpoint returns the URL r was sent to: ws or wss for a WebSocket
// upgrade, http or https otherwise; the Host header; the request path
// (default /v1/opamp).
func requestEndpoint(r *http.Request) connEndpoint {
	e := connEndpoint{scheme: "http", host: r.Host, path: opamp.DefaultPath}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		e.scheme = "ws"
	}
	if r.TLS != nil {
		e.scheme += "s"
	}
	if r.URL != nil && r.URL.Path != "" {
		e.path = r.URL.Path
	}
	return e
}

// Accept authenticates the connection (see authenticate) before any message
// is read.
func (s *Service) Accept(r *http.Request) (any, error) {
	a, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	return &connState{auth: a, endpoint: unique.Make(requestEndpoint(r))}, nil
}

// OnClose marks a WebSocket agent offline, unless a newer connection of the
// same agent has replaced this one.
func (s *Service) OnClose(c server.Conn) {
	st, _ := c.State().(*connState)
	if st == nil || st.sess == nil {
		return
	}
	s.release(st.sess, c)
}

// release ends session ss's use of connection c and marks the agent
// offline, unless a newer connection has replaced c.
func (s *Service) release(ss *session, c server.Conn) {
	s.mu.Lock()
	ss.mu.Lock()
	current := ss.conn == c
	if current {
		ss.conn = nil
		ss.closed = true
		if s.sessions[ss.id] == ss {
			delete(s.sessions, ss.id)
		}
	}
	ss.mu.Unlock()
	s.mu.Unlock()
	if current {
		s.markOffline(ss.id, time.Now())
	}
}

// OnMessage applies one AgentToServer message and returns what the agent
// lacks. See the package documentation for the reconciliation rules. A
// WebSocket message arriving during a fleet-wide push is handled once the
// push has been sent (reconcileAll).
//
// A WebSocket speaks for the uid its first message was admitted for (see
// admit): a later message with another uid — other than one the server
// assigns on this connection — is refused (EFORBIDDEN, audited) and the
// connection closed. The check is a comparison with the connection's
// session.
func (s *Service) OnMessage(ctx context.Context, c server.Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	t := c.Transport()
	if t == server.WebSocket {
		// A fleet-wide push goes first (see reconcileAll). Plain HTTP
		// is not held: its request waits on the client's timeout, and
		// it is not pushed to.
		s.fanout.RLock()
		//lint:ignore SA2001 the wait is the point
		s.fanout.RUnlock()
	}
	start := time.Now() // keeps the monotonic reading that UTC strips
	s.metrics.MessageReceived(t)
	reply, err := s.handleMessage(ctx, c, msg, start.UTC())
	if reply != nil {
		s.metrics.MessageSent(t)
	}
	// A bare heartbeat is counted, not timed: its handling is a map write
	// and a second clock read would cost about as much.
	if reported(msg) {
		s.metrics.MessageHandled(time.Since(start))
	}
	return reply, err
}

// handleMessage is OnMessage, at time now.
func (s *Service) handleMessage(ctx context.Context, c server.Conn, msg *protobufs.AgentToServer, now time.Time) (*protobufs.ServerToAgent, error) {
	reply := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid}

	id, assigned, err := s.instanceUID(msg, reply)
	if err != nil {
		return nil, err
	}
	st, _ := c.State().(*connState)
	if st == nil {
		return nil, steward.Errorf(steward.EUNAUTHORIZED, "connection not accepted")
	}
	var adm *admission
	if cur := st.sess; cur == nil || cur.id != id {
		if cur != nil && !assigned {
			err := s.refuse(ctx, st.auth.cooldownKey(c.RemoteAddr()), cur.id, c.RemoteAddr(), steward.Errorf(steward.EFORBIDDEN,
				"this connection speaks for agent %s, not %s: connect again to speak for another agent", cur.id, id))
			refuseConn(c, err)
			return nil, err
		}
		if adm, err = s.admit(ctx, c, st, id, msg, assigned); err != nil {
			refuseConn(c, err)
			return nil, err
		}
		if adm.id != id {
			id = adm.id
			reply.AgentIdentification = &protobufs.AgentIdentification{NewInstanceUid: id[:]}
		}
	}
	ss, fresh := s.sessionFor(c, st, id)
	ss.mu.Lock()
	defer ss.mu.Unlock()

	if ss.closed && c.Transport() == server.WebSocket {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "connection replaced")
	}
	// Sequence numbers: a gap means we missed a report; ask for everything.
	if !fresh && msg.SequenceNum != ss.seq+1 {
		ss.needFull = true
	}
	ss.seq = msg.SequenceNum
	ss.lastSeen = now.UnixNano()

	if msg.AgentDisconnect != nil {
		s.touch(id, now, msg.SequenceNum)
		if c.Transport() == server.HTTP {
			// No connection to close: the goodbye itself ends the session.
			s.mu.Lock()
			if s.sessions[id] == ss {
				delete(s.sessions, id)
			}
			s.mu.Unlock()
			ss.closed = true
			s.markOffline(id, now)
			return reply, nil
		}
		// The transport closes the connection; the agent may be back
		// on another one before that, so it no longer speaks for id.
		ss.mu.Unlock()
		s.release(ss, c)
		ss.mu.Lock()
		return nil, nil
	}
	if adm != nil {
		s.attach(ss, st.auth, adm, fresh)
	}
	s.noteConnStatus(ss, msg)

	if err := s.applyReport(ctx, ss, c, msg, fresh, now); err != nil {
		// Nothing is lost: the agent is asked for its full state once
		// the store answers again.
		ss.needFull = true
		return nil, err
	}

	if msg.ConnectionSettingsRequest != nil {
		// A CSR: the certificate is offered below; a refusal is a
		// BadRequest error response (the report is already stored).
		if err := s.handleCSR(ctx, c, ss, msg.ConnectionSettingsRequest); err != nil {
			return nil, err
		}
	}
	// A message with a description is not necessarily a full report
	// (status compression may still omit other fields), so whatever made
	// us need the full state is answered with the flag.
	if ss.needFull {
		reply.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
		ss.needFull = false
	}
	if msg.AvailableComponents != nil && len(msg.AvailableComponents.Components) == 0 &&
		len(msg.AvailableComponents.Hash) > 0 && !bytes.Equal(msg.AvailableComponents.Hash, ss.componentsHash) {
		reply.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents)
	}
	if msg.CustomMessage != nil {
		s.emit(&steward.Event{Type: steward.EventCustomMessage, AgentID: id,
			Message: "custom message " + msg.CustomMessage.Capability + "/" + msg.CustomMessage.Type,
			Details: map[string]any{"capability": msg.CustomMessage.Capability, "type": msg.CustomMessage.Type, "data": msg.CustomMessage.Data}})
	}

	// The spec requires a reply to every AgentToServer message, on both
	// transports; most carry only instance_uid and capabilities.
	s.reconcileLocked(ss, c, reply)
	return reply, nil
}

// instanceUID validates the agent's instance_uid and handles requests for
// a new one (flag RequestInstanceUid, or an empty/zero uid): the reply then
// carries AgentIdentification, the state is kept under the new uid and
// assigned is set.
func (s *Service) instanceUID(msg *protobufs.AgentToServer, reply *protobufs.ServerToAgent) (id steward.InstanceUID, assigned bool, err error) {
	wantNew := msg.Flags&uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid) != 0
	if len(msg.InstanceUid) == 0 {
		wantNew = true
	} else {
		if id, err = steward.InstanceUIDFromBytes(msg.InstanceUid); err != nil {
			return id, false, err
		}
		if id.IsZero() {
			wantNew = true
		}
	}
	if wantNew {
		id = steward.NewInstanceUID()
		reply.AgentIdentification = &protobufs.AgentIdentification{NewInstanceUid: id[:]}
	}
	return id, wantNew, nil
}

// sessionFor finds or creates the session of agent id for connection c,
// which admit let speak for id. A WebSocket moving to a uid the server
// assigned leaves its old session (marked offline); a WebSocket taking
// over a uid whose previous connection admit took for dead closes that
// one.
func (s *Service) sessionFor(c server.Conn, st *connState, id steward.InstanceUID) (*session, bool) {
	if prev := st.sess; prev != nil && prev.id != id {
		s.release(prev, c)
		st.sess = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.sess != nil {
		return st.sess, false
	}
	ss := s.sessions[id]
	fresh := false
	if ss == nil {
		ss = &session{id: id, http: c.Transport() == server.HTTP}
		s.sessions[id] = ss
		fresh = true
	}
	if c.Transport() == server.WebSocket {
		ss.mu.Lock()
		if ss.conn != c {
			old := ss.conn
			ss.conn = c
			ss.http = false
			ss.offeredHash = nil // a new connection: offer again if needed
			ss.offeredAt = 0
			if ss.extra != nil {
				ss.extra.pkgOffered = nil
			}
			fresh = true
			if old != nil {
				go old.Close() // taken for dead by admit
			}
		}
		ss.closed = false
		ss.mu.Unlock()
		st.sess = ss
	} else if !ss.http && ss.conn != nil {
		// An agent that switched to HTTP while its socket lingers.
		ss.mu.Lock()
		old := ss.conn
		ss.conn = nil
		ss.http = true
		ss.mu.Unlock()
		go old.Close()
	}
	return ss, fresh
}

// reported reports whether msg carries any status field (as opposed to a
// bare heartbeat).
func reported(msg *protobufs.AgentToServer) bool {
	return msg.AgentDescription != nil || msg.Health != nil || msg.EffectiveConfig != nil ||
		msg.RemoteConfigStatus != nil || msg.PackageStatuses != nil || msg.CustomCapabilities != nil ||
		msg.AvailableComponents != nil || msg.ConnectionSettingsStatus != nil
}

// complete reports whether msg carries every status its capabilities
// report — what ReportFullState would ask for — so that nothing reported
// earlier is needed. Custom capabilities have no capability bit; an agent
// sends them with the first message of a connection when it has any.
func complete(msg *protobufs.AgentToServer, caps steward.AgentCapabilities) bool {
	has := func(c steward.AgentCapabilities, field bool) bool { return field || !caps.Has(c) }
	return msg.AgentDescription != nil &&
		has(steward.AgentReportsEffectiveConfig, msg.EffectiveConfig != nil) &&
		has(steward.AgentReportsRemoteConfig, msg.RemoteConfigStatus != nil) &&
		has(steward.AgentReportsHealth, msg.Health != nil) &&
		has(steward.AgentReportsPackageStatuses, msg.PackageStatuses != nil) &&
		has(steward.AgentReportsAvailableComponents, msg.AvailableComponents != nil) &&
		has(steward.AgentReportsConnectionSettingsStatus, msg.ConnectionSettingsStatus != nil)
}

// applyReport merges what the agent reported into the stored agent. A bare
// heartbeat only updates the batched last-seen time.
func (s *Service) applyReport(ctx context.Context, ss *session, c server.Conn, msg *protobufs.AgentToServer, fresh bool, now time.Time) error {
	caps := steward.AgentCapabilities(msg.Capabilities)
	if !fresh && !reported(msg) && caps == ss.caps {
		s.touch(ss.id, now, msg.SequenceNum)
		return nil
	}
	a, err := s.getAgent(ctx, ss.id)
	if steward.ErrorCode(err) == steward.ENOTFOUND {
		a, err = &steward.Agent{ID: ss.id, CreatedAt: now}, nil
	}
	if err != nil {
		return err
	}
	before := *a // fields are replaced below, never modified in place
	switch {
	case fresh && a.Description == nil && msg.AgentDescription == nil:
		// A new connection from an agent whose state we never stored
		// (e.g. it compressed its first report after our database was
		// reset): ask for all of it.
		ss.needFull = true
	case fresh && c.Transport() == server.WebSocket && msg.SequenceNum != a.SequenceNum+1 && !complete(msg, caps):
		// A WebSocket agent reconnecting may omit fields it believes it
		// sent on the old connection; a report lost with that connection
		// shows as a gap from the last stored sequence number. A gap
		// behind a report that carries all the agent reports is nothing
		// lost (heartbeats not yet flushed when the server was killed,
		// usually). (Plain HTTP loses nothing that way: an unanswered
		// request is resent, so the store is current for an HTTP agent on
		// any replica.)
		ss.needFull = true
	}
	var events []*steward.Event
	var statusEvent *steward.Event
	wasOnline := a.Online && a.Replica == s.cfg.Replica
	if fresh || !a.Online {
		a.Online = true
		a.Transport = string(c.Transport())
		a.RemoteAddr = c.RemoteAddr()
		a.ConnectedAt = now
		a.Replica = s.cfg.Replica
		if !wasOnline || c.Transport() == server.WebSocket {
			events = append(events, &steward.Event{Type: steward.EventAgentConnected, AgentID: ss.id,
				Message: "agent connected over " + string(c.Transport()), Details: map[string]any{"remote_addr": a.RemoteAddr}})
		}
	}
	a.Capabilities = caps
	a.SequenceNum = msg.SequenceNum
	a.LastSeen = now
	a.UpdatedAt = now
	if msg.AgentDescription != nil {
		a.Description = fromDescription(msg.AgentDescription)
	}
	if msg.Health != nil {
		prev := a.Health
		a.Health = fromHealth(msg.Health, 0)
		if prev == nil || prev.Healthy != a.Health.Healthy {
			state := "unhealthy"
			if a.Health.Healthy {
				state = "healthy"
			}
			msg := "agent is " + state
			if r := a.Health.Reason(); r != "" && !a.Health.Healthy {
				msg += ": " + steward.FirstLine(r)
			}
			events = append(events, &steward.Event{Type: steward.EventAgentHealth, AgentID: ss.id,
				Message: msg, Details: map[string]any{"healthy": a.Health.Healthy, "last_error": a.Health.LastError, "status": a.Health.Status}})
		}
	}
	if msg.EffectiveConfig != nil {
		m := fromConfigMap(msg.EffectiveConfig.ConfigMap)
		a.EffectiveConfig = &m
	}
	if msg.RemoteConfigStatus != nil {
		prev := a.RemoteConfigStatus
		a.RemoteConfigStatus = fromRemoteConfigStatus(msg.RemoteConfigStatus)
		if prev == nil || prev.Status != a.RemoteConfigStatus.Status || !bytes.Equal(prev.LastRemoteConfigHash, a.RemoteConfigStatus.LastRemoteConfigHash) || prev.ErrorMessage != a.RemoteConfigStatus.ErrorMessage {
			// Its message is written once the sync state has resolved the hash.
			statusEvent = &steward.Event{Type: steward.EventRemoteConfigStatus, AgentID: ss.id,
				Details: map[string]any{"status": a.RemoteConfigStatus.Status, "hash": hexString(a.RemoteConfigStatus.LastRemoteConfigHash), "error_message": a.RemoteConfigStatus.ErrorMessage}}
		}
	}
	if msg.PackageStatuses != nil {
		prev := a.PackageStatuses
		a.PackageStatuses = fromPackageStatuses(msg.PackageStatuses)
		if len(a.PackageStatuses.Packages) > 0 && !reflect.DeepEqual(prev, a.PackageStatuses) {
			events = append(events, packageStatusEvent(ss.id, prev, a.PackageStatuses))
		}
	}
	if msg.CustomCapabilities != nil {
		a.CustomCapabilities = slices.Clone(msg.CustomCapabilities.Capabilities)
	}
	// A hash-only report keeps the stored details (the reply asks for the
	// new ones when the hash differs); it is stored only when there is none.
	if ac := msg.AvailableComponents; ac != nil && (len(ac.Components) > 0 || a.AvailableComponents == nil) {
		a.AvailableComponents = fromAvailableComponents(ac)
	}
	if msg.ConnectionSettingsStatus != nil {
		a.ConnectionStatus = fromConnectionSettingsStatus(msg.ConnectionSettingsStatus)
	}
	// The session holds the labels as of the last report and label change
	// (agents.go, replicas.go): made again only from a new description.
	labels := ss.labels
	if fresh || msg.AgentDescription != nil || labels == (steward.Labels{}) {
		labels = a.CompactLabels()
	}
	var reportedHash []byte
	if a.RemoteConfigStatus != nil {
		reportedHash = a.RemoteConfigStatus.LastRemoteConfigHash
	}
	want := s.desired.Load().wantedConfig(ss.id, labels, caps, reportedHash)
	s.deriveSync(a, want, now)
	if statusEvent != nil {
		statusEvent.Message = configStatusMessage(a.RemoteConfigStatus, a.Sync)
		events = append(events, statusEvent)
	}
	if sameState(&before, a) {
		// A report repeating what is stored (a full report after a
		// reconnect, a status resent unchanged) writes nothing but the
		// batched last-seen time and sequence number.
		s.touch(ss.id, now, msg.SequenceNum)
	} else if err := s.putReport(ctx, &before, a); err != nil {
		return err
	}
	// Only now, with the report safely stored, update the session.
	ss.caps = caps
	ss.labels = labels
	ss.desiredHash = nil
	ss.setFailedHash(a.Sync.FailedHash)
	if want != nil {
		ss.desiredHash = want.hash
	}
	s.syncClean(ss.id)
	ss.setCustomCaps(a.CustomCapabilities)
	if a.RemoteConfigStatus != nil {
		ss.reportedHash = a.RemoteConfigStatus.LastRemoteConfigHash
		ss.reportedOutcome = outcomeOf(a.RemoteConfigStatus)
		if msg.RemoteConfigStatus != nil {
			s.acknowledged(ss, a.RemoteConfigStatus, now)
		}
		if statusEvent != nil && len(s.desired.Load().rollouts) > 0 {
			// News for running rollouts (a status repeated changes no
			// progress): counted, for rolloutPace.
			s.rolloutReports.Add(1)
			select {
			case s.rolloutKick <- struct{}{}:
			default:
			}
		}
	}
	if a.AvailableComponents != nil && len(a.AvailableComponents.Components) > 0 {
		// Only a hash whose details are stored: a hash-only report (what
		// opamp-based agents send first) must still get the
		// ReportAvailableComponents flag in the reply.
		ss.componentsHash = a.AvailableComponents.Hash
	}
	if a.ConnectionStatus != nil && (ss.cred != nil || len(a.ConnectionStatus.LastConnectionSettingsHash) > 0) {
		ss.credsForUpdate().reported = a.ConnectionStatus.LastConnectionSettingsHash
	}
	if fresh && len(a.OpAMPSettingsOffered) > 0 {
		ss.credsForUpdate().opampOffered = a.OpAMPSettingsOffered
	}
	if a.PackageStatuses != nil && (ss.extra != nil || a.PackageStatuses.ServerProvidedAllPackagesHash != nil) {
		ss.extras().pkgReported = a.PackageStatuses.ServerProvidedAllPackagesHash
	}
	for _, e := range events {
		s.emit(e)
	}
	return nil
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// configStatusMessage is the one-line message of a remote config status
// report: the status and the config versions the reported hash stands for
// (resolved against what the agent was meant to run; a short hash when
// Steward never offered it), with the first line of an error.
func configStatusMessage(rcs *steward.RemoteConfigStatus, sync *steward.AgentSync) string {
	msg := "remote config " + string(rcs.Status)
	if k := sync.Resolve(rcs.LastRemoteConfigHash); k != nil {
		msg += " " + k.Configs.String()
	} else if len(rcs.LastRemoteConfigHash) > 0 {
		msg += " " + steward.Hash(rcs.LastRemoteConfigHash).Short() + " (not from Steward)"
	}
	if rcs.ErrorMessage != "" {
		msg += ": " + steward.FirstLine(rcs.ErrorMessage)
	}
	return msg
}

// sameState reports whether a and b differ only in what a heartbeat
// changes (last seen, sequence number, update time).
func sameState(a, b *steward.Agent) bool {
	// What a new connection changes is compared first: a reconnect
	// differs there, and the deep comparison of its description and
	// effective config (a tenth of a reconnect's CPU) is skipped. Each
	// test finds only differences the deep comparison would find too.
	if a.Online != b.Online || a.Replica != b.Replica || a.RemoteAddr != b.RemoteAddr ||
		a.Transport != b.Transport || !a.ConnectedAt.Equal(b.ConnectedAt) {
		return false
	}
	x, y := *a, *b
	x.LastSeen, x.SequenceNum, x.UpdatedAt = time.Time{}, 0, time.Time{}
	y.LastSeen, y.SequenceNum, y.UpdatedAt = time.Time{}, 0, time.Time{}
	return reflect.DeepEqual(&x, &y)
}
