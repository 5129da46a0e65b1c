'use strict';

/*
 * The live dashboard in Debian's chromium (playwright-core), against the
 * real server: login, every token, live countdowns, "Refresh now", a
 * failing upstream turning a token `failing` with an alert, screenshots,
 * the page without JavaScript, WebSocket refusals (Origin, no session,
 * expired session, forged cookie), logout closing the sockets, the
 * shutdown notice, and no secret in any page or frame of the run.
 *
 * One kiln (1 worker) for the file: three sources on tests/upstream/oauth.js
 * (lifetime 600 s) and "flaky" on tests/upstream/fault.js (lifetime 12 s,
 * refresh_buffer 6 s: a refresh about every 6 s), whose upstream is made
 * to fail by POST /_mode.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { before, test } = require('node:test');

const h = require('../integration/lib');
const a = require('../integration/lib/admin');
const d = require('./lib/dash');

const pg = h.filePg();
const rec = new d.Recorder();
const NAMES = ['alpha', 'beta', 'gamma', 'flaky'];
const STATES = ['valid', 'refreshing', 'failing', 'expired', 'paused',
    'pending'];
const FLAKY_SECRET = h.secret('flaky');

const S = {};		/* shared by the tests, in file order */
const sessions = [];	/* every session cookie value handed out */
const credentials = [];	/* every JWT used to sign in */

before(async () => {
	S.fault = await h.startFault(['--lifetime', '12']);
	S.env = await a.adminKiln(pg, 'dashboard', { lifetime: 600, sources: [
		{ name: 'alpha' },
		{ name: 'beta' },
		{ name: 'gamma' },
		{ name: 'flaky', token_url: S.fault.tokenUrl,
		    client_id: 'flaky', client_secret: FLAKY_SECRET,
		    refresh_buffer: 6 },
	] });
	S.k = S.env.k;
	for (const n of NAMES)
		await h.waitToken(S.k, n);
	S.browser = await d.launch();
});

async function livePage(context, path = '/dashboard')
{
	const page = await context.newPage();
	const w = d.watchPage(page, rec, S.k.url);
	await page.goto(S.k.url + path);
	await page.waitForSelector('#live.on', { timeout: 10000 });
	await page.evaluate(() => {
		window.kilnTestMarker = 'not reloaded';
	});
	return { page, w };
}

async function notReloaded(page, w, navs)
{
	assert.equal(await page.evaluate(() => window.kilnTestMarker),
	    'not reloaded', 'the page was not reloaded');
	assert.equal(w.navigations, navs, 'no navigation');
}

test('log in through the form and see every token, live', async () => {
	const context = await S.browser.newContext({
	    viewport: { width: 1280, height: 720 } });
	const page = await context.newPage();
	const w = d.watchPage(page, rec, S.k.url);

	/* Not signed in: the page sends us to the login form. */
	const r0 = await page.goto(`${S.k.url}/dashboard`);
	assert.equal(new URL(page.url()).pathname, '/dashboard/login');
	assert.equal(r0.status(), 200);

	await d.browserLogin(page, S.k, S.env.adminKey);
	const cookies = await context.cookies();
	const sc = cookies.find((c) => c.name === 'kiln_session');
	assert.ok(sc, 'kiln_session cookie set');
	assert.equal(sc.httpOnly, true, 'HttpOnly');
	assert.equal(sc.sameSite, 'Strict', 'SameSite=Strict');
	assert.equal(sc.path, '/');
	sessions.push(sc.value);
	assert.equal(await page.evaluate(() => document.cookie.includes(
	    'kiln_session')), false, 'the script cannot read the session');

	await page.waitForSelector('#live.on', { timeout: 10000 });
	assert.equal((await page.textContent('#live')).trim(), 'live');
	await page.evaluate(() => {
		window.kilnTestMarker = 'not reloaded';
	});
	assert.match(await page.textContent('header'),
	    /worker \d+ · signed in as admin/);

	const rows = await d.pageRows(page);
	assert.deepEqual(Object.keys(rows).sort(), [...NAMES].sort(),
	    'every token has a row');
	for (const n of NAMES) {
		assert.ok(STATES.includes(rows[n].state), `${n} state ` +
		    rows[n].state);
		assert.equal(rows[n].label, rows[n].state, `${n} badge text`);
		assert.ok(rows[n].gen >= 1, `${n} generation ${rows[n].gen}`);
	}
	for (const n of ['alpha', 'beta', 'gamma'])
		assert.equal(rows[n].state, 'valid', `${n} is valid`);
	/* Fingerprints only: the page's fingerprint is kiln's. */
	const tok = (await S.k.currentToken('alpha')).json.token;
	assert.ok(rows.alpha.html.includes(`<code>${h.fingerprint(tok)}` +
	    '</code>'), 'alpha shows its fingerprint');

	/* One socket, patches arriving. */
	await h.waitFor(() => w.open().length === 1 && w.open()[0].frames >= 5,
	    { timeout: 5000, what: 'an open socket with patches' });
	assert.deepEqual(w.foreign, [], 'no request leaves kiln');
	S.main = { context, page, w, navs: w.navigations };
});

