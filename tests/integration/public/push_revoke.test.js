'use strict';

/*
 * Push and the loss of access (issue 14): an event stream or a held
 * long-poll keeps only the access it was opened with. Revoking the key
 * ends the key's streams (event: revoked, then the end of the stream)
 * and answers its waiting long-polls 401 at once, as current-token
 * answers the revoked key; a source made key-only ends the streams of
 * clients without a key; a key scoped away from a source ends its
 * streams there. Streams of other principals go on.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const { openStream } = require('../lib/sse');

const pg = h.filePg();

async function metric(k, name)
{
	const r = await k.get('/metrics');
	const m = r.text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
	assert.ok(m, `${name} in /metrics`);
	return Number(m[1]);
}

async function clientKey(env, name, sources)
{
	const r = await a.call(env.k, 'POST', '/api/keys', { auth:
	    env.adminKey, body: { name, role: 'client', sources } });
	assert.equal(r.status, 201, r.text);
	return { id: r.json.data.id, key: r.json.data.key,
	    auth: { Authorization: `Bearer ${r.json.data.key}` } };
}

async function revoke(env, id)
{
	const r = await a.call(env.k, 'DELETE', `/api/keys/${id}`,
	    { auth: env.adminKey });
	assert.ok(r.status < 300, `revoke: ${r.status} ${r.text}`);
}

function longPoll(k, name, fpr, headers)
{
	const t0 = Date.now();
	return k.currentToken(name, { query: '?wait_for_change=true' +
	    `&last_fingerprint=${fpr}&timeout_sec=20`, headers,
	    timeout: 30000 }).then((r) => Object.assign(r, { at: Date.now(),
	    took: Date.now() - t0 }));
}

/* The stream ended with event: revoked and no token after index from. */
function assertRevoked(s, from, what)
{
	const after = s.events.slice(from);
	assert.equal(after.filter((e) => e.event === 'token').length, 0,
	    `${what}: no token event after the loss of access`);
	const r = after.find((e) => e.event === 'revoked');
	assert.ok(r, `${what}: event revoked; got ` +
	    JSON.stringify(after.map((e) => e.event)));
	assert.equal(typeof r.json.code, 'string');
	assert.equal(typeof r.json.message, 'string');
	return r;
}

