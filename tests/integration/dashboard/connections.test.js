'use strict';

/*
 * Issue 12, dashboard: a source's connections, in Debian's chromium
 * (JavaScript on: the table is live over the dashboard's WebSocket) and
 * over plain HTTP (no JavaScript: the same forms post and the server
 * answers with pages).
 *
 * connections_managed_in_the_browser: the token table's row opens the
 *   page; two subjects imported through the Connect form are listed;
 *   the state filter and the pager (?limit=) show their rows; a refresh
 *   changes a row's generation without a reload; a grant revoked at the
 *   upstream shows needs_reauth on the page (and its alert) and fires
 *   exactly one connection.needs_reauth webhook, signed, naming source
 *   and subject, with no token; the dashboard's alert links to those
 *   rows; Reconnect (a new import on the row)
 *   brings it back; Disconnect (confirmed) removes it and its token is
 *   no longer served; no token nor refresh token in any page or frame.
 *   Screenshots (KILN_SCREENSHOTS=1 writes docs/screenshots).
 * connection_forms_work_without_javascript_and_not_for_viewers: the
 *   forms posted as HTML forms import and disconnect (a confirmation
 *   page first), each audited once as the session's; without the CSRF
 *   token 403; a viewer's session sees the rows but gets no form, and
 *   its posts are refused (403); nothing refused is done.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const d = require('../../browser/lib/dash');

const pg = h.filePg();
/* The committed screenshots are written with KILN_SCREENSHOTS=1 only. */
const SHOTS = process.env.KILN_SCREENSHOTS === '1' ?
    path.join(h.procs.REPO, 'docs', 'screenshots') : d.ARTIFACTS;

async function shoot(page, name)
{
	fs.mkdirSync(SHOTS, { recursive: true });
	for (const [w, hgt] of [[1280, 720], [390, 844]]) {
		await page.setViewportSize({ width: w, height: hgt });
		await page.screenshot({ path: path.join(SHOTS,
		    `${name}-${w}x${hgt}.png`) });
	}
	await page.setViewportSize({ width: 1280, height: 720 });
}

const LIFETIME = 6;
const S = {
	rt: h.secret('rt-client'),
	seed: h.secret('seed-default'),
	alice: h.secret('seed-alice'),
	bob: h.secret('seed-bob'),
	bob2: h.secret('seed-bob2'),
	carol: h.secret('seed-carol'),
	dave: h.secret('seed-dave'),
	cc: h.secret('cc-client'),
};

/* A webhook receiver on loopback that verifies Kiln-Signature. */
function receiver()
{
	return new Promise((resolve, reject) => {
		const rx = { hits: [], secret: null };
		const srv = http.createServer((req, res) => {
			const chunks = [];
			req.on('data', (c) => chunks.push(c));
			req.on('end', () => {
				const body = Buffer.concat(chunks).toString('utf8');
				let json = null;
				try {
					json = JSON.parse(body);
				} catch (e) {
					/* recorded as is */
				}
				rx.hits.push({ headers: req.headers, body, json,
				    verified: verify(rx.secret,
				    req.headers['kiln-signature'], body) });
				res.writeHead(200, { 'Content-Type': 'text/plain' });
				res.end('ok');
			});
		});
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			rx.url = `http://127.0.0.1:${srv.address().port}/hook`;
			resolve(rx);
		});
		h.procs.onCleanup(() => new Promise((r) => {
			srv.closeAllConnections();
			srv.close(() => r());
		}));
	});
}

/* t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")> */
function verify(secret, header, body)
{
	if (secret === null || typeof header !== 'string')
		return false;
	const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
	if (!m || Math.abs(Date.now() / 1000 - Number(m[1])) > 300)
		return false;
	const want = crypto.createHmac('sha256', secret)
	    .update(`${m[1]}.${body}`).digest();
	return crypto.timingSafeEqual(want, Buffer.from(m[2], 'hex'));
}

