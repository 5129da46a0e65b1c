'use strict';

/*
 * The audit log (issue 15, part 4): every admin action, over the API or
 * from the dashboard, leaves exactly one row in audit_events naming who
 * (key id, JWT subject, or the key/subject a dashboard session was made
 * from), what, the peer address and the request id; a change names the
 * fields it set, never their values. The row is written in the
 * transaction of the change: a change that fails leaves no row, and a
 * row that cannot be written undoes the change. A refused dashboard
 * login leaves a row (outcome "refused") without the credential; any
 * other failed action (4xx) leaves none. GET /api/audit is for admins,
 * paged and filtered; /dashboard/audit shows the same to admin sessions.
 * Nothing in the table, the API or the page holds a secret.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

let envP = null;
let ridN = 0;

/* One kiln for the file: the tests below follow on from each other. */
function env()
{
	if (envP === null) {
		envP = (async () => {
			const e = await a.adminKiln(pg, 'audit', {
			    sources: [{ name: 'alpha' }, { name: 'beta' }],
			    env: { KILN_RATE_ANONYMOUS: '100000' } });
			await h.waitToken(e.k, 'alpha');
			e.admin = await a.jwt('admin', { sub: 'ada' });
			/* every credential and secret, to scan for */
			e.seen = [];
			e.seen.push(e.adminKey, e.admin,
			    ...Object.values(e.secrets));
			const rows = await q(e, 'SELECT id FROM api_keys ' +
			    "WHERE name = 'bootstrap'");
			e.bootstrap = `key:${rows[0].id}`;
			return e;
		})();
	}
	return envP;
}

function q(e, sql)
{
	return e.db.pg.queryJson(sql, { db: e.db.name });
}

function ddl(e, sql)
{
	return e.db.pg.query(sql, { db: e.db.name });
}

function rid(what)
{
	return `audit-${what}-${process.pid}-${++ridN}`;
}

/* An admin call with its own request id; {r, rid}. */
async function act(e, method, path, { auth, body, what, headers } = {})
{
	const id = rid(what || 'act');
	const r = await a.call(e.k, method, path, { auth: auth === undefined ?
	    e.admin : auth, body, headers: Object.assign({ 'X-Request-Id':
	    id }, headers || {}) });
	assert.equal(r.headers['x-request-id'], id, 'request id kept');
	return { r, rid: id };
}

async function rowsOf(e, id)
{
	return q(e, 'SELECT id, principal_kind, principal, action, target, ' +
	    'fields, host(address) AS address, request_id, outcome ' +
	    `FROM audit_events WHERE request_id = '${id}' ORDER BY id`);
}

/* Exactly one row for request id, with the fields of want. */
async function oneRow(e, id, want, what)
{
	const rows = await rowsOf(e, id);
	assert.equal(rows.length, 1, `${what}: one audit row, got ` +
	    JSON.stringify(rows));
	const row = rows[0];
	assert.equal(row.address, '127.0.0.1', `${what}: address`);
	assert.equal(row.request_id, id, `${what}: request id`);
	for (const [k, v] of Object.entries(want)) {
		const got = k === 'fields' ? [...row.fields].sort() : row[k];
		assert.deepEqual(got, k === 'fields' ? [...v].sort() : v,
		    `${what}: ${k} of ${JSON.stringify(row)}`);
	}
	return row;
}