test('a countdown decreases without reload', async () => {
	const { page, w } = S.main;
	const before0 = (await d.pageRows(page)).alpha.expires;
	assert.ok(before0 > 500, `alpha expires in ${before0} s`);
	const t0 = Date.now();
	await page.waitForFunction((b) => {
		const t = document.querySelector(
		    'tr[data-token="alpha"] td.expires').textContent;
		const m = /^(\d+)m (\d\d)s$/.exec(t);
		return m && Number(m[1]) * 60 + Number(m[2]) < b;
	}, before0, { timeout: 4000, polling: 100 });
	const after0 = (await d.pageRows(page)).alpha.expires;
	assert.ok(after0 < before0 && after0 >= before0 - 4,
	    `expires went from ${before0} to ${after0} s in ` +
	    `${Date.now() - t0} ms`);
	await notReloaded(page, w, S.main.navs);
});

test('"Refresh now" changes the generation and the history within 2 s',
    async () => {
	const { page, w } = S.main;
	const g0 = (await d.pageRows(page)).alpha.gen;
	const t0 = Date.now();
	const [resp] = await Promise.all([
		page.waitForResponse((r) => r.url().endsWith(
		    '/api/tokens/alpha/refresh'), { timeout: 5000 }),
		page.click('tr[data-token="alpha"] button:has-text("Refresh now")'),
	]);
	assert.equal(resp.status(), 202, 'the admin API accepted it');
	const req = resp.request();
	assert.equal(req.method(), 'POST');
	assert.match(String(req.headers()['x-csrf-token']), /^[0-9a-f]{32}$/,
	    'sent with X-CSRF-Token');

	await page.waitForFunction((g) => {
		const gen = Number(document.querySelector(
		    'tr[data-token="alpha"] td.gen').textContent);
		if (gen <= g)
			return false;
		for (const tr of document.querySelectorAll(
		    '#history tbody tr')) {
			const td = tr.querySelectorAll('td');
			if (td.length >= 7 && td[1].textContent === 'alpha' &&
			    Number(td[6].textContent) === gen)
				return true;
		}
		return false;
	}, g0, { timeout: Math.max(1, 2000 - (Date.now() - t0)),
	    polling: 50 });
	const ms = Date.now() - t0;
	const rows = await d.pageRows(page);
	assert.equal(rows.alpha.gen, g0 + 1, 'one new generation');
	const hist = d.historyRows(await page.$eval('#history',
	    (e) => e.innerHTML));
	const ev = hist.find((e) => e.source === 'alpha' && e.gen === g0 + 1);
	assert.ok(ev, 'the refresh is in the history');
	assert.equal(ev.outcome, 'success');
	/* The toast says what the API said. */
	await page.waitForSelector('.toast:has-text("Token refresh initiated")',
	    { timeout: 2000 });
	await notReloaded(page, w, S.main.navs);
	S.refreshMs = ms;
	console.log(`# refresh now -> generation and history on the page ` +
	    `${ms} ms after the click`);
});

