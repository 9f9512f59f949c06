// Package storetest is the conformance suite every steward.Store
// implementation runs: store/sqlite and store/postgres call Run from their
// tests, so both behave the same way.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// Run runs the conformance suite. open must return a fresh, empty store for
// each call and arrange for it to be closed and removed when t ends (closing
// it a second time must be harmless).
func Run(t *testing.T, open func(t *testing.T) steward.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s steward.Store)
	}{
		{"AgentRoundTrip", testAgentRoundTrip},
		{"AgentReplace", testAgentReplace},
		{"AgentStates", testAgentStates},
		{"AgentStatesDelete", testAgentStatesDelete},
		{"AgentInvalid", testAgentInvalid},
		{"TouchAgents", testTouchAgents},
		{"MarkOffline", testMarkOffline},
		{"AgentsFilter", testAgentsFilter},
		{"AgentsPaging", testAgentsPaging},
		{"AgentsBySync", testAgentsBySync},
		{"AgentsQuery", testAgentsQuery},
		{"AgentsSortPaging", testAgentsSortPaging},
		{"AgentsWith", testAgentsWith},
		{"AgentsWithWhileWritten", testAgentsWithWhileWritten},
		{"AgentsRead", testAgentsRead},
		{"AgentsNotHeldBy", testAgentsNotHeldBy},
		{"DeleteAgent", testDeleteAgent},
		{"ConfigVersions", testConfigVersions},
		{"ConfigInvalid", testConfigInvalid},
		{"DeleteConfig", testDeleteConfig},
		{"Assignments", testAssignments},
		{"Events", testEvents},
		{"ConcurrentPutConfig", testConcurrentPutConfig},
		{"ConcurrentPutAgent", testConcurrentPutAgent},
		{"Unavailable", testUnavailable},
		{"Rollouts", testRollouts},
		{"Replicas", testReplicas},
		{"NotHeldBy", testNotHeldBy},
		{"Summary", testSummary},
		{"Packages", testPackages},
		{"Tokens", testTokens},
		{"EnrollmentTokens", testEnrollmentTokens},
		{"Certificates", testCertificates},
		{"Secrets", testSecrets},
		{"ConnectionSettings", testConnectionSettingsStore},
		{"Audit", testAudit},
		{"Sessions", testSessions},
		{"Users", testUsers},
		{"Bindings", testBindings},
		{"AgentCredentials", testAgentCredentials},
		{"ConfigBodies", testConfigBodies},
		{"ComponentSets", testComponentSets},
		{"ChurningEffectiveConfigs", testChurningEffectiveConfigs},
		{"TelemetryRollups", testTelemetryRollups},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// ctx returns a context that ends with the test, with a generous deadline
// so a hung store fails the test instead of the whole run.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, code string, what string) {
	t.Helper()
	if got := steward.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ts returns a UTC time with microsecond precision, the precision every
// store must keep.
func ts(sec int64, usec int64) time.Time {
	return time.Unix(1_780_000_000+sec, usec*1000).UTC()
}

// uid returns an instance uid whose canonical form sorts by n.
func uid(n byte) steward.InstanceUID {
	var u steward.InstanceUID
	u[0] = n
	u[6] = 0x70
	u[8] = 0x80
	u[15] = n ^ 0x5a
	return u
}

func sameJSON(t *testing.T, got, want any, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s differs\n got: %s\nwant: %s\n(got %#v)", what, g, w, got)
	}
}

func fullAgent() *steward.Agent {
	return &steward.Agent{
		ID: uid(1),
		Description: &steward.AgentDescription{
			IdentifyingAttributes: []steward.KeyValue{
				{Key: steward.AttrServiceName, Value: "checkout"},
				{Key: steward.AttrServiceVersion, Value: "1.2.3"},
				{Key: steward.AttrServiceInstanceID, Value: "inst-1"},
			},
			NonIdentifyingAttributes: []steward.KeyValue{
				{Key: steward.AttrHostName, Value: "Host-A.example"},
				{Key: "int", Value: int64(-1 << 62)},
				{Key: "int.max", Value: int64(math.MaxInt64)},
				{Key: "double", Value: 3.14159},
				{Key: "double.inf", Value: math.Inf(-1)},
				{Key: "bool", Value: true},
				{Key: "bytes", Value: []byte{0, 1, 0xfe, 0xff}},
				{Key: "nil", Value: nil},
				{Key: "unicode", Value: "ünïcødé ✓ \x00 nul"},
				{Key: "array", Value: []any{"a", int64(2), 2.5, false, []byte{9}, []any{"nested"}, nil}},
				{Key: "map", Value: map[string]any{"s": "v", "i": int64(7), "m": map[string]any{"deep": true}, "a": []any{}}},
			},
		},
		Capabilities: steward.AgentReportsStatus | steward.AgentAcceptsRemoteConfig | steward.AgentReportsHealth | steward.AgentReportsConnectionSettingsStatus,
		Health: &steward.ComponentHealth{
			Healthy: true, StartTime: ts(1, 1), StatusTime: ts(2, 2), Status: "StatusOK",
			Components: map[string]*steward.ComponentHealth{
				"pipeline:traces": {Healthy: false, Status: "StatusRecoverableError", LastError: "export failed", StatusTime: ts(3, 3),
					Components: map[string]*steward.ComponentHealth{
						"exporter:otlp": {Healthy: false, LastError: "connection refused"},
					}},
				"pipeline:metrics": {Healthy: true},
			},
		},
		EffectiveConfig: &steward.ConfigMap{
			"":          {Body: []byte("receivers:\n  otlp: {}\n"), ContentType: "text/yaml"},
			"cert.der":  {Body: []byte{0x30, 0x82, 0x00, 0xff, 0xfe, 0x01}, ContentType: "application/octet-stream"},
			"empty.txt": {Body: []byte("x")},
		},
		RemoteConfigStatus: &steward.RemoteConfigStatus{LastRemoteConfigHash: []byte{1, 2, 3}, Status: steward.RemoteConfigFailed, ErrorMessage: "bad yaml"},
		PackageStatuses: &steward.PackageStatuses{
			Packages: map[string]*steward.PackageStatus{
				"otelcol": {Name: "otelcol", AgentHasVersion: "0.1", AgentHasHash: []byte{4}, ServerOfferedVersion: "0.2",
					ServerOfferedHash: []byte{5}, Status: steward.PackageDownloading, DownloadPercent: 42.5},
			},
			ServerProvidedAllPackagesHash: []byte{6, 7},
			ErrorMessage:                  "partial",
		},
		AvailableComponents: &steward.ComponentDetails{
			Hash: []byte{0xaa, 0xbb},
			Components: map[string]*steward.ComponentDetails{
				"receivers": {Components: map[string]*steward.ComponentDetails{
					"otlp": {Metadata: []steward.KeyValue{{Key: "code.namespace", Value: "otlpreceiver"}, {Key: "stability", Value: int64(2)}}},
				}},
			},
		},
		ConnectionStatus:   &steward.ConnectionSettingsStatus{LastConnectionSettingsHash: []byte{8}, Status: "APPLIED"},
		CustomCapabilities: []string{"io.opentelemetry.pprof", "com.example.custom"},
		Labels:             map[string]string{"env": "prod", "team": "payments"},
		SequenceNum:        math.MaxUint64 - 3,
		Online:             true,
		Transport:          "websocket",
		RemoteAddr:         "127.0.0.1:40000",
		ConnectedAt:        ts(10, 123456),
		DisconnectedAt:     ts(5, 654321),
		LastSeen:           ts(11, 999999),
		Replica:            "replica-a",
		CreatedAt:          ts(0, 1),
		UpdatedAt:          ts(12, 7),
	}
}

func testAgentRoundTrip(t *testing.T, s steward.Store) {
	c := ctx(t)
	want := fullAgent()
	in := fullAgent()
	must(t, s.PutAgent(c, in), "PutAgent")
	got, err := s.Agent(c, want.ID)
	must(t, err, "Agent")
	// Infinity cannot be compared through DeepEqual's NaN rules, but -Inf is
	// fine; the whole value must come back identical.
	sameJSON(t, got, want, "agent read back")
	if got.Attribute("bytes") != "" {
		t.Fatalf("bytes attribute is not scalar")
	}
	list, total, err := s.Agents(c, steward.AgentFilter{})
	must(t, err, "Agents")
	if total != 1 || len(list) != 1 {
		t.Fatalf("Agents: %d agents, total %d; want 1, 1", len(list), total)
	}
	sameJSON(t, list[0], want, "agent listed")

	// A minimal agent: nothing reported yet.
	min := &steward.Agent{ID: uid(2)}
	must(t, s.PutAgent(c, min), "PutAgent minimal")
	if min.CreatedAt.IsZero() || min.UpdatedAt.IsZero() {
		t.Fatalf("PutAgent did not set CreatedAt/UpdatedAt: %+v", min)
	}
	got, err = s.Agent(c, min.ID)
	must(t, err, "Agent minimal")
	if got.Description != nil || got.Health != nil || got.EffectiveConfig != nil || got.Labels != nil || got.Online || !got.LastSeen.IsZero() {
		t.Fatalf("minimal agent came back with data: %+v", got)
	}
	if !got.CreatedAt.Equal(min.CreatedAt) {
		t.Fatalf("CreatedAt %v, PutAgent reported %v", got.CreatedAt, min.CreatedAt)
	}

	_, err = s.Agent(c, uid(99))
	wantCode(t, err, steward.ENOTFOUND, "Agent(unknown)")
}

func testAgentReplace(t *testing.T, s steward.Store) {
	c := ctx(t)
	a := fullAgent()
	must(t, s.PutAgent(c, a), "PutAgent")
	created := a.CreatedAt

	// Replace: the whole row changes; a zero CreatedAt keeps the stored one.
	b := &steward.Agent{
		ID:          a.ID,
		Description: &steward.AgentDescription{IdentifyingAttributes: []steward.KeyValue{{Key: steward.AttrServiceName, Value: "cart"}}},
		Labels:      map[string]string{"env": "dev"},
		SequenceNum: 9,
		UpdatedAt:   ts(100, 0),
	}
	must(t, s.PutAgent(c, b), "PutAgent replace")
	got, err := s.Agent(c, a.ID)
	must(t, err, "Agent")
	if !got.CreatedAt.Equal(created) || !b.CreatedAt.Equal(created) {
		t.Fatalf("CreatedAt %v (reported %v), want kept %v", got.CreatedAt, b.CreatedAt, created)
	}
	want := *b
	want.CreatedAt = created
	sameJSON(t, got, &want, "replaced agent")
	if got.Health != nil || got.Online || got.Replica != "" || got.Attribute(steward.AttrHostName) != "" {
		t.Fatalf("replace kept old fields: %+v", got)
	}
	// The indexed columns follow the replacement too.
	list, _, err := s.Agents(c, steward.AgentFilter{Search: "checkout"})
	must(t, err, "Agents search old name")
	if len(list) != 0 {
		t.Fatalf("search still finds the old service name")
	}
	list, _, err = s.Agents(c, steward.AgentFilter{Search: "cart"})
	must(t, err, "Agents search new name")
	if len(list) != 1 {
		t.Fatalf("search does not find the new service name")
	}
}

func testAgentInvalid(t *testing.T, s steward.Store) {
	c := ctx(t)
	wantCode(t, s.PutAgent(c, &steward.Agent{}), steward.EINVALID, "PutAgent(zero id)")
	wantCode(t, s.PutAgent(c, nil), steward.EINVALID, "PutAgent(nil)")
	bad := &steward.Agent{ID: uid(3), PackageStatuses: &steward.PackageStatuses{Packages: map[string]*steward.PackageStatus{
		"p": {Name: "p", DownloadPercent: math.NaN()},
	}}}
	wantCode(t, s.PutAgent(c, bad), steward.EINVALID, "PutAgent(NaN percent)")
	_, err := s.Agent(c, uid(3))
	wantCode(t, err, steward.ENOTFOUND, "Agent after rejected PutAgent")
}

func testTouchAgents(t *testing.T, s steward.Store) {
	c := ctx(t)
	for i := byte(1); i <= 3; i++ {
		must(t, s.PutAgent(c, &steward.Agent{ID: uid(i), Online: true, LastSeen: ts(0, 0)}), "PutAgent")
	}
	must(t, s.TouchAgents(c, nil), "TouchAgents(empty)")
	must(t, s.TouchAgents(c, map[steward.InstanceUID]steward.Seen{
		uid(1):  {At: ts(50, 123456), SequenceNum: 5},
		uid(2):  {At: ts(60, 1), SequenceNum: math.MaxUint64},
		uid(77): {At: ts(70, 0)}, // unknown: ignored
	}), "TouchAgents")
	for id, want := range map[steward.InstanceUID]steward.Seen{uid(1): {At: ts(50, 123456), SequenceNum: 5}, uid(2): {At: ts(60, 1), SequenceNum: math.MaxUint64}, uid(3): {At: ts(0, 0)}} {
		a, err := s.Agent(c, id)
		must(t, err, "Agent")
		if !a.LastSeen.Equal(want.At) || a.SequenceNum != want.SequenceNum {
			t.Fatalf("agent %s LastSeen %v seq %d, want %v", id, a.LastSeen, a.SequenceNum, want)
		}
	}
	_, err := s.Agent(c, uid(77))
	wantCode(t, err, steward.ENOTFOUND, "TouchAgents must not create agents")
	// Last seen never goes back, and its sequence number stays with it,
	// also when a whole agent is written with an older time.
	must(t, s.TouchAgents(c, map[steward.InstanceUID]steward.Seen{uid(1): {At: ts(10, 0), SequenceNum: 2}}), "TouchAgents earlier")
	a, err := s.Agent(c, uid(1))
	must(t, err, "Agent")
	if !a.LastSeen.Equal(ts(50, 123456)) || a.SequenceNum != 5 {
		t.Fatalf("LastSeen went back to %v (seq %d)", a.LastSeen, a.SequenceNum)
	}
	a.LastSeen, a.SequenceNum = ts(40, 0), 4
	must(t, s.PutAgent(c, a), "PutAgent older")
	if a, err := s.Agent(c, uid(1)); err != nil || !a.LastSeen.Equal(ts(50, 123456)) || a.SequenceNum != 5 {
		t.Fatalf("after an older PutAgent: LastSeen %v seq %d (%v)", a.LastSeen, a.SequenceNum, err)
	}
	// A large batch in one call.
	seen := make(map[steward.InstanceUID]steward.Seen)
	for i := 0; i < 500; i++ {
		id := steward.NewInstanceUID()
		must(t, s.PutAgent(c, &steward.Agent{ID: id}), "PutAgent")
		seen[id] = steward.Seen{At: ts(int64(i), int64(i)), SequenceNum: uint64(i)}
	}
	must(t, s.TouchAgents(c, seen), "TouchAgents batch")
	list, total, err := s.Agents(c, steward.AgentFilter{})
	must(t, err, "Agents")
	if total != 503 {
		t.Fatalf("total %d, want 503", total)
	}
	for _, a := range list {
		if want, ok := seen[a.ID]; ok && (!a.LastSeen.Equal(want.At) || a.SequenceNum != want.SequenceNum) {
			t.Fatalf("agent %s LastSeen %v, want %v", a.ID, a.LastSeen, want)
		}
	}
}

func testMarkOffline(t *testing.T, s steward.Store) {
	c := ctx(t)
	put := func(n byte, replica string, online bool) {
		must(t, s.PutAgent(c, &steward.Agent{ID: uid(n), Replica: replica, Online: online, DisconnectedAt: ts(1, 0)}), "PutAgent")
	}
	put(1, "r1", true)
	put(2, "r1", true)
	put(3, "r2", true)
	put(4, "r2", false)
	check := func(what string, want map[byte]bool, disc map[byte]time.Time) {
		t.Helper()
		for n, online := range want {
			a, err := s.Agent(c, uid(n))
			must(t, err, "Agent")
			if a.Online != online {
				t.Fatalf("%s: agent %d online=%v, want %v", what, n, a.Online, online)
			}
			if !a.DisconnectedAt.Equal(disc[n]) {
				t.Fatalf("%s: agent %d DisconnectedAt %v, want %v", what, n, a.DisconnectedAt, disc[n])
			}
		}
	}
	must(t, s.MarkOffline(c, "r1", ts(20, 5)), "MarkOffline(r1)")
	check("after r1", map[byte]bool{1: false, 2: false, 3: true, 4: false},
		map[byte]time.Time{1: ts(20, 5), 2: ts(20, 5), 3: ts(1, 0), 4: ts(1, 0)})
	must(t, s.MarkOffline(c, "nobody", ts(25, 0)), "MarkOffline(unknown replica)")
	must(t, s.MarkOffline(c, "", ts(30, 0)), "MarkOffline(all)")
	check("after all", map[byte]bool{1: false, 2: false, 3: false, 4: false},
		map[byte]time.Time{1: ts(20, 5), 2: ts(20, 5), 3: ts(30, 0), 4: ts(1, 0)})
	// The rest of the row is untouched.
	a, err := s.Agent(c, uid(3))
	must(t, err, "Agent")
	if a.Replica != "r2" {
		t.Fatalf("MarkOffline changed the replica to %q", a.Replica)
	}
}

func agentWith(n byte, service, host, version string, labels map[string]string, online bool, healthy *bool) *steward.Agent {
	a := &steward.Agent{ID: uid(n), Labels: labels, Online: online}
	a.Description = &steward.AgentDescription{
		IdentifyingAttributes: []steward.KeyValue{{Key: steward.AttrServiceName, Value: service}, {Key: steward.AttrServiceVersion, Value: version}},
		NonIdentifyingAttributes: []steward.KeyValue{
			{Key: steward.AttrHostName, Value: host},
			{Key: steward.AttrOSType, Value: "linux"},
			{Key: "env", Value: "from-attribute"},
			{Key: "cpus", Value: int64(n)},
		},
	}
	if healthy != nil {
		a.Health = &steward.ComponentHealth{Healthy: *healthy}
	}
	return a
}

func ids(list []*steward.Agent) []byte {
	out := []byte{}
	for _, a := range list {
		out = append(out, a.ID[0])
	}
	return out
}

func testAgentsFilter(t *testing.T, s steward.Store) {
	c := ctx(t)
	yes, no := true, false
	agents := []*steward.Agent{
		agentWith(1, "checkout", "host-a", "1.0.0", map[string]string{"env": "prod", "tier": "web"}, true, &yes),
		agentWith(2, "Checkout-Worker", "host-b", "1.1.0", map[string]string{"env": "staging"}, true, &no),
		agentWith(3, "cart", "HOST-C", "2.0.0-rc_1", map[string]string{"env": "prod"}, false, &yes),
		agentWith(4, "cart", "host-d", "2.0.0", nil, false, nil),
		agentWith(5, "payments%", "host-e", "3.0.0", map[string]string{"tier": "backend"}, true, nil),
		agentWith(6, "Ünïcode", "host-f", "1.0.0", map[string]string{"env": "dev"}, true, &yes),
	}
	// Insert out of order: results are ordered by id anyway.
	for _, i := range []int{3, 0, 5, 1, 4, 2} {
		must(t, s.PutAgent(c, agents[i]), "PutAgent")
	}
	b := func(v bool) *bool { return &v }
	cases := []struct {
		name string
		f    steward.AgentFilter
		want []byte
	}{
		{"all", steward.AgentFilter{}, []byte{1, 2, 3, 4, 5, 6}},
		{"label", steward.AgentFilter{Selector: "env=prod"}, []byte{1, 3}},
		{"label wins over attribute", steward.AgentFilter{Selector: "env=from-attribute"}, []byte{4, 5}},
		{"attribute", steward.AgentFilter{Selector: "service.name=cart"}, []byte{3, 4}},
		{"int attribute", steward.AgentFilter{Selector: "cpus in (2,5)"}, []byte{2, 5}},
		{"exists", steward.AgentFilter{Selector: "tier"}, []byte{1, 5}},
		{"not exists", steward.AgentFilter{Selector: "!tier,os.type=linux"}, []byte{2, 3, 4, 6}},
		{"notin", steward.AgentFilter{Selector: "env notin (prod,staging)"}, []byte{4, 5, 6}},
		{"instance uid", steward.AgentFilter{Selector: "instance.uid=" + uid(4).String()}, []byte{4}},
		{"no match", steward.AgentFilter{Selector: "env=nowhere"}, []byte{}},
		{"search service case-insensitive", steward.AgentFilter{Search: "CHECKOUT"}, []byte{1, 2}},
		{"search host", steward.AgentFilter{Search: "host-c"}, []byte{3}},
		{"search version", steward.AgentFilter{Search: "2.0.0"}, []byte{3, 4}},
		{"search id", steward.AgentFilter{Search: uid(5).String()[:8]}, []byte{5}},
		{"search id upper", steward.AgentFilter{Search: "5F"}, []byte{5}},
		{"search unicode case", steward.AgentFilter{Search: "üNÏ"}, []byte{6}},
		{"search percent is literal", steward.AgentFilter{Search: "%"}, []byte{5}},
		{"search underscore is literal", steward.AgentFilter{Search: "_"}, []byte{3}},
		{"search no match", steward.AgentFilter{Search: "zzz"}, []byte{}},
		{"search does not span fields", steward.AgentFilter{Search: "checkouthost"}, []byte{}},
		{"online", steward.AgentFilter{Online: b(true)}, []byte{1, 2, 5, 6}},
		{"offline", steward.AgentFilter{Online: b(false)}, []byte{3, 4}},
		{"healthy", steward.AgentFilter{Healthy: b(true)}, []byte{1, 3, 6}},
		{"unhealthy or unknown", steward.AgentFilter{Healthy: b(false)}, []byte{2, 4, 5}},
		{"combined", steward.AgentFilter{Selector: "env=prod", Online: b(true), Healthy: b(true), Search: "check"}, []byte{1}},
		{"selector and search", steward.AgentFilter{Selector: "os.type=linux", Search: "cart"}, []byte{3, 4}},
	}
	for _, tc := range cases {
		list, total, err := s.Agents(c, tc.f)
		must(t, err, tc.name)
		if got := ids(list); !bytes.Equal(got, tc.want) || total != len(tc.want) {
			t.Errorf("%s: got %v (total %d), want %v", tc.name, got, total, tc.want)
		}
	}
	_, _, err := s.Agents(c, steward.AgentFilter{Selector: "env in (prod"})
	wantCode(t, err, steward.EINVALID, "Agents(bad selector)")
}

func testAgentsPaging(t *testing.T, s steward.Store) {
	c := ctx(t)
	for id := byte(10); id >= 1; id-- {
		env := "even"
		if id%2 == 1 {
			env = "odd"
		}
		must(t, s.PutAgent(c, agentWith(id, "svc", "h", "v", map[string]string{"env": env}, true, nil)), "PutAgent")
	}
	cases := []struct {
		f     steward.AgentFilter
		want  []byte
		total int
	}{
		{steward.AgentFilter{Limit: 3}, []byte{1, 2, 3}, 10},
		{steward.AgentFilter{Offset: 3, Limit: 3}, []byte{4, 5, 6}, 10},
		{steward.AgentFilter{Offset: 8}, []byte{9, 10}, 10},
		{steward.AgentFilter{Offset: 8, Limit: 5}, []byte{9, 10}, 10},
		{steward.AgentFilter{Offset: 10}, []byte{}, 10},
		{steward.AgentFilter{Offset: 50, Limit: 1}, []byte{}, 10},
		{steward.AgentFilter{Selector: "env=odd", Limit: 2}, []byte{1, 3}, 5},
		{steward.AgentFilter{Selector: "env=odd", Offset: 2, Limit: 2}, []byte{5, 7}, 5},
		{steward.AgentFilter{Selector: "env=odd", Offset: 4}, []byte{9}, 5},
		{steward.AgentFilter{Selector: "env=odd", Offset: 6}, []byte{}, 5},
		{steward.AgentFilter{Search: "svc", Offset: 1, Limit: 1}, []byte{2}, 10},
	}
	for _, tc := range cases {
		list, total, err := s.Agents(c, tc.f)
		must(t, err, fmt.Sprintf("%+v", tc.f))
		if got := ids(list); !bytes.Equal(got, tc.want) || total != tc.total {
			t.Errorf("%+v: got %v total %d, want %v total %d", tc.f, got, total, tc.want, tc.total)
		}
	}
	_, _, err := s.Agents(c, steward.AgentFilter{Limit: -1})
	wantCode(t, err, steward.EINVALID, "Agents(limit -1)")
	_, _, err = s.Agents(c, steward.AgentFilter{Offset: -1})
	wantCode(t, err, steward.EINVALID, "Agents(offset -1)")
}

func testDeleteAgent(t *testing.T, s steward.Store) {
	c := ctx(t)
	must(t, s.PutAgent(c, &steward.Agent{ID: uid(1)}), "PutAgent")
	must(t, s.PutAgent(c, &steward.Agent{ID: uid(2)}), "PutAgent")
	must(t, s.AppendEvents(c,
		&steward.Event{Type: steward.EventAgentConnected, AgentID: uid(1), Time: ts(1, 0)},
		&steward.Event{Type: steward.EventAgentConnected, AgentID: uid(2), Time: ts(2, 0)},
		&steward.Event{Type: steward.EventAgentUpdated, AgentID: uid(1), Time: ts(3, 0)},
	), "AppendEvents")
	must(t, s.DeleteAgent(c, uid(1)), "DeleteAgent")
	_, err := s.Agent(c, uid(1))
	wantCode(t, err, steward.ENOTFOUND, "Agent after delete")
	wantCode(t, s.DeleteAgent(c, uid(1)), steward.ENOTFOUND, "DeleteAgent twice")
	wantCode(t, s.DeleteAgent(c, uid(42)), steward.ENOTFOUND, "DeleteAgent(unknown)")
	id1 := uid(1)
	ev, err := s.Events(c, steward.EventFilter{AgentID: &id1})
	must(t, err, "Events")
	if len(ev) != 0 {
		t.Fatalf("deleted agent still has %d events", len(ev))
	}
	ev, err = s.Events(c, steward.EventFilter{})
	must(t, err, "Events")
	if len(ev) != 1 || ev[0].AgentID != uid(2) {
		t.Fatalf("other agents' events: %+v", ev)
	}
	if _, err := s.Agent(c, uid(2)); err != nil {
		t.Fatalf("other agent: %v", err)
	}
}

func files(body string) steward.ConfigMap {
	return steward.ConfigMap{"": {Body: []byte(body), ContentType: "text/yaml"}}
}

func testConfigVersions(t *testing.T, s steward.Store) {
	c := ctx(t)
	in := &steward.Config{Name: "base", Files: files("a: 1\n"), Comment: "first", Author: "alice"}
	v1, err := s.PutConfig(c, in)
	must(t, err, "PutConfig v1")
	if v1.Version != 1 || !bytes.Equal(v1.Hash, in.Files.Hash()) || v1.CreatedAt.IsZero() || v1.Comment != "first" || v1.Author != "alice" {
		t.Fatalf("v1 = %+v", v1)
	}
	if in.Version != 0 || in.Hash != nil {
		t.Fatalf("PutConfig modified its argument: %+v", in)
	}
	// Identical content: the same version comes back, nothing new stored.
	same, err := s.PutConfig(c, &steward.Config{Name: "base", Files: files("a: 1\n"), Comment: "again"})
	must(t, err, "PutConfig same")
	if same.Version != 1 || same.Comment != "first" || !same.CreatedAt.Equal(v1.CreatedAt) {
		t.Fatalf("identical content gave %+v, want version 1 as stored", same)
	}
	bin := steward.ConfigMap{
		"collector.yaml": {Body: []byte("b: 2\n"), ContentType: "text/yaml"},
		"blob.bin":       {Body: []byte{0, 1, 2, 0xff, 0xfe, 'x'}},
	}
	v2, err := s.PutConfig(c, &steward.Config{Name: "base", Files: bin, Comment: "second"})
	must(t, err, "PutConfig v2")
	if v2.Version != 2 {
		t.Fatalf("v2.Version = %d", v2.Version)
	}
	// Going back to v1's content is a new version: only the latest counts.
	v3, err := s.PutConfig(c, &steward.Config{Name: "base", Files: files("a: 1\n")})
	must(t, err, "PutConfig v3")
	if v3.Version != 3 || !bytes.Equal(v3.Hash, v1.Hash) {
		t.Fatalf("v3 = %+v", v3)
	}
	_, err = s.PutConfig(c, &steward.Config{Name: "other", Files: files("o: 1\n")})
	must(t, err, "PutConfig other")

	got, err := s.Config(c, "base", 2)
	must(t, err, "Config(base, 2)")
	if len(got.Files) != 2 || !bytes.Equal(got.Files["blob.bin"].Body, bin["blob.bin"].Body) ||
		!bytes.Equal(got.Files["collector.yaml"].Body, bin["collector.yaml"].Body) ||
		got.Files["collector.yaml"].ContentType != "text/yaml" || !bytes.Equal(got.Files.Hash(), v2.Hash) ||
		!bytes.Equal(got.Hash, v2.Hash) || got.Comment != "second" || !got.CreatedAt.Equal(v2.CreatedAt) {
		t.Fatalf("Config(base, 2) = %+v, want %+v", got, v2)
	}
	latest, err := s.Config(c, "base", 0)
	must(t, err, "Config(base, 0)")
	if latest.Version != 3 {
		t.Fatalf("latest version %d, want 3", latest.Version)
	}
	_, err = s.Config(c, "base", 4)
	wantCode(t, err, steward.ENOTFOUND, "Config(base, 4)")
	_, err = s.Config(c, "missing", 0)
	wantCode(t, err, steward.ENOTFOUND, "Config(missing, 0)")

	hist, err := s.ConfigHistory(c, "base")
	must(t, err, "ConfigHistory")
	var vs []int
	for _, h := range hist {
		vs = append(vs, h.Version)
	}
	if !reflect.DeepEqual(vs, []int{3, 2, 1}) {
		t.Fatalf("history versions %v, want [3 2 1]", vs)
	}
	_, err = s.ConfigHistory(c, "missing")
	wantCode(t, err, steward.ENOTFOUND, "ConfigHistory(missing)")

	all, err := s.Configs(c)
	must(t, err, "Configs")
	if len(all) != 2 || all[0].Name != "base" || all[0].Version != 3 || all[1].Name != "other" || all[1].Version != 1 {
		t.Fatalf("Configs = %+v", all)
	}
}

func testConfigInvalid(t *testing.T, s steward.Store) {
	c := ctx(t)
	for i, bad := range []*steward.Config{
		nil,
		{Name: "", Files: files("x")},
		{Name: "bad name", Files: files("x")},
		{Name: "empty"},
		{Name: "huge", Files: steward.ConfigMap{"f": {Body: make([]byte, steward.MaxConfigFileSize+1)}}},
	} {
		_, err := s.PutConfig(c, bad)
		wantCode(t, err, steward.EINVALID, fmt.Sprintf("PutConfig(invalid config %d)", i))
	}
	all, err := s.Configs(c)
	must(t, err, "Configs")
	if len(all) != 0 {
		t.Fatalf("invalid configs were stored: %+v", all)
	}
}

func testDeleteConfig(t *testing.T, s steward.Store) {
	c := ctx(t)
	for _, body := range []string{"a", "b"} {
		_, err := s.PutConfig(c, &steward.Config{Name: "base", Files: files(body)})
		must(t, err, "PutConfig")
	}
	_, err := s.PutAssignment(c, &steward.Assignment{Name: "all", ConfigName: "base", Selector: "env=prod"})
	must(t, err, "PutAssignment")
	wantCode(t, s.DeleteConfig(c, "base"), steward.ECONFLICT, "DeleteConfig while assigned")
	hist, err := s.ConfigHistory(c, "base")
	must(t, err, "ConfigHistory after refused delete")
	if len(hist) != 2 {
		t.Fatalf("refused delete lost versions: %d left", len(hist))
	}
	must(t, s.DeleteAssignment(c, "all"), "DeleteAssignment")
	must(t, s.DeleteConfig(c, "base"), "DeleteConfig")
	_, err = s.Config(c, "base", 0)
	wantCode(t, err, steward.ENOTFOUND, "Config after delete")
	_, err = s.ConfigHistory(c, "base")
	wantCode(t, err, steward.ENOTFOUND, "ConfigHistory after delete")
	wantCode(t, s.DeleteConfig(c, "base"), steward.ENOTFOUND, "DeleteConfig twice")
	// The name can be reused and starts again at version 1.
	v, err := s.PutConfig(c, &steward.Config{Name: "base", Files: files("c")})
	must(t, err, "PutConfig after delete")
	if v.Version != 1 {
		t.Fatalf("version after delete = %d, want 1", v.Version)
	}
}

func testAssignments(t *testing.T, s steward.Store) {
	c := ctx(t)
	_, err := s.PutAssignment(c, &steward.Assignment{Name: "a", ConfigName: "base", Selector: "env=prod"})
	wantCode(t, err, steward.ENOTFOUND, "PutAssignment(missing config)")
	_, err = s.PutConfig(c, &steward.Config{Name: "base", Files: files("x")})
	must(t, err, "PutConfig")
	_, err = s.PutAssignment(c, &steward.Assignment{Name: "a", ConfigName: "base", Version: 2, Selector: "env=prod"})
	wantCode(t, err, steward.ENOTFOUND, "PutAssignment(missing version)")
	_, err = s.PutAssignment(c, &steward.Assignment{Name: "a", ConfigName: "base"})
	wantCode(t, err, steward.EINVALID, "PutAssignment(no target)")
	_, err = s.PutAssignment(c, &steward.Assignment{Name: "a", ConfigName: "base", Selector: "env in ("})
	wantCode(t, err, steward.EINVALID, "PutAssignment(bad selector)")
	_, err = s.PutAssignment(c, nil)
	wantCode(t, err, steward.EINVALID, "PutAssignment(nil)")
	list, err := s.Assignments(c)
	must(t, err, "Assignments")
	if len(list) != 0 {
		t.Fatalf("rejected assignments were stored: %+v", list)
	}

	id := uid(7)
	b, err := s.PutAssignment(c, &steward.Assignment{Name: "b-one", ConfigName: "base", Version: 1, AgentID: &id, Priority: 5})
	must(t, err, "PutAssignment(agent)")
	a, err := s.PutAssignment(c, &steward.Assignment{Name: "a-all", ConfigName: "base", Selector: "env=prod", Priority: -2})
	must(t, err, "PutAssignment(selector)")
	if a.CreatedAt.IsZero() || a.UpdatedAt.IsZero() {
		t.Fatalf("timestamps not set: %+v", a)
	}
	got, err := s.Assignment(c, "b-one")
	must(t, err, "Assignment")
	if got.ConfigName != "base" || got.Version != 1 || got.AgentID == nil || *got.AgentID != id || got.Selector != "" || got.Priority != 5 {
		t.Fatalf("Assignment(b-one) = %+v", got)
	}
	if !got.CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("CreatedAt %v, PutAssignment returned %v", got.CreatedAt, b.CreatedAt)
	}
	// Replace keeps CreatedAt and switches target.
	r, err := s.PutAssignment(c, &steward.Assignment{Name: "b-one", ConfigName: "base", Selector: "tier=web"})
	must(t, err, "PutAssignment(replace)")
	got, err = s.Assignment(c, "b-one")
	must(t, err, "Assignment")
	if got.AgentID != nil || got.Selector != "tier=web" || got.Version != 0 || got.Priority != 0 || !got.CreatedAt.Equal(b.CreatedAt) || !r.CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("replaced assignment = %+v (created %v)", got, b.CreatedAt)
	}
	if got.UpdatedAt.Before(got.CreatedAt) || !got.UpdatedAt.Equal(r.UpdatedAt) {
		t.Fatalf("UpdatedAt %v (returned %v), CreatedAt %v", got.UpdatedAt, r.UpdatedAt, got.CreatedAt)
	}
	list, err = s.Assignments(c)
	must(t, err, "Assignments")
	if len(list) != 2 || list[0].Name != "a-all" || list[1].Name != "b-one" || list[0].Priority != -2 {
		t.Fatalf("Assignments = %+v", list)
	}
	must(t, s.DeleteAssignment(c, "a-all"), "DeleteAssignment")
	wantCode(t, s.DeleteAssignment(c, "a-all"), steward.ENOTFOUND, "DeleteAssignment twice")
	_, err = s.Assignment(c, "a-all")
	wantCode(t, err, steward.ENOTFOUND, "Assignment(deleted)")
}

