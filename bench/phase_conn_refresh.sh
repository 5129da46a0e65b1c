#!/usr/bin/env bash
#
# bench/phase_conn_refresh.sh: refresh capacity with connections (issue
# 12), on its own: `bash bench/phase_conn_refresh.sh` (BENCH_CONN_SOURCES,
# default 10; BENCH_CONN_PER, connections per source, default 10000;
# BENCH_REFRESH_SECONDS, the steady window, default 120; BENCH_BURST,
# default 10000; BENCH_WORKERS, default 2).
#
#   - steady: every connection's token lives 11 minutes and is refreshed
#     60 s before it expires, so one refresh per connection every 10
#     minutes (100 000 connections: 167 refreshes/s). The first due
#     times are spread evenly over the next 10 minutes. Every 2 s the
#     table is read: tokens expired, and tokens late (due more than 5 s
#     ago and not yet committed); the refreshes per second committed
#     (refresh_events) and the failures.
#   - burst: BENCH_BURST connections (those due last, not refreshed yet)
#     are made due at once: one UPDATE, and in its transaction the
#     NOTIFYs that name them (500 to a payload), as kiln's own changes
#     are announced; the time until every one of them holds a new
#     generation: a success event since the burst, polled every half
#     second from the events written since (reading the 10 000 rows
#     each time cost the database 140-400 ms a poll, taken from the
#     refreshes measured).
#
# The connections belong to client_credentials sources of the bench's
# upstream (bench/upstream.js): the lease, the commit, the announce and
# the reloads are those of every kind; only the grant differs.
# The rows go straight into PostgreSQL, their tokens sealed as kiln seals
# them (see bench/phase_conn.sh).

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

BENCH_QUICK=1
bench_knobs
WORKERS=${BENCH_WORKERS:-2}
NSRC=${BENCH_CONN_SOURCES:-10}
PER=${BENCH_CONN_PER:-10000}
STEADY=${BENCH_REFRESH_SECONDS:-120}
BURST=${BENCH_BURST:-10000}
LIFETIME=660
BUFFER=60
PERIOD=$((LIFETIME - BUFFER))
TOTAL=$((NSRC * PER))
bench_tools
bench_workdir
bench_ports

start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
K_SOURCES=$W/sources.json
gen_sources "$K_SOURCES" b "$NSRC" "$LIFETIME"
sed -i "s/\"refresh_buffer\":300/\"refresh_buffer\":$BUFFER/" "$K_SOURCES"

