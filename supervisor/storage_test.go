package supervisor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward"
)

func TestStorage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := OpenStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	uid, err := s.InstanceUID()
	if err != nil || uid.IsZero() || uid[6]>>4 != 7 {
		t.Fatalf("uid = %s, %v", uid, err)
	}
	s2, _ := OpenStorage(dir)
	if again, _ := s2.InstanceUID(); again != uid {
		t.Fatalf("uid not persisted: %s then %s", uid, again)
	}
	n := steward.NewInstanceUID()
	if err := s.SetInstanceUID(n); err != nil {
		t.Fatal(err)
	}
	if got, _ := s2.InstanceUID(); got != n {
		t.Fatalf("SetInstanceUID not persisted")
	}

	st, err := s.LoadState()
	if err != nil || st.Good != nil || st.Remote != nil {
		t.Fatalf("fresh state = %+v, %v", st, err)
	}
	files := steward.ConfigMap{"a": {Body: []byte("x: 1\n"), ContentType: "text/yaml"}}
	st.Good = &GoodConfig{RemoteHash: files.Hash(), Remote: files, Effective: []byte("x: 1\n")}
	st.Failed = &FailedConfig{Hash: []byte{1, 2}, Error: "boom"}
	if err := s.SaveState(st); err != nil {
		t.Fatal(err)
	}
	got, err := s2.LoadState()
	if err != nil || string(got.Good.Remote["a"].Body) != "x: 1\n" || string(got.Good.RemoteHash) != string(files.Hash()) || got.Failed.Error != "boom" {
		t.Fatalf("state round trip = %+v, %v", got, err)
	}

	os.WriteFile(s.Path("instance_uid"), []byte("garbage"), 0o600)
	if _, err := s.InstanceUID(); err == nil {
		t.Fatal("corrupt instance uid accepted")
	}
	os.WriteFile(s.Path("state.json"), []byte("{"), 0o600)
	if _, err := s.LoadState(); err == nil {
		t.Fatal("corrupt state accepted")
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("storage dir mode = %v", fi.Mode().Perm())
	}
}
