#!/usr/bin/env bash
# build-otelcol.sh [outdir] — build the OpenTelemetry Collector used by
# steward-supervisor's collector mode (and its end-to-end test) from
# scripts/otelcol-builder.yaml with the collector builder (ocb).
#
# The binary lands in OUTDIR/otelcol-steward (default OUTDIR: bin/otelcol in
# the repository). The build is skipped when that binary exists and was built
# from the same manifest and builder version (recorded in OUTDIR/.manifest-hash).
# The last line printed is the binary's absolute path, so callers can do:
#   export STEWARD_OTELCOL_BIN=$(scripts/build-otelcol.sh | tail -n1)
set -euo pipefail

BUILDER_VERSION=v0.149.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
manifest="$here/otelcol-builder.yaml"
outdir=${1:-"$root/bin/otelcol"}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
bin="$outdir/otelcol-steward"
stamp="$outdir/.manifest-hash"

export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
command -v go >/dev/null || { echo "build-otelcol: go not found" >&2; exit 1; }

want=$( { echo "builder $BUILDER_VERSION"; cat "$manifest"; } | sha256sum | cut -d' ' -f1)
if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	echo "build-otelcol: up to date (manifest hash ${want:0:12})" >&2
	echo "$bin"
	exit 0
fi

gobin=$(go env GOPATH)/bin
builder="$gobin/builder"
if ! [[ -x "$builder" ]] || ! "$builder" version 2>/dev/null | grep -q "${BUILDER_VERSION#v}"; then
	echo "build-otelcol: installing go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
	GOFLAGS= go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The manifest leaves output_path to us: build in a scratch dir, then move the
# binary into place so an interrupted build never leaves a half-written one.
sed "s|^dist:|dist:\n  output_path: $work/src|" "$manifest" >"$work/manifest.yaml"
echo "build-otelcol: building collector (this takes a minute or two)" >&2
start=$(date +%s)
(cd "$work" && GOFLAGS=-buildvcs=false "$builder" --config "$work/manifest.yaml" >&2)
mv -f "$work/src/otelcol-steward" "$bin.tmp"
mv -f "$bin.tmp" "$bin"
echo "$want" >"$stamp"
echo "build-otelcol: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
