package server

import (
	"testing"
	"unsafe"
)

// An idle WebSocket agent keeps its wsConn (with the parser) for as long
// as it is connected: one field too many moves it to the next size class
// (352 bytes), 64 bytes per agent.
func TestWSConnFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(wsConn{}); n > 288 {
		t.Errorf("wsConn is %d bytes, more than the 288-byte size class", n)
	}
}
