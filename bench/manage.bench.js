'use strict';

/*
 * The dashboard's sources and keys pages with many sources (BENCH_SOURCES,
 * default 10000, disabled so that nothing refreshes): median server
 * round trip of 25 GETs of each page over loopback, against a baseline
 * measured in the same run, GET /api/tokens/{name} (one source's view:
 * one indexed row, the same columns). Run by bench/phase_manage.sh.
 */

const { test } = require('node:test');

const h = require('../tests/integration/lib');
const d = require('../tests/browser/lib/dash');

const pg = h.filePg();
const N = Number(process.env.BENCH_SOURCES || 10000);
const KEY = `bench-manage-${require('node:crypto').randomBytes(16)
    .toString('hex')}`;

async function median(k, p, headers)
{
	const t = [];
	let bytes = 0;
	for (let i = 0; i < 25; i++) {
		const t0 = process.hrtime.bigint();
		const r = await k.get(p, { headers });
		t.push(Number(process.hrtime.bigint() - t0) / 1e6);
		if (r.status !== 200)
			throw new Error(`${p}: ${r.status}`);
		bytes = r.text.length;
	}
	t.sort((x, y) => x - y);
	return { ms: t[12], bytes };
}

test(`dashboard manage pages, ${N} sources`, { timeout: 600000 },
    async () => {
	const sources = [];
	for (let i = 0; i < N; i++) {
		sources.push({ name: `s${String(i).padStart(5, '0')}`,
		    kind: 'client_credentials',
		    token_url: 'http://127.0.0.1:9/token', client_id: 'x',
		    client_secret: 'y', enabled: false });
	}
	const db = await h.freshDb(pg, 'bench_manage');
	const k = await h.startKiln({ name: 'bench_manage',
	    databaseUrl: db.url, sources, healthTimeout: 300000,
	    env: { KILN_ADMIN_KEY: KEY, LOG_LEVEL: 'warn' } });
	const s = await d.httpLogin(k, KEY);
	const c = { Cookie: s.cookie };
	const mid = `s${String(N >> 1).padStart(5, '0')}`;

	const base = await median(k, `/api/tokens/${mid}`,
	    { Authorization: `Bearer ${KEY}` });
	const rows = [
		['GET /dashboard/sources', await median(k,
		    '/dashboard/sources', c)],
		[`GET /dashboard/sources?after=${mid}`, await median(k,
		    `/dashboard/sources?after=${mid}`, c)],
		[`GET /dashboard/sources/${mid}`, await median(k,
		    `/dashboard/sources/${mid}`, c)],
		['GET /dashboard/keys', await median(k, '/dashboard/keys', c)],
	];
	console.log(`| page (${N} sources) | median ms | bytes | ` +
	    'ratio to baseline |');
	console.log('| --- | --- | --- | --- |');
	console.log(`| baseline GET /api/tokens/${mid} | ` +
	    `${base.ms.toFixed(2)} | ${base.bytes} | 1.00 |`);
	for (const [name, r] of rows) {
		console.log(`| ${name} | ${r.ms.toFixed(2)} | ${r.bytes} | ` +
		    `${(r.ms / base.ms).toFixed(2)} |`);
	}
});
