'use strict';

/*
 * Waiting for a change (issue 14, parts 1 and 2): current-token with
 * wait_for_change=true&last_fingerprint=F answers when the token is no
 * longer F, at once when it already is not, with the current token when
 * timeout_sec passes; ETag and If-None-Match; the per-worker cap; a
 * client that goes away is forgotten; the drain answers the waiters.
 */

const assert = require('node:assert/strict');
const http = require('node:http');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const p = require('../lib/prod');

const pg = h.filePg();

function poll(k, name, fpr, timeoutSec, headers = {})
{
	let q = `?wait_for_change=true&last_fingerprint=${fpr}`;
	if (timeoutSec !== undefined)
		q += `&timeout_sec=${timeoutSec}`;
	const t0 = Date.now();
	return k.currentToken(name, { query: q, headers,
	    timeout: 40000 }).then((r) => Object.assign(r, { took:
	    Date.now() - t0 }));
}

/* A long-poll on a raw connection the test can cut. */
function rawPoll(k, name, fpr)
{
	const req = http.get({ host: '127.0.0.1', port: k.port,
	    path: `/api/tokens/${name}/current-token?wait_for_change=true` +
	    `&last_fingerprint=${fpr}&timeout_sec=30`, agent: false });
	req.on('error', () => {});
	return req;
}

async function metric(k, name)
{
	const r = await k.get('/metrics');
	const m = r.text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
	assert.ok(m, `${name} in /metrics:\n${r.text.slice(0, 400)}`);
	return Number(m[1]);
}

async function current(k, name)
{
	const r = await k.currentToken(name);
	assert.equal(r.status, 200, r.text);
	return r;
}

test('longpoll_answers_soon_after_refresh_with_new_fingerprint',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'lp_refresh', { sources:
	    [{ name: 'lp' }] });
	const { k } = env;
	await h.waitToken(k, 'lp');
	const before = (await current(k, 'lp')).json;

	const lp = poll(k, 'lp', before.fingerprint, 30);
	let answered = false;
	lp.then(() => {
		answered = true;
	}, () => {});
	await h.sleep(500);
	assert.equal(answered, false, 'the long-poll waits while the ' +
	    'fingerprint is the one it has');
	assert.equal(await metric(k, 'kiln_waiters'), 1);

	const sent = Date.now();
	const f = await a.call(k, 'POST', '/api/tokens/lp/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	const r = await lp;
	const answeredAt = Date.now();
	const after = answeredAt - sent;
	/* the refresh is its commit: refresh_events.finished_at */
	const ev = (await p.eventsMs(env.db, 'lp')).find((e) =>
	    Number(e.generation) === r.json.generation);
	assert.ok(ev, `the event of generation ${r.json.generation}`);
	const sinceCommit = Math.round(answeredAt - ev.finished_ms);
	console.log(`long-poll answered ${sinceCommit} ms after the ` +
	    `refresh's commit, ${after} ms after it was asked (held ` +
	    `${r.took} ms)`);

	assert.equal(r.status, 200, r.text);
	assert.notEqual(r.json.fingerprint, before.fingerprint);
	assert.notEqual(r.json.token, before.token);
	assert.equal(r.headers.etag, `"${r.json.fingerprint}"`);
	assert.ok(sinceCommit <= 200, `answered ${sinceCommit} ms after ` +
	    'the refresh was committed');
	assert.equal((await current(k, 'lp')).json.fingerprint,
	    r.json.fingerprint);
	assert.equal(await metric(k, 'kiln_waiters'), 0);
});

test('stale_fingerprint_answers_at_once_and_timeout_answers_current',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'lp_stale', { sources:
	    [{ name: 'st' }] });
	const { k } = env;
	await h.waitToken(k, 'st');
	const cur = (await current(k, 'st')).json;

	const stale = await poll(k, 'st', '0123456789ab', 30);
	assert.equal(stale.status, 200, stale.text);
	assert.equal(stale.json.fingerprint, cur.fingerprint);
	assert.ok(stale.took < 1000, `stale answered in ${stale.took} ms`);

	/* No last_fingerprint: nothing to wait for. */
	const none = await k.currentToken('st', { query:
	    '?wait_for_change=true&timeout_sec=30' });
	assert.equal(none.status, 200, none.text);

	const late = await poll(k, 'st', cur.fingerprint, 1);
	assert.equal(late.status, 200, late.text);
	assert.equal(late.json.fingerprint, cur.fingerprint);
	assert.equal(late.json.token, cur.token);
	assert.ok(late.took >= 950 && late.took < 3000,
	    `timeout_sec=1 answered after ${late.took} ms`);
	console.log(`timeout_sec=1 answered after ${late.took} ms`);

	for (const q of ['?wait_for_change=yes', '?wait_for_change=true' +
	    '&last_fingerprint=xyz', '?wait_for_change=true&timeout_sec=0',
	    '?wait_for_change=true&timeout_sec=301',
	    '?wait_for_change=true&timeout_sec=abc',
	    '?wait_for_change=true&min_ttl=10']) {
		const r = await k.currentToken('st', { query: q });
		a.assertError(r, 400, q);
	}
});

