'use strict';

/*
 * Issue 15 §2: sources and API keys managed from the dashboard, in
 * Debian's chromium (JavaScript on: the forms go to the admin API) and
 * over plain HTTP (no JavaScript: the forms post to /dashboard/...).
 *
 * sources_managed_in_the_browser: one source of each kind created
 *   through its form gets a token from a real upstream; bad input shows
 *   the error next to its field; a source edited without touching its
 *   secret still refreshes (a forced refresh makes a new generation);
 *   one is deleted; no secret reaches the browser. Screenshots.
 * keys_created_once_and_revoked_in_the_browser: a key is shown once
 *   with a copy button, works as a bearer credential, is gone from the
 *   page on reload, and once revoked is refused (401). Screenshots.
 * forms_work_without_javascript: the same forms posted as HTML forms:
 *   with the session's CSRF token they create, edit (a blank secret
 *   keeps the stored one), delete, make and revoke keys; a refused form
 *   comes back with the error next to its field; without the CSRF token
 *   403; the admin API's errors name their field.
 * viewer_session_cannot_manage: a viewer's session sees the list, gets
 *   no forms, and its posts are refused (403).
 * exchange_and_mtls_sources_in_the_browser: a client_credentials source
 *   and a token_exchange source taking its token, both made through the
 *   forms against oidc-provider's RFC 8693 grant, get their tokens; a
 *   mutual TLS source with a bad certificate shows the error at
 *   tls_client_cert; with a certificate made by the openssl CLI it is
 *   created, edited without retyping its PEMs (they are kept), and its
 *   key never reaches the browser. Every create, edit and delete of a
 *   source and every key made and revoked through the forms (with and
 *   without JavaScript) leaves exactly one audit_events row, naming the
 *   session (principal_kind session, the key it was made from).
 * consent_sources_in_the_browser: an authorization_code source and a
 *   device_code source made through their forms (extra consent
 *   parameters as a JSON object) default to access key; a bad field
 *   (a parameter kiln owns, a device endpoint off the token URL's
 *   origin) shows its error at its field and makes nothing, with and
 *   without JavaScript; an edit that leaves the secret blank keeps it;
 *   GET /api/tokens/{name} shows what was saved; the secrets never
 *   reach the browser; the kind filters offer both kinds.
 * jwt_sources_in_the_browser: a jwt_bearer source with a PEM key, one
 *   with a key kiln generates (ES256), and a client_credentials source
 *   with private_key_jwt, made through the forms: their pages show the
 *   method and the signing key id, never the key.
 *
 * Screenshots go to tests/browser/artifacts; KILN_SCREENSHOTS=1 writes
 * the committed ones in docs/screenshots instead.
 */

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const procs = require('../lib/procs');
const { startOidcMtls } = require('../lib/upstream');
const d = require('../../browser/lib/dash');

const pg = h.filePg();
/* The committed screenshots are written with KILN_SCREENSHOTS=1 only. */
const SHOTS = process.env.KILN_SCREENSHOTS === '1' ?
    path.join(h.procs.REPO, 'docs', 'screenshots') : d.ARTIFACTS;

const S = {
	cc: h.secret('cc'),
	rt: h.secret('rt-client'),
	seed: h.secret('seed'),
	pw: h.secret('pw-client'),
	alice: h.secret('alice'),
	nojs: h.secret('nojs'),
};

let envP = null;
/* One upstream and one kiln for the file. */
function env()
{
	if (envP === null) {
		envP = (async () => {
			const idp = await h.startOAuth(['--lifetime', '600',
			    '--client', `cc1:${S.cc}:client_credentials`,
			    '--client', `nojs1:${S.nojs}:client_credentials`,
			    '--client', `rt-client:${S.rt}:refresh_token`,
			    '--client', `pw-client:${S.pw}:password,refresh_token`,
			    '--user', `alice:${S.alice}`,
			    '--seed-refresh', `rt-client:${S.seed}`]);
			/* KILN_PUBLIC_URL: authorization_code sources */
			const e = await a.adminKiln(pg, 'dash_manage', { idp,
			    env: { KILN_PUBLIC_URL: 'http://kiln.test' } });
			return e;
		})();
	}
	return envP;
}

