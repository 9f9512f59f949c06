package server

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"google.golang.org/protobuf/proto"
)

// httpConn is one plain-HTTP exchange.
type httpConn struct {
	remote   string
	state    any
	received time.Time // when the request was read
}

func (c *httpConn) Send(*protobufs.ServerToAgent) error { return ErrNotPushable }
func (c *httpConn) Close() error                        { return nil }
func (c *httpConn) Transport() Transport                { return HTTP }
func (c *httpConn) RemoteAddr() string                  { return c.remote }
func (c *httpConn) State() any                          { return c.state }
func (c *httpConn) LastReceived() time.Time             { return c.received }

var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}
	gzipReaders sync.Pool
	bodyBufs    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// errTooLarge marks a body over MaxMessageSize.
var errTooLarge = errors.New("message exceeds the size limit")

// readBody reads the request body, gunzipping it when Content-Encoding
// says gzip, into buf. Both the compressed and the decompressed size are
// limited to MaxMessageSize (errTooLarge).
func (s *Server) readBody(r *http.Request, buf *bytes.Buffer) error {
	limit := s.cfg.MaxMessageSize
	if r.ContentLength > limit {
		return errTooLarge
	}
	body := io.Reader(io.LimitReader(r.Body, limit+1))
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		var zr *gzip.Reader
		if v := gzipReaders.Get(); v != nil {
			zr = v.(*gzip.Reader)
			if err := zr.Reset(body); err != nil {
				gzipReaders.Put(zr)
				return steward.Errorf(steward.EINVALID, "invalid gzip body: %v", err)
			}
		} else {
			var err error
			if zr, err = gzip.NewReader(body); err != nil {
				return steward.Errorf(steward.EINVALID, "invalid gzip body: %v", err)
			}
		}
		defer gzipReaders.Put(zr)
		body = zr
	default:
		return steward.Errorf(steward.EINVALID, "unsupported Content-Encoding %q", enc)
	}
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if n > limit {
		return errTooLarge
	}
	if err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return steward.Errorf(steward.EINVALID, "invalid gzip body: %v", err)
		}
		return err
	}
	// A compressed body cut at the limit reads as a truncated stream.
	if n, _ := io.CopyN(io.Discard, r.Body, 1); n > 0 {
		return errTooLarge
	}
	return nil
}

// serveHTTP handles one plain-HTTP exchange: POST of an AgentToServer,
// answered with a ServerToAgent.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.httpAct.Add(1)
	defer s.httpAct.Add(-1)
	s.mu.Lock()
	down := s.shutting || s.stopped
	s.mu.Unlock()
	if down {
		s.refused.Add(1)
		s.writeReply(w, r, http.StatusServiceUnavailable, s.errorReply(nil, errShuttingDown))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != opamp.ContentType {
			s.errs.Add(1)
			s.writeReply(w, r, http.StatusUnsupportedMediaType, s.errorReply(nil,
				steward.Errorf(steward.EINVALID, "Content-Type %q, want %s", ct, opamp.ContentType)))
			return
		}
	}
	select {
	case s.httpSem <- struct{}{}:
		defer func() { <-s.httpSem }()
	default:
		s.refused.Add(1)
		s.writeReply(w, r, http.StatusServiceUnavailable, s.errorReply(nil,
			steward.Errorf(steward.EUNAVAILABLE, "server overloaded")))
		return
	}
	state, err := s.handler.Accept(r)
	if err != nil {
		s.refuse(w, err)
		return
	}
	buf := bodyBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bodyBufs.Put(buf)
		}
	}()
	if err := s.readBody(r, buf); err != nil {
		s.errs.Add(1)
		status := http.StatusBadRequest
		switch {
		case err == errTooLarge:
			status = http.StatusRequestEntityTooLarge
			err = steward.Errorf(steward.EINVALID, "AgentToServer message exceeds %d bytes", s.cfg.MaxMessageSize)
		case steward.ErrorCode(err) == steward.EINTERNAL:
			// The client went away or the body could not be read.
			err = steward.Errorf(steward.EINVALID, "reading request body: %v", err)
		}
		s.writeReply(w, r, status, s.errorReply(nil, err))
		return
	}
	s.messages.Add(1)
	s.bytesIn.Add(uint64(buf.Len()))
	msg := &protobufs.AgentToServer{}
	if err := proto.Unmarshal(buf.Bytes(), msg); err != nil {
		s.errs.Add(1)
		s.writeReply(w, r, http.StatusBadRequest, s.errorReply(nil,
			steward.Errorf(steward.EINVALID, "undecodable AgentToServer message: %v", err)))
		return
	}
	if err := validate(msg); err != nil {
		s.errs.Add(1)
		s.writeReply(w, r, http.StatusBadRequest, s.errorReply(msg.InstanceUid, err))
		return
	}
	c := &httpConn{remote: r.RemoteAddr, state: state, received: time.Now()}
	reply, err := s.call(r.Context(), c, msg)
	if err != nil {
		status, _ := Refusal(w, err)
		s.writeReply(w, r, status, s.errorReply(msg.InstanceUid, err))
		return
	}
	if reply == nil {
		reply = &protobufs.ServerToAgent{}
	}
	s.writeReplyUID(w, r, http.StatusOK, reply, msg.InstanceUid)
}

func (s *Server) writeReply(w http.ResponseWriter, r *http.Request, status int, msg *protobufs.ServerToAgent) {
	s.writeReplyUID(w, r, status, msg, nil)
}

// minGzipReply is the smallest reply gzipped: below it compression saves
// no packet, and setting up the compressor costs more than the reply
// (most replies are a heartbeat's, a few dozen bytes, which gzip makes
// longer).
const minGzipReply = 1024

// writeReplyUID writes msg (with Capabilities, and uid when msg has no
// instance_uid) as the response, gzipped when the request accepts gzip and
// the reply is at least minGzipReply bytes. A 503 carries Retry-After.
func (s *Server) writeReplyUID(w http.ResponseWriter, r *http.Request, status int, msg *protobufs.ServerToAgent, uid []byte) {
	out, err := s.encodeBody(msg, uid)
	if err != nil {
		s.errs.Add(1)
		s.log.Error("opamp server: encoding reply", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if s.checkSize(len(out)) != nil {
		// The reply is not sent; the agent learns why.
		status = http.StatusInternalServerError
		out, _ = s.appendServerToAgent(nil, &protobufs.ServerToAgent{ErrorResponse: &protobufs.ServerErrorResponse{
			Type:         protobufs.ServerErrorResponseType_ServerErrorResponseType_Unknown,
			ErrorMessage: "reply exceeds the server's send size limit",
		}}, uid)
	}
	h := w.Header()
	h.Set("Content-Type", opamp.ContentType)
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", s.retryHdr)
	}
	if len(out) >= minGzipReply && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(status)
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(w)
		_, err = zw.Write(out)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		zw.Reset(io.Discard)
		gzipWriters.Put(zw)
	} else {
		h.Set("Content-Length", itoa(len(out)))
		w.WriteHeader(status)
		_, err = w.Write(out)
	}
	if err == nil {
		s.sent.Add(1)
		s.bytesOut.Add(uint64(len(out)))
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// acceptsGzip reports whether Accept-Encoding lists gzip with a non-zero
// quality.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
