//go:build linux

package server

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller is an epoll set of idle WebSocket connections. One goroutine
// waits on it and hands ready connections to the workers. Each connection
// is registered once, edge-triggered: every arrival of bytes is one event,
// and no system call re-arms it after a message. A connection is on at
// most one worker at a time (wsConn.busy); an event that finds it busy
// tells that worker to read on (wsConn.again).
//
// The goroutine does not block in epoll_wait: the epoll set's own
// descriptor is in Go's netpoller, so the goroutine waits there like any
// network read, and a wake-up costs no thread hand-off (a goroutine
// blocked in a system call holds its thread, and its processor is handed
// to another thread while it waits).
type poller struct {
	s        *Server
	epfd     int
	file     *os.File        // owns epfd
	rc       syscall.RawConn // epfd in the netpoller
	wake     int             // eventfd
	done     chan struct{}
	stopOnce sync.Once
}

const wakeID = 0 // epoll data of the wake eventfd; connection ids start at 1

func newPoller(s *Server) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile puts it in the netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		file.Close()
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		file.Close()
		unix.Close(wake)
		return nil, err
	}
	return &poller{s: s, epfd: epfd, file: file, rc: rc, wake: wake, done: make(chan struct{})}, nil
}

// run hands ready connections to the workers until stop.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	var err error
	// wait takes the ready events without blocking and returns false,
	// which waits in the netpoller for more, once a call returns fewer
	// than it had room for (the set was drained; an event after that is
	// a new readiness of epfd, so none is missed).
	wait := func(fd uintptr) bool {
		for {
			n, werr := unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				continue
			}
			if werr != nil {
				err = werr
				return true
			}
			if p.dispatch(events[:n]) {
				return true
			}
			if n < len(events) {
				return false
			}
		}
	}
	if rerr := p.rc.Read(wait); rerr != nil {
		err = rerr
	}
	if err != nil {
		p.s.log.Error("opamp server: epoll_wait failed", "err", err)
	}
}

// dispatch hands the connections of events to the workers, and those
// that can take bytes they wait to write to a goroutine of their own (a
// write does not wait: onWritable writes what the socket takes); true
// when stop's wake-up is among them.
func (p *poller) dispatch(events []unix.EpollEvent) (stop bool) {
	for i := range events {
		id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
		if id == wakeID {
			return true
		}
		p.s.mu.Lock()
		c := p.s.conns[id]
		p.s.mu.Unlock()
		if c == nil {
			continue
		}
		ev := events[i].Events
		if ev&unix.EPOLLOUT != 0 {
			go c.onWritable()
		}
		if ev&^unix.EPOLLOUT != 0 {
			p.s.tasks <- c
		}
	}
	return false
}

// stop ends run and releases the epoll set.
func (p *poller) stop() {
	p.stopOnce.Do(func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(p.wake, one[:])
		<-p.done
		p.file.Close()
		unix.Close(p.wake)
	})
}

// arm registers c (add) or re-registers it, which raises an event if
// bytes wait unread: a worker that stopped reading before the socket was
// drained hands the rest back this way. While c waits to write
// (c.writing), EPOLLOUT is in its events too. Called with c.mu held, so
// c's socket is open.
func (p *poller) arm(c *wsConn, add bool) error {
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET)
	if c.writing {
		events |= unix.EPOLLOUT
	}
	ev := unix.EpollEvent{
		Events: events,
		Fd:     int32(uint32(c.id)),
		Pad:    int32(uint32(c.id >> 32)),
	}
	op := unix.EPOLL_CTL_MOD
	if add {
		op = unix.EPOLL_CTL_ADD
	}
	return unix.EpollCtl(p.epfd, op, int(c.fd), &ev)
}

// del removes fd from the set; called before the socket is closed.
func (p *poller) del(fd int) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// socketFD returns a duplicate of tcp's descriptor and closes tcp. The
// duplicate is in no Go netpoller: the transport's epoll set is the only
// one it is registered in. A descriptor in the netpoller costs a runtime
// poll descriptor (~270 bytes outside the heap, never returned) and an
// *os.File (~130 bytes of heap, and a finalizer) per idle agent, and every
// arrival of bytes woke the runtime's poller as well as ours.
func socketFD(tcp *net.TCPConn) (int, error) {
	rc, err := tcp.SyscallConn()
	if err != nil {
		return -1, err
	}
	dup, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	tcp.Close() // the duplicate keeps the socket open (and non-blocking: the flag is the socket's)
	return dup, nil
}

var errWouldBlock = errors.New("would block")

// rawResult maps the outcome of a socket call: EAGAIN to errWouldBlock,
// a negative count to 0.
func rawResult(n int, err error) (int, error) {
	if err == unix.EAGAIN {
		return 0, errWouldBlock
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// readFD reads once from the non-blocking socket fd: errWouldBlock when
// nothing is available, (0, nil) at end of stream.
func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return rawResult(n, err)
		}
	}
}

// writevFD writes bufs once to the non-blocking socket fd (one writev):
// errWouldBlock when the socket buffer is full.
func writevFD(fd int, bufs [][]byte) (int, error) {
	for {
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = unix.Write(fd, bufs[0])
		} else {
			n, err = unix.Writev(fd, bufs)
		}
		if err != unix.EINTR {
			return rawResult(n, err)
		}
	}
}

// unreadFD returns how many received bytes wait unread in socket fd.
func unreadFD(fd int) int {
	n, _ := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return n
}

// unackedFD returns the bytes written to socket fd that the peer has not
// acknowledged yet (0 when that is not known).
func unackedFD(fd int) int {
	n, _ := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	return n
}

func closeFD(fd int) { _ = unix.Close(fd) }

// maxReads bounds the reads of one worker's turn on a connection, so one
// busy agent cannot hog a worker; the rest goes back through epoll.
const maxReads = 16

// onReadable runs on a worker when c's socket became readable: it reads
// what is there into a pooled buffer and handles the messages it
// completes, until the socket is drained and no event came meanwhile (or
// the connection ended, or maxReads).
func (c *wsConn) onReadable() {
	c.mu.Lock()
	if c.finished || c.busy {
		c.again = c.busy // the worker on c reads on
		c.mu.Unlock()
		return
	}
	c.busy = true
	c.mu.Unlock()
	bp := readBufs.Get().(*[]byte)
	reads := 0
	for {
		reads += c.readAvailable(*bp, maxReads-reads)
		if !c.endBusy(reads < maxReads) {
			break
		}
	}
	readBufs.Put(bp)
}

// readAvailable reads and processes until a read comes back short (the
// socket is drained), the connection ends, or it has read budget times;
// it returns how many reads it made.
func (c *wsConn) readAvailable(buf []byte, budget int) int {
	for i := 1; ; i++ {
		n, err := readFD(int(c.fd), buf)
		if n > 0 {
			c.process(buf[:n])
		}
		if err == errWouldBlock {
			return i
		}
		if err != nil || n == 0 {
			c.mu.Lock()
			c.pendingFinish = true // end of stream or error
			c.mu.Unlock()
			return i
		}
		c.mu.Lock()
		stop := c.pendingFinish
		c.mu.Unlock()
		if stop || n < len(buf) || i == budget {
			return i
		}
	}
}