test('etag_and_if_none_match_304', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'etag', { sources:
	    [{ name: 'et' }] });
	const { k } = env;
	await h.waitToken(k, 'et');
	const r = await current(k, 'et');
	const tag = `"${r.json.fingerprint}"`;
	assert.equal(r.headers.etag, tag);

	for (const inm of [tag, `W/${tag}`, `"000000000000", ${tag}`, '*']) {
		const n = await k.currentToken('et', { headers:
		    { 'If-None-Match': inm } });
		assert.equal(n.status, 304, `${inm}: ${n.status}`);
		assert.equal(n.text, '', 'no body');
		assert.equal(n.headers.etag, tag);
	}
	const other = await k.currentToken('et', { headers:
	    { 'If-None-Match': '"000000000000"' } });
	assert.equal(other.status, 200);
	assert.equal(other.json.token, r.json.token);
});

test('waiter_cap_503_and_gone_clients_are_released', { timeout: 60000 },
    async () => {
	const env = await a.adminKiln(pg, 'lp_cap', { sources:
	    [{ name: 'cap' }], env: { KILN_WAITERS_MAX: '2' } });
	const { k } = env;
	await h.waitToken(k, 'cap');
	const cur = (await current(k, 'cap')).json;

	const r1 = rawPoll(k, 'cap', cur.fingerprint);
	const r2 = rawPoll(k, 'cap', cur.fingerprint);
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 2,
	    { timeout: 5000 });
	const over = await poll(k, 'cap', cur.fingerprint, 30);
	a.assertError(over, 503, 'third waiter');
	assert.ok(Number(over.headers['retry-after']) >= 1,
	    'Retry-After on the cap');

	/* A client that hangs up is forgotten: its place is free. */
	r1.destroy();
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 1,
	    { timeout: 5000 });
	const r3 = rawPoll(k, 'cap', cur.fingerprint);
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 2,
	    { timeout: 5000 });
	r2.destroy();
	r3.destroy();
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 0,
	    { timeout: 5000 });
	assert.equal((await current(k, 'cap')).status, 200);
});

test('drain_answers_waiting_longpolls', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'lp_drain', { sources:
	    [{ name: 'dr' }] });
	const { k } = env;
	await h.waitToken(k, 'dr');
	const cur = (await current(k, 'dr')).json;

	const lp = poll(k, 'dr', cur.fingerprint, 60);
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 1,
	    { timeout: 5000 });
	const t0 = Date.now();
	k.signal('SIGTERM');
	const r = await lp;
	const took = Date.now() - t0;
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.fingerprint, cur.fingerprint);
	assert.ok(took < 2000, `answered ${took} ms after SIGTERM`);
});

test('longpoll_answers_503_when_the_token_expires', { timeout: 60000 },
    async () => {
	/* Tokens live 6 s; every refresh fails, so the token expires. */
	const env = await a.adminKiln(pg, 'lp_expire', { sources:
	    [{ name: 'ex' }], lifetime: 6 });
	const { k, idp } = env;
	const first = await h.waitToken(k, 'ex');
	await idp.control({ fail_next: { status: 500, count: 1000 } });
	const exp = h.parseIso(first.json.expires_at);

	const r = await poll(k, 'ex', first.json.fingerprint, 60);
	const at = Date.now();
	assert.equal(r.status, 503, r.text);
	assert.equal(r.json.valid, false);
	assert.equal(r.json.token, null);
	assert.ok(Number(r.headers['retry-after']) >= 1);
	assert.ok(at >= exp - 1500 && at < exp + 1500,
	    `answered ${at - exp} ms from the expiry`);
});

