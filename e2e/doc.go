// Package e2e holds end-to-end tests of the whole system: a real Steward
// server, the steward-supervisor binary and a real OpenTelemetry Collector
// built with the collector builder (scripts/build-otelcol.sh).
package e2e
