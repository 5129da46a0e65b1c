#!/usr/bin/env bash
#
# bench/phase_conn.sh: connections at scale (issue 12), on its own:
# `bash bench/phase_conn.sh` (BENCH_CONN_SOURCES, default 10;
# BENCH_CONN_PER, connections per source, default 10000; BENCH_DURATION
# seconds per wrk run, default 2; BENCH_ROUNDS, default 10).
#
#   - boot to serving with every connection in the table (the first 200
#     of a connection's current-token after exec), against the boot of
#     the same sources without connections, measured in this run;
#   - RSS per worker with and without the connections: bytes per
#     connection;
#   - current-token of random connections against that of random sources
#     (the default connection), wrk, in BENCH_ROUNDS pairs of short
#     runs, the order alternating: each pair's ratio conn / default, and
#     its median (a pair shares the box's mood: this machine's noise
#     swings a 5 s run by 20 %, more than the difference measured); the
#     kiln CPU per request of each, medians;
#   - GET /api/tokens/{name}/connections?limit=100 (a page in the middle,
#     by cursor; and with a state filter): median and p99 ms.
#
# The rows go straight into PostgreSQL. Their tokens are sealed here with
# the run's master key, as kiln seals a connection's token: AES-256-GCM,
# the additional data "kiln:<source>:token/<subject>" (conn.c, seal.c),
# under the key id kiln itself wrote on the sources' own tokens (read
# back from the table). A row copied from another subject would not open:
# the sealed value is bound to its subject. The tokens live an hour, so
# no refresh runs during the measures.

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

BENCH_QUICK=1
bench_knobs
WORKERS=${BENCH_WORKERS:-2}
NSRC=${BENCH_CONN_SOURCES:-10}
PER=${BENCH_CONN_PER:-10000}
DUR=${BENCH_DURATION:-2}
ROUNDS=${BENCH_ROUNDS:-10}
TOTAL=$((NSRC * PER))
bench_tools
bench_workdir
bench_ports

start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
K_SOURCES=$W/sources.json
gen_sources "$K_SOURCES" b "$NSRC" 3600

say "conn: kiln with $NSRC sources, no connections"
start_kiln plain
BOOT_PLAIN=$BOOT_MS
sleep 1
read -r RSS0_MAX RSS0_AVG <<<"$(workers_rss)"
KEYID=$(q kiln "SELECT substr(token_sealed, 4, 8) FROM tokens
    WHERE token_sealed LIKE 'v1.%' LIMIT 1")
[ -n "$KEYID" ] || die "no sealed token to read the key id from"
stop_kiln

say "conn: sealing $TOTAL connection tokens"
node - "$MASTER_KEY" "$KEYID" "$NSRC" "$PER" >"$W/conns.tsv" <<-'JS' ||
const crypto = require('node:crypto');
const [mk, id, nsrc, per] = process.argv.slice(2);
const key = Buffer.from(mk, 'base64');
const now = Date.now();
const ts = (ms) => new Date(ms).toISOString();
const out = [];
for (let s = 0; s < Number(nsrc); s++) {
	const name = `b${String(s).padStart(4, '0')}`;
	for (let i = 0; i < Number(per); i++) {
		const subject = `u${String(i).padStart(5, '0')}`;
		const token = `conn-${name}-${subject}-` +
		    crypto.randomBytes(24).toString('hex');
		const nonce = crypto.randomBytes(12);
		const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
		c.setAAD(Buffer.from(`kiln:${name}:token/${subject}`));
		const ct = Buffer.concat([c.update(token), c.final()]);
		const sealed = `v1.${id}.` + Buffer.concat([nonce, ct,
		    c.getAuthTag()]).toString('base64');
		const fpr = crypto.createHash('sha256').update(token)
		    .digest('hex').slice(0, 12);
		out.push([name, subject, sealed, fpr, ts(now), ts(now + 3600e3),
		    ts(now + 3000e3)].join('\t'));
		if (out.length >= 10000) {
			process.stdout.write(out.join('\n') + '\n');
			out.length = 0;
		}
	}
}
if (out.length)
	process.stdout.write(out.join('\n') + '\n');
JS
    die "cannot seal the rows"
q kiln "CREATE TEMP TABLE c (name text, subject text, sealed text,
    fpr text, obtained timestamptz, expires timestamptz,
    refresh timestamptz);
    COPY c FROM '$W/conns.tsv';
    INSERT INTO tokens (source_id, subject, token_sealed, token_type,
    generation, fingerprint, obtained_at, expires_at, refresh_at,
    next_attempt_at) SELECT s.id, c.subject, c.sealed, 'Bearer', 1,
    c.fpr, c.obtained, c.expires, c.refresh, c.refresh
    FROM c JOIN token_sources s ON s.name = c.name; ANALYZE tokens" \
    >/dev/null 2>"$W/copy.err" || {
	# COPY FROM a file is the server's: fall back to psql's \copy.
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" \
	    -U postgres -d kiln <<-SQL >/dev/null ||
	CREATE TEMP TABLE c (name text, subject text, sealed text,
	    fpr text, obtained timestamptz, expires timestamptz,
	    refresh timestamptz);
	\copy c FROM '$W/conns.tsv'
	INSERT INTO tokens (source_id, subject, token_sealed, token_type,
	    generation, fingerprint, obtained_at, expires_at, refresh_at,
	    next_attempt_at) SELECT s.id, c.subject, c.sealed, 'Bearer', 1,
	    c.fpr, c.obtained, c.expires, c.refresh, c.refresh
	    FROM c JOIN token_sources s ON s.name = c.name;
	ANALYZE tokens;
	SQL
	    die "cannot load the rows: $(cat "$W/copy.err")"
}
HAVE=$(q kiln "SELECT count(*) FROM tokens WHERE subject <> 'default'")
[ "$HAVE" = "$TOTAL" ] || die "$HAVE of $TOTAL rows loaded"

