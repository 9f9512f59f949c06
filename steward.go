// Package steward is the domain of Steward, an OpAMP control plane: the
// agents it manages, the configurations it offers them and the services that
// act on both. It performs no I/O; implementations live in packages named
// after what they wrap (store/sqlite, store/postgres, opamp/server, http, ...).
package steward

import (
	"errors"
	"fmt"
)

// Error codes shared by every implementation. Callers test them with
// ErrorCode(err) == ENOTFOUND (and so on); transports map them to status
// codes (HTTP 404, 400, 409, ...).
const (
	ECONFLICT       = "conflict"
	EINTERNAL       = "internal"
	EINVALID        = "invalid"
	ENOTFOUND       = "not_found"
	ENOTIMPLEMENTED = "not_implemented"
	EUNAUTHORIZED   = "unauthorized"
	EFORBIDDEN      = "forbidden"
	EUNAVAILABLE    = "unavailable"
	// ETOOMANY: too many attempts; retry later (HTTP 429).
	ETOOMANY = "too_many_requests"
)

// Error is a domain error: a machine-readable code and a message meant for
// the person who made the request.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("steward: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for any other error (internal details are not exposed).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
