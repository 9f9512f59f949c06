package server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	gosrv "github.com/open-telemetry/opamp-go/server"
	gotypes "github.com/open-telemetry/opamp-go/server/types"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
)

// idleConns is how many agents BenchmarkIdleWebSocketMemory opens
// (STEWARD_BENCH_CONNS overrides; the default runs in well under a minute).
func idleConns() int {
	if n, err := strconv.Atoi(os.Getenv("STEWARD_BENCH_CONNS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// idleServer is a server under measurement: its address, how many
// messages it has handled, and how to stop it.
type idleServer struct {
	addr     string
	messages func() int64
	conns    func() int64
	stop     func()
}

func startStewardIdle(b *testing.B) idleServer {
	var msgs atomic.Int64
	h := &countingHandler{msgs: &msgs}
	s, err := New(Config{Handler: h, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: s}
	go hs.Serve(ln)
	return idleServer{
		addr:     ln.Addr().String(),
		messages: msgs.Load,
		conns:    func() int64 { return s.Stats().Connections },
		stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			hs.Close()
			s.Shutdown(ctx)
		},
	}
}

type countingHandler struct{ msgs *atomic.Int64 }

func (h *countingHandler) Accept(*http.Request) (any, error) { return nil, nil }
func (h *countingHandler) OnMessage(ctx context.Context, c Conn, m *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	h.msgs.Add(1)
	return &protobufs.ServerToAgent{}, nil
}
func (h *countingHandler) OnClose(Conn) {}

func startOpampGoIdle(b *testing.B) idleServer {
	var msgs, conns atomic.Int64
	srv := gosrv.New(nil)
	err := srv.Start(gosrv.StartSettings{
		ListenEndpoint: "127.0.0.1:0",
		Settings: gosrv.Settings{Callbacks: gotypes.Callbacks{
			OnConnecting: func(r *http.Request) gotypes.ConnectionResponse {
				return gotypes.ConnectionResponse{Accept: true, ConnectionCallbacks: gotypes.ConnectionCallbacks{
					OnConnected: func(ctx context.Context, c gotypes.Connection) { conns.Add(1) },
					OnMessage: func(ctx context.Context, c gotypes.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
						msgs.Add(1)
						return &protobufs.ServerToAgent{}
					},
					OnConnectionClose: func(c gotypes.Connection) { conns.Add(-1) },
				}}
			},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return idleServer{
		addr:     srv.Addr().String(),
		messages: msgs.Load,
		conns:    conns.Load,
		stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			srv.Stop(ctx)
		},
	}
}

func memNow() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// measureIdle opens n idle agents (in a child process) against the server
// and reports the server's cost per connection.
func measureIdle(b *testing.B, n int, start func(*testing.B) idleServer) {
	srv := start(b)
	heap0, stack0 := memNow()
	g0 := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleClientsEnv+"="+strconv.Itoa(n), "STEWARD_IDLE_ADDR="+srv.addr)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		srv.stop()
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("client helper: %q %v", line, err)
	}
	eventually(b, "all agents connected and reported", func() bool {
		return srv.conns() == int64(n) && srv.messages() == int64(n)
	})
	time.Sleep(200 * time.Millisecond) // let replies drain and handshake goroutines exit
	heap1, stack1 := memNow()
	g1 := runtime.NumGoroutine()
	b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(n), "heap-B/conn")
	b.ReportMetric(float64(int64(stack1)-int64(stack0))/float64(n), "stack-B/conn")
	b.ReportMetric(float64(int64(heap1+stack1)-int64(heap0+stack0))/float64(n), "B/conn")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
}

// BenchmarkIdleWebSocketMemory measures what an idle WebSocket agent (one
// that connected and reported once) costs the server: Go heap, goroutine
// stacks and goroutines per connection, for Steward's server and, for
// comparison, opamp-go's. Run with -benchtime=1x.
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	n := idleConns()
	b.Run("steward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			measureIdle(b, n, startStewardIdle)
		}
	})
	b.Run("opamp-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			measureIdle(b, n, startOpampGoIdle)
		}
	})
}

// BenchmarkMessageRoundTrip measures one heartbeat (a status message with
// instance_uid and sequence number, answered with an empty ServerToAgent)
// over loopback, client included, on each transport.
func BenchmarkMessageRoundTrip(b *testing.B) {
	b.Run("websocket", func(b *testing.B) {
		var msgs atomic.Int64
		_, hs := startServer(b, &countingHandler{msgs: &msgs}, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, wsURL(hs), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Close()
		msg := status(0)
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			msg.SequenceNum = uint64(i)
			buf, _ = opamp.AppendWS(buf[:0], msg)
			if err := ws.WriteMessage(websocket.Binary, buf); err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("http", func(b *testing.B) { benchHTTPRoundTrip(b, true) })
	// As Go's default client polls: it accepts gzip.
	b.Run("http-accept-gzip", func(b *testing.B) { benchHTTPRoundTrip(b, false) })
}

// benchHTTPRoundTrip is one plain-HTTP poll per op; noGzip clients do not
// accept a gzipped reply.
func benchHTTPRoundTrip(b *testing.B, noGzip bool) {
	var msgs atomic.Int64
	_, hs := startServer(b, &countingHandler{msgs: &msgs}, Config{})
	client := &http.Client{Transport: &http.Transport{DisableCompression: noGzip}}
	url := hs.URL + opamp.DefaultPath
	body := marshalB(status(1))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Post(url, opamp.ContentType, bytesReader(body))
		if err != nil {
			b.Fatal(err)
		}
		drain(resp)
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

func marshalB(m *protobufs.AgentToServer) []byte {
	b, _ := protoMarshal(m)
	return b
}
