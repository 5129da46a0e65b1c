'use strict';

/*
 * Connections by authorization code with PKCE (issue 12), against
 * oidc-provider 8.8.1 with its own login and consent pages
 * (tests/upstream/oidc_code.js), driven by Chromium. Two kiln instances
 * share one PostgreSQL; both name instance B as KILN_PUBLIC_URL (as a
 * load balancer would), so a flow started on A completes on B.
 *
 * code_flow_connects_a_person_in_chromium: a consent started on A lands
 *   on B's callback (303 to the allowed return_to); both instances serve
 *   alice's token, which the provider says is active and alice's.
 * two_subjects_and_scoped_keys: bob (started by a client key of fhir,
 *   no return_to: a page) gets another token; a key of another source
 *   gets 403.
 * callback_refusals_store_nothing: a return_to outside the allow-list is
 *   a 422; a wrong state, a replayed callback, a refused consent and
 *   an expired flow store no token, say what happened and (refused,
 *   expired) record an event.
 * new_consent_replaces_and_revokes_old_grant: the old token is served
 *   until the new consent completes; then the old grant is revoked.
 * revoked_grant_needs_reauth_then_reconsent: one refresh call, then
 *   needs_reauth and no more calls; a new consent brings it back.
 * delete_revokes_upstream: DELETE revokes the grant, then no worker
 *   serves the connection.
 * no_secret_in_logs_events_pages_or_dump: no code, verifier, access or
 *   refresh token in either instance's log, the events, the pages or
 *   pg_dump.
 * public_url_required_and_fields_checked: without KILN_PUBLIC_URL no
 *   such source is created (422) and kiln does not start while one
 *   exists; each bad field is a 422 naming it.
 */

const assert = require('node:assert/strict');
const http = require('node:http');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const { startUpstream } = (() => {
	/* lib/upstream.js starts any script of tests/upstream. */
	const path = require('node:path');
	const procs = require('../lib/procs');
	const { request } = require('../lib/http');
	return { startUpstream: (args) => new Promise((resolve, reject) => {
		const child = procs.spawnTracked(process.execPath,
		    [path.join(procs.REPO, 'tests', 'upstream', 'oidc_code.js'),
		    '--port', '0', ...args], { cwd: procs.REPO,
		    stdio: ['ignore', 'pipe', 'pipe'] }, 'oidc_code.js');
		let out = '';
		let err = '';
		child.stderr.on('data', (d) => { err += d; });
		child.on('exit', (c) => reject(new Error(`oidc_code.js exited ` +
		    `${c}: ${err}`)));
		child.stdout.on('data', (d) => {
			out += d;
			if (!out.includes('\n'))
				return;
			const ready = JSON.parse(out.split('\n')[0]);
			child.removeAllListeners('exit');
			procs.onCleanup(() => procs.stopProcess(child, 3000));
			const url = `http://127.0.0.1:${ready.port}`;
			resolve({ url, async call(method, p, body) {
				const r = await request(url + p, { method, body,
				    timeout: 10000, headers: body &&
				    typeof body === 'string' ? { 'Content-Type':
				    'application/x-www-form-urlencoded' } : {} });
				return r;
			} });
		});
	}) };
})();

const pg = h.filePg();
const PASSWORD = 'correct horse battery';
const CLIENT_SECRET = h.secret('kiln-app');
const TTL = 40;

let S = null;

function cpath(src, subject, tail = '')
{
	return `/api/tokens/${src}/connections/${subject}${tail}`;
}

