'use strict';

/*
 * The device authorization grant (RFC 8628) against a real authorization
 * server, oidc-provider 8.8.1 with its own device, login and consent
 * pages (tests/upstream/oidc_device.js), driven by Chromium. kiln asks
 * for a device code, answers the user code, polls the token endpoint at
 * the interval (once per interval across two workers), a slow_down
 * makes it poll 5 s slower for good, the person's consent in the browser
 * makes kiln serve the person's token (the provider's introspection says
 * it is active and whose), an abort (access_denied) stores nothing, an
 * expired_token leaves a connected subject served as it was; nothing of
 * a device code or token in the logs, events, pages or pg_dump.
 */

const assert = require('node:assert/strict');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const dash = require('../../browser/lib/dash');
const a = require('../lib/admin');
const procs = require('../lib/procs');
const { request } = require('../lib/http');

const pg = h.filePg();

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';

/* tests/upstream/oidc_device.js on a free port. */
function startProvider(config)
{
	return new Promise((resolve, reject) => {
		const child = procs.spawnTracked(process.execPath,
		    [path.join(procs.REPO, 'tests', 'upstream',
		    'oidc_device.js'), '--port', '0', '--config',
		    JSON.stringify(config)], { cwd: procs.REPO,
		    stdio: ['ignore', 'pipe', 'pipe'] }, 'oidc_device.js');
		let out = '';
		const timer = setTimeout(() => reject(new Error(
		    'oidc_device.js: no ready line')), 30000);
		child.stderr.resume();
		child.on('exit', (c) => reject(new Error(
		    `oidc_device.js exited ${c}`)));
		child.stdout.on('data', (d) => {
			out += d;
			if (!out.includes('\n'))
				return;
			clearTimeout(timer);
			child.removeAllListeners('exit');
			const { port } = JSON.parse(out.split('\n')[0]);
			const url = `http://127.0.0.1:${port}`;
			const call = async (method, p, body) => {
				const r = await request(url + p, { method, body,
				    timeout: 10000 });
				assert.equal(r.status, 200, `${p}: ${r.text}`);
				return r.json;
			};
			procs.onCleanup(() => procs.stopProcess(child, 3000));
			resolve({ url, stats: () => call('GET', '/_stats'),
			    inject: (answers) => call('POST', '/_inject',
			    { answers }) });
		});
	});
}

/* The polls kiln made (device code grant, or answered by injection). */
async function polls(idp)
{
	return (await idp.stats()).token.filter((t) => t.injected ||
	    t.grant_type === DEVICE_GRANT);
}

async function launch()
{
	const { chromium } = require('playwright-core');
	const b = await chromium.launch({ executablePath: CHROMIUM,
	    headless: true, args: ['--no-sandbox', '--disable-gpu'],
	    timeout: 60000 });
	procs.onCleanup(() => b.close().catch(() => {}));
	return b;
}

/* The person at the provider's pages: confirm the code, sign in, consent. */
async function approve(browser, uri, login, pages)
{
	const page = await browser.newPage();
	page.on('response', async (r) => {
		try {
			pages.push(await r.text());
		} catch (e) { /* a redirect has no body */ }
	});
	await page.goto(uri);
	await page.click('button[autofocus]');		/* Continue */
	await page.waitForSelector('input[name=login]');
	await page.fill('input[name=login]', login);
	await page.fill('input[name=password]', 'any-password');
	await page.click('button[type=submit]');	/* Sign-in */
	await page.waitForSelector('button[autofocus]');
	await page.click('button[autofocus]');		/* consent */
	await page.waitForFunction(() => /Success/i.test(
	    document.body.innerText));
	await page.close();
}

async function abort(browser, uri, pages)
{
	const page = await browser.newPage();
	page.on('response', async (r) => {
		try {
			pages.push(await r.text());
		} catch (e) { /* a redirect has no body */ }
	});
	await page.goto(uri);
	await page.click('button[name=abort]');
	await page.waitForLoadState();
	await page.close();
}

function connect(k, subject, auth = a.ADMIN_KEY)
{
	return a.call(k, 'POST', '/api/tokens/tv/connections',
	    { auth, body: { subject } });
}

function connToken(k, subject, auth)
{
	return a.call(k, 'GET', `/api/tokens/tv/connections/${subject}` +
	    '/current-token', { auth });
}

/* Gaps in seconds between consecutive polls. */
function gaps(list)
{
	const g = [];
	for (let i = 1; i < list.length; i++)
		g.push((list[i].at - list[i - 1].at) / 1000);
	return g;
}

