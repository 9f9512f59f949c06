// Package http is Steward's REST API: JSON over HTTP under /api/v1, described
// by an OpenAPI 3.1 document (docs/openapi.yaml, served at
// /api/v1/openapi.yaml), and a Go Client for it. The Server adapts the domain
// services (steward.AgentService, steward.ConfigService, steward.EventBus) to
// HTTP; it holds no fleet state of its own.
//
// Every error response has the body
//
//	{"error":{"code":"not_found","message":"..."}}
//
// where code is a steward error code and the status is mapped from it (see
// ErrorStatusCode). Internal errors are logged and reported as a generic 500
// without details.
package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/stewardhq/steward"
)

// MaxBodySize bounds every request body (8 MiB); larger bodies get 413.
const MaxBodySize = 8 << 20

// ErrorResponse is the JSON body of every error response.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a steward error code and a message for people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var codes = map[string]int{
	steward.EINVALID:        http.StatusBadRequest,
	steward.EUNAUTHORIZED:   http.StatusUnauthorized,
	steward.EFORBIDDEN:      http.StatusForbidden,
	steward.ENOTFOUND:       http.StatusNotFound,
	steward.ECONFLICT:       http.StatusConflict,
	steward.EUNAVAILABLE:    http.StatusServiceUnavailable,
	steward.ETOOMANY:        http.StatusTooManyRequests,
	steward.ENOTIMPLEMENTED: http.StatusNotImplemented,
	steward.EINTERNAL:       http.StatusInternalServerError,
	EVALIDATION:             http.StatusUnprocessableEntity,
}

// ErrorStatusCode maps a steward error code to an HTTP status: EINVALID 400,
// EUNAUTHORIZED 401, EFORBIDDEN 403, ENOTFOUND 404, ECONFLICT 409,
// EUNAVAILABLE 503, ENOTIMPLEMENTED 501, EVALIDATION 422 and anything
// else 500.
func ErrorStatusCode(code string) int {
	if v, ok := codes[code]; ok {
		return v
	}
	return http.StatusInternalServerError
}

// FromErrorStatusCode maps an HTTP status back to a steward error code, for
// responses that carry no code of their own.
func FromErrorStatusCode(status int) string {
	switch status {
	case http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return steward.EINVALID
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return steward.EUNAVAILABLE
	}
	for code, v := range codes {
		if v == status {
			return code
		}
	}
	return steward.EINTERNAL
}

// handlerFunc is the shape of every handler in this package: it writes a
// success response itself and returns a failure instead of writing it, so
// that errorHandler is the one place where errors become responses. A
// handler that has started its response (a stream, served content) returns
// nil: a status cannot be sent twice.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// errorHandler adapts a handlerFunc to http.Handler, the way
// http.HandlerFunc adapts a plain function: a returned error is written by
// writeError, which maps its steward code to the status and logs internal
// errors to log.
type errorHandler struct {
	fn  handlerFunc
	log *slog.Logger
}

func (h errorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.fn(w, r); err != nil {
		writeError(w, r, h.log, err)
	}
}

// writeError writes err as an error response. Internal errors are logged with
// their detail and answered with a generic message.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, msg := steward.ErrorCode(err), steward.ErrorMessage(err)
	status := ErrorStatusCode(code)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		code, status = steward.EINVALID, http.StatusRequestEntityTooLarge
		msg = fmt.Sprintf("request body is larger than the limit of %d bytes", tooBig.Limit)
	}
	if code == steward.EINTERNAL {
		if log != nil {
			log.Error("http: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		msg = "internal error"
	}
	if code == steward.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="steward"`)
	}
	writeJSON(w, status, ErrorResponse{Error: ErrorBody{Code: code, Message: msg}})
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decodeJSON reads the request body into v. The body must be one JSON value
// with no unknown fields; errors are EINVALID naming the problem, or a
// *http.MaxBytesError (413) when the body is over the limit.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return steward.Errorf(steward.EINVALID, "unsupported content type %q: send application/json", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Anything after the value other than whitespace is an error.
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
	}
	return steward.Errorf(steward.EINVALID, "invalid JSON body: unexpected data after the first value")
}

func jsonError(err error) error {
	var tooBig *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return err
	case errors.Is(err, io.EOF):
		return steward.Errorf(steward.EINVALID, "request body is empty: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return steward.Errorf(steward.EINVALID, "invalid JSON body: unexpected end of input")
	case errors.As(err, &syn):
		return steward.Errorf(steward.EINVALID, "invalid JSON body at offset %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return steward.Errorf(steward.EINVALID, "invalid JSON body: field %q must be %s, not %s", typ.Field, typ.Type, typ.Value)
		}
		return steward.Errorf(steward.EINVALID, "invalid JSON body: expected %s, got %s", typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return steward.Errorf(steward.EINVALID, "invalid JSON body: unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	var se *steward.Error
	if errors.As(err, &se) {
		return se
	}
	return steward.Errorf(steward.EINVALID, "invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}
