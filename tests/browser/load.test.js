'use strict';

/*
 * 200 concurrent dashboard WebSockets (node `ws`) on a 2-worker kiln stay
 * connected for 60 s and each receives the updates: a tokens patch for
 * each change of the rows it shows (at least one per admin refresh, done
 * every 10 s; the countdowns run in the page, so an unchanged table is
 * not sent again each second) and every generation of those refreshes. The clients are spread over both
 * workers (d.switchAcceptor half-way) and half are viewers, half admins
 * (8 sockets per session, the most a session may hold). Every frame is
 * scanned for token values and secrets.
 *
 * KILN_LOAD_CLIENTS and KILN_LOAD_SECONDS change the size (defaults 200
 * and 60).
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../integration/lib');
const a = require('../integration/lib/admin');
const d = require('./lib/dash');

const pg = h.filePg();
const rec = new d.Recorder();

const CLIENTS = Number(process.env.KILN_LOAD_CLIENTS || 200);
const SECONDS = Number(process.env.KILN_LOAD_SECONDS || 60);
const REFRESH_EVERY_S = 10;
const PER_SESSION = 8;		/* sockets a session may hold */

function quantile(xs, q)
{
	const s = [...xs].sort((x, y) => x - y);
	return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/* The first value of key anywhere in a JSON document. */
function findKey(v, key)
{
	if (v === null || typeof v !== 'object')
		return undefined;
	if (Object.prototype.hasOwnProperty.call(v, key))
		return v[key];
	for (const x of Object.values(v)) {
		const r = findKey(x, key);
		if (r !== undefined)
			return r;
	}
	return undefined;
}

/* n sockets, the (from + j)-th on cookies[(from + j) % cookies.length]. */
async function connectMany(k, n, cookies, from = 0)
{
	const out = [];
	for (let i = 0; i < n; i += 20) {
		const batch = [];
		for (let j = i; j < Math.min(n, i + 20); j++)
			batch.push(d.wsClient(k, { cookie:
			    cookies[(from + j) % cookies.length], rec }));
		for (const c of await Promise.all(batch)) {
			assert.ok(!c.refused, `handshake: ${c.status} ${c.body}`);
			out.push(c);
		}
	}
	return out;
}

test(`${CLIENTS} WebSocket clients stay connected for ${SECONDS} s and ` +
    'each receives the updates', { timeout: (SECONDS + 90) * 1000 },
    async () => {
	/* Many sessions from one address: logins are rate-limited. */
	const env = await a.adminKiln(pg, 'dash_load', { workers: 2,
	    lifetime: 600, sources: [{ name: 'alpha' }, { name: 'beta' },
	    { name: 'gamma' }], env: { KILN_RATE_ANONYMOUS: '1000' } });
	const k = env.k;
	for (const n of ['alpha', 'beta', 'gamma'])
		await h.waitToken(k, n);
	const admin = await d.httpLogin(k, env.adminKey, { rec });
	const viewerJwt = await a.jwt('viewer');
	const viewer = await d.httpLogin(k, viewerJwt, { rec });
	const sessions = [admin, viewer];
	while (sessions.length * PER_SESSION < CLIENTS)
		sessions.push(await d.httpLogin(k, sessions.length % 2 ?
		    viewerJwt : env.adminKey, { rec }));
	const cookies = sessions.map((x) => x.cookie);

	/* Half on the worker that accepts now, half on the other. */
	const t0 = Date.now();
	const clients = await connectMany(k, CLIENTS / 2, cookies);
	await Promise.all(clients.map((c) => c.waitFor((x) =>
	    x.figures().total === clients.length, 10000, 'first half')));
	const { held, pin } = await d.switchAcceptor(k, admin.cookie, { rec });
	pin.p.sock.destroy();
	clients.push(...await connectMany(k, CLIENTS - CLIENTS / 2, cookies,
	    CLIENTS / 2));
	held.release();
	const rampMs = Date.now() - t0;
	await Promise.all(clients.map((c) => c.waitFor((x) =>
	    x.figures().total === CLIENTS, 10000,
	    `"Dashboard sockets ${CLIENTS}"`)));
	const split = {};
	for (const c of clients) {
		const here = c.figures().here;
		split[here] = (split[here] || 0) + 1;
	}
	assert.ok(clients.every((c) => c.figures().here < CLIENTS),
	    `clients on both workers (${JSON.stringify(split)})`);
	const rampFrames = clients.reduce((s, c) => s + c.frames, 0);
	console.log(`# ${CLIENTS} clients connected in ${rampMs} ms; ` +
	    `${rampFrames} frames received meanwhile; clients by ` +
	    `"On this worker" figure: ${JSON.stringify(split)}`);

	/* The window: counts from now on; an admin refresh every 10 s. */
	const base = clients.map((c) => ({ tokens: c.counts.tokens || 0,
	    frames: c.frames }));
	const start = Date.now();
	const refreshes = [];
	while (Date.now() - start < SECONDS * 1000) {
		const at = Date.now();
		const r = await a.call(k, 'POST', '/api/tokens/alpha/refresh',
		    { auth: env.adminKey });
		assert.equal(r.status, 202, `refresh: ${r.status} ${r.text}`);
		const gen = await h.waitFor(async () => {
			const t = await a.call(k, 'GET', '/api/tokens/alpha',
			    { auth: env.adminKey });
			const g = findKey(t.json, 'generation');
			const prev = refreshes.length ?
			    refreshes[refreshes.length - 1].gen : 1;
			return Number.isInteger(g) && g > prev ? g : false;
		}, { timeout: 5000, interval: 50, what: 'the new generation' });
		refreshes.push({ at, gen });
		const next = at + REFRESH_EVERY_S * 1000;
		await h.sleep(Math.max(0, Math.min(next,
		    start + SECONDS * 1000) - Date.now()));
	}
	const end = Date.now();
	await h.sleep(1500);	/* the last refresh's patches */

	const problems = [];
	const tokensCounts = [];
	const delays = [];
	clients.forEach((c, i) => {
		const n = (c.counts.tokens || 0) - base[i].tokens;
		tokensCounts.push(n);
		if (c.closed !== null)
			problems.push(`client ${i} closed at ` +
			    `${c.closed.at - start} ms (code ${c.closed.code})`);
		if (n < refreshes.length)
			problems.push(`client ${i}: ${n} tokens patches`);
		if (c.bad !== undefined)
			problems.push(`client ${i}: bad frame ${c.bad}`);
		for (const { at, gen } of refreshes) {
			const seen = c.genAt.alpha && c.genAt.alpha.get(gen);
			if (seen === undefined)
				problems.push(`client ${i} never saw alpha ` +
				    `generation ${gen}`);
			else
				delays.push(seen - at);
		}
	});
	const frames = clients.reduce((s, c, i) => s + c.frames -
	    base[i].frames, 0);
	console.log(`# ${(end - start) / 1000} s window: ${frames} frames; ` +
	    `tokens patches per client min ${Math.min(...tokensCounts)} ` +
	    `median ${quantile(tokensCounts, 0.5)}; ${refreshes.length} ` +
	    `refreshes, click-to-socket delay p50 ${quantile(delays, 0.5)} ` +
	    `ms, max ${Math.max(...delays)} ms`);
	assert.deepEqual(problems.slice(0, 20), [], `${problems.length} ` +
	    'problems');
	assert.ok(refreshes.length >= Math.floor(SECONDS / REFRESH_EVERY_S));
	assert.ok(Math.max(...delays) < 2000, 'every refresh within 2 s');

	const health = await k.get('/health');
	assert.equal(health.status, 200, 'kiln still healthy');
	assert.deepEqual(a.crashLines(k), [], 'no worker died');

	const leaks = rec.leaks({
		issued: await d.issuedTokens(env.idp),
		client_secret: Object.values(env.secrets),
		admin_key: env.adminKey,
		sessions: sessions.map((x) => x.token),
		jwt: viewerJwt,
		master_key: k.masterKey,
	});
	console.log(`# scanned ${rec.texts.size} distinct frames and pages`);
	assert.deepEqual(leaks, [], 'no secret in any frame');
	for (const c of clients)
		c.close();
});
