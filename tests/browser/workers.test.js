'use strict';

/*
 * With KILN_WORKERS=2, a refresh done by either worker reaches the
 * sockets (node `ws` and a chromium page) attached to the other one, and
 * a logout on one worker closes the session's sockets on both.
 *
 * Sockets are put on a known worker by upgrading a keep-alive connection
 * whose GET /dashboard said "worker N" (see pinBothWorkers for how the
 * second worker is reached: Kore gives every connection to one worker
 * until it is busy); admin refreshes are sent the same way, and the log
 * line "token refreshed" (field worker) confirms which worker did each. The browser's socket is placed by the counts: one
 * node socket on worker A and two on worker B, so its "On this worker"
 * figure says 2 (A) or 3 (B).
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../integration/lib');
const a = require('../integration/lib/admin');
const d = require('./lib/dash');

const pg = h.filePg();
const rec = new d.Recorder();

/* The generation of alpha that the log says `worker` committed. */
function refreshedBy(k, gen)
{
	const l = k.jsonLogs().find((x) => x.msg === 'token refreshed' &&
	    x.token === 'alpha' && x.generation === gen);
	return l ? l.worker : null;
}

test('a refresh by either worker reaches sockets and a page on the other',
    { timeout: 120000 }, async () => {
	const env = await a.adminKiln(pg, 'dash_workers', { workers: 2,
	    lifetime: 600, sources: [{ name: 'alpha' }, { name: 'beta' }] });
	const k = env.k;
	await h.waitToken(k, 'alpha');
	await h.waitToken(k, 'beta');
	const s = await d.httpLogin(k, env.adminKey, { rec });

	const t0 = Date.now();
	const by = await d.pinBothWorkers(k, s.cookie, { per: 3, rec });
	console.log(`# sockets pinned on both workers in ${Date.now() - t0} ms`);
	const [A, B] = Object.keys(by).map(Number).sort();
	const onWorker = { [A]: [], [B]: [] };
	for (const [w, p] of [[A, by[A][0]], [B, by[B][0]], [B, by[B][1]]]) {
		const c = await d.wsClient(k, { cookie: s.cookie, socket: p.sock,
		    rec });
		assert.ok(!c.refused, `socket on worker ${w}: ${c.status}`);
		onWorker[w].push(c);
	}
	by[A][2].sock.destroy();
	const admin = { [A]: by[A][1], [B]: by[B][2] };
	const clients = [...onWorker[A], ...onWorker[B]];
	/* Each socket's worker agrees with its "On this worker" figure. */
	await onWorker[A][0].waitFor((c) => c.figures().here === 1, 3000,
	    `1 socket on worker ${A}`);
	await onWorker[B][0].waitFor((c) => c.figures().here === 2, 3000,
	    `2 sockets on worker ${B}`);

	const browser = await d.launch();
	const context = await browser.newContext();
	await context.addCookies([{ name: 'kiln_session', value: s.token,
	    url: k.url }]);
	const page = await context.newPage();
	const w = d.watchPage(page, rec, k.url);
	await page.goto(`${k.url}/dashboard`);
	await page.waitForSelector('#live.on', { timeout: 10000 });
	await page.waitForFunction(() => /Dashboard sockets\s*4/.test(
	    document.getElementById('clients').innerText), null,
	    { timeout: 5000 });
	const here = d.clientFigures(await page.$eval('#clients',
	    (e) => e.innerHTML)).here;
	assert.ok(here === 2 || here === 3, `browser: ${here} on its worker`);
	const browserWorker = here === 2 ? A : B;
	console.log(`# workers ${A} and ${B}; the page was served by worker ` +
	    `${d.pageWorker(await page.content())}, its socket is on ` +
	    `worker ${browserWorker}`);

	const crossed = [];
	let gen = d.tokenRows(clients[0].last.tokens).alpha.gen;
	for (const refresher of [A, B, A, B]) {
		const r = await admin[refresher].request('POST',
		    '/api/tokens/alpha/refresh', { headers: {
			Authorization: `Bearer ${env.adminKey}` } });
		assert.equal(r.status, 202, `refresh via worker ${refresher}: ` +
		    r.text);
		const t0 = Date.now();
		gen += 1;
		const g = gen;
		await Promise.all(clients.map((c) => c.waitFor((x) =>
		    x.gens.alpha && x.gens.alpha.has(g), 2000,
		    `generation ${g} on a socket`)));
		await page.waitForFunction((n) => Number(document.querySelector(
		    'tr[data-token="alpha"] td.gen').textContent) >= n, g,
		    { timeout: 2000 });
		const ms = Date.now() - t0;
		const did = await h.waitFor(() => refreshedBy(k, g),
		    { timeout: 3000, what: `the log line of generation ${g}` });
		const other = did === A ? B : A;
		crossed.push({ gen: g, by: did, reached: other, ms,
		    browser: browserWorker === other });
	}
	console.log(`# ${JSON.stringify(crossed)}`);
	/* Both directions were exercised, the page included. */
	assert.ok(crossed.some((x) => x.by === A), `worker ${A} refreshed`);
	assert.ok(crossed.some((x) => x.by === B), `worker ${B} refreshed`);
	assert.ok(crossed.some((x) => x.browser), 'the page got a refresh ' +
	    'done by the other worker');
	assert.equal(w.navigations, 1, 'the page was not reloaded');

	/* Logout on worker A closes the session's sockets on both. */
	const lo = await admin[A].request('POST', '/dashboard/logout', {
		headers: { Cookie: s.cookie, 'Content-Type':
		    'application/x-www-form-urlencoded' },
		body: `csrf=${s.csrf}` });
	assert.equal(lo.status, 303, `logout: ${lo.status} ${lo.text}`);
	await Promise.all(clients.map((c) => c.waitFor((x) => x.closed, 3000,
	    'socket closed by logout')));
	await page.waitForSelector('#live.stale', { timeout: 3000 });

	const leaks = rec.leaks({
		issued: await d.issuedTokens(env.idp),
		client_secret: Object.values(env.secrets),
		admin_key: env.adminKey,
		session: s.token,
		master_key: k.masterKey,
	});
	assert.deepEqual(leaks, [], 'no secret in any page or frame');
});
