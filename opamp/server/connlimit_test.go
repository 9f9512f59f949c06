package server

import "testing"

// The default connection limit leaves max(256, 1/8) of the open-file
// limit to everything else (REST API, UI, database, package files).
func TestConnLimit(t *testing.T) {
	for _, tc := range []struct {
		files uint64
		want  int
	}{
		{1024, 768},    // a common default soft limit: 256 kept
		{4096, 3584},   // 512 kept
		{20000, 17500}, // this machine's hard limit: 2,500 kept
		{65536, 57344}, // 8,192 kept
		{300, 64},      // too small for a reserve: a token limit
		{0, 0},         // unknown: unlimited
		{1 << 40, 0},   // unlimited
	} {
		if got := connLimit(tc.files); got != tc.want {
			t.Errorf("connLimit(%d) = %d, want %d", tc.files, got, tc.want)
		}
	}
	if DefaultMaxConnections() <= 0 {
		t.Fatal("no default limit derived from this process's RLIMIT_NOFILE")
	}
}
