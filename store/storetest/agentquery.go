package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// queryFleet stores five agents that differ in every field the agent
// listing filters and sorts on:
//
//	id  type      version  host    online  health     sync      last seen  extra attribute
//	1   checkout  1.0.0    host-a  yes     healthy    in_sync   30         host.arch=arm64
//	2   cart      2.0.0    host-b  yes     unhealthy  failed    10         host.arch=amd64
//	3   cart      1.0.0    host-c  yes     (none)     failed    never
//	4   checkout  2.0.0    Host-d  no      healthy    offline   20
//	5   Zeta      10.0     host-e  yes     healthy    pending   20         gpu=true (bool)
//
// agentWith also gives each agent cpus=<id> (int) and env=from-attribute;
// agent 2 reports remote config status FAILED, the others none (UNSET).
func queryFleet(t *testing.T, s steward.Store) {
	c := ctx(t)
	yes, no := true, false
	type row struct {
		n                  byte
		typ, version, host string
		online             bool
		healthy            *bool
		sync               steward.SyncState
		seen               int64
		extraKey           string
		extra              any
	}
	rows := []row{
		{1, "checkout", "1.0.0", "host-a", true, &yes, steward.SyncInSync, 30, "host.arch", "arm64"},
		{2, "cart", "2.0.0", "host-b", true, &no, steward.SyncFailed, 10, "host.arch", "amd64"},
		{3, "cart", "1.0.0", "host-c", true, nil, steward.SyncFailed, 0, "", nil},
		{4, "checkout", "2.0.0", "Host-d", false, &yes, steward.SyncInSync, 20, "", nil},
		{5, "Zeta", "10.0", "host-e", true, &yes, "", 20, "gpu", true},
	}
	for _, r := range rows {
		a := agentWith(r.n, r.typ, r.host, r.version, nil, r.online, r.healthy)
		if r.sync != "" {
			a.Sync = &steward.AgentSync{State: r.sync}
		}
		if r.seen > 0 {
			a.LastSeen = ts(r.seen, 0)
		}
		if r.extraKey != "" {
			a.Description.NonIdentifyingAttributes = append(a.Description.NonIdentifyingAttributes,
				steward.KeyValue{Key: r.extraKey, Value: r.extra})
		}
		if r.n == 2 {
			a.RemoteConfigStatus = &steward.RemoteConfigStatus{Status: steward.RemoteConfigFailed, ErrorMessage: "bad"}
		}
		must(t, s.PutAgent(c, a), "PutAgent")
	}
}

