'use strict';

/*
 * Token source management over the admin API (issue 3, "Token source
 * management"): create (201, 409 when the name exists), get, list
 * (secrets are write-only: only *_set booleans come back), patch (a
 * change of upstream settings refreshes at once; a bad value is 422 and
 * changes nothing), delete (404 after), and paged refresh history.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

async function kiln(label, o = {})
{
	const env = await a.adminKiln(pg, label, Object.assign({
		sources: [{ name: 'alpha' }],
	}, o));
	await h.waitToken(env.k, 'alpha');
	env.admin = await a.jwt('admin');
	return env;
}

function api(env, method, path, body)
{
	return a.call(env.k, method, path, { auth: env.admin, body });
}

async function generation(env, name)
{
	const r = await api(env, 'GET', `/api/tokens/${name}`);
	assert.equal(r.status, 200, r.text);
	return r.json.data.state.generation;
}

async function sourceRow(env, name)
{
	const rows = await env.db.pg.queryJson('SELECT s.*, t.generation, ' +
	    't.fingerprint, t.next_attempt_at, t.failures FROM token_sources s ' +
	    `JOIN tokens t ON t.source_id = s.id WHERE s.name = '${name}'`,
	    { db: env.db.name });
	return rows[0];
}

const VIEW_KEYS = ['name', 'kind', 'token_url', 'client_id',
	'client_secret_set', 'auth_method', 'scope', 'audience', 'resource',
	'refresh_token_set', 'username', 'password_set', 'token_path',
	'expires_at_path', 'expires_in_path', 'refresh_buffer',
	'fallback_lifetime', 'access', 'require_header', 'enabled', 'paused',
	'created_at', 'updated_at', 'state'];
const STATE_KEYS = ['status', 'has_token', 'valid', 'fingerprint',
	'generation', 'obtained_at', 'expires_at', 'refresh_at',
	'next_attempt_at', 'failures', 'last_error', 'last_duration_ms'];

function assertView(v, what)
{
	for (const key of VIEW_KEYS)
		assert.ok(key in v, `${what}: ${key}`);
	for (const key of STATE_KEYS)
		assert.ok(key in v.state, `${what}: state.${key}`);
	for (const key of ['client_secret', 'refresh_token', 'password',
	    'token', 'access_token', 'client_secret_sealed'])
		assert.ok(!(key in v) && !(key in v.state),
		    `${what}: no ${key} field`);
	assert.match(v.created_at, h.ISO_Z);
	assert.match(v.updated_at, h.ISO_Z);
}

test('create_201_and_409_when_the_name_exists', { timeout: 60000 },
    async () => {
	const env = await kiln('crud_create');
	const { k, idp } = env;
	const secret = h.secret('gamma');
	await idp.control({ clients: [{ id: 'gamma', secret,
	    grants: ['client_credentials'] }] });

	const body = {
		name: 'gamma',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'gamma',
		client_secret: secret,
		scope: 'read write',
		refresh_buffer: 60,
	};
	let r = await api(env, 'POST', '/api/tokens', body);
	assert.equal(r.status, 201, r.text);
	assert.equal(r.json.success, true);
	const v = r.json.data;
	assertView(v, 'created');
	assert.equal(v.name, 'gamma');
	assert.equal(v.kind, 'client_credentials');
	assert.equal(v.token_url, idp.tokenUrl);
	assert.equal(v.client_id, 'gamma');
	assert.equal(v.client_secret_set, true);
	assert.equal(v.scope, 'read write');
	assert.equal(v.refresh_buffer, 60);
	assert.equal(v.auth_method, 'client_secret_post', 'default');
	assert.equal(v.fallback_lifetime, 900, 'default');
	assert.equal(v.enabled, true, 'default');
	assert.ok(!r.text.includes(secret), 'no secret in the answer');

	/* It is fetched at once and served. */
	const t = await h.waitToken(k, 'gamma', { timeout: 10000 });
	h.assertTokenBody(t, 'gamma');
	r = await api(env, 'GET', '/api/tokens/gamma');
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.state.has_token, true);
	assert.equal(r.json.data.state.valid, true);
	assert.equal(r.json.data.state.generation, 1);
	assert.equal(r.json.data.state.fingerprint,
	    h.fingerprint(t.json.token), 'fingerprint of the served token');

	/* The same name again: 409, and the first one is untouched. */
	const before = await sourceRow(env, 'gamma');
	r = await api(env, 'POST', '/api/tokens', Object.assign({}, body,
	    { client_id: 'someone-else', client_secret: 'other' }));
	a.assertError(r, 409, 'create twice', { code: 'conflict' });
	assert.deepEqual(await sourceRow(env, 'gamma'), before,
	    'the 409 changed nothing');
	/* Also for a source that came from the sources file. */
	r = await api(env, 'POST', '/api/tokens', Object.assign({}, body,
	    { name: 'alpha' }));
	a.assertError(r, 409, 'create alpha', { code: 'conflict' });
});

