#!/usr/bin/env bash
# build-upstream.sh [outdir] — build the upstream pieces the interop tests
# (e2e/upstream) run Steward against:
#
#   OUTDIR/opampsupervisor    the OpenTelemetry opampsupervisor v0.158.0
#   OUTDIR/otelcol-upstream   a v0.158.0 collector (scripts/upstream-otelcol-builder.yaml)
#
# (default OUTDIR: ${TMPDIR:-/tmp}/steward-upstream). `go install
# …/cmd/opampsupervisor@v0.158.0` is refused because that module's go.mod has
# replace directives, so the supervisor is built from a small wrapper module
# (OUTDIR/supervisor-src, outside the repository) that requires it as a tool.
# The replace directives all point at sibling modules of the contrib
# repository by relative path; every one of them is published at v0.158.0,
# so the wrapper needs none. The collector comes from the collector builder
# v0.158.0, installed into OUTDIR/bin so it does not replace the v0.149.0
# builder that scripts/build-otelcol.sh uses.
#
# A piece is skipped when its binary exists and was built from the same
# inputs (recorded in OUTDIR/.<name>.stamp); compilation is cached by the Go
# build cache, so a rebuild after a stamp change is quick. Usage in CI:
#   bash scripts/build-upstream.sh "$dir"
#   export STEWARD_UPSTREAM_SUPERVISOR_BIN=$dir/opampsupervisor STEWARD_UPSTREAM_OTELCOL_BIN=$dir/otelcol-upstream
set -euo pipefail

VERSION=v0.158.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest="$here/upstream-otelcol-builder.yaml"
outdir=${1:-"${TMPDIR:-/tmp}/steward-upstream"}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS=-buildvcs=false
command -v go >/dev/null || { echo "build-upstream: go not found" >&2; exit 1; }

# fresh NAME INPUT: true when OUTDIR/NAME exists and was built from INPUT.
fresh() {
	[[ -x "$outdir/$1" && -f "$outdir/.$1.stamp" && "$(cat "$outdir/.$1.stamp")" == "$(echo "$2" | sha256sum)" ]]
}
stamp() { echo "$2" | sha256sum >"$outdir/.$1.stamp"; }

# The supervisor.
sup_input="opampsupervisor $VERSION $(go env GOVERSION)"
if fresh opampsupervisor "$sup_input"; then
	echo "build-upstream: opampsupervisor $VERSION up to date" >&2
else
	start=$(date +%s)
	src="$outdir/supervisor-src"
	rm -rf "$src" && mkdir -p "$src"
	printf 'module steward.local/upstream-supervisor\n\ngo 1.25.0\n' >"$src/go.mod"
	(cd "$src" && go get -tool "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/opampsupervisor@$VERSION" >"$src/get.log" 2>&1) ||
		{ cat "$src/get.log" >&2; exit 1; }
	(cd "$src" && go build -o "$outdir/opampsupervisor.tmp" github.com/open-telemetry/opentelemetry-collector-contrib/cmd/opampsupervisor)
	mv -f "$outdir/opampsupervisor.tmp" "$outdir/opampsupervisor"
	stamp opampsupervisor "$sup_input"
	echo "build-upstream: opampsupervisor $VERSION built in $(($(date +%s) - start))s" >&2
fi

# The collector.
col_input="builder $VERSION $(go env GOVERSION) $(cat "$manifest")"
if fresh otelcol-upstream "$col_input"; then
	echo "build-upstream: otelcol-upstream up to date" >&2
else
	start=$(date +%s)
	builder="$outdir/bin/builder"
	if ! [[ -x "$builder" ]] || ! "$builder" version 2>/dev/null | grep -q "${VERSION#v}"; then
		GOBIN="$outdir/bin" GOFLAGS= go install "go.opentelemetry.io/collector/cmd/builder@$VERSION"
	fi
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	sed "s|^dist:|dist:\n  output_path: $work/src|" "$manifest" >"$work/manifest.yaml"
	(cd "$work" && "$builder" --config "$work/manifest.yaml" >&2)
	mv -f "$work/src/otelcol-upstream" "$outdir/otelcol-upstream.tmp"
	mv -f "$outdir/otelcol-upstream.tmp" "$outdir/otelcol-upstream"
	stamp otelcol-upstream "$col_input"
	echo "build-upstream: otelcol-upstream built in $(($(date +%s) - start))s" >&2
fi
echo "$outdir/opampsupervisor"
echo "$outdir/otelcol-upstream"
