#!/usr/bin/env bash
# bench/scale.sh runs a WebSocket fleet larger than one process may hold
# (RLIMIT_NOFILE) on several Steward replicas sharing one PostgreSQL
# database, each on its own OpAMP port, driven by several load generator
# processes whose agents spread over all replicas and fail over to the next
# one when theirs is gone. It measures, in order:
#
#   1. connect: until the generators hold every connection and the API
#      (GET /api/v1/summary) shows every agent online;
#   2. memory: VmRSS of the replicas, of the generators and of the
#      PostgreSQL backends, after a settle, no forced GC;
#   3. two config changes (the first also creates the assignment): until
#      every agent acked (generator side, from the change request to the
#      last APPLIED report) and until the API shows every agent in sync and
#      APPLIED;
#   4. a third change during which one replica is killed with SIGKILL:
#      until every agent is connected again (to the other replicas), acked
#      the change, and the API shows every agent online, in sync and
#      APPLIED; then again after the dead replica's lease lapsed (its
#      agents must not be marked offline by the others).
#
# Progress goes to stderr, one JSON result line to stdout and $OUT.
#
#   flock /work/coord/bench.lock bench/scale.sh                 # 100,000 agents, 7 replicas
#   AGENTS=10000 REPLICAS=2 GENERATORS=1 bench/scale.sh        # a quick run
#
# Replicas: one process may hold about 17,500 agents here (the hard
# RLIMIT_NOFILE of 20,000 less the share `steward server` keeps for the
# API and the database). After losing one replica the others must hold the
# whole fleet, so 100,000 agents need 7 replicas (6 × 17,500 = 105,000):
# with 6, the fleet fits until one dies, then 5 × 17,500 do not.
#
# Needs: Go, PostgreSQL reachable at $PGURL with createdb/dropdb rights
# (a database $DB is created and dropped), curl, jq.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${AGENTS:-100000}
REPLICAS=${REPLICAS:-7}
GENERATORS=${GENERATORS:-6}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-steward_scale}
# Replica i listens on OPAMP_PORT+i and serves its API on API_PORT+i:
# ports below the ephemeral range (net.ipv4.ip_local_port_range), which
# the fleet's own connections use up.
OPAMP_PORT=${OPAMP_PORT:-14320}
API_PORT=${API_PORT:-16060}
HEARTBEAT=${HEARTBEAT:-30s}
# New connections per second, all generators together (0: unlimited). A
# replica reads a new agent's first message only after the one before it
# on the same event loop was handled, and closes a connection whose first
# message it has not read within 30 s (--first-message-timeout), so a
# storm faster than the replicas answer turns into a reconnect loop.
RATE=${RATE:-800}
POOL=${POOL:-6} # each replica's PostgreSQL connections (pool_max_conns)
LEASE=${LEASE:-60s} # --replica-lease (the server's default)
CONFIG_BYTES=${CONFIG_BYTES:-4096}
KILL_AT=${KILL_AT:-$((AGENTS / 4))} # kill once the generators counted this many acks of the third change
KILL_AFTER=${KILL_AFTER:-10}       # or this many seconds after its request, whichever comes first
PUT_TIMEOUT=${PUT_TIMEOUT:-120} # seconds a config or assignment request may take
SETTLE=${SETTLE:-15}          # seconds before measuring memory
STEP_TIMEOUT=${STEP_TIMEOUT:-300} # bound of each waiting step, seconds
OUT=${OUT:-bench/results.jsonl}
BIN=${BIN:-$(mktemp -d)}
WORK=$(mktemp -d)

log() { echo "$(date -u +%T.%3N) $*" >&2; }
now_ms() { date +%s%3N; }

go build -o "$BIN/steward" ./cmd/steward
go build -o "$BIN/steward-loadgen" ./cmd/steward-loadgen
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo "+dirty")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "commit $commit, $AGENTS agents, $REPLICAS replicas, $GENERATORS generators, $RATE connects/s, pool $POOL, $(nproc) cores, load $load_start, work $WORK"

pids=() # every process started here, by pid
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	dropdb --if-exists -d "$PGURL/postgres" "$DB" 2>/dev/null || dropdb --if-exists --maintenance-db="$PGURL/postgres" "$DB" || true
}
trap cleanup EXIT

