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
#   COMPONENTS=225 bench/run.sh        # agents report a contrib Collector's components
#
# Needs: Go, taskset (util-linux), two CPUs, free $ADDR and $API (default 127.0.0.1:4320 and :6060), and RLIMIT_NOFILE
# above the largest fleet size (+64) for both processes (`ulimit -n`; the
# binaries raise their soft limit to the hard limit themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 10000 19000"}
SCENARIOS=${SCENARIOS:-"idle heartbeat rollout storm"}
HEARTBEAT_AGENTS=${HEARTBEAT_AGENTS:-10000}
HTTP_AGENTS=${HTTP_AGENTS:-2000} # plain-HTTP agents of the heartbeat scenario (0: none)
OUT=${OUT:-bench/results.jsonl}
ADDR=${ADDR:-127.0.0.1:4320} # server OpAMP address
API=${API:-127.0.0.1:6060}   # server API and /debug/stats address
BIN=${BIN:-$(mktemp -d)}
COMPONENTS=${COMPONENTS:-0} # available components per agent (steward-loadgen -components; contrib: 225)

go build -o "$BIN/steward-loadgen" ./cmd/steward-loadgen
go build -o "$BIN/steward-server" ./bench/steward-server
go build -o "$BIN/opampgo-server" ./bench/opampgo-server

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), nofile $(ulimit -Hn), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Each scenario runs on Steward, then on the opamp-go peer, in the same
# invocation, and prints their ratio (steward_per_opampgo). The server is
# pinned to CPU $SERVER_CPU and the load generator to CPU $LOADGEN_CPU.
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
run() { # scenario agents [extra flags]
	local sc=$1 n=$2
	shift 2
	taskset -c "$LOADGEN_CPU" "$BIN/steward-loadgen" bench -scenario "$sc" -server both -bin "$BIN" -server-cpus "$SERVER_CPU" \
		-agents "$n" -addr "$ADDR" -api "$API" -components "$COMPONENTS" "$@" | tee -a "$OUT" ||
		echo "{\"scenario\":\"$sc\",\"agents\":$n,\"failed\":true}" | tee -a "$OUT"
}

for sc in $SCENARIOS; do
	case $sc in
	idle)
		for n in $SIZES; do run idle "$n" -settle 15s; done
		;;
	heartbeat)
		# 10k WebSocket agents heartbeating every second (10k messages/s
		# offered), and 2k plain-HTTP agents polling every second.
		run heartbeat "$HEARTBEAT_AGENTS" -heartbeat 1s -window 20s
		[ "$HTTP_AGENTS" -gt 0 ] && run heartbeat "$HTTP_AGENTS" -heartbeat 1s -window 20s -http
		;;
	rollout)
		# A 4 KiB and a 256 KiB config acked by every agent.
		for n in $SIZES; do
			run rollout "$n" -config-bytes 4096
			run rollout "$n" -config-bytes 262144
		done
		;;
	*)
		for n in $SIZES; do run "$sc" "$n"; done
		;;
	esac
done
