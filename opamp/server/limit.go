//go:build unix

package server

import "syscall"

// DefaultMaxConnections returns a WebSocket connection limit that fits the
// process's open-file limit (RLIMIT_NOFILE; Go raises the soft limit to the
// hard one at start): it keeps max(256, limit/8) descriptors for
// everything else — the REST API and web UI, the database, package files,
// plain-HTTP agents — so that a flood of agent connections cannot make
// those unreachable. It returns 0 (unlimited) when the limit is unknown or
// unlimited.
func DefaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return connLimit(rl.Cur)
}
