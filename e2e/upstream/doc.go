// Package upstream holds the interop tests: a real Steward server against
// the upstream OpenTelemetry opampsupervisor v0.158.0 driving a v0.158.0
// collector, against steward-supervisor driving the same collector, and
// against the collector's opampextension connecting directly, over
// WebSocket and plain HTTP. The upstream pieces are built by
// scripts/build-upstream.sh (see docs/interop.md for the results).
package upstream
