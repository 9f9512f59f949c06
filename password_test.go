package steward

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not state the default parameters", h)
	}
	if !CheckPassword(h, "correct horse battery") || CheckPassword(h, "correct horse batterY") {
		t.Error("CheckPassword accepts a wrong password or refuses the right one")
	}
	if h2, _ := HashPassword("correct horse battery"); h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	if NeedsRehash(h) {
		t.Error("a hash with the default parameters needs a rehash")
	}
	if _, err := HashPassword("short"); ErrorCode(err) != EINVALID {
		t.Errorf("short password: %v", err)
	}
}

// A hash made with other parameters still verifies (they are read from
// the hash) and asks to be replaced.
func TestPasswordHashOldParameters(t *testing.T) {
	old := HashPasswordWith("correct horse battery", PasswordParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 16})
	if !strings.Contains(old, "$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q", old)
	}
	if !CheckPassword(old, "correct horse battery") || CheckPassword(old, "wrong horse battery") {
		t.Error("hash with old parameters does not verify")
	}
	if !NeedsRehash(old) {
		t.Error("hash with old parameters does not ask for a rehash")
	}
}

func TestPasswordHashMalformed(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$dGFndGFndGFndGFndGFn",
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$dGFndGFndGFndGFndGFn",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$dGFndGFndGFndGFndGFn", // 95 GiB
		"$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHQ$dGFndGFndGFndGFndGFn",
		"$argon2id$v=19$m=1024,t=1,p=1$!!$dGFndGFndGFndGFndGFn"} {
		if CheckPassword(h, "") || !NeedsRehash(h) {
			t.Errorf("malformed hash %q accepted", h)
		}
	}
}

// BenchmarkHashPassword is the cost of one login (or password change) with
// the default parameters.
func BenchmarkHashPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		HashPasswordWith("correct horse battery", DefaultPasswordParams)
	}
}