test('get_and_list_never_return_secrets', { timeout: 60000 }, async () => {
	const env = await kiln('crud_secrets');
	const { k, idp } = env;
	const secrets = {
		cc: h.secret('cc-secret'),
		rt: h.secret('rt-refresh'),
		pw: h.secret('pw-password'),
		pwc: h.secret('pw-client'),
	};
	await idp.control({
		clients: [{ id: 'cc', secret: secrets.cc,
		    grants: ['client_credentials'] },
		    { id: 'pwc', secret: secrets.pwc,
		    grants: ['password', 'refresh_token'] }],
		users: [{ username: 'bob', password: secrets.pw }],
		seed_refresh: [{ client_id: 'pwc', refresh_token: secrets.rt }],
	});
	const made = [
		{ name: 'cc', kind: 'client_credentials', token_url: idp.tokenUrl,
		    client_id: 'cc', client_secret: secrets.cc },
		{ name: 'rt', kind: 'refresh_token', token_url: idp.tokenUrl,
		    client_id: 'pwc', client_secret: secrets.pwc,
		    refresh_token: secrets.rt },
		{ name: 'pw', kind: 'password', token_url: idp.tokenUrl,
		    client_id: 'pwc', client_secret: secrets.pwc,
		    username: 'bob', password: secrets.pw },
	];
	for (const s of made) {
		const r = await api(env, 'POST', '/api/tokens', s);
		assert.equal(r.status, 201, `${s.name}: ${r.text}`);
	}
	const served = [];
	for (const s of ['alpha', 'cc', 'rt', 'pw']) {
		const t = await h.waitToken(k, s, { timeout: 10000 });
		served.push(t.json.token);
	}
	const all = [...Object.values(secrets), env.secrets.alpha, ...served];

	const list = await api(env, 'GET', '/api/tokens');
	assert.equal(list.status, 200, list.text);
	assert.equal(list.json.success, true);
	const views = list.json.data;
	assert.deepEqual(views.map((v) => v.name).sort(),
	    ['alpha', 'cc', 'pw', 'rt']);
	const texts = [list.text];
	for (const v of views) {
		assertView(v, `list ${v.name}`);
		const one = await api(env, 'GET', `/api/tokens/${v.name}`);
		assert.equal(one.status, 200, one.text);
		assertView(one.json.data, `get ${v.name}`);
		texts.push(one.text);
	}
	const ev = await api(env, 'GET', '/api/tokens/rt/events');
	texts.push(ev.text);
	for (const text of texts) {
		for (const s of all) {
			assert.ok(!text.includes(s), 'a secret or token in an ' +
			    `admin answer: ${s.slice(0, 8)}...`);
		}
	}
	const by = Object.fromEntries(views.map((v) => [v.name, v]));
	assert.deepEqual([by.cc.client_secret_set, by.cc.refresh_token_set,
	    by.cc.password_set], [true, false, false], 'cc *_set');
	assert.deepEqual([by.rt.client_secret_set, by.rt.refresh_token_set,
	    by.rt.password_set], [true, true, false], 'rt *_set');
	assert.deepEqual([by.pw.client_secret_set, by.pw.refresh_token_set,
	    by.pw.password_set], [true, false, true], 'pw *_set');
	assert.equal(by.pw.username, 'bob', 'the username is not a secret');
});

