'use strict';

/*
 * The token event stream (issue 14, part 3): GET /api/tokens/{name}/stream
 * sends the current token (id: generation), each new generation, state
 * changes, heartbeat comments, resumes with Last-Event-ID, tells its
 * clients shutdown_pending on SIGTERM, and follows current-token's access
 * rules. Read with node's fetch, as a client without an SSE library.
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

test('sse_token_generations_state_heartbeats', { timeout: 60000 },
    async () => {
	const env = await a.adminKiln(pg, 'sse_main', { sources:
	    [{ name: 'ev' }], env: { KILN_SSE_HEARTBEAT: '1' } });
	const { k } = env;
	await h.waitToken(k, 'ev');
	const cur = (await k.currentToken('ev')).json;

	const s = await openStream(k, 'ev');
	assert.equal(s.res.status, 200);
	assert.match(s.res.headers.get('content-type'), /^text\/event-stream/);
	assert.equal(s.res.headers.get('cache-control'), 'no-store');

	const first = await s.next(() => true);
	assert.equal(first.event, 'token');
	assert.equal(first.id, String(cur.generation));
	for (const f of ['agent_name', 'token', 'token_type', 'expires_at',
	    'valid', 'fingerprint', 'generation'])
		assert.deepEqual(first.json[f], cur[f], f);
	assert.ok(first.json.expires_in > 0);
	const st0 = await s.next((e) => e.event === 'state');
	assert.equal(st0.json.state, 'valid');
	assert.equal(await metric(k, 'kiln_streams'), 1);

	/* Heartbeats: comments only, never a token. */
	await h.waitFor(() => s.comments.length >= 2, { timeout: 5000 });
	for (const c of s.comments) {
		assert.equal(c.text, 'heartbeat');
		assert.ok(!c.text.includes(cur.token));
	}

	/* A new generation. */
	const f = await a.call(k, 'POST', '/api/tokens/ev/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	const next = await s.next((e) => e.event === 'token' &&
	    Number(e.id) > cur.generation);
	assert.notEqual(next.json.fingerprint, cur.fingerprint);
	assert.equal(next.json.generation, Number(next.id));
	const now = (await k.currentToken('ev')).json;
	assert.equal(now.fingerprint, next.json.fingerprint);

	/* A state change: pre-warming paused. */
	const p = await a.call(k, 'POST', '/api/prewarming/stop',
	    { auth: env.adminKey });
	assert.ok(p.status < 300, `stop: ${p.status} ${p.text}`);
	const paused = await s.next((e) => e.event === 'state' &&
	    e.json.state === 'paused');
	assert.equal(paused.json.agent_name, 'ev');
	assert.ok(!paused.data.includes(now.token), 'no token in a state');

	s.close();
	await h.waitFor(async () => await metric(k, 'kiln_streams') === 0,
	    { timeout: 5000 });
});

test('sse_resumes_with_last_event_id', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'sse_resume', { sources:
	    [{ name: 'rs' }] });
	const { k } = env;
	await h.waitToken(k, 'rs');
	const cur = (await k.currentToken('rs')).json;

	/* Up to date: no token again, just the state. */
	const same = await openStream(k, 'rs',
	    { 'Last-Event-ID': String(cur.generation) });
	const e1 = await same.next(() => true);
	assert.equal(e1.event, 'state');
	assert.equal(same.events.filter((e) => e.event === 'token').length,
	    0);
	same.close();

	/* Behind: the current token at once. */
	const behind = await openStream(k, 'rs',
	    { 'Last-Event-ID': String(cur.generation - 1) });
	const e2 = await behind.next(() => true);
	assert.equal(e2.event, 'token');
	assert.equal(e2.id, String(cur.generation));
	assert.equal(e2.json.fingerprint, cur.fingerprint);
	behind.close();
});