func testEvents(t *testing.T, s steward.Store) {
	c := ctx(t)
	a1, a2 := uid(1), uid(2)
	evs := []*steward.Event{
		{Type: steward.EventAgentConnected, AgentID: a1, Message: "connected", Time: ts(1, 10)},
		{Type: steward.EventAgentHealth, AgentID: a1, Message: "unhealthy", Time: ts(2, 20), Details: map[string]any{"healthy": false, "error": "x"}},
		{Type: steward.EventAgentConnected, AgentID: a2, Message: "connected", Time: ts(3, 30)},
		{Type: steward.EventConfigChanged, Message: "config base v2", Time: ts(4, 40), Details: map[string]any{"name": "base", "version": 2}},
		{Type: steward.EventAgentDisconnected, AgentID: a1, Message: "gone", Time: ts(5, 50)},
	}
	must(t, s.AppendEvents(c, evs...), "AppendEvents")
	must(t, s.AppendEvents(c), "AppendEvents(none)")
	seen := map[int64]bool{}
	for _, e := range evs {
		if e.ID == 0 || seen[e.ID] {
			t.Fatalf("event IDs not set or not distinct: %+v", evs)
		}
		seen[e.ID] = true
	}
	typesOf := func(list []*steward.Event) []string {
		out := []string{}
		for _, e := range list {
			out = append(out, e.Type+"@"+e.Time.Format("05.000000"))
		}
		return out
	}
	all, err := s.Events(c, steward.EventFilter{})
	must(t, err, "Events")
	if len(all) != 5 || all[0].ID != evs[4].ID || all[4].ID != evs[0].ID {
		t.Fatalf("Events not newest first: %v", typesOf(all))
	}
	got := all[3]
	if got.Type != steward.EventAgentHealth || got.AgentID != a1 || got.Message != "unhealthy" || !got.Time.Equal(ts(2, 20)) {
		t.Fatalf("event read back = %+v", got)
	}
	sameJSON(t, got.Details, map[string]any{"healthy": false, "error": "x"}, "details")
	if all[1].AgentID != (steward.InstanceUID{}) {
		t.Fatalf("fleet event has agent id %s", all[1].AgentID)
	}

	list, err := s.Events(c, steward.EventFilter{AgentID: &a1})
	must(t, err, "Events(agent)")
	if len(list) != 3 || list[0].Type != steward.EventAgentDisconnected {
		t.Fatalf("Events(agent) = %v", typesOf(list))
	}
	list, err = s.Events(c, steward.EventFilter{Types: []string{steward.EventAgentConnected, steward.EventConfigChanged}})
	must(t, err, "Events(types)")
	if len(list) != 3 || list[0].Type != steward.EventConfigChanged {
		t.Fatalf("Events(types) = %v", typesOf(list))
	}
	list, err = s.Events(c, steward.EventFilter{Since: ts(3, 30)})
	must(t, err, "Events(since)")
	if len(list) != 3 {
		t.Fatalf("Events(since) = %v", typesOf(list))
	}
	list, err = s.Events(c, steward.EventFilter{AgentID: &a1, Types: []string{steward.EventAgentConnected, steward.EventAgentHealth}, Limit: 1})
	must(t, err, "Events(combined)")
	if len(list) != 1 || list[0].Type != steward.EventAgentHealth {
		t.Fatalf("Events(combined) = %v", typesOf(list))
	}

	// An event without a time gets one; an event without a type is refused
	// and nothing of its batch is stored.
	now := &steward.Event{Type: steward.EventCommandSent, AgentID: a2}
	must(t, s.AppendEvents(c, now), "AppendEvents(no time)")
	if now.Time.IsZero() {
		t.Fatalf("AppendEvents did not set Time")
	}
	err = s.AppendEvents(c, &steward.Event{Type: "x", Time: ts(9, 0)}, &steward.Event{Time: ts(9, 0)})
	wantCode(t, err, steward.EINVALID, "AppendEvents(no type)")
	err = s.AppendEvents(c, &steward.Event{Type: "x", Details: map[string]any{"f": math.NaN()}})
	wantCode(t, err, steward.EINVALID, "AppendEvents(NaN details)")
	list, err = s.Events(c, steward.EventFilter{Types: []string{"x"}})
	must(t, err, "Events(x)")
	if len(list) != 0 {
		t.Fatalf("refused batch was partly stored: %v", typesOf(list))
	}

	n, err := s.PruneEvents(c, ts(3, 30))
	must(t, err, "PruneEvents")
	if n != 2 {
		t.Fatalf("PruneEvents removed %d, want 2", n)
	}
	list, err = s.Events(c, steward.EventFilter{Since: ts(0, 0)})
	must(t, err, "Events")
	if len(list) != 4 || list[len(list)-1].ID != evs[2].ID {
		t.Fatalf("after prune: %v", typesOf(list))
	}
	n, err = s.PruneEvents(c, ts(3, 30))
	must(t, err, "PruneEvents again")
	if n != 0 {
		t.Fatalf("second prune removed %d", n)
	}
}