let envP = null;
/* One upstream (no rotation: a revoked seed stays revoked), one kiln. */
function env()
{
	if (envP === null) {
		envP = (async () => {
			const idp = await h.startOAuth(['--lifetime',
			    String(LIFETIME), '--rotate', 'false',
			    '--client', `rt-client:${S.rt}:refresh_token`,
			    '--client', `cc1:${S.cc}:client_credentials`,
			    ...['seed', 'alice', 'bob', 'carol', 'dave']
			    .flatMap((n) => ['--seed-refresh',
			    `rt-client:${S[n]}`])]);
			const db = await h.freshDb(pg, 'dash_conns');
			const k = await h.startKiln({ name: 'dash_conns',
			    databaseUrl: db.url, workers: 2, sources: [{
				name: 'fhir', kind: 'refresh_token',
				token_url: idp.tokenUrl, client_id: 'rt-client',
				client_secret: S.rt, refresh_token: S.seed,
				refresh_buffer: 3, access: 'key',
			    }, {
				name: 'plain', kind: 'client_credentials',
				token_url: idp.tokenUrl, client_id: 'cc1',
				client_secret: S.cc,
			    }], env: { KILN_JWT_SECRET: a.JWT_SECRET,
			    KILN_ADMIN_KEY: a.ADMIN_KEY } });
			const r = await a.call(k, 'POST', '/api/keys',
			    { auth: a.ADMIN_KEY, body: { name: 'fhir-client',
			    role: 'client', sources: ['fhir'] } });
			assert.equal(r.status, 201, r.text);
			return { idp, db, k, clientKey: r.json.data.key };
		})();
	}
	return envP;
}