/* fields: an object, or [name, value] pairs (a name may repeat). */
function form(fields)
{
	const pairs = Array.isArray(fields) ? fields : Object.entries(fields);
	return pairs.map(([k, v]) =>
	    `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

function postForm(k, p, cookie, fields)
{
	return k.post(p, form(fields), { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: cookie,
	} });
}

async function source(k, key, name)
{
	return a.call(k, 'GET', `/api/tokens/${name}`, { auth: key });
}

/* Force a refresh and wait for a generation above gen. */
async function refreshedPast(k, key, name, gen)
{
	const r = await a.call(k, 'POST', `/api/tokens/${name}/refresh`,
	    { auth: key });
	assert.equal(r.status, 202, `refresh ${name}: ${r.text}`);
	return h.waitFor(async () => {
		const s = await source(k, key, name);
		const st = s.json.data.state;
		return st.generation > gen && st.valid ? st : false;
	}, { timeout: 15000, what: `${name}: a generation above ${gen}` });
}

/* Console errors but the refusals (422) the tests asked for. */
function unexpected(w)
{
	return w.errors.filter((e) => !/status of 422 \(\) \S+\/api\/(tokens|keys)$/
	    .test(e));
}

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

/* Fill a source form of the page (its kind chosen) and submit it. */
async function submitSource(page, kind, fields)
{
	await page.click(`nav.kinds a:has-text("${kind}")`);
	await page.waitForSelector(`form[data-mode="create"] legend:has-text(` +
	    `"${kind}")`);
	for (const [n, v] of Object.entries(fields)) {
		const el = `form[data-mode="create"] [name="${n}"]` +
		    ':not([type=hidden])';
		if (typeof v === 'boolean')
			await page.setChecked(el, v);
		else if (await page.$eval(el, (e) => e.tagName) === 'SELECT')
			await page.selectOption(el, v);
		else
			await page.fill(el, v);
	}
	await page.click('form[data-mode="create"] button.primary');
}

test('sources_managed_in_the_browser', { timeout: 90000 }, async () => {
	const { k, adminKey, idp } = await env();
	const b = await d.launch();
	const ctx = await b.newContext({ viewport: { width: 1280,
	    height: 720 } });
	const page = await ctx.newPage();
	const rec = new d.Recorder();
	const w = d.watchPage(page, rec, k.url);
	page.on('dialog', (dl) => dl.accept());
	await d.browserLogin(page, k, adminKey);

	await page.click('nav.top a:has-text("Sources")');
	await page.waitForURL(`${k.url}/dashboard/sources`);

	/* bad input: the error next to its field, the page stays */
	await submitSource(page, 'client_credentials', { name: 'bad1',
	    token_url: 'ftp://nowhere', client_id: 'x', client_secret: 'y' });
	const e1 = await page.waitForSelector(
	    '[data-field="token_url"] .field-error');
	assert.match(await e1.textContent(), /^token_url: must be an http/);
	assert.equal(await page.$$eval('.field-error', (x) => x.length), 1,
	    'one error shown');
	await page.fill('form[data-mode="create"] [name="token_url"]',
	    idp.tokenUrl);
	await page.fill('form[data-mode="create"] [name="client_secret"]', '');
	await page.click('form[data-mode="create"] button.primary');
	const e2 = await page.waitForSelector(
	    '[data-field="client_secret"] .field-error');
	assert.match(await e2.textContent(),
	    /^client_secret: required for client_credentials/);
	assert.equal(await page.$('[data-field="token_url"] .field-error'),
	    null, 'the old error is gone');
	assert.equal(new URL(page.url()).pathname, '/dashboard/sources');
	assert.equal((await source(k, adminKey, 'bad1')).status, 404,
	    'nothing created');

	/* one source of each kind */
	const kinds = [
		['client_credentials', { name: 'cc1', token_url: idp.tokenUrl,
		    client_id: 'cc1', client_secret: S.cc,
		    auth_method: 'client_secret_basic', scope: 'read' }],
		['refresh_token', { name: 'rt1', token_url: idp.tokenUrl,
		    refresh_token: S.seed, client_id: 'rt-client',
		    client_secret: S.rt }],
		['password', { name: 'pw1', token_url: idp.tokenUrl,
		    username: 'alice', password: S.alice,
		    client_id: 'pw-client', client_secret: S.pw }],
		['json_login', { name: 'jl1', token_url: idp.loginUrl,
		    username: 'alice', password: S.alice,
		    token_path: 'Data.access_token',
		    expires_at_path: 'Data.expires' }],
	];
	for (const [kind, f] of kinds) {
		await submitSource(page, kind, f);
		await page.waitForURL(`${k.url}/dashboard/sources?created=` +
		    f.name);
		assert.match(await page.textContent('p.notice'),
		    new RegExp(`Created the source ${f.name}`));
		const t = await h.waitToken(k, f.name);
		const p = await idp.protectedStatus(t.json.token);
		assert.equal(p.status, 200, `${kind}: the upstream's token`);
		const v = (await source(k, adminKey, f.name)).json.data;
		assert.equal(v.kind, kind);
	}
	assert.equal((await source(k, adminKey, 'cc1')).json.data.auth_method,
	    'client_secret_basic');
	await shoot(page, 'sources');

	/* edit cc1 without touching its secret */
	await page.click('tr[data-source="cc1"] a:has-text("Edit")');
	await page.waitForURL(`${k.url}/dashboard/sources/cc1`);
	const secret = page.locator('[name="client_secret"]');
	assert.equal(await secret.inputValue(), '', 'no value in the form');
	assert.equal(await secret.getAttribute('placeholder'),
	    'a value is set — leave blank to keep it');
	assert.equal(await page.inputValue('[name="scope"]'), 'read');
	const before = (await source(k, adminKey, 'cc1')).json.data.state;
	await page.fill('[name="scope"]', 'read write');
	await page.click('form[data-mode="edit"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?saved=cc1`);
	const after = (await source(k, adminKey, 'cc1')).json.data;
	assert.equal(after.scope, 'read write');
	assert.equal(after.client_secret_set, true, 'the secret is kept');
	await refreshedPast(k, adminKey, 'cc1', before.generation);
	const ev = await a.call(k, 'GET', '/api/tokens/cc1/events?limit=1',
	    { auth: adminKey });
	assert.equal(ev.json.data.events[0].outcome, 'success',
	    'the refresh after the edit used the stored secret');

	/* delete pw1 from the list */
	await page.click('tr[data-source="pw1"] button:has-text("Delete")');
	await page.waitForURL(`${k.url}/dashboard/sources?deleted=pw1`);
	assert.equal((await source(k, adminKey, 'pw1')).status, 404);
	assert.equal(await page.$('tr[data-source="pw1"]'), null);

	assert.deepEqual(rec.leaks({ cc: S.cc, rt: S.rt, seed: S.seed,
	    pw: S.pw, alice: S.alice }), [], 'no secret reached the browser');
	assert.deepEqual(unexpected(w), [], 'no console errors');
	await ctx.close();
});

test('keys_created_once_and_revoked_in_the_browser', { timeout: 60000 },
    async () => {
	const { k, adminKey } = await env();
	const b = await d.launch();
	const ctx = await b.newContext({ viewport: { width: 1280,
	    height: 720 } });
	await ctx.grantPermissions(['clipboard-read', 'clipboard-write'],
	    { origin: k.url });
	const page = await ctx.newPage();
	const w = d.watchPage(page, new d.Recorder(), k.url);
	page.on('dialog', (dl) => dl.accept());
	await d.browserLogin(page, k, adminKey);
	await page.click('nav.top a:has-text("API keys")');
	await page.waitForURL(`${k.url}/dashboard/keys`);

	/* bad input next to its field */
	await page.fill('#k-name', 'scoped');
	await page.selectOption('#k-role', 'client');
	await page.fill('#k-sources', 'Not A Name');
	await page.click('form[data-mode="key"] button.primary');
	const err = await page.waitForSelector(
	    '[data-field="sources"] .field-error');
	assert.match(await err.textContent(), /^sources: expected/);

	await page.fill('#k-name', 'ci-reader');
	await page.selectOption('#k-role', 'viewer');
	await page.fill('#k-sources', '');
	await page.click('form[data-mode="key"] button.primary');
	await page.waitForSelector('#key-created:not([hidden])');
	const key = (await page.textContent('#new-key')).trim();
	assert.ok(key.length >= 32, `a key (${key.length} characters)`);
	await page.waitForSelector('#keys-list td:has-text("ci-reader")');
	await page.click('button.copy');
	await page.waitForSelector('button.copy:has-text("Copied")');
	assert.equal(await page.evaluate(() => navigator.clipboard.readText()),
	    key, 'the copy button copied the key');
	await shoot(page, 'keys');

	/* it works, and is not shown again */
	await h.waitFor(async () => (await a.call(k, 'GET', '/api/tokens',
	    { auth: key })).status === 200, { timeout: 5000,
	    what: 'the new key works' });
	await page.reload();
	assert.ok(!(await page.content()).includes(key), 'shown once only');

	const id = await page.getAttribute(
	    '#keys-list tr:has(td:has-text("ci-reader"))', 'data-key');
	await page.click(`tr[data-key="${id}"] button:has-text("Revoke")`);
	await page.waitForURL(`${k.url}/dashboard/keys?revoked=${id}`);
	assert.match(await page.textContent(`tr[data-key="${id}"]`),
	    /revoked/);
	const gone = await a.call(k, 'GET', '/api/tokens', { auth: key });
	assert.equal(gone.status, 401, 'revoked: refused');
	assert.deepEqual(unexpected(w), [], 'no console errors');
	await ctx.close();
});