test('patch_upstream_change_refreshes_at_once_bad_value_changes_nothing',
    { timeout: 60000 }, async () => {
	/* Long lifetime: no scheduled refresh during the test. */
	const env = await kiln('crud_patch', { lifetime: 3600 });
	const { k, idp } = env;
	const secret = env.secrets.alpha;
	const idp2 = await h.startOAuth(['--lifetime', '3600', '--client',
	    `alpha:${secret}:client_credentials`]);
	assert.equal(await generation(env, 'alpha'), 1);

	/* token_url: a new generation from the new upstream, at once
	 * (another origin: the secret comes along, admin/secrets.test.js). */
	const t0 = Date.now();
	let r = await api(env, 'PATCH', '/api/tokens/alpha',
	    { token_url: idp2.tokenUrl, client_secret: secret });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.token_url, idp2.tokenUrl);
	await h.waitFor(async () => await generation(env, 'alpha') === 2,
	    { timeout: 5000, interval: 50, what: 'generation 2' });
	const dt = Date.now() - t0;
	assert.ok(dt < 5000, `refreshed ${dt} ms after the PATCH`);
	const s2 = await idp2.stats();
	assert.equal(s2.token_requests, 1, 'one request to the new upstream');
	let t = await h.waitToken(k, 'alpha');
	assert.ok(s2.issued_access_tokens.includes(t.json.token),
	    'the served token is from the new upstream');

	/* client_secret: rotated at the upstream, then patched. */
	const secret2 = h.secret('alpha-2');
	await idp2.control({ clients: [{ id: 'alpha', secret: secret2,
	    grants: ['client_credentials'] }] });
	r = await api(env, 'PATCH', '/api/tokens/alpha',
	    { client_secret: secret2 });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.client_secret_set, true);
	assert.ok(!r.text.includes(secret2), 'no secret in the answer');
	await h.waitFor(async () => await generation(env, 'alpha') === 3,
	    { timeout: 5000, interval: 50, what: 'generation 3' });
	t = await h.waitToken(k, 'alpha');
	assert.ok((await idp2.stats()).issued_access_tokens
	    .includes(t.json.token), 'token obtained with the new secret');

	/* Bad values: 422 naming the field; nothing changes, no refresh. */
	const before = await sourceRow(env, 'alpha');
	const calls = (await idp.stats()).token_requests +
	    (await idp2.stats()).token_requests;
	const bad = [
		[{ token_url: 'ftp://127.0.0.1/token' }, 'token_url'],
		[{ token_url: idp.tokenUrl, client_secret: '' },
		    'client_secret'],
		[{ client_secret: 'new-secret', refresh_buffer: -5 },
		    'refresh_buffer'],
		[{ scope: 7 }, 'scope'],
		[{ kind: 'password' }, 'kind'],
		[{ name: 'renamed' }, 'name'],
		[{ enabled: 'no' }, 'enabled'],
		[{ token_url: idp.tokenUrl, surprise: true }, 'surprise'],
		[{ auth_method: 'client_secret_jwt' }, 'auth_method'],
	];
	for (const [b, field] of bad) {
		r = await api(env, 'PATCH', '/api/tokens/alpha', b);
		a.assertError(r, 422, `PATCH ${JSON.stringify(b)}`,
		    { code: 'invalid_field', field: `${field}:` });
	}
	await h.sleep(1500);
	assert.deepEqual(await sourceRow(env, 'alpha'), before,
	    'the rejected PATCHes changed nothing');
	assert.equal((await idp.stats()).token_requests +
	    (await idp2.stats()).token_requests, calls,
	    'no upstream call after a rejected PATCH');
	/* PATCH of an unknown source: 404. */
	a.assertError(await api(env, 'PATCH', '/api/tokens/nope',
	    { scope: 'x' }), 404, 'PATCH unknown');

	/* A wrong secret: the attempt fails, the event says why without the
	 * secret, the old token keeps being served. */
	const wrong = h.secret('wrong');
	r = await api(env, 'PATCH', '/api/tokens/alpha',
	    { client_secret: wrong });
	assert.equal(r.status, 200, r.text);
	const ev = await h.waitFor(async () => {
		const e = await api(env, 'GET', '/api/tokens/alpha/events');
		const f = e.json.data.events.find((x) => x.outcome === 'failure');
		return f ? e : false;
	}, { timeout: 5000, interval: 100, what: 'a failure event' });
	const f = ev.json.data.events.find((x) => x.outcome === 'failure');
	/* RFC 6749: 400 invalid_client (401 with Basic auth). */
	assert.ok([400, 401].includes(f.http_status),
	    `failure event ${JSON.stringify(f)}`);
	assert.match(String(f.error), /invalid_client/);
	assert.equal(typeof f.error, 'string');
	assert.ok(!ev.text.includes(wrong) && !ev.text.includes(secret2),
	    'no secret in the events');
	const g = await api(env, 'GET', '/api/tokens/alpha');
	assert.equal(g.json.data.state.failures >= 1, true);
	assert.equal(typeof g.json.data.state.last_error, 'string');
	assert.ok(!g.text.includes(wrong), 'no secret in last_error');
	h.assertTokenBody(await k.currentToken('alpha'), 'alpha');
});

