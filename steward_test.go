package steward_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func TestSelector(t *testing.T) {
	labels := map[string]string{"env": "prod", "region": "eu", "service.name": "otelcol", "k8s.io/app": "gw"}
	cases := []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"env=prod", true},
		{"env==prod", true},
		{"env=dev", false},
		{"env!=dev", true},
		{"env!=prod", false},
		{"missing!=x", true},
		{"env in (dev, prod)", true},
		{"env in (dev,staging)", false},
		{"env notin (dev)", true},
		{"missing notin (dev)", true},
		{"region notin (eu,us)", false},
		{"env", true},
		{"missing", false},
		{"!missing", true},
		{"!env", false},
		{"env=prod, region=eu", true},
		{"env=prod,region=us", false},
		{"service.name=otelcol,k8s.io/app=gw", true},
		{"  env = prod ,  !canary  ", true},
	}
	for _, c := range cases {
		sel, err := steward.ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", c.sel, err)
		}
		if got := sel.Matches(labels); got != c.want {
			t.Errorf("%q matches = %v, want %v", c.sel, got, c.want)
		}
		// The canonical form parses to the same selector.
		again, err := steward.ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("round trip of %q via %q: %v %v", c.sel, sel.String(), again, err)
		}
	}
	for _, bad := range []string{"=x", "env=prod,", "env in prod", "env in (a,b", "env ~ x", "!", "env=prod;x"} {
		if _, err := steward.ParseSelector(bad); steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("ParseSelector(%q) = %v, want EINVALID", bad, err)
		} else if !strings.Contains(err.Error(), "offset") {
			t.Errorf("error for %q does not say where: %v", bad, err)
		}
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"env=prod", "a in (b,c),!d", "x notin (y)", "k!=v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := steward.ParseSelector(s)
		if err != nil {
			return
		}
		// Whatever parses renders to a canonical form that parses to
		// the same canonical form.
		again, err := steward.ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel.String(), s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("canonical form not stable: %q -> %q", sel.String(), again.String())
		}
		sel.Matches(map[string]string{"a": "b"})
	})
}

func TestInstanceUID(t *testing.T) {
	u := steward.NewInstanceUID()
	if u[6]>>4 != 7 || u[8]>>6 != 2 {
		t.Fatalf("not a UUID v7: %s", u)
	}
	s := u.String()
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		t.Fatalf("canonical form %q", s)
	}
	for _, in := range []string{s, strings.ReplaceAll(s, "-", ""), strings.ToUpper(s)} {
		p, err := steward.ParseInstanceUID(in)
		if err != nil || p != u {
			t.Fatalf("ParseInstanceUID(%q) = %s, %v", in, p, err)
		}
	}
	for _, bad := range []string{"", "xyz", s[:35], s + "0", "0123456789abcdefghij0123456789ab"} {
		if _, err := steward.ParseInstanceUID(bad); steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("ParseInstanceUID(%q) = %v, want EINVALID", bad, err)
		}
	}
	if _, err := steward.InstanceUIDFromBytes(make([]byte, 15)); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("15 bytes: %v", err)
	}
	b, _ := json.Marshal(u)
	var back steward.InstanceUID
	if err := json.Unmarshal(b, &back); err != nil || back != u {
		t.Fatalf("JSON round trip: %s %v", b, err)
	}
	// UUID v7 sorts by creation time.
	if later := steward.NewInstanceUID(); later.String() < s && later.String()[:13] != s[:13] {
		t.Fatalf("later uid %s sorts before %s", later, s)
	}
}

func TestConfigMapHash(t *testing.T) {
	a := steward.ConfigMap{"a": {Body: []byte("x"), ContentType: "text/yaml"}, "b": {Body: []byte("y")}}
	b := steward.ConfigMap{"b": {Body: []byte("y")}, "a": {Body: []byte("x"), ContentType: "text/yaml"}}
	if string(a.Hash()) != string(b.Hash()) {
		t.Fatal("hash depends on map order")
	}
	for name, other := range map[string]steward.ConfigMap{
		"body":         {"a": {Body: []byte("x2"), ContentType: "text/yaml"}, "b": {Body: []byte("y")}},
		"content type": {"a": {Body: []byte("x")}, "b": {Body: []byte("y")}},
		"file name":    {"a2": {Body: []byte("x"), ContentType: "text/yaml"}, "b": {Body: []byte("y")}},
		// Length-prefixing keeps ("ab","") apart from ("a","b").
		"boundaries": {"a": {Body: []byte(""), ContentType: "text/yamlx"}, "b": {Body: []byte("y")}},
	} {
		if string(other.Hash()) == string(a.Hash()) {
			t.Errorf("changing the %s does not change the hash", name)
		}
	}
	if (steward.ConfigMap{}).Hash() != nil {
		t.Fatal("empty map should hash to nil")
	}
}