/* The login form's CSRF double submit, then the credential. */
async function login(e, credential, id)
{
	const f = await e.k.get('/dashboard/login');
	const lc = /kiln_login=([0-9a-f]+)/.exec(
	    String(f.headers['set-cookie']));
	const r = await e.k.post('/dashboard/login', `csrf=${lc[1]}&` +
	    `credential=${encodeURIComponent(credential)}`, { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${lc[1]}`,
		'X-Request-Id': id,
	    } });
	const sc = /kiln_session=([^;]+)/.exec(
	    String(r.headers['set-cookie'] || ''));
	if (r.status !== 303 || sc === null)
		return { r };
	const cookie = `kiln_session=${sc[1]}`;
	let page = null;
	for (let i = 0; i < 20; i++) {
		page = await e.k.get('/dashboard',
		    { headers: { Cookie: cookie } });
		if (page.status === 200)
			break;
		await h.sleep(100);
	}
	const csrf = /<meta name="csrf-token" content="([0-9a-f]+)">/
	    .exec(page.text)[1];
	e.seen.push(sc[1]);
	return { r, cookie, csrf, token: sc[1] };
}

test('each_admin_action_leaves_one_row_naming_who_where_and_which_request',
    { timeout: 90000 }, async () => {
	const e = await env();
	const jwtWho = { principal_kind: 'jwt', principal: 'jwt:ada' };
	const keyWho = { principal_kind: 'key', principal: e.bootstrap };

	/* A key, by a JWT: its id is the target; name and role the fields. */
	let { r, rid: id } = await act(e, 'POST', '/api/keys', { what: 'kc',
	    body: { name: 'ops', role: 'admin' } });
	assert.equal(r.status, 201, r.text);
	const opsKey = r.json.data;
	e.seen.push(opsKey.key);
	await oneRow(e, id, Object.assign({ action: 'key.create',
	    target: String(opsKey.id), fields: ['name', 'role'],
	    outcome: 'ok' }, jwtWho), 'key created');

	/* A source, by the bootstrap key: the names of what was given. */
	const gammaSecret = h.secret('gamma');
	e.seen.push(gammaSecret);
	await e.idp.control({ clients: [{ id: 'gamma', secret: gammaSecret,
	    grants: ['client_credentials'] }] });
	({ r, rid: id } = await act(e, 'POST', '/api/tokens', { what: 'sc',
	    auth: e.adminKey, body: { name: 'gamma', kind:
	    'client_credentials', token_url: e.idp.tokenUrl, client_id:
	    'gamma', client_secret: gammaSecret } }));
	assert.equal(r.status, 201, r.text);
	await oneRow(e, id, Object.assign({ action: 'source.create',
	    target: 'gamma', fields: ['name', 'kind', 'token_url',
	    'client_id', 'client_secret'] }, keyWho), 'source created');

	/* A change names the fields that changed, not those repeated. */
	const newSecret = h.secret('gamma2');
	e.seen.push(newSecret);
	await e.idp.control({ clients: [{ id: 'gamma', secret: newSecret,
	    grants: ['client_credentials'] }] });
	({ r, rid: id } = await act(e, 'PATCH', '/api/tokens/gamma',
	    { what: 'sp', body: { client_secret: newSecret, scope: 'read',
	    client_id: 'gamma' } }));
	assert.equal(r.status, 200, r.text);
	const patched = await oneRow(e, id, Object.assign({
	    action: 'source.update', target: 'gamma',
	    fields: ['client_secret', 'scope'] }, jwtWho), 'source changed');
	assert.ok(!JSON.stringify(patched).includes(newSecret),
	    'the new secret is not in the row');

	({ r, rid: id } = await act(e, 'POST', '/api/tokens/gamma/refresh',
	    { what: 'rf' }));
	assert.equal(r.status, 202, r.text);
	await oneRow(e, id, Object.assign({ action: 'source.refresh',
	    target: 'gamma', fields: [] }, jwtWho), 'refresh forced');

	({ r, rid: id } = await act(e, 'POST', '/api/prewarming/refresh',
	    { what: 'pr' }));
	assert.equal(r.status, 200, r.text);
	await oneRow(e, id, Object.assign({ action: 'prewarming.refresh',
	    target: null }, jwtWho), 'refresh of all forced');

	for (const [path, action, target] of [
	    ['/api/prewarming/stop?token=gamma', 'source.pause', 'gamma'],
	    ['/api/prewarming/start?token=gamma', 'source.resume', 'gamma'],
	    ['/api/prewarming/stop', 'prewarming.pause', null],
	    ['/api/prewarming/start', 'prewarming.resume', null]]) {
		({ r, rid: id } = await act(e, 'POST', path, { what: 'pp' }));
		assert.equal(r.status, 200, `${path}: ${r.text}`);
		await oneRow(e, id, Object.assign({ action, target }, jwtWho),
		    path);
	}

	({ r, rid: id } = await act(e, 'DELETE', '/api/tokens/gamma',
	    { what: 'sd' }));
	assert.equal(r.status, 200, r.text);
	await oneRow(e, id, Object.assign({ action: 'source.delete',
	    target: 'gamma' }, jwtWho), 'source deleted');

	/* The dashboard: a login by key, an action, a logout. */
	id = rid('login');
	const s = await login(e, opsKey.key, id);
	assert.equal(s.r.status, 303, s.r.text);
	const sessWho = { principal_kind: 'session',
	    principal: `key:${opsKey.id}` };
	await oneRow(e, id, { action: 'login', principal_kind: 'key',
	    principal: `key:${opsKey.id}`, outcome: 'ok' }, 'login');

	({ r, rid: id } = await act(e, 'POST',
	    '/api/prewarming/stop?token=beta', { what: 'dp', auth: null,
	    headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf } }));
	assert.equal(r.status, 200, r.text);
	await oneRow(e, id, Object.assign({ action: 'source.pause',
	    target: 'beta' }, sessWho), 'a session pauses');
	/* A plain form (no JavaScript) goes through the same handler. */
	id = rid('form');
	r = await e.k.post('/api/prewarming/start?token=beta',
	    `csrf=${s.csrf}`, { headers: { Cookie: s.cookie,
	    'Content-Type': 'application/x-www-form-urlencoded',
	    'X-Request-Id': id } });
	assert.equal(r.status, 303, r.text);
	await oneRow(e, id, Object.assign({ action: 'source.resume',
	    target: 'beta' }, sessWho), 'a session form resumes');

	id = rid('logout');
	r = await e.k.post('/dashboard/logout', `csrf=${s.csrf}`, { headers: {
	    Cookie: s.cookie, 'X-Request-Id': id,
	    'Content-Type': 'application/x-www-form-urlencoded' } });
	assert.equal(r.status, 303, r.text);
	await oneRow(e, id, Object.assign({ action: 'logout' }, sessWho),
	    'logout');

	/* A login by JWT names its subject. */
	const jwtCred = await a.jwt('viewer', { sub: 'vera' });
	e.seen.push(jwtCred);
	id = rid('jlogin');
	const js = await login(e, jwtCred, id);
	assert.equal(js.r.status, 303, js.r.text);
	await oneRow(e, id, { action: 'login', principal_kind: 'jwt',
	    principal: 'jwt:vera', outcome: 'ok' }, 'login by JWT');

	/* Refused logins leave a row: anonymous unless the credential
	 * was valid (here a client key, which may not sign in). */
	const bogus = `kiln_${crypto.randomBytes(32).toString('base64url')}`;
	e.seen.push(bogus);
	id = rid('refused');
	const bad = await login(e, bogus, id);
	assert.equal(bad.r.status, 401, bad.r.text);
	assert.match(bad.r.text, /not valid for the dashboard/);
	await oneRow(e, id, { action: 'login', principal_kind: 'anonymous',
	    principal: null, outcome: 'refused' }, 'refused login');

	({ r } = await act(e, 'POST', '/api/keys', { body: { name: 'cli',
	    role: 'client' } }));
	assert.equal(r.status, 201, r.text);
	e.seen.push(r.json.data.key);
	id = rid('refused2');
	const cl = await login(e, r.json.data.key, id);
	assert.equal(cl.r.status, 401, cl.r.text);
	await oneRow(e, id, { action: 'login', principal_kind: 'key',
	    principal: `key:${r.json.data.id}`, outcome: 'refused' },
	    'refused login of a client key');

	/* A webhook created and deleted: its id is the target; the
	 * secret is named, never written. */
	({ r, rid: id } = await act(e, 'POST', '/api/webhooks',
	    { what: 'wc', auth: e.adminKey, body: { url:
	    'http://127.0.0.1:9/hook', events: ['token.failing'],
	    secret: 'audit-webhook-secret-0123456789' } }));
	assert.equal(r.status, 201, r.text);
	const hook = r.json.data.id;
	await oneRow(e, id, Object.assign({ action: 'webhook.create',
	    target: String(hook), fields: ['url', 'events', 'secret'] },
	    keyWho), 'webhook created');
	({ r, rid: id } = await act(e, 'DELETE', `/api/webhooks/${hook}`,
	    { what: 'wd', auth: e.adminKey }));
	assert.equal(r.status, 200, r.text);
	await oneRow(e, id, Object.assign({ action: 'webhook.delete',
	    target: String(hook), fields: [] }, keyWho), 'webhook deleted');
	r = (await q(e, 'SELECT count(*)::int AS n FROM audit_events ' +
	    "WHERE fields::text LIKE '%audit-webhook-secret%'"))[0];
	assert.equal(r.n, 0, 'no webhook secret in the audit table');

	/* Revoking a key, last: its id is the target. */
	({ r, rid: id } = await act(e, 'DELETE', `/api/keys/${opsKey.id}`,
	    { what: 'kr', auth: e.adminKey }));
	assert.equal(r.status, 200, r.text);
	await oneRow(e, id, Object.assign({ action: 'key.revoke',
	    target: String(opsKey.id), fields: [] }, keyWho), 'key revoked');
});

test('a_failed_action_leaves_no_row', { timeout: 60000 }, async () => {
	const e = await env();
	const before = (await q(e, 'SELECT count(*)::int AS n ' +
	    'FROM audit_events'))[0].n;
	const viewer = await a.jwt('viewer');
	const operator = await a.jwt('operator');
	const cases = [
		['POST', '/api/tokens', { body: '{"name":', headers:
		    { 'Content-Type': 'application/json' } }, 400],
		['POST', '/api/tokens', { body: { name: 'x', kind: 'nope' } },
		    422],
		['POST', '/api/tokens', { body: { name: 'alpha', kind:
		    'client_credentials', token_url: e.idp.tokenUrl,
		    client_id: 'a', client_secret: 'b' } }, 409],
		['PATCH', '/api/tokens/alpha', { body: { refresh_buffer:
		    'soon' } }, 422],
		['PATCH', '/api/tokens/nosuch', { body: { scope: 'x' } }, 404],
		['DELETE', '/api/tokens/nosuch', {}, 404],
		['POST', '/api/tokens/nosuch/refresh', {}, 404],
		['POST', '/api/prewarming/stop?token=nosuch', {}, 404],
		['POST', '/api/keys', { body: { name: 'x', role: 'god' } },
		    422],
		['DELETE', '/api/keys/999999', {}, 404],
		['DELETE', '/api/tokens/alpha', { auth: viewer }, 403],
		['POST', '/api/keys', { auth: operator, body: { name: 'x',
		    role: 'viewer' } }, 403],
		['DELETE', '/api/tokens/alpha', { auth: null }, 401],
	];
	for (const [method, path, o, status] of cases) {
		const { r, rid: id } = await act(e, method, path,
		    Object.assign({ what: 'fail' }, o));
		assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
		assert.deepEqual(await rowsOf(e, id), [],
		    `${method} ${path} (${status}) left no row`);
	}
	const after = (await q(e, 'SELECT count(*)::int AS n ' +
	    'FROM audit_events'))[0].n;
	assert.equal(after, before, 'no row at all');
});

test('a_change_and_its_audit_row_commit_together', { timeout: 60000 },
    async () => {
	const e = await env();

	/* The change fails in SQL (a constraint kiln does not check):
	 * neither the change nor a row. */
	await ddl(e, 'ALTER TABLE token_sources ADD CONSTRAINT audit_t ' +
	    "CHECK (scope IS DISTINCT FROM 'forbidden')");
	let { r, rid: id } = await act(e, 'PATCH', '/api/tokens/alpha',
	    { what: 'atom1', body: { scope: 'forbidden' } });
	await ddl(e, 'ALTER TABLE token_sources DROP CONSTRAINT audit_t');
	assert.equal(r.status, 503, r.text);
	assert.deepEqual(await rowsOf(e, id), [], 'no row for a failed change');
	let src = await q(e, "SELECT scope FROM token_sources " +
	    "WHERE name = 'alpha'");
	assert.equal(src[0].scope, null, 'the scope is unchanged');

	/* The row cannot be written (a constraint on new rows only): the
	 * change is undone with it. */
	await ddl(e, 'ALTER TABLE audit_events ADD CONSTRAINT audit_t ' +
	    "CHECK (action <> 'source.delete') NOT VALID");
	({ r, rid: id } = await act(e, 'DELETE', '/api/tokens/alpha',
	    { what: 'atom2' }));
	await ddl(e, 'ALTER TABLE audit_events DROP CONSTRAINT audit_t');
	assert.equal(r.status, 503, r.text);
	src = await q(e, "SELECT name FROM token_sources WHERE name = 'alpha'");
	assert.equal(src.length, 1, 'alpha is still there');
	assert.deepEqual(await rowsOf(e, id), [], 'and no row');

	/* Likewise a key whose row cannot be written is not created. */
	await ddl(e, 'ALTER TABLE audit_events ADD CONSTRAINT audit_t ' +
	    "CHECK (action <> 'key.create') NOT VALID");
	({ r } = await act(e, 'POST', '/api/keys', { what: 'atom3',
	    body: { name: 'never', role: 'viewer' } }));
	await ddl(e, 'ALTER TABLE audit_events DROP CONSTRAINT audit_t');
	assert.equal(r.status, 503, r.text);
	const keys = await q(e, "SELECT id FROM api_keys WHERE name = 'never'");
	assert.equal(keys.length, 0, 'no key without its row');

	/* And a forced refresh whose row cannot be written is not started. */
	const gen = (await q(e, 'SELECT t.generation FROM tokens t JOIN ' +
	    "token_sources s ON s.id = t.source_id WHERE s.name = 'beta'"))[0]
	    .generation;
	await ddl(e, 'ALTER TABLE audit_events ADD CONSTRAINT audit_t ' +
	    "CHECK (action <> 'source.refresh') NOT VALID");
	({ r } = await act(e, 'POST', '/api/tokens/beta/refresh',
	    { what: 'atom4' }));
	await ddl(e, 'ALTER TABLE audit_events DROP CONSTRAINT audit_t');
	assert.equal(r.status, 503, r.text);
	await h.sleep(500);
	const gen2 = (await q(e, 'SELECT t.generation FROM tokens t JOIN ' +
	    "token_sources s ON s.id = t.source_id WHERE s.name = 'beta'"))[0]
	    .generation;
	assert.equal(gen2, gen, 'no refresh without its row');
});

test('get_api_audit_is_for_admins_paged_and_filtered', { timeout: 60000 },
    async () => {
	const e = await env();

	let r = await a.call(e.k, 'GET', '/api/audit');
	a.assertError(r, 401, 'no credential');
	r = await a.call(e.k, 'GET', '/api/audit',
	    { auth: await a.jwt('viewer') });
	a.assertError(r, 403, 'viewer');
	r = await a.call(e.k, 'GET', '/api/audit',
	    { auth: await a.jwt('operator') });
	a.assertError(r, 403, 'operator');

	const all = await q(e, 'SELECT id FROM audit_events ORDER BY id DESC');
	assert.ok(all.length >= 10, `rows to page through: ${all.length}`);

	/* Pages of 3, newest first, until next_before is null. */
	const got = [];
	let before = null;
	for (let i = 0; i < 100; i++) {
		r = await a.call(e.k, 'GET', '/api/audit?limit=3' +
		    (before ? `&before=${before}` : ''), { auth: e.admin });
		assert.equal(r.status, 200, r.text);
		const ev = r.json.data.events;
		assert.ok(ev.length <= 3, 'at most limit');
		got.push(...ev.map((x) => x.id));
		before = r.json.data.next_before;
		if (before === null)
			break;
		assert.equal(before, ev[ev.length - 1].id, 'next_before');
	}
	/* The listing after the last test's rows is the table. */
	const now = await q(e, 'SELECT id FROM audit_events ORDER BY id DESC');
	assert.deepEqual(got, now.map((x) => Number(x.id)),
	    'the pages are the table, newest first, once each');

	/* The row's shape. */
	r = await a.call(e.k, 'GET', '/api/audit?limit=1&action=key.revoke',
	    { auth: e.admin });
	assert.equal(r.status, 200, r.text);
	const ev = r.json.data.events[0];
	assert.deepEqual(Object.keys(ev), ['id', 'at', 'principal_kind',
	    'principal', 'action', 'target', 'fields', 'address',
	    'request_id', 'outcome']);
	assert.match(ev.at, h.ISO_Z);
	assert.equal(ev.principal, e.bootstrap);
	assert.equal(ev.address, '127.0.0.1');
	assert.deepEqual(ev.fields, []);

	/* Filters, each and together. */
	const filtered = async (qs) => {
		const x = await a.call(e.k, 'GET', `/api/audit?limit=500&${qs}`,
		    { auth: e.admin });
		assert.equal(x.status, 200, `${qs}: ${x.text}`);
		return x.json.data.events;
	};
	let list = await filtered('action=source.pause');
	assert.ok(list.length >= 2, 'source.pause rows');
	assert.ok(list.every((x) => x.action === 'source.pause'));
	list = await filtered(`principal=${encodeURIComponent('jwt:ada')}`);
	assert.ok(list.length >= 8 && list.every((x) =>
	    x.principal === 'jwt:ada'), 'by principal');
	list = await filtered('target=gamma&action=source.update');
	assert.equal(list.length, 1, 'by target and action');
	assert.deepEqual([...list[0].fields].sort(),
	    ['client_secret', 'scope']);
	list = await filtered('principal=jwt%3Aada&target=beta');
	assert.deepEqual(list, [], 'nothing of ada on beta');

	const rows = await q(e, 'SELECT id, at FROM audit_events ' +
	    'ORDER BY id');
	const mid = rows[Math.floor(rows.length / 2)];
	const midAt = new Date(mid.at).toISOString();
	const since = await filtered(`since=${encodeURIComponent(midAt)}`);
	const until = await filtered(`until=${encodeURIComponent(midAt)}`);
	assert.ok(since.length > 0 && until.length > 0, 'both sides');
	assert.equal(since.length + until.length, rows.length,
	    'since and until split the log');
	assert.ok(since.every((x) => x.at >= midAt.slice(0, 19)));
	list = await filtered('since=2999-01-01T00:00:00Z');
	assert.deepEqual(list, [], 'nothing from the future');

	for (const bad of ['limit=0', 'limit=501', 'limit=ten', 'before=-1',
	    'before=1x', 'since=yesterday', 'until=2024-13-01T00:00:00Z',
	    'colour=red', 'action=%01', 'principal=%zz', 'noequals',
	    `target=${'x'.repeat(200)}`]) {
		r = await a.call(e.k, 'GET', `/api/audit?${bad}`,
		    { auth: e.admin });
		a.assertError(r, 400, bad, { code: 'bad_request' });
	}
});

test('the_dashboard_audit_page_is_for_admin_sessions', { timeout: 60000 },
    async () => {
	const e = await env();
	let r = await e.k.get('/dashboard/audit');
	assert.equal(r.status, 303, 'no session: to the login form');
	assert.equal(r.headers.location, '/dashboard/login');

	const viewer = await login(e, await a.jwt('viewer'), rid('vl'));
	r = await e.k.get('/dashboard/audit', { headers:
	    { Cookie: viewer.cookie } });
	assert.equal(r.status, 403, 'a viewer session may not read it');

	const s = await login(e, e.adminKey, rid('al'));
	r = await e.k.get('/dashboard/audit?limit=2', { headers:
	    { Cookie: s.cookie } });
	assert.equal(r.status, 200, r.text);
	assert.match(String(r.headers['content-security-policy']),
	    /script-src 'self'/);
	const newest = await q(e, 'SELECT id, action FROM audit_events ' +
	    'ORDER BY id DESC LIMIT 3');
	const ids = [...r.text.matchAll(/<tr><td>(\d+)<\/td>/g)]
	    .map((m) => Number(m[1]));
	assert.deepEqual(ids, newest.slice(0, 2).map((x) => Number(x.id)),
	    'the newest two');
	const older = /href="(\/dashboard\/audit\?limit=2&amp;before=(\d+))"/
	    .exec(r.text);
	assert.ok(older, 'a link to older rows');
	r = await e.k.get(older[1].replace(/&amp;/g, '&'), { headers:
	    { Cookie: s.cookie } });
	assert.equal(r.status, 200);
	assert.match(r.text, new RegExp(`<tr><td>${newest[2].id}</td>`),
	    'the next page starts after the first');

	r = await e.k.get('/dashboard/audit?action=source.update&' +
	    'principal=jwt%3Aada', { headers: { Cookie: s.cookie } });
	assert.equal(r.status, 200);
	const acts = [...r.text.matchAll(new RegExp('<tr><td>\\d+</td>' +
	    '<td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>', 'g'))]
	    .map((m) => m[1]);
	assert.ok(acts.length >= 1 && acts.every((x) => x === 'source.update'),
	    `filtered rows: ${acts}`);
	assert.match(r.text, /name="principal" value="jwt:ada"/,
	    'the filter form keeps its values');

	r = await e.k.get('/dashboard/audit?limit=nope', { headers:
	    { Cookie: s.cookie } });
	assert.equal(r.status, 400);
});

test('no_secret_in_the_audit_table_api_or_page', { timeout: 60000 },
    async () => {
	const e = await env();
	const tok = await e.k.get('/api/tokens/beta/current-token');
	assert.equal(tok.status, 200, tok.text);
	e.seen.push(tok.json.token);
	const tokA = await e.k.get('/api/tokens/alpha/current-token');
	e.seen.push(tokA.json.token);

	const table = JSON.stringify(await q(e, 'SELECT * FROM audit_events'));
	const api = [];
	let before = null;
	do {
		const r = await a.call(e.k, 'GET', '/api/audit?limit=500' +
		    (before ? `&before=${before}` : ''), { auth: e.admin });
		api.push(r.text);
		before = r.json.data.next_before;
	} while (before !== null);
	const s = await login(e, e.adminKey, rid('scan'));
	const page = (await e.k.get('/dashboard/audit?limit=500', { headers:
	    { Cookie: s.cookie } })).text;

	const secrets = e.seen.filter((x) => typeof x === 'string' &&
	    x.length >= 16);
	assert.ok(secrets.length >= 12,
	    `secrets to look for: ${secrets.length}`);
	for (const [what, text] of [['table', table], ['api', api.join('')],
	    ['page', page]]) {
		assert.ok(text.length > 500, `${what}: something to scan`);
		for (const x of secrets) {
			assert.ok(!text.includes(x), `${what} holds a secret ` +
			    `(${x.slice(0, 8)}…)`);
			/* the JWT's signature, or a key without its prefix */
			const tail = x.slice(-20);
			assert.ok(!text.includes(tail), `${what} holds the ` +
			    `end of a secret (${x.slice(0, 8)}…)`);
		}
	}
});