func testAgentsQuery(t *testing.T, s steward.Store) {
	c := ctx(t)
	queryFleet(t, s)
	attrs := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		f    steward.AgentFilter
		want []byte
	}{
		{"health healthy", steward.AgentFilter{Health: steward.HealthHealthy}, []byte{1, 5}},
		{"health unhealthy", steward.AgentFilter{Health: steward.HealthUnhealthy}, []byte{2}},
		{"health unknown: none reported or offline", steward.AgentFilter{Health: steward.HealthUnknown}, []byte{3, 4}},
		{"type", steward.AgentFilter{Type: "cart"}, []byte{2, 3}},
		{"type is exact", steward.AgentFilter{Type: "car"}, []byte{}},
		{"version", steward.AgentFilter{Version: "2.0.0"}, []byte{2, 4}},
		{"type and version", steward.AgentFilter{Type: "cart", Version: "2.0.0"}, []byte{2}},
		{"string attribute", steward.AgentFilter{Attributes: attrs("host.arch", "arm64")}, []byte{1}},
		{"int attribute", steward.AgentFilter{Attributes: attrs("cpus", "3")}, []byte{3}},
		{"bool attribute", steward.AgentFilter{Attributes: attrs("gpu", "true")}, []byte{5}},
		{"identifying attribute", steward.AgentFilter{Attributes: attrs("service.name", "checkout")}, []byte{1, 4}},
		{"attribute every agent has", steward.AgentFilter{Attributes: attrs("env", "from-attribute")}, []byte{1, 2, 3, 4, 5}},
		{"two attributes", steward.AgentFilter{Attributes: attrs("cpus", "2", "host.arch", "amd64")}, []byte{2}},
		{"two attributes, one differs", steward.AgentFilter{Attributes: attrs("cpus", "2", "host.arch", "arm64")}, []byte{}},
		{"attribute value is exact", steward.AgentFilter{Attributes: attrs("host.arch", "arm")}, []byte{}},
		{"attribute nobody has", steward.AgentFilter{Attributes: attrs("rack", "7")}, []byte{}},
		{"attribute value holding a separator", steward.AgentFilter{Attributes: attrs("host.arch", "arm64\x1f")}, []byte{}},
		{"attribute key spanning two attributes", steward.AgentFilter{Attributes: attrs("cpus", "1\x1fos.type")}, []byte{}},
		{"any of two sync states", steward.AgentFilter{SyncAny: []steward.SyncState{steward.SyncPending, steward.SyncOffline}}, []byte{4, 5}},
		{"sync state and any of two", steward.AgentFilter{Sync: steward.SyncFailed, SyncAny: []steward.SyncState{steward.SyncFailed, steward.SyncOffline}}, []byte{2, 3}},
		{"config status", steward.AgentFilter{ConfigStatus: steward.RemoteConfigFailed}, []byte{2}},
		{"config status unset", steward.AgentFilter{ConfigStatus: steward.RemoteConfigUnset}, []byte{1, 3, 4, 5}},
		{"sync and health", steward.AgentFilter{Sync: steward.SyncFailed, Health: steward.HealthUnhealthy}, []byte{2}},
		{"sync, sorted by last seen", steward.AgentFilter{Sync: steward.SyncFailed, Sort: steward.SortLastSeen, Desc: true}, []byte{2, 3}},
		{"attribute and selector", steward.AgentFilter{Attributes: attrs("env", "from-attribute"), Selector: "service.name=cart"}, []byte{2, 3}},
	}
	for _, tc := range cases {
		list, total, err := s.Agents(c, tc.f)
		must(t, err, tc.name)
		if got := ids(list); !bytes.Equal(got, tc.want) || total != len(tc.want) {
			t.Errorf("%s: got %v (total %d), want %v", tc.name, got, total, tc.want)
		}
	}
	for _, f := range []steward.AgentFilter{
		{Health: "sick"}, {Sort: "colour"}, {ConfigStatus: "failed"}, {SyncAny: []steward.SyncState{"failed", "lost"}}, {Sort: "-type"}, {Attributes: attrs("", "x")}, {Sync: "lost"},
	} {
		_, _, err := s.Agents(c, f)
		wantCode(t, err, steward.EINVALID, fmt.Sprintf("Agents(%+v)", f))
	}
	must(t, s.MarkOffline(c, "", ts(100, 0)), "MarkOffline")
	if list, n, err := s.Agents(c, steward.AgentFilter{Health: steward.HealthUnknown}); err != nil || n != 5 {
		t.Errorf("health=unknown after MarkOffline: %v (%d), %v; want all 5", ids(list), n, err)
	}
}

func testAgentsSortPaging(t *testing.T, s steward.Store) {
	c := ctx(t)
	queryFleet(t, s)
	cases := []struct {
		sort      steward.AgentSort
		asc, desc []byte
	}{
		{"", []byte{1, 2, 3, 4, 5}, []byte{5, 4, 3, 2, 1}},
		{steward.SortID, []byte{1, 2, 3, 4, 5}, []byte{5, 4, 3, 2, 1}},
		{steward.SortSync, []byte{2, 3, 1, 4, 5}, []byte{5, 4, 1, 3, 2}},
		{steward.SortHealth, []byte{1, 5, 2, 3, 4}, []byte{4, 3, 2, 5, 1}},
		{steward.SortOnline, []byte{4, 1, 2, 3, 5}, []byte{5, 3, 2, 1, 4}},
		{steward.SortType, []byte{5, 2, 3, 1, 4}, []byte{4, 1, 3, 2, 5}},
		{steward.SortVersion, []byte{1, 3, 5, 2, 4}, []byte{4, 2, 5, 3, 1}},
		{steward.SortHost, []byte{4, 1, 2, 3, 5}, []byte{5, 3, 2, 1, 4}},
		{steward.SortLastSeen, []byte{3, 2, 4, 5, 1}, []byte{1, 5, 4, 2, 3}},
	}
	for _, tc := range cases {
		for _, desc := range []bool{false, true} {
			want := tc.asc
			if desc {
				want = tc.desc
			}
			for _, selector := range []string{"", "os.type=linux"} { // SQL paging, and paging in Go
				f := steward.AgentFilter{Sort: tc.sort, Desc: desc, Selector: selector}
				list, total, err := s.Agents(c, f)
				must(t, err, "Agents")
				if got := ids(list); !bytes.Equal(got, want) || total != 5 {
					t.Errorf("sort %q desc=%v selector %q: got %v (total %d), want %v", tc.sort, desc, selector, got, total, want)
				}
				// Pages of two, put together, are the whole listing.
				var paged []byte
				for off := 0; off < 6; off += 2 {
					f.Offset, f.Limit = off, 2
					page, total, err := s.Agents(c, f)
					must(t, err, "Agents page")
					if total != 5 {
						t.Errorf("sort %q page at %d: total %d, want 5", tc.sort, off, total)
					}
					paged = append(paged, ids(page)...)
				}
				if !bytes.Equal(paged, want) {
					t.Errorf("sort %q desc=%v selector %q: pages give %v, want %v", tc.sort, desc, selector, paged, want)
				}
			}
		}
	}
}