func TestConfigFileJSON(t *testing.T) {
	for _, f := range []steward.ConfigFile{
		{Body: []byte("receivers:\n  otlp: {}\n"), ContentType: "text/yaml"},
		{Body: []byte{0xff, 0x00, 0x01}},
		{},
	} {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var back steward.ConfigFile
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if string(back.Body) != string(f.Body) || back.ContentType != f.ContentType {
			t.Fatalf("round trip %q -> %s -> %q", f.Body, b, back.Body)
		}
	}
	b, _ := json.Marshal(steward.ConfigFile{Body: []byte("a: 1\n")})
	if !strings.Contains(string(b), `"body":"a: 1\n"`) {
		t.Fatalf("text bodies should stay readable: %s", b)
	}
}

func TestAssignmentValidate(t *testing.T) {
	id := steward.NewInstanceUID()
	ok := []steward.Assignment{
		{Name: "a", ConfigName: "c", Selector: "env=prod"},
		{Name: "a.b_c-1", ConfigName: "c", AgentID: &id, Version: 3},
	}
	for _, a := range ok {
		if err := a.Validate(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	bad := []steward.Assignment{
		{Name: "", ConfigName: "c", Selector: "x"},
		{Name: "-a", ConfigName: "c", Selector: "x"},
		{Name: "a", ConfigName: "c"},
		{Name: "a", ConfigName: "c", Selector: "x", AgentID: &id},
		{Name: "a", ConfigName: "c", Selector: "x in ("},
		{Name: "a", ConfigName: "c", Selector: "x", Version: -1},
		{Name: "a", ConfigName: "has space", Selector: "x"},
	}
	for _, a := range bad {
		if err := a.Validate(); steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("%+v: %v, want EINVALID", a, err)
		}
	}
}

func TestRollout(t *testing.T) {
	r := steward.Rollout{Name: "r", Assignment: "a", ToVersion: 2,
		Stages: []steward.RolloutStage{{Selector: "ring=canary"}, {Percent: 30}, {Percent: 100}}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	// Percent stages take a stable share of uids.
	in30 := 0
	const n = 5000
	for i := 0; i < n; i++ {
		id := steward.NewInstanceUID()
		if r.Reached(id, steward.LabelMap(nil), 0) {
			t.Fatal("stage 0 is selector-only")
		}
		if r.Reached(id, steward.LabelMap(nil), 1) {
			in30++
			if !r.Reached(id, steward.LabelMap(nil), 2) {
				t.Fatal("stages are cumulative")
			}
		}
		if !r.Reached(id, steward.LabelMap(nil), 2) {
			t.Fatal("100% reaches everyone")
		}
	}
	if frac := float64(in30) / n; frac < 0.25 || frac > 0.35 {
		t.Fatalf("30%% stage reached %.1f%% of agents", frac*100)
	}
	if !r.Reached(steward.NewInstanceUID(), steward.LabelMap{"ring": "canary"}, 0) {
		t.Fatal("selector stage")
	}
}

// bucketsChild, set in the environment, makes TestRolloutBucketsAgreeAcrossProcesses
// print the buckets of the fixed uids instead of running the test.
const bucketsChild = "STEWARD_TEST_BUCKETS_CHILD"

// fixedUIDs are uids made from their index, the same in every process.
func fixedUIDs() []steward.InstanceUID {
	ids := make([]steward.InstanceUID, 500)
	for i := range ids {
		ids[i][0], ids[i][1], ids[i][15] = byte(i>>8), byte(i), 0x5a
	}
	return ids
}

func bucketsOf(ids []steward.InstanceUID) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%d ", steward.Bucket(id))
	}
	return b.String()
}

