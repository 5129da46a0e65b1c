#!/usr/bin/env bash
#
# bench/phase_push.sh: push (issue 14), on its own or as BENCH_PHASES=P of
# a run of its own (it needs a fresh kiln: it holds 11 000 connections).
#
#   bash bench/phase_push.sh
#
# One kiln (kore.conf, BENCH_WORKERS workers), one source. Measures:
#   - RSS added per waiting long-poll and per open event stream (bytes,
#     the workers' RSS summed, before and after bench/push.js opened
#     BENCH_WAITERS long-polls, then BENCH_STREAMS streams);
#   - current-token throughput (wrk, like phase A) with them held vs
#     without (before they were opened and after they were answered):
#     the ratio of held to the median without (target >= 0.9);
#   - after one refresh commit, the time from the commit (PostgreSQL's
#     commit timestamp of its event row) to each long-poll's answer and
#     each stream's event: p50/p99/max (target p99 <= 50 ms).
# Knobs: BENCH_WAITERS (10000), BENCH_STREAMS (1000), BENCH_DURATION,
# BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_KEEP (bench/README.md).

set -uo pipefail

cd "$(dirname "$0")/.."

. bench/lib.sh

phase_push() {
	local nw=${BENCH_WAITERS:-10000} ns=${BENCH_STREAMS:-1000} url pp \
	    free1 free2 held

	K_SOURCES=$W/sources-push.json
	gen_sources "$K_SOURCES" b 1 3600
	say "P: kiln with 1 source, $WORKERS workers"
	start_kiln push
	url="http://127.0.0.1:$K_PORT/api/tokens/$K_NAME/current-token"

	say "P: current-token throughput, nothing held"
	WRK_D=1 wrk_run warm "$url" >/dev/null
	free1=$(wrk_run free1 "$url")

	say "P: opening $nw long-polls and $ns streams (bench/push.js)"
	node bench/push.js --port "$K_PORT" --name "$K_NAME" \
	    --admin-key "$ADMIN_KEY" --pid "$KILN_PID" \
	    --waiters "$nw" --streams "$ns" --ready "$W/push-ready" \
	    --go "$W/push-go" --out "$W/push.json" 2>"$W/push.err" &
	pp=$!
	PIDS+=($pp)
	while [ ! -f "$W/push-ready" ]; do
		pid_alive "$pp" || die "push.js: $(cat "$W/push.err")"
		sleep 0.2
	done

	say "P: current-token throughput, all held"
	held=$(wrk_run held "$url")
	touch "$W/push-go"
	wait "$pp" || die "push.js: $(cat "$W/push.err")"

	say "P: current-token throughput, released"
	sleep 1
	free2=$(wrk_run free2 "$url")

	q kiln "SELECT kiln_ms(pg_xact_commit_timestamp(e.xmin))
	    FROM refresh_events e JOIN token_sources s ON s.id = e.source_id
	    WHERE s.name = '$K_NAME' AND e.outcome = 'success'
	    AND e.generation = (SELECT max(generation) FROM refresh_events)" \
	    >"$W/push-commit"

	node -e '
		const fs = require("fs");
		const [out, commitFile, free1, held, free2] =
		    process.argv.slice(1);
		const r = JSON.parse(fs.readFileSync(out, "utf8"));
		const commit = Number(fs.readFileSync(commitFile, "utf8"));
		const stat = (a) => {
			const d = a.map((t) => t - commit).sort((x, y) => x - y);
			const p = (f) => d.length ? d[Math.min(d.length - 1,
			    Math.ceil(f * d.length) - 1)].toFixed(1) : "n/a";
			return `p50 ${p(0.5)} p99 ${p(0.99)} max ` +
			    `${d.length ? d[d.length - 1].toFixed(1) : "n/a"} ms`;
		};
		const rps = (s) => Number(s.split(" ")[0]);
		const without = (rps(free1) + rps(free2)) / 2;
		const lines = [
		    `waiters ${r.waiters}, streams ${r.streams}`,
		    `RSS per waiter: ${Math.round((r.rss1_kb - r.rss0_kb) *
		        1024 / r.waiters)} bytes (workers ${r.rss0_kb} -> ` +
		        `${r.rss1_kb} kB)`,
		    `RSS per stream: ${Math.round((r.rss2_kb - r.rss1_kb) *
		        1024 / r.streams)} bytes (-> ${r.rss2_kb} kB)`,
		    `current-token req/s: without ${rps(free1)} / ` +
		        `${rps(free2)}, held ${rps(held)}, ratio ` +
		        `${(rps(held) / without).toFixed(3)} (target >= 0.9)`,
		    `long-polls answered ${r.polls_answered}/${r.waiters} ` +
		        `(new fingerprint ${r.polls_new_fingerprint}, early ` +
		        `${r.polls_early}); refresh commit -> answer: ` +
		        `${stat(r.poll_at)} (target p99 <= 50)`,
		    `streams told ${r.streams_told}/${r.streams}; commit -> ` +
		        `event: ${stat(r.stream_at)}`,
		    `refresh asked -> commit: ${(commit - r.asked_ms)
		        .toFixed(1)} ms`,
		];
		console.log(lines.join("\n"));
	' "$W/push.json" "$W/push-commit" "$free1" "$held" "$free2" |
	    tee "$W/push.txt"
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
