#!/usr/bin/env bash
#
# bench/phase_dash_conn.sh: the dashboard's connections page (issue 12),
# on its own: `bash bench/phase_dash_conn.sh` (BENCH_CONN_PER, the
# connections of the one source, default 10000; BENCH_WORKERS, default 2).
#
#   - server time of GET /dashboard/tokens/{name}/connections (a page of
#     50 in the middle, by cursor; and with a state filter), against the
#     same rows from the admin API (GET /api/tokens/{name}/connections
#     ?limit=50) measured in this run: p50/p99 ms and the ratio of the
#     medians, and the bytes of a page;
#   - bytes a second pushed to an open page's socket while nothing
#     changes (the rows are read again every 5 s, sent only if changed),
#     over 12 s.
#
# The rows go straight into PostgreSQL, sealed as bench/phase_conn.sh
# does (tokens that live an hour: no refresh runs during the measures).

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

BENCH_QUICK=1
bench_knobs
WORKERS=${BENCH_WORKERS:-2}
PER=${BENCH_CONN_PER:-10000}
bench_tools
bench_workdir
bench_ports

start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
start_upstream
K_SOURCES=$W/sources.json
gen_sources "$K_SOURCES" b 1 3600

start_kiln plain
KEYID=$(q kiln "SELECT substr(token_sealed, 4, 8) FROM tokens
    WHERE token_sealed LIKE 'v1.%' LIMIT 1")
[ -n "$KEYID" ] || die "no sealed token to read the key id from"
stop_kiln

say "dash_conn: sealing $PER connection tokens"
node - "$MASTER_KEY" "$KEYID" "$PER" >"$W/conns.tsv" <<-'JS' ||
const crypto = require('node:crypto');
const [mk, id, per] = process.argv.slice(2);
const key = Buffer.from(mk, 'base64');
const now = Date.now();
const ts = (ms) => new Date(ms).toISOString();
const out = [];
for (let i = 0; i < Number(per); i++) {
	const subject = `u${String(i).padStart(5, '0')}`;
	const token = `conn-b0000-${subject}-` +
	    crypto.randomBytes(24).toString('hex');
	const nonce = crypto.randomBytes(12);
	const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
	c.setAAD(Buffer.from(`kiln:b0000:token/${subject}`));
	const ct = Buffer.concat([c.update(token), c.final()]);
	const sealed = `v1.${id}.` + Buffer.concat([nonce, ct,
	    c.getAuthTag()]).toString('base64');
	const fpr = crypto.createHash('sha256').update(token)
	    .digest('hex').slice(0, 12);
	out.push(['b0000', subject, sealed, fpr, ts(now), ts(now + 3600e3),
	    ts(now + 3000e3)].join('\t'));
}
process.stdout.write(out.join('\n') + '\n');
JS
    die "cannot seal the rows"
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" \
    -U postgres -d kiln <<-SQL >/dev/null || die "cannot load the rows"
CREATE TEMP TABLE c (name text, subject text, sealed text, fpr text,
    obtained timestamptz, expires timestamptz, refresh timestamptz);
\copy c FROM '$W/conns.tsv'
INSERT INTO tokens (source_id, subject, token_sealed, token_type,
    generation, fingerprint, obtained_at, expires_at, refresh_at,
    next_attempt_at) SELECT s.id, c.subject, c.sealed, 'Bearer', 1,
    c.fpr, c.obtained, c.expires, c.refresh, c.refresh
    FROM c JOIN token_sources s ON s.name = c.name;
ANALYZE tokens;
SQL

say "dash_conn: kiln with $PER connections"
start_kiln conns "/api/tokens/b0000/connections/u00000/current-token"
sleep 1

say "dash_conn: pages of 50, page vs API"
MIDS=$(printf 'u%05d' $((PER / 2)))
node - "$K_PORT" "$ADMIN_KEY" "$MIDS" >"$W/dash.txt" <<-'JS' ||
const http = require('node:http');
const WebSocket = require(process.cwd() + '/node_modules/ws');
const [port, key, mid] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const req = (method, path, headers = {}, body = null) =>
    new Promise((ok, no) => {
	const t = process.hrtime.bigint();
	const r = http.request({ host: '127.0.0.1', port, path, method,
	    agent, headers }, (res) => {
		let b = '';
		res.on('data', (d) => { b += d; });
		res.on('end', () => ok({ status: res.statusCode, body: b,
		    headers: res.headers,
		    ms: Number(process.hrtime.bigint() - t) / 1e6 }));
	});
	r.on('error', no);
	r.end(body);
});
const cookie = (res, name) => [].concat(res.headers['set-cookie'] || [])
    .map((c) => new RegExp(`^${name}=([^;]*)`).exec(c))
    .filter(Boolean)[0][1];
(async () => {
	const f = await req('GET', '/dashboard/login');
	const lc = cookie(f, 'kiln_login');
	const l = await req('POST', '/dashboard/login', {
	    'Content-Type': 'application/x-www-form-urlencoded',
	    Cookie: `kiln_login=${lc}` },
	    `csrf=${lc}&credential=${encodeURIComponent(key)}`);
	if (l.status !== 303)
		throw new Error(`login: ${l.status}`);
	const sess = `kiln_session=${cookie(l, 'kiln_session')}`;
	await new Promise((r) => setTimeout(r, 500));
	const runs = [
	    ['api', `/api/tokens/b0000/connections?limit=50&cursor=${mid}`,
	    { Authorization: `Bearer ${key}` }],
	    ['page', `/dashboard/tokens/b0000/connections?limit=50&cursor=${mid}`,
	    { Cookie: sess }],
	    ['page_state', '/dashboard/tokens/b0000/connections?limit=50&' +
	    `state=active&cursor=${mid}`, { Cookie: sess }],
	];
	const out = {};
	for (const [name, path, hd] of runs) {
		let bytes = 0;
		for (let i = 0; i < 20; i++)
			await req('GET', path, hd);
		const ms = [];
		for (let i = 0; i < 200; i++) {
			const r = await req('GET', path, hd);
			if (r.status !== 200 || (name !== 'api' &&
			    (r.body.match(/<tr data-subject=/g) || []).length !== 50))
				throw new Error(`${path}: ${r.status}`);
			ms.push(r.ms);
			bytes = r.body.length;
		}
		ms.sort((a, b) => a - b);
		out[name] = [ms[100], ms[197], bytes];
	}
	/* An open page's socket while nothing changes. */
	const ws = new WebSocket(`ws://127.0.0.1:${port}/dashboard/ws?` +
	    `conn=b0000&limit=50&cursor=${mid}`, { headers: { Cookie: sess,
	    Origin: `http://127.0.0.1:${port}` } });
	let first = 0, later = 0, t0 = 0;
	ws.on('message', (m) => {
		if (t0 === 0) {
			first += m.length;
			t0 = Date.now();
		} else {
			later += m.length;
		}
	});
	await new Promise((r) => setTimeout(r, 13000));
	ws.close();
	if (first === 0)
		throw new Error('the socket got no rows');
	const secs = t0 ? (Date.now() - t0) / 1000 : 12;
	for (const n of ['api', 'page', 'page_state'])
		console.log(out[n].map((x) => typeof x === 'number' &&
		    !Number.isInteger(x) ? x.toFixed(2) : x).join(' '));
	console.log(`${first} ${(later / secs).toFixed(1)}`);
	agent.destroy();
})().catch((e) => { console.error(e.message); process.exit(1); });
JS
    die "measuring failed"
read -r A_P50 A_P99 A_B <<<"$(sed -n 1p "$W/dash.txt")"
read -r P_P50 P_P99 P_B <<<"$(sed -n 2p "$W/dash.txt")"
read -r S_P50 S_P99 S_B <<<"$(sed -n 3p "$W/dash.txt")"
read -r WS_FIRST WS_RATE <<<"$(sed -n 4p "$W/dash.txt")"

printf '\ndashboard connections page (1 source x %s connections, %s workers)\n' \
    "$PER" "$WORKERS"
printf '%-46s %s / %s\n' "API list of 50 p50/p99 (ms)" "$A_P50" "$A_P99"
printf '%-46s %s / %s\n' "page of 50 p50/p99 (ms)" "$P_P50" "$P_P99"
printf '%-46s %s / %s\n' "page of 50, state=active p50/p99 (ms)" \
    "$S_P50" "$S_P99"
printf '%-46s %s\n' "ratio page / API (p50)" \
    "$(awk -v a="$P_P50" -v b="$A_P50" 'BEGIN { printf "%.2f", a / b }')"
printf '%-46s %s\n' "page bytes" "$P_B"
printf '%-46s %s\n' "socket: first push (bytes)" "$WS_FIRST"
printf '%-46s %s\n' "socket: bytes/s after, nothing changing" "$WS_RATE"
exit 0