dropdb --if-exists --maintenance-db="$PGURL/postgres" "$DB"
createdb --maintenance-db="$PGURL/postgres" "$DB"
DSN="$PGURL/$DB?sslmode=disable&pool_max_conns=$POOL"

replica_pid=()
start_replica() { # index
	local i=$1
	mkdir -p "$WORK/r$i"
	"$BIN/steward" server --postgres "$DSN" --replica "r$i" --data-dir "$WORK/r$i" \
		--opamp-addr "127.0.0.1:$((OPAMP_PORT + i))" --http-addr "127.0.0.1:$((API_PORT + i))" \
		--admin-password - --replica-lease "$LEASE" --heartbeat-interval "$HEARTBEAT" --log-level warn \
		2>"$WORK/r$i.log" &
	replica_pid[i]=$!
	pids+=($!)
}
api() { # replica method path [body]: the API of replica i
	local i=$1 m=$2 p=$3
	shift 3
	curl -sf --max-time 30 -X "$m" -H 'Content-Type: application/json' "$@" "http://127.0.0.1:$((API_PORT + i))$p"
}
wait_api() { # replica
	for _ in $(seq 600); do
		api "$1" GET /api/v1/summary >/dev/null 2>&1 && return 0
		kill -0 "${replica_pid[$1]}" 2>/dev/null || break
		sleep 0.1
	done
	log "replica $1 did not start:"; tail "$WORK/r$1.log" >&2; exit 1
}
# The first replica migrates the fresh database alone; the others follow.
start_replica 0
wait_api 0
for i in $(seq 1 $((REPLICAS - 1))); do start_replica "$i"; done
for i in $(seq 1 $((REPLICAS - 1))); do wait_api "$i"; done
log "$REPLICAS replicas serving"

urls() { # rotation: the replicas' endpoints, starting at replica $1
	local s="" k
	for k in $(seq 0 $((REPLICAS - 1))); do
		s+="${s:+,}ws://127.0.0.1:$((OPAMP_PORT + (k + $1) % REPLICAS))/v1/opamp"
	done
	echo "$s"
}
gen_pid=()
t_connect=$(now_ms)
for g in $(seq 0 $((GENERATORS - 1))); do
	n=$((AGENTS / GENERATORS + (g < AGENTS % GENERATORS ? 1 : 0)))
	"$BIN/steward-loadgen" run -url "$(urls "$g")" -agents "$n" -heartbeat "$HEARTBEAT" -every 1s -rate $((RATE / GENERATORS)) \
		-reconnect-jitter 2s >"$WORK/g$g.out" 2>"$WORK/g$g.log" &
	gen_pid[g]=$!
	pids+=($!)
done

# gen_sum FIELD: the sum of FIELD=value over every generator's latest line;
# gen_max FIELD: their maximum.
gen_field() { for g in $(seq 0 $((GENERATORS - 1))); do tail -n1 "$WORK/g$g.out" 2>/dev/null | grep -o " $1=[0-9]*" | cut -d= -f2; done; }
gen_sum() { gen_field "$1" | awk '{s += $1} END {print s + 0}'; }
gen_max() { gen_field "$1" | awk '$1 > m {m = $1} END {print m + 0}'; }
summary() { api "$API_REPLICA" GET /api/v1/summary; }
API_REPLICA=0
# until DESCRIPTION COMMAND...: run COMMAND every second until it succeeds,
# at most STEP_TIMEOUT seconds.
until_ok() {
	local what=$1 deadline=$(($(date +%s) + STEP_TIMEOUT))
	shift
	until "$@"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "timed out: $what (generators connected $(gen_sum connected), applied $(gen_sum applied); summary $(summary | jq -c '{total,online,by_config_status,by_sync}' || true))"
			exit 1
		fi
		sleep 1
	done
}
all_connected() { [ "$(gen_sum connected)" -ge "$AGENTS" ]; }
api_online() { summary | jq -e --argjson n "$AGENTS" '.total == $n and .online == $n' >/dev/null; }
api_applied() { summary | jq -e --argjson n "$AGENTS" '.total == $n and .online == $n and .by_sync.in_sync == $n and .by_config_status.APPLIED == $n' >/dev/null; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1000}'; }