test('delete_then_404', { timeout: 60000 }, async () => {
	const env = await kiln('crud_delete', { sources: [{ name: 'alpha' },
	    { name: 'beta' }] });
	const { k, db } = env;
	await h.waitToken(k, 'beta');

	let r = await api(env, 'DELETE', '/api/tokens/beta');
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.success, true);
	assert.equal(typeof r.json.message, 'string');

	a.assertError(await api(env, 'GET', '/api/tokens/beta'), 404,
	    'GET after DELETE', { code: 'not_found' });
	a.assertError(await api(env, 'DELETE', '/api/tokens/beta'), 404,
	    'DELETE twice', { code: 'not_found' });
	a.assertError(await api(env, 'GET', '/api/tokens/beta/events'), 404,
	    'events after DELETE');
	a.assertError(await api(env, 'POST', '/api/tokens/beta/refresh'), 404,
	    'refresh after DELETE');
	a.assertError(await api(env, 'PATCH', '/api/tokens/beta',
	    { scope: 'x' }), 404, 'PATCH after DELETE');
	/* Every worker stops serving it at once. */
	await h.waitFor(async () => (await k.currentToken('beta')).status ===
	    404, { timeout: 1000, interval: 20, what: 'current-token 404' });
	r = await api(env, 'GET', '/api/tokens');
	assert.deepEqual(r.json.data.map((v) => v.name), ['alpha']);
	const st = await a.call(k, 'GET', '/api/prewarming/status',
	    { auth: env.admin });
	assert.deepEqual(st.json.data.tokens.map((x) => x.name), ['alpha']);
	/* Its rows are gone. */
	const left = await db.pg.queryJson('SELECT count(*)::int AS n FROM ' +
	    'token_sources s WHERE name = \'beta\'', { db: db.name });
	assert.equal(left[0].n, 0);
	const orphans = await db.pg.queryJson('SELECT ' +
	    '(SELECT count(*)::int FROM tokens WHERE source_id NOT IN ' +
	    '(SELECT id FROM token_sources)) AS t, ' +
	    '(SELECT count(*)::int FROM refresh_events WHERE source_id ' +
	    'NOT IN (SELECT id FROM token_sources)) AS e', { db: db.name });
	assert.deepEqual(orphans[0], { t: 0, e: 0 }, 'no orphan rows');
	/* alpha is untouched; the name can be used again. */
	h.assertTokenBody(await k.currentToken('alpha'), 'alpha');
	r = await api(env, 'POST', '/api/tokens', Object.assign({},
	    env.sources.find((s) => s.name === 'beta')));
	assert.equal(r.status, 201, r.text);
	assert.equal(r.json.data.state.generation, 0, 'a fresh source');
	await h.waitToken(k, 'beta');
});