async function setup()
{
	if (S !== null)
		return S;
	const portA = await h.freePort();
	const portB = await h.freePort();
	const kilnB = `http://127.0.0.1:${portB}`;
	const appHits = [];
	const app = http.createServer((req, res) => {
		appHits.push(req.url);
		res.writeHead(200, { 'Content-Type': 'text/html' });
		res.end('<!doctype html><title>app</title><p id="app">app</p>');
	});
	await new Promise((r) => app.listen(0, '127.0.0.1', r));
	h.procs.onCleanup(() => app.close());
	const appUrl = `http://127.0.0.1:${app.address().port}`;

	const idp = await startUpstream(['--config', JSON.stringify({
		password: PASSWORD, ttl: TTL,
		clients: [{ client_id: 'kiln-app', client_secret: CLIENT_SECRET,
		    token_endpoint_auth_method: 'client_secret_post',
		    redirect_uris: [`${kilnB}/oauth/callback`] }],
	})]);
	const db = await h.freshDb(pg, 'connect_code');
	const fhir = {
		name: 'fhir', kind: 'authorization_code',
		authorize_url: `${idp.url}/auth`, token_url: `${idp.url}/token`,
		revocation_url: `${idp.url}/token/revocation`,
		client_id: 'kiln-app', client_secret: CLIENT_SECRET,
		scope: 'openid', refresh_buffer: 5,
		extra_authorize_params: { prompt: 'consent' },
	};
	const other = Object.assign({}, fhir, { name: 'other' });
	const env = { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY, KILN_PUBLIC_URL: kilnB,
	    KILN_RETURN_TO_ALLOW: appUrl };
	const kA = await h.startKiln({ name: 'code-a', databaseUrl: db.url,
	    sources: [fhir, other], workers: 2, env, port: portA });
	const kB = await h.startKiln({ name: 'code-b', databaseUrl: db.url,
	    sourcesFile: kA.sourcesFile, masterKey: kA.masterKey,
	    workers: 2, env, port: portB });
	const { chromium } = require('playwright-core');
	const browser = await chromium.launch({ executablePath:
	    process.env.KILN_CHROMIUM || '/usr/bin/chromium', headless: true,
	    args: ['--no-sandbox'] });
	h.procs.onCleanup(() => browser.close().catch(() => {}));
	S = { idp, db, kA, kB, kilnB, appUrl, appHits, browser, pages: [],
	    callbacks: [] };
	S.fhirKey = await key(kA, 'fhir-only', ['fhir']);
	S.otherKey = await key(kA, 'other-only', ['other']);
	return S;
}

async function key(k, name, sources)
{
	const r = await a.call(k, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name, role: 'client', sources } });
	assert.equal(r.status, 201, `key ${name}: ${r.text}`);
	return r.json.data.key;
}

function start(k, body, auth = a.ADMIN_KEY, src = 'fhir')
{
	return a.call(k, 'POST', `/api/tokens/${src}/connections`,
	    { auth, body });
}

/*
 * The person signs in at the provider's page as account and allows (or
 * denies); the browser follows the redirects to kiln's callback and on.
 */
async function consent(url, account, { deny = false } = {})
{
	const ctx = await S.browser.newContext();
	const page = await ctx.newPage();
	const seen = { callback: null, status: null };
	page.on('response', (r) => {
		if (r.url().includes('/oauth/callback')) {
			seen.callback = r.url();
			seen.status = r.status();
		}
	});
	await page.goto(url);
	await page.fill('#login', account);
	await page.fill('#password', PASSWORD);
	await page.click('#signin');
	await page.waitForSelector(deny ? '#deny' : '#allow');
	await page.click(deny ? '#deny' : '#allow');
	await page.waitForURL((u) => !u.href.startsWith(S.idp.url),
	    { timeout: 15000 });
	await page.waitForLoadState('load');
	const out = Object.assign(seen, { url: page.url(),
	    html: await page.content() });
	S.pages.push(out.html);
	if (seen.callback)
		S.callbacks.push(seen.callback);
	await ctx.close();
	return out;
}

async function token(k, subject, auth = S.fhirKey, query = '')
{
	return a.call(k, 'GET', cpath('fhir', subject,
	    `/current-token${query}`), { auth });
}

async function waitToken(k, subject, not = null)
{
	return h.waitFor(async () => {
		const r = await token(k, subject);
		return r.status === 200 && r.json.token !== not ? r :
		    false;
	}, { timeout: 10000, interval: 100,
	    what: `a token for fhir/${subject}` });
}

async function introspect(t)
{
	const r = await S.idp.call('POST', '/token/introspection',
	    `token=${encodeURIComponent(t)}&client_id=kiln-app` +
	    `&client_secret=${encodeURIComponent(CLIENT_SECRET)}`);
	assert.equal(r.status, 200, r.text);
	return r.json;
}

async function tokensRows()
{
	return S.db.pg.queryJson('SELECT t.subject, t.generation, t.state ' +
	    'FROM tokens t JOIN token_sources s ON s.id = t.source_id ' +
	    "WHERE s.name = 'fhir' ORDER BY t.subject", { db: S.db.name });
}