test('revoking_a_key_ends_its_streams_within_a_second',
    { timeout: 60000 }, async () => {
	/* Two workers: the streams may sit on the one that did not revoke. */
	const env = await a.adminKiln(pg, 'rv_stream', { sources:
	    [{ name: 'locked', access: 'key' }], workers: 2 });
	const { k } = env;
	const c = await clientKey(env, 'doomed', ['locked']);
	await h.waitToken(k, 'locked', { headers: c.auth });
	const cur = (await k.currentToken('locked', { headers: c.auth })).json;

	const streams = [];
	for (let i = 0; i < 4; i++) {
		const s = await openStream(k, 'locked', c.auth);
		assert.equal(s.res.status, 200);
		await s.next((e) => e.event === 'state');
		streams.push(s);
	}
	const seen = streams.map((s) => s.events.length);

	const sent = Date.now();
	await revoke(env, c.id);
	/* A new token right after: none of it may reach the streams. */
	const f = await a.call(k, 'POST', '/api/tokens/locked/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);

	await h.waitFor(() => streams.every((s) => s.ended),
	    { timeout: 3000, what: 'every stream of the key ended' });
	const now = await h.waitFor(async () => {
		const r = await a.call(k, 'GET', '/api/tokens/locked/' +
		    'current-token', { auth: env.adminKey });
		return r.json.fingerprint !== cur.fingerprint && r.json;
	}, { timeout: 5000, what: 'the refreshed token' });
	for (const [i, s] of streams.entries()) {
		const took = s.endedAt - sent;
		console.log(`stream ${i} ended ${took} ms after the revoke`);
		assert.ok(took <= 1000, `stream ${i} ended ${took} ms after ` +
		    'the revoke (at most 1000)');
		const r = assertRevoked(s, seen[i], `stream ${i}`);
		assert.equal(r.json.code, 'unauthorized');
		assert.ok(!s.raw.includes(now.token), 'the new token never ' +
		    'reached the stream');
	}
	await h.waitFor(async () => await metric(k, 'kiln_streams') === 0,
	    { timeout: 5000 });

	/* And the key opens no new one. */
	a.assertError(await k.get('/api/tokens/locked/stream',
	    { headers: c.auth }), 401, 'revoked key', { code: 'unauthorized' });
});

test('revoking_a_key_answers_its_long_polls_401_at_once',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'rv_poll', { sources:
	    [{ name: 'locked', access: 'key' }], workers: 2 });
	const { k } = env;
	const c = await clientKey(env, 'doomed', ['locked']);
	const keep = await clientKey(env, 'kept', ['locked']);
	await h.waitToken(k, 'locked', { headers: c.auth });
	const cur = (await k.currentToken('locked', { headers: c.auth })).json;

	const polls = [];
	for (let i = 0; i < 4; i++)
		polls.push(longPoll(k, 'locked', cur.fingerprint, c.auth));
	const kept = longPoll(k, 'locked', cur.fingerprint, keep.auth);
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 5,
	    { timeout: 5000, what: 'five waiters' });

	const sent = Date.now();
	await revoke(env, c.id);
	const answers = await Promise.all(polls);
	const plain = await k.currentToken('locked', { headers: c.auth });
	a.assertError(plain, 401, 'current-token with the revoked key');
	for (const [i, r] of answers.entries()) {
		const took = r.at - sent;
		console.log(`long-poll ${i} answered ${r.status} ${took} ms ` +
		    'after the revoke');
		a.assertError(r, 401, `long-poll ${i}`);
		assert.deepEqual(r.json, plain.json, 'the error of current-' +
		    'token for a revoked key');
		assert.equal(r.headers['www-authenticate'],
		    plain.headers['www-authenticate']);
		assert.ok(!r.text.includes(cur.token), 'no token');
		assert.ok(took <= 1000, `long-poll ${i} answered ${took} ms ` +
		    'after the revoke (at most 1000)');
	}

	/* The other key's long-poll still waits, then gets the new token. */
	assert.equal(await metric(k, 'kiln_waiters'), 1);
	const f = await a.call(k, 'POST', '/api/tokens/locked/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	const r = await kept;
	assert.equal(r.status, 200, r.text);
	assert.notEqual(r.json.fingerprint, cur.fingerprint);
});

test('a_source_made_key_only_ends_streams_and_polls_without_a_key',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'rv_access', { sources:
	    [{ name: 'opened' }] });
	const { k } = env;
	const c = await clientKey(env, 'holder', ['opened']);
	await h.waitToken(k, 'opened');
	const cur = (await k.currentToken('opened')).json;

	const anon = await openStream(k, 'opened');
	const keyed = await openStream(k, 'opened', c.auth);
	await anon.next((e) => e.event === 'state');
	await keyed.next((e) => e.event === 'state');
	const seen = anon.events.length;
	const poll = longPoll(k, 'opened', cur.fingerprint, {});
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 1,
	    { timeout: 5000, what: 'the waiter' });

	const r = await a.call(k, 'PATCH', '/api/tokens/opened', { auth:
	    env.adminKey, body: { access: 'key' } });
	assert.ok(r.status < 300, `patch: ${r.status} ${r.text}`);

	await h.waitFor(() => anon.ended, { timeout: 3000,
	    what: 'the stream without a key ended' });
	assertRevoked(anon, seen, 'stream without a key');
	const p = await poll;
	a.assertError(p, 401, 'long-poll without a key',
	    { code: 'unauthorized' });
	assert.ok(p.took < 5000, `answered after ${p.took} ms, not at its ` +
	    'timeout');

	/* The key's stream goes on and hears the next token. */
	const from = keyed.events.length;
	const f = await a.call(k, 'POST', '/api/tokens/opened/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	const t = await keyed.next((e) => e.event === 'token', from);
	assert.notEqual(t.json.fingerprint, cur.fingerprint);
	assert.equal(keyed.ended, false);
	keyed.close();
});

