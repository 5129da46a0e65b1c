'use strict';

/*
 * Issue 14, part 4: signed webhooks from an outbox table. A receiver of
 * the test verifies every signature (HMAC-SHA256 with the secret shown
 * at creation, over "t.body", and a fresh t); the upstreams are
 * tests/upstream/fault.js, switched between ok and 5xx. Each case says
 * what an operator relies on: one token.failing per outage and one
 * token.recovered, retries that back off until a 2xx, one delivery per
 * event across instances, nothing lost to a kill -9, no token or secret
 * anywhere, and the admin API's rules.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const dash = require('../../browser/lib/dash');

const pg = h.filePg();

const EVENTS = ['token.failing', 'token.recovered', 'token.expired',
    'token.refreshed'];

/*
 * A webhook receiver on loopback. answer(hit) gives the status (or a
 * promise of it; 'hang' never answers). Every hit records its arrival,
 * headers, raw body, JSON and whether its signature verifies with
 * secret() (set once the webhook is created).
 */
function receiver(answer = () => 200)
{
	return new Promise((resolve, reject) => {
		const rx = { hits: [], secret: null };
		const srv = http.createServer((req, res) => {
			const chunks = [];
			req.on('data', (c) => chunks.push(c));
			req.on('end', async () => {
				const body = Buffer.concat(chunks).toString('utf8');
				const hit = { at: Date.now(), headers: req.headers,
				    body, json: null, verified: false };
				try {
					hit.json = JSON.parse(body);
				} catch (e) {
					/* recorded as is */
				}
				hit.verified = verify(rx.secret,
				    req.headers['kiln-signature'], body);
				rx.hits.push(hit);
				const status = await answer(hit, rx.hits);
				if (status === 'hang')
					return;
				res.writeHead(status, { 'Content-Type':
				    'text/plain' });
				res.end('ok');
			});
		});
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			rx.port = srv.address().port;
			rx.url = `http://127.0.0.1:${rx.port}/hook`;
			resolve(rx);
		});
		h.procs.onCleanup(() => new Promise((r) => {
			srv.closeAllConnections();
			srv.close(() => r());
		}));
	});
}

/* Kiln-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>. */
function verify(secret, header, body)
{
	if (secret === null || typeof header !== 'string')
		return false;
	const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
	if (!m)
		return false;
	if (Math.abs(Date.now() / 1000 - Number(m[1])) > 300)
		return false;
	const want = crypto.createHmac('sha256', secret)
	    .update(`${m[1]}.${body}`).digest();
	return crypto.timingSafeEqual(want, Buffer.from(m[2], 'hex'));
}

async function createHook(k, url, events, secret)
{
	const body = { url, events };
	if (secret !== undefined)
		body.secret = secret;
	const r = await a.call(k, 'POST', '/api/webhooks',
	    { auth: a.ADMIN_KEY, body });
	assert.equal(r.status, 201, `create webhook: ${r.text}`);
	return r.json.data;
}

function deliveries(k, id)
{
	return a.call(k, 'GET', `/api/webhooks/${id}/deliveries`,
	    { auth: a.ADMIN_KEY });
}

/* No token the upstream issued, nor any secret, in text. */
function assertClean(text, secrets, what)
{
	for (const s of secrets) {
		assert.ok(!String(text).includes(s),
		    `${what}: contains a token or secret (${s.slice(0, 6)}...)`);
	}
}

async function outboxDump(db)
{
	return JSON.stringify(await db.pg.queryJson('SELECT d.*, ' +
	    '(SELECT json_agg(x) FROM webhook_attempts x ' +
	    'WHERE x.delivery_id = d.id) AS attempts ' +
	    'FROM webhook_deliveries d', { db: db.name }));
}

