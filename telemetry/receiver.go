package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/opamp/server"
)

// Paths of the OTLP/HTTP receiver (the OTLP defaults).
const (
	MetricsPath = "/v1/metrics"
	LogsPath    = "/v1/logs"
)

// DefaultMaxBody bounds a request body, compressed and decompressed.
const DefaultMaxBody = 4 << 20

// Authenticator admits a request to the receiver the way the OpAMP
// listener admits agents (client certificate, enrollment token, or a
// credential Steward offered for own telemetry).
type Authenticator interface {
	// AuthenticateTelemetry returns the caller, or a steward error:
	// EUNAUTHORIZED, EFORBIDDEN, ETOOMANY (with a delay, see
	// server.RetryAfter), EUNAVAILABLE.
	AuthenticateTelemetry(r *http.Request) (Caller, error)
}

// Caller is an admitted request's credential.
type Caller interface {
	// Agent maps a resource's service.instance.id ("" when the resource
	// has none) to the agent the credential speaks for, or returns why it
	// cannot (EFORBIDDEN, EINVALID, ENOTFOUND).
	Agent(ctx context.Context, serviceInstanceID string) (steward.InstanceUID, error)
}

// Receiver serves OTLP/HTTP (protobuf and JSON, optionally gzip) for the
// agents' own metrics and logs. Resources it cannot map to an agent the
// caller speaks for are rejected with OTLP partial success; a request of
// which nothing could be kept is refused (403).
type Receiver struct {
	hub     *Hub
	auth    Authenticator
	maxBody int64
	log     *slog.Logger
}

// NewReceiver returns a receiver storing into hub; maxBody <= 0 takes
// DefaultMaxBody.
func NewReceiver(hub *Hub, auth Authenticator, maxBody int64, logger *slog.Logger) *Receiver {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Receiver{hub: hub, auth: auth, maxBody: maxBody, log: logger}
}

// Register adds POST /v1/metrics and POST /v1/logs to mux.
func (rc *Receiver) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+MetricsPath, rc.serveMetrics)
	mux.HandleFunc("POST "+LogsPath, rc.serveLogs)
}

// encoding is a request's OTLP encoding.
type encoding int

const (
	encProto encoding = iota
	encJSON
)

func (e encoding) contentType() string {
	if e == encJSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// request is an admitted, read request.
type request struct {
	enc    encoding
	body   []byte
	caller Caller
}

// read admits r and reads its body; on error the refusal is written.
func (rc *Receiver) read(w http.ResponseWriter, r *http.Request) (*request, bool) {
	enc := encProto
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-protobuf", "application/protobuf":
	case "application/json":
		enc = encJSON
	default:
		rc.fail(w, encProto, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported content type %q: send application/x-protobuf or application/json", r.Header.Get("Content-Type")))
		return nil, false
	}
	caller, err := rc.auth.AuthenticateTelemetry(r)
	if err != nil {
		rc.refuse(w, enc, err)
		return nil, false
	}
	body, err := rc.body(r)
	if err != nil {
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || errors.Is(err, errTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		rc.fail(w, enc, code, err.Error())
		return nil, false
	}
	return &request{enc: enc, body: body, caller: caller}, true
}

var errTooLarge = fmt.Errorf("request body too large")

// body reads the request body, gunzipping it when Content-Encoding says
// gzip; both the compressed and decompressed sizes are bounded.
func (rc *Receiver) body(r *http.Request) ([]byte, error) {
	in := io.Reader(http.MaxBytesReader(nil, r.Body, rc.maxBody))
	switch ce := r.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, fmt.Errorf("bad gzip body: %v", err)
		}
		defer zr.Close()
		in = zr
	default:
		return nil, fmt.Errorf("unsupported content encoding %q: send gzip or none", ce)
	}
	b, err := io.ReadAll(io.LimitReader(in, rc.maxBody+1))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, rc.maxBody)
		}
		return nil, fmt.Errorf("read body: %v", err)
	}
	if int64(len(b)) > rc.maxBody {
		return nil, fmt.Errorf("%w: more than %d bytes decompressed", errTooLarge, rc.maxBody)
	}
	return b, nil
}

func (rc *Receiver) serveMetrics(w http.ResponseWriter, r *http.Request) {
	req, ok := rc.read(w, r)
	if !ok {
		return
	}
	in := pmetricotlp.NewExportRequest()
	if !rc.decode(w, req, "metrics", in.UnmarshalProto, in.UnmarshalJSON) {
		return
	}
	rms := in.Metrics().ResourceMetrics()
	now := rc.hub.o.Now()
	rejected, why, ok := rc.keep(w, r, req, rms.Len(), func(i int) (pcommon.Resource, int64) {
		return rms.At(i).Resource(), int64(pointsOf(rms.At(i)))
	}, func(i int, a *agentData) (int64, string) {
		b := newBatch()
		dropped := a.addMetrics(b, rms.At(i))
		a.store(b, now)
		if dropped > 0 {
			return int64(dropped), fmt.Sprintf("more than %d counter streams for one agent", maxStreams)
		}
		return 0, ""
	})
	if !ok {
		return
	}
	out := pmetricotlp.NewExportResponse()
	if rejected > 0 {
		out.PartialSuccess().SetRejectedDataPoints(rejected)
		out.PartialSuccess().SetErrorMessage(why)
	}
	rc.reply(w, req.enc, out.MarshalProto, out.MarshalJSON)
}

