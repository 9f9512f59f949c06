package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Config configures a Server. Zero values select the documented defaults.
type Config struct {
	// Handler is the control plane; required.
	Handler Handler
	// Capabilities is set on every outgoing ServerToAgent; 0 means
	// opamp.ServerCapabilities.
	Capabilities uint64
	// MaxMessageSize limits one AgentToServer message after
	// decompression; default 16 MiB. A WebSocket message over it closes
	// the connection with 1009; an HTTP body over it gets 413.
	MaxMessageSize int64
	// MaxSendMessageSize limits one outgoing ServerToAgent (as encoded,
	// before compression); default 64 MiB. A larger message is not sent:
	// Send returns ErrMessageTooLarge, and it is counted in Stats.Discarded.
	MaxSendMessageSize int64
	// MaxConnections limits open WebSocket connections; 0 is unlimited.
	// Upgrades beyond it are refused with 503 and Retry-After.
	MaxConnections int
	// Workers is the number of goroutines that read WebSocket connections
	// and run the Handler for them; default GOMAXPROCS*4.
	Workers int
	// MaxInFlight limits plain-HTTP messages being handled at once;
	// beyond it requests get 503 with Retry-After. Default Workers*16.
	MaxInFlight int
	// IdleTimeout closes a WebSocket that sent nothing for this long;
	// 0 (default) never does.
	IdleTimeout time.Duration
	// FirstMessageTimeout closes (1008) a WebSocket whose first message
	// has not arrived this long after the upgrade, so that silent
	// connections cannot hold descriptors; default 30 s.
	FirstMessageTimeout time.Duration
	// WriteTimeout cuts off a WebSocket peer that accepts not one byte of
	// what it is sent for this long (logged at warn with the running count,
	// Stats.Stuck). A peer that reads slowly but reads is never cut off: it
	// gets its messages later. Default 2 minutes.
	WriteTimeout time.Duration
	// PushBudget bounds the bytes of large WebSocket messages (64 KiB and
	// more: big remote configs, package offers) in flight at once over all
	// connections: being written, or written to an agent that has neither
	// sent a message since nor had them all acknowledged by its kernel
	// (for at most 30 s). A message that finds no room waits in line, with
	// what its connection queued after it; the wait does not count against
	// WriteTimeout. One message always fits when nothing else is in
	// flight. Default 64 MiB; -1 for no bound. (Plain-HTTP replies are
	// not counted: each answers one poll.)
	PushBudget int64
	// RetryAfter is what overloaded and unavailable answers ask agents to
	// wait; default 5s.
	RetryAfter time.Duration
	// Logger receives connection-level problems; default slog.Default().
	Logger *slog.Logger
}

// Stats are counters of a Server.
type Stats struct {
	Connections int64  // open WebSocket connections
	InFlight    int64  // messages being handled now (both transports)
	Accepted    uint64 // WebSocket connections accepted in total
	Messages    uint64 // AgentToServer messages received in total
	Sent        uint64 // ServerToAgent messages written in total
	BytesIn     uint64 // message payload bytes received
	BytesOut    uint64 // message payload bytes written
	Errors      uint64 // malformed input, protocol violations, write failures
	Refused     uint64 // connections or requests refused (Accept error, overload, limits)
	Discarded   uint64 // outgoing messages not sent for exceeding MaxSendMessageSize
	Stuck       uint64 // WebSocket peers cut off for not reading (WriteTimeout, queue limits)
	// PushInFlight is the bytes of large messages in flight now, and
	// PushPaced the large messages that waited for room (Config.PushBudget).
	PushInFlight int64
	PushPaced    uint64
	// ConfigEncodings counts remote configs marshalled: once per
	// AgentRemoteConfig object, however many agents it is sent to.
	ConfigEncodings uint64
}

// ErrMessageTooLarge is returned by Conn.Send for a message over
// Config.MaxSendMessageSize; the message is not sent.
var ErrMessageTooLarge = errors.New("opamp server: message exceeds the send size limit; not sent")