test('webhook_api_requires_admin_and_checks_its_input',
    { timeout: 60000 }, async () => {
	const rx = await receiver();
	const env = await a.adminKiln(pg, 'wh_api', {});
	const { k } = env;

	/* Without credentials 401; a viewer or an operator 403. */
	const body = { url: rx.url, events: ['token.failing'] };
	a.assertError(await a.call(k, 'POST', '/api/webhooks', { body }),
	    401, 'no credentials');
	a.assertError(await a.call(k, 'GET', '/api/webhooks', {}), 401,
	    'list without credentials');
	const kr = await a.call(k, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name: 'watcher', role: 'viewer' } });
	assert.equal(kr.status, 201, kr.text);
	const viewerKey = kr.json.data.key;
	/* (a new key works on every worker at once) */
	a.assertError(await a.call(k, 'POST', '/api/webhooks',
	    { auth: viewerKey, body }), 403, 'viewer key creates');
	a.assertError(await a.call(k, 'GET', '/api/webhooks',
	    { auth: viewerKey }), 403, 'viewer key lists');
	a.assertError(await a.call(k, 'POST', '/api/webhooks',
	    { auth: await a.jwt('operator'), body }), 403, 'operator');

	/* Bad input: 400 when not JSON, 422 naming the field. */
	const bad = async (b, status, field, what) => {
		const r = await a.call(k, 'POST', '/api/webhooks',
		    { auth: a.ADMIN_KEY, body: b, headers: { 'Content-Type':
		    'application/json' } });
		a.assertError(r, status, what, { field });
		return r;
	};
	await bad('{"url": ', 400, null, 'broken JSON');
	await bad([], 422, 'body', 'an array');
	await bad({ events: ['token.failing'] }, 422, 'body', 'no url');
	await bad({ url: rx.url }, 422, 'body', 'no events');
	await bad({ url: 'ftp://127.0.0.1/x', events: ['token.failing'] },
	    422, 'url', 'ftp');
	await bad({ url: 'not a url', events: ['token.failing'] }, 422,
	    'url', 'not a URL');
	await bad({ url: 42, events: ['token.failing'] }, 422, 'url',
	    'a number');
	await bad({ url: rx.url, events: [] }, 422, 'events', 'no events');
	await bad({ url: rx.url, events: ['token.bogus'] }, 422, 'events',
	    'unknown event');
	await bad({ url: rx.url, events: ['token.failing',
	    'token.failing'] }, 422, 'events', 'twice the same');
	await bad({ url: rx.url, events: 'token.failing' }, 422, 'events',
	    'not an array');
	await bad({ url: rx.url, events: ['token.failing'], secret: 'short' },
	    422, 'secret', 'short secret');
	await bad({ url: rx.url, events: ['token.failing'], extra: 1 }, 422,
	    'body', 'an unknown member');

	/* Refused addresses, in the spellings a resolver takes. */
	for (const url of ['http://0.0.0.0:9/h', 'http://0:9/h',
	    'http://[::ffff:0.0.0.0]:9/h', 'http://169.254.169.254/latest',
	    'http://2852039166/x', 'https://[fe80::1]:8443/h']) {
		const r = await bad({ url, events: ['token.failing'] }, 422,
		    'url', url);
		assert.match(r.json.error.message, /refused/, url);
	}
	const none = await a.call(k, 'GET', '/api/webhooks',
	    { auth: a.ADMIN_KEY });
	assert.equal(none.status, 200, none.text);
	assert.deepEqual(none.json.data, [], 'nothing was created');

	/* Created: a generated secret shown once, 32 bytes base64url. */
	const created = await a.call(k, 'POST', '/api/webhooks',
	    { auth: a.ADMIN_KEY, body: { url: rx.url, events: EVENTS } });
	assert.equal(created.status, 201, created.text);
	const { id, secret } = created.json.data;
	assert.ok(Number.isInteger(id), 'id');
	assert.match(secret, /^[A-Za-z0-9_-]{43}$/, 'generated secret');
	assert.equal(Buffer.from(secret, 'base64url').length, 32);
	const given = h.secret('given-hook-secret');
	const other = await createHook(k, rx.url, ['token.refreshed'], given);
	assert.equal(other.secret, undefined, 'a given secret is not echoed');

	const list = await a.call(k, 'GET', '/api/webhooks',
	    { auth: a.ADMIN_KEY });
	assert.equal(list.status, 200, list.text);
	assert.deepEqual(list.json.data.map((w) => [w.id, w.url, w.events]),
	    [[id, rx.url, EVENTS], [other.id, rx.url, ['token.refreshed']]]);
	assertClean(list.text, [secret, given], 'the list');
	const rows = JSON.stringify(await env.db.pg.queryJson(
	    'SELECT * FROM webhooks', { db: env.db.name }));
	assertClean(rows, [secret, given], 'the webhooks table');
	assert.match(rows, /secret_sealed/, 'the secret is stored sealed');

	const dl = await deliveries(k, id);
	assert.equal(dl.status, 200, dl.text);
	assert.deepEqual(dl.json.data, []);
	a.assertError(await deliveries(k, 999999), 404, 'unknown deliveries');
	a.assertError(await a.call(k, 'GET', '/api/webhooks/1/deliveries' +
	    '?limit=0', { auth: a.ADMIN_KEY }), 422, 'limit 0',
	    { field: 'limit' });

	const del = await a.call(k, 'DELETE', `/api/webhooks/${id}`,
	    { auth: a.ADMIN_KEY });
	assert.equal(del.status, 200, del.text);
	a.assertError(await a.call(k, 'DELETE', `/api/webhooks/${id}`,
	    { auth: a.ADMIN_KEY }), 404, 'deleted twice');
	a.assertError(await a.call(k, 'DELETE', `/api/webhooks/${other.id}`,
	    { auth: viewerKey }), 403, 'viewer deletes');
	assertClean(k.logs(), [secret, given], 'the log');
});