// Every replica and every restart must place an agent in the same stage of
// a rollout: an agent's bucket depends on its uid alone, not on the process
// computing it (a per-process seeded hash would pass any check made inside
// one process). Another process computes the buckets of the same uids; a
// rollout read back from its stored (JSON) form and a uid parsed from its
// text must reach the same agents.
func TestRolloutBucketsAgreeAcrossProcesses(t *testing.T) {
	ids := fixedUIDs()
	if os.Getenv(bucketsChild) == "1" {
		fmt.Print(bucketsOf(ids))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRolloutBucketsAgreeAcrossProcesses$")
	cmd.Env = append(os.Environ(), bucketsChild+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child process: %v", err)
	}
	mine := bucketsOf(ids)
	if got, _, _ := strings.Cut(string(out), "PASS"); strings.TrimSpace(got) != strings.TrimSpace(mine) {
		t.Fatalf("another process puts the same uids in other buckets:\n%s\nhere:\n%s", got, mine)
	}
	if distinct := len(strings.Fields(mine)); distinct != len(ids) {
		t.Fatalf("%d buckets for %d uids", distinct, len(ids))
	}
	seen := map[int]bool{}
	for _, id := range ids {
		seen[steward.Bucket(id)] = true
	}
	if len(seen) < 90 {
		t.Fatalf("500 uids fall in only %d of 100 buckets", len(seen))
	}

	r := steward.Rollout{Name: "r", Assignment: "a", ToVersion: 2, Stages: []steward.RolloutStage{{Percent: 30}, {Percent: 70}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var stored steward.Rollout
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		parsed, err := steward.ParseInstanceUID(id.String())
		if err != nil {
			t.Fatal(err)
		}
		for stage := range r.Stages {
			if r.Reached(id, steward.LabelMap(nil), stage) != stored.Reached(parsed, steward.LabelMap(nil), stage) {
				t.Fatalf("uid %s, stage %d: the stored rollout disagrees", id, stage)
			}
		}
	}
	for _, bad := range []steward.Rollout{
		{Name: "r", Assignment: "a", ToVersion: 0, Stages: r.Stages},
		{Name: "r", Assignment: "a", ToVersion: 2},
		{Name: "r", Assignment: "a", ToVersion: 2, Stages: []steward.RolloutStage{{Percent: 50}, {Percent: 20}}},
		{Name: "r", Assignment: "a", ToVersion: 2, Stages: []steward.RolloutStage{{Percent: 50, Selector: "x"}}},
		{Name: "r", Assignment: "a", ToVersion: 2, Stages: []steward.RolloutStage{{Percent: 101}}},
		{Name: "r", Assignment: "a", ToVersion: 2, Stages: r.Stages, MaxFailureRatio: 1.5},
	} {
		if err := bad.Validate(); steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("%+v: %v, want EINVALID", bad, err)
		}
	}
}

func TestErrors(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", steward.Errorf(steward.ENOTFOUND, "agent %s not found", "x"))
	if steward.ErrorCode(err) != steward.ENOTFOUND || steward.ErrorMessage(err) != "agent x not found" {
		t.Fatalf("%q %q", steward.ErrorCode(err), steward.ErrorMessage(err))
	}
	plain := errors.New("disk on fire")
	if steward.ErrorCode(plain) != steward.EINTERNAL || steward.ErrorMessage(plain) != "internal error" {
		t.Fatal("internal errors must not leak their text")
	}
	if steward.ErrorCode(nil) != "" {
		t.Fatal("nil")
	}
}

func TestAgentLabelSet(t *testing.T) {
	a := &steward.Agent{ID: steward.NewInstanceUID(), Description: &steward.AgentDescription{
		IdentifyingAttributes:    []steward.KeyValue{{Key: "service.name", Value: "otelcol"}, {Key: "replicas", Value: int64(3)}},
		NonIdentifyingAttributes: []steward.KeyValue{{Key: "env", Value: "dev"}, {Key: "service.name", Value: "shadowed"}, {Key: "list", Value: []any{"a"}}, {Key: "on", Value: true}},
	}, Labels: map[string]string{"env": "prod"}}
	got := a.LabelSet()
	want := map[string]string{"service.name": "otelcol", "replicas": "3", "env": "prod", "on": "true", "instance.uid": a.ID.String()}
	if len(got) != len(want) {
		t.Fatalf("label set %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("label %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	b, _ := json.Marshal(a.Capabilities | steward.AgentAcceptsRemoteConfig | steward.AgentReportsHealth)
	if !strings.Contains(string(b), `"AcceptsRemoteConfig"`) || !strings.Contains(string(b), `"bits":2050`) {
		t.Fatalf("capabilities JSON %s", b)
	}
}

func TestCompactLabels(t *testing.T) {
	a := &steward.Agent{ID: steward.NewInstanceUID(), Description: &steward.AgentDescription{
		IdentifyingAttributes: []steward.KeyValue{{Key: "service.name", Value: "otelcol"}},
		NonIdentifyingAttributes: []steward.KeyValue{{Key: "env", Value: "prod"}, {Key: "host.name", Value: "h1"},
			{Key: "zone", Value: ""}},
	}, Labels: map[string]string{"ring": "canary"}}
	l := a.CompactLabels()
	want := a.LabelSet()
	if got := l.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Map() = %v, want %v", got, want)
	}
	for k, v := range want {
		if got, ok := l.Label(k); !ok || got != v {
			t.Fatalf("Label(%q) = %q, %v; want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"missing", "", "zzz", "aaa"} {
		if _, ok := l.Label(k); ok {
			t.Fatalf("Label(%q) found", k)
		}
	}
	// Selectors match compact labels exactly as they match the map.
	for _, s := range []string{"env=prod", "env!=prod", "ring in (canary,beta)", "!zone", "zone", "instance.uid=" + a.ID.String(), "service.name,host.name=h1"} {
		sel, err := steward.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		if sel.MatchLabels(l) != sel.Matches(want) {
			t.Fatalf("%q: compact %v, map %v", s, sel.MatchLabels(l), sel.Matches(want))
		}
	}
	if _, ok := (steward.Labels{}).Label("instance.uid"); ok {
		t.Fatal("zero Labels has an instance.uid")
	}
}

func TestCompactLabelsEdges(t *testing.T) {
	id := steward.NewInstanceUID()
	empty := steward.NewLabels(id, nil)
	if _, ok := empty.Label("a"); ok {
		t.Fatal("empty set has a label")
	}
	if v, ok := empty.Label("instance.uid"); !ok || v != id.String() {
		t.Fatal("instance.uid comes from the id")
	}
	l := steward.NewLabels(id, map[string]string{"a": "", "b\x00x": "dropped", "c": "x\x00y", "instance.uid": "ignored"})
	if v, ok := l.Label("a"); !ok || v != "" {
		t.Fatalf("empty value: %q %v", v, ok)
	}
	if _, ok := l.Label("b\x00x"); ok {
		t.Fatal("a key with NUL is not stored")
	}
	if v, _ := l.Label("c"); v != "xy" {
		t.Fatalf("NUL is dropped from values: %q", v)
	}
	if v, _ := l.Label("instance.uid"); v != id.String() {
		t.Fatal("instance.uid label is the id")
	}
	// Agents with the same keys share the interned key set.
	a := steward.NewLabels(steward.NewInstanceUID(), map[string]string{"env": "prod", "host.name": "h1"})
	b := steward.NewLabels(steward.NewInstanceUID(), map[string]string{"env": "dev", "host.name": "h2"})
	if va, _ := a.Label("host.name"); va != "h1" {
		t.Fatal(va)
	}
	if vb, _ := b.Label("env"); vb != "dev" {
		t.Fatal(vb)
	}
}

// A connected agent keeps its Labels for as long as it is connected, so
// NewLabels makes the values string once at its exact size (three
// allocations: the sorted keys, the key string to intern, the values). A
// growing Builder allocated once per doubling and kept up to twice the
// bytes.
func TestNewLabelsAllocations(t *testing.T) {
	labels := map[string]string{}
	for i := range 14 {
		labels[fmt.Sprintf("attribute.key.%d", i)] = fmt.Sprintf("a value of attribute %d", i)
	}
	id := steward.NewInstanceUID()
	steward.NewLabels(id, labels) // interns the key set
	allocs := testing.AllocsPerRun(100, func() { steward.NewLabels(id, labels) })
	if allocs > 3 {
		t.Errorf("NewLabels allocates %.0f times, want at most 3", allocs)
	}
}