function form(fields)
{
	return Object.entries(fields).map(([k, v]) =>
	    `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

function postForm(k, p, cookie, fields)
{
	return k.post(p, form(fields), { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: cookie,
	} });
}

function connToken(k, key, subject)
{
	return a.call(k, 'GET', `/api/tokens/fhir/connections/${subject}/` +
	    'current-token', { auth: key });
}

/* The rows of the page: {subject: {state, gen}}. */
async function rows(page)
{
	return page.$$eval('#connections tr[data-subject]', (trs) => {
		const o = {};
		for (const tr of trs) {
			o[tr.getAttribute('data-subject')] = {
				state: tr.querySelector('.badge').textContent,
				gen: tr.querySelector('.gen').textContent,
			};
		}
		return o;
	});
}

async function waitRows(page, pred, what, timeout = 15000)
{
	return h.waitFor(async () => {
		const r = await rows(page);
		return pred(r) ? r : false;
	}, { timeout, interval: 100, what });
}

test('connections_managed_in_the_browser', { timeout: 120000 }, async () => {
	const { idp, k, clientKey } = await env();
	const rx = await receiver();
	const hr = await a.call(k, 'POST', '/api/webhooks', { auth: a.ADMIN_KEY,
	    body: { url: rx.url, events: ['connection.needs_reauth'] } });
	assert.equal(hr.status, 201, hr.text);
	rx.secret = hr.json.data.secret;

	const b = await d.launch();
	const ctx = await b.newContext({ viewport: { width: 1280,
	    height: 720 } });
	const page = await ctx.newPage();
	const rec = new d.Recorder();
	const w = d.watchPage(page, rec, k.url);
	const dialogs = [];
	page.on('dialog', (dl) => {
		dialogs.push(dl.message());
		dl.accept();
	});
	await d.browserLogin(page, k, a.ADMIN_KEY);

	/* The token table's row opens the source's connections. */
	await page.waitForSelector('#tokens tr[data-token="fhir"] a.conns');
	await page.click('#tokens tr[data-token="fhir"] a.conns');
	await page.waitForURL(`${k.url}/dashboard/tokens/fhir/connections`);
	assert.ok(await page.$('form.connect input[type=password]' +
	    '[name=refresh_token]'), 'a write-only refresh_token field');

	/* Import two subjects through the Connect form. */
	for (const [subject, token] of [['alice', S.alice], ['bob', S.bob]]) {
		await page.fill('form.connect input[name=subject]', subject);
		await page.fill('form.connect input[name=refresh_token]', token);
		await Promise.all([
			page.waitForURL(/connected=/),
			page.click('form.connect button'),
		]);
		assert.match(await page.textContent('p.notice'),
		    new RegExp(`Connected ${subject}`));
	}
	let r = await waitRows(page, (x) => x.alice?.state === 'active' &&
	    x.bob?.state === 'active', 'alice and bob active');
	assert.deepEqual(Object.keys(r).sort(), ['alice', 'bob', 'default']);
	const ta = await h.waitFor(async () => {
		const x = await connToken(k, clientKey, 'alice');
		return x.status === 200 ? x : false;
	}, { timeout: 10000, what: 'alice served' });

	/* Live: alice's generation moves without a reload. */
	const navs = w.navigations;
	const gen0 = Number(r.alice.gen);
	r = await waitRows(page, (x) => Number(x.alice?.gen) > gen0,
	    `alice past generation ${gen0}, live`, 3 * LIFETIME * 1000);
	assert.equal(w.navigations, navs, 'no reload');
	assert.ok(w.open().some((s) => /\/dashboard\/ws\?conn=fhir/
	    .test(s.url)), 'the page\'s socket names its source');

	/* Paged by cursor: ?limit=2, then the next page. */
	await page.goto(`${k.url}/dashboard/tokens/fhir/connections?limit=2`);
	r = await rows(page);
	assert.deepEqual(Object.keys(r), ['alice', 'bob']);
	await Promise.all([page.waitForURL(/cursor=bob/),
	    page.click('nav.pager a[rel=next]')]);
	r = await rows(page);
	assert.deepEqual(Object.keys(r), ['default']);
	assert.equal(await page.$('nav.pager a[rel=next]'), null);

	/* Revoke bob's grant: needs_reauth, live, and one webhook. */
	await page.goto(`${k.url}/dashboard/tokens/fhir/connections`);
	await page.waitForFunction(() => /live/.test(
	    document.getElementById('live').textContent));
	const navs2 = w.navigations;
	await idp.control({ revoke_refresh: [S.bob] });
	r = await waitRows(page, (x) => x.bob?.state === 'needs_reauth',
	    'bob in needs_reauth on the page', 3 * LIFETIME * 1000);
	assert.equal(w.navigations, navs2, 'shown without a reload');
	assert.equal(r.alice.state, 'active');
	assert.match(await page.textContent('#reauth'),
	    /1 connection of this source needs a new consent/);
	assert.match(await page.textContent(
	    '#connections tr[data-subject="bob"] .error'), /invalid_grant/);
	await shoot(page, 'connections');
	await h.waitFor(() => rx.hits.length >= 1, { timeout: 10000,
	    what: 'the connection.needs_reauth webhook' });
	await h.sleep(1500);
	assert.equal(rx.hits.length, 1, 'exactly one webhook');
	const hit = rx.hits[0];
	assert.ok(hit.verified, 'its signature verifies');
	assert.equal(hit.json.type, 'connection.needs_reauth');
	assert.equal(hit.json.data.source, 'fhir');
	assert.equal(hit.json.data.subject, 'bob');
	assert.equal(hit.json.data.state, 'needs_reauth');

	/* The dashboard's alert leads to the rows that need a consent. */
	await page.goto(`${k.url}/dashboard`);
	const alert = '#alerts a[href="/dashboard/tokens/fhir/connections?' +
	    'state=needs_reauth"]';
	await page.waitForSelector(alert, { timeout: 10000 });
	/* The alerts are patched every second: follow the link's href. */
	await page.goto(k.url + await page.getAttribute(alert, 'href'));
	assert.deepEqual(Object.keys(await rows(page)), ['bob']);

	/* Filter by state with the page's form. */
	await page.selectOption('form.conn-filter select[name=state]',
	    'active');
	await Promise.all([page.waitForURL(/state=active/),
	    page.click('form.conn-filter button')]);
	assert.deepEqual(Object.keys(await rows(page)).sort(),
	    ['alice', 'default']);

	/* Reconnect: a new refresh token imported on bob's row. */
	await page.goto(`${k.url}/dashboard/tokens/fhir/connections`);
	assert.equal(await page.$('#connections tr[data-subject="alice"] ' +
	    'form.reconnect'), null, 'Reconnect only where needed');
	await idp.control({ seed_refresh: [{ client_id: 'rt-client',
	    refresh_token: S.bob2 }] });
	await page.fill('#connections tr[data-subject="bob"] form.reconnect ' +
	    'input[name=refresh_token]', S.bob2);
	await Promise.all([page.waitForURL(/connected=bob/),
	    page.click('#connections tr[data-subject="bob"] form.reconnect ' +
	    'button')]);
	await waitRows(page, (x) => x.bob?.state === 'active',
	    'bob active again', 3 * LIFETIME * 1000);
	const tb = await h.waitFor(async () => {
		const x = await connToken(k, clientKey, 'bob');
		return x.status === 200 && x.json.valid ? x : false;
	}, { timeout: 10000, what: 'bob served again' });
	await h.waitFor(async () => !(await page.$('#reauth')),
	    { timeout: 5000, what: 'the alert gone' });

	/* Disconnect alice, confirmed: gone, and no longer served. */
	await Promise.all([page.waitForURL(/disconnected=alice/),
	    page.click('#connections tr[data-subject="alice"] ' +
	    'form.disconnect button')]);
	assert.equal(dialogs.length, 1, 'a confirmation');
	assert.match(dialogs[0], /Disconnect alice/);
	assert.deepEqual(Object.keys(await rows(page)).sort(),
	    ['bob', 'default']);
	await h.waitFor(async () => (await connToken(k, clientKey, 'alice'))
	    .status === 404, { timeout: 5000, what: 'alice no longer served' });
	/* Both workers: every one answers 404 now. */
	for (let i = 0; i < 6; i++) {
		const x = await connToken(k, clientKey, 'alice');
		assert.equal(x.status, 404, `alice gone: ${x.text}`);
	}

	/* No token nor refresh token in any page, frame or webhook. */
	rec.add(await page.content(), 'the final page');
	for (const x of rx.hits)
		rec.add(x.body, 'webhook');
	const secrets = { seeds: [S.seed, S.alice, S.bob, S.bob2],
	    served: [ta.json.token, tb.json.token],
	    issued: await d.issuedTokens(idp) };
	assert.deepEqual(rec.leaks(secrets), [], 'no token in the HTML');
	assert.ok(rec.texts.size > 5, 'pages and frames were recorded');
	assert.deepEqual(w.errors, [], 'no console errors');
	await ctx.close();
});

test('connection_forms_work_without_javascript_and_not_for_viewers',
    { timeout: 60000 }, async () => {
	const { k, db, clientKey } = await env();
	const base = '/dashboard/tokens/fhir/connections';
	const admin = await d.httpLogin(k, a.ADMIN_KEY);
	const audit = (target) => db.pg.queryJson('SELECT principal_kind, ' +
	    'action, outcome FROM audit_events WHERE target = ' +
	    `'${target}' ORDER BY id`, { db: db.name });

	/* Import carol by a plain form post. */
	let r = await postForm(k, base, admin.cookie, { csrf: admin.csrf,
	    subject: 'carol', refresh_token: S.carol });
	assert.equal(r.status, 303, r.text);
	assert.equal(r.headers.location, `${base}?connected=carol`);
	r = await k.get(`${base}?connected=carol`, { headers:
	    { Cookie: admin.cookie } });
	assert.equal(r.status, 200);
	assert.match(r.text, /Connected carol/);
	assert.match(r.text, /<tr data-subject="carol">/);
	assert.ok(!r.text.includes(S.carol), 'the refresh token not shown');
	await h.waitFor(async () => (await connToken(k, clientKey, 'carol'))
	    .status === 200, { timeout: 10000, what: 'carol served' });

	/* Refusals are pages: a bad subject, a kind with no connections. */
	r = await postForm(k, base, admin.cookie, { csrf: admin.csrf,
	    subject: 'bad subject', refresh_token: S.dave });
	assert.equal(r.status, 400);
	assert.match(r.text, /id="error">subject: expected/);
	r = await postForm(k, '/dashboard/tokens/plain/connections',
	    admin.cookie, { csrf: admin.csrf, subject: 'dave',
	    refresh_token: S.dave });
	assert.equal(r.status, 409);
	/* The API's own check: a refresh token is required. */
	r = await postForm(k, base, admin.cookie, { csrf: admin.csrf,
	    subject: 'dave' });
	assert.equal(r.status, 400);
	assert.match(r.text, /refresh_token: expected a non-empty string/);

	/* Without the CSRF token: refused, nothing imported. */
	r = await postForm(k, base, admin.cookie, { subject: 'dave',
	    refresh_token: S.dave });
	assert.equal(r.status, 403);
	r = await a.call(k, 'GET', '/api/tokens/fhir/connections/dave',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 404, 'dave not imported');

	/* Disconnect: a confirmation page first, then gone. */
	r = await postForm(k, `${base}/delete`, admin.cookie,
	    { csrf: admin.csrf, subject: 'carol' });
	assert.equal(r.status, 200);
	assert.match(r.text, /name="confirm" value="yes"/);
	assert.equal((await connToken(k, clientKey, 'carol')).status, 200,
	    'not yet disconnected');
	r = await postForm(k, `${base}/delete`, admin.cookie,
	    { csrf: admin.csrf, subject: 'carol', confirm: 'yes' });
	assert.equal(r.status, 303, r.text);
	assert.equal(r.headers.location, `${base}?disconnected=carol`);
	await h.waitFor(async () => (await connToken(k, clientKey, 'carol'))
	    .status === 404, { timeout: 5000, what: 'carol not served' });
	r = await postForm(k, `${base}/delete`, admin.cookie,
	    { csrf: admin.csrf, subject: 'default', confirm: 'yes' });
	assert.equal(r.status, 400, 'the default connection stays');

	/* Audited as the API's actions are, by the session; once each. */
	assert.deepEqual(await audit('fhir/carol'), [
	    { principal_kind: 'session', action: 'connection.import',
	    outcome: 'ok' },
	    { principal_kind: 'session', action: 'connection.delete',
	    outcome: 'ok' }]);

	/* A viewer sees the rows, gets no form, and may not act. */
	const vk = await a.call(k, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name: 'watcher', role: 'viewer' } });
	assert.equal(vk.status, 201, vk.text);
	const viewer = await d.httpLogin(k, vk.json.data.key);
	r = await k.get(base, { headers: { Cookie: viewer.cookie } });
	assert.equal(r.status, 200);
	assert.match(r.text, /<tr data-subject="default">/);
	assert.ok(!/<form method="post"/.test(r.text), 'no forms');
	assert.ok(!r.text.includes(viewer.csrf), 'no CSRF token to act with');
	r = await postForm(k, base, viewer.cookie, { csrf: viewer.csrf,
	    subject: 'dave', refresh_token: S.dave });
	a.assertError(r, 403, 'a viewer connects');
	r = await postForm(k, `${base}/delete`, viewer.cookie,
	    { csrf: viewer.csrf, subject: 'bob', confirm: 'yes' });
	a.assertError(r, 403, 'a viewer disconnects');
	r = await a.call(k, 'GET', '/api/tokens/fhir/connections/dave',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 404, 'dave not imported');
	assert.deepEqual(await audit('fhir/dave'), [], 'nothing refused ' +
	    'was done');
	assert.deepEqual(await audit('fhir/bob').then((x) => x.filter((y) =>
	    y.action === 'connection.delete')), [], 'bob not deleted');
});