LAST=$(printf 'b%04d/connections/u%05d' $((NSRC - 1)) $((PER - 1)))
say "conn: kiln with $TOTAL connections"
start_kiln conns "/api/tokens/$LAST/current-token"
BOOT_CONN=$BOOT_MS
sleep 1
read -r RSS1_MAX RSS1_AVG <<<"$(workers_rss)"

say "conn: throughput, $ROUNDS rounds of ${DUR} s"
URL="http://127.0.0.1:$K_PORT/"
: >"$W/tp-default"
: >"$W/tp-conn"
for ((r = 1; r <= ROUNDS; r++)); do
	if [ $((r % 2)) = 1 ]; then order="default conn"; else order="conn default"; fi
	for v in $order; do
		if [ "$v" = default ]; then
			set -- b "$NSRC" 0
		else
			set -- b "$NSRC" "$PER"
		fi
		WRK_D=$DUR wrk_run "$v" "$URL" bench/conn_random.lua "$@" \
		    >>"$W/tp-$v"
	done
done
TP_DEF=$(awk '{ print $1 }' "$W/tp-default" | median)
TP_CONN=$(awk '{ print $1 }' "$W/tp-conn" | median)
TP_RATIO=$(paste -d' ' "$W/tp-conn" "$W/tp-default" |
    awk '{ printf "%.4f\n", $1 / $8 }' | median)
TP_RANGE=$(paste -d' ' "$W/tp-conn" "$W/tp-default" |
    awk '{ printf "%.3f\n", $1 / $8 }' | sort -g | sed -n '1p;$p' |
    paste -sd' ')
US_DEF=$(awk '{ print $6 }' "$W/tp-default" | median)
US_CONN=$(awk '{ print $6 }' "$W/tp-conn" | median)
BAD=$(cat "$W/tp-default" "$W/tp-conn" | awk '{ s += $4 + $5 } END {
    print s + 0 }')

say "conn: listing pages of 100"
MIDS=$(printf 'u%05d' $((PER / 2)))
node - "$K_PORT" "$ADMIN_KEY" \
    "/api/tokens/b0000/connections?limit=100&cursor=$MIDS" \
    "/api/tokens/b0000/connections?limit=100&state=active&cursor=$MIDS" \
    >"$W/list.txt" <<-'JS' || die "listing failed"
const http = require('node:http');
const [port, key, ...paths] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const one = (path) => new Promise((ok, no) => {
	const t = process.hrtime.bigint();
	http.request({ host: '127.0.0.1', port, path, agent,
	    headers: { Authorization: `Bearer ${key}` } }, (res) => {
		let body = '';
		res.on('data', (d) => { body += d; });
		res.on('end', () => {
			const ms = Number(process.hrtime.bigint() - t) / 1e6;
			const n = res.statusCode === 200 ?
			    JSON.parse(body).data.connections.length : -1;
			n === 100 ? ok(ms) : no(new Error(`${path}: ` +
			    `${res.statusCode} ${n}`));
		});
	}).on('error', no).end();
});
(async () => {
	for (const p of paths) {
		for (let i = 0; i < 10; i++)
			await one(p);
		const ms = [];
		for (let i = 0; i < 100; i++)
			ms.push(await one(p));
		ms.sort((a, b) => a - b);
		console.log(`${ms[50].toFixed(2)} ${ms[98].toFixed(2)}`);
	}
	agent.destroy();
})().catch((e) => { console.error(e.message); process.exit(1); });
JS
read -r L_P50 L_P99 <<<"$(sed -n 1p "$W/list.txt")"
read -r LS_P50 LS_P99 <<<"$(sed -n 2p "$W/list.txt")"

printf '\nconnections (%s sources x %s = %s, %s workers)\n' "$NSRC" "$PER" \
    "$TOTAL" "$WORKERS"
printf '%-44s %s\n' "boot to serving, no connections (ms)" "$BOOT_PLAIN"
printf '%-44s %s\n' "boot to serving, with connections (ms)" "$BOOT_CONN"
printf '%-44s %s / %s\n' "worker RSS max/avg, none (kB)" "$RSS0_MAX" \
    "$RSS0_AVG"
printf '%-44s %s / %s\n' "worker RSS max/avg, with (kB)" "$RSS1_MAX" \
    "$RSS1_AVG"
printf '%-44s %s\n' "bytes per connection (avg worker)" \
    "$(awk -v a="$RSS1_AVG" -v b="$RSS0_AVG" -v n="$TOTAL" \
    'BEGIN { printf "%.0f", (a - b) * 1024 / n }')"
printf '%-44s %s\n' "current-token req/s, default (median)" "$TP_DEF"
printf '%-44s %s\n' "current-token req/s, connection (median)" "$TP_CONN"
printf '%-44s %.3f (pairs: %s to %s)\n' \
    "ratio connection / default (median of pairs)" "$TP_RATIO" $TP_RANGE
printf '%-44s %s / %s\n' "kiln CPU per request, default / conn (us)" \
    "$US_DEF" "$US_CONN"
printf '%-44s %s\n' "non-2xx and socket errors (all runs)" "$BAD"
printf '%-44s %s / %s\n' "list page of 100 p50/p99 (ms)" "$L_P50" "$L_P99"
printf '%-44s %s / %s\n' "list page of 100, state=active p50/p99 (ms)" \
    "$LS_P50" "$LS_P99"
exit 0