test('forms_work_without_javascript', { timeout: 60000 }, async () => {
	const { k, adminKey, idp } = await env();
	const s = await d.httpLogin(k, adminKey);
	const create = {
		csrf: s.csrf, kind: 'client_credentials', name: 'nojs1',
		token_url: idp.tokenUrl, client_id: 'nojs1',
		client_secret: S.nojs, auth_method: 'client_secret_post',
		scope: '', refresh_buffer: '', require_header: 'false',
		enabled: 'false',
	};
	/* a checked box comes after its hidden "false" */
	const created = [...Object.entries(create), ['enabled', 'true']];

	/* without the CSRF token: refused, nothing made */
	const { csrf, ...noCsrf } = create;
	const r0 = await postForm(k, '/dashboard/sources', s.cookie, noCsrf);
	a.assertError(r0, 403, 'no CSRF token', { code: 'forbidden' });
	const bad = await postForm(k, '/dashboard/sources', s.cookie,
	    Object.assign({}, create, { csrf: 'f'.repeat(32) }));
	assert.equal(bad.status, 403, 'a wrong CSRF token');

	/* refused input: the form again, the error at its field */
	const r1 = await postForm(k, '/dashboard/sources', s.cookie,
	    Object.assign({}, create, { refresh_buffer: 'soon' }));
	assert.equal(r1.status, 422, r1.text.slice(0, 300));
	assert.match(r1.text, /<div class="field" data-field="refresh_buffer">(?:(?!<\/div>).)*<p class="field-error" id="err-refresh_buffer" role="alert">refresh_buffer: must be an integer/s);
	assert.equal(r1.text.match(/role="alert"/g).length, 1,
	    'the error is shown once, at its field');
	assert.match(r1.text, /name="client_id"[^>]*value="nojs1"/,
	    'what was typed is kept');
	assert.ok(!r1.text.includes(S.nojs), 'the secret is not sent back');
	assert.match(r1.text, /placeholder="type it again: it was not kept"/);

	const r2 = await postForm(k, '/dashboard/sources', s.cookie, created);
	assert.equal(r2.status, 303, r2.text.slice(0, 300));
	assert.equal(r2.headers.location, '/dashboard/sources?created=nojs1');
	await h.waitToken(k, 'nojs1');
	const again = await postForm(k, '/dashboard/sources', s.cookie,
	    created);
	assert.equal(again.status, 409);
	assert.match(again.text, /id="err-name" role="alert">a token source with this name exists/);

	/* the edit page never holds the secret; a blank one keeps it */
	const ed = await k.get('/dashboard/sources/nojs1',
	    { headers: { Cookie: s.cookie } });
	assert.equal(ed.status, 200);
	assert.ok(!ed.text.includes(S.nojs), 'no secret in the edit form');
	assert.match(String(ed.headers['content-security-policy']),
	    /script-src 'self';/, 'the page has the CSP');
	assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|style="/
	    .test(ed.text), 'no inline script, handler or style');
	assert.match(ed.text, /name="client_secret" data-type="secret"[^>]*placeholder="a value is set — leave blank to keep it"/);
	const gen = (await source(k, adminKey, 'nojs1')).json.data.state
	    .generation;
	const r3 = await postForm(k, '/dashboard/sources/nojs1', s.cookie, {
		csrf: s.csrf, kind: 'client_credentials',
		token_url_shown: idp.tokenUrl, token_url: idp.tokenUrl,
		client_id: 'nojs1', client_secret: '', scope: '',
		audience: '', resource: '', auth_method: 'client_secret_post',
		refresh_buffer: '120', fallback_lifetime: '900',
		access: 'open', require_header: 'false', enabled: 'false',
	});
	assert.equal(r3.status, 303, r3.text.slice(0, 300));
	assert.equal(r3.headers.location, '/dashboard/sources?saved=nojs1');
	const v = (await source(k, adminKey, 'nojs1')).json.data;
	assert.equal(v.refresh_buffer, 120);
	assert.equal(v.enabled, false);
	assert.equal(v.client_secret_set, true);
	await postForm(k, '/dashboard/sources/nojs1', s.cookie,
	    { csrf: s.csrf, kind: 'client_credentials', enabled: 'true' });
	await refreshedPast(k, adminKey, 'nojs1', gen);

	/* an edit refused: the edit form again, at its field */
	const r4 = await postForm(k, '/dashboard/sources/nojs1', s.cookie,
	    { csrf: s.csrf, kind: 'client_credentials', token_url: '',
	    client_secret: '' });
	assert.equal(r4.status, 422);
	assert.match(r4.text, /id="err-token_url" role="alert">token_url: required/);
	assert.equal(r4.text.match(/role="alert"/g).length, 1);
	assert.match(r4.text, /placeholder="a value is set — leave blank to keep it"/);

	/* the admin API names the field */
	const api = await a.call(k, 'POST', '/api/tokens', { auth: adminKey,
	    body: { name: 'x1', kind: 'client_credentials',
	    token_url: 'nope', client_id: 'a', client_secret: 'b' } });
	assert.equal(a.assertError(api, 422, 'api').error.field, 'token_url');
	/* the same form sent as the script does: JSON and X-CSRF-Token */
	const js = await k.request('/api/tokens/nojs1', { method: 'PATCH',
	    body: { scope: 'js' }, headers: { Cookie: s.cookie,
	    'X-CSRF-Token': s.csrf } });
	assert.equal(js.status, 200, js.text);
	const jsNo = await k.request('/api/tokens/nojs1', { method: 'PATCH',
	    body: { scope: 'js' }, headers: { Cookie: s.cookie } });
	assert.equal(jsNo.status, 403);

	/* delete */
	const r5 = await postForm(k, '/dashboard/sources/nojs1/delete',
	    s.cookie, { csrf: s.csrf });
	assert.equal(r5.status, 303);
	assert.equal((await source(k, adminKey, 'nojs1')).status, 404);

	/* a key: shown on the answer page once, works, revoked: 401 */
	const kb = await postForm(k, '/dashboard/keys', s.cookie,
	    { csrf: s.csrf, name: 'nojs-key', role: 'admin', sources: '' });
	assert.equal(kb.status, 201, kb.text.slice(0, 300));
	const key = /<code id="new-key">([^<]+)<\/code>/.exec(kb.text)[1];
	/* known to the workers once their key table reloads (async) */
	await h.waitFor(async () => (await a.call(k, 'GET', '/api/keys',
	    { auth: key })).status === 200, { timeout: 5000,
	    what: 'the new key works' });
	const list = await k.get('/dashboard/keys',
	    { headers: { Cookie: s.cookie } });
	assert.ok(list.text.includes('nojs-key') && !list.text.includes(key),
	    'listed, not shown again');
	const id = new RegExp('<tr data-key="(\\d+)"><td>\\d+</td><td ' +
	    'class="name">nojs-key<').exec(list.text)[1];
	const kbad = await postForm(k, '/dashboard/keys', s.cookie,
	    { csrf: s.csrf, name: '', role: 'admin' });
	assert.equal(kbad.status, 422);
	assert.match(kbad.text, /id="err-name" role="alert">name: expected/);
	const rv = await postForm(k, `/dashboard/keys/${id}/revoke`, s.cookie,
	    { csrf: s.csrf });
	assert.equal(rv.status, 303);
	assert.equal(rv.headers.location, `/dashboard/keys?revoked=${id}`);
	assert.equal((await a.call(k, 'GET', '/api/keys', { auth: key }))
	    .status, 401, 'revoked');
});