// testAgentsWith checks that AgentsWith(f, live) returns exactly what
// Agents(f) returns once live is written (the control plane lists its
// unwritten changes that way): matches, order, total and page, for random
// fleets, changes and filters, with SQL paging and paging in Go (a
// selector).
func testAgentsWith(t *testing.T, s steward.Store) {
	c := ctx(t)
	r := rand.New(rand.NewPCG(11, 7))
	fleet := map[byte]*steward.Agent{}
	for round := range 6 {
		// Change a random part of the fleet, and add agents never stored.
		var live []*steward.Agent
		for n := byte(1); n <= 50; n++ {
			old, stored := fleet[n]
			if (stored && r.IntN(3) == 0) || (!stored && r.IntN(4) == 0) {
				live = append(live, randomAgent(r, n, old))
			}
		}
		filters := make([]steward.AgentFilter, 150)
		type result struct {
			ids   []steward.InstanceUID
			total int
		}
		got := make([]result, len(filters))
		for i := range filters {
			filters[i] = randomFilter(r)
			list, total, err := s.AgentsWith(c, filters[i], live)
			must(t, err, "AgentsWith")
			got[i] = result{agentIDs(list), total}
		}
		must(t, s.PutAgents(c, live), "PutAgents")
		for _, a := range live {
			fleet[a.ID[0]] = a
		}
		for i, f := range filters {
			list, total, err := s.Agents(c, f)
			must(t, err, "Agents")
			if want := agentIDs(list); !slices.Equal(got[i].ids, want) || got[i].total != total {
				t.Fatalf("round %d, %d live: AgentsWith(%+v) = %v (total %d); once written, Agents gives %v (total %d)",
					round, len(live), f, got[i].ids, got[i].total, want, total)
			}
		}
	}
	if len(fleet) < 30 {
		t.Fatalf("only %d agents stored: the rounds change too little", len(fleet))
	}
}

// testAgentsWithWhileWritten lists live agents while another goroutine
// stores and deletes them, as the group commit does: the count must see
// the stored rows in one state (a count read in two steps, with a write
// between them, gave 0 or 6 for 3 live agents).
func testAgentsWithWhileWritten(t *testing.T, s steward.Store) {
	c := ctx(t)
	live := []*steward.Agent{{ID: uid(1)}, {ID: uid(2)}, {ID: uid(3)}}
	// Copies, as the group commit writes: PutAgents writes times back.
	stored := []*steward.Agent{{ID: uid(1)}, {ID: uid(2)}, {ID: uid(3)}}
	done := make(chan struct{})
	var writeErr error
	go func() {
		defer close(done)
		for i := 0; i < 300 && writeErr == nil; i++ {
			if writeErr = s.PutAgents(c, stored); writeErr != nil {
				return
			}
			for _, a := range stored {
				if writeErr = s.DeleteAgent(c, a.ID); writeErr != nil {
					return
				}
			}
		}
	}()
	for listed := 0; ; listed++ {
		select {
		case <-done:
			must(t, writeErr, "write")
			if listed < 50 {
				t.Fatalf("only %d listings beside the writes", listed)
			}
			return
		default:
		}
		list, total, err := s.AgentsWith(c, steward.AgentFilter{}, live)
		must(t, err, "AgentsWith")
		if total != 3 || len(list) != 3 {
			t.Fatalf("listing %d: total %d, %d agents; want 3 (the live agents, stored or not)", listed, total, len(list))
		}
	}
}

