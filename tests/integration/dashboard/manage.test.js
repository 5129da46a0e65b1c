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
 *
 * Screenshots go to tests/browser/artifacts; KILN_SCREENSHOTS=1 writes
 * the committed ones in docs/screenshots instead.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
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
			const e = await a.adminKiln(pg, 'dash_manage', { idp });
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
		if (await page.$eval(el, (e) => e.tagName) === 'SELECT')
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