test('device_flow_consent_slow_down_denied', { timeout: 90000 },
    async () => {
	const secret = h.secret('tv-client');
	const idp = await startProvider({ interval: 1, clients: [{
		client_id: 'tv', client_secret: secret,
		token_endpoint_auth_method: 'client_secret_post' }] });
	const db = await h.freshDb(pg, 'device');
	const k = await h.startKiln({ name: 'device', databaseUrl: db.url,
	    workers: 2, sources: [], env: { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY } });
	const browserP = launch();
	/* A second instance, with a device_code source from its file. */
	const fileSrc = { name: 'tv-file', kind: 'device_code',
	    device_authorization_url: `${idp.url}/device/auth`,
	    token_url: `${idp.url}/token`, client_id: 'tv' };
	const k2 = await h.startKiln({ name: 'device-2', databaseUrl: db.url,
	    masterKey: k.masterKey, workers: 2, sources: [fileSrc],
	    env: { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY } });
	const answers = [];
	const call = async (...x) => {
		const r = await a.call(k, ...x);
		answers.push(r.text);
		return r;
	};

	/* The kind's fields, checked; both URLs on one origin. */
	const src = { name: 'tv', kind: 'device_code',
	    device_authorization_url: `${idp.url}/device/auth`,
	    token_url: `${idp.url}/token`, client_id: 'tv',
	    client_secret: secret, scope: 'openid offline_access' };
	let r = await call('POST', '/api/tokens', { auth: a.ADMIN_KEY,
	    body: Object.assign({}, src, { device_authorization_url:
	    undefined }) });
	a.assertError(r, 422, 'no device_authorization_url',
	    { field: 'device_authorization_url' });
	r = await call('POST', '/api/tokens', { auth: a.ADMIN_KEY,
	    body: Object.assign({}, src, { device_authorization_url:
	    'http://127.0.0.2:9/device/auth' }) });
	a.assertError(r, 422, 'another origin',
	    { field: 'device_authorization_url' });
	r = await call('POST', '/api/tokens', { auth: a.ADMIN_KEY,
	    body: Object.assign({}, src, { device_authorization_url:
	    'ftp://x/device' }) });
	a.assertError(r, 422, 'not an http(s) URL',
	    { field: 'device_authorization_url' });
	r = await call('POST', '/api/tokens', { auth: a.ADMIN_KEY,
	    body: src });
	assert.equal(r.status, 201, r.text);
	r = await call('GET', '/api/tokens/tv', { auth: a.ADMIN_KEY });
	assert.equal(r.json.data.access, 'key', 'device_code defaults to key');
	assert.equal(r.json.data.device_authorization_url,
	    src.device_authorization_url);
	r = await call('PATCH', '/api/tokens/tv', { auth: a.ADMIN_KEY,
	    body: { device_authorization_url: 'http://127.0.0.2:9/dev' } });
	a.assertError(r, 422, 'a patch to another origin',
	    { field: 'device_authorization_url' });
	r = await call('PATCH', '/api/tokens/tv', { auth: a.ADMIN_KEY,
	    body: { scope: 'openid offline_access' } });
	assert.equal(r.status, 200, `a patch keeps the URL: ${r.text}`);
	assert.equal(r.json.data.device_authorization_url,
	    src.device_authorization_url);
	r = await call('GET', '/api/tokens/tv-file', { auth: a.ADMIN_KEY });
	assert.equal(r.json.data.device_authorization_url,
	    fileSrc.device_authorization_url, 'from the sources file');
	assert.equal(r.json.data.access, 'key');
	/* Those who want every new token hear of a connected person too. */
	const hook = await call('POST', '/api/webhooks', { auth: a.ADMIN_KEY,
	    body: { url: 'http://127.0.0.1:9/kiln', events:
	    ['token.refreshed'] } });
	assert.equal(hook.status, 201, hook.text);
	const kr = await call('POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name: 'tv-key', role: 'client', sources: ['tv'] } });
	assert.equal(kr.status, 201, kr.text);
	const tvKey = kr.json.data.key;

	/* alice: the device code asked for, the user code answered. */
	const t0 = Date.now();
	r = await connect(k, 'alice', tvKey);
	answers.push(r.text);
	assert.equal(r.status, 201, r.text);
	const d = r.json.data;
	assert.equal(d.subject, 'alice');
	assert.equal(d.state, 'pending');
	assert.match(d.user_code, /^[A-Z]{4}-[A-Z]{4}$/);
	assert.equal(d.verification_uri, `${idp.url}/device`);
	assert.equal(d.verification_uri_complete,
	    `${idp.url}/device?user_code=${d.user_code}`);
	assert.equal(d.interval, 1);
	assert.ok(Date.parse(d.expires_at) > t0 + 590000, d.expires_at);
	assert.equal(d.device_code, undefined, 'no device code answered');
	r = await call('GET', '/api/tokens/tv/connections/alice',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.json.data.state, 'pending');
	/* Every worker knows the connection at once (NOTIFY): no token. */
	r = await h.waitFor(async () => {
		const x = await connToken(k, 'alice', tvKey);
		return x.status !== 404 ? x : false;
	}, { timeout: 3000, what: 'the pending connection served' });
	assert.equal(r.status, 503, 'no token before the consent');

	/* Polled once a second by one of the four workers (two instances). */
	await h.sleep(3500);
	let p = await polls(idp);
	assert.ok(p.length >= 2 && p.length <= 4, `polls: ${p.length}`);
	for (const x of p)
		assert.equal(x.error, 'authorization_pending');
	for (const g of gaps(p))
		assert.ok(g >= 0.9, `one poller: polls ${g} s apart`);

	/* The person consents in the browser: kiln serves their token. */
	const browser = await browserP;
	const pages = [];
	await approve(browser, d.verification_uri_complete, 'alice-at-idp',
	    pages);
	let tok = await h.waitFor(async () => {
		const x = await connToken(k, 'alice', tvKey);
		return x.status === 200 ? x : false;
	}, { timeout: 10000, what: 'alice\'s token' });
	answers.push(tok.text);
	assert.equal(tok.json.subject, 'alice');
	r = await call('GET', `/api/webhooks/${hook.json.data.id}/deliveries`,
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 200, r.text);
	assert.deepEqual(r.json.data.map((x) => [x.type, x.data.source,
	    x.data.subject, x.data.state, x.data.generation]),
	    [['token.refreshed', 'tv', 'alice', 'valid', 1]],
	    'one token.refreshed for alice\'s first token, with the commit');
	assert.equal(r.json.data[0].data.fingerprint, tok.json.fingerprint);
	const introspect = (t) => request(`${idp.url}/token/introspection`, {
		method: 'POST', headers: { 'Content-Type':
		    'application/x-www-form-urlencoded' },
		body: `token=${encodeURIComponent(t)}` +
		    `&client_id=tv&client_secret=${encodeURIComponent(secret)}`,
	});
	let ir = await introspect(tok.json.token);
	assert.equal(ir.json.active, true, ir.text);
	assert.equal(ir.json.sub, 'alice-at-idp');
	r = await call('GET', '/api/tokens/tv/connections/alice',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.json.data.state, 'active');
	assert.equal(r.json.data.generation, 1);
	assert.ok(r.json.data.events.some((e) => e.trigger === 'device' &&
	    e.outcome === 'success'), r.text);
	/* Every worker of both instances serves it. */
	for (let i = 0; i < 6; i++) {
		let x = await connToken(k, 'alice', tvKey);
		assert.equal(x.json.token, tok.json.token);
		x = await h.waitFor(async () => {
			const y = await connToken(k2, 'alice', tvKey);
			return y.status === 200 ? y : false;
		}, { timeout: 5000, what: 'alice on the second instance' });
		assert.equal(x.json.token, tok.json.token);
	}
	/* The consent's refresh token refreshes it: alice's again. */
	r = await a.call(k, 'POST', '/api/tokens/tv/connections/alice' +
	    '/current-token/rejected', { auth: tvKey,
	    body: { fingerprint: tok.json.fingerprint } });
	assert.equal(r.status, 200, r.text);
	assert.notEqual(r.json.token, tok.json.token, 'a new token');
	assert.equal(r.json.generation, 2);
	ir = await introspect(r.json.token);
	assert.equal(ir.json.active, true, ir.text);
	assert.equal(ir.json.sub, 'alice-at-idp');
	assert.ok((await idp.stats()).token.some((x) => x.grant_type ===
	    'refresh_token' && x.status === 200), 'by the refresh grant');
	tok = r;
	answers.push(r.text);

	const n = (await polls(idp)).length;
	await h.sleep(1500);
	assert.equal((await polls(idp)).length, n, 'no poll once connected');

	/*
	 * A new consent for alice: her token is served meanwhile. A
	 * slow_down makes every later poll 5 s slower; an expired_token
	 * ends the flow and leaves alice as she was.
	 */
	r = await connect(k, 'alice');
	assert.equal(r.status, 201, r.text);
	await h.waitFor(async () => (await polls(idp)).length >= n + 2,
	    { timeout: 5000, what: 'two polls of the new flow' });
	await idp.inject(['slow_down']);
	const before = (await polls(idp)).length;
	r = await connToken(k, 'alice', tvKey);
	assert.equal(r.json.token, tok.json.token, 'served while pending');
	await h.waitFor(async () => (await polls(idp)).length >= before + 3,
	    { timeout: 20000, interval: 200, what: 'polls after slow_down' });
	p = await polls(idp);
	const slow = p.findIndex((x) => x.error === 'slow_down');
	const g = gaps(p.slice(n, slow + 3));
	assert.ok(g.slice(0, slow - n).every((x) => x < 3), `before: ${g}`);
	assert.ok(g.slice(slow - n).every((x) => x >= 5.8 && x < 8),
	    `after slow_down 6 s apart, twice: ${g}`);
	await idp.inject(['expired_token']);
	await h.waitFor(async () => {
		const x = await call('GET', '/api/tokens/tv/connections/alice',
		    { auth: a.ADMIN_KEY });
		return x.json.data.events.some((e) => e.outcome ===
		    'failure' && /expired_token/.test(e.error)) ? x : false;
	}, { timeout: 10000, what: 'the expired flow\'s event' });
	r = await connToken(k, 'alice', tvKey);
	assert.equal(r.json.token, tok.json.token, 'alice as she was');
	r = await call('GET', '/api/tokens/tv/connections/alice',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.json.data.state, 'active');
	let rows = await db.pg.queryJson('SELECT subject FROM device_flows',
	    { db: db.name });
	assert.deepEqual(rows, [], 'the flow is gone');

	/* carol aborts at the device page: access_denied, nothing kept. */
	r = await connect(k, 'carol');
	assert.equal(r.status, 201, r.text);
	answers.push(r.text);
	await abort(browser, r.json.data.verification_uri_complete, pages);
	await h.waitFor(async () => (await call('GET',
	    '/api/tokens/tv/connections/carol', { auth: a.ADMIN_KEY }))
	    .status === 404, { timeout: 15000, what: 'carol removed' });
	r = await connToken(k, 'carol', tvKey);
	assert.equal(r.status, 404, 'carol is served by no worker');
	rows = await db.pg.queryJson('SELECT t.subject FROM tokens t ' +
	    'WHERE t.subject = \'carol\' UNION ALL SELECT subject ' +
	    'FROM device_flows', { db: db.name });
	assert.deepEqual(rows, [], 'nothing stored for carol');
	rows = await db.pg.queryJson('SELECT error FROM refresh_events ' +
	    'WHERE subject = \'carol\'', { db: db.name });
	assert.equal(rows.length, 1);
	assert.match(rows[0].error, /access_denied/);
	assert.ok((await polls(idp)).some((x) => x.error ===
	    'access_denied' && !x.injected), 'the provider said so');

	/* A pending connection deleted: its flow ends with it. */
	r = await connect(k, 'dave');
	assert.equal(r.status, 201, r.text);
	r = await call('DELETE', '/api/tokens/tv/connections/dave',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 200, r.text);
	rows = await db.pg.queryJson('SELECT subject FROM device_flows',
	    { db: db.name });
	assert.deepEqual(rows, [], 'no flow left for dave');

	/* Nothing of a device code or token anywhere; kiln's pages too. */
	const sess = await dash.httpLogin(k, a.ADMIN_KEY);
	pages.push(sess.html);
	for (const u of ['/dashboard/tokens/tv', '/dashboard/sources/tv',
	    '/dashboard/audit']) {
		const x = await k.get(u, { headers: { Cookie: sess.cookie } });
		assert.equal(x.status, 200, `${u}: ${x.status}`);
		pages.push(x.text);
	}
	assert.ok(pages.some((x) => x.includes('device_code')),
	    'the dashboard shows the source');
	const st = await idp.stats();
	const secrets = [...st.device_codes, tok.json.token, secret];
	assert.ok(st.device_codes.length >= 3);
	const dump = await db.pg.dump(db.name);
	const logs = k.logs() + k2.logs();
	const events = await db.pg.query('SELECT * FROM refresh_events',
	    { db: db.name });
	assert.ok(dump.includes('device_flows'), 'the dump has the table');
	for (const s of secrets) {
		assert.ok(!dump.includes(s), 'no secret in pg_dump');
		assert.ok(!logs.includes(s), 'no secret in the logs');
		assert.ok(!events.includes(s), 'no secret in the events');
		assert.ok(!answers.some((x) => x.includes(s) &&
		    s !== tok.json.token), 'no secret in kiln\'s answers');
		assert.ok(!pages.some((x) => x.includes(s)),
		    'no secret in the pages');
	}
});
