package controlplane_test

// Agent identity over real TLS, attacked as the findings of issue #10
// describe: with Steward's client, opamp-go's client, and hand-made
// WebSocket frames where neither client can do the attack (hopping).

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	opampclient "github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/ca"
	"github.com/stewardhq/steward/controlplane"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/client"
	"github.com/stewardhq/steward/opamp/websocket"
)

// agentProbe counts what an agent under test went through.
type agentProbe struct {
	connects     atomic.Int64 // connections established (WebSocket upgrades)
	remoteConfig atomic.Bool  // a remote config was received
	mu           sync.Mutex
	uid          steward.InstanceUID // the uid it speaks for now
}

// agentOpts say how a test agent connects.
type agentOpts struct {
	uid     steward.InstanceUID
	bearer  string           // enrollment token, if any
	cert    *tls.Certificate // client certificate, if any
	backoff client.Backoff   // Steward's client only
}

// startOurs runs Steward's client.
func (s *tlsStack) startOurs(o agentOpts) *agentProbe {
	t := s.t
	p := &agentProbe{uid: o.uid}
	cfg := &tls.Config{RootCAs: s.roots}
	if o.cert != nil {
		cfg.Certificates = []tls.Certificate{*o.cert}
	}
	h := http.Header{}
	if o.bearer != "" {
		h.Set("Authorization", "Bearer "+o.bearer)
	}
	if o.backoff.Min == 0 {
		o.backoff = client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	c, err := client.New(client.Settings{
		Endpoint: s.url, Header: h, TLSConfig: cfg, InstanceUID: o.uid,
		Capabilities: protobufs.AgentCapabilities(connCaps) | protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig,
		Description:  &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{str("service.name", "otelcol")}},
		Backoff:      o.backoff,
		Callbacks: client.Callbacks{
			OnConnect: func(context.Context) { p.connects.Add(1) },
			OnMessage: func(_ context.Context, m *client.MessageData) {
				if m.RemoteConfig != nil {
					p.remoteConfig.Store(true)
				}
				if id := m.AgentIdentification; id != nil {
					p.mu.Lock()
					p.uid, _ = steward.InstanceUIDFromBytes(id.NewInstanceUid)
					p.mu.Unlock()
				}
			},
		},
		Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return p
}

// startOpAMPGo runs opamp-go's WebSocket client.
func (s *tlsStack) startOpAMPGo(o agentOpts) *agentProbe {
	t := s.t
	p := &agentProbe{uid: o.uid}
	cfg := &tls.Config{RootCAs: s.roots}
	if o.cert != nil {
		cfg.Certificates = []tls.Certificate{*o.cert}
	}
	h := http.Header{}
	if o.bearer != "" {
		h.Set("Authorization", "Bearer "+o.bearer)
	}
	c := opampclient.NewWebSocket(nil)
	if err := c.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{str("service.name", "otelcol")}}); err != nil {
		t.Fatal(err)
	}
	err := c.Start(context.Background(), types.StartSettings{
		OpAMPServerURL: s.url, InstanceUid: types.InstanceUid(o.uid), TLSConfig: cfg, Header: h,
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus | protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig,
		Callbacks: types.Callbacks{
			OnConnect: func(context.Context) { p.connects.Add(1) },
			OnMessage: func(_ context.Context, m *types.MessageData) {
				if m.RemoteConfig != nil {
					p.remoteConfig.Store(true)
				}
			},
			GetEffectiveConfig: func(context.Context) (*protobufs.EffectiveConfig, error) { return &protobufs.EffectiveConfig{}, nil },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return p
}

type starter struct {
	name  string
	start func(*tlsStack, agentOpts) *agentProbe
}

var clients = []starter{{"steward client", (*tlsStack).startOurs}, {"opamp-go client", (*tlsStack).startOpAMPGo}}

// issueCert records a certificate for uid as the CSR flow would.
func (s *tlsStack) issueCert(uid steward.InstanceUID) *tls.Certificate {
	k := newAgentKey()
	cert, err := s.ca.SignCSR(k.csr(s.t, uid.String()), uid, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	rec := ca.Record(cert, uid)
	if err := s.store.(steward.CredentialStore).PutCertificate(context.Background(), rec); err != nil {
		s.t.Fatal(err)
	}
	return tlsCert(s.t, rec, k)
}

func (s *tlsStack) enrollmentToken(t steward.EnrollmentToken) (*steward.EnrollmentToken, string) {
	tok, secret, err := s.svc.CreateEnrollmentToken(steward.WithActor(context.Background(), "admin"), t)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok, secret
}

func (s *tlsStack) uses(id string) int {
	list, err := s.svc.EnrollmentTokens(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	for _, t := range list {
		if t.ID == id {
			return t.Uses
		}
	}
	s.t.Fatalf("no enrollment token %s", id)
	return 0
}

func (s *tlsStack) online(id steward.InstanceUID) bool {
	a, err := s.svc.Agent(context.Background(), id)
	return err == nil && a.Online
}

// refusals returns the agent.refused audit entries for target whose reason
// contains part, and the occurrences they stand for.
func (s *tlsStack) refusals(target, part string) (rows, count int) {
	list, err := s.svc.Audit(context.Background(), steward.AuditFilter{Action: steward.AuditAgentRefused, Limit: 10000})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range list {
		if (target == "" || e.Target == target) && strings.Contains(e.Details["reason"].(string), part) {
			rows++
			if n, ok := e.Details["count"].(float64); ok {
				count += int(n)
			} else {
				count++
			}
		}
	}
	return rows, count
}

// handshakes counts TLS connections with serial made at or after since.
func (s *tlsStack) handshakes(serial string, since time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for i, x := range s.serials {
		if x == serial && !s.times[i].Before(since) {
			out = append(out, s.times[i])
		}
	}
	return out
}

// assignConfig gives every agent a remote config.
func (s *tlsStack) assignConfig() {
	ctx := context.Background()
	if _, err := s.svc.PutConfig(ctx, &steward.Config{Name: "secret", Files: steward.ConfigMap{"c.yaml": {Body: []byte("password: hunter2\n")}}}); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.svc.PutAssignment(ctx, &steward.Assignment{Name: "all", ConfigName: "secret", Selector: "service.name=otelcol"}); err != nil {
		s.t.Fatal(err)
	}
}

// Finding 1: a holder of any enrollment token claims the uid of an agent
// that holds a client certificate. It is refused and audited; the real
// agent keeps its one connection; the token's use count does not move; the
// attacker never receives the agent's remote config.
func TestIdentityTakeoverRefused(t *testing.T) {
	for _, attacker := range clients {
		t.Run(attacker.name, func(t *testing.T) {
			s := newTLSStack(t, controlplane.AgentAuth{Require: true, RefusalBackoff: controlplane.Backoff{Min: 50 * time.Millisecond, Max: time.Second}})
			s.assignConfig()
			victim := steward.NewInstanceUID()
			real := s.startOurs(agentOpts{uid: victim, cert: s.issueCert(victim)})
			eventually30(t, "the real agent online with its config", func() bool { return s.online(victim) && real.remoteConfig.Load() })

			tok, secret := s.enrollmentToken(steward.EnrollmentToken{Name: "other"})
			thief := attacker.start(s, agentOpts{uid: victim, bearer: secret})
			eventually30(t, "the takeover refused and audited", func() bool {
				rows, _ := s.refusals(victim.String(), "holds a client certificate")
				return rows > 0
			})
			// Give the attacker time to retry (it is refused at the
			// upgrade meanwhile): the real agent is never displaced.
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				if n := real.connects.Load(); n != 1 {
					t.Fatalf("the real agent connected %d times: displaced by the attacker", n)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if thief.remoteConfig.Load() {
				t.Fatal("the attacker received the agent's remote config")
			}
			if n := s.uses(tok.ID); n != 0 {
				t.Fatalf("the attacker's token was used %d times", n)
			}
			if !s.online(victim) {
				t.Fatal("the real agent went offline")
			}
		})
	}
}

// rawAgent is a hand-made WebSocket agent that sends what no client would.
type rawAgent struct {
	t    *testing.T
	conn *websocket.Conn
	seq  uint64
}

func (s *tlsStack) dialRaw(bearer string) (*rawAgent, error) {
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, s.url, &websocket.DialOptions{Header: h, TLSConfig: &tls.Config{RootCAs: s.roots}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	s.t.Cleanup(func() { conn.NetConn().Close() })
	return &rawAgent{t: s.t, conn: conn}, nil
}

// send writes one AgentToServer for uid and returns the reply (nil once the
// server has closed the connection).
func (a *rawAgent) send(uid steward.InstanceUID, flags uint64, desc string) *protobufs.ServerToAgent {
	a.seq++
	m := &protobufs.AgentToServer{InstanceUid: uid[:], SequenceNum: a.seq, Capabilities: connCaps, Flags: flags}
	if desc != "" {
		m.AgentDescription = &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{str("service.name", desc)}}
	}
	data, err := opamp.AppendWS(nil, m)
	if err != nil {
		a.t.Fatal(err)
	}
	_ = a.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := a.conn.WriteMessage(websocket.Binary, data); err != nil {
		return nil
	}
	_ = a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		op, b, err := a.conn.ReadMessage()
		if err != nil {
			return nil
		}
		if op != websocket.Binary {
			continue
		}
		var r protobufs.ServerToAgent
		if err := opamp.DecodeWS(b, &r); err != nil {
			a.t.Fatal(err)
		}
		return &r
	}
}

// closed reports whether the server closed the connection within 10 s.
func (a *rawAgent) closed() bool {
	_ = a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := a.conn.ReadMessage(); err != nil {
			return !strings.Contains(err.Error(), "timeout")
		}
	}
}

// Finding 2: after admission, messages on the same WebSocket carrying
// other uids are refused (audited) and the connection closed — never
// admitted without counting, never reaching a revoked uid; max_uses holds;
// a uid the server assigned is the only other one a connection may take,
// and the uid it leaves goes offline. (Neither client can send these
// messages: the frames are made by hand.)
func TestIdentityHoppingRefused(t *testing.T) {
	s := newTLSStack(t, controlplane.AgentAuth{Require: true})
	ctx := context.Background()
	tok, secret := s.enrollmentToken(steward.EnrollmentToken{Name: "fleet", MaxUses: 1})

	first := steward.NewInstanceUID()
	a, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.send(first, 0, "otelcol"); r == nil || r.ErrorResponse != nil {
		t.Fatalf("first message: %v", r)
	}
	// Hop to a new uid: refused, closed, not enrolled, not counted.
	hop := steward.NewInstanceUID()
	if r := a.send(hop, 0, "hopper"); r == nil || r.ErrorResponse == nil || !strings.Contains(r.ErrorResponse.ErrorMessage, "speaks for agent") {
		t.Fatalf("hop: %v; want an error response", r)
	}
	if !a.closed() {
		t.Fatal("the hopping connection was not closed")
	}
	if _, err := s.svc.Agent(ctx, hop); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("hopped uid stored: %v", err)
	}
	if rows, _ := s.refusals(first.String(), "speaks for agent"); rows != 1 {
		t.Fatalf("hop audited %d times", rows)
	}
	eventually30(t, "the first uid offline after the close", func() bool { return !s.online(first) })

	// max_uses holds: the token admitted one agent; a second uid, on a
	// new connection, is refused as the token is used up.
	b, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.send(hop, 0, "hopper"); r == nil || r.ErrorResponse == nil || !strings.Contains(r.ErrorResponse.ErrorMessage, "used up") {
		t.Fatalf("second agent with a used-up token: %v", r)
	}
	if n := s.uses(tok.ID); n != 1 {
		t.Fatalf("token uses = %d, want 1", n)
	}
	// The enrolled agent itself comes back with the same token.
	c, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.send(first, 0, "otelcol"); r == nil || r.ErrorResponse != nil {
		t.Fatalf("the enrolled agent reconnecting: %v", r)
	}

	// A revoked uid cannot be reached by hopping, nor by a new connection.
	revoked := steward.NewInstanceUID()
	s.issueCert(revoked)
	certs := s.certs(revoked)
	if err := s.store.PutAgent(ctx, &steward.Agent{ID: revoked, Description: &steward.AgentDescription{
		IdentifyingAttributes: []steward.KeyValue{{Key: "service.name", Value: "real"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.RevokeCertificate(ctx, certs[0].Serial); err != nil {
		t.Fatal(err)
	}
	if r := c.send(revoked, 0, "impostor"); r == nil || r.ErrorResponse == nil {
		t.Fatalf("hop to a revoked uid: %v", r)
	}
	d, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := d.send(revoked, 0, "impostor"); r == nil || r.ErrorResponse == nil || !strings.Contains(r.ErrorResponse.ErrorMessage, "revoked") {
		t.Fatalf("a token claiming a revoked uid: %v", r)
	}
	ag, err := s.svc.Agent(ctx, revoked)
	if err != nil || ag.Description.IdentifyingAttributes[0].Value != "real" || ag.Online {
		t.Fatalf("revoked agent touched: %+v, %v", ag, err)
	}

	// The server-assigned uid (RequestInstanceUid) is the one other uid a
	// connection may take; the uid it leaves goes offline, and so does
	// the new one when the connection closes.
	open := steward.NewInstanceUID()
	if _, err := s.dialRaw(""); err == nil {
		t.Fatal("no credentials admitted with authentication required")
	}
	s2 := newTLSStack(t, controlplane.AgentAuth{})
	e, err := s2.dialRaw("")
	if err != nil {
		t.Fatal(err)
	}
	if r := e.send(open, 0, "otelcol"); r == nil || r.ErrorResponse != nil {
		t.Fatalf("first message: %v", r)
	}
	r := e.send(open, uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid), "")
	if r == nil || r.AgentIdentification == nil {
		t.Fatalf("RequestInstanceUid: %v", r)
	}
	assigned, _ := steward.InstanceUIDFromBytes(r.AgentIdentification.NewInstanceUid)
	if r := e.send(assigned, 0, "otelcol"); r == nil || r.ErrorResponse != nil {
		t.Fatalf("message under the assigned uid: %v", r)
	}
	eventually30(t, "the left uid offline", func() bool { return !s2.online(open) })
	if !s2.online(assigned) {
		t.Fatal("the assigned uid is not online")
	}
	if r := e.send(open, 0, "otelcol"); r == nil || r.ErrorResponse == nil {
		t.Fatalf("back to the left uid: %v; want refused", r)
	}
	eventually30(t, "the assigned uid offline after the close", func() bool { return !s2.online(assigned) })
}

// Finding 4: agents sharing a uid do not storm. Without credentials (and
// with enrollment tokens) the second gets a uid of its own; with one
// certificate shared by clones the second is refused at the upgrade with
// 503 and a Retry-After beyond the liveness window. Either way each agent
// connects a bounded number of times, and the first is never displaced.
func TestDuplicateUIDNoStorm(t *testing.T) {
	const watch = 6 * time.Second
	t.Run("no credentials", func(t *testing.T) {
		s := newTLSStack(t, controlplane.AgentAuth{})
		uid := steward.NewInstanceUID()
		var probes []*agentProbe
		for _, c := range append(clients, clients...) {
			probes = append(probes, c.start(s, agentOpts{uid: uid}))
		}
		eventually30(t, "four agents online", func() bool {
			list, _, err := s.svc.Agents(context.Background(), steward.AgentFilter{})
			n := 0
			for _, a := range list {
				if a.Online {
					n++
				}
			}
			return err == nil && n == 4
		})
		time.Sleep(watch)
		for i, p := range probes {
			if n := p.connects.Load(); n > 2 {
				t.Errorf("agent %d connected %d times in %v", i, n, watch)
			}
		}
		if total := len(s.handshakes("", time.Time{})); total > 8 {
			t.Errorf("%d connections for 4 agents", total)
		}
	})
	t.Run("one certificate", func(t *testing.T) {
		s := newTLSStack(t, controlplane.AgentAuth{Require: true})
		uid := steward.NewInstanceUID()
		cert := s.issueCert(uid)
		serial := s.certs(uid)[0].Serial
		first := s.startOurs(agentOpts{uid: uid, cert: cert})
		eventually30(t, "the first agent online", func() bool { return s.online(uid) })
		var clones []*agentProbe
		for _, c := range clients {
			clones = append(clones, c.start(s, agentOpts{uid: uid, cert: cert}))
		}
		since := time.Now()
		time.Sleep(watch)
		if n := first.connects.Load(); n != 1 {
			t.Errorf("the first agent connected %d times", n)
		}
		for i, p := range clones {
			if n := p.connects.Load(); n != 0 {
				t.Errorf("clone %d was admitted %d times", i, n)
			}
		}
		// Each clone tries at once, then waits out the Retry-After
		// (45 s with the default heartbeat).
		if n := len(s.handshakes(serial, since)); n > 2*len(clones) {
			t.Errorf("%d connection attempts by %d clones in %v", n, len(clones), watch)
		}
		if rows, _ := s.refusals(uid.String(), "in use by another live connection"); rows != 1 {
			t.Errorf("duplicate refusals recorded in %d audit rows, want 1 (coalesced)", rows)
		}
	})
}

// Finding 5: a refused agent (a token holder claiming a uid whose
// certificate was revoked) backs off. With the clock scaled so that one
// "minute" is 2 s (server cool-down 1 s to 8 s, our client's backoff
// 50 ms to 8 s), its reconnect rate falls under one per scaled minute
// within five scaled minutes: at most 4 attempts in [10 s, 20 s].
func TestRefusedClientBacksOff(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newTLSStack(t, controlplane.AgentAuth{Require: true, RefusalBackoff: controlplane.Backoff{Min: time.Second, Max: 8 * time.Second},
				AuditWindow: 2 * time.Second})
			uid := steward.NewInstanceUID()
			s.issueCert(uid)
			if _, err := s.svc.RevokeCertificate(context.Background(), s.certs(uid)[0].Serial); err != nil {
				t.Fatal(err)
			}
			_, secret := s.enrollmentToken(steward.EnrollmentToken{Name: "fleet"})
			start := time.Now()
			p := c.start(s, agentOpts{uid: uid, bearer: secret, backoff: client.Backoff{Min: 50 * time.Millisecond, Max: 8 * time.Second}})
			time.Sleep(20 * time.Second)
			attempts := s.handshakes("", start)
			late := 0
			for _, at := range attempts {
				if at.Sub(start) >= 10*time.Second {
					late++
				}
			}
			var offs []string
			for _, at := range attempts {
				offs = append(offs, at.Sub(start).Round(10*time.Millisecond).String())
			}
			t.Logf("%d attempts in 20 s, %d after 10 s: %v", len(attempts), late, offs)
			if late > 4 {
				t.Fatalf("%d attempts in the last 10 s; want at most 4 (under one per 2 s)", late)
			}
			if p.remoteConfig.Load() || s.online(uid) {
				t.Fatal("the refused agent was admitted")
			}
			// At most one audit row per 2 s window.
			if rows, n := s.refusals(uid.String(), "revoked"); rows == 0 || rows > 11 {
				t.Fatalf("refusals: %d audit rows for %d refusals", rows, n)
			}
		})
	}
}

// Repeated identical refusals are one audit row with a count per window,
// not one row each: the first at once, the rest when the window ends (here
// at shutdown, which writes what is pending).
func TestAuditCoalescesRefusals(t *testing.T) {
	s := newTLSStack(t, controlplane.AgentAuth{AuditWindow: time.Hour})
	uid := steward.NewInstanceUID()
	for range 30 {
		if code, err := s.post(uid, nil, "stwe_unknown"); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("unknown token: %d, %v", code, err)
		}
	}
	if rows, n := s.refusals("", "unknown enrollment token"); rows != 1 || n != 1 {
		t.Fatalf("30 identical refusals within the window: %d audit rows for %d; want the first alone", rows, n)
	}
	if err := s.svc.Close(); err != nil {
		t.Fatal(err)
	}
	list, err := s.store.(steward.AuditStore).Audit(context.Background(), steward.AuditFilter{Action: steward.AuditAgentRefused})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Details["count"] != float64(29) || list[0].Details["first_time"] == nil || list[0].Details["last_time"] == nil {
		t.Fatalf("after the window: %d rows, newest %+v; want the other 29 in one row with first and last time", len(list), list[0].Details)
	}
}

// Finding 11: a bearer token that is presented must be a valid enrollment
// token, also when agent authentication is not required: an unknown one is
// refused (401) rather than ignored; no token at all is admitted.
func TestUnknownTokenRefusedWithoutRequire(t *testing.T) {
	s := newTLSStack(t, controlplane.AgentAuth{})
	uid := steward.NewInstanceUID()
	if code, err := s.post(uid, nil, "stw_api_token_of_the_cli"); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("unknown token without --require-agent-auth: %d, %v; want 401", code, err)
	}
	if code, err := s.post(uid, nil, ""); err != nil || code != http.StatusOK {
		t.Fatalf("no token without --require-agent-auth: %d, %v; want 200", code, err)
	}
}

// An agent the store knew before bindings existed (or admitted without
// credentials) is bound at its next connection with a token, without using
// the token up again: upgrading does not lock out the agents of a used-up
// token. A new uid with that token is still refused.
func TestKnownAgentBoundWithoutCounting(t *testing.T) {
	s := newTLSStack(t, controlplane.AgentAuth{Require: true})
	ctx := context.Background()
	tok, secret := s.enrollmentToken(steward.EnrollmentToken{Name: "fleet", MaxUses: 1})
	first, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := first.send(steward.NewInstanceUID(), 0, "otelcol"); r == nil || r.ErrorResponse != nil {
		t.Fatalf("first agent: %v", r)
	}
	known := steward.NewInstanceUID()
	if err := s.store.PutAgent(ctx, &steward.Agent{ID: known, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.send(known, 0, "otelcol"); r == nil || r.ErrorResponse != nil {
		t.Fatalf("known agent with the used-up token: %v", r)
	}
	if n := s.uses(tok.ID); n != 1 {
		t.Fatalf("token uses = %d, want 1", n)
	}
	b, err := s.store.(steward.AgentBindingStore).AgentBinding(ctx, known)
	if err != nil || b.EnrollmentTokenID != tok.ID {
		t.Fatalf("binding of the known agent: %+v, %v", b, err)
	}
	c, err := s.dialRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.send(steward.NewInstanceUID(), 0, "otelcol"); r == nil || r.ErrorResponse == nil {
		t.Fatalf("a new agent with the used-up token: %v", r)
	}
}