/* The subject's row in the source's list of connections, or null. */
async function listed(k, subject)
{
	const r = await a.call(k, 'GET', '/api/tokens/fhir/connections',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 200, r.text);
	return r.json.data.connections.find((c) => c.subject === subject) ||
	    null;
}

async function stats()
{
	return (await S.idp.call('GET', '/_stats')).json;
}

test('code_flow_connects_a_person_in_chromium', { timeout: 60000 },
    async () => {
	await setup();
	const { kA, kB } = S;
	/* The source as shown: its consent settings, key access. */
	const v = (await a.call(kA, 'GET', '/api/tokens/fhir',
	    { auth: a.ADMIN_KEY })).json.data;
	assert.equal(v.kind, 'authorization_code');
	assert.equal(v.authorize_url, `${S.idp.url}/auth`);
	assert.equal(v.revocation_url, `${S.idp.url}/token/revocation`);
	assert.deepEqual(v.extra_authorize_params, { prompt: 'consent' });
	assert.equal(v.access, 'key');
	assert.equal(v.client_secret_set, true);
	const r = await start(kA, { subject: 'alice',
	    return_to: `${S.appUrl}/settings?tab=1` });
	assert.equal(r.status, 201, r.text);
	const d = r.json.data;
	assert.equal(d.subject, 'alice');
	assert.equal(d.state, 'pending');
	const u = new URL(d.authorization_url);
	assert.equal(u.origin + u.pathname, `${S.idp.url}/auth`);
	assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
	assert.match(u.searchParams.get('code_challenge'), /^[\w-]{43}$/);
	assert.match(u.searchParams.get('state'), /^[\w-]{43}$/);
	assert.equal(u.searchParams.get('redirect_uri'),
	    `${S.kilnB}/oauth/callback`);
	assert.equal(u.searchParams.get('prompt'), 'consent');
	const exp = Date.parse(d.expires_at) - Date.now();
	assert.ok(exp > 9 * 60000 && exp <= 10 * 60000, `expires ${exp}`);

	/* The flow is in PostgreSQL, its state only as a digest. */
	const flows = await S.db.pg.queryJson('SELECT state_hash FROM ' +
	    'oauth_flows', { db: S.db.name });
	assert.equal(flows.length, 1);
	assert.notEqual(flows[0].state_hash, u.searchParams.get('state'));

	/* Waiting for the consent: listed pending on both, no token. */
	let l = await listed(kB, 'alice');
	assert.ok(l !== null, 'alice listed while her consent is under way');
	assert.equal(l.state, 'pending');
	assert.equal(l.generation, 0);
	assert.equal(l.fingerprint, null);
	const pt = await h.waitFor(async () => {
		const x = await token(kA, 'alice');
		return x.status !== 404 ? x : false;
	}, { timeout: 3000, what: 'the pending connection known' });
	/* As a device flow's pending connection answers. */
	assert.equal(pt.status, 503, `no token before the consent: ${pt.text}`);
	assert.ok(Number(pt.headers['retry-after']) > 0, 'Retry-After');
	assert.equal(pt.json.token ?? null, null, 'no token answered');
	assert.equal(pt.json.subject, 'alice');

	const c = await consent(d.authorization_url, 'alice');
	assert.ok(c.callback.startsWith(`${S.kilnB}/oauth/callback?`),
	    `the callback is B's: ${c.callback}`);
	assert.equal(c.status, 303);
	assert.equal(c.url, `${S.appUrl}/settings?tab=1` +
	    '&connection=connected&subject=alice');

	/* Both instances serve alice's token, which is alice's. */
	const tb = await waitToken(kB, 'alice');
	const ta = await waitToken(kA, 'alice');
	l = await listed(kA, 'alice');
	assert.equal(l.state, 'active');
	assert.equal(l.generation, 1);
	assert.equal(l.failures, 0, 'never refreshed while pending');
	assert.equal(ta.json.token, tb.json.token);
	assert.equal(ta.json.subject, 'alice');
	const i = await introspect(ta.json.token);
	assert.equal(i.active, true);
	assert.equal(i.sub, 'alice');
	assert.equal(i.client_id, 'kiln-app');
	const st = await stats();
	assert.ok(st.grants.some((g) => g.grant_type === 'authorization_code'
	    && g.account === 'alice' && g.pkce), 'a code grant with PKCE');
	S.alice = ta.json.token;
});

