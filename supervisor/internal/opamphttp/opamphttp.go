// Package opamphttp serves an opamp/server.Handler over OpAMP's plain-HTTP
// transport only (one POSTed AgentToServer, one ServerToAgent reply). It
// exists so the supervisor's local endpoint and its tests' server can run
// any server.Handler without the WebSocket machinery; the full transport is
// opamp/server.
package opamphttp

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/server"
	"google.golang.org/protobuf/proto"
)

// MaxMessageSize bounds one decoded request body.
const MaxMessageSize = 16 << 20

// New returns an http.Handler that decodes each POST as an AgentToServer,
// passes it to h (Accept, then OnMessage) and writes the reply with
// capabilities set. Bad requests get 400 with a plain-text reason; a
// malformed message never reaches h.
func New(h server.Handler, capabilities uint64) http.Handler {
	return &adapter{h: h, caps: capabilities}
}

type adapter struct {
	h    server.Handler
	caps uint64
}

type conn struct {
	r     *http.Request
	state any
}

func (c *conn) Send(*protobufs.ServerToAgent) error { return server.ErrNotPushable }
func (c *conn) Close() error                        { return nil }
func (c *conn) Transport() server.Transport         { return server.HTTP }
func (c *conn) RemoteAddr() string                  { return c.r.RemoteAddr }
func (c *conn) State() any                          { return c.state }

func (a *adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OpAMP over HTTP takes POST", http.StatusMethodNotAllowed)
		return
	}
	state, err := a.h.Accept(r)
	if err != nil {
		http.Error(w, steward.ErrorMessage(err), status(err))
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, MaxMessageSize)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = io.LimitReader(zr, MaxMessageSize+1)
	}
	b, err := io.ReadAll(body)
	if err != nil || len(b) > MaxMessageSize {
		http.Error(w, "request body unreadable or too large", http.StatusBadRequest)
		return
	}
	var msg protobufs.AgentToServer
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, "malformed AgentToServer message", http.StatusBadRequest)
		return
	}
	reply, err := a.h.OnMessage(r.Context(), &conn{r: r, state: state}, &msg)
	if err != nil {
		reply = errorReply(err)
	}
	if reply == nil {
		reply = &protobufs.ServerToAgent{}
	}
	reply.InstanceUid = msg.InstanceUid
	reply.Capabilities = a.caps
	out, err := proto.Marshal(reply)
	if err != nil {
		http.Error(w, "encode reply", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", opamp.ContentType)
	_, _ = w.Write(out)
}

func errorReply(err error) *protobufs.ServerToAgent {
	t := protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest
	if steward.ErrorCode(err) == steward.EUNAVAILABLE {
		t = protobufs.ServerErrorResponseType_ServerErrorResponseType_Unavailable
	}
	return &protobufs.ServerToAgent{ErrorResponse: &protobufs.ServerErrorResponse{Type: t, ErrorMessage: steward.ErrorMessage(err)}}
}

func status(err error) int {
	switch steward.ErrorCode(err) {
	case steward.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case steward.EFORBIDDEN:
		return http.StatusForbidden
	case steward.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	if errors.Is(err, context.Canceled) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}
