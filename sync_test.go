package steward_test

import (
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

func TestDeriveSync(t *testing.T) {
	v1 := &steward.KnownConfig{Hash: steward.Hash{1}, Configs: steward.ConfigRefs{{Assignment: "all", Config: "base", Version: 1}}}
	v2 := &steward.KnownConfig{Hash: steward.Hash{2}, Configs: steward.ConfigRefs{{Assignment: "all", Config: "base", Version: 2}}}
	rcs := func(h byte, st steward.RemoteConfigState) *steward.RemoteConfigStatus {
		return &steward.RemoteConfigStatus{LastRemoteConfigHash: steward.Hash{h}, Status: st, ErrorMessage: map[bool]string{true: "boom"}[st == steward.RemoteConfigFailed]}
	}
	type step struct {
		desired *steward.KnownConfig
		rcs     *steward.RemoteConfigStatus
		online  bool
		want    steward.SyncState
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"nothing assigned, nothing run", []step{{nil, nil, true, steward.SyncInSync}}},
		{"assigned, not yet acknowledged", []step{{v1, nil, true, steward.SyncPending}}},
		{"applying then applied", []step{{v1, rcs(1, steward.RemoteConfigApplying), true, steward.SyncApplying}, {v1, rcs(1, steward.RemoteConfigApplied), true, steward.SyncInSync}}},
		{"new version pending while the old one runs", []step{{v1, rcs(1, steward.RemoteConfigApplied), true, steward.SyncInSync}, {v2, rcs(1, steward.RemoteConfigApplied), true, steward.SyncPending}}},
		{"failed without rollback", []step{{v1, rcs(1, steward.RemoteConfigApplied), true, steward.SyncInSync}, {v2, rcs(2, steward.RemoteConfigFailed), true, steward.SyncFailed}}},
		{"rolled back agent shows rolled_back", []step{
			{v1, rcs(1, steward.RemoteConfigApplied), true, steward.SyncInSync},
			{v2, rcs(2, steward.RemoteConfigApplying), true, steward.SyncApplying},
			{v2, rcs(2, steward.RemoteConfigFailed), true, steward.SyncFailed},
			{v2, rcs(1, steward.RemoteConfigApplied), true, steward.SyncRolledBack},
			{v2, rcs(1, steward.RemoteConfigApplied), false, steward.SyncOffline},
			{v2, rcs(1, steward.RemoteConfigApplied), true, steward.SyncRolledBack},
		}},
		{"a retry that succeeds is in sync", []step{{v2, rcs(2, steward.RemoteConfigFailed), true, steward.SyncFailed}, {v2, rcs(2, steward.RemoteConfigApplied), true, steward.SyncInSync}}},
		{"a new desired version forgets the failure", []step{{v1, rcs(1, steward.RemoteConfigFailed), true, steward.SyncFailed}, {v2, rcs(1, steward.RemoteConfigFailed), true, steward.SyncPending}}},
		{"a hash Steward never offered is drifted", []step{{v1, rcs(9, steward.RemoteConfigApplied), true, steward.SyncDrifted}}},
		{"drifted with nothing assigned", []step{{nil, rcs(9, steward.RemoteConfigApplied), true, steward.SyncDrifted}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *steward.AgentSync
			for i, st := range tc.steps {
				s = steward.DeriveSync(s, st.desired, st.rcs, st.online, time.Unix(int64(i), 0))
				if s.State != st.want {
					t.Fatalf("step %d: state %s, want %s (%+v)", i, s.State, st.want, s)
				}
			}
		})
	}
}

func TestDeriveSyncResolvesRunningAndKeepsSince(t *testing.T) {
	v1 := &steward.KnownConfig{Hash: steward.Hash{1}, Configs: steward.ConfigRefs{{Assignment: "a", Config: "base", Version: 1}}}
	v2 := &steward.KnownConfig{Hash: steward.Hash{2}, Configs: steward.ConfigRefs{{Assignment: "a", Config: "base", Version: 2}}}
	applied := &steward.RemoteConfigStatus{LastRemoteConfigHash: steward.Hash{1}, Status: steward.RemoteConfigApplied}
	s := steward.DeriveSync(nil, v1, applied, true, time.Unix(1, 0))
	s = steward.DeriveSync(s, v1, applied, true, time.Unix(2, 0))
	if !s.Since.Equal(time.Unix(1, 0)) {
		t.Fatalf("since moved without a state change: %v", s.Since)
	}
	s = steward.DeriveSync(s, v2, applied, true, time.Unix(3, 0))
	if s.Running == nil || s.Running.Configs.String() != "base@1" || s.Desired.Configs.String() != "base@2" || !s.FromSteward() {
		t.Fatalf("running %+v desired %+v", s.Running, s.Desired)
	}
	for i := 0; i < 2*steward.SyncHistoryLen; i++ {
		s = steward.DeriveSync(s, &steward.KnownConfig{Hash: steward.Hash{byte(10 + i)}}, applied, true, time.Unix(4, 0))
	}
	if len(s.History) != steward.SyncHistoryLen {
		t.Fatalf("history holds %d, want %d", len(s.History), steward.SyncHistoryLen)
	}
	if _, err := steward.ParseSyncState("rolled_back"); err != nil {
		t.Fatal(err)
	}
	if _, err := steward.ParseSyncState("APPLIED"); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("ParseSyncState(APPLIED): %v", err)
	}
}

func TestHashJSONIsHexAndReadsBase64(t *testing.T) {
	h := steward.Hash{0xde, 0xad, 0xbe, 0xef}
	b, _ := h.MarshalJSON()
	if string(b) != `"deadbeef"` {
		t.Fatalf("marshal: %s", b)
	}
	var back steward.Hash
	if err := back.UnmarshalJSON([]byte(`"3q2+7w=="`)); err != nil || back.String() != "deadbeef" {
		t.Fatalf("base64: %v %v", back, err)
	}
	if err := back.UnmarshalJSON([]byte(`"zz!"`)); steward.ErrorCode(err) != steward.EINVALID {
		t.Fatalf("garbage: %v", err)
	}
	// Escaped forms read as the string they stand for.
	for in, want := range map[string]string{`"\u0064eadbeef"`: "deadbeef", `"3q2\/7w=="`: "deadbfef", `"3q2+7w\u003d="`: "deadbeef"} {
		back = nil
		if err := back.UnmarshalJSON([]byte(in)); err != nil || back.String() != want {
			t.Fatalf("%s: %v %v, want %s", in, back, err, want)
		}
	}
	for _, in := range []string{`"dead`, `"dé"`, `"dead\"`, `123`, `"dead"beef"`} {
		if err := back.UnmarshalJSON([]byte(in)); steward.ErrorCode(err) != steward.EINVALID {
			t.Fatalf("%s: %v", in, err)
		}
	}
}
