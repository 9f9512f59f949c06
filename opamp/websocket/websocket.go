// Package websocket is Steward's own RFC 6455 implementation, shared by the
// OpAMP client and server. It offers a blocking Conn for clients (Dial) and
// goroutine-per-connection servers (Accept), and the building blocks an
// event-driven server needs: the server handshake (Hijack), an incremental
// frame Parser that can be fed bytes as they arrive from non-blocking reads,
// and AppendFrame to encode frames.
//
// Extensions and subprotocols are not negotiated: RSV bits must be zero.
package websocket

import (
	"errors"
	"fmt"
)

// Opcode is a WebSocket frame opcode.
type Opcode byte

// Frame opcodes (RFC 6455 section 5.2).
const (
	Continuation Opcode = 0x0
	Text         Opcode = 0x1
	Binary       Opcode = 0x2
	Close        Opcode = 0x8
	Ping         Opcode = 0x9
	Pong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (Close, Ping, Pong).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

func (op Opcode) String() string {
	switch op {
	case Continuation:
		return "continuation"
	case Text:
		return "text"
	case Binary:
		return "binary"
	case Close:
		return "close"
	case Ping:
		return "ping"
	case Pong:
		return "pong"
	}
	return fmt.Sprintf("opcode(%d)", byte(op))
}

// Close status codes (RFC 6455 section 7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005 // never sent: the close frame had no code
	CloseAbnormal        = 1006 // never sent: the connection dropped without a close frame
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
)

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// DefaultMaxMessageSize limits a reassembled message when no limit is set.
const DefaultMaxMessageSize = 16 << 20

// CloseError is returned by Conn.ReadMessage when the peer sent a close
// frame. Code is CloseNoStatus when the frame carried no status code.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket: closed by peer with code %d", e.Code)
	}
	return fmt.Sprintf("websocket: closed by peer with code %d: %s", e.Code, e.Reason)
}

// ProtocolError reports input that violates RFC 6455 or a configured limit.
// Code is the close status the receiver fails the connection with (1002
// protocol error, 1007 invalid payload, 1009 message too big).
type ProtocolError struct {
	Code   int
	Reason string
}

func (e *ProtocolError) Error() string { return "websocket: " + e.Reason }

// ErrMessageTooBig is returned (wrapped in nothing: compare with errors.Is)
// by the Parser when a message exceeds its MaxMessageSize.
var ErrMessageTooBig = &ProtocolError{Code: CloseMessageTooBig, Reason: "message exceeds the size limit"}

// ErrCloseSent is returned by writes after a close frame was sent.
var ErrCloseSent = errors.New("websocket: close frame already sent")

// ErrBadHandshake is wrapped by Dial and Hijack errors about an invalid
// opening handshake.
var ErrBadHandshake = errors.New("websocket: bad handshake")

func protoErr(format string, args ...any) error {
	return &ProtocolError{Code: CloseProtocolError, Reason: fmt.Sprintf(format, args...)}
}

// CloseCode returns the close status a connection should be failed with
// after err: the ProtocolError's code, or CloseInternalError otherwise.
func CloseCode(err error) int {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CloseInternalError
}

// validCloseCode reports whether code may appear in a close frame.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
