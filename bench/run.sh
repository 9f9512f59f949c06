#!/usr/bin/env bash
# bench/run.sh runs the benchmark matrix of docs/performance.md: every
# scenario against Steward (bench/steward-server) and, side by side in the
# same run, the opamp-go comparison server (bench/opampgo-server). Each
# result is one JSON line on stdout (and appended to $OUT); progress goes to
# stderr.
#
#   bench/run.sh                       # the full matrix
#   SIZES="1000 10000" bench/run.sh    # other fleet sizes
#   SCENARIOS="idle rollout" bench/run.sh
#
# Needs: Go, free $ADDR and $API (default 127.0.0.1:4320 and :6060), and RLIMIT_NOFILE
# above the largest fleet size (+64) for both processes (`ulimit -n`; the
# binaries raise their soft limit to the hard limit themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 10000 19000"}
SCENARIOS=${SCENARIOS:-"idle heartbeat rollout storm"}
SERVERS=${SERVERS:-"steward opampgo"}
HEARTBEAT_AGENTS=${HEARTBEAT_AGENTS:-10000}
HTTP_AGENTS=${HTTP_AGENTS:-2000} # plain-HTTP agents of the heartbeat scenario
OUT=${OUT:-bench/results.jsonl}
ADDR=${ADDR:-127.0.0.1:4320} # server OpAMP address
API=${API:-127.0.0.1:6060}   # server API and /debug/stats address
BIN=${BIN:-$(mktemp -d)}

go build -o "$BIN/steward-loadgen" ./cmd/steward-loadgen
go build -o "$BIN/steward-server" ./bench/steward-server
go build -o "$BIN/opampgo-server" ./bench/opampgo-server

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), nofile $(ulimit -Hn), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

run() { # scenario server agents [extra flags]
	local sc=$1 srv=$2 n=$3
	shift 3
	"$BIN/steward-loadgen" bench -scenario "$sc" -server "$srv" -bin "$BIN/$srv-server" -agents "$n" -addr "$ADDR" -api "$API" "$@" | tee -a "$OUT" ||
		echo "{\"scenario\":\"$sc\",\"server\":\"$srv\",\"agents\":$n,\"failed\":true}" | tee -a "$OUT"
}

for sc in $SCENARIOS; do
	case $sc in
	heartbeat)
		# 10k WebSocket agents heartbeating every second (10k messages/s
		# offered), and 2k plain-HTTP agents polling every second.
		for srv in $SERVERS; do
			run heartbeat "$srv" "$HEARTBEAT_AGENTS" -heartbeat 1s -window 20s
			run heartbeat "$srv" "$HTTP_AGENTS" -heartbeat 1s -window 20s -http
		done
		;;
	*)
		for n in $SIZES; do
			for srv in $SERVERS; do
				run "$sc" "$srv" "$n"
			done
		done
		;;
	esac
done
