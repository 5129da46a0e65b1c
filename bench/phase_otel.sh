#!/usr/bin/env bash
#
# bench/phase_otel.sh: the cost of trace export on the hot path (issue 15).
# current-token throughput of one kiln binary with span export off, on
# (ratio 1.0: every request a sampled span) with a collector that answers,
# and on with a black-holed collector (accepts, never answers), in rounds,
# the order reversed every other round, kiln restarted for each variant on
# the same database. Prints the medians and the ratios to "off" measured
# in the same run; target: on / off >= 0.90.
#
#   bash bench/phase_otel.sh                   3 rounds of 5 s
#   BENCH_ROUNDS=5 BENCH_DURATION=10 bash bench/phase_otel.sh
#
# Uses bench/lib.sh (PostgreSQL, upstream, kiln, wrk) and bench/collector.js.
# Every process it starts is stopped on exit, by pid.

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_DURATION=${BENCH_DURATION:-5}
bench_knobs
bench_tools
bench_workdir
bench_ports

# start_collector NAME [--hole]: sets COL_<NAME> to its port.
start_collector() {
	local name=$1 p
	shift
	node bench/collector.js --port 0 "$@" >"$W/col-$name.out" \
	    2>"$W/col-$name.err" &
	PIDS+=($!)
	for _ in $(seq 100); do
		p=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$W/col-$name.out")
		if [ -n "$p" ]; then
			printf -v "COL_$name" '%s' "$p"
			return 0
		fi
		sleep 0.05
	done
	die "collector $name did not start: $(cat "$W/col-$name.err")"
}

# variant NAME: kiln (re)started with that variant's export settings.
variant() {
	stop_kiln
	unset OTEL_EXPORTER_OTLP_ENDPOINT
	case $1 in
	off) ;;
	up) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$COL_up ;;
	hole) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$COL_hole ;;
	esac
	export OTEL_TRACES_SAMPLER=always_on
	start_kiln "otel-$1"
}

metric() {
	curl -fsS "http://127.0.0.1:$K_PORT/metrics" |
	    awk -v m="$1" '$1 == m { print $2 }'
}

say "work dir $W, ${WORKERS} workers, wrk -t$THREADS -c$CONNS -d${DUR}s," \
    "$ROUNDS round(s)"
start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
start_collector up
start_collector hole --hole
K_SOURCES=$W/sources.json
gen_sources "$K_SOURCES" b 1 3600
URL=http://127.0.0.1:$K_PORT/api/tokens/$K_NAME/current-token

VARIANTS=(off up hole)
for v in "${VARIANTS[@]}"; do
	: >"$W/round-$v"
	: >"$W/spans-$v"
done
for ((r = 1; r <= ROUNDS; r++)); do
	list=("${VARIANTS[@]}")
	((r % 2 == 0)) && list=(hole up off)
	for v in "${list[@]}"; do
		variant "$v"
		echo "$r $(wrk_run "otel-$v" "$URL")" >>"$W/round-$v"
		sleep 1		# the last batch goes out (or times out)
		echo "$r $(metric kiln_spans_exported_total) \
		    $(metric kiln_spans_dropped_total)" >>"$W/spans-$v"
	done
	say "  round $r/$ROUNDS: $(for v in "${VARIANTS[@]}"; do
	    printf '%s=%s ' "$v" "$(awk -v r=$r '$1 == r { printf "%.0f", $2 }' \
	    "$W/round-$v")"; done)"
done
stop_kiln

spans() { awk -v c="$2" '{ s += $c } END { print s + 0 }' "$W/spans-$1"; }
echo
echo "| variant | req/s (median) | p99 ms | CPU us/req | spans exported | spans dropped | ratio to off |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for v in "${VARIANTS[@]}"; do
	printf '| %s | %.0f | %.2f | %.1f | %s | %s | %s |\n' "$v" \
	    "$(col_median "$v" 2)" "$(col_median "$v" 4)" \
	    "$(col_median "$v" 7)" "$(spans "$v" 2)" "$(spans "$v" 3)" \
	    "$([ "$v" = off ] && echo 1.00 || printf '%.3f' "$(ratio "$v" off)")"
done
echo
echo "collector up: $(curl -fsS "http://127.0.0.1:$COL_up/_stats")"
echo "collector black hole: $(curl -fsS "http://127.0.0.1:$COL_hole/_stats")"
up=$(ratio up off)
hole=$(ratio hole off)
awk -v u="$up" -v h="$hole" 'BEGIN {
	printf "on/off: collector up %.3f, black-holed %.3f ", u, h
	printf "(target >= 0.90): %s\n", (u >= 0.9 && h >= 0.9) ? "met" : "NOT met"
}'
exit 0