test('sse_access_rules_of_current_token', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'sse_access', { sources: [
		{ name: 'locked', access: 'key' },
		{ name: 'other', access: 'key' },
	] });
	const { k, adminKey } = env;
	const r = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
	    body: { name: 'scoped', role: 'client', sources: ['locked'] } });
	assert.equal(r.status, 201, r.text);
	const auth = { Authorization: `Bearer ${r.json.data.key}` };
	await h.waitToken(k, 'locked', { headers: auth });

	a.assertError(await k.get('/api/tokens/locked/stream'), 401,
	    'key source without a key');
	a.assertError(await k.get('/api/tokens/other/stream',
	    { headers: auth }), 403, 'key scoped to another source');
	a.assertError(await k.get('/api/tokens/nope/stream'), 404,
	    'unknown source');

	const s = await openStream(k, 'locked', auth);
	assert.equal(s.res.status, 200);
	assert.equal((await s.next(() => true)).event, 'token');
	s.close();
});

test('sse_shutdown_pending_on_sigterm', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'sse_drain', { sources:
	    [{ name: 'dn' }] });
	const { k } = env;
	await h.waitToken(k, 'dn');
	const s = await openStream(k, 'dn');
	await s.next((e) => e.event === 'state');

	k.signal('SIGTERM');
	const sd = await s.next((e) => e.event === 'shutdown_pending');
	assert.equal(sd.json.type, 'shutdown_pending');
	assert.equal(sd.json.reconnect_after, 2);
	await h.waitFor(() => s.ended, { timeout: 10000 });
});

test('dashboard_and_metrics_count_waiters_and_streams', { timeout: 60000 },
    async () => {
	const d = require('../../browser/lib/dash');
	const env = await a.adminKiln(pg, 'sse_dash', { sources:
	    [{ name: 'db' }], workers: 2 });
	const { k } = env;
	await h.waitToken(k, 'db');
	const cur = (await k.currentToken('db')).json;
	const s = await d.httpLogin(k, env.adminKey);

	const streams = [];
	for (let i = 0; i < 3; i++)
		streams.push(await openStream(k, 'db'));
	const polls = [];
	for (let i = 0; i < 2; i++) {
		polls.push(k.currentToken('db', { query: '?wait_for_change=' +
		    `true&last_fingerprint=${cur.fingerprint}&timeout_sec=20`,
		    timeout: 30000 }));
	}
	/* Summed over both workers, whichever holds them. */
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 2 &&
	    await metric(k, 'kiln_streams') === 3, { timeout: 5000 });
	const page = await k.get('/dashboard', { headers:
	    { Cookie: s.cookie } });
	assert.match(page.text, /<dd id="push-waiters">2<\/dd>/);
	assert.match(page.text, /<dd id="push-streams">3<\/dd>/);
	const j = await k.get('/metrics', { headers:
	    { Accept: 'application/json' } });
	assert.equal(j.json.global.waiters, 2);
	assert.equal(j.json.global.streams, 3);

	const f = await a.call(k, 'POST', '/api/tokens/db/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, f.text);
	for (const r of await Promise.all(polls))
		assert.notEqual(r.json.fingerprint, cur.fingerprint);
	for (const x of streams)
		x.close();
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 0 &&
	    await metric(k, 'kiln_streams') === 0, { timeout: 5000 });
});

test('sse_ends_when_source_disabled_or_deleted', { timeout: 60000 },
    async () => {
	const env = await a.adminKiln(pg, 'sse_gone', { sources:
	    [{ name: 'off' }, { name: 'del' }] });
	const { k } = env;
	await h.waitToken(k, 'off');
	await h.waitToken(k, 'del');
	const off = await openStream(k, 'off');
	const del = await openStream(k, 'del');
	await off.next((e) => e.event === 'state');
	await del.next((e) => e.event === 'state');

	let r = await a.call(k, 'PATCH', '/api/tokens/off', { auth:
	    env.adminKey, body: { enabled: false } });
	assert.ok(r.status < 300, `disable: ${r.status} ${r.text}`);
	await h.waitFor(() => off.ended, { timeout: 10000 });
	r = await a.call(k, 'DELETE', '/api/tokens/del', { auth:
	    env.adminKey });
	assert.ok(r.status < 300, `delete: ${r.status} ${r.text}`);
	await h.waitFor(() => del.ended, { timeout: 10000 });
	await h.waitFor(async () => await metric(k, 'kiln_streams') === 0,
	    { timeout: 5000 });
});
