//go:build linux

package server

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// An epoll-driven connection's socket is registered in the transport's
// epoll set only, not also in Go's netpoller (whose descriptor per
// connection is runtime memory per idle agent, never returned).
func TestEpollConnIsInOneEpollSetOnly(t *testing.T) {
	h := newTestHandler()
	s, hs := startServer(t, h, Config{})
	if s.poll == nil {
		t.Skip("no epoll")
	}
	a := dialAgent(t, hs, nil)
	a.send(status(1))
	a.recv()
	c := h.conn(0).(*wsConn)
	if c.nc != nil {
		t.Fatal("a plain-TCP connection is not epoll-driven")
	}
	sets := epollSetsWatching(t, int(c.fd))
	if len(sets) != 1 || sets[0] != s.poll.epfd {
		t.Fatalf("descriptor %d is in the epoll sets %v; want only the transport's (%d)", c.fd, sets, s.poll.epfd)
	}
}

// epollSetsWatching returns this process's epoll descriptors that have fd
// registered (from /proc/self/fdinfo: a "tfd:" line per registered target).
func epollSetsWatching(t *testing.T, fd int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var sets []int
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "tfd:" && fields[1] == strconv.Itoa(fd) {
				n, _ := strconv.Atoi(e.Name())
				sets = append(sets, n)
			}
		}
		f.Close()
	}
	return sets
}
