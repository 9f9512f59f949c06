package client

import (
	crand "crypto/rand"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is jittered exponential backoff: next returns a delay drawn from
// [d/2, d], where d doubles per call from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(b Backoff) *backoff { return &backoff{min: b.Min, max: b.Max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// retryAfter parses the Retry-After header of a response that refused us
// (503 and 429, but also 401, 403 or 409 from servers that say when to come
// back): either delay-seconds or an HTTP date. It returns 0 when absent or
// malformed.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp == nil || resp.StatusCode < 300 {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// newUUIDv7 returns a random, time-ordered UUID v7.
func newUUIDv7() [16]byte {
	var u [16]byte
	_, _ = crand.Read(u[:])
	ms := uint64(time.Now().UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = (u[6] & 0x0f) | 0x70
	u[8] = (u[8] & 0x3f) | 0x80
	return u
}

// uuidString is the canonical 8-4-4-4-12 form of u.
func uuidString(u [16]byte) string {
	const hexd = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexd[x>>4], hexd[x&0xf]
		j += 2
	}
	return string(b[:])
}