// Server serves OpAMP over WebSocket and plain HTTP on one http.Handler.
// On Linux, idle plain-TCP WebSockets are held in an epoll set without a
// goroutine; TLS connections and other systems use a goroutine each.
//
// Outgoing messages are not modified: Capabilities (and the agent's
// instance_uid when the message has none) are added on the wire, so one
// message may be sent to many connections concurrently.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger

	ctx    context.Context // passed to Handler.OnMessage; cancelled when Shutdown gives up
	cancel context.CancelFunc

	poll  *poller // nil: goroutine per connection
	tasks chan *wsConn
	wg    sync.WaitGroup // poller and workers

	mu     sync.Mutex
	conns  map[uint64]*wsConn
	silent map[uint64]int64 // no message yet: when each was opened, unix nanoseconds (FirstMessageTimeout)
	// silentPeak is the most entries silent held since it was made.
	silentPeak int
	nextID     uint64
	shutting   bool
	stopped    bool

	httpSem chan struct{}

	open      atomic.Int64 // WebSocket connections counted against MaxConnections
	inflight  atomic.Int64
	httpAct   atomic.Int64 // HTTP exchanges in progress
	accepted  atomic.Uint64
	messages  atomic.Uint64
	sent      atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	errs      atomic.Uint64
	refused   atomic.Uint64
	discarded atomic.Uint64
	stuck     atomic.Uint64
	configs   configCache
	budget    *pushBudget // nil: no bound (Config.PushBudget)
	maxQueue  int         // bytes a connection's write queue may hold
	idleStop  chan struct{}
	idleDone  chan struct{}
	stopOnce  sync.Once
	retryHdr  string
	retryNano uint64
}

// New returns a Server for cfg, with its reader goroutines started. It
// fails when cfg.Handler is nil or a limit is negative.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("opamp server: Config.Handler is required")
	}
	if cfg.MaxMessageSize < 0 || cfg.MaxSendMessageSize < 0 || cfg.MaxConnections < 0 || cfg.Workers < 0 || cfg.MaxInFlight < 0 ||
		cfg.IdleTimeout < 0 || cfg.WriteTimeout < 0 || cfg.RetryAfter < 0 || cfg.FirstMessageTimeout < 0 || cfg.PushBudget < -1 {
		return nil, errors.New("opamp server: negative limit in Config")
	}
	if cfg.Capabilities == 0 {
		cfg.Capabilities = opamp.ServerCapabilities
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = 16 << 20
	}
	if cfg.MaxSendMessageSize == 0 {
		cfg.MaxSendMessageSize = 64 << 20
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0) * 4
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = cfg.Workers * 16
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 2 * time.Minute
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.PushBudget == 0 {
		cfg.PushBudget = 64 << 20
	}
	if cfg.FirstMessageTimeout == 0 {
		cfg.FirstMessageTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		handler:   cfg.Handler,
		log:       cfg.Logger,
		conns:     make(map[uint64]*wsConn),
		silent:    make(map[uint64]int64),
		httpSem:   make(chan struct{}, cfg.MaxInFlight),
		retryHdr:  strconv.FormatInt(int64(math.Ceil(cfg.RetryAfter.Seconds())), 10),
		retryNano: uint64(cfg.RetryAfter.Nanoseconds()),
		maxQueue:  int(max(64<<20, 2*cfg.MaxSendMessageSize)),
	}
	if cfg.PushBudget > 0 {
		s.budget = newPushBudget(int(cfg.PushBudget))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	p, err := newPoller(s)
	if err != nil {
		s.log.Warn("opamp server: epoll unavailable, using a goroutine per connection", "err", err)
	}
	if p != nil {
		s.poll = p
		s.tasks = make(chan *wsConn, cfg.Workers*64)
		s.wg.Add(1 + cfg.Workers)
		go func() { defer s.wg.Done(); p.run() }()
		for i := 0; i < cfg.Workers; i++ {
			go func() {
				defer s.wg.Done()
				for c := range s.tasks {
					c.onReadable()
				}
			}()
		}
	}
	s.idleStop, s.idleDone = make(chan struct{}), make(chan struct{})
	go s.idleLoop()
	return s, nil
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := int64(len(s.conns))
	s.mu.Unlock()
	used, paced := s.budget.inUse()
	return Stats{
		Connections: n,
		InFlight:    s.inflight.Load(),
		Accepted:    s.accepted.Load(),
		Messages:    s.messages.Load(),
		Sent:        s.sent.Load(),
		BytesIn:     s.bytesIn.Load(),
		BytesOut:    s.bytesOut.Load(),
		Errors:      s.errs.Load(),
		Refused:     s.refused.Load(),
		Discarded:   s.discarded.Load(),
		Stuck:       s.stuck.Load(),

		PushInFlight:    int64(used),
		PushPaced:       paced,
		ConfigEncodings: s.configs.count(),
	}
}

