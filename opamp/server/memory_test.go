package server

import (
	"runtime"
	"testing"
	"unsafe"
)

// An idle WebSocket agent keeps its wsConn (with the parser) for as long
// as it is connected: one field too many moves it to the next size class
// (256 bytes), 16 bytes per agent. The write queue is apart (outQueue),
// made only while bytes wait.
func TestWSConnFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(wsConn{}); n > 240 {
		t.Errorf("wsConn is %d bytes, more than the 240-byte size class", n)
	}
}

// Once a connect storm's connections have all sent their first message,
// the server keeps nothing of the map that tracked them while silent (a Go
// map keeps the room of its largest size: ~20 bytes per connection).
func TestSilentSetKeepsNothingAfterABurst(t *testing.T) {
	s, err := New(Config{Handler: newTestHandler(), Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const n = 20000
	s.mu.Lock()
	for id := uint64(1); id <= n; id++ {
		s.silence(id, 1)
	}
	for id := uint64(1); id <= n; id++ {
		s.unsilence(id)
	}
	s.mu.Unlock()
	if after := heap(); after > before && after-before > 64<<10 {
		t.Errorf("after %d connections spoke, the silent set still holds %d KiB", n, (after-before)>>10)
	}
}
