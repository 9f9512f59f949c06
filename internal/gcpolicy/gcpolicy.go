// Package gcpolicy sets the Go garbage collector's policy for the Steward
// server process.
//
// A server's heap is mostly what its connected agents keep, which lives as
// long as they stay connected; its garbage is the messages it handles. At
// Go's default (GOGC=100) the heap grows to twice what is live before the
// next collection, and an idle fleet's resident memory follows that goal.
// The server collects at 50% growth instead: a heap goal of 1.5 times what
// is live, for a collector that marks twice as often (both measured in
// docs/performance.md, "Idle memory, current": about 0.5 KiB less per idle
// agent, 4-5% more CPU in a connect storm). GOGC set in the environment
// always wins; GOMEMLIMIT works as usual.
package gcpolicy

import (
	"os"
	"runtime/debug"
)

// Percent is the server's GOGC when the environment sets none.
const Percent = 50

// Apply sets the garbage collector's target percentage to Percent unless
// the GOGC environment variable is set (the runtime has then applied it),
// and reports whether it did.
func Apply() bool {
	if os.Getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(Percent)
	return true
}
