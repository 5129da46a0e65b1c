#!/usr/bin/env bash
#
# bench/phase_dash.sh: the dashboard with many sources (issue 15).
#
#   bash bench/phase_dash.sh                    10 000 sources, 60 s windows
#   BENCH_SOURCES=1000 BENCH_DASH_SECONDS=10 bash bench/phase_dash.sh
#
# Starts its own PostgreSQL, upstream and kiln (bench/lib.sh), sources
# named d0000.. with BENCH_DASH_LIFETIME s tokens (default 3600), waits
# for every token, then, while refreshes are forced at the rate of the
# steady state (BENCH_DASH_CHURN a second, default sources / 3600: every
# token refreshed once an hour) on random sources, measures:
#
#   render	server time to the first dashboard page, GET /dashboard on
#		one keep-alive connection (median of 30; target <= 50 ms),
#		and the same with a filter (?state=valid&page=7)
#   push	bytes per second pushed to one open dashboard over the
#		window (target <= 20 KB/s)
#   cpu		kiln's workers' CPU (utime+stime in /proc/PID/stat) over the
#		window with 50 open dashboards (target <= 10 % of one core),
#		against the same window with none open (the baseline)
#
# Knobs: BENCH_SOURCES, BENCH_DASH_SECONDS (60), BENCH_DASH_SOCKETS (50),
# BENCH_DASH_LIFETIME (3600), BENCH_DASH_CHURN, BENCH_WORKERS, BENCH_KEEP. Every process it
# starts is stopped on exit, by pid.

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

bench_knobs
bench_tools
bench_workdir
bench_ports

SECS=${BENCH_DASH_SECONDS:-60}
NSOCK=${BENCH_DASH_SOCKETS:-50}
LIFE=${BENCH_DASH_LIFETIME:-3600}
CHURN=${BENCH_DASH_CHURN:-$(awk -v n="$MANY" 'BEGIN { r = n / 3600;
    printf "%.2f", r < 0.5 ? 0.5 : r }')}

say "dash: work dir $W, $WORKERS workers, $MANY sources (${LIFE} s tokens)," \
    "${SECS} s windows, $NSOCK dashboards"
start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
K_NAME=d0000
K_SOURCES=$W/sources-dash.json
gen_sources "$K_SOURCES" d "$MANY" "$LIFE"
start_kiln dash
acq=$(wait_tokens kiln d "$MANY" "$ACQ_TIMEOUT")
say "dash: $MANY tokens in $acq s (boot $BOOT_MS ms)"

# The sessions: a session holds at most 8 sockets.
sessions=$(( (NSOCK + 7) / 8 ))
node bench/dash_probe.js login --port "$K_PORT" --key "$ADMIN_KEY" \
    --count "$sessions" >"$W/cookies.json" || die "dashboard login"
COOKIES=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(
    process.argv[1], "utf8")).cookies.join(","))' "$W/cookies.json")
COOKIE=${COOKIES%%,*}

say "dash: render GET /dashboard, 30 samples"
node bench/dash_probe.js render --port "$K_PORT" --cookie "$COOKIE" \
    --samples 30 >"$W/render.json" || die "render"
node bench/dash_probe.js render --port "$K_PORT" --cookie "$COOKIE" \
    --samples 30 --query 'state=valid&page=7' >"$W/render-f.json" ||
    die "render (filtered)"

# cpu_window OUT CMD...: the workers' CPU (% of one core) while CMD runs
# (its output to OUT).
cpu_window() {
	local out=$1 w t0 t1 s0 s1
	shift
	w=$(kiln_workers)
	t0=$(cpu_ticks $w)
	s0=$(date +%s.%N)
	"$@" >"$out" || return 1
	t1=$(cpu_ticks $w)
	s1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$HZ" \
	    'BEGIN { printf "%.2f\n", 100 * (b - a) / hz / (e - s) }'
}

say "dash: $CHURN forced refreshes a second from now on"
node bench/dash_probe.js churn --port "$K_PORT" --key "$ADMIN_KEY" \
    --prefix d --count "$MANY" --rate "$CHURN" \
    --seconds $((3 * SECS + 30)) >"$W/churn.json" &
CHURN_PID=$!
PIDS+=($CHURN_PID)

say "dash: baseline, no dashboard, ${SECS} s"
cpu0=$(cpu_window /dev/null sleep "$SECS")
say "dash: one dashboard, ${SECS} s"
cpu1=$(cpu_window "$W/push1.json" node bench/dash_probe.js sockets \
    --port "$K_PORT" --cookies "$COOKIE" --count 1 --seconds "$SECS") ||
    die "one socket"
say "dash: $NSOCK dashboards, ${SECS} s"
cpuN=$(cpu_window "$W/pushN.json" node bench/dash_probe.js sockets \
    --port "$K_PORT" --cookies "$COOKIES" --count "$NSOCK" \
    --seconds "$SECS") || die "$NSOCK sockets"

wait "$CHURN_PID" 2>/dev/null
deaths=$(worker_deaths 0)
f() { json_field "$1" <"$2"; }
r50=$(f median_ms "$W/render.json")
r90=$(f p90_ms "$W/render.json")
rb=$(f bytes "$W/render.json")
rf50=$(f median_ms "$W/render-f.json")
b1=$(f bytes_per_s_per_socket "$W/push1.json")
bN=$(f bytes_per_s_per_socket "$W/pushN.json")
openN=$(f sockets "$W/pushN.json")
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t ? "ok" : "MISSED") }'; }

cat <<EOF | tee "$W/table.txt"

| figure ($MANY sources, $WORKERS workers, $CHURN refreshes/s) | value | target | |
| --- | --- | --- | --- |
| first page, server time, median (p90) | $r50 ms ($r90 ms), $rb bytes | <= 50 ms | $(verdict "$r50" 50) |
| filtered page (state=valid, page 7), median | $rf50 ms | | |
| pushed to one open dashboard | $b1 B/s | <= 20480 B/s | $(verdict "$b1" 20480) |
| pushed per dashboard, $openN open | $bN B/s | <= 20480 B/s | $(verdict "$bN" 20480) |
| kiln CPU, no dashboard (baseline) | $cpu0 % of a core | | |
| kiln CPU, one dashboard | $cpu1 % of a core | | |
| kiln CPU, $openN dashboards | $cpuN % of a core | <= 10 % | $(verdict "$cpuN" 10) |
| kiln CPU, $openN dashboards minus baseline | $(awk -v a="$cpuN" -v b="$cpu0" 'BEGIN { printf "%.2f", a - b }') % of a core | | |
| workers restarted | $deaths | 0 | |

Forced refreshes meanwhile ($CHURN/s), answers by status: $(cat "$W/churn.json")
Bytes per second per dashboard by fragment, one open: $(sed -n 's/.*"by_target":\({[^}]*}\).*/\1/p' "$W/push1.json")
Bytes per second per dashboard by fragment, $openN open: $(sed -n 's/.*"by_target":\({[^}]*}\).*/\1/p' "$W/pushN.json")
EOF
[ -n "${BENCH_OUT:-}" ] && cp "$W/table.txt" "$BENCH_OUT"
exit 0
