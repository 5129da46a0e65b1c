#!/usr/bin/env bash
#
# bench/phase_w.sh: what webhooks cost the hot path and the refreshes.
# Sources with short lifetimes keep refreshes coming; each round measures
# current-token throughput (wrk) and the refresh rate with no webhook
# (baseline) and with two subscribed to every event: one receiver that
# answers 200 after 50 ms, one that never answers (every attempt a 5 s
# timeout, retried). Variants alternate, the order reversed every other
# round; the figures are medians of the rounds and their ratios.
#
#   bash bench/phase_w.sh     (WH_ROUNDS=3, WH_DURATION=5 s, WH_SOURCES=200)
#
# Needs what bench/run.sh needs (wrk, PostgreSQL binaries, node, curl).

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

BENCH_QUICK=1
bench_knobs
ROUNDS=${WH_ROUNDS:-3}
DUR=${WH_DURATION:-5}
WH_N=${WH_SOURCES:-200}
WH_LIFETIME=${WH_LIFETIME:-10}
bench_tools
bench_workdir
bench_ports

# receiver MODE: a webhook receiver on loopback ("ok": 200 after 50 ms,
# "hang": never answers); prints its port.
receiver() {
	node -e '
	const mode = process.argv[1]; let n = 0;
	const s = require("http").createServer((q, r) => {
		q.resume();
		q.on("end", () => { n++; if (mode === "ok")
		    setTimeout(() => r.end("ok"), 50); });
	});
	s.listen(0, "127.0.0.1", () => console.log(s.address().port));
	process.on("SIGTERM", () => { console.error(n); process.exit(0); });
	' "$1" >"$W/rx-$1.port" 2>"$W/rx-$1.count" &
	PIDS+=($!)
	for _ in $(seq 100); do
		[ -s "$W/rx-$1.port" ] && break
		sleep 0.05
	done
	cat "$W/rx-$1.port"
}

hook() {
	curl -fsS -H "Authorization: Bearer $ADMIN_KEY" \
	    -H 'Content-Type: application/json' \
	    "http://127.0.0.1:$K_PORT/api/webhooks" -d "{\"url\":\"$1\",
	    \"events\":[\"token.refreshed\",\"token.failing\",
	    \"token.recovered\",\"token.expired\"]}" | json_field id
}

unhook() {
	curl -fsS -X DELETE -H "Authorization: Bearer $ADMIN_KEY" \
	    "http://127.0.0.1:$K_PORT/api/webhooks/$1" >/dev/null
}

successes() {
	q kilnwh "SELECT count(*) FROM refresh_events WHERE outcome = 'success'"
}

# variant NAME: one wrk run with refreshes going; appends
# "rps p99 refreshes/s deliveries" to $W/wh-NAME.
variant() {
	local name=$1 ids="" e0 e1 d0 d1 t0 t1 line
	if [ "$name" = with ]; then
		ids="$(hook "http://127.0.0.1:$RX_OK/h") $(hook \
		    "http://127.0.0.1:$RX_HANG/h")"
	fi
	e0=$(successes)
	d0=$(q kilnwh "SELECT count(*) FROM webhook_attempts")
	t0=$(date +%s.%N)
	line=$(wrk_run "wh-$name" \
	    "http://127.0.0.1:$K_PORT/api/tokens/w0000/current-token" "")
	t1=$(date +%s.%N)
	e1=$(successes)
	d1=$(q kilnwh "SELECT count(*) FROM webhook_attempts")
	for id in $ids; do
		unhook "$id"
	done
	echo "$line" | awk -v e="$((e1 - e0))" -v d="$((d1 - d0))" \
	    -v s="$t0" -v t="$t1" '{ printf "%s %s %.1f %d %s\n", $1, $3,
	    e / (t - s), d, $6 }' >>"$W/wh-$name"
}

start_pg
q postgres "CREATE DATABASE kilnwh" >/dev/null
start_upstream
RX_OK=$(receiver ok)
RX_HANG=$(receiver hang)
K_DB=kilnwh
K_NAME=w0000
K_SOURCES=$W/sources-wh.json
gen_sources "$K_SOURCES" w "$WH_N" "$WH_LIFETIME"
start_kiln wh
wait_tokens kilnwh w "$WH_N" 60 >/dev/null
sleep $((WH_LIFETIME / 2))	# the refreshes come due, then go on
say "W: $WH_N sources, ${WH_LIFETIME} s lifetimes, $WORKERS workers," \
    "wrk -c$CONNS ${DUR} s, $ROUNDS rounds"

: >"$W/wh-without"
: >"$W/wh-with"
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then order="without with"; else order="with without"; fi
	for v in $order; do
		variant "$v"
	done
	say "  round $r: without $(tail -n 1 "$W/wh-without")," \
	    "with $(tail -n 1 "$W/wh-with")" \
	    "(rps p99_ms refreshes/s attempts kiln_cpu_us/req)"
done

med() { awk -v c="$2" '{ print $c }' "$W/wh-$1" | median; }
rat() {
	paste -d' ' "$W/wh-$1" "$W/wh-$2" | awk -v c="$3" -v n="$4" \
	    '$(c + n) > 0 { print $c / $(c + n) }' | median
}
echo "| figure | without webhooks | with 2 webhooks | ratio |"
echo "| --- | --- | --- | --- |"
echo "| current-token req/s (median) | $(med without 1) | $(med with 1) |" \
    "$(rat with without 1 5) |"
echo "| current-token p99 ms | $(med without 2) | $(med with 2) |" \
    "$(rat with without 2 5) |"
echo "| refreshes/s committed | $(med without 3) | $(med with 3) |" \
    "$(rat with without 3 5) |"
echo "| kiln workers' CPU µs per request | $(med without 5) |" \
    "$(med with 5) | $(rat with without 5 5) |"
echo "| webhook attempts in the window | $(med without 4) | $(med with 4) | |"
echo "| worker deaths | $(worker_deaths 0) | | |"
exit 0