// ServeHTTP serves the OpAMP endpoint: a GET with Upgrade: websocket
// becomes a WebSocket connection, a POST is a plain-HTTP exchange, a GET
// without upgrade gets 426 and any other method 405 with Allow.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost:
		s.serveHTTP(w, r)
	case websocket.IsUpgrade(r):
		s.serveWS(w, r)
	case r.Method == http.MethodGet:
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		http.Error(w, "opamp: GET must be a WebSocket upgrade; poll with POST", http.StatusUpgradeRequired)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "opamp: method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
	}
}

// refuse writes an HTTP refusal for a steward error from Handler.Accept
// or for overload: EUNAUTHORIZED 401, EFORBIDDEN 403, ETOOMANY 429,
// EUNAVAILABLE 503, others 400. Retry-After carries the error's delay (see
// RetryAfter), or Config.RetryAfter for 503 and 429.
func (s *Server) refuse(w http.ResponseWriter, err error) {
	s.refused.Add(1)
	status, delayed := Refusal(w, err)
	if !delayed && (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) {
		w.Header().Set("Retry-After", s.retryHdr)
	}
	http.Error(w, steward.ErrorMessage(err), status)
}

// Refusal returns the HTTP status of a refusal for a steward error —
// EUNAUTHORIZED 401, EFORBIDDEN 403, ETOOMANY 429, EUNAVAILABLE 503, others
// 400 — and sets Retry-After when err carries a delay (RetryAfter),
// reporting whether it did. The own-telemetry receiver refuses the same way.
func Refusal(w http.ResponseWriter, err error) (status int, delayed bool) {
	status = http.StatusBadRequest
	switch steward.ErrorCode(err) {
	case steward.EUNAUTHORIZED:
		status = http.StatusUnauthorized
	case steward.EFORBIDDEN:
		status = http.StatusForbidden
	case steward.ETOOMANY:
		status = http.StatusTooManyRequests
	case steward.EUNAVAILABLE:
		status = http.StatusServiceUnavailable
	}
	if d, ok := retryOf(err); ok {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
		return status, true
	}
	return status, false
}

// RetryAfter returns err carrying a delay d: the transport asks the agent
// to wait that long before trying again — Retry-After on an HTTP refusal
// (any status), RetryInfo on an UNAVAILABLE ServerErrorResponse — instead
// of Config.RetryAfter. ErrorCode and ErrorMessage see through it.
func RetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryError{err: err, after: d}
}

type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retryOf returns the delay RetryAfter put on err.
func retryOf(err error) (time.Duration, bool) {
	var re *retryError
	if errors.As(err, &re) {
		return re.after, true
	}
	return 0, false
}

var errShuttingDown = steward.Errorf(steward.EUNAVAILABLE, "server is shutting down")

// Shutdown stops accepting connections and requests, closes every
// WebSocket with status 1001 (going away) and waits for them to end and for
// in-flight HTTP exchanges to finish; the server's goroutines have exited
// when it returns nil. When ctx ends first, the contexts passed to
// OnMessage are cancelled, the remaining connections dropped (OnClose is
// still called for each, once its handler returns), and ctx's error is
// returned after at most 5 more seconds; a handler that ignores its
// context keeps its worker until it returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting = true
	conns := s.connList()
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !s.drained() {
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
		}
		// Out of time: cancel handlers, drop the rest.
		s.cancel()
		s.mu.Lock()
		conns = s.connList()
		s.mu.Unlock()
		for _, c := range conns {
			c.finish()
		}
		limit := time.NewTimer(5 * time.Second)
		defer limit.Stop()
		for !s.drained() {
			select {
			case <-tick.C:
			case <-limit.C:
				go s.stop()
				return ctx.Err()
			}
		}
		s.stop()
		return ctx.Err()
	}
	s.stop()
	return nil
}

// connList returns the open connections; s.mu is held.
func (s *Server) connList() []*wsConn {
	conns := make([]*wsConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// drained reports whether no WebSocket is open and no HTTP exchange runs.
func (s *Server) drained() bool {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return n == 0 && s.httpAct.Load() == 0
}

// stop ends the poller, workers and idle sweeper.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		if s.poll != nil {
			s.poll.stop()
			close(s.tasks)
		}
		close(s.idleStop)
		<-s.idleDone
		s.wg.Wait()
		s.cancel()
	})
}