func agentIDs(list []*steward.Agent) []steward.InstanceUID {
	out := []steward.InstanceUID{}
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

// randomAgent returns agent n with random values in every field the
// listing filters and sorts on, drawn from small sets so that filters
// match and sort keys tie; last seen never goes back from old's (a write
// keeps the later one), at sub-microsecond steps (PostgreSQL keeps
// microseconds).
func randomAgent(r *rand.Rand, n byte, old *steward.Agent) *steward.Agent {
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	var healthy *bool
	if h := r.IntN(3); h < 2 {
		healthy = new(h == 0)
	}
	var labels map[string]string
	if r.IntN(3) > 0 {
		labels = map[string]string{"env": pick("prod", "dev"), "tier": pick("web", "db")}
	}
	a := agentWith(n, pick("cart", "checkout", "Zeta", ""), pick("host-a", "Host-b", "host-c"), pick("1.0.0", "2.0.0", "10.0"), labels, r.IntN(4) > 0, healthy)
	if r.IntN(2) == 0 {
		a.Description.NonIdentifyingAttributes = append(a.Description.NonIdentifyingAttributes, steward.KeyValue{Key: "host.arch", Value: pick("arm64", "amd64")})
	}
	if st := r.IntN(5); st < 4 {
		a.Sync = &steward.AgentSync{State: []steward.SyncState{steward.SyncInSync, steward.SyncFailed, steward.SyncRolledBack, steward.SyncApplying}[st]}
	}
	if r.IntN(3) == 0 {
		a.RemoteConfigStatus = &steward.RemoteConfigStatus{Status: []steward.RemoteConfigState{steward.RemoteConfigApplied, steward.RemoteConfigFailed}[r.IntN(2)]}
	}
	a.Replica = pick("r1", "r2", "")
	if r.IntN(6) > 0 {
		a.LastSeen = ts(int64(r.IntN(3)), 0).Add(time.Duration(r.IntN(2000)))
		if old != nil && a.LastSeen.Before(old.LastSeen) {
			a.LastSeen = old.LastSeen
		}
	}
	return a
}

// randomFilter returns a filter with a random subset of conditions, sort
// and page.
func randomFilter(r *rand.Rand) steward.AgentFilter {
	var f steward.AgentFilter
	maybe := func() bool { return r.IntN(5) == 0 }
	if maybe() {
		f.Online = new(r.IntN(2) == 0)
	}
	if maybe() {
		f.Healthy = new(r.IntN(2) == 0)
	}
	if maybe() {
		f.Sync = []steward.SyncState{steward.SyncInSync, steward.SyncFailed, steward.SyncPending, steward.SyncOffline}[r.IntN(4)]
	}
	if maybe() {
		f.SyncAny = []steward.SyncState{steward.SyncFailed, steward.SyncRolledBack, steward.SyncOffline}[:1+r.IntN(3)]
	}
	if maybe() {
		f.ConfigStatus = steward.RemoteConfigStates[r.IntN(len(steward.RemoteConfigStates))]
	}
	if maybe() {
		f.Health = steward.HealthStates[r.IntN(len(steward.HealthStates))]
	}
	if maybe() {
		f.Type = []string{"cart", "checkout", ""}[r.IntN(3)]
	}
	if maybe() {
		f.Version = []string{"1.0.0", "10.0"}[r.IntN(2)]
	}
	if maybe() {
		f.Attributes = map[string]string{"host.arch": []string{"arm64", "amd64"}[r.IntN(2)]}
	}
	if maybe() {
		f.Search = []string{"host-b", "CHECK", "0.0", "zeta"}[r.IntN(4)]
	}
	if maybe() {
		f.NotHeldBy = []string{"r1", "r2"}[r.IntN(2)]
	}
	if r.IntN(4) == 0 {
		f.Selector = []string{"env=prod", "tier!=web", "env in (prod,dev)", "!env"}[r.IntN(4)]
	}
	f.Sort = steward.AgentSorts[r.IntN(len(steward.AgentSorts))]
	f.Desc = r.IntN(2) == 0
	if r.IntN(2) == 0 {
		f.Offset, f.Limit = r.IntN(30), r.IntN(12)
	}
	return f
}

// testAgentsRead: a listing that reads less of each agent (AgentFilter.
// Read) reads what the agent reported, its labels and columns as a full
// listing does, the remote config status only with ReadConfigStatus, and
// nothing else of its state; a paged one and one by selector too.
func testAgentsRead(t *testing.T, s steward.Store) {
	c := ctx(t)
	a := fullAgent()
	must(t, s.PutAgent(c, a), "PutAgent")
	full, err := s.Agent(c, a.ID)
	must(t, err, "Agent")
	for _, read := range []steward.AgentRead{steward.ReadReport, steward.ReadConfigStatus} {
		for _, f := range []steward.AgentFilter{{Read: read}, {Read: read, Limit: 10}, {Read: read, Selector: "env=prod"}} {
			list, n, err := s.Agents(c, f)
			must(t, err, "Agents")
			if n != 1 || len(list) != 1 {
				t.Fatalf("%+v: %d agents (total %d), want 1", f, len(list), n)
			}
			got := list[0]
			if got.Health != nil || got.Sync != nil || got.RemoteAddr != "" || (read == steward.ReadReport) != (got.RemoteConfigStatus == nil) {
				t.Fatalf("%+v: state read: health %v, sync %v, address %q, config status %v", f, got.Health, got.Sync, got.RemoteAddr, got.RemoteConfigStatus)
			}
			want := *full
			want.Health, want.Sync = nil, nil
			if read == steward.ReadReport {
				want.RemoteConfigStatus = nil
			}
			want.Transport, want.RemoteAddr, want.ConnectedAt = "", "", time.Time{}
			got.SequenceNum, want.SequenceNum = 0, 0 // in the state and in agent_seen
			if !reflect.DeepEqual(got, &want) {
				t.Fatalf("%+v: read %+v\nwant %+v", f, got, &want)
			}
		}
	}
}

// testAgentsNotHeldBy: AgentFilter.NotHeldBy leaves out exactly the agents
// online on that replica, stored or live (AgentsWith), and keeps its
// offline agents, those of other replicas and those of none.
func testAgentsNotHeldBy(t *testing.T, s steward.Store) {
	c := ctx(t)
	agent := func(n byte, online bool, replica string) *steward.Agent {
		a := agentWith(n, "cart", "host", "1.0.0", map[string]string{"env": "prod"}, online, nil)
		a.Replica = replica
		return a
	}
	stored := []*steward.Agent{agent(1, true, "r1"), agent(2, true, "r2"), agent(3, false, "r1"), agent(4, false, ""), agent(5, true, "r1"), agent(6, true, "")}
	must(t, s.PutAgents(c, stored), "PutAgents")
	for _, f := range []steward.AgentFilter{{NotHeldBy: "r1"}, {NotHeldBy: "r1", Selector: "env=prod"}, {NotHeldBy: "r1", Limit: 10}} {
		list, n, err := s.Agents(c, f)
		must(t, err, "Agents")
		if got := ids(list); !bytes.Equal(got, []byte{2, 3, 4, 6}) || n != 4 {
			t.Errorf("Agents(%+v) = %v (total %d), want [2 3 4 6]", f, got, n)
		}
	}
	// Agent 5 leaves r1, agent 2 moves to it, agent 7 joins it: as written.
	live := []*steward.Agent{agent(5, false, "r1"), agent(2, true, "r1"), agent(7, true, "r1")}
	list, n, err := s.AgentsWith(c, steward.AgentFilter{NotHeldBy: "r1"}, live)
	must(t, err, "AgentsWith")
	if got := ids(list); !bytes.Equal(got, []byte{3, 4, 5, 6}) || n != 4 {
		t.Errorf("AgentsWith = %v (total %d), want [3 4 5 6]", got, n)
	}
}