test('outage_gives_one_failing_one_expired_one_recovered_signed',
    { timeout: 90000 }, async () => {
	const rx = await receiver();
	const f = await h.startFault(['--lifetime', '6']);
	const env = await a.adminKiln(pg, 'wh_outage', { idp: f,
	    sources: [{ name: 'flaky', refresh_buffer: 3 }],
	    env: { KILN_WEBHOOK_BACKOFF_MS: '200' } });
	const { k, db } = env;
	await h.waitToken(k, 'flaky');
	const hook = await createHook(k, rx.url, EVENTS);
	rx.secret = hook.secret;

	/* Refreshed while healthy: token.refreshed, nothing else. */
	await h.waitFor(() => rx.hits.some((x) =>
	    x.json && x.json.type === 'token.refreshed'),
	    { timeout: 15000, what: 'a token.refreshed' });

	/* Failing until the token expires, then healthy again (the
	 * operator's refresh goes at once, whatever the backoff). */
	await f.mode({ mode: '5xx' });
	await h.waitFor(async () => (await h.events(db, 'flaky')).filter(
	    (e) => e.outcome === 'failure').length >= 3,
	    { timeout: 30000, what: 'three failed attempts' });
	await h.waitFor(() => rx.hits.some((x) =>
	    x.json && x.json.type === 'token.expired'),
	    { timeout: 30000, what: 'token.expired' });
	await f.mode({ mode: 'ok' });
	const rr = await a.call(k, 'POST', '/api/tokens/flaky/refresh',
	    { auth: a.ADMIN_KEY });
	assert.equal(rr.status, 202, rr.text);
	await h.waitFor(() => rx.hits.some((x) =>
	    x.json && x.json.type === 'token.recovered'),
	    { timeout: 30000, what: 'token.recovered' });
	await h.sleep(1500);	/* anything more would have come */

	const types = rx.hits.map((x) => x.json.type);
	assert.ok(rx.hits.every((x) => x.verified),
	    'every signature verifies with the secret shown at creation');
	assert.equal(types.filter((t) => t === 'token.failing').length, 1,
	    `one token.failing for the outage (${types})`);
	assert.equal(types.filter((t) => t === 'token.recovered').length, 1,
	    `one token.recovered (${types})`);
	const failing = rx.hits.find((x) => x.json.type === 'token.failing');
	const recovered = rx.hits.find((x) => x.json.type ===
	    'token.recovered');
	assert.ok(types.indexOf('token.failing') <
	    types.indexOf('token.recovered'), 'failing before recovered');
	assert.equal(failing.json.data.source, 'flaky');
	assert.equal(failing.json.data.subject, 'default');
	assert.equal(failing.json.data.state, 'failing');
	assert.equal(failing.json.data.failures, 1);
	assert.match(failing.json.data.error, /HTTP 503/);
	assert.equal(failing.headers['kiln-event-id'], failing.json.id);
	assert.match(failing.json.created_at, h.ISO_Z);

	/* The expiry of the last good token, once, between the two. */
	const expired = rx.hits.filter((x) => x.json.type === 'token.expired');
	assert.equal(expired.length, 1, `one token.expired (${types})`);
	assert.equal(expired[0].json.data.state, 'expired');
	assert.equal(expired[0].json.data.generation,
	    failing.json.data.generation);
	assert.equal(expired[0].json.data.fingerprint,
	    failing.json.data.fingerprint);
	assert.ok(expired[0].json.data.failures >= 1);
	assert.ok(types.indexOf('token.failing') <
	    types.indexOf('token.expired') && types.indexOf('token.expired') <
	    types.indexOf('token.recovered'), `the order (${types})`);

	/* recovered names the token being served now. */
	const cur = await h.waitToken(k, 'flaky');
	const succ = (await h.events(db, 'flaky')).filter((e) =>
	    e.outcome === 'success');
	const first = succ.find((e) => Date.parse(e.finished_at) >
	    failing.at - 60000 && e.generation ===
	    recovered.json.data.generation);
	assert.ok(first, 'recovered carries the generation of a success');
	assert.equal(recovered.json.data.state, 'valid');
	assert.equal(recovered.json.data.failures, 0);
	assert.equal(recovered.json.data.error, null);
	assert.equal(recovered.json.data.fingerprint, first.fingerprint);

	/* Every success since the webhook: one token.refreshed each. */
	const refreshed = rx.hits.filter((x) => x.json.type ===
	    'token.refreshed').map((x) => x.json.data.generation);
	assert.equal(new Set(refreshed).size, refreshed.length,
	    'one token.refreshed per generation');
	assert.ok(refreshed.includes(recovered.json.data.generation),
	    'the recovering success is refreshed too');
	assert.equal(new Set(rx.hits.map((x) => x.json.id)).size,
	    rx.hits.length, 'each event once');

	/* No token, no secret: bodies, log, outbox rows. */
	const tokens = (await f.stats()).issued_access_tokens;
	assert.ok(tokens.length >= 3 && tokens.includes(cur.json.token));
	const secrets = [...tokens, hook.secret, env.secrets.flaky];
	assertClean(rx.hits.map((x) => x.body + JSON.stringify(x.headers))
	    .join('\n'), secrets, 'webhook requests');
	assertClean(k.logs(), secrets, 'the log');
	assertClean(await outboxDump(db), secrets, 'the outbox rows');
	const dl = await deliveries(k, hook.id);
	assert.equal(dl.status, 200, dl.text);
	assertClean(dl.text, secrets, 'the deliveries answer');
	assert.ok(dl.json.data.every((d) => d.status === 'delivered'),
	    'all delivered');
});

