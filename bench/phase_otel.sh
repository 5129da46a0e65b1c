#!/usr/bin/env bash
#
# bench/phase_otel.sh: the cost of trace export on the hot path (issue 15).
# current-token throughput of one kiln binary with span export off, on
# (ratio 1.0: every request a sampled span) with a collector that answers
# (OTLP protobuf, the default, and http/json), and on with a black-holed
# collector (accepts, never answers), in rounds,
# the order reversed every other round, kiln restarted for each variant on
# the same database. Prints the medians and the ratios to "off" measured
# in the same run; target: on / off >= 0.90.
#
#   bash bench/phase_otel.sh                   3 rounds of 5 s
#   BENCH_ROUNDS=5 BENCH_DURATION=10 bash bench/phase_otel.sh
#
# The collector that answers is an nginx that reads and drops the body
# (return 200), so that the collector's own CPU, which shares the
# machine's cores with kiln and wrk here, stays small; the black hole is
# bench/collector.js --hole. Uses bench/lib.sh (PostgreSQL, upstream,
# kiln, wrk). Every process it starts is stopped on exit, by pid.

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

# start_sink: nginx, one worker, 200 {} to every POST /v1/traces.
start_sink() {
	COL_up=$(free_port)
	mkdir -p "$W/sink/tmp"
	cat >"$W/sink/nginx.conf" <<-EOF
		worker_processes 1;
		daemon off;
		pid $W/sink/nginx.pid;
		error_log $W/sink/error.log warn;
		events { worker_connections 256; }
		http {
			access_log off;
			client_body_temp_path $W/sink/tmp;
			proxy_temp_path $W/sink/tmp;
			fastcgi_temp_path $W/sink/tmp;
			uwsgi_temp_path $W/sink/tmp;
			scgi_temp_path $W/sink/tmp;
			server {
				listen 127.0.0.1:$COL_up;
				client_max_body_size 0;
				location = /v1/traces {
					default_type application/json;
					return 200 '{}';
				}
			}
		}
	EOF
	"$NGINX" -c "$W/sink/nginx.conf" -p "$W/sink" >"$W/sink/stdout" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		curl -fsS -o /dev/null -d '{}' "http://127.0.0.1:$COL_up/v1/traces" \
		    2>/dev/null && return 0
		sleep 0.05
	done
	die "nginx sink did not start: $(cat "$W/sink/error.log")"
}

sink_ticks() {
	cpu_ticks $(ps --ppid "$(cat "$W/sink/nginx.pid")" -o pid= | tr -d ' ')
}

# variant NAME: kiln (re)started with that variant's export settings.
variant() {
	stop_kiln
	unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL
	case $1 in
	off) ;;
	up) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$COL_up ;;
	json) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$COL_up \
	    OTEL_EXPORTER_OTLP_PROTOCOL=http/json ;;
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
start_sink
start_collector hole --hole
K_SOURCES=$W/sources.json
gen_sources "$K_SOURCES" b 1 3600
URL=http://127.0.0.1:$K_PORT/api/tokens/$K_NAME/current-token

VARIANTS=(off up json hole)
for v in "${VARIANTS[@]}"; do
	: >"$W/round-$v"
	: >"$W/spans-$v"
done
for ((r = 1; r <= ROUNDS; r++)); do
	list=("${VARIANTS[@]}")
	((r % 2 == 0)) && list=(hole json up off)
	for v in "${list[@]}"; do
		variant "$v"
		t0=$(sink_ticks)
		echo "$r $(wrk_run "otel-$v" "$URL")" >>"$W/round-$v"
		sleep 1		# the last batch goes out (or times out)
		echo "$r $(metric kiln_spans_exported_total) \
		    $(metric kiln_spans_dropped_total) \
		    $(($(sink_ticks) - t0))" >>"$W/spans-$v"
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
echo "collector (nginx) CPU while 'up' / 'json' ran: $(for v in up json; do
    awk -v hz="$HZ" '{ s += $4 } END { printf "%.2f s ", s / hz }' \
    "$W/spans-$v"; done)"
echo "collector black hole: $(curl -fsS "http://127.0.0.1:$COL_hole/_stats")"
up=$(ratio up off)
json=$(ratio json off)
hole=$(ratio hole off)
cpu() { col_median "$1" 7; }
awk -v u="$up" -v j="$json" -v h="$hole" -v co="$(cpu off)" \
    -v cu="$(cpu up)" -v cj="$(cpu json)" -v ch="$(cpu hole)" 'BEGIN {
	printf "on/off req/s: collector up %.3f (json %.3f), black-holed %.3f ",
	    u, j, h
	printf "(target >= 0.90): %s\n", (u >= 0.9 && h >= 0.9) ? "met" : "NOT met"
	printf "off/on CPU per request: up %.3f (json %.3f), black-holed %.3f\n",
	    co / cu, co / cj, co / ch
}'
exit 0
