//go:build !linux

package server

import (
	"errors"
	"net"
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

var errWouldBlock = errors.New("would block")

// No connection is epoll-driven here: these are never called.
func socketFD(*net.TCPConn) (int, error)  { return -1, errors.New("no epoll") }
func writevFD(int, [][]byte) (int, error) { return 0, errors.New("no epoll") }
func unreadFD(int) int                    { return 0 }
func unackedFD(int) int                   { return 0 }
func closeFD(int)                         {}
