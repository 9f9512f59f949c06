//go:build !linux

package server

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// poller is not available on this system: every connection gets a
// goroutine (newPoller returns nil).
type poller struct{}

func newPoller(*Server) (*poller, error) { return nil, nil }
func (*poller) run()                     {}
func (*poller) stop()                    {}
func (*poller) arm(*wsConn, bool) error  { return errors.New("no epoll") }
func (*poller) del(int)                  {}
func (c *wsConn) onReadable()            {}

// unreadBytes is not known on this system: LastReceived is the last read.
func unreadBytes(syscall.RawConn) int { return 0 }

var errWouldBlock = errors.New("would block")

func socketFile(*net.TCPConn) (*os.File, error) { return nil, errors.New("no epoll") }

func writevNonblock(syscall.RawConn, [][]byte) (int, error) { return 0, errWouldBlock }
