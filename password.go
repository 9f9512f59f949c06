package steward

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id parameters of a password hash. They are
// written into every hash (PHC string format), so a hash made with older
// parameters still verifies after they change, and is replaced by a hash
// with the current ones at its owner's next login (NeedsRehash).
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultPasswordParams are OWASP's recommended argon2id minimum (Password
// Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane, with a 16-byte salt and a
// 32-byte tag. RFC 9106's 64 MiB, 3 passes, 4 lanes measured about 9 times
// slower here (0.6 s against 67 ms a hash, docs/security.md), too slow for
// a login on a small server. One hash holds 19 MiB while it runs;
// hashPasswordSlots bounds how many run at once.
var DefaultPasswordParams = PasswordParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// hashPasswordSlots bounds concurrent hashes (19 MiB each), so a burst of
// logins cannot take the server's memory.
var hashPasswordSlots = make(chan struct{}, 4)

// MinPasswordLength is the shortest password a user may be given.
const MinPasswordLength = 12

// HashPassword returns the argon2id hash of password with the default
// parameters, as "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>" (base64
// without padding). EINVALID when the password is shorter than
// MinPasswordLength.
func HashPassword(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", Errorf(EINVALID, "password too short: use at least %d characters", MinPasswordLength)
	}
	return HashPasswordWith(password, DefaultPasswordParams), nil
}

// HashPasswordWith hashes password with p (no length check): for tests of
// hashes made with other parameters, and for measuring them.
func HashPasswordWith(password string, p PasswordParams) string {
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt)
	key := argon2idKey(password, salt, p)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func argon2idKey(password string, salt []byte, p PasswordParams) []byte {
	hashPasswordSlots <- struct{}{}
	defer func() { <-hashPasswordSlots }()
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// CheckPassword reports whether password matches encoded (a hash from
// HashPassword, with whatever parameters it names). The tags are compared
// in constant time. A malformed hash matches nothing.
func CheckPassword(encoded, password string) bool {
	p, salt, want, err := parsePasswordHash(encoded)
	if err != nil {
		return false
	}
	got := argon2idKey(password, salt, p)
	return subtle.ConstantTimeCompare(got, want) == 1
}

// NeedsRehash reports whether encoded was made with parameters other than
// DefaultPasswordParams (or cannot be read).
func NeedsRehash(encoded string) bool {
	p, _, _, err := parsePasswordHash(encoded)
	return err != nil || p != DefaultPasswordParams
}

// maxPasswordMemory bounds the memory a stored hash may ask for (1 GiB), so
// that a tampered row cannot make a login allocate without limit.
const maxPasswordMemory = 1 << 20

func parsePasswordHash(encoded string) (p PasswordParams, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("bad argon2 parameters %q: %w", parts[3], err)
	}
	if p.Memory == 0 || p.Memory > maxPasswordMemory || p.Time == 0 || p.Time > 100 || p.Threads == 0 {
		return p, nil, nil, fmt.Errorf("argon2 parameters out of range: %q", parts[3])
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("bad argon2 salt")
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 1024 {
		return p, nil, nil, fmt.Errorf("bad argon2 tag")
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