test('two_subjects_and_scoped_keys', { timeout: 30000 }, async () => {
	const { kA, kB } = await setup();
	let r = await start(kB, { subject: 'bob' }, S.otherKey);
	a.assertError(r, 403, 'a key of another source starts a consent');
	r = await start(kB, { subject: 'bob', refresh_token: 'x' }, S.fhirKey);
	a.assertError(r, 409, 'an import into this kind',
	    { code: 'wrong_kind' });
	r = await start(kB, { subject: 'default' }, S.fhirKey);
	a.assertError(r, 400, 'the default connection', { field: 'subject' });
	r = await start(kB, { subject: 'bob' }, S.fhirKey);
	assert.equal(r.status, 201, r.text);
	const c = await consent(r.json.data.authorization_url, 'bob');
	assert.equal(c.status, 200, 'no return_to: a page');
	assert.match(c.html, /bob is connected to fhir/);
	const tb = await waitToken(kA, 'bob');
	assert.notEqual(tb.json.token, S.alice);
	assert.equal((await introspect(tb.json.token)).sub, 'bob');
	r = await token(kA, 'bob', S.otherKey);
	a.assertError(r, 403, 'a key of another source reads bob');

	/* It refreshes like any connection (the refresh token rotates). */
	r = await a.call(kB, 'POST', cpath('fhir', 'bob',
	    '/current-token/rejected'), { auth: S.fhirKey,
	    body: { fingerprint: tb.json.fingerprint } });
	assert.ok(r.status < 300, r.text);
	r = await waitToken(kA, 'bob', tb.json.token);
	assert.equal((await introspect(r.json.token)).sub, 'bob');
	assert.ok((await stats()).grants.some((g) => g.grant_type ===
	    'refresh_token' && g.account === 'bob'), 'a refresh for bob');
	S.bob = r.json.token;
});

test('callback_refusals_store_nothing', { timeout: 45000 }, async () => {
	const { kA, kB } = await setup();
	const before = await tokensRows();
	const nflows = async () => (await S.db.pg.queryJson(
	    'SELECT count(*)::int AS n FROM oauth_flows',
	    { db: S.db.name }))[0].n;
	const flows0 = await nflows();

	/* No open redirect: refused at the start. */
	for (const to of ['https://evil.example/x', `${S.appUrl}.evil/x`,
	    `http://user@${S.appUrl.slice(7)}/x`, 'javascript:alert(1)']) {
		const r = await start(kA, { subject: 'eve', return_to: to });
		a.assertError(r, 422, `return_to ${to}`, { field: 'return_to' });
	}
	assert.equal(await nflows(), flows0, 'no flow stored');

	/* A state nobody issued. */
	let r = await kB.request('/oauth/callback?code=abc&state=' +
	    'A'.repeat(43));
	assert.equal(r.status, 400);
	assert.match(r.text, /unknown, or was already used/);
	assert.match(String(r.headers['content-type']), /text\/html/);

	/* The callback replayed (the state was taken once). */
	r = await kB.request(S.callbacks[0].slice(S.kilnB.length));
	assert.equal(r.status, 400);
	assert.match(r.text, /unknown, or was already used/);

	/* The person says no: back to the app with the error. */
	r = await start(kA, { subject: 'carol',
	    return_to: `${S.appUrl}/back` });
	assert.equal(r.status, 201, r.text);
	assert.equal((await listed(kB, 'carol')).state, 'pending');
	let c = await consent(r.json.data.authorization_url, 'carol',
	    { deny: true });
	assert.equal(c.status, 303);
	assert.equal(c.url, `${S.appUrl}/back?connection=failed` +
	    '&error=access_denied');
	assert.equal(await listed(kB, 'carol'), null,
	    'a refused consent of a new subject leaves no connection');
	/* ... or, with no return_to, a page saying so. */
	r = await start(kA, { subject: 'dave' });
	c = await consent(r.json.data.authorization_url, 'dave',
	    { deny: true });
	assert.equal(c.status, 400);
	assert.match(c.html, /dave could not be connected to fhir/);
	assert.match(c.html, /access_denied/);

	/* A consent that took longer than 10 minutes (its row aged). */
	r = await start(kA, { subject: 'erin',
	    return_to: `${S.appUrl}/late` });
	assert.equal(r.status, 201, r.text);
	await S.db.pg.query("UPDATE oauth_flows SET expires_at = now() - " +
	    "interval '1 second'", { db: S.db.name });
	c = await consent(r.json.data.authorization_url, 'erin');
	assert.equal(c.url, `${S.appUrl}/late?connection=failed` +
	    '&error=expired_state');

	/* A flow nobody came back from: swept with the next start's. */
	r = await start(kA, { subject: 'gone' });
	assert.equal(r.status, 201, r.text);
	assert.equal((await listed(kA, 'gone')).state, 'pending');
	await S.db.pg.query("UPDATE oauth_flows SET expires_at = now() - " +
	    "interval '1 second' WHERE subject = 'gone'", { db: S.db.name });
	r = await start(kA, { subject: 'gone2' });
	assert.equal(r.status, 201, r.text);
	assert.equal(await listed(kA, 'gone'), null, 'an expired flow swept');
	/* Refused straight away (no browser): gone2 goes as well. */
	const st = new URL(r.json.data.authorization_url).searchParams
	    .get('state');
	r = await kA.request(`/oauth/callback?error=access_denied&state=${st}`);
	assert.equal(r.status, 400, r.text);
	assert.equal(await listed(kA, 'gone2'), null);

	assert.deepEqual(await tokensRows(), before, 'no token stored');
	const ev = await S.db.pg.queryJson("SELECT subject, outcome, error " +
	    "FROM refresh_events WHERE subject IN ('carol', 'dave', 'erin') " +
	    'ORDER BY id', { db: S.db.name });
	assert.deepEqual(ev.map((e) => [e.subject, e.outcome]),
	    [['carol', 'failure'], ['dave', 'failure'], ['erin', 'failure']]);
	assert.match(ev[0].error, /access_denied/);
	r = await a.call(kA, 'GET', cpath('fhir', 'carol'),
	    { auth: a.ADMIN_KEY });
	a.assertError(r, 404, 'carol has no connection');
});

