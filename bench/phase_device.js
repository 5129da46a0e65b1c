#!/usr/bin/env node
'use strict';

/*
 * bench/phase_device.js: the device flow's poll scheduler (issue 12,
 * RFC 8628) against oidc-provider (tests/upstream/oidc_device.js), one
 * kiln with 2 workers:
 *
 *  1. POST .../connections of a device_code source (one call to the
 *     device authorization endpoint, one statement) against the
 *     connection's detail (a read of the same rows, no upstream call)
 *     as the baseline: medians (ms) and the ratio;
 *  2. N pending flows (nobody consents) at an interval of I s, watched
 *     at the provider for W s: polls per second against the N / I the
 *     interval allows (the ratio; under 1: kiln waits the interval and
 *     then for its next claim tick), the gaps between two polls of one
 *     flow (p50, p99, min), and the polls that came sooner than the
 *     interval (two pollers at once: must be 0).
 *
 *	node bench/phase_device.js [flows] [interval] [window]
 *	    (default 200 2 12)
 */

const crypto = require('node:crypto');
const path = require('node:path');

const h = require('../tests/integration/lib');
const a = require('../tests/integration/lib/admin');
const procs = require('../tests/integration/lib/procs');
const { request } = require('../tests/integration/lib/http');

const FLOWS = Number(process.argv[2] || 200);
const INTERVAL = Number(process.argv[3] || 2);
const WINDOW = Number(process.argv[4] || 12);
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

function pct(xs, p)
{
	const s = [...xs].sort((x, y) => x - y);
	if (s.length === 0)
		return NaN;
	return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) +
	    0.5))];
}

function provider(config)
{
	return new Promise((resolve, reject) => {
		const child = procs.spawnTracked(process.execPath,
		    [path.join(procs.REPO, 'tests', 'upstream',
		    'oidc_device.js'), '--port', '0', '--config',
		    JSON.stringify(config)], { cwd: procs.REPO,
		    stdio: ['ignore', 'pipe', 'pipe'] }, 'oidc_device.js');
		let out = '';
		child.stderr.resume();
		child.on('exit', (c) => reject(new Error(`provider: ${c}`)));
		child.stdout.on('data', (d) => {
			out += d;
			if (!out.includes('\n'))
				return;
			child.removeAllListeners('exit');
			procs.onCleanup(() => procs.stopProcess(child, 3000));
			const { port } = JSON.parse(out.split('\n')[0]);
			const url = `http://127.0.0.1:${port}`;
			resolve({ url, stats: async () => (await request(
			    `${url}/_stats`, { timeout: 30000 })).json });
		});
	});
}

async function main()
{
	const secret = crypto.randomBytes(16).toString('hex');
	const idp = await provider({ interval: INTERVAL, clients: [{
		client_id: 'tv', client_secret: secret,
		token_endpoint_auth_method: 'client_secret_post' }] });
	const pg = h.filePg();
	const db = await h.freshDb(pg, 'bench_device');
	const k = await h.startKiln({ name: 'bench-device',
	    databaseUrl: db.url, workers: 2, quiet: true, sources: [{
		name: 'tv', kind: 'device_code',
		device_authorization_url: `${idp.url}/device/auth`,
		token_url: `${idp.url}/token`, client_id: 'tv',
		client_secret: secret, scope: 'openid' }],
	    env: { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY } });

	/* 1. start a flow vs read a connection. */
	const start = [];
	const read = [];
	for (let i = 0; i < FLOWS; i++) {
		let t = process.hrtime.bigint();
		const r = await a.call(k, 'POST', '/api/tokens/tv/connections',
		    { auth: a.ADMIN_KEY, body: { subject: `s${i}` } });
		start.push(Number(process.hrtime.bigint() - t) / 1e6);
		if (r.status !== 201)
			throw new Error(`connect: ${r.status} ${r.text}`);
		t = process.hrtime.bigint();
		const g = await a.call(k, 'GET',
		    `/api/tokens/tv/connections/s${i}`, { auth: a.ADMIN_KEY });
		read.push(Number(process.hrtime.bigint() - t) / 1e6);
		if (g.status !== 200)
			throw new Error(`detail: ${g.status} ${g.text}`);
	}
	const ms = (x) => x.toFixed(2);
	console.log(`device start: median ${ms(pct(start, 0.5))} ms, ` +
	    `p99 ${ms(pct(start, 0.99))} ms; baseline (connection detail): ` +
	    `median ${ms(pct(read, 0.5))} ms; ratio ` +
	    `${(pct(start, 0.5) / pct(read, 0.5)).toFixed(2)}`);

	/* 2. the polls of FLOWS pending flows over WINDOW seconds. */
	await h.sleep(2 * INTERVAL * 1000);
	const from = Date.now();
	await h.sleep(WINDOW * 1000);
	const to = Date.now();
	const polls = (await idp.stats()).token.filter((t) =>
	    t.grant_type === DEVICE_GRANT && t.at >= from && t.at < to);
	const by = new Map();
	for (const p of polls) {
		if (!by.has(p.code))
			by.set(p.code, []);
		by.get(p.code).push(p.at);
	}
	const gaps = [];
	for (const ats of by.values()) {
		for (let i = 1; i < ats.length; i++)
			gaps.push((ats[i] - ats[i - 1]) / 1000);
	}
	const rate = polls.length / WINDOW;
	const ideal = FLOWS / INTERVAL;
	const early = gaps.filter((g) => g < INTERVAL * 0.95).length;
	const errors = polls.filter((p) => p.error !==
	    'authorization_pending').length;
	console.log(`polls: ${FLOWS} flows at ${INTERVAL} s over ${WINDOW} ` +
	    `s: ${rate.toFixed(1)}/s against ${ideal.toFixed(1)}/s allowed, ` +
	    `ratio ${(rate / ideal).toFixed(2)}; flows polled ${by.size}; ` +
	    `gap p50 ${pct(gaps, 0.5).toFixed(2)} s, p99 ` +
	    `${pct(gaps, 0.99).toFixed(2)} s, min ` +
	    `${Math.min(...gaps).toFixed(2)} s; sooner than the interval: ` +
	    `${early}; answers other than authorization_pending: ${errors}`);
	await procs.cleanupAll();
}

main().catch(async (e) => {
	console.error(e.stack || e);
	await procs.cleanupAll();
	process.exit(1);
});
