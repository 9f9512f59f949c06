#!/usr/bin/env bash
# bench/staged-rollout.sh measures a staged rollout: AGENTS simulated
# WebSocket agents (bin/steward-loadgen, on CPU 1) on Steward's benchmark
# server (bin/steward-server, SQLite, on CPU 0) running config version 1 of
# an assignment; a rollout to version 2 in stages of 10%, 50% and 100%; the
# server's CPU time from the rollout request until it is completed and
# until every agent state is stored, and the time until completed.
#
#   go build -o bin/ ./cmd/steward-loadgen ./bench/steward-server
#   bench/staged-rollout.sh [server-binary]      # default bin/steward-server
#
# Needs curl and python3. The opamp-go peer has no rollouts: no ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${1:-bin/steward-server}
AGENTS=${AGENTS:-10000}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
taskset -c 0 "$SERVER" -db "$dir/s.db" >"$dir/server.log" 2>&1 &
taskset -c 1 bin/steward-loadgen run -agents "$AGENTS" -every 1s >"$dir/loadgen.log" 2>&1 &
api=http://127.0.0.1:6060
j() { curl -sf -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' "$@"; }
config() {
	python3 -c 'import json,sys; print(json.dumps({"files": {"": {"content_type": "text/yaml",
		"body": "receivers:\n  otlp: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n# v" + sys.argv[1] + "\n"}}}))' "$1"
}
stat() { curl -sf $api/debug/stats | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }
until grep -q "connected=$AGENTS/$AGENTS" "$dir/loadgen.log"; do sleep 1; done
j -o /dev/null -X PUT --data "$(config 1)" $api/api/v1/configs/collector
j -o /dev/null -X PUT -d '{"name":"all","config":"collector","version":1,"selector":"service.name=io.opentelemetry.collector"}' $api/api/v1/assignments/all
until grep -q "applied=$AGENTS " "$dir/loadgen.log"; do sleep 1; done
j -o /dev/null -X PUT --data "$(config 2)" $api/api/v1/configs/collector
until [ "$(stat pending_writes)" = 0 ]; do sleep 0.1; done
sleep 2
c0=$(stat cpu_ns) t0=$(date +%s.%N)
j -o /dev/null -X POST -d '{"name":"r1","assignment":"all","to_version":2,"stages":[{"percent":10},{"percent":50},{"percent":100}]}' $api/api/v1/rollouts
until j $api/api/v1/rollouts/r1 | grep -q '"state":"completed"'; do sleep 0.05; done
t1=$(date +%s.%N) c1=$(stat cpu_ns)
until [ "$(stat pending_writes)" = 0 ]; do sleep 0.05; done
c2=$(stat cpu_ns)
python3 -c "import sys; a=[float(x) for x in sys.argv[1:]]; print('staged rollout (10%%, 50%%, 100%%) of %d agents: completed in %.2f s; server CPU %.2f s until completed, %.2f s until stored' % (a[0], a[2]-a[1], (a[4]-a[3])/1e9, (a[5]-a[3])/1e9))" "$AGENTS" "$t0" "$t1" "$c0" "$c1" "$c2"
