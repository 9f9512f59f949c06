package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// idleClientsEnv makes the test binary a load helper instead of running
// tests: it opens that many idle WebSocket agents (see runIdleClients).
const idleClientsEnv = "STEWARD_IDLE_CLIENTS"

func TestMain(m *testing.M) {
	if n := os.Getenv(idleClientsEnv); n != "" {
		os.Exit(runIdleClients(os.Getenv("STEWARD_IDLE_ADDR"), n))
	}
	os.Exit(m.Run())
}

// runIdleClients connects n agents to addr over raw TCP (handshake by
// hand, so the helper process stays small), each sends one status message,
// prints "ready" and holds its connection until stdin closes. It runs in a
// child process so that the benchmark's heap holds only the server side.
func runIdleClients(addr, nstr string) int {
	n, err := strconv.Atoi(nstr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	msg, _ := opamp.AppendWS(nil, status(1))
	frame := websocket.AppendFrame(nil, true, websocket.Binary, msg, true, [4]byte{7, 7, 7, 7})
	req := "GET " + opamp.DefaultPath + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	conns := make([]net.Conn, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for i := range next {
				c, err := connectIdle(addr, req, frame, buf)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				conns[i] = c
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "idle clients:", firstErr)
		return 1
	}
	fmt.Println("ready")
	if v := os.Getenv(heartbeatEnv); v != "" {
		every, _ := time.ParseDuration(v)
		for _, c := range conns {
			go heartbeatLoop(c, every)
		}
	}
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

func connectIdle(addr, req string, frame, buf []byte) (net.Conn, error) {
	var c net.Conn
	var err error
	for try := 0; try < 50; try++ { // the accept backlog may overflow briefly
		if c, err = net.DialTimeout("tcp", addr, 10*time.Second); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	got := 0
	for !bytes.Contains(buf[:got], []byte("\r\n\r\n")) {
		m, err := c.Read(buf[got:])
		if err != nil {
			return nil, err
		}
		got += m
		if got == len(buf) {
			return nil, fmt.Errorf("handshake response too long")
		}
	}
	if !bytes.HasPrefix(buf[:got], []byte("HTTP/1.1 101")) {
		line, _, _ := bufio.NewReader(bytes.NewReader(buf[:got])).ReadLine()
		return nil, fmt.Errorf("handshake refused: %s", line)
	}
	if _, err := c.Write(frame); err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