test('receiver_failing_three_times_gets_four_growing_attempts',
    { timeout: 60000 }, async () => {
	const rx = await receiver((hit, hits) => hits.length <= 3 ? 500 : 200);
	const secret = h.secret('retry-hook');
	rx.secret = secret;
	/* The receiver reached by a refused address KILN_UPSTREAM_ALLOW
	 * lists: allowed at creation and at delivery. */
	const env = await a.adminKiln(pg, 'wh_retry', {
	    sources: [{ name: 'steady' }],
	    env: { KILN_WEBHOOK_BACKOFF_MS: '600',
		KILN_UPSTREAM_ALLOW: '0.0.0.0/8' } });
	const { k } = env;
	await h.waitToken(k, 'steady');
	const hook = await createHook(k, `http://0.0.0.0:${rx.port}/hook`,
	    ['token.refreshed'], secret);
	const r = await a.call(k, 'POST', '/api/tokens/steady/refresh',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 202, r.text);

	const dl = await h.waitFor(async () => {
		const x = await deliveries(k, hook.id);
		return x.status === 200 && x.json.data.length === 1 &&
		    x.json.data[0].status === 'delivered' ? x : false;
	}, { timeout: 30000, what: 'the delivery marked delivered' });
	const d = dl.json.data[0];

	assert.equal(rx.hits.length, 4, 'four requests');
	assert.ok(rx.hits.every((x) => x.verified), 'signatures verify');
	assert.equal(new Set(rx.hits.map((x) => x.headers['kiln-event-id']))
	    .size, 1, 'the same event each time');
	assert.equal(new Set(rx.hits.map((x) => x.body)).size, 1,
	    'the same body each time');
	const gaps = rx.hits.slice(1).map((x, i) => x.at - rx.hits[i].at);
	assert.ok(gaps[0] >= 400, `first retry waited (${gaps})`);
	assert.ok(gaps[0] < gaps[1] && gaps[1] < gaps[2],
	    `gaps grow (${gaps})`);
	assert.ok(gaps[2] < 5000, `and stay near the backoff (${gaps})`);

	assert.equal(d.type, 'token.refreshed');
	assert.equal(d.event_id, rx.hits[0].headers['kiln-event-id']);
	assert.equal(d.attempts, 4);
	assert.equal(d.last_status, 200);
	assert.deepEqual(d.attempt_log.map((x) => [x.attempt, x.http_status]),
	    [[1, 500], [2, 500], [3, 500], [4, 200]]);
	assert.match(d.attempt_log[0].error, /HTTP 500/);
	assert.ok(d.attempt_log.every((x) => Number.isInteger(x.duration_ms)));
	assertClean(dl.text + k.logs(), [secret], 'answer and log');

	/* The dashboard: an admin sees the webhook and its last delivery. */
	const s = await dash.httpLogin(k, a.ADMIN_KEY);
	const page = await k.get('/dashboard', { headers: { Cookie: s.cookie } });
	assert.equal(page.status, 200);
	const m = /<div id="webhooks"[^>]*>([\s\S]*?)<\/div>/.exec(page.text);
	assert.ok(m, 'a webhooks section');
	assert.ok(m[1].includes(`http://0.0.0.0:${rx.port}/hook`), m[1]);
	assert.match(m[1], /token\.refreshed[\s\S]*steady[\s\S]*delivered/);
	assert.match(m[1], /<td>4<\/td><td>200<\/td>/, 'attempts, status');
	assertClean(page.text, [secret], 'the page');
	const v = await dash.httpLogin(k, await a.jwt('viewer'));
	const vp = await k.get('/dashboard', { headers: { Cookie: v.cookie } });
	assert.equal(vp.status, 200);
	assert.ok(!vp.text.includes(`${rx.port}/hook`),
	    'a viewer does not see webhooks');

	/* The token's own page: its events' deliveries, for admins. */
	const tp = await k.get('/dashboard/tokens/steady',
	    { headers: { Cookie: s.cookie } });
	assert.equal(tp.status, 200);
	const tm = /<div id="webhooks"[^>]*>([\s\S]*?)<\/div>/.exec(tp.text);
	assert.ok(tm, 'a webhooks section on the token page');
	assert.match(tm[1], /token\.refreshed[\s\S]*steady[\s\S]*delivered/);
	assertClean(tp.text, [secret], 'the token page');
	const vt = await k.get('/dashboard/tokens/steady',
	    { headers: { Cookie: v.cookie } });
	assert.equal(vt.status, 200);
	assert.ok(!vt.text.includes(`${rx.port}/hook`),
	    'a viewer does not see webhooks on the token page');
});