func testConcurrentPutConfig(t *testing.T, s steward.Store) {
	c := ctx(t)
	const writers = 12
	var wg sync.WaitGroup
	versions := make([]int, writers)
	errs := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err := s.PutConfig(c, &steward.Config{Name: "race", Files: files(fmt.Sprintf("writer: %d\n", i))})
			errs[i] = err
			if err == nil {
				versions[i] = v.Version
			}
		}(i)
	}
	// Identical content from many writers at once: one version between them.
	same := make([]int, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err := s.PutConfig(c, &steward.Config{Name: "same", Files: files("same\n")})
			if err != nil {
				errs[i] = err
				return
			}
			same[i] = v.Version
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v, want 1..%d", versions, writers)
		}
	}
	for _, v := range same {
		if v != 1 {
			t.Fatalf("identical concurrent puts gave versions %v, want all 1", same)
		}
	}
	hist, err := s.ConfigHistory(c, "race")
	must(t, err, "ConfigHistory")
	if len(hist) != writers {
		t.Fatalf("history has %d versions, want %d", len(hist), writers)
	}
}

func testConcurrentPutAgent(t *testing.T, s steward.Store) {
	c := ctx(t)
	const workers, per = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*per*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				a := agentWith(byte(w*per+i), "svc", "h", "v", map[string]string{"worker": fmt.Sprint(w)}, true, nil)
				if err := s.PutAgent(c, a); err != nil {
					errs <- err
					return
				}
				if err := s.TouchAgents(c, map[steward.InstanceUID]steward.Seen{a.ID: {At: ts(int64(i), 0)}}); err != nil {
					errs <- err
					return
				}
				if i%5 != 0 {
					continue
				}
				if _, _, err := s.Agents(c, steward.AgentFilter{Selector: "worker=" + fmt.Sprint(w)}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent writer: %v", err)
	}
	_, total, err := s.Agents(c, steward.AgentFilter{})
	must(t, err, "Agents")
	if total != workers*per {
		t.Fatalf("%d agents stored, want %d", total, workers*per)
	}
	for w := 0; w < workers; w++ {
		_, n, err := s.Agents(c, steward.AgentFilter{Selector: fmt.Sprintf("worker=%d", w)})
		must(t, err, "Agents(worker)")
		if n != per {
			t.Fatalf("worker %d: %d agents, want %d", w, n, per)
		}
	}
}

