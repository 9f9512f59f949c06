package http_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	stewardhttp "github.com/stewardhq/steward/http"
)

// fakeClock is a settable clock for sessions and login throttling.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Logout ends the session on the server: the old cookie is refused for
// reads and for CSRF-protected writes, over real TLS, where the cookies
// are Secure (findings 7 and 8 of issue 10: the cookie kept working for
// its 12 hours, and no TLS listener ever set Secure).
func TestLogoutEndsSession(t *testing.T) {
	e := newEnvOn(t, nil, true, func(o *stewardhttp.Options) { o.AdminPassword = "pw" })
	r, sess, csrf := e.login("pw")
	if r.status != 200 || sess == nil || csrf == nil {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if !sess.Secure || !csrf.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookies over TLS: session %+v, csrf %+v", sess, csrf)
	}
	put := func() response {
		return e.do("PUT", "/api/v1/configs/base", `{"files":{"":{"body":"x"}}}`,
			"Cookie", cookieHeader(sess, csrf), stewardhttp.CSRFHeader, csrf.Value)
	}
	if r := e.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 200 {
		t.Fatalf("read with the session: %d", r.status)
	}
	if r := put(); r.status/100 != 2 {
		t.Fatalf("write with the session: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/logout", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 204 {
		t.Fatalf("logout: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 401 {
		t.Errorf("read with the old cookie after logout: %d", r.status)
	}
	if r := put(); r.status != 401 {
		t.Errorf("write with the old cookie and its CSRF token after logout: %d %s", r.status, r.body)
	}
	var st stewardhttp.SessionResponse
	e.do("GET", "/api/v1/session", nil, "Cookie", cookieHeader(sess, csrf)).decode(t, &st)
	if st.Authenticated {
		t.Errorf("session after logout: %+v", st)
	}
}

// Sessions live in the store: a replica accepts another's session, a
// logout on one ends it on the other, and they expire.
func TestSessionsAcrossReplicas(t *testing.T) {
	clock := newFakeClock()
	a := newEnvOn(t, nil, true, func(o *stewardhttp.Options) {
		o.AdminPassword, o.SessionTTL, o.Clock = "pw", time.Hour, clock.Now
	})
	b := newEnvOn(t, a.db, true, func(o *stewardhttp.Options) { o.AdminPassword, o.Clock = "pw", clock.Now })
	_, sess, csrf := a.login("pw")
	if r := b.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 200 {
		t.Fatalf("session on the other replica: %d", r.status)
	}
	if r := b.do("POST", "/api/v1/logout", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 204 {
		t.Fatal(r.status)
	}
	if r := a.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 401 {
		t.Errorf("session ended on one replica still works on the other: %d", r.status)
	}

	_, sess, csrf = a.login("pw")
	clock.Advance(59 * time.Minute)
	if r := a.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 200 {
		t.Fatalf("before expiry: %d", r.status)
	}
	clock.Advance(time.Minute)
	if r := a.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 401 {
		t.Errorf("after expiry: %d", r.status)
	}
}

// Changing the admin password ends every session opened with the old one.
func TestPasswordChangeEndsSessions(t *testing.T) {
	old := newEnvOn(t, nil, true, func(o *stewardhttp.Options) { o.AdminPassword = "old-pw" })
	_, sess, csrf := old.login("old-pw")
	if r := old.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 200 {
		t.Fatal(r.status)
	}
	// The same database served with a new password (a restart, or a
	// replica already running with it).
	changed := newEnvOn(t, old.db, true, func(o *stewardhttp.Options) { o.AdminPassword = "new-pw" })
	if r := changed.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 401 {
		t.Errorf("old-password session on the new-password server: %d", r.status)
	}
	if r, _, _ := changed.login("new-pw"); r.status != 200 {
		t.Fatal(r.status)
	}
	// Logging in with the new password removed the old sessions: even a
	// replica still on the old password refuses them now.
	if r := old.do("GET", "/api/v1/agents", nil, "Cookie", cookieHeader(sess, csrf)); r.status != 401 {
		t.Errorf("old session after the new password's first login: %d", r.status)
	}
}

// loginFrom logs in with a forwarded client address (empty: none).
func (e *env) loginFrom(password, forwardedFor string) response {
	e.t.Helper()
	if forwardedFor == "" {
		return e.do("POST", "/api/v1/login", map[string]string{"password": password})
	}
	return e.do("POST", "/api/v1/login", map[string]string{"password": password}, "X-Forwarded-For", forwardedFor)
}

func retryAfter(t *testing.T, r response) int {
	t.Helper()
	if r.status != 429 {
		t.Fatalf("want 429, got %d %s", r.status, r.body)
	}
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	return n
}

// Failed logins make the next attempt from that client wait, longer after
// each failure up to a cap; the right password works as soon as the wait
// is over; other clients are not held up (finding 9 of issue 10: ten
// failures locked out the right password, per address, ignoring proxies).
func TestLoginThrottle(t *testing.T) {
	clock := newFakeClock()
	e := newEnvOn(t, nil, true, func(o *stewardhttp.Options) {
		o.AdminPassword, o.Clock = "pw", clock.Now
		o.LoginThrottle = stewardhttp.LoginThrottle{Free: 3, Base: time.Second, Max: 16 * time.Second}
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	const attacker, admin = "198.51.100.7", "203.0.113.9"
	for i := 0; i < 3; i++ {
		if r := e.loginFrom("guess", attacker); r.status != 401 {
			t.Fatalf("free failure %d: %d", i+1, r.status)
		}
	}
	var waits []int
	for i := 0; i < 7; i++ {
		w := retryAfter(t, e.loginFrom("pw", attacker)) // the right password waits too
		waits = append(waits, w)
		clock.Advance(time.Duration(w) * time.Second)
		if r := e.loginFrom("guess", attacker); r.status != 401 {
			t.Fatalf("attempt after waiting %ds: %d", w, r.status)
		}
	}
	want := []int{1, 2, 4, 8, 16, 16, 16}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	// Meanwhile another client logs in at once.
	if r := e.loginFrom("pw", admin); r.status != 200 {
		t.Errorf("another client during the attacker's wait: %d %s", r.status, r.body)
	}
	// After the (capped) wait the right password works and clears the count.
	w := retryAfter(t, e.loginFrom("pw", attacker))
	clock.Advance(time.Duration(w) * time.Second)
	if r := e.loginFrom("pw", attacker); r.status != 200 {
		t.Fatalf("right password after the wait: %d %s", r.status, r.body)
	}
	if r := e.loginFrom("guess", attacker); r.status != 401 {
		t.Errorf("count not cleared by success: %d", r.status)
	}
}

// X-Forwarded-For is believed only from trusted proxies: from any other
// peer it is ignored, so rotating it does not escape the throttle, and a
// trusted proxy's header is read from the right, so a client cannot pick
// its address by prepending entries.
func TestForwardedForTrust(t *testing.T) {
	throttle := stewardhttp.LoginThrottle{Free: 1, Base: time.Minute, Max: time.Minute}
	clock := newFakeClock()
	untrusted := newEnvOn(t, nil, true, func(o *stewardhttp.Options) {
		o.AdminPassword, o.Clock, o.LoginThrottle = "pw", clock.Now, throttle
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // not our 127.0.0.1
	})
	if r := untrusted.loginFrom("guess", "192.0.2.1"); r.status != 401 {
		t.Fatal(r.status)
	}
	for _, spoof := range []string{"192.0.2.2", "192.0.2.3, 10.1.1.1", ""} {
		retryAfter(t, untrusted.loginFrom("guess", spoof))
	}

	trusted := newEnvOn(t, nil, true, func(o *stewardhttp.Options) {
		o.AdminPassword, o.Clock, o.LoginThrottle = "pw", clock.Now, throttle
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	})
	if r := trusted.loginFrom("guess", "192.0.2.1"); r.status != 401 {
		t.Fatal(r.status)
	}
	// The same client behind a second trusted hop, and with a forged
	// left-hand entry, is still 192.0.2.1.
	for _, same := range []string{"192.0.2.1, 10.2.2.2", "203.0.113.50, 192.0.2.1"} {
		retryAfter(t, trusted.loginFrom("guess", same))
	}
	// A different client behind the proxy is not held up.
	if r := trusted.loginFrom("pw", "192.0.2.99"); r.status != 200 {
		t.Errorf("other client behind the proxy: %d", r.status)
	}
}

// Cookies are Secure under TLS, with SecureCookies, and when a trusted
// proxy says the client used https; not otherwise.
func TestSecureCookies(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	for _, c := range []struct {
		name      string
		tls       bool
		configure func(*stewardhttp.Options)
		headers   []string
		want      bool
	}{
		{"TLS", true, nil, nil, true},
		{"plain HTTP", false, nil, nil, false},
		{"--http-secure-cookies", false, func(o *stewardhttp.Options) { o.SecureCookies = true }, nil, true},
		{"trusted proxy, https", false, func(o *stewardhttp.Options) { o.TrustedProxies = proxy }, []string{"X-Forwarded-Proto", "https"}, true},
		{"trusted proxy, http", false, func(o *stewardhttp.Options) { o.TrustedProxies = proxy }, []string{"X-Forwarded-Proto", "http"}, false},
		{"untrusted peer says https", false, nil, []string{"X-Forwarded-Proto", "https"}, false},
	} {
		e := newEnvOn(t, nil, c.tls, func(o *stewardhttp.Options) {
			o.AdminPassword = "pw"
			if c.configure != nil {
				c.configure(o)
			}
		})
		r := e.do("POST", "/api/v1/login", map[string]string{"password": "pw"}, c.headers...)
		cookies := (&http.Response{Header: r.header}).Cookies()
		if r.status != 200 || len(cookies) != 2 {
			t.Fatalf("%s: login %d, %d cookies", c.name, r.status, len(cookies))
		}
		for _, ck := range cookies {
			if ck.Secure != c.want {
				t.Errorf("%s: cookie %s Secure=%v, want %v", c.name, ck.Name, ck.Secure, c.want)
			}
		}
		r = e.do("POST", "/api/v1/logout", nil, c.headers...)
		for _, ck := range (&http.Response{Header: r.header}).Cookies() {
			if ck.Secure != c.want {
				t.Errorf("%s: logout cookie %s Secure=%v", c.name, ck.Name, ck.Secure)
			}
		}
	}
}

// Concurrent wrong passwords cannot all slip through one open moment: each
// attempt is counted before the password is checked, so of a burst only
// the free attempts are answered 401 and the rest wait.
func TestLoginThrottleConcurrent(t *testing.T) {
	clock := newFakeClock()
	e := newEnvOn(t, nil, true, func(o *stewardhttp.Options) {
		o.AdminPassword, o.Clock = "pw", clock.Now
		o.LoginThrottle = stewardhttp.LoginThrottle{Free: 3, Base: time.Minute, Max: time.Minute}
	})
	const burst = 24
	statuses := make(chan int, burst)
	var wg sync.WaitGroup
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.loginFrom("guess", "").status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[401] != 3 || count[429] != burst-3 {
		t.Errorf("burst of %d wrong passwords: %v, want 3 answered 401 and the rest 429", burst, count)
	}
}