test('two_instances_deliver_each_event_once', { timeout: 90000 },
    async () => {
	const rx = await receiver(async () => {
		await h.sleep(50);
		return 200;
	});
	const f = await h.startFault(['--lifetime', '2']);
	const db = await h.freshDb(pg, 'wh_two');
	const sources = ['a', 'b', 'c', 'd'].map((n) => ({ name: `s${n}`,
	    kind: 'client_credentials', token_url: f.tokenUrl,
	    client_id: n, client_secret: h.secret('two') }));
	const masterKey = crypto.randomBytes(32).toString('base64');
	const env = { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY, KILN_WEBHOOK_BACKOFF_MS: '200' };
	const k1 = await h.startKiln({ name: 'wh_two_1', databaseUrl: db.url,
	    sources, masterKey, workers: 2, env });
	const k2 = await h.startKiln({ name: 'wh_two_2', databaseUrl: db.url,
	    sourcesFile: k1.sourcesFile, masterKey, workers: 2, env });
	const hook = await createHook(k2, rx.url, ['token.refreshed']);
	rx.secret = hook.secret;

	await h.sleep(5000);
	const seen = await db.pg.queryJson('SELECT count(*)::int AS n ' +
	    'FROM webhook_deliveries', { db: db.name });
	await h.waitFor(async () => (await db.pg.queryJson(
	    "SELECT count(*)::int AS n FROM webhook_deliveries WHERE " +
	    "status <> 'delivered'", { db: db.name }))[0].n === 0 &&
	    (await db.pg.queryJson('SELECT count(*)::int AS n FROM ' +
	    'webhook_deliveries', { db: db.name }))[0].n >= seen[0].n,
	    { timeout: 15000, what: 'every delivery delivered' });
	await k1.stop();
	await k2.stop();

	const rows = await db.pg.queryJson('SELECT event_id::text, owner ' +
	    'FROM webhook_deliveries d JOIN webhook_attempts a ' +
	    'ON a.delivery_id = d.id', { db: db.name });
	const ids = rx.hits.map((x) => x.headers['kiln-event-id']);
	assert.ok(ids.length >= 8, `events came (${ids.length})`);
	assert.equal(new Set(ids).size, ids.length,
	    'each event delivered once');
	assert.deepEqual([...new Set(rows.map((r) => r.event_id))].sort(),
	    [...new Set(ids)].sort(), 'the receiver got every event');
	const owners = new Set(rows.map((r) => r.owner.replace(/:w\d+:.*/,
	    '')));
	assert.equal(owners.size, 2, 'both instances delivered some');
	assert.ok(rx.hits.every((x) => x.verified), 'signatures verify');
});