func (rc *Receiver) serveLogs(w http.ResponseWriter, r *http.Request) {
	req, ok := rc.read(w, r)
	if !ok {
		return
	}
	in := plogotlp.NewExportRequest()
	if !rc.decode(w, req, "logs", in.UnmarshalProto, in.UnmarshalJSON) {
		return
	}
	rls := in.Logs().ResourceLogs()
	now := rc.hub.o.Now()
	rejected, why, ok := rc.keep(w, r, req, rls.Len(), func(i int) (pcommon.Resource, int64) {
		n := 0
		for j := 0; j < rls.At(i).ScopeLogs().Len(); j++ {
			n += rls.At(i).ScopeLogs().At(j).LogRecords().Len()
		}
		return rls.At(i).Resource(), int64(n)
	}, func(i int, a *agentData) (int64, string) {
		a.addLogs(rls.At(i), now)
		return 0, ""
	})
	if !ok {
		return
	}
	out := plogotlp.NewExportResponse()
	if rejected > 0 {
		out.PartialSuccess().SetRejectedLogRecords(rejected)
		out.PartialSuccess().SetErrorMessage(why)
	}
	rc.reply(w, req.enc, out.MarshalProto, out.MarshalJSON)
}

// decode unmarshals the body in its encoding; on error the 400 is written.
func (rc *Receiver) decode(w http.ResponseWriter, req *request, what string, pb, js func([]byte) error) bool {
	unmarshal := pb
	if req.enc == encJSON {
		unmarshal = js
	}
	if err := unmarshal(req.body); err != nil {
		rc.fail(w, req.enc, http.StatusBadRequest, "cannot decode the "+what+" export request: "+err.Error())
		return false
	}
	return true
}

// keep stores the n resources of a request: each is mapped to its agent
// (resource returns it and its item count) and stored (store, under the
// agent's lock, returns items it dropped and why). It returns the items
// rejected and the last reason; when resources were sent and none could be
// kept it writes the 403 and returns false.
func (rc *Receiver) keep(w http.ResponseWriter, r *http.Request, req *request, n int,
	resource func(i int) (pcommon.Resource, int64), store func(i int, a *agentData) (int64, string)) (rejected int64, why string, ok bool) {
	kept := false
	var total int64
	for i := range n {
		res, items := resource(i)
		total += items
		a, err := rc.agentOf(r.Context(), req.caller, res)
		if err != nil {
			rejected, why = rejected+items, steward.ErrorMessage(err)
			continue
		}
		a.mu.Lock()
		dropped, reason := store(i, a)
		a.mu.Unlock()
		kept = true
		if dropped > 0 {
			rejected, why = rejected+dropped, reason
		}
	}
	rc.hub.accepted.Add(total - rejected)
	rc.hub.rejected.Add(rejected)
	if !kept && n > 0 {
		rc.fail(w, req.enc, http.StatusForbidden, why)
		return 0, "", false
	}
	return rejected, why, true
}

// agentOf maps a resource to the agent's data, by service.instance.id as
// the caller may speak for it.
func (rc *Receiver) agentOf(ctx context.Context, c Caller, res pcommon.Resource) (*agentData, error) {
	sid := ""
	if v, ok := res.Attributes().Get(steward.AttrServiceInstanceID); ok {
		sid = v.AsString()
	}
	id, err := c.Agent(ctx, sid)
	if err != nil {
		return nil, err
	}
	a := rc.hub.agent(id, true)
	if a == nil {
		return nil, steward.Errorf(steward.EUNAVAILABLE, "own telemetry of more than %d agents is not kept", rc.hub.o.MaxAgents)
	}
	return a, nil
}

func pointsOf(rm pmetric.ResourceMetrics) int {
	n := 0
	sms := rm.ScopeMetrics()
	for i := 0; i < sms.Len(); i++ {
		ms := sms.At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			n += dataPoints(ms.At(j))
		}
	}
	return n
}

// reply writes a 200 export response in the request's encoding.
func (rc *Receiver) reply(w http.ResponseWriter, enc encoding, pb, js func() ([]byte, error)) {
	marshal := pb
	if enc == encJSON {
		marshal = js
	}
	b, err := marshal()
	if err != nil {
		rc.fail(w, enc, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// refuse answers an authentication refusal with the OpAMP listener's
// statuses and Retry-After.
func (rc *Receiver) refuse(w http.ResponseWriter, enc encoding, err error) {
	code, delayed := server.Refusal(w, err)
	if !delayed && (code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests) {
		w.Header().Set("Retry-After", "30")
	}
	rc.fail(w, enc, code, steward.ErrorMessage(err))
}

// fail writes an OTLP error response: a google.rpc.Status with the
// message, in the request's encoding (OTLP/HTTP "Failures").
func (rc *Receiver) fail(w http.ResponseWriter, enc encoding, code int, msg string) {
	st := &status.Status{Code: grpcCode(code), Message: msg}
	var b []byte
	if enc == encJSON {
		b, _ = protojson.Marshal(st)
	} else {
		b, _ = proto.Marshal(st)
	}
	if code >= 500 {
		rc.log.Warn("own telemetry request failed", "status", code, "error", msg)
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.WriteHeader(code)
	_, _ = io.Copy(w, bytes.NewReader(b))
}

// grpcCode is the gRPC status code matching an HTTP status.
func grpcCode(httpStatus int) int32 {
	switch httpStatus {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	}
	return 13 // INTERNAL
}

// dataPoints counts a metric's data points.
func dataPoints(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}
