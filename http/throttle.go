package http

import (
	"net/netip"
	"sync"
	"time"
)

// LoginThrottle slows password guessing per account and client address:
// after Free consecutive failures, each further attempt must wait Base,
// then twice as long after each failure, up to Max. While waiting, every
// attempt (even with the right password) is answered 429 with Retry-After
// and does not count; once the wait is over the right password works and
// clears the count. There is no lockout: the longest anyone, including an
// attacker sharing the client's address, can keep the right password out is
// Max. Zero fields take the defaults (3 free failures, 1 s, 30 s).
type LoginThrottle struct {
	Free      int
	Base, Max time.Duration
}

func (t LoginThrottle) withDefaults() LoginThrottle {
	if t.Free <= 0 {
		t.Free = 3
	}
	if t.Base <= 0 {
		t.Base = time.Second
	}
	if t.Max <= 0 {
		t.Max = 30 * time.Second
	}
	if t.Max < t.Base {
		t.Max = t.Base
	}
	return t
}

// maxThrottleEntries bounds the failure records kept; beyond it, records
// idle for longer than the forget time are dropped, then the oldest.
const maxThrottleEntries = 100_000

type throttleEntry struct {
	fails int
	last  time.Time
}

// loginThrottle keeps LoginThrottle's failure counts in memory (per
// replica: each replica slows guessing on its own).
type loginThrottle struct {
	cfg    LoginThrottle
	forget time.Duration // idle time after which a count starts over
	mu     sync.Mutex
	seen   map[string]*throttleEntry
}

func newLoginThrottle(cfg LoginThrottle) *loginThrottle {
	cfg = cfg.withDefaults()
	return &loginThrottle{cfg: cfg, forget: 20 * cfg.Max, seen: map[string]*throttleEntry{}}
}

// loginKey names an account as seen from one client: the address, or its
// /64 for IPv6, where one host usually holds the whole prefix.
func loginKey(account string, client netip.Addr) string {
	if client.Is6() && !client.Is4In6() {
		p, _ := client.Prefix(64)
		return account + "|" + p.String()
	}
	return account + "|" + client.Unmap().String()
}

// delay is the wait after fails consecutive failures.
func (l *loginThrottle) delay(fails int) time.Duration {
	if fails < l.cfg.Free {
		return 0
	}
	d := l.cfg.Base
	for i := l.cfg.Free; i < fails && d < l.cfg.Max; i++ {
		d *= 2
	}
	return min(d, l.cfg.Max)
}

// attempt starts a login attempt by key at now: it returns how long key
// must still wait (the attempt is refused and not counted), or 0 after
// counting the attempt as a failure, which succeed undoes. Counting before
// the password is checked means concurrent attempts cannot all slip
// through the same open moment.
func (l *loginThrottle) attempt(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.seen[key]
	if e != nil && now.Sub(e.last) >= l.forget {
		delete(l.seen, key)
		e = nil
	}
	if e != nil {
		if w := e.last.Add(l.delay(e.fails)).Sub(now); w > 0 {
			return w
		}
	}
	if e == nil {
		if len(l.seen) >= maxThrottleEntries {
			l.prune(now)
		}
		e = &throttleEntry{}
		l.seen[key] = e
	}
	e.fails++
	e.last = now
	return 0
}

// succeed clears key's failures (the right password was given).
func (l *loginThrottle) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, key)
}

// prune drops idle records, and the oldest half when all are recent.
func (l *loginThrottle) prune(now time.Time) {
	var oldest time.Time
	for k, e := range l.seen {
		if now.Sub(e.last) >= l.forget {
			delete(l.seen, k)
		} else if oldest.IsZero() || e.last.Before(oldest) {
			oldest = e.last
		}
	}
	if len(l.seen) < maxThrottleEntries {
		return
	}
	cut := oldest.Add(now.Sub(oldest) / 2)
	for k, e := range l.seen {
		if e.last.Before(cut) {
			delete(l.seen, k)
		}
	}
}