/*
 * One keep-alive connection, raw: send each request when told, collect
 * the answers (a head and a content-length body each) and the close.
 */
function rawConn(port)
{
	const net = require('node:net');
	const sock = net.connect({ host: '127.0.0.1', port });
	const c = { answers: [], closed: false, buf: Buffer.alloc(0) };
	sock.on('data', (d) => {
		c.buf = Buffer.concat([c.buf, d]);
		for (;;) {
			const i = c.buf.indexOf('\r\n\r\n');
			if (i < 0)
				return;
			const head = c.buf.subarray(0, i).toString('latin1');
			const m = head.match(/^content-length: (\d+)\r?$/mi);
			const len = m ? Number(m[1]) : 0;
			if (c.buf.length < i + 4 + len)
				return;
			const lines = head.split('\r\n');
			c.answers.push({ status: Number(lines[0].split(' ')[1]),
			    line: lines[0], headers: lines.slice(1).map((l) => {
				const j = l.indexOf(':');
				return [l.slice(0, j), l.slice(j + 1).trim()];
			    }), body: c.buf.subarray(i + 4, i + 4 + len)
			    .toString() });
			c.buf = c.buf.subarray(i + 4 + len);
		}
	});
	sock.on('close', () => {
		c.closed = true;
	});
	sock.on('error', () => {});
	c.send = (s) => sock.write(s);
	c.end = () => sock.destroy();
	return c;
}

test('woken_longpoll_answer_is_current_tokens_and_keeps_alive',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'lp_wire', { sources:
	    [{ name: 'wi' }] });
	const { k } = env;
	await h.waitToken(k, 'wi');
	const cur = (await current(k, 'wi')).json;
	const path = '/api/tokens/wi/current-token';
	const wait = `${path}?wait_for_change=true&last_fingerprint=` +
	    `${cur.fingerprint}&timeout_sec=30`;

	/* HTTP/1.1 keep-alive, HTTP/1.1 Connection: close, HTTP/1.0. */
	const ka = rawConn(k.port);
	ka.send(`GET ${wait} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
	const cl = rawConn(k.port);
	cl.send(`GET ${wait} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
	    'Connection: close\r\n\r\n');
	const old = rawConn(k.port);
	old.send(`GET ${wait} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
	await h.waitFor(async () => await metric(k, 'kiln_waiters') === 3,
	    { timeout: 5000, what: 'three waiters' });

	const f = await a.call(k, 'POST', '/api/tokens/wi/refresh',
	    { auth: env.adminKey });
	assert.ok(f.status < 300, `refresh: ${f.status} ${f.text}`);
	await h.waitFor(() => ka.answers.length === 1 &&
	    cl.answers.length === 1 && old.answers.length === 1,
	    { timeout: 5000, what: 'three answers' });

	/* The same request, not waiting, on the keep-alive connection. */
	ka.send(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
	await h.waitFor(() => ka.answers.length === 2, { timeout: 5000,
	    what: 'a second answer on the same connection' });
	const [woken, plain] = ka.answers;
	assert.equal(woken.line, 'HTTP/1.1 200 OK');
	const fresh = JSON.parse(woken.body);
	assert.notEqual(fresh.fingerprint, cur.fingerprint);
	assert.deepEqual(JSON.parse(plain.body), Object.assign({}, fresh,
	    { expires_in: JSON.parse(plain.body).expires_in }));
	/* Header for header what current-token sends, but its request id. */
	const names = (x) => x.headers.map(([n]) => n);
	assert.deepEqual(names(woken), names(plain));
	for (const [i, [n, v]] of woken.headers.entries()) {
		if (n === 'X-Request-Id') {
			assert.notEqual(v, plain.headers[i][1]);
			continue;
		}
		if (n === 'content-length')
			assert.equal(Number(v), Buffer.byteLength(woken.body));
		else
			assert.equal(v, plain.headers[i][1], n);
	}
	assert.equal(ka.closed, false);

	for (const [c, what] of [[cl, 'Connection: close'], [old,
	    'HTTP/1.0']]) {
		assert.equal(c.answers[0].status, 200, what);
		assert.equal(JSON.parse(c.answers[0].body).fingerprint,
		    fresh.fingerprint, what);
		assert.ok(c.answers[0].headers.some(([n, v]) =>
		    n === 'connection' && v === 'close'), what);
		await h.waitFor(() => c.closed, { timeout: 5000, what });
	}
	ka.end();
});
