package client

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward/opamp"
)

func TestBackoff(t *testing.T) {
	b := newBackoff(Backoff{Min: time.Second, Max: 8 * time.Second})
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range want {
		w *= time.Second
		d := b.next()
		if d < w/2 || d > w {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, w/2, w)
		}
	}
	b.reset()
	if d := b.next(); d < 500*time.Millisecond || d > time.Second {
		t.Fatalf("after reset: %v", d)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	resp := func(code int, v string) *http.Response {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	for _, tc := range []struct {
		resp *http.Response
		want time.Duration
	}{
		{nil, 0},
		{resp(503, "7"), 7 * time.Second},
		{resp(429, " 3 "), 3 * time.Second},
		{resp(503, now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		{resp(503, now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		{resp(503, "soon"), 0},
		{resp(503, "-4"), 0},
		{resp(503, "999999999"), maxRetryAfter},
		{resp(500, "7"), 7 * time.Second},
		{resp(403, "60"), time.Minute}, // a refusal that says when to come back
		{resp(401, "5"), 5 * time.Second},
		{resp(200, "7"), 0},
		{resp(503, ""), 0},
	} {
		if got := retryAfter(tc.resp, now); got != tc.want {
			h := ""
			if tc.resp != nil {
				h = tc.resp.Header.Get("Retry-After")
			}
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, tc.want)
		}
	}
}

func TestUUIDString(t *testing.T) {
	u := [16]byte{0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6}
	if got := uuidString(u); got != "f81d4fae-7dec-11d0-a765-00a0c91e6bf6" {
		t.Fatal(got)
	}
}

func newTestClient(t testing.TB, caps protobufs.AgentCapabilities) *Client {
	c, err := New(Settings{
		Endpoint:     "ws://127.0.0.1:1/v1/opamp",
		Capabilities: caps,
		Description:  &protobufs.AgentDescription{NonIdentifyingAttributes: []*protobufs.KeyValue{{Key: "host.name"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCompression checks the state machine: full first, then only what
// changed, re-sent after a failed delivery, dropped after a refusal, and
// full again on request.
func TestCompression(t *testing.T) {
	c := newTestClient(t, protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth|
		protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents)
	if err := c.SetHealth(&protobufs.ComponentHealth{Healthy: true}); err != nil {
		t.Fatal(err)
	}
	comps := &protobufs.AvailableComponents{Hash: []byte("h"), Components: map[string]*protobufs.ComponentDetails{"receivers": {}}}
	if err := c.SetAvailableComponents(comps); err != nil {
		t.Fatal(err)
	}
	m, out := c.build(false)
	c.afterSend(out, true, false)
	if m.SequenceNum != 1 || m.AgentDescription == nil || m.Health == nil || m.AvailableComponents == nil {
		t.Fatalf("first message not full: %v", m)
	}
	if len(m.AvailableComponents.Components) != 0 || string(m.AvailableComponents.Hash) != "h" {
		t.Fatalf("components should be hash only at first: %v", m.AvailableComponents)
	}
	if c.pending() {
		t.Fatal("pending after a full send")
	}
	m, out = c.build(false)
	c.afterSend(out, true, false)
	if m.SequenceNum != 2 || m.AgentDescription != nil || m.Health != nil || m.AvailableComponents != nil {
		t.Fatalf("heartbeat carries status: %v", m)
	}
	if m.Capabilities != c.caps || len(m.InstanceUid) != 16 {
		t.Fatalf("heartbeat lacks capabilities or uid: %v", m)
	}

	_ = c.SetHealth(&protobufs.ComponentHealth{Healthy: false})
	m, out = c.build(false)
	if m.Health == nil || m.Health.Healthy || m.AgentDescription != nil {
		t.Fatalf("changed health not sent alone: %v", m)
	}
	c.afterSend(out, false, true) // lost
	m, out = c.build(false)
	if m.Health == nil || m.SequenceNum != 4 {
		t.Fatalf("lost health not re-sent: %v", m)
	}
	c.afterSend(out, false, false) // refused (BAD_REQUEST): not retried
	if c.pending() {
		t.Fatal("refused fields still pending")
	}

	// The server asks for the full component map.
	c.receive(&protobufs.ServerToAgent{Flags: uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents)})
	m, out = c.build(false)
	c.afterSend(out, true, false)
	if m.AvailableComponents == nil || len(m.AvailableComponents.Components) != 1 {
		t.Fatalf("full components not sent: %v", m)
	}
	c.receive(&protobufs.ServerToAgent{Flags: uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)})
	m, _ = c.build(false)
	if m.AgentDescription == nil || m.Health == nil || m.AvailableComponents == nil || len(m.AvailableComponents.Components) != 0 {
		t.Fatalf("ReportFullState not honoured: %v", m)
	}
}

func TestCustomMessagePending(t *testing.T) {
	c := newTestClient(t, 0)
	if err := c.SetCustomCapabilities(&protobufs.CustomCapabilities{Capabilities: []string{"io.x"}}); err != nil {
		t.Fatal(err)
	}
	ch1, err := c.SendCustomMessage(&protobufs.CustomMessage{Capability: "io.x", Type: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := c.SendCustomMessage(&protobufs.CustomMessage{Capability: "io.x", Type: "b"})
	if err != ErrCustomMessagePending || ch2 != ch1 {
		t.Fatalf("second message: %v", err)
	}
	m, out := c.build(false)
	if m.CustomMessage.GetType() != "a" {
		t.Fatalf("custom message not in the message: %v", m)
	}
	c.afterSend(out, false, true)
	select {
	case <-ch1:
		t.Fatal("pending closed although the send failed")
	default:
	}
	m, out = c.build(false)
	c.afterSend(out, true, false)
	if m.CustomMessage.GetType() != "a" {
		t.Fatal("custom message not retried")
	}
	select {
	case <-ch1:
	default:
		t.Fatal("pending not closed after delivery")
	}
	if _, err := c.SendCustomMessage(&protobufs.CustomMessage{Capability: "io.x", Type: "b"}); err != nil {
		t.Fatal(err)
	}
}

// TestReceiveRobustness: messages the client must ignore do not change
// its state or crash it.
func TestReceiveRobustness(t *testing.T) {
	c := newTestClient(t, protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat)
	uid := c.InstanceUID()
	c.receive(&protobufs.ServerToAgent{AgentIdentification: &protobufs.AgentIdentification{NewInstanceUid: []byte{1, 2, 3}}})
	if c.InstanceUID() != uid {
		t.Fatal("adopted a UID that is not 16 bytes")
	}
	other := make([]byte, 16)
	c.receive(&protobufs.ServerToAgent{InstanceUid: other, AgentIdentification: &protobufs.AgentIdentification{NewInstanceUid: make([]byte, 16)}})
	if c.InstanceUID() != uid {
		t.Fatal("obeyed a message addressed to another instance")
	}
	v := c.receive(&protobufs.ServerToAgent{ErrorResponse: &protobufs.ServerErrorResponse{
		Type:    protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable,
		Details: &protobufs.ServerErrorResponse_RetryInfo{RetryInfo: &protobufs.RetryInfo{RetryAfterNanoseconds: ^uint64(0)}},
	}})
	if !v.unavailable || v.retryAfter != maxRetryAfter {
		t.Fatalf("verdict %+v", v)
	}
	c.receive(&protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{Opamp: &protobufs.OpAMPConnectionSettings{HeartbeatIntervalSeconds: ^uint64(0)}}})
	if hb := c.heartbeat(); hb <= 0 || hb > maxRetryAfter {
		t.Fatalf("heartbeat %v from a huge offer", hb)
	}
	c.receive(&protobufs.ServerToAgent{ConnectionSettings: &protobufs.ConnectionSettingsOffers{Opamp: &protobufs.OpAMPConnectionSettings{HeartbeatIntervalSeconds: 0}}})
	if hb := c.heartbeat(); hb != 0 {
		t.Fatalf("heartbeat %v, want disabled", hb)
	}
}

func BenchmarkBuildHeartbeat(b *testing.B) {
	c := newTestClient(b, protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat)
	_, out := c.build(false)
	c.afterSend(out, true, false)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		m, out := c.build(false)
		buf, _ = opamp.AppendWS(buf[:0], m)
		c.afterSend(out, true, false)
	}
}

func BenchmarkBuildFullReport(b *testing.B) {
	c := newTestClient(b, protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth|protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig)
	_ = c.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "ok"})
	c.mu.Lock()
	c.st.effectiveConfig = &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"": {Body: make([]byte, 4096), ContentType: "text/yaml"},
	}}}
	c.mu.Unlock()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		c.markFull()
		m, out := c.build(false)
		buf, _ = opamp.AppendWS(buf[:0], m)
		c.afterSend(out, true, false)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkHTTPPoll measures one plain-HTTP poll (build, POST over
// loopback keep-alive, decode the reply) on the client side.
func BenchmarkHTTPPoll(b *testing.B) {
	reply, _ := proto.Marshal(&protobufs.ServerToAgent{InstanceUid: make([]byte, 16)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(reply)
	}))
	defer srv.Close()
	c, err := New(Settings{Endpoint: srv.URL + "/v1/opamp"})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := c.params()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m, out := c.build(false)
		if _, _, err := c.post(ctx, hc, p, m); err != nil {
			b.Fatal(err)
		}
		c.afterSend(out, true, false)
	}
}

func TestCandidate(t *testing.T) {
	c := newTestClient(t, protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings)
	c.conn.header = http.Header{"X-Keep": {"1"}, "Authorization": {"old"}}
	c.conn.tls = &tls.Config{Certificates: []tls.Certificate{{}}}

	p, err := c.candidate(&protobufs.OpAMPConnectionSettings{
		DestinationEndpoint: "https://127.0.0.1:4320/v1/opamp",
		Headers:             &protobufs.Headers{Headers: []*protobufs.Header{{Key: "Authorization", Value: "new"}}},
		Tls:                 &protobufs.TLSConnectionSettings{MinVersion: "1.2", MaxVersion: "1.3", InsecureSkipVerify: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.endpoint.Scheme != "https" || p.header.Get("Authorization") != "new" || p.header.Get("X-Keep") != "1" {
		t.Errorf("endpoint %v header %v", p.endpoint, p.header)
	}
	if p.tls.MinVersion != tls.VersionTLS12 || p.tls.MaxVersion != tls.VersionTLS13 || !p.tls.InsecureSkipVerify {
		t.Errorf("tls %+v", p.tls)
	}
	if len(p.tls.Certificates) != 0 {
		t.Error("client certificate kept although the offer has none")
	}
	if c.conn.header.Get("Authorization") != "old" || len(c.conn.tls.Certificates) != 1 {
		t.Error("candidate modified the current settings")
	}

	for name, o := range map[string]*protobufs.OpAMPConnectionSettings{
		"bad scheme":   {DestinationEndpoint: "ftp://127.0.0.1/"},
		"empty header": {Headers: &protobufs.Headers{Headers: []*protobufs.Header{{Key: ""}}}},
		"bad version":  {Tls: &protobufs.TLSConnectionSettings{MinVersion: "9"}},
		"bad CA":       {Tls: &protobufs.TLSConnectionSettings{CaPemContents: "nope"}},
		"cert no key":  {Certificate: &protobufs.TLSCertificate{Cert: []byte("x")}},
		"bad cert":     {Certificate: &protobufs.TLSCertificate{Cert: []byte("x"), PrivateKey: []byte("y")}},
	} {
		if _, err := c.candidate(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
