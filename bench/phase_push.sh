#!/usr/bin/env bash
#
# bench/phase_push.sh: push (issue 14), on its own or as BENCH_PHASES=P of
# a run of its own (it needs a fresh kiln: it holds 11 000 connections).
#
#   bash bench/phase_push.sh
#
# One kiln (kore.conf, BENCH_WORKERS workers), one source; the client is
# bench/push_probe.c (built here with cc). Measures:
#   - RSS added per waiting long-poll and per open event stream (bytes,
#     the workers' RSS summed, before and after the probe opened
#     BENCH_WAITERS long-polls, then BENCH_STREAMS streams);
#   - current-token throughput (wrk, like phase A) with them held vs
#     without (before they were opened and after they were answered):
#     the ratio of held to the median without (target >= 0.9);
#   - after one refresh commit, the time from the commit (PostgreSQL's
#     commit timestamp of its event row) to each long-poll's answer and
#     each stream's event: p50/p99/max (target p99 <= 50 ms);
#   - the floor under that figure, in the same run: bench/push_floor.c
#     sends BENCH_WAITERS ready answers of the same size over loopback
#     from as many processes as kiln has workers, nothing else.
# Knobs: BENCH_WAITERS (10000), BENCH_STREAMS (1000), BENCH_DURATION,
# BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_KEEP (bench/README.md);
# BENCH_PERF=1 records the workers with `perf record -g` from the refresh
# to the last answer and prints the top of the report (BENCH_KEEP=1
# keeps push.perf).

set -uo pipefail

cd "$(dirname "$0")/.."

. bench/lib.sh

# The workers' RSS summed, kB.
rss_sum() {
	local p t=0
	for p in $(kiln_workers); do
		t=$((t + $(rss_kb "$p")))
	done
	echo "$t"
}

# metric_at_least NAME N: until /metrics says NAME >= N (60 s).
metric_at_least() {
	local v
	for _ in $(seq 300); do
		v=$(curl -s "http://127.0.0.1:$K_PORT/metrics" |
		    awk -v n="$1" '$1 == n { print $2 }')
		[ "${v:-0}" -ge "$2" ] && return 0
		pid_alive "$PROBE" || die "push_probe ended early"
		sleep 0.2
	done
	die "$1: ${v:-none} of $2 after 60 s"
}