test('events_paging_with_limit_and_before', { timeout: 60000 },
    async () => {
	const env = await kiln('crud_events', { lifetime: 3600 });
	const { db } = env;

	/* Six forced refreshes after the first: seven events. */
	for (let g = 2; g <= 7; g++) {
		const r = await api(env, 'POST', '/api/tokens/alpha/refresh');
		assert.equal(r.status, 202, r.text);
		assert.deepEqual(r.json, { success: true,
		    message: 'Token refresh initiated' });
		await h.waitFor(async () => await generation(env, 'alpha') ===
		    g, { timeout: 5000, interval: 30, what: `generation ${g}` });
	}
	const rows = await db.pg.queryJson('SELECT e.id FROM refresh_events ' +
	    'e JOIN token_sources s ON s.id = e.source_id WHERE s.name = ' +
	    '\'alpha\' ORDER BY e.id DESC', { db: db.name });
	const ids = rows.map((x) => Number(x.id));
	assert.equal(ids.length, 7, 'seven events');

	/* Default: all of them, newest first. */
	let r = await api(env, 'GET', '/api/tokens/alpha/events');
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.success, true);
	assert.deepEqual(r.json.data.events.map((e) => e.id), ids);
	for (const e of r.json.data.events) {
		assert.equal(typeof e.trigger, 'string');
		assert.match(e.started_at, h.ISO_Z);
		assert.match(e.finished_at, h.ISO_Z);
		assert.ok(h.parseIso(e.finished_at) >= h.parseIso(e.started_at));
		assert.equal(e.outcome, 'success');
		assert.ok(Number.isInteger(e.duration_ms) && e.duration_ms >= 0);
		assert.equal(e.http_status, 200);
		assert.equal(e.error, null);
		assert.ok(Number.isInteger(e.generation));
		assert.match(e.fingerprint, /^[0-9a-f]{12}$/);
	}
	assert.deepEqual(r.json.data.events.map((e) => e.generation),
	    [7, 6, 5, 4, 3, 2, 1]);
	assert.deepEqual(r.json.data.events.map((e) => e.trigger),
	    ['admin', 'admin', 'admin', 'admin', 'admin', 'admin', 'schedule']);

	/* Pages of 3 via next_before. */
	const seen = [];
	let before = null;
	const pages = [];
	for (;;) {
		const q = `?limit=3${before === null ? '' : `&before=${before}`}`;
		r = await api(env, 'GET', `/api/tokens/alpha/events${q}`);
		assert.equal(r.status, 200, r.text);
		const evs = r.json.data.events;
		pages.push(evs.length);
		if (evs.length === 0) {
			assert.equal(r.json.data.next_before, null,
			    'next_before null on the empty page');
			break;
		}
		assert.ok(evs.length <= 3);
		assert.equal(r.json.data.next_before, evs[evs.length - 1].id,
		    'next_before is the last id of the page');
		seen.push(...evs.map((e) => e.id));
		before = r.json.data.next_before;
		assert.ok(pages.length < 10, 'paging ends');
	}
	assert.deepEqual(pages, [3, 3, 1, 0]);
	assert.deepEqual(seen, ids, 'the pages hold every event once, in order');

	/* before alone; limit 1; before the oldest: empty. */
	r = await api(env, 'GET', `/api/tokens/alpha/events?before=${ids[1]}`);
	assert.deepEqual(r.json.data.events.map((e) => e.id), ids.slice(2));
	r = await api(env, 'GET', '/api/tokens/alpha/events?limit=1');
	assert.deepEqual(r.json.data.events.map((e) => e.id), [ids[0]]);
	r = await api(env, 'GET',
	    `/api/tokens/alpha/events?before=${ids[ids.length - 1]}`);
	assert.deepEqual(r.json.data.events, []);
	/* Bad paging values: 422 naming the parameter. */
	for (const [q, field] of [['limit=0', 'limit'], ['limit=501', 'limit'],
	    ['limit=x', 'limit'], ['before=-1', 'before'],
	    ['before=1e3', 'before']]) {
		a.assertError(await api(env, 'GET',
		    `/api/tokens/alpha/events?${q}`), 422, q,
		    { field: `${field}:` });
	}
	a.assertError(await api(env, 'GET', '/api/tokens/nope/events'), 404,
	    'events of an unknown source');
	/* A viewer may read them. */
	r = await a.call(env.k, 'GET', '/api/tokens/alpha/events?limit=2',
	    { auth: await a.jwt('viewer') });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.events.length, 2);
});