test('new_consent_replaces_and_revokes_old_grant', { timeout: 30000 },
    async () => {
	const { kA, kB } = await setup();
	const old = (await waitToken(kA, 'bob')).json.token;
	const revocations = (await stats()).revocations;
	const r = await start(kA, { subject: 'bob' });
	assert.equal(r.status, 201, r.text);
	/* Until bob consents again, his token is still served. */
	assert.equal((await token(kB, 'bob')).json.token, old);
	const l = await listed(kB, 'bob');
	assert.equal(l.state, 'active', 'a new consent keeps the state');
	assert.ok(l.generation > 0 && l.fingerprint !== null);
	await consent(r.json.data.authorization_url, 'bob');
	const t = await waitToken(kA, 'bob', old);
	assert.equal((await introspect(t.json.token)).active, true);
	await h.waitFor(async () => (await stats()).revocations >
	    revocations, { timeout: 5000, what: 'the old grant revoked' });
	assert.equal((await introspect(old)).active, false,
	    'the old grant is gone');
	S.bob = t.json.token;
});

test('revoked_grant_needs_reauth_then_reconsent', { timeout: 45000 },
    async () => {
	const { kA, kB } = await setup();
	const held = (await waitToken(kA, 'alice')).json.token;
	let r = await S.idp.call('POST', '/_revoke_grant',
	    { account: 'alice' });
	assert.equal(r.status, 200, r.text);
	const t0 = Date.now();
	const calls = async () => (await stats()).errors.filter((e) =>
	    e.account === 'alice' && e.grant_type === 'refresh_token' &&
	    e.at >= t0).length;

	/* A token that must live longer: a refresh now, refused. */
	await token(kA, 'alice', S.fhirKey, `?min_ttl=${TTL - 1}`);
	await h.waitFor(async () => {
		const x = await a.call(kB, 'GET', cpath('fhir', 'alice'),
		    { auth: a.ADMIN_KEY });
		return x.json && x.json.data.state === 'needs_reauth';
	}, { timeout: 10000, what: 'alice in needs_reauth' });
	await h.sleep(2500);
	assert.equal(await calls(), 1, 'exactly one refresh call');
	r = await token(kB, 'alice', S.fhirKey, `?min_ttl=${TTL - 1}`);
	assert.equal(r.status, 503, 'min_ttl on needs_reauth');
	await h.sleep(500);
	assert.equal(await calls(), 1, 'no retry storm');
	/* Its last token is served until it expires. */
	r = await token(kB, 'alice');
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.token, held);

	r = await start(kB, { subject: 'alice' });
	await consent(r.json.data.authorization_url, 'alice');
	const t = await waitToken(kA, 'alice', held);
	const x = await a.call(kA, 'GET', cpath('fhir', 'alice'),
	    { auth: a.ADMIN_KEY });
	assert.equal(x.json.data.state, 'active');
	assert.equal((await introspect(t.json.token)).sub, 'alice');
	S.alice = t.json.token;
});