test('viewer_session_cannot_manage', { timeout: 30000 }, async () => {
	const { k, adminKey, idp } = await env();
	const mk = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
	    body: { name: 'viewer-person', role: 'viewer' } });
	assert.equal(mk.status, 201);
	/* (a new key works on every worker at once) */
	const s = await d.httpLogin(k, mk.json.data.key);
	const page = await k.get('/dashboard/sources',
	    { headers: { Cookie: s.cookie } });
	assert.equal(page.status, 200);
	assert.ok(!page.text.includes('action="/dashboard/sources"'),
	    'no create form for a viewer');
	const r = await postForm(k, '/dashboard/sources', s.cookie, {
		csrf: s.csrf, kind: 'client_credentials', name: 'viewer1',
		token_url: idp.tokenUrl, client_id: 'v', client_secret: 'v',
	});
	a.assertError(r, 403, 'viewer creates', { code: 'forbidden' });
	const rk = await postForm(k, '/dashboard/keys', s.cookie,
	    { csrf: s.csrf, name: 'x', role: 'admin' });
	assert.equal(rk.status, 403);
	const keys = await k.get('/dashboard/keys',
	    { headers: { Cookie: s.cookie } });
	assert.equal(keys.status, 403);
	assert.equal((await source(k, adminKey, 'viewer1')).status, 404);

	/* a viewer sees a source as the API shows it: query values hidden */
	const mq = await a.call(k, 'POST', '/api/tokens', { auth: adminKey,
	    body: { name: 'vq1', kind: 'client_credentials',
	    token_url: `${idp.tokenUrl}?tenant=t0psecret-tenant`,
	    client_id: 'nojs1', client_secret: S.nojs, enabled: false } });
	assert.equal(mq.status, 201, mq.text);
	const one = await k.get('/dashboard/sources/vq1',
	    { headers: { Cookie: s.cookie } });
	assert.equal(one.status, 200);
	assert.ok(one.text.includes('tenant=***') &&
	    !one.text.includes('t0psecret'), 'query value redacted');
	assert.match(one.text, /<fieldset disabled>/, 'read only');
});

function q(e, sql)
{
	return e.db.pg.queryJson(sql, { db: e.db.name });
}

/* The id of the newest audit row (0: none), to read what follows it. */
async function auditMark(e)
{
	const r = await q(e, 'SELECT COALESCE(max(id), 0)::bigint AS id ' +
	    'FROM audit_events');
	return Number(r[0].id);
}

/*
 * Exactly one audit row after mark, made by the dashboard session of
 * the key keyId, with the fields of want; no secret value in it.
 */
async function oneAudit(e, mark, keyId, want, what, secrets = [])
{
	const rows = await q(e, 'SELECT id, principal_kind, principal, ' +
	    'action, target, fields, outcome FROM audit_events ' +
	    `WHERE id > ${Number(mark)} ORDER BY id`);
	assert.equal(rows.length, 1, `${what}: one audit row, got ` +
	    JSON.stringify(rows));
	const row = rows[0];
	assert.equal(row.principal_kind, 'session', `${what}: ${
	    JSON.stringify(row)}`);
	assert.equal(row.principal, `key:${keyId}`, `${what}: principal`);
	assert.equal(row.outcome, 'ok', `${what}: outcome`);
	for (const [k, v] of Object.entries(want)) {
		const got = k === 'fields' ? [...row.fields].sort() : row[k];
		assert.deepEqual(got, k === 'fields' ? [...v].sort() : v,
		    `${what}: ${k} of ${JSON.stringify(row)}`);
	}
	for (const x of secrets)
		assert.ok(!JSON.stringify(row).includes(x),
		    `${what}: no secret in the row`);
	return row;
}