test('a_key_scoped_away_from_a_source_ends_its_streams_there',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'rv_scope', { sources: [
		{ name: 'one', access: 'key' },
		{ name: 'two', access: 'key' },
	] });
	const { k, db } = env;
	const c = await clientKey(env, 'both', ['one', 'two']);
	await h.waitToken(k, 'one', { headers: c.auth });
	await h.waitToken(k, 'two', { headers: c.auth });

	const one = await openStream(k, 'one', c.auth);
	const two = await openStream(k, 'two', c.auth);
	await one.next((e) => e.event === 'state');
	await two.next((e) => e.event === 'state');
	const seen = one.events.length;

	/* No endpoint narrows a key yet: the table, then its NOTIFY. */
	await db.pg.query(`UPDATE api_keys SET sources = ARRAY['two'] ` +
	    `WHERE id = ${Number(c.id)}; NOTIFY kiln_keys`, { db: db.name });
	await h.waitFor(() => one.ended, { timeout: 3000,
	    what: 'the stream of the source the key lost' });
	const r = assertRevoked(one, seen, 'scoped away');
	assert.equal(r.json.code, 'forbidden');
	await h.sleep(300);
	assert.equal(two.ended, false, 'the stream of the source it kept');
	two.close();
});

test('revoking_some_key_leaves_admin_operator_and_other_streams',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'rv_others', { sources:
	    [{ name: 'locked', access: 'key' }], workers: 2 });
	const { k } = env;
	const gone = await clientKey(env, 'gone', ['locked']);
	const other = await clientKey(env, 'other', ['locked']);
	await h.waitToken(k, 'locked', { headers: other.auth });
	const cur = (await k.currentToken('locked',
	    { headers: other.auth })).json;

	const op = await a.jwt('operator');
	const streams = {
		admin: await openStream(k, 'locked',
		    { Authorization: `Bearer ${env.adminKey}` }),
		operator: await openStream(k, 'locked',
		    { Authorization: `Bearer ${op}` }),
		other: await openStream(k, 'locked', other.auth),
		gone: await openStream(k, 'locked', gone.auth),
	};
	for (const s of Object.values(streams)) {
		assert.equal(s.res.status, 200);
		await s.next((e) => e.event === 'state');
	}

	await revoke(env, gone.id);
	await h.waitFor(() => streams.gone.ended, { timeout: 3000,
	    what: 'the revoked key\'s stream ended' });

	const from = {};
	for (const [n, s] of Object.entries(streams))
		from[n] = s.events.length;
	const f = await a.call(k, 'POST', '/api/tokens/locked/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	for (const n of ['admin', 'operator', 'other']) {
		const t = await streams[n].next((e) => e.event === 'token',
		    from[n]);
		assert.notEqual(t.json.fingerprint, cur.fingerprint, n);
		assert.equal(streams[n].events.slice(from[n]).filter((e) =>
		    e.event === 'revoked').length, 0, `${n}: not revoked`);
		assert.equal(streams[n].ended, false, `${n} goes on`);
		streams[n].close();
	}
});

test('disabling_a_source_answers_its_long_polls_404_at_once',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'rv_disable', { sources:
	    [{ name: 'off' }] });
	const { k } = env;
	await h.waitToken(k, 'off');
	const cur = (await k.currentToken('off')).json;
	const poll = longPoll(k, 'off', cur.fingerprint, {});
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 1,
	    { timeout: 5000, what: 'the waiter' });

	const sent = Date.now();
	const r = await a.call(k, 'PATCH', '/api/tokens/off', { auth:
	    env.adminKey, body: { enabled: false } });
	assert.ok(r.status < 300, `disable: ${r.status} ${r.text}`);
	const p = await poll;
	a.assertError(p, 404, 'long-poll of a disabled source',
	    { code: 'not_found' });
	assert.ok(p.at - sent <= 1000, `answered ${p.at - sent} ms after ` +
	    'the source was disabled (at most 1000)');
});

