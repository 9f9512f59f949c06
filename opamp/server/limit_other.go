//go:build !unix

package server

// DefaultMaxConnections returns 0 (unlimited) where the open-file limit is
// not known.
func DefaultMaxConnections() int { return 0 }
