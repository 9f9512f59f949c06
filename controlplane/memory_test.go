package controlplane_test

import (
	"net/http/httptest"
	"testing"
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