/* The login form's CSRF double submit, then the credential: a session. */
async function login(k, credential)
{
	const f = await k.get('/dashboard/login');
	const lc = /kiln_login=([0-9a-f]+)/.exec(
	    String(f.headers['set-cookie']));
	const r = await k.post('/dashboard/login', `csrf=${lc[1]}&` +
	    `credential=${encodeURIComponent(credential)}`, { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${lc[1]}` } });
	const sc = /kiln_session=([^;]+)/.exec(
	    String(r.headers['set-cookie'] || ''));
	assert.ok(r.status === 303 && sc, `login: ${r.status} ${r.text}`);
	const cookie = `kiln_session=${sc[1]}`;
	const page = await h.waitFor(async () => {
		const p = await k.get('/dashboard', { headers: { Cookie:
		    cookie } });
		return p.status === 200 ? p : false;
	}, { timeout: 5000, what: 'the dashboard of the new session' });
	const csrf = /<meta name="csrf-token" content="([0-9a-f]+)">/
	    .exec(page.text)[1];
	return { cookie, csrf, headers: { Cookie: cookie } };
}

test('logging_out_ends_the_sessions_streams_and_long_polls',
    { timeout: 60000 }, async () => {
	/*
	 * One worker: a session cookie on a public route of a worker that
	 * has not loaded the session yet is anonymous (it does not wait for
	 * a reload as the dashboard's routes do). Another worker hears of
	 * a logout by the NOTIFY that ends the session there, the same
	 * session_forget() as here.
	 */
	const env = await a.adminKiln(pg, 'rv_logout', { sources:
	    [{ name: 'locked', access: 'key' }], workers: 1 });
	const { k } = env;
	/* A session made from a JWT is bound to no key: only its end. */
	const s = await login(k, await a.jwt('operator'));
	const other = await login(k, await a.jwt('operator'));
	await h.waitToken(k, 'locked', { headers: s.headers });
	const cur = (await k.currentToken('locked',
	    { headers: s.headers })).json;

	const streams = [];
	for (let i = 0; i < 4; i++) {
		const st = await openStream(k, 'locked', s.headers);
		assert.equal(st.res.status, 200);
		await st.next((e) => e.event === 'token');
		streams.push(st);
	}
	const kept = await openStream(k, 'locked', other.headers);
	await kept.next((e) => e.event === 'token');
	const polls = [];
	for (let i = 0; i < 4; i++)
		polls.push(longPoll(k, 'locked', cur.fingerprint, s.headers));
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 4,
	    { timeout: 5000, what: 'four waiters' });
	const from = streams.map((st) => st.events.length);

	const sent = Date.now();
	const r = await k.post('/dashboard/logout', `csrf=${s.csrf}`,
	    { headers: { Cookie: s.cookie, 'Content-Type':
	    'application/x-www-form-urlencoded' } });
	assert.ok(r.status < 400, `logout: ${r.status} ${r.text}`);

	const plain = await k.currentToken('locked', { headers: s.headers });
	a.assertError(plain, 401, 'current-token after the logout');
	for (const [i, p] of (await Promise.all(polls)).entries()) {
		const took = p.at - sent;
		a.assertError(p, 401, `long-poll ${i}`);
		assert.ok(!p.text.includes(cur.token), 'no token');
		assert.ok(took <= 1000, `long-poll ${i} answered ${took} ms ` +
		    'after the logout (at most 1000)');
	}
	for (const [i, st] of streams.entries()) {
		await h.waitFor(() => st.ended, { timeout: 2000,
		    what: `stream ${i} ended after the logout` });
		assertRevoked(st, from[i], `stream ${i}`);
	}

	/* The other session's stream goes on, and gets the next token. */
	assert.equal(kept.ended, false);
	const f = await a.call(k, 'POST', '/api/tokens/locked/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	const ev = await kept.next((e) => e.event === 'token' &&
	    e.json.fingerprint !== cur.fingerprint);
	assert.ok(ev, 'the other session gets the new token');
	kept.close();
});
