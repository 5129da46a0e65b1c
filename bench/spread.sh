#!/usr/bin/env bash
#
# How kiln's connections and work spread over its workers (Kore's accept
# lock, made fair by conf/patches/kore-4.1-fair-accept.patch).
#
#   bash bench/spread.sh                 full run (~3 min)
#   BENCH_QUICK=1 bash bench/spread.sh   smoke run (small counts)
#
# Prints: connections per worker (max/mean) for 64 and for 10 000 held
# keep-alive connections with 2 workers; current-token throughput under
# wrk -c64 with 1, 2 and 4 workers (median of BENCH_ROUNDS runs, ratio to
# 1 worker measured in the same run) and the busiest worker's share of the
# workers' CPU time. Knobs as bench/run.sh (bench/README.md), plus
# BENCH_HOLD_CONNECTIONS (default 10000).

set -uo pipefail

cd "$(dirname "$0")/.."

. bench/lib.sh

bench_knobs
bench_tools
bench_workdir
bench_ports

if [ "$QUICK" = 1 ]; then
	HOLD_MANY=${BENCH_HOLD_CONNECTIONS:-1000}
else
	HOLD_MANY=${BENCH_HOLD_CONNECTIONS:-10000}
fi
ulimit -n $((HOLD_MANY + 1024)) 2>/dev/null ||
    die "ulimit -n $((HOLD_MANY + 1024)) refused: lower BENCH_HOLD_CONNECTIONS"

start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
K_SOURCES=$W/sources-1.json
gen_sources "$K_SOURCES" b 1 3600
TOKEN_PATH=/api/tokens/$K_NAME/current-token
TOKEN_URL="http://127.0.0.1:$K_PORT$TOKEN_PATH"

# held_per_worker N: hold N keep-alive connections (each answered once),
# print the count of established connections of each worker, high first.
held_per_worker() {
	local n=$1 pid out
	node bench/conns.js --port "$K_PORT" --path "$TOKEN_PATH" \
	    --count "$n" >"$W/conns.out" 2>"$W/conns.err" &
	pid=$!
	for _ in $(seq 1200); do
		[ -s "$W/conns.out" ] && break
		pid_alive "$pid" || break
		sleep 0.1
	done
	out=$(cat "$W/conns.out")
	[ -n "$out" ] || { stop_pid "$pid" 2; die "conns.js: $(cat "$W/conns.err")"; }
	say "held $n: $out"
	for p in $(kiln_workers); do
		ss -Htnp state established "( sport = :$K_PORT )" 2>/dev/null |
		    grep -c "pid=$p,"
	done | sort -rn | tr '\n' ' '
	stop_pid "$pid" 5
	sleep 0.5
}

max_mean() {
	echo "$*" | awk '{ for (i = 1; i <= NF; i++) { s += $i;
	    if ($i > m) m = $i } printf "%.2f\n", (s ? m / (s / NF) : 0) }'
}

WORKERS=2
say "spread: kiln with $WORKERS workers"
start_kiln spread2
sleep 1
c64=$(held_per_worker 64)
cmany=$(held_per_worker "$HOLD_MANY")
stop_kiln

declare -A RPS SHARE
for n in 1 2 4; do
	WORKERS=$n
	say "spread: throughput with $n worker(s)"
	start_kiln "w$n"
	WRK_D=1 wrk_run warm "$TOKEN_URL" >/dev/null
	: >"$W/w$n"
	for _ in $(seq "$ROUNDS"); do
		wrk_run "w$n" "$TOKEN_URL" >>"$W/w$n"
	done
	RPS[$n]=$(cut -d' ' -f1 "$W/w$n" | median)
	SHARE[$n]=$(cut -d' ' -f7 "$W/w$n" | median)
	stop_kiln
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b ? a / b : 0) }'; }

cat <<EOT
kiln spread $(date -u +%Y-%m-%dT%H:%M:%SZ): wrk -t$THREADS -c$CONNS -d${DUR}s, $ROUNDS round(s) (median)

| figure | value | target |
|---|---|---|
| connections per worker, 64 held (2 workers) | $c64| max/mean $(max_mean "$c64") (<= 1.25) |
| connections per worker, $HOLD_MANY held (2 workers) | $cmany| max/mean $(max_mean "$cmany") (<= 1.25) |
| current-token req/s, 1 worker | ${RPS[1]} | baseline |
| current-token req/s, 2 workers | ${RPS[2]} | x$(ratio "${RPS[2]}" "${RPS[1]}") |
| current-token req/s, 4 workers | ${RPS[4]} | x$(ratio "${RPS[4]}" "${RPS[1]}") |
| busiest worker's CPU share, 2 workers | ${SHARE[2]} | <= 0.6 |
| busiest worker's CPU share, 4 workers | ${SHARE[4]} | (0.25 is even) |
EOT