say "conn refresh: sources' own tokens, the key id"
start_kiln plain
KEYID=$(q kiln "SELECT substr(token_sealed, 4, 8) FROM tokens
    WHERE token_sealed LIKE 'v1.%' LIMIT 1")
[ -n "$KEYID" ] || die "no sealed token to read the key id from"
stop_kiln

say "conn refresh: sealing $TOTAL connection tokens, due over $PERIOD s"
START_FILE=$W/start node - "$MASTER_KEY" "$KEYID" "$NSRC" "$PER" "$PERIOD" \
    "$BUFFER" \
    >"$W/conns.tsv" <<-'JS' ||
const crypto = require('node:crypto');
const [mk, id, nsrc, per, period, buffer] = process.argv.slice(2);
const key = Buffer.from(mk, 'base64');
const total = Number(nsrc) * Number(per);
/* the first due 40 s from now (boot), then evenly over the period */
const start = Date.now() + 40000;
require('node:fs').writeFileSync(process.env.START_FILE, String(start));
const ts = (ms) => new Date(ms).toISOString();
const out = [];
let k = 0;
for (let s = 0; s < Number(nsrc); s++) {
	const name = `b${String(s).padStart(4, '0')}`;
	for (let i = 0; i < Number(per); i++, k++) {
		const subject = `u${String(i).padStart(5, '0')}`;
		const token = crypto.randomBytes(32).toString('hex');
		const nonce = crypto.randomBytes(12);
		const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
		c.setAAD(Buffer.from(`kiln:${name}:token/${subject}`));
		const ct = Buffer.concat([c.update(token), c.final()]);
		const sealed = `v1.${id}.` + Buffer.concat([nonce, ct,
		    c.getAuthTag()]).toString('base64');
		const fpr = crypto.createHash('sha256').update(token)
		    .digest('hex').slice(0, 12);
		/* interleaved over sources, so every source has some due */
		const slot = (i * Number(nsrc) + s) % total;
		const due = start + Math.floor(slot * Number(period) * 1000 /
		    total);
		const exp = due + Number(buffer) * 1000;
		out.push([name, subject, sealed, fpr,
		    ts(exp - (Number(period) + Number(buffer)) * 1000), ts(exp),
		    ts(due)].join('\t'));
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
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" \
    -U postgres -d kiln <<-SQL >/dev/null 2>"$W/copy.err" ||
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
HAVE=$(q kiln "SELECT count(*) FROM tokens WHERE subject <> 'default'")
[ "$HAVE" = "$TOTAL" ] || die "$HAVE of $TOTAL rows loaded"

LAST=$(printf 'b%04d/connections/u%05d' $((NSRC - 1)) $((PER - 1)))
say "conn refresh: kiln with $TOTAL connections"
start_kiln conns "/api/tokens/$LAST/current-token"
say "conn refresh: booted in $BOOT_MS ms; steady window of $STEADY s"

# One row of the table's state: expired, late (> 5 s overdue), the most
# overdue (ms), refreshes committed and failed since $1.
sample() {
	q kiln "SELECT a.e, a.l, a.o, b.ok, b.f FROM (SELECT
	    count(*) FILTER (WHERE expires_at <= now()) AS e,
	    count(*) FILTER (WHERE next_attempt_at < now() - interval '5 s')
	    AS l, COALESCE(max(kiln_ms(now()) - kiln_ms(next_attempt_at))
	    FILTER (WHERE next_attempt_at < now()), 0) AS o
	    FROM tokens WHERE subject <> 'default') a, (SELECT
	    count(*) FILTER (WHERE outcome = 'success') AS ok,
	    count(*) FILTER (WHERE outcome <> 'success') AS f
	    FROM refresh_events
	    WHERE finished_at > to_timestamp($1 / 1000.0)) b" | tr '|' ' '
}

# The window starts when the first connections are due.
while [ "$(date +%s%3N)" -lt "$(cat "$W/start")" ]; do
	sleep 0.2
done
T0=$(date +%s%3N)
G0=$(pg_cpu_ticks); K0=$(cpu_ticks $(kiln_workers))
: >"$W/steady.txt"
while [ $(($(date +%s%3N) - T0)) -lt $((STEADY * 1000)) ]; do
	sample "$T0" >>"$W/steady.txt"
	sleep 2
done
T1=$(date +%s%3N)
G1=$(pg_cpu_ticks); K1=$(cpu_ticks $(kiln_workers))
read -r _ _ _ OK FAIL <<<"$(sample "$T0")"
EXPIRED=$(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$W/steady.txt")
LATE=$(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$W/steady.txt")
OVERDUE=$(awk '{ if ($3 > m) m = $3 } END { print m + 0 }' "$W/steady.txt")
RATE=$(awk -v n="$OK" -v ms="$((T1 - T0))" \
    'BEGIN { printf "%.1f", n * 1000 / ms }')
read -r RSS_MAX RSS_AVG <<<"$(workers_rss)"

say "conn refresh: burst of $BURST due at once"
q kiln "CREATE TABLE bench_burst AS SELECT t.source_id, t.subject,
    t.generation, s.name || '/' || t.subject AS key
    FROM tokens t JOIN token_sources s ON s.id = t.source_id
    WHERE t.subject <> 'default' AND t.generation = 1
    ORDER BY t.next_attempt_at DESC LIMIT $BURST; ANALYZE bench_burst" \
    >/dev/null
E0=$(q kiln "SELECT COALESCE(max(id), 0) FROM refresh_events")
B0=$(date +%s%3N)
q kiln "BEGIN; UPDATE tokens t SET next_attempt_at = now() FROM bench_burst b
    WHERE t.source_id = b.source_id AND t.subject = b.subject;
    SELECT count(pg_notify('kiln_tokens', k)) FROM (SELECT
    string_agg(key, ',') AS k FROM (SELECT key, (row_number() OVER ()
    - 1) / 500 AS g FROM bench_burst) x GROUP BY g) n; COMMIT" >/dev/null
BURST_MS=""
: >"$W/burst.txt"
while [ $(($(date +%s%3N) - B0)) -lt 120000 ]; do
	# Left: burst rows without a success since the burst (written in
	# the statement that stores the token), from the events since then
	# alone: a few ms of the database, where reading the 10 000 rows
	# every time took 140-400 ms of it from the refreshes measured.
	LEFT=$(q kiln "SELECT $BURST - count(DISTINCT (e.source_id,
	    e.subject)) FROM refresh_events e JOIN bench_burst b
	    ON b.source_id = e.source_id AND b.subject = e.subject
	    WHERE e.id > $E0 AND e.outcome = 'success'")
	echo "$(($(date +%s%3N) - B0)) $LEFT $(pg_cpu_ticks)" >>"$W/burst.txt"
	if [ "$LEFT" = 0 ]; then
		BURST_MS=$(($(date +%s%3N) - B0))
		break
	fi
	sleep 0.5
done
[ -n "$BURST_MS" ] || BURST_MS="> 120000 ($LEFT left)"
read -r B_EXPIRED B_LATE B_OVERDUE _ B_FAIL <<<"$(sample "$B0")"

printf '\nconnection refreshes (%s sources x %s = %s, %s workers)\n' \
    "$NSRC" "$PER" "$TOTAL" "$WORKERS"
printf '%-46s %s\n' "lifetime / refreshed every (s)" "$LIFETIME / $PERIOD"
printf '%-46s %s\n' "due per second" \
    "$(awk -v n="$TOTAL" -v p="$PERIOD" 'BEGIN { printf "%.1f", n / p }')"
printf '%-46s %s\n' "steady window (s)" "$(((T1 - T0) / 1000))"
printf '%-46s %s\n' "refreshes committed per second" "$RATE"
printf '%-46s %s\n' "failed attempts" "$FAIL"
printf '%-46s %s\n' "expired tokens, most at once" "$EXPIRED"
printf '%-46s %s\n' "late (due > 5 s ago), most at once" "$LATE"
printf '%-46s %s\n' "most overdue seen (ms)" "$OVERDUE"
printf '%-46s %s / %s\n' "worker RSS max/avg (kB)" "$RSS_MAX" "$RSS_AVG"
# CPU time in clock ticks (100 a second): ms per refresh committed.
printf '%-46s %s / %s\n' "CPU per refresh, PostgreSQL / kiln (ms)" \
    "$(awk -v t=$((G1 - G0)) -v n="$OK" 'BEGIN { printf "%.2f", n ? t * 10 / n : 0 }')" \
    "$(awk -v t=$((K1 - K0)) -v n="$OK" 'BEGIN { printf "%.2f", n ? t * 10 / n : 0 }')"
printf '%-46s %s\n' "burst of $BURST: all refreshed after (ms)" "$BURST_MS"
printf '%-46s %s / %s\n' "burst: expired / failed" "$B_EXPIRED" "$B_FAIL"
printf '%-46s %s\n' "burst: left after 5 / 10 / 20 / 30 s" "$(awk '
    { for (i = 1; i <= 4; i++) if (!(i in v) && $1 >= t[i]) v[i] = $2 }
    BEGIN { t[1] = 5000; t[2] = 10000; t[3] = 20000; t[4] = 30000 }
    END { for (i = 1; i <= 4; i++) printf "%s%s", (i in v) ? v[i] : 0,
        i < 4 ? " / " : "" }' "$W/burst.txt")"
exit 0
