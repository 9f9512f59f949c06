package record

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// decodeStateBoth decodes a state document with the fast path and with
// encoding/json; when the fast path takes it, both must read the same.
func decodeStateBoth(t testing.TB, b []byte) (fast bool) {
	t.Helper()
	return agrees(t, b, decodeStateFast)
}

// randomState returns an agent with a random state, as reports and sync
// derivations leave it; plain leaves out what needs escaping in JSON.
func randomState(r *rand.Rand, plain bool) *steward.Agent {
	strs := []string{"", "StatusOK", "ünïcødé ✓", "websocket", "a\"quote", "line\nbreak", "<html>&", string([]byte{0xff, 'x'})}
	str := func() string {
		if plain {
			return strs[r.IntN(4)]
		}
		return strs[r.IntN(len(strs))]
	}
	tm := func() time.Time {
		switch r.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(r.Int64N(2e9), 0).UTC()
		case 2:
			return time.Unix(r.Int64N(2e9), r.Int64N(1e9)).In(time.FixedZone("", 3600*(r.IntN(25)-12)))
		}
		return time.Unix(r.Int64N(2e9), r.Int64N(1e9)).UTC()
	}
	hash := func() steward.Hash {
		if r.IntN(4) == 0 {
			return nil
		}
		h := make(steward.Hash, 32)
		for i := range h {
			h[i] = byte(r.IntN(256))
		}
		return h
	}
	known := func() steward.KnownConfig {
		k := steward.KnownConfig{Hash: hash()}
		if r.IntN(5) > 0 {
			k.Configs = steward.ConfigRefs{}
		}
		for range r.IntN(3) {
			k.Configs = append(k.Configs, steward.ConfigRef{Assignment: str(), Config: str(), Version: r.IntN(2000) - 10})
		}
		return k
	}
	var health func(depth int) *steward.ComponentHealth
	health = func(depth int) *steward.ComponentHealth {
		h := &steward.ComponentHealth{Healthy: r.IntN(2) == 0, StartTime: tm(), StatusTime: tm(), Status: str(), LastError: str()}
		if depth < 3 && r.IntN(3) == 0 {
			h.Components = map[string]*steward.ComponentHealth{}
			for range r.IntN(4) {
				h.Components[str()+fmt.Sprint(r.IntN(5))] = health(depth + 1)
			}
		}
		return h
	}
	a := &steward.Agent{ID: steward.NewInstanceUID(), SequenceNum: r.Uint64() >> r.IntN(64),
		Transport: str(), RemoteAddr: str(), ConnectedAt: tm()}
	if r.IntN(4) > 0 {
		a.Health = health(0)
	}
	if r.IntN(4) > 0 {
		a.RemoteConfigStatus = &steward.RemoteConfigStatus{LastRemoteConfigHash: hash(),
			Status: []steward.RemoteConfigState{"APPLIED", "APPLYING", "FAILED", "UNSET"}[r.IntN(4)], ErrorMessage: str()}
	}
	if r.IntN(4) > 0 {
		sy := &steward.AgentSync{State: steward.SyncState(str()), RunningHash: hash(), FailedHash: hash(), Error: str(), Since: tm()}
		if r.IntN(3) > 0 {
			k := known()
			sy.Desired = &k
		}
		if r.IntN(3) > 0 {
			k := known()
			sy.Running = &k
		}
		if r.IntN(4) > 0 {
			sy.History = []steward.KnownConfig{}
			for range r.IntN(steward.SyncHistoryLen + 1) {
				sy.History = append(sy.History, known())
			}
		}
		a.Sync = sy
	}
	return a
}

// The fast path reads what encoding/json reads from every state document
// EncodeState writes, and takes those without escaped strings.
func TestDecodeStateFastAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	taken := 0
	for range 5000 {
		b, err := EncodeState(randomState(r, r.IntN(3) > 0))
		if err != nil {
			t.Fatal(err)
		}
		if decodeStateBoth(t, b) {
			taken++
		}
		// PostgreSQL's jsonb, and anyone's, may space the tokens.
		spaced := strings.NewReplacer(`":`, `": `, `,"`, `, "`, `{`, `{ `, `]`, ` ]`).Replace(string(b))
		decodeStateBoth(t, []byte(spaced))
	}
	if taken < 2000 {
		t.Fatalf("the fast path took %d of 5,000 documents", taken)
	}
	// What the benchmark's agents store takes it.
	if !decodeStateBoth(t, benchState(t)) {
		t.Fatal("the fast path refused a collector's state")
	}
}

