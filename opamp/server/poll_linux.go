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

// dispatch hands the connections of events to the workers; true when
// stop's wake-up is among them.
func (p *poller) dispatch(events []unix.EpollEvent) (stop bool) {
	for i := range events {
		id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
		if id == wakeID {
			return true
		}
		p.s.mu.Lock()
		c := p.s.conns[id]
		p.s.mu.Unlock()
		if c != nil {
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
// drained hands the rest back this way. Called with c.mu held, so c's
// socket is open.
func (p *poller) arm(c *wsConn, add bool) error {
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET,
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

// socketFile returns tcp's socket as an *os.File and closes tcp. The
// file holds a duplicate of the descriptor, in the netpoller (it is
// non-blocking, so write deadlines work), and nothing else; the TCPConn
// also holds both addresses, about 190 bytes more per idle agent, which
// the garbage collector's headroom doubles in resident memory.
func socketFile(tcp *net.TCPConn) (*os.File, error) {
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	f := os.NewFile(uintptr(dup), "")
	tcp.Close() // the duplicate keeps the socket open
	return f, nil
}

var errWouldBlock = errors.New("would block")

// rawOp is a reusable callback for RawConn.Read/Write: a closure made per
// call would be allocated on every read and write.
type rawOp struct {
	b      []byte
	iov    [][]byte
	n      int
	err    error
	read   func(fd uintptr) bool
	write  func(fd uintptr) bool
	writev func(fd uintptr) bool
}

var rawOps = sync.Pool{New: func() any {
	op := &rawOp{}
	op.read = func(fd uintptr) bool {
		for {
			op.n, op.err = unix.Read(int(fd), op.b)
			if op.err != unix.EINTR {
				return true // never wait in the netpoller
			}
		}
	}
	op.write = func(fd uintptr) bool {
		for {
			op.n, op.err = unix.Write(int(fd), op.b)
			if op.err != unix.EINTR {
				return true
			}
		}
	}
	op.writev = func(fd uintptr) bool {
		for {
			op.n, op.err = unix.Writev(int(fd), op.iov)
			if op.err != unix.EINTR {
				return true
			}
		}
	}
	return op
}}

func doRaw(rc syscall.RawConn, b []byte, write bool) (n int, err error) {
	op := rawOps.Get().(*rawOp)
	op.b = b
	var cerr error
	if write {
		cerr = rc.Write(op.write)
	} else {
		cerr = rc.Read(op.read)
	}
	n, err = op.n, op.err
	op.b, op.err = nil, nil
	rawOps.Put(op)
	return rawResult(n, err, cerr)
}

// rawResult maps the outcome of a raw socket call: the RawConn's own error
// first, EAGAIN to errWouldBlock, a negative count to 0.
func rawResult(n int, err, cerr error) (int, error) {
	if cerr != nil {
		return 0, cerr
	}
	if err == unix.EAGAIN {
		return 0, errWouldBlock
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// unreadBytes returns how many received bytes wait unread in rc's socket
// buffer (0 when rc is nil or the socket is closed).
func unreadBytes(rc syscall.RawConn) int {
	if rc == nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}

// readNonblock reads once from rc without waiting: errWouldBlock when
// nothing is available, (0, nil) at end of stream.
func readNonblock(rc syscall.RawConn, b []byte) (int, error) { return doRaw(rc, b, false) }

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
		n, err := readNonblock(c.rc, buf)
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

// writevNonblock writes bufs once to rc without waiting (one writev):
// errWouldBlock when the socket buffer is full.
func writevNonblock(rc syscall.RawConn, bufs [][]byte) (int, error) {
	if len(bufs) == 1 {
		return doRaw(rc, bufs[0], true)
	}
	op := rawOps.Get().(*rawOp)
	op.iov = append(op.iov[:0], bufs...) // bufs itself stays on the caller's stack
	cerr := rc.Write(op.writev)
	n, err := op.n, op.err
	clear(op.iov)
	op.err = nil
	rawOps.Put(op)
	return rawResult(n, err, cerr)
}