func testUnavailable(t *testing.T, s steward.Store) {
	c := ctx(t)
	must(t, s.PutAgent(c, &steward.Agent{ID: uid(1)}), "PutAgent")
	cancelled, cancel := context.WithCancel(c)
	cancel()
	_, err := s.Agent(cancelled, uid(1))
	wantCode(t, err, steward.EUNAVAILABLE, "Agent(cancelled context)")
	wantCode(t, s.PutAgent(cancelled, &steward.Agent{ID: uid(2)}), steward.EUNAVAILABLE, "PutAgent(cancelled context)")
	_, err = s.Agent(c, uid(2))
	wantCode(t, err, steward.ENOTFOUND, "agent written with a cancelled context")

	must(t, s.Close(), "Close")
	_, err = s.Agent(c, uid(1))
	wantCode(t, err, steward.EUNAVAILABLE, "Agent after Close")
	wantCode(t, s.PutAgent(c, &steward.Agent{ID: uid(3)}), steward.EUNAVAILABLE, "PutAgent after Close")
	_, err = s.PutConfig(c, &steward.Config{Name: "x", Files: files("x")})
	wantCode(t, err, steward.EUNAVAILABLE, "PutConfig after Close")
	_, _, err = s.Agents(c, steward.AgentFilter{})
	wantCode(t, err, steward.EUNAVAILABLE, "Agents after Close")
}