// State documents the fast path must leave to encoding/json (or refuse
// with it).
func TestDecodeStateFastLeavesTheRest(t *testing.T) {
	deep := `{"healthy":true}`
	for range maxHealthDepth + 1 {
		deep = `{"components":{"c":` + deep + `}}`
	}
	for _, doc := range []string{
		``, `{`, `{}x`, `null`, `[]`, `{"health":null}`, `{"sync":null}`, `{"remote_config_status":null}`,
		`{"sequence_num":1,"sequence_num":2}`, `{"unknown":1}`, `{"transport":"a\"b"}`, `{"transport":"\u00e9"}`,
		"{\"transport\":\"\xff\"}", `{"sequence_num":-1}`, `{"sequence_num":01}`, `{"sequence_num":1.0}`,
		`{"sequence_num":18446744073709551616}`, `{"connected_at":"yesterday"}`, `{"connected_at":null}`,
		`{"health":{"healthy":1}}`, `{"health":{"healthy":truex}}`, `{"health":{"healthy":tru}}`,
		`{"health":{"components":{"a":{},"a":{"healthy":true}}}}`, `{"health":{"components":null}}`,
		`{"health":` + deep + `}`,
		`{"remote_config_status":{"last_remote_config_hash":"zz"}}`, `{"remote_config_status":{"status":1}}`,
		`{"sync":{"desired":null}}`, `{"sync":{"history":null}}`, `{"sync":{"history":[null]}}`,
		`{"sync":{"desired":{"configs":[{"version":- 1}]}}}`, `{"sync":{"desired":{"configs":[{"version":1e3}]}}}`,
		`{"sync":{"desired":{"configs":[{"version":9223372036854775808}]}}}`,
		`{"sync":{"desired":{"configs":[{"version":-9223372036854775809}]}}}`,
		`{"sync":{"desired":{"hash":"aa","hash":"bb"}}}`, `{"sync":{"state":"in_sync","extra":true}}`,
	} {
		var st stateDoc
		if decodeStateFast([]byte(doc), &st) {
			t.Errorf("fast path took %q", doc)
		}
		decodeStateBoth(t, []byte(doc))
	}
	// The bounds of an int are read as encoding/json reads them.
	for _, doc := range []string{
		`{"sync":{"desired":{"configs":[{"version":9223372036854775807}]}}}`,
		`{"sync":{"desired":{"configs":[{"version":-9223372036854775808}]}}}`,
		`{"sync":{"desired":{"configs":[{"version":-0}]}}}`,
		`{"health":{"components":{}},"sync":{"history":[],"desired":{"configs":[]}}}`,
	} {
		if !decodeStateBoth(t, []byte(doc)) {
			t.Errorf("fast path refused %q", doc)
		}
	}
}

func FuzzDecodeStateFast(f *testing.F) {
	f.Add(benchState(f))
	f.Add([]byte(`{"health":{"healthy":true,"components":{"a":{"status":"x"}}},"sync":{"desired":{"configs":[{"version":-3}]}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, doc []byte) { decodeStateBoth(t, doc) })
}

// benchState is the state document of benchDoc's agent, as stored now.
func benchState(t testing.TB) []byte {
	b, err := EncodeState(benchAgent(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkDecodeState(b *testing.B) {
	doc := benchState(b)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var st stateDoc
			if !decodeStateFast(doc, &st) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var st stateDoc
			if err := json.Unmarshal(doc, &st); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// encodeBoth encodes st with the fast path and with json.Marshal; when the
// fast path takes it, both must write the same bytes.
func encodeBoth(t testing.TB, st *stateDoc) (fast bool) {
	t.Helper()
	got, fast := encodeStateFast(nil, st)
	want, err := json.Marshal(st)
	if fast && err != nil {
		t.Fatalf("fast path wrote %s, json.Marshal refused it: %v", got, err)
	}
	if fast && string(got) != string(want) {
		t.Fatalf("fast path wrote\n%s\njson.Marshal\n%s", got, want)
	}
	return fast
}

func stateOf(a *steward.Agent) *stateDoc {
	return &stateDoc{Health: a.Health, RemoteConfigStatus: a.RemoteConfigStatus, SequenceNum: a.SequenceNum,
		Transport: a.Transport, RemoteAddr: a.RemoteAddr, ConnectedAt: a.ConnectedAt, Sync: a.Sync}
}

// The fast encoder writes what json.Marshal writes, for every state whose
// strings need no escape.
func TestEncodeStateFastIsJSONMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 17))
	taken := 0
	for range 5000 {
		if encodeBoth(t, stateOf(randomState(r, r.IntN(3) > 0))) {
			taken++
		}
	}
	if taken < 2000 {
		t.Fatalf("the fast path took %d of 5,000 states", taken)
	}
	a := benchAgent(t)
	if !encodeBoth(t, stateOf(a)) {
		t.Fatal("the fast path refused a collector's state")
	}
	// Written as encoding/json writes them: a nil component, nil configs,
	// empty components and history (left out), zones.
	for _, st := range []*stateDoc{
		{Health: &steward.ComponentHealth{Components: map[string]*steward.ComponentHealth{"b": nil, "a": {Healthy: true}}}},
		{Health: &steward.ComponentHealth{Components: map[string]*steward.ComponentHealth{}}},
		{Sync: &steward.AgentSync{Desired: &steward.KnownConfig{}, History: []steward.KnownConfig{}}},
		{Sync: &steward.AgentSync{Desired: &steward.KnownConfig{Configs: steward.ConfigRefs{{Version: -1 << 63}}}}},
		{ConnectedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", -(23*3600+59*60)))},
		{ConnectedAt: time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC)},
		{RemoteConfigStatus: &steward.RemoteConfigStatus{}},
		{Transport: "ünï ✓", RemoteAddr: "\x7f"},
	} {
		if !encodeBoth(t, st) {
			t.Errorf("fast path refused %+v", st)
		}
	}
	// Left to json.Marshal (which refuses the times).
	for _, st := range []*stateDoc{
		{ConnectedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ConnectedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ConnectedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))},
		{Transport: "a<b"}, {RemoteAddr: "\xff"}, {Health: &steward.ComponentHealth{LastError: "a\u2028b"}}, {Transport: "tab\t"},
		{Sync: &steward.AgentSync{History: []steward.KnownConfig{{Configs: steward.ConfigRefs{{Config: "a&b"}}}}}},
	} {
		if encodeBoth(t, st) {
			t.Errorf("fast path took %+v", st)
		}
	}
}

// Each state EncodeState returns is its own, though written in a recycled
// buffer.
func TestEncodeStateReturnsItsOwnBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var docs [][]byte
	var want []string
	for range 50 {
		b, err := EncodeState(randomState(r, true))
		if err != nil {
			t.Fatal(err)
		}
		docs, want = append(docs, b), append(want, string(b))
	}
	for i := range docs {
		if string(docs[i]) != want[i] {
			t.Fatalf("state %d changed after later encodings: %s", i, docs[i])
		}
	}
}