test('delete_revokes_upstream', { timeout: 30000 }, async () => {
	const { kA, kB } = await setup();
	const t = (await waitToken(kA, 'bob')).json.token;
	const r = await a.call(kA, 'DELETE', cpath('fhir', 'bob'),
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.revoked, true);
	assert.equal((await introspect(t)).active, false);
	for (const k of [kA, kB]) {
		await h.waitFor(async () => (await token(k, 'bob')).status ===
		    404, { timeout: 5000, what: 'bob served no more' });
	}
});

test('no_secret_in_logs_events_pages_or_dump', { timeout: 30000 },
    async () => {
	const { kA, kB } = await setup();
	const st = await stats();
	const secrets = [...st.issued.codes, ...st.issued.verifiers,
	    ...st.issued.access, ...st.issued.refresh];
	assert.ok(st.issued.codes.length >= 4 && st.issued.verifiers.length >=
	    4 && st.issued.refresh.length >= 5, 'the flows issued secrets');
	const dump = await S.db.pg.dump(S.db.name);
	assert.ok(dump.includes('oauth_flows'), 'the dump has the tables');
	const events = JSON.stringify(await S.db.pg.queryJson(
	    'SELECT * FROM refresh_events', { db: S.db.name }));
	const where = { 'kiln A log': kA.logs(), 'kiln B log': kB.logs(),
	    events, pages: S.pages.join('\n'), 'pg_dump': dump };
	for (const s of secrets) {
		for (const [w, text] of Object.entries(where))
			assert.ok(!text.includes(s), `a secret in ${w}`);
	}
});

test('public_url_required_and_fields_checked', { timeout: 40000 },
    async () => {
	await setup();
	const db = await h.freshDb(pg, 'connect_code_cfg');
	const env = { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY };
	const k = await h.startKiln({ name: 'code-nourl', databaseUrl: db.url,
	    workers: 1, env });
	const body = { name: 'x', kind: 'authorization_code',
	    authorize_url: `${S.idp.url}/auth`, token_url: `${S.idp.url}/token`,
	    client_id: 'kiln-app' };
	let r = await a.call(k, 'POST', '/api/tokens', { auth: a.ADMIN_KEY,
	    body });
	a.assertError(r, 422, 'no KILN_PUBLIC_URL',
	    { field: 'KILN_PUBLIC_URL' });
	/* Fields are checked first, each error naming its field. */
	const bad = [
		[{ authorize_url: undefined }, 'authorize_url'],
		[{ client_id: undefined }, 'client_id'],
		[{ revocation_url: 'ftp://x' }, 'revocation_url'],
		[{ extra_authorize_params: { state: 'x' } },
		    'extra_authorize_params'],
		[{ extra_authorize_params: { a: 1 } },
		    'extra_authorize_params'],
		[{ refresh_token: 'x' }, 'refresh_token'],
		[{ auth_method: 'client_secret_basic' }, 'client_secret'],
	];
	for (const [change, field] of bad) {
		r = await a.call(k, 'POST', '/api/tokens', { auth: a.ADMIN_KEY,
		    body: Object.assign({}, body, change) });
		a.assertError(r, 422, `bad ${field}`, { field });
	}
	await k.stop();

	/* Sources of the kind exist: no start without KILN_PUBLIC_URL, nor
	 * with a bad value of either variable (named). */
	for (const [extra, name] of [[{}, /KILN_PUBLIC_URL: required/],
	    [{ KILN_PUBLIC_URL: 'kiln.example' }, /KILN_PUBLIC_URL: expected/],
	    [{ KILN_PUBLIC_URL: S.kilnB, KILN_RETURN_TO_ALLOW:
	    'https://app.example/path' }, /KILN_RETURN_TO_ALLOW: /]]) {
		await assert.rejects(h.startKiln({ name: 'code-nourl2',
		    databaseUrl: S.db.url, sourcesFile: S.kA.sourcesFile,
		    masterKey: S.kA.masterKey, workers: 1, healthTimeout: 8000,
		    env: Object.assign({}, env, extra) }), name);
	}
});