until_ok "every agent connected" all_connected
connect_s=$(secs "$t_connect" "$(now_ms)")
log "generators hold $AGENTS connections after ${connect_s}s"
until_ok "API shows every agent online" api_online
online_s=$(secs "$t_connect" "$(now_ms)")
log "API shows $AGENTS online after ${online_s}s"

sleep "$SETTLE"
rss_kib() { awk '/^VmRSS:/ {s += $2} END {print s + 0}' "${@/#//proc/}" 2>/dev/null; }
status_files() { for p in "$@"; do echo "/proc/$p/status"; done; }
sum_rss() { local s=0 p; for p in "$@"; do s=$((s + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$s"; }
replicas_kib=$(sum_rss "${replica_pid[@]}")
generators_kib=$(sum_rss "${gen_pid[@]}")
pg_pids=$(psql -Atq "$PGURL/postgres" -c "select pid from pg_stat_activity where datname = '$DB'" || true)
pg_kib=$(sum_rss $pg_pids)
per_replica=$(for p in "${replica_pid[@]}"; do awk '/^VmRSS:/ {printf "%d ", $2 / 1024}' "/proc/$p/status"; done)
log "VmRSS: replicas $((replicas_kib / 1024)) MiB ($per_replica MiB each; $(awk -v k="$replicas_kib" -v n="$AGENTS" 'BEGIN {printf "%.2f", k / n}') KiB per agent), generators $((generators_kib / 1024)) MiB, PostgreSQL backends $((pg_kib / 1024)) MiB (shared buffers counted in each)"

config_body() { # version marker
	local body
	body=$(printf 'receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  otlphttp:\n    endpoint: https://collector.example:4318\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp]\n# version %s %s\n' "$1" "$2")
	local i=0
	while [ "${#body}" -lt "$CONFIG_BYTES" ]; do
		body+=$(printf '\n# padding line %08d of version %s, making the config as large as a real one' "$i" "$1")
		i=$((i + 1))
	done
	jq -n --arg b "$body"$'\n' '{files: {"": {body: $b, content_type: "text/yaml"}}}'
}
# change V: PUT config version V on replica API_REPLICA (and, for V=1, the
# assignment); prints the request time in unix ms. A request that fails
# (or takes over PUT_TIMEOUT seconds: a save previews every agent) ends
# the run: a change never made must not be waited for, nor measured.
change() {
	local t
	config_body "$1" "scale-$1-$RANDOM$RANDOM" >"$WORK/config$1.json"
	t=$(now_ms)
	if ! api "$API_REPLICA" PUT /api/v1/configs/collector --max-time "$PUT_TIMEOUT" --data-binary "@$WORK/config$1.json" >/dev/null; then
		log "change $1: the config request failed after $(secs "$t" "$(now_ms)")s"
		return 1
	fi
	if [ "$1" = 1 ] && ! api "$API_REPLICA" PUT /api/v1/assignments/all-collectors --max-time "$PUT_TIMEOUT" \
		-d '{"name":"all-collectors","config":"collector","selector":"service.name=io.opentelemetry.collector"}' >/dev/null; then
		log "change $1: the assignment request failed after $(secs "$t" "$(now_ms)")s"
		return 1
	fi
	log "change $1: requested in $(secs "$t" "$(now_ms)")s"
	echo "$t"
}
applied_since() { [ "$(gen_sum applied)" -ge $(($1 + AGENTS)) ]; }
# timed_change V: makes change V and waits for the acks and the API;
# sets acked_s and api_s (seconds from the request).
timed_change() {
	local before t
	before=$(gen_sum applied)
	t=$(change "$1")
	until_ok "every agent acked change $1" applied_since "$before"
	acked_s=$(secs "$t" "$(gen_max last_applied_ms)")
	until_ok "API shows change $1 APPLIED everywhere" api_applied
	api_s=$(secs "$t" "$(now_ms)")
	log "change $1: every agent acked after ${acked_s}s; API shows all APPLIED after ${api_s}s"
}
timed_change 1
first_acked_s=$acked_s first_api_s=$api_s
sleep 5
timed_change 2

# Change 3 with a replica killed mid-change.
sleep 5
victim=$((REPLICAS - 1))
before=$(gen_sum applied)
disc_before=$(gen_sum disconnects)
t=$(change 3)
for _ in $(seq $((KILL_AFTER * 5))); do
	[ "$(gen_sum applied)" -ge $((before + KILL_AT)) ] && break
	sleep 0.2
done
kill -9 "${replica_pid[victim]}"
t_kill=$(now_ms)
acked_at_kill=$(($(gen_sum applied) - before))
log "change 3: replica r$victim killed $(secs "$t" "$t_kill")s after the request ($acked_at_kill acks counted by then; the generators count once a second)"
until_ok "every agent acked change 3" applied_since "$before"
kill_acked_s=$(secs "$t" "$(gen_max last_applied_ms)")
until_ok "every agent reconnected" all_connected
kill_reconnected_s=$(secs "$t_kill" "$(now_ms)")
until_ok "API shows change 3 APPLIED and every agent online" api_applied
kill_api_s=$(secs "$t" "$(now_ms)")
kill_disconnects=$(($(gen_sum disconnects) - disc_before))
log "change 3: $kill_disconnects agents lost their replica; all reconnected ${kill_reconnected_s}s after the kill; all acked ${kill_acked_s}s and API shows all APPLIED and online ${kill_api_s}s after the request"
# The dead replica's lease lapses; the others must mark none of the agents
# they took over offline.
lease_s=$(awk -v l="$LEASE" 'BEGIN {sub(/s$/, "", l); print l + 10}')
sleep "$lease_s"
if api_applied; then after_lease=true; else after_lease=false; fi
log "$(secs "$t_kill" "$(now_ms)")s after the kill (lease $LEASE): every agent online and APPLIED: $after_lease ($(summary | jq -c '{total,online,by_config_status,by_sync}'))"
replicas_after_kib=$(sum_rss "${replica_pid[@]:0:victim}")

gen_errors=$(gen_sum server_errors)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
jq -nc --arg commit "$commit" --arg load "$load_start / $load_end" \
	--argjson agents "$AGENTS" --argjson replicas "$REPLICAS" --argjson generators "$GENERATORS" \
	--argjson config_bytes "$CONFIG_BYTES" --arg heartbeat "$HEARTBEAT" --argjson rate "$RATE" --argjson pool "$POOL" \
	--argjson connect_s "$connect_s" --argjson online_s "$online_s" \
	--argjson replicas_mib "$((replicas_kib / 1024))" --argjson generators_mib "$((generators_kib / 1024))" --argjson pg_mib "$((pg_kib / 1024))" \
	--argjson first_acked_s "$first_acked_s" --argjson first_api_s "$first_api_s" \
	--argjson acked_s "$acked_s" --argjson api_s "$api_s" \
	--argjson acked_at_kill "$acked_at_kill" --argjson kill_disconnects "$kill_disconnects" \
	--argjson kill_reconnected_s "$kill_reconnected_s" --argjson kill_acked_s "$kill_acked_s" --argjson kill_api_s "$kill_api_s" \
	--argjson after_lease "$after_lease" --argjson replicas_after_mib "$((replicas_after_kib / 1024))" \
	--argjson server_errors "${gen_errors:-0}" \
	'{scenario: "scale", commit: $commit, load: $load, agents: $agents, replicas: $replicas, generators: $generators,
	  config_bytes: $config_bytes, heartbeat: $heartbeat, connect_rate: $rate, pool_max_conns: $pool,
	  connect_seconds: $connect_s, api_online_seconds: $online_s,
	  replicas_rss_mib: $replicas_mib, generators_rss_mib: $generators_mib, postgres_backends_rss_mib: $pg_mib,
	  first_change_acked_seconds: $first_acked_s, first_change_api_seconds: $first_api_s,
	  change_acked_seconds: $acked_s, change_api_seconds: $api_s,
	  kill_acks_before_kill: $acked_at_kill, kill_disconnects: $kill_disconnects,
	  kill_reconnected_seconds: $kill_reconnected_s, kill_change_acked_seconds: $kill_acked_s, kill_change_api_seconds: $kill_api_s,
	  all_online_after_lease: $after_lease, surviving_replicas_rss_mib: $replicas_after_mib,
	  server_error_responses: $server_errors}' | tee -a "$OUT"
grep -h -i -E 'level=(WARN|ERROR)' "$WORK"/r*.log | sed -E 's/^time=[^ ]+ //' | cut -c1-160 | sort | uniq -c | sort -rn | head -20 >&2 || true