test('kill9_between_commit_and_delivery_loses_nothing',
    { timeout: 90000 }, async () => {
	let killed = null;
	const rx = await receiver(async (hit, hits) => {
		if (hits.length > 1)
			return 200;
		await killed;
		return 'hang';
	});
	const env = await a.adminKiln(pg, 'wh_kill', {
	    sources: [{ name: 'durable' }] });
	const { k } = env;
	await h.waitToken(k, 'durable');
	const hook = await createHook(k, rx.url, ['token.refreshed']);
	rx.secret = hook.secret;

	/* The event commits; its first attempt is out when kiln dies. */
	const r = await a.call(k, 'POST', '/api/tokens/durable/refresh',
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 202, r.text);
	await h.waitFor(() => rx.hits.length === 1,
	    { timeout: 15000, what: 'the first attempt' });
	killed = k.kill9();
	await killed;
	await k.waitExit(5000);

	await k.start();
	await h.waitFor(() => rx.hits.length >= 2,
	    { timeout: 30000, what: 'the delivery after the restart' });
	assert.equal(rx.hits[1].headers['kiln-event-id'],
	    rx.hits[0].headers['kiln-event-id'], 'the same event');
	assert.ok(rx.hits.every((x) => x.verified), 'signatures verify');
	const dl = await h.waitFor(async () => {
		const x = await deliveries(k, hook.id);
		return x.status === 200 && x.json.data[0] &&
		    x.json.data[0].status === 'delivered' ? x : false;
	}, { timeout: 10000, what: 'delivered' });
	assert.equal(dl.json.data.length, 1);
	assert.equal(dl.json.data[0].attempts, 2,
	    'the lost attempt counted');
	await h.sleep(500);
	assert.equal(rx.hits.length, 2, 'delivered, not sent again');
});

test('webhook_backoff_bad_value_stops_the_start', { timeout: 30000 },
    async () => {
	const db = await h.freshDb(pg, 'wh_bad_backoff');
	for (const v of ['abc', '0', '3600001']) {
		await assert.rejects(h.startKiln({ name: 'wh_bad_backoff',
		    databaseUrl: db.url, env: { KILN_WEBHOOK_BACKOFF_MS: v },
		    healthTimeout: 8000 }), /KILN_WEBHOOK_BACKOFF_MS/, v);
	}
});
