package controlplane_test

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/stewardhq/steward/opamp"
)

// What an idle connected agent keeps (docs/performance.md, "Idle memory").

// Accepting a connection that presents no credentials allocates only its
// connection state, which lives as long as the agent stays connected: the
// "no credentials" record is one shared by every such connection.
func TestAcceptWithoutCredentialsAllocatesOnlyItsState(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest("GET", "/v1/opamp", nil)
	r.RemoteAddr = "10.1.2.3:45678"
	r.Header.Set("Upgrade", "websocket")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := f.svc.Accept(r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Accept allocates %.0f times, want 1 (the connection state)", allocs)
	}
}

// A connection's state keeps nothing of its upgrade request: the URL the
// agent connected to (its scheme, Host header and path, strings that point
// into the request's bytes) is kept once for every connection to it.
func TestConnStateKeepsNothingOfTheRequest(t *testing.T) {
	f := newFixture(t)
	const n = 4000
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	states := make([]any, n)
	before := heap()
	for i := range states {
		r := httptest.NewRequest("GET", "/v1/opamp", nil)
		r.Host = strings.Clone("steward.example.com:4320") // each request's own bytes, as read from the wire
		r.URL.Path = strings.Clone(opamp.DefaultPath)
		r.RemoteAddr = "10.1.2.3:45678"
		r.Header.Set("Upgrade", "websocket")
		st, err := f.svc.Accept(r)
		if err != nil {
			t.Fatal(err)
		}
		states[i] = st
	}
	after := heap()
	if per := (int64(after) - int64(before)) / n; per > 32 {
		t.Errorf("a connection's state keeps %d bytes, want at most 32 (a 24-byte connState)", per)
	}
	runtime.KeepAlive(states)
}