test('an upstream that starts failing turns the token failing and raises ' +
    'an alert, live', async () => {
	const { page, w } = S.main;
	const rows = await d.pageRows(page);
	assert.ok(['valid', 'refreshing'].includes(rows.flaky.state),
	    `flaky starts healthy (${rows.flaky.state})`);
	assert.equal(await page.$$eval('#alerts li.alert', (l) =>
	    l.filter((e) => e.textContent.includes('flaky')).length), 0,
	    'no alert about flaky yet');

	await S.fault.mode({ mode: '5xx' });
	const t0 = Date.now();
	await page.waitForFunction(() => {
		const b = document.querySelector(
		    'tr[data-token="flaky"] .badge');
		const al = [...document.querySelectorAll('#alerts li.alert')]
		    .some((e) => e.textContent.includes('flaky'));
		return b && b.classList.contains('failing') &&
		    b.textContent === 'failing' && al;
	}, null, { timeout: 20000, polling: 100 });
	const ms = Date.now() - t0;
	const after = await d.pageRows(page);
	assert.match(after.flaky.html, /upstream answered HTTP 503/,
	    'the last error is shown');
	assert.match(await page.textContent('#upstream'),
	    new RegExp(`127\\.0\\.0\\.1:${S.fault.port}`),
	    'the failing host is listed');
	for (const n of ['alpha', 'beta', 'gamma'])
		assert.equal(after[n].state, 'valid', `${n} still valid`);
	await notReloaded(page, w, S.main.navs);
	console.log(`# flaky failing + alert on the page ${ms} ms after ` +
	    'the upstream broke');
});

test('screenshots at 1280x720 and 390x844', async () => {
	const { context, page } = S.main;
	await page.screenshot({ path: d.artifact('dashboard-1280x720.png') });
	assert.ok(await page.evaluate(() =>
	    document.documentElement.scrollWidth <= window.innerWidth),
	    'no horizontal scrolling at 1280');

	const state = await context.storageState();
	for (const [name, opts] of [
		['dashboard-390x844.png', { viewport: { width: 390,
		    height: 844 }, isMobile: true, hasTouch: true,
		    deviceScaleFactor: 2 }],
		['dashboard-390x844-dark.png', { viewport: { width: 390,
		    height: 844 }, isMobile: true, hasTouch: true,
		    deviceScaleFactor: 2, colorScheme: 'dark' }],
	]) {
		const c = await S.browser.newContext(Object.assign(
		    { storageState: state }, opts));
		const { page: p, w } = await livePage(c);
		await p.waitForTimeout(300);
		await p.screenshot({ path: d.artifact(name) });
		const geo = await p.evaluate(() => ({
			scroll: document.documentElement.scrollWidth,
			inner: window.innerWidth,
			bg: getComputedStyle(document.body).backgroundColor,
		}));
		assert.ok(geo.scroll <= geo.inner, `${name}: page is ` +
		    `${geo.scroll} px wide in ${geo.inner} px`);
		if (opts.colorScheme === 'dark')
			assert.equal(geo.bg, 'rgb(17, 18, 20)', 'dark scheme');
		else
			assert.equal(geo.bg, 'rgb(247, 247, 245)',
			    'light scheme');
		assert.deepEqual(w.errors, [], `${name}: console errors`);
		assert.deepEqual(w.foreign, [], `${name}: foreign requests`);
		await c.close();
	}
	assert.deepEqual(S.main.w.errors, [], 'no console errors ' +
	    JSON.stringify(S.main.w.failed));
});

test('without JavaScript the page shows every token and its state',
    async () => {
	const context = await S.browser.newContext({ javaScriptEnabled: false,
	    viewport: { width: 1280, height: 720 } });
	const page = await context.newPage();
	const w = d.watchPage(page, rec, S.k.url);
	await d.browserLogin(page, S.k, S.env.adminKey);
	sessions.push((await context.cookies()).find((c) =>
	    c.name === 'kiln_session').value);

	const rows = await d.pageRows(page);
	assert.deepEqual(Object.keys(rows).sort(), [...NAMES].sort());
	for (const n of NAMES) {
		assert.ok(STATES.includes(rows[n].state), `${n}: ${rows[n].state}`);
		assert.equal(rows[n].label, rows[n].state);
		/* the text a person sees */
		assert.equal((await page.textContent(
		    `tr[data-token="${n}"] .badge`)).trim(), rows[n].state);
	}
	for (const n of ['alpha', 'beta', 'gamma'])
		assert.equal(rows[n].state, 'valid');
	assert.ok(['failing', 'expired', 'refreshing'].includes(
	    rows.flaky.state), `flaky: ${rows.flaky.state}`);
	assert.match(await page.textContent('#alerts'), /flaky/);
	assert.match(await page.textContent('#live'), /static page/);
	assert.ok(await page.$('#history tbody tr'), 'history rendered');
	assert.ok(await page.$('#traffic svg polyline'), 'sparkline rendered');
	await page.screenshot({ path: d.artifact('dashboard-nojs-1280x720.png') });

	/* The forms work as plain posts: back to the page, refreshed. */
	const g0 = rows.beta.gen;
	await Promise.all([
		page.waitForURL(`${S.k.url}/dashboard`),
		page.click('tr[data-token="beta"] button:has-text("Refresh now")'),
	]);
	await h.waitFor(async () => {
		const r = await d.pageRows(page);
		if (r.beta.gen > g0)
			return true;
		await page.reload();
		return false;
	}, { timeout: 5000, interval: 300, what: 'beta generation + 1' });
	assert.equal(w.sockets.length, 0, 'no WebSocket without JavaScript');
	await context.close();
});

