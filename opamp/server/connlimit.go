package server

// connLimit is DefaultMaxConnections for an open-file limit of n.
func connLimit(n uint64) int {
	if n == 0 || n > 1<<30 {
		return 0
	}
	reserve := max(256, n/8)
	if n <= reserve+64 {
		return 64 // too few descriptors for anything sensible: a token limit
	}
	return int(n - reserve)
}
