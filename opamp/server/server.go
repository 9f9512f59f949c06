// Package server is Steward's OpAMP server transport: WebSocket and plain
// HTTP on one endpoint, built to hold very many idle agents cheaply. It knows
// the wire protocol (framing, compression, limits, overload) but nothing of
// fleet state; a Handler supplies that.
package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
)

// Transport names how an agent is connected.
type Transport string

const (
	WebSocket Transport = "websocket"
	HTTP      Transport = "http"
)

// ErrNotPushable is returned by Conn.Send on plain-HTTP connections: the
// server can answer a poll but not push.
var ErrNotPushable = errors.New("opamp server: cannot push to an HTTP agent; reply to its next poll instead")

// ErrClosed is returned by Conn.Send after the connection has closed.
var ErrClosed = errors.New("opamp server: connection closed")

// Conn is one agent connection: a WebSocket for its whole life, or a single
// HTTP request/response exchange.
type Conn interface {
	// Send queues msg for the agent and returns without waiting for the
	// write. Messages to one Conn are written in the order sent. msg is
	// not modified (one message may be pushed to many agents at once): the
	// capabilities and the agent's instance_uid are set on the wire.
	// A remote config is encoded once per AgentRemoteConfig object and the
	// bytes reused for every agent it is sent to, so it must not be
	// modified once sent (build a new one for a new config).
	// ErrNotPushable on HTTP, ErrClosed once closed, ErrMessageTooLarge
	// over MaxSendMessageSize. A peer that reads slowly gets the message
	// later; one that accepts nothing for the write timeout is
	// disconnected rather than allowed to block anyone.
	Send(msg *protobufs.ServerToAgent) error
	// Close ends the connection (WebSocket close frame, then TCP close).
	Close() error
	Transport() Transport
	RemoteAddr() string
	// State returns what Handler.Accept returned for this connection.
	State() any
	// LastReceived returns when bytes from the agent last arrived: now
	// while some wait unread in the socket (its reader is still busy with
	// an earlier message, or no worker has got to it yet), so that an
	// agent is not taken for silent because the server is slow to read it.
	// For HTTP, when the request was read.
	LastReceived() time.Time
}

// Handler is the control plane behind the transport.
type Handler interface {
	// Accept sees the WebSocket upgrade request or each HTTP POST before any
	// message is read. A non-nil error refuses it; the transport maps the
	// steward error code to a status (EUNAUTHORIZED 401, EFORBIDDEN 403,
	// EUNAVAILABLE 503 with Retry-After, others 400). The returned state is
	// kept with the connection (Conn.State).
	Accept(r *http.Request) (state any, err error)
	// OnMessage handles one AgentToServer message. Messages of one
	// connection are delivered one at a time, in order; different
	// connections are handled concurrently. The reply (nil: none on
	// WebSocket, an empty reply on HTTP) is sent with Capabilities set.
	// An error is answered with a ServerErrorResponse: EUNAVAILABLE becomes
	// UNAVAILABLE with RetryInfo (HTTP 503 with Retry-After), other codes
	// BAD_REQUEST, carrying steward.ErrorMessage(err).
	OnMessage(ctx context.Context, c Conn, msg *protobufs.AgentToServer) (*protobufs.ServerToAgent, error)
	// OnClose is called once when a WebSocket connection ends, for any
	// reason. It is not called for HTTP exchanges.
	OnClose(c Conn)
}