test('a viewer sees no actions and cannot act', async () => {
	const jwt = await a.jwt('viewer');
	credentials.push(jwt);
	const s = await d.httpLogin(S.k, jwt, { rec });
	sessions.push(s.token);
	assert.match(s.html, /signed in as viewer/);
	assert.doesNotMatch(s.html, /Refresh now|<th>Actions<\/th>/);
	const c = await d.wsClient(S.k, { cookie: s.cookie, rec });
	await c.waitFor((x) => x.last.tokens, 3000, 'tokens patch');
	assert.doesNotMatch(c.last.tokens, /Refresh now|csrf/);
	const r = await S.k.post('/api/tokens/alpha/refresh', '', { headers: {
		Cookie: s.cookie, 'X-CSRF-Token': s.csrf } });
	assert.equal(r.status, 403, `viewer refresh: ${r.status} ${r.text}`);
	rec.add(r.text, 'viewer refresh');
	c.close();
});

test('actions need the session\'s CSRF token', async () => {
	const s = await d.httpLogin(S.k, S.env.adminKey, { rec });
	sessions.push(s.token);
	for (const [what, headers, body] of [
		['none', {}, ''],
		['wrong header', { 'X-CSRF-Token': crypto.randomBytes(16)
		    .toString('hex') }, ''],
		['wrong field', { 'Content-Type':
		    'application/x-www-form-urlencoded' },
		    `csrf=${crypto.randomBytes(16).toString('hex')}`],
	]) {
		const r = await S.k.post('/api/tokens/alpha/refresh', body,
		    { headers: Object.assign({ Cookie: s.cookie }, headers) });
		assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
	}
	const ok = await S.k.post('/api/tokens/alpha/refresh', '', { headers: {
		Cookie: s.cookie, 'X-CSRF-Token': s.csrf } });
	assert.equal(ok.status, 202, `${ok.status} ${ok.text}`);
	/* A plain form post goes back to the page. */
	const form = await S.k.post('/api/tokens/alpha/refresh',
	    `csrf=${s.csrf}`, { headers: { Cookie: s.cookie,
	    'Content-Type': 'application/x-www-form-urlencoded' } });
	assert.equal(form.status, 303);
	assert.equal(form.headers.location, '/dashboard');
});

/*
 * A session the worker has not heard of yet (created by another worker or
 * instance whose NOTIFY has not arrived) is looked up in PostgreSQL
 * (dash_session's fallback). Made deterministic by inserting the row
 * without NOTIFY.
 */
test('a session not yet NOTIFYed is found in PostgreSQL (page and socket)',
    async () => {
	const db = S.env.db;
	const id = crypto.randomBytes(32).toString('hex');
	const csrf = crypto.randomBytes(16).toString('hex');
	sessions.push(id);
	await db.pg.query('INSERT INTO dashboard_sessions (id_hash, role, ' +
	    `principal, csrf, expires_at) VALUES ('${d.sha256(id)}', 'admin', ` +
	    `'key:1', '${csrf}', now() + interval '1 hour')`, { db: db.name });
	const cookie = `kiln_session=${id}`;
	const page = await S.k.get('/dashboard', { headers: { Cookie: cookie } });
	rec.add(page.text, 'GET /dashboard (unnotified session)');
	const ws = await d.wsClient(S.k, { cookie: `kiln_session=${id}`, rec });
	if (!ws.refused)
		ws.close();
	assert.equal(page.status, 200, 'GET /dashboard with a session only ' +
	    `in PostgreSQL: ${page.status} ${page.headers.location || ''}`);
	assert.ok(!ws.refused, `WebSocket with a session only in PostgreSQL: ` +
	    `${ws.status} ${ws.body}`);
});