// idleLoop closes WebSockets that sent no first message within
// FirstMessageTimeout, and those idle for longer than IdleTimeout.
func (s *Server) idleLoop() {
	defer close(s.idleDone)
	every := s.cfg.FirstMessageTimeout
	if s.cfg.IdleTimeout > 0 {
		every = min(every, s.cfg.IdleTimeout)
	}
	every = min(max(every/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var idle, silent []*wsConn
	for {
		select {
		case <-s.idleStop:
			return
		case now := <-t.C:
			idle, silent = idle[:0], silent[:0]
			first := now.Add(-s.cfg.FirstMessageTimeout).UnixNano()
			s.mu.Lock()
			for id, opened := range s.silent {
				if c := s.conns[id]; c != nil && opened < first {
					silent = append(silent, c)
				}
			}
			if s.cfg.IdleTimeout > 0 {
				limit := now.Add(-s.cfg.IdleTimeout).UnixNano()
				for _, c := range s.conns {
					if c.lastRead.Load() < limit {
						idle = append(idle, c)
					}
				}
			}
			s.mu.Unlock()
			for _, c := range silent {
				s.refused.Add(1)
				c.closeWith(websocket.ClosePolicyViolation, "no message within the first-message timeout")
			}
			for _, c := range idle {
				c.closeWith(websocket.CloseNormal, "idle timeout")
			}
		}
	}
}

// Wire field numbers of ServerToAgent that the transport adds.
const (
	fieldInstanceUID  = 1
	fieldCapabilities = 7
)

// appendServerToAgent appends msg's encoding, followed by the capabilities
// field and, if msg has no instance_uid, uid. Appended singular fields win
// over earlier ones when decoded, so msg itself is never modified.
func (s *Server) appendServerToAgent(dst []byte, msg *protobufs.ServerToAgent, uid []byte) ([]byte, error) {
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, msg)
	if err != nil {
		return dst, fmt.Errorf("opamp server: encoding ServerToAgent: %w", err)
	}
	dst = protowire.AppendTag(dst, fieldCapabilities, protowire.VarintType)
	dst = protowire.AppendVarint(dst, s.cfg.Capabilities)
	if len(msg.GetInstanceUid()) == 0 && len(uid) > 0 {
		dst = protowire.AppendTag(dst, fieldInstanceUID, protowire.BytesType)
		dst = protowire.AppendBytes(dst, uid)
	}
	return dst, nil
}

// checkSize enforces MaxSendMessageSize on an encoded message of n bytes.
func (s *Server) checkSize(n int) error {
	if int64(n) > s.cfg.MaxSendMessageSize {
		s.discarded.Add(1)
		s.log.Warn("opamp server: outgoing message over the size limit discarded", "bytes", n, "limit", s.cfg.MaxSendMessageSize)
		return ErrMessageTooLarge
	}
	return nil
}

// validate checks what the transport requires of every AgentToServer: an
// instance_uid of 16 bytes.
func validate(msg *protobufs.AgentToServer) error {
	if n := len(msg.InstanceUid); n != 16 {
		return steward.Errorf(steward.EINVALID, "instance_uid must be 16 bytes, got %d", n)
	}
	return nil
}

// errorReply builds the ServerToAgent answering a handler or decoding
// error: UNAVAILABLE with RetryInfo for EUNAVAILABLE, BAD_REQUEST
// otherwise.
func (s *Server) errorReply(uid []byte, err error) *protobufs.ServerToAgent {
	e := &protobufs.ServerErrorResponse{
		Type:         protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest,
		ErrorMessage: steward.ErrorMessage(err),
	}
	if code := steward.ErrorCode(err); code == steward.EUNAVAILABLE || code == steward.ETOOMANY {
		retry := s.retryNano
		if d, ok := retryOf(err); ok {
			retry = uint64(d.Nanoseconds())
		}
		e.Type = protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable
		e.Details = &protobufs.ServerErrorResponse_RetryInfo{
			RetryInfo: &protobufs.RetryInfo{RetryAfterNanoseconds: retry},
		}
	}
	return &protobufs.ServerToAgent{InstanceUid: uid, ErrorResponse: e}
}
