#!/usr/bin/env bash
#
# bench/phase_audit.sh: what the audit log costs (issue 15, part 4), on
# its own: `bash bench/phase_audit.sh` (BENCH_AUDIT_ROWS, default 200000;
# BENCH_AUDIT_N requests per figure, default 300). One kiln, one source.
#
#   - an audited change (POST /api/prewarming/stop|start?token=: the change
#     and its row in one statement) against an admin read of the same
#     path and auth (GET /api/keys), both measured in this run;
#   - GET /api/audit with BENCH_AUDIT_ROWS rows in the table: the newest
#     page, a page deep in the log (before=), and each filter, against the
#     same GET /api/keys baseline.
#
# Prints medians and p99 of the latency (ms, one keep-alive connection,
# requests one after another) and the ratio of each median to the
# baseline's. Uses bench/lib.sh (PostgreSQL, upstream, kiln by pid).

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

BENCH_QUICK=1
bench_knobs
WORKERS=${BENCH_WORKERS:-2}
ROWS=${BENCH_AUDIT_ROWS:-200000}
N=${BENCH_AUDIT_N:-300}
bench_tools
bench_workdir
bench_ports

start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
K_SOURCES=$W/sources-1.json
gen_sources "$K_SOURCES" b 1 3600
say "audit: kiln with 1 source, $WORKERS workers"
start_kiln first

say "audit: $ROWS rows into audit_events"
q kiln "INSERT INTO audit_events (at, principal_kind, principal, action,
    target, fields, address, request_id)
    SELECT now() - (($ROWS - g) || ' ms')::interval, 'key',
    'key:' || (g % 50), (ARRAY['source.update', 'source.pause',
    'source.resume', 'key.create'])[1 + g % 4], 'b' || lpad((g % 1000)::text,
    4, '0'), '{scope}', '127.0.0.1', 'bench-' || g
    FROM generate_series(1, $ROWS) g; ANALYZE audit_events" >/dev/null ||
    die "cannot fill audit_events"
MID=$(q kiln "SELECT id FROM audit_events ORDER BY id OFFSET $((ROWS / 2))
    LIMIT 1")
SINCE=$(q kiln "SELECT to_char((now() - interval '1 minute') AT TIME ZONE
    'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")

# measure LABEL METHOD PATH...: N requests round-robin over the paths.
measure() {
	local label=$1 method=$2
	shift 2
	node - "$K_PORT" "$ADMIN_KEY" "$N" "$method" "$@" <<-'JS' |
	const http = require('node:http');
	const [port, key, n, method, ...paths] = process.argv.slice(2);
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	const one = (path) => new Promise((ok, no) => {
		const t = process.hrtime.bigint();
		const r = http.request({ host: '127.0.0.1', port, path, method,
		    agent, headers: { Authorization: `Bearer ${key}` } },
		    (res) => {
			res.resume();
			res.on('end', () => res.statusCode < 300 ? ok(Number(
			    process.hrtime.bigint() - t) / 1e6) :
			    no(new Error(`${path}: ${res.statusCode}`)));
		});
		r.on('error', no);
		r.end();
	});
	(async () => {
		for (let i = 0; i < 20; i++)
			await one(paths[i % paths.length]);
		const ms = [];
		for (let i = 0; i < Number(n); i++)
			ms.push(await one(paths[i % paths.length]));
		ms.sort((a, b) => a - b);
		const at = (q) => ms[Math.min(ms.length - 1,
		    Math.floor(q * ms.length))];
		console.log(`${at(0.5).toFixed(3)} ${at(0.99).toFixed(3)}`);
		agent.destroy();
	})().catch((e) => { console.error(e.message); process.exit(1); });
	JS
	while read -r p50 p99; do
		put "p50_$label" "$p50"
		put "p99_$label" "$p99"
	done
	[ "$(get "p50_$label")" != n/a ] || die "$label: no figure"
}

say "audit: $N requests per figure"
measure base GET /api/keys
measure write POST "/api/prewarming/stop?token=$K_NAME" \
    "/api/prewarming/start?token=$K_NAME"
measure newest GET "/api/audit?limit=50"
measure deep GET "/api/audit?limit=50&before=$MID"
measure action GET "/api/audit?limit=50&action=key.create"
measure principal GET "/api/audit?limit=50&principal=key%3A7"
measure target GET "/api/audit?limit=50&target=b0042"
measure since GET "/api/audit?limit=50&since=$SINCE"
measure base2 GET /api/keys

base=$(echo "$(get p50_base) $(get p50_base2)" | awk '{ print ($1 + $2) / 2 }')
printf '\naudit (%s rows, %s requests each, %s workers)\n' "$ROWS" "$N" \
    "$WORKERS"
printf '%-34s %9s %9s %9s\n' figure p50_ms p99_ms "x_base"
for f in base write newest deep action principal target since base2; do
	printf '%-34s %9s %9s %9s\n' "$f" "$(get "p50_$f")" "$(get "p99_$f")" \
	    "$(awk -v a="$(get "p50_$f")" -v b="$base" \
	    'BEGIN { printf "%.2f", a / b }')"
done
printf '%s\n' "base: GET /api/keys (median of the two runs); write: an" \
    "audited pause/resume; newest, deep (before= mid-log) and the filters:" \
    "GET /api/audit?limit=50."
exit 0