test('WebSockets from another Origin, without a session, with a forged ' +
    'cookie or an expired session are refused', async () => {
	const k = S.k;
	const s1 = await d.httpLogin(k, S.env.adminKey, { rec });
	const s2 = await d.httpLogin(k, S.env.adminKey, { rec });
	sessions.push(s1.token, s2.token);

	const good = await d.wsClient(k, { cookie: s1.cookie, rec });
	assert.ok(!good.refused, 'own Origin with a session is accepted');
	await good.waitFor((c) => Object.keys(c.rows()).length === 4, 3000,
	    'a tokens patch with every token');

	const refused = async (what, o, status) => {
		const r = await d.wsClient(k, Object.assign({ rec }, o));
		assert.ok(r.refused, `${what}: refused (it opened)`);
		if (r.refused && status !== undefined)
			assert.equal(r.status, status, `${what}: status ` +
			    `${r.status} ${r.body}`);
		return r;
	};
	await refused('other Origin', { cookie: s1.cookie,
	    origin: 'http://evil.example' }, 403);
	await refused('same host, other port', { cookie: s1.cookie,
	    origin: `http://127.0.0.1:${k.port + 1}` }, 403);
	await refused('Origin with a suffix', { cookie: s1.cookie,
	    origin: `http://127.0.0.1:${k.port}.evil.example` }, 403);
	await refused('Origin null', { cookie: s1.cookie, origin: 'null' },
	    403);
	await refused('no Origin', { cookie: s1.cookie, origin: null }, 403);
	await refused('no session', {}, 401);
	await refused('forged cookie', { cookie: 'kiln_session=' +
	    crypto.randomBytes(32).toString('hex') }, 401);
	await refused('the stored hash as cookie', { cookie: 'kiln_session=' +
	    d.sha256(s1.token) }, 401);
	const flipped = s1.token.slice(0, -1) +
	    (s1.token.endsWith('0') ? '1' : '0');
	await refused('altered cookie', { cookie: `kiln_session=${flipped}` },
	    401);
	await refused('login cookie only', { cookie: 'kiln_login=' +
	    s1.csrf }, 401);

	/* The database keeps only a hash of the session id. */
	const db = S.env.db;
	const stored = await db.pg.queryJson('SELECT id_hash, csrf FROM ' +
	    'dashboard_sessions', { db: db.name });
	assert.ok(stored.some((r) => r.id_hash === d.sha256(s2.token)),
	    'stored as sha256');
	assert.ok(!JSON.stringify(stored).includes(s2.token),
	    'no plain session id stored');

	/* Expire s2 in the database and tell the workers. */
	const c2 = await d.wsClient(k, { cookie: s2.cookie, rec });
	assert.ok(!c2.refused);
	await db.pg.query('UPDATE dashboard_sessions SET expires_at = now() - ' +
	    `interval '1 second' WHERE id_hash = '${d.sha256(s2.token)}'; ` +
	    'NOTIFY kiln_sessions', { db: db.name });
	await c2.waitFor((c) => c.closed, 5000, 'the expired session\'s ' +
	    'socket closed');
	await refused('expired session', { cookie: s2.cookie }, 401);
	const page = await k.get('/dashboard', { headers: { Cookie: s2.cookie } });
	assert.equal(page.status, 303, 'expired session: page sends to login');
	assert.equal(page.headers.location, '/dashboard/login');
	/* The other session is untouched. */
	const n = good.frames;
	await good.waitFor((c) => c.frames > n + 5, 3000, 'more frames');
	assert.equal(good.closed, null, 'the live session keeps its socket');
	S.other = { s1, client: good };
});

