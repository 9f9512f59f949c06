package http

import (
	"net/http"
	"net/http/pprof"

	"github.com/stewardhq/steward"
)

// registerTelemetryRoutes serves Steward's own telemetry: GET /metrics to
// any authenticated principal (a Prometheus server scrapes it with an API
// token of the viewer role), and the Go profiler under /debug/pprof/ to
// admins only (requiredRole), since profiles and the command line reveal
// the process's internals.
func (s *Server) registerTelemetryRoutes() {
	s.handleRoot("GET /metrics", s.authorize(s.handleMetrics))
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /debug/pprof/":        pprof.Index, // also serves heap, goroutine, allocs, … by name
		"GET /debug/pprof/cmdline": pprof.Cmdline,
		"GET /debug/pprof/profile": pprof.Profile,
		"GET /debug/pprof/symbol":  pprof.Symbol,
		"GET /debug/pprof/trace":   pprof.Trace,
	} {
		s.root.Handle(pattern, s.adapt(s.authorize(serveWith(h))))
	}
}

// handleMetrics serves Options.Metrics; ENOTFOUND when it is not set.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return steward.Errorf(steward.ENOTFOUND, "metrics are not enabled on this server")
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}

// serveWith adapts a plain handler to a handlerFunc that never fails.
func serveWith(h http.Handler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}