/* A self-signed EC certificate and its key, by the openssl CLI. */
function selfSigned(cn)
{
	const dir = procs.mkTmp('forms-pki');
	execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
	    'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'c.key', '-out',
	    'c.pem', '-days', '2', '-subj', `/CN=${cn}`], { cwd: dir,
	    stdio: 'pipe' });
	const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
	return { cert: read('c.pem'), key: read('c.key') };
}

/* The base64 lines of a PEM: what a leak would carry in any shape. */
function pemBody(pem)
{
	return pem.split('\n').filter((l) => l && !l.startsWith('-----'));
}

test('exchange_and_mtls_sources_in_the_browser', { timeout: 90000 },
    async () => {
	const e = await env();
	const { k, adminKey } = e;
	const boot = (await q(e, 'SELECT id FROM api_keys ' +
	    "WHERE name = 'bootstrap'"))[0].id;
	const sx = { subj: h.secret('fsubj'), xch: h.secret('fxch') };
	const ox = await startOidcMtls(['--plain', '--exchange',
	    '--lifetime', '300',
	    '--client', `fsubj:client_secret_post:${sx.subj}`,
	    '--client', `fxch:client_secret_post:${sx.xch}`]);
	const txUrl = `http://127.0.0.1:${ox.ready.https_port}/token`;
	const pki = selfSigned('kiln-forms-client');

	const b = await d.launch();
	const ctx = await b.newContext({ viewport: { width: 1280,
	    height: 720 } });
	const page = await ctx.newPage();
	const rec = new d.Recorder();
	const w = d.watchPage(page, rec, k.url);
	page.on('dialog', (dl) => dl.accept());
	await d.browserLogin(page, k, adminKey);
	await page.goto(`${k.url}/dashboard/sources`);

	/* the subject, then the exchange taking its token */
	let mark = await auditMark(e);
	await submitSource(page, 'client_credentials', { name: 'fsubj',
	    token_url: txUrl, client_id: 'fsubj', client_secret: sx.subj });
	await page.waitForURL(`${k.url}/dashboard/sources?created=fsubj`);
	await oneAudit(e, mark, boot, { action: 'source.create',
	    target: 'fsubj' }, 'form creates the subject', [sx.subj]);
	const subj = await h.waitToken(k, 'fsubj');

	mark = await auditMark(e);
	await submitSource(page, 'token_exchange', { name: 'fxch',
	    token_url: txUrl, subject_source: 'fsubj',
	    audience: 'https://api.example', client_id: 'fxch',
	    client_secret: sx.xch });
	await page.waitForURL(`${k.url}/dashboard/sources?created=fxch`);
	await oneAudit(e, mark, boot, { action: 'source.create',
	    target: 'fxch' }, 'form creates the exchange', [sx.xch]);
	const xch = await h.waitToken(k, 'fxch');
	const st = (await h.request(`${ox.url}/_stats`)).json;
	const ex = st.exchanges.find((x) =>
	    x.issued === h.fingerprint(xch.json.token));
	assert.ok(ex, `the exchange was made: ${JSON.stringify(st.exchanges)}`);
	assert.equal(ex.subject, h.fingerprint(subj.json.token),
	    'the subject token was fsubj\'s');
	assert.equal(ex.audience, 'https://api.example');
	let v = (await source(k, adminKey, 'fxch')).json.data;
	assert.equal(v.kind, 'token_exchange');
	assert.equal(v.subject_source, 'fsubj');

	/* its edit form shows what is stored; an edit names its field */
	await page.goto(`${k.url}/dashboard/sources/fxch`);
	assert.equal(await page.inputValue('[name="subject_source"]'),
	    'fsubj');
	assert.equal(await page.inputValue('[name="audience"]'),
	    'https://api.example');
	mark = await auditMark(e);
	await page.fill('[name="requested_token_type"]',
	    'urn:ietf:params:oauth:token-type:access_token');
	await page.click('form[data-mode="edit"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?saved=fxch`);
	await oneAudit(e, mark, boot, { action: 'source.update',
	    target: 'fxch', fields: ['requested_token_type'] },
	    'form edits the exchange');
	v = (await source(k, adminKey, 'fxch')).json.data;
	assert.equal(v.client_secret_set, true, 'the secret is kept');

	/* mTLS: a bad certificate, shown at its field; nothing made */
	mark = await auditMark(e);
	await submitSource(page, 'client_credentials', { name: 'fmtls',
	    token_url: 'https://127.0.0.1:9/token', client_id: 'fmtls',
	    auth_method: 'self_signed_tls_client_auth',
	    tls_client_cert: '-----BEGIN CERTIFICATE-----\nnot a cert\n' +
	    '-----END CERTIFICATE-----\n', tls_client_key: pki.key });
	const ce = await page.waitForSelector(
	    '[data-field="tls_client_cert"] .field-error');
	assert.match(await ce.textContent(), /^tls_client_cert: /);
	assert.equal(await page.$$eval('.field-error', (x) => x.length), 1);
	assert.equal(await page.getAttribute('[name="tls_client_cert"]',
	    'aria-invalid'), 'true');
	assert.equal((await source(k, adminKey, 'fmtls')).status, 404);

	/* the real one: created; the key never shown */
	await page.fill('form[data-mode="create"] [name="tls_client_cert"]',
	    pki.cert);
	await page.uncheck('form[data-mode="create"] [name="enabled"]' +
	    ':not([type=hidden])');
	await page.click('form[data-mode="create"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?created=fmtls`);
	await oneAudit(e, mark, boot, { action: 'source.create',
	    target: 'fmtls' }, 'form creates the mTLS source',
	    pemBody(pki.key));
	v = (await source(k, adminKey, 'fmtls')).json.data;
	assert.equal(v.auth_method, 'self_signed_tls_client_auth');
	assert.equal(v.tls_client_cert_subject, 'CN=kiln-forms-client');
	assert.equal(v.tls_client_key_set, true);

	/* edit it without retyping the PEMs: both kept */
	await page.goto(`${k.url}/dashboard/sources/fmtls`);
	assert.equal(await page.inputValue('[name="tls_client_key"]'), '');
	assert.equal(await page.inputValue('[name="tls_client_cert"]'), '');
	assert.equal(await page.getAttribute('[name="tls_client_key"]',
	    'placeholder'), 'a value is set — leave blank to keep it');
	assert.match(await page.textContent(
	    '[data-field="tls_client_cert"] small.cert'),
	    /CN=kiln-forms-client/);
	assert.equal(await page.inputValue('[name="auth_method"]'),
	    'self_signed_tls_client_auth');
	mark = await auditMark(e);
	await page.fill('[name="scope"]', 'mtls');
	await page.click('form[data-mode="edit"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?saved=fmtls`);
	await oneAudit(e, mark, boot, { action: 'source.update',
	    target: 'fmtls', fields: ['scope'] }, 'form edits mTLS');
	v = (await source(k, adminKey, 'fmtls')).json.data;
	assert.equal(v.scope, 'mtls');
	assert.equal(v.tls_client_key_set, true, 'the key is kept');
	assert.equal(v.tls_client_cert_subject, 'CN=kiln-forms-client',
	    'the certificate is kept');

	/* delete from the list */
	mark = await auditMark(e);
	await page.click('tr[data-source="fmtls"] button:has-text("Delete")');
	await page.waitForURL(`${k.url}/dashboard/sources?deleted=fmtls`);
	await oneAudit(e, mark, boot, { action: 'source.delete',
	    target: 'fmtls' }, 'form deletes');

	/* a key made and revoked */
	await page.goto(`${k.url}/dashboard/keys`);
	mark = await auditMark(e);
	await page.fill('#k-name', 'audited-key');
	await page.selectOption('#k-role', 'viewer');
	await page.click('form[data-mode="key"] button.primary');
	await page.waitForSelector('#key-created:not([hidden])');
	const key = (await page.textContent('#new-key')).trim();
	await page.waitForSelector('#keys-list td:has-text("audited-key")');
	const id = await page.getAttribute(
	    '#keys-list tr:has(td:has-text("audited-key"))', 'data-key');
	await oneAudit(e, mark, boot, { action: 'key.create', target: id },
	    'form makes a key', [key]);
	mark = await auditMark(e);
	await page.click(`tr[data-key="${id}"] button:has-text("Revoke")`);
	await page.waitForURL(`${k.url}/dashboard/keys?revoked=${id}`);
	await oneAudit(e, mark, boot, { action: 'key.revoke', target: id },
	    'form revokes a key');

	/* without JavaScript: the same, one row each */
	const s = await d.httpLogin(k, adminKey);
	mark = await auditMark(e);
	let r = await postForm(k, '/dashboard/sources/fxch', s.cookie, {
		csrf: s.csrf, kind: 'token_exchange', client_secret: '',
		tls_client_key: '', tls_client_cert: '', tls_ca: '',
		actor_token_type: '', scope: 'x' });
	assert.equal(r.status, 303, r.text.slice(0, 300));
	await oneAudit(e, mark, boot, { action: 'source.update',
	    target: 'fxch', fields: ['scope'] }, 'no-JS edit');
	/* a PEM with its line breaks, as a textarea posts it */
	mark = await auditMark(e);
	r = await postForm(k, '/dashboard/sources', s.cookie, {
		csrf: s.csrf, kind: 'client_credentials', name: 'fmtls2',
		token_url: 'https://127.0.0.1:9/token', client_id: 'm2',
		auth_method: 'tls_client_auth', enabled: 'false',
		tls_client_cert: pki.cert.replace(/\n/g, '\r\n'),
		tls_client_key: pki.key.replace(/\n/g, '\r\n') });
	assert.equal(r.status, 303, r.text.slice(0, 300));
	await oneAudit(e, mark, boot, { action: 'source.create',
	    target: 'fmtls2' }, 'no-JS create', pemBody(pki.key));
	const ed = await k.get('/dashboard/sources/fmtls2',
	    { headers: { Cookie: s.cookie } });
	assert.ok(pemBody(pki.key).every((l) => !ed.text.includes(l)),
	    'no key in the edit page');
	assert.match(ed.text, /name="tls_client_key" rows="4" data-type="secret"[^>]*placeholder="a value is set/);
	mark = await auditMark(e);
	r = await postForm(k, '/dashboard/sources/fmtls2/delete', s.cookie,
	    { csrf: s.csrf });
	assert.equal(r.status, 303);
	await oneAudit(e, mark, boot, { action: 'source.delete',
	    target: 'fmtls2' }, 'no-JS delete');
	mark = await auditMark(e);
	r = await postForm(k, '/dashboard/keys', s.cookie,
	    { csrf: s.csrf, name: 'nojs-audited', role: 'viewer' });
	assert.equal(r.status, 201);
	const nk = /<code id="new-key">([^<]+)<\/code>/.exec(r.text)[1];
	const row = await oneAudit(e, mark, boot, { action: 'key.create' },
	    'no-JS key', [nk]);
	mark = await auditMark(e);
	r = await postForm(k, `/dashboard/keys/${row.target}/revoke`,
	    s.cookie, { csrf: s.csrf });
	assert.equal(r.status, 303);
	await oneAudit(e, mark, boot, { action: 'key.revoke',
	    target: row.target }, 'no-JS revoke');

	assert.deepEqual(rec.leaks({ key: pemBody(pki.key), subj: sx.subj,
	    xch: sx.xch }), [], 'no secret reached the browser');
	assert.deepEqual(unexpected(w), [], 'no console errors');
	await ctx.close();
});

test('jwt_sources_in_the_browser', { timeout: 60000 }, async () => {
	const e = await env();
	const { k, adminKey, idp } = e;
	const boot = (await q(e, 'SELECT id FROM api_keys ' +
	    "WHERE name = 'bootstrap'"))[0].id;
	const pki = selfSigned('kiln-forms-jwt');
	const b = await d.launch();
	const ctx = await b.newContext({ viewport: { width: 1280,
	    height: 720 } });
	const page = await ctx.newPage();
	const rec = new d.Recorder();
	const w = d.watchPage(page, rec, k.url);
	await d.browserLogin(page, k, adminKey);
	await page.goto(`${k.url}/dashboard/sources`);

	const made = [
		['jwt_bearer', { name: 'fjb1', token_url: idp.tokenUrl,
		    issuer: 'svc-forms', subject: 'someone',
		    private_key: pki.key, key_id: 'forms-kid-1',
		    enabled: false }],
		['jwt_bearer', { name: 'fjb2', token_url: idp.tokenUrl,
		    issuer: 'svc-forms', private_key_generate: 'ES256',
		    enabled: false }],
		['client_credentials', { name: 'fpkj', token_url: idp.tokenUrl,
		    client_id: 'fpkj', auth_method: 'private_key_jwt',
		    private_key_generate: 'ES256', enabled: false }],
	];
	for (const [kind, f] of made) {
		const mark = await auditMark(e);
		await submitSource(page, kind, f);
		await page.waitForURL(`${k.url}/dashboard/sources?created=` +
		    f.name);
		await oneAudit(e, mark, boot, { action: 'source.create',
		    target: f.name }, `form creates ${f.name}`,
		    pemBody(pki.key));
		const v = (await source(k, adminKey, f.name)).json.data;
		assert.equal(v.kind, kind);
		assert.ok(v.signing_key_id, `${f.name}: a signing key ` +
		    JSON.stringify(v));
		await page.goto(`${k.url}/dashboard/sources/${f.name}`);
		assert.equal(await page.textContent(
		    '[data-field="private_key"] small.kid code'),
		    v.signing_key_id, `${f.name}: its key id shown`);
		assert.equal(await page.inputValue('[name="private_key"]'), '');
		assert.equal(await page.getAttribute('[name="private_key"]',
		    'placeholder'), 'a value is set — leave blank to keep it');
		const html = await page.content();
		assert.ok(pemBody(pki.key).every((l) => !html.includes(l)),
		    `${f.name}: no key in the page`);
		await page.goto(`${k.url}/dashboard/sources`);
	}
	let v = (await source(k, adminKey, 'fjb1')).json.data;
	assert.equal(v.signing_key_id, 'forms-kid-1');
	assert.equal(v.issuer, 'svc-forms');
	assert.equal(v.key_generate, null);
	v = (await source(k, adminKey, 'fjb2')).json.data;
	assert.equal(v.key_generate, 'ES256');
	v = (await source(k, adminKey, 'fpkj')).json.data;
	assert.equal(v.auth_method, 'private_key_jwt');

	/* the method shown; an edit keeps the key (blank, kid unchanged) */
	await page.goto(`${k.url}/dashboard/sources/fpkj`);
	assert.equal(await page.inputValue('[name="auth_method"]'),
	    'private_key_jwt');
	await page.goto(`${k.url}/dashboard/sources/fjb1`);
	assert.equal(await page.inputValue('[name="issuer"]'), 'svc-forms');
	const mark = await auditMark(e);
	await page.fill('[name="target_audience"]', 'https://aud.example');
	await page.click('form[data-mode="edit"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?saved=fjb1`);
	await oneAudit(e, mark, boot, { action: 'source.update',
	    target: 'fjb1', fields: ['target_audience'] }, 'form edits fjb1');
	v = (await source(k, adminKey, 'fjb1')).json.data;
	assert.equal(v.signing_key_id, 'forms-kid-1', 'the key is kept');
	assert.equal(v.target_audience, 'https://aud.example');

	assert.deepEqual(rec.leaks({ key: pemBody(pki.key) }), [],
	    'the key never reached the browser');
	assert.deepEqual(unexpected(w), [], 'no console errors');
	await ctx.close();
});

test('consent_sources_in_the_browser', { timeout: 60000 }, async () => {
	const { k, adminKey } = await env();
	const sc = { code: h.secret('fcode'), dev: h.secret('fdev'),
	    code2: h.secret('fcode2') };
	const up = 'http://127.0.0.1:9';

	const b = await d.launch();
	const ctx = await b.newContext({ viewport: { width: 1280,
	    height: 720 } });
	const page = await ctx.newPage();
	const rec = new d.Recorder();
	const w = d.watchPage(page, rec, k.url);
	await d.browserLogin(page, k, adminKey);
	await page.goto(`${k.url}/dashboard/sources`);

	/* a parameter kiln sets itself: the error at its field, nothing made */
	const code = { name: 'fcode', authorize_url: `${up}/auth`,
	    token_url: `${up}/token`, client_id: 'fcode-app',
	    client_secret: sc.code, scope: 'openid offline_access',
	    audience: 'https://api.example', resource: 'https://res.example',
	    revocation_url: `${up}/revoke`,
	    extra_authorize_params: '{"prompt":"consent","state":"x"}' };
	await submitSource(page, 'authorization_code', code);
	let fe = await page.waitForSelector(
	    '[data-field="extra_authorize_params"] .field-error');
	assert.match(await fe.textContent(),
	    /^extra_authorize_params: state is kiln's own parameter/);
	assert.equal(await page.$$eval('.field-error', (x) => x.length), 1);
	assert.equal(await page.getAttribute('[name="extra_authorize_params"]',
	    'aria-invalid'), 'true');
	assert.equal((await source(k, adminKey, 'fcode')).status, 404);
	/* a new one is "key" unless told */
	assert.equal(await page.inputValue(
	    'form[data-mode="create"] [name="access"]'), 'key');

	await page.fill('form[data-mode="create"] ' +
	    '[name="extra_authorize_params"]', '{"prompt":"consent"}');
	await page.click('form[data-mode="create"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?created=fcode`);
	let v = (await source(k, adminKey, 'fcode')).json.data;
	assert.equal(v.kind, 'authorization_code');
	assert.equal(v.authorize_url, `${up}/auth`);
	assert.equal(v.token_url, `${up}/token`);
	assert.equal(v.revocation_url, `${up}/revoke`);
	assert.equal(v.client_id, 'fcode-app');
	assert.equal(v.client_secret_set, true);
	assert.equal(v.auth_method, 'client_secret_post');
	assert.equal(v.scope, 'openid offline_access');
	assert.equal(v.audience, 'https://api.example');
	assert.equal(v.resource, 'https://res.example');
	assert.deepEqual(v.extra_authorize_params, { prompt: 'consent' });
	assert.equal(v.access, 'key');

	/* device_code: the device endpoint off the token URL's origin */
	const dev = { name: 'fdev', device_authorization_url:
	    'http://127.0.0.2:9/device', token_url: `${up}/token`,
	    client_id: 'fdev-app', client_secret: sc.dev,
	    auth_method: 'client_secret_basic', scope: 'offline_access' };
	await page.goto(`${k.url}/dashboard/sources`);
	await submitSource(page, 'device_code', dev);
	fe = await page.waitForSelector(
	    '[data-field="device_authorization_url"] .field-error');
	assert.match(await fe.textContent(),
	    /^device_authorization_url: must be on the origin of token_url/);
	assert.equal(await page.$$eval('.field-error', (x) => x.length), 1);
	assert.equal((await source(k, adminKey, 'fdev')).status, 404);
	await page.fill('form[data-mode="create"] ' +
	    '[name="device_authorization_url"]', `${up}/device`);
	await page.click('form[data-mode="create"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?created=fdev`);
	v = (await source(k, adminKey, 'fdev')).json.data;
	assert.equal(v.kind, 'device_code');
	assert.equal(v.device_authorization_url, `${up}/device`);
	assert.equal(v.token_url, `${up}/token`);
	assert.equal(v.client_id, 'fdev-app');
	assert.equal(v.client_secret_set, true);
	assert.equal(v.auth_method, 'client_secret_basic');
	assert.equal(v.scope, 'offline_access');
	assert.equal(v.access, 'key');

	/* edits: what is stored is shown, a blank secret is kept */
	await page.goto(`${k.url}/dashboard/sources/fcode`);
	assert.equal(await page.inputValue('[name="authorize_url"]'),
	    `${up}/auth`);
	assert.deepEqual(JSON.parse(await page.inputValue(
	    '[name="extra_authorize_params"]')), { prompt: 'consent' });
	assert.equal(await page.inputValue('[name="client_secret"]'), '');
	assert.equal(await page.getAttribute('[name="client_secret"]',
	    'placeholder'), 'a value is set — leave blank to keep it');
	await page.fill('[name="scope"]', 'openid');
	await page.fill('[name="extra_authorize_params"]',
	    '{"prompt":"login"}');
	await page.click('form[data-mode="edit"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?saved=fcode`);
	v = (await source(k, adminKey, 'fcode')).json.data;
	assert.equal(v.scope, 'openid');
	assert.deepEqual(v.extra_authorize_params, { prompt: 'login' });
	assert.equal(v.client_secret_set, true, 'the secret is kept');
	assert.equal(v.revocation_url, `${up}/revoke`);

	await page.goto(`${k.url}/dashboard/sources/fdev`);
	assert.equal(await page.inputValue(
	    '[name="device_authorization_url"]'), `${up}/device`);
	assert.equal(await page.inputValue('[name="auth_method"]'),
	    'client_secret_basic');
	await page.fill('[name="scope"]', 'offline_access openid');
	await page.click('form[data-mode="edit"] button.primary');
	await page.waitForURL(`${k.url}/dashboard/sources?saved=fdev`);
	v = (await source(k, adminKey, 'fdev')).json.data;
	assert.equal(v.scope, 'offline_access openid');
	assert.equal(v.client_secret_set, true, 'the secret is kept');
	assert.equal(v.auth_method, 'client_secret_basic');

	/* the token table filters by both kinds */
	await page.goto(`${k.url}/dashboard`);
	const kinds = await page.$$eval('select[name="kind"] option',
	    (o) => o.map((x) => x.textContent));
	assert.ok(kinds.includes('authorization_code') &&
	    kinds.includes('device_code'), `kind filter: ${kinds}`);

	/* without JavaScript: a refused form comes back, its JSON kept */
	const s = await d.httpLogin(k, adminKey);
	const form2 = { csrf: s.csrf, kind: 'authorization_code',
	    name: 'fcode2', authorize_url: `${up}/auth`,
	    token_url: `${up}/token`, client_id: 'fcode2-app',
	    client_secret: sc.code2, access: 'key',
	    extra_authorize_params: '{"code_challenge":"x"}' };
	let r = await postForm(k, '/dashboard/sources', s.cookie, form2);
	assert.equal(r.status, 422, r.text.slice(0, 300));
	assert.match(r.text, /<div class="field" data-field="extra_authorize_params">(?:(?!<\/div>).)*<p class="field-error" id="err-extra_authorize_params" role="alert">extra_authorize_params: code_challenge is kiln&#39;s own parameter/s);
	assert.equal(r.text.match(/role="alert"/g).length, 1,
	    'the error is shown once, at its field');
	assert.match(r.text, /data-type="json"[^>]*>\{&quot;code_challenge&quot;:&quot;x&quot;\}<\/textarea>/, 'the JSON typed is kept');
	assert.ok(!r.text.includes(sc.code2), 'the secret is not sent back');
	assert.equal((await source(k, adminKey, 'fcode2')).status, 404);
	r = await postForm(k, '/dashboard/sources', s.cookie, Object.assign(
	    {}, form2, { extra_authorize_params: 'prompt=none' }));
	assert.equal(r.status, 422, r.text.slice(0, 300));
	assert.match(r.text, /id="err-extra_authorize_params" role="alert">extra_authorize_params: must be an object/);
	r = await postForm(k, '/dashboard/sources', s.cookie, Object.assign(
	    {}, form2, { extra_authorize_params: '' }));
	assert.equal(r.status, 303, r.text.slice(0, 300));
	/* no-JS edit, secret left blank: kept */
	r = await postForm(k, '/dashboard/sources/fcode2', s.cookie, {
		csrf: s.csrf, kind: 'authorization_code', client_secret: '',
		scope: 'email' });
	assert.equal(r.status, 303, r.text.slice(0, 300));
	v = (await source(k, adminKey, 'fcode2')).json.data;
	assert.equal(v.scope, 'email');
	assert.equal(v.client_secret_set, true, 'the secret is kept');
	const ed = await k.get('/dashboard/sources/fcode2',
	    { headers: { Cookie: s.cookie } });
	assert.ok(!ed.text.includes(sc.code2), 'no secret in the edit page');

	for (const n of ['fcode', 'fdev', 'fcode2']) {
		r = await a.call(k, 'DELETE', `/api/tokens/${n}`,
		    { auth: adminKey });
		assert.equal(r.status, 200, `delete ${n}: ${r.text}`);
	}
	assert.deepEqual(rec.leaks({ code: sc.code, dev: sc.dev,
	    code2: sc.code2 }), [], 'no secret reached the browser');
	assert.deepEqual(unexpected(w), [], 'no console errors');
	await ctx.close();
});