phase_push() {
	local nw=${BENCH_WAITERS:-10000} ns=${BENCH_STREAMS:-1000} url \
	    free1 free2 held fpr rss0 rss1 rss2 cpu0 cpu1 asked p perf=

	cc -O2 -Wall -o "$W/push_probe" bench/push_probe.c ||
	    die "cannot build bench/push_probe.c"
	cc -O2 -Wall -o "$W/push_floor" bench/push_floor.c ||
	    die "cannot build bench/push_floor.c"
	K_SOURCES=$W/sources-push.json
	gen_sources "$K_SOURCES" b 1 3600
	say "P: kiln with 1 source, $WORKERS workers"
	start_kiln push
	url="http://127.0.0.1:$K_PORT/api/tokens/$K_NAME/current-token"

	say "P: current-token throughput, nothing held"
	WRK_D=1 wrk_run warm "$url" >/dev/null
	free1=$(wrk_run free1 "$url")

	fpr=$(curl -fsS "$url" | sed -n 's/.*"fingerprint":"\([0-9a-f]*\)".*/\1/p')
	[ -n "$fpr" ] || die "no fingerprint"
	rss0=$(rss_sum)
	say "P: opening $nw long-polls (bench/push_probe.c)"
	"$W/push_probe" "$K_PORT" "$W" \
	    "/api/tokens/$K_NAME/current-token?wait_for_change=true&last_fingerprint=$fpr&timeout_sec=300" \
	    "$nw" "/api/tokens/$K_NAME/stream" "$ns" 2>"$W/probe.err" &
	PROBE=$!
	PIDS+=($PROBE)
	metric_at_least kiln_waiters "$nw"
	sleep 0.5
	rss1=$(rss_sum)
	say "P: opening $ns streams"
	touch "$W/streams-go"
	metric_at_least kiln_streams "$ns"
	sleep 0.5
	rss2=$(rss_sum)

	say "P: current-token throughput, all held"
	held=$(wrk_run held "$url")

	say "P: one refresh; every waiter answered?"
	cpu0=$(for p in $(kiln_workers); do cpu_ticks "$p"; done)
	if [ "${BENCH_PERF:-0}" = 1 ]; then
		perf record -q -g -o "$W/push.perf" \
		    -p "$(kiln_workers | paste -sd,)" 2>"$W/perf.err" &
		perf=$!
		sleep 1
	fi
	touch "$W/go"
	asked=$(date +%s%N)
	curl -fsS -X POST -H "Authorization: Bearer $ADMIN_KEY" \
	    "http://127.0.0.1:$K_PORT/api/tokens/$K_NAME/refresh" >/dev/null ||
	    die "refresh"
	# Up to the last answer; the teardown of the connections after.
	while [ ! -e "$W/done" ]; do
		pid_alive "$PROBE" || break
		sleep 0.01
	done
	cpu1=$(for p in $(kiln_workers); do cpu_ticks "$p"; done)
	if [ -n "$perf" ]; then
		kill -INT "$perf"
		wait "$perf"
		perf report -i "$W/push.perf" --no-children --stdio \
		    --sort sym 2>/dev/null | grep -v '^#' | grep '%' |
		    head -40 >"$W/perf.txt"
		perf report -i "$W/push.perf" --children --stdio \
		    --sort sym -g none 2>/dev/null | grep -v '^#' |
		    grep '%' | head -40 >"$W/perf-children.txt"
	fi
	touch "$W/release"
	wait "$PROBE" || die "push_probe: $(cat "$W/probe.err")"

	say "P: current-token throughput, released"
	sleep 1
	free2=$(wrk_run free2 "$url")

	say "P: the floor: $nw bare loopback answers (bench/push_floor.c)"
	"$W/push_floor" "$nw" "$WORKERS" "$(curl -fsS -i "$url" | wc -c)" \
	    >"$W/floor.txt" 2>&1 || die "push_floor: $(cat "$W/floor.txt")"

	q kiln "SELECT kiln_ms(pg_xact_commit_timestamp(e.xmin))
	    FROM refresh_events e JOIN token_sources s ON s.id = e.source_id
	    WHERE s.name = '$K_NAME' AND e.outcome = 'success'
	    ORDER BY e.generation DESC LIMIT 1" >"$W/push-commit"

	node -e '
		const fs = require("fs");
		const [probe, commitFile, free1, held, free2, nw, ns, rss0,
		    rss1, rss2, asked, cpu0, cpu1, hz] = process.argv.slice(1);
		const commit = Number(fs.readFileSync(commitFile, "utf8"));
		const p = [], s = [];
		let early = 0, ok = 0;
		for (const l of fs.readFileSync(probe, "utf8").trim()
		    .split("\n")) {
			const f = l.split(" ");
			if (f[0] === "early")
				early = Number(f[1]);
			else if (f[0] === "p") {
				p.push(Number(f[1]));
				ok += Number(f[2]);
			} else
				s.push(Number(f[1]));
		}
		const stat = (a) => {
			const d = a.map((t) => t - commit).sort((x, y) => x - y);
			const q = (f) => d.length ? d[Math.min(d.length - 1,
			    Math.ceil(f * d.length) - 1)].toFixed(1) : "n/a";
			return `p50 ${q(0.5)} p99 ${q(0.99)} max ` +
			    `${d.length ? d[d.length - 1].toFixed(1) : "n/a"} ms`;
		};
		const rps = (x) => Number(x.split(" ")[0]);
		const without = (rps(free1) + rps(free2)) / 2;
		const c0 = cpu0.trim().split(/\s+/).map(Number);
		const c1 = cpu1.trim().split(/\s+/).map(Number);
		console.log([
		    `waiters ${nw}, streams ${ns}, ${c0.length} workers`,
		    `RSS per waiter: ${Math.round((rss1 - rss0) * 1024 / nw)} ` +
		        `bytes (workers ${rss0} -> ${rss1} kB)`,
		    `RSS per stream: ${Math.round((rss2 - rss1) * 1024 / ns)} ` +
		        `bytes (-> ${rss2} kB)`,
		    `current-token req/s: without ${rps(free1)} / ` +
		        `${rps(free2)}, held ${rps(held)}, ratio ` +
		        `${(rps(held) / without).toFixed(3)} (target >= 0.9)`,
		    `long-polls answered ${p.length}/${nw} (200: ${ok}, ` +
		        `early ${early}); refresh commit -> answer: ` +
		        `${stat(p)} (target p99 <= 50)`,
		    `streams told ${s.length}/${ns}; commit -> event: ${stat(s)}`,
		    `refresh asked -> commit ${(commit - asked / 1e6)
		        .toFixed(1)} ms; worker CPU from the refresh to the ` +
		        `last answer: ${c1.map((v, i) => ((v - c0[i]) * 1000 /
		        hz).toFixed(0)).join(" / ")} ms`,
		].join("\n"));
	' "$W/probe.out" "$W/push-commit" "$free1" "$held" "$free2" "$nw" \
	    "$ns" "$rss0" "$rss1" "$rss2" "$asked" "$cpu0" "$cpu1" "$HZ" |
	    tee "$W/push.txt"
	tee -a "$W/push.txt" <"$W/floor.txt"
	if [ -n "$perf" ]; then
		echo "perf, the workers from the refresh to the last answer" \
		    "(self):"
		cat "$W/perf.txt"
		echo "perf (with children):"
		cat "$W/perf-children.txt"
	fi
}

# On its own: the setup of bench/run.sh, then this phase.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	bench_knobs
	bench_tools
	bench_workdir
	bench_ports
	say "work dir $W, ${WORKERS} workers, wrk -t$THREADS -c$CONNS" \
	    "-d${DUR}s"
	start_pg
	q postgres "CREATE DATABASE kiln" >/dev/null
	start_upstream
	phase_push
fi