test('logout closes the session\'s sockets', async () => {
	const { context, page } = S.main;
	const cookie = (await context.cookies()).find((c) =>
	    c.name === 'kiln_session').value;
	const { page: p2, w: w2 } = await livePage(context);
	const node = await d.wsClient(S.k, { cookie: `kiln_session=${cookie}`,
	    rec });
	assert.ok(!node.refused);
	await node.waitFor((c) => c.frames > 0, 3000, 'frames');
	assert.equal(w2.open().length, 1);

	const t0 = Date.now();
	await Promise.all([
		page.waitForURL(`${S.k.url}/dashboard/login`),
		page.click('button:has-text("Sign out")'),
	]);
	await node.waitFor((c) => c.closed, 3000, 'node socket closed');
	await h.waitFor(() => w2.sockets[0].closed !== null,
	    { timeout: 3000, what: 'the other page\'s socket closed' });
	const ms = Math.max(node.closed.at, w2.sockets[0].closed) - t0;
	await p2.waitForSelector('#live.stale', { timeout: 3000 });
	assert.match(await p2.textContent('#live'), /stale/);
	assert.equal((await context.cookies()).filter((c) =>
	    c.name === 'kiln_session' && c.value !== '').length, 0,
	    'the cookie is gone');

	/* The old session is dead everywhere. */
	const old = `kiln_session=${cookie}`;
	const r = await S.k.get('/dashboard', { headers: { Cookie: old } });
	assert.equal(r.status, 303);
	const ws = await d.wsClient(S.k, { cookie: old, rec });
	assert.ok(ws.refused && ws.status === 401, 'old cookie refused');
	const act = await S.k.post('/api/tokens/alpha/refresh', '', {
	    headers: { Cookie: old, 'X-CSRF-Token': await page.evaluate(
	    () => '0'.repeat(32)) } });
	assert.ok([401, 403].includes(act.status), `old session acts: ` +
	    `${act.status}`);
	/* The page keeps trying, and is refused. */
	await p2.waitForTimeout(2500);
	assert.equal(w2.open().length, 0, 'no socket reopened');
	assert.ok(w2.sockets.length >= 2, 'the page tried to reconnect');
	/* Another session is not affected. */
	assert.equal(S.other.client.closed, null, 'other session still open');
	console.log(`# logout -> sockets closed in ${ms} ms`);
	await p2.close();
});

test('SIGTERM: every socket hears shutdown_pending, the page shows it is ' +
    'stale and comes back by itself', async () => {
	const k = S.k;
	const context = await S.browser.newContext();
	await context.addCookies([{ name: 'kiln_session',
	    value: S.other.s1.token, url: k.url }]);
	const { page, w } = await livePage(context);
	const c = S.other.client;

	process.kill(k.pid, 'SIGTERM');
	await c.waitFor((x) => x.shutdown, 5000, 'shutdown_pending');
	assert.equal(c.shutdown.reconnect_after, 2);
	assert.equal(typeof c.shutdown.message, 'string');
	await page.waitForSelector('#live.stale', { timeout: 5000 });
	assert.match(await page.textContent('#live'), /shutting down|stale/);
	await c.waitFor((x) => x.closed, 40000, 'socket closed by the drain');
	await h.waitFor(() => k.exited, { timeout: 40000, what: 'kiln exit' });

	await k.start();
	await page.waitForSelector('#live.on', { timeout: 20000 });
	assert.equal(w.navigations, 1, 'reconnected without reload');
	assert.ok(w.sockets.length >= 2);
	await context.close();
});

test('no token value or secret in any page or frame of the run',
    async () => {
	const issued = await d.issuedTokens(S.env.idp, S.fault);
	assert.ok(issued.length >= NAMES.length + 3, `issued ${issued.length}`);
	const secrets = {
		issued_token: issued,
		/* a prefix of a token is a leak too */
		issued_token_prefix: issued.map((t) => t.slice(0, 20)),
		client_secret: [...Object.values(S.env.secrets), FLAKY_SECRET],
		admin_key: S.env.adminKey,
		jwt_secret: a.JWT_SECRET,
		master_key: S.k.masterKey,
		session_cookie: sessions,
		jwt_credential: credentials,
	};
	const leaks = rec.leaks(secrets);
	const frames = [...rec.texts.values()].filter((w) =>
	    w.includes('frame')).length;
	console.log(`# scanned ${rec.texts.size} distinct texts ` +
	    `(${frames} distinct frames) for ${issued.length} issued tokens`);
	if (d.bounces.length > 0)
		console.log(`# a fresh login was sent back to the login form ` +
		    `${d.bounces.length} time(s): ${JSON.stringify(d.bounces)}`);
	assert.ok(frames > 50, `frames recorded: ${frames}`);
	assert.deepEqual(leaks, [], 'leaks');
});
