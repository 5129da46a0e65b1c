'use strict';

/*
 * Issue 10 §5: hostile requests get a readable JSON answer.
 *
 * - A body over http_body_max (64 KiB) gets a 413 in kiln's error shape
 *   that the client actually reads (curl with and without
 *   Expect: 100-continue, node's http writing the whole body): Kore
 *   answers, then reads and discards the rest before closing.
 * - Kore's own refusals (414, 431, 400, 411, 505) are the same JSON.
 * - traceparent is continued only when it is valid W3C; anything else
 *   starts a new trace, and nothing unchecked reaches the upstream.
 * - DNS rebinding: a loopback kiln answers only loopback Host names
 *   (421 otherwise); KILN_ALLOWED_HOSTS names the only hosts answered.
 */

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { promisify } = require('node:util');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();
const run = promisify(execFile);
const S = {};

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const W3C = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/* A token endpoint that records the traceparent of every request. */
function startCapture()
{
	const seen = [];
	const server = http.createServer((req, res) => {
		req.resume();
		req.on('end', () => {
			seen.push(req.headers.traceparent === undefined ?
			    null : req.headers.traceparent);
			const body = JSON.stringify({ access_token:
			    `cap-${crypto.randomBytes(12).toString('hex')}`,
			    token_type: 'Bearer', expires_in: 3600 });
			res.writeHead(200, { 'Content-Type': 'application/json',
			    'Content-Length': Buffer.byteLength(body) });
			res.end(body);
		});
	});
	return new Promise((resolve) => {
		server.listen(0, '127.0.0.1', () => resolve({ seen, server,
		    url: `http://127.0.0.1:${server.address().port}/token` }));
	});
}

before(async () => {
	S.capture = await startCapture();
	S.env = await a.adminKiln(pg, 'trust_hostile', {
		sources: [{ name: 'alpha' }, { name: 'traced',
		    token_url: S.capture.url }],
		lifetime: 3600,
		env: { KILN_RATE_ANONYMOUS: '100000' },
	});
	await h.waitToken(S.env.k, 'alpha');
	await h.waitToken(S.env.k, 'traced');
	S.dir = h.procs.mkTmp('trust_hostile_bodies');
});

after(() => {
	if (S.capture)
		S.capture.server.close();
});

function assertJsonError(r, status, what, code = null)
{
	assert.equal(r.status, status, `${what}: status ${r.status} ` +
	    `(${r.why || ''}) ${String(r.text).slice(0, 200)}`);
	assert.match(String(r.headers['content-type']), /^application\/json/i,
	    `${what}: content-type ${r.headers['content-type']}`);
	const b = r.json;
	assert.ok(b && b.success === false && b.error &&
	    typeof b.error.code === 'string' &&
	    typeof b.error.message === 'string',
	    `${what}: not the error shape: ${String(r.text).slice(0, 200)}`);
	if (code !== null)
		assert.equal(b.error.code, code, `${what}: error.code`);
}

function bodyFile(size)
{
	const f = path.join(S.dir, `body-${size}.json`);
	if (!fs.existsSync(f)) {
		const pad = 'x'.repeat(size - 20);
		fs.writeFileSync(f, JSON.stringify({ fingerprint: pad }));
	}
	return f;
}

/* curl's view: the status it received, the body, its exit. */
async function curlPost(url, file, { auth = null, expect = true } = {})
{
	const out = path.join(S.dir, `out-${crypto.randomUUID()}`);
	const hdr = `${out}.h`;
	const args = ['-sS', '-o', out, '-D', hdr, '-w', '%{http_code}',
	    '-X', 'POST', '-H', 'Content-Type: application/json',
	    '--data-binary', `@${file}`, '--max-time', '20'];
	if (auth !== null)
		args.push('-H', `Authorization: Bearer ${auth}`);
	if (!expect)
		args.push('-H', 'Expect:');
	args.push(url);
	let stdout, stderr, code = 0;
	try {
		({ stdout, stderr } = await run('curl', args));
	} catch (e) {
		({ stdout, stderr } = e);
		code = e.code;
	}
	const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
	const headers = {};
	if (fs.existsSync(hdr)) {
		for (const l of fs.readFileSync(hdr, 'latin1').split('\r\n')) {
			const i = l.indexOf(':');
			if (i > 0)
				headers[l.slice(0, i).trim().toLowerCase()] =
				    l.slice(i + 1).trim();
		}
	}
	let json;
	try {
		json = JSON.parse(text);
	} catch (e) {
		json = undefined;
	}
	return { status: Number(stdout), code, why: stderr.trim(), text,
	    json, headers };
}

test('oversized_bodies_get_a_json_413_the_client_reads',
    { timeout: 120000 }, async () => {
	const { k, adminKey } = S.env;
	const targets = [
		['admin POST /api/tokens', '/api/tokens', adminKey],
		['public rejected', '/api/tokens/alpha/current-token/rejected',
		    null],
	];
	for (const size of [300 * 1024, 12 * 1024 * 1024]) {
		const file = bodyFile(size);
		for (const [what, p, auth] of targets) {
			for (const expect of [true, false]) {
				const label = `${what}, ${size} bytes, curl ` +
				    `${expect ? 'default' : 'without Expect'}`;
				const r = await curlPost(k.url + p, file,
				    { auth, expect });
				assert.equal(r.code, 0, `${label}: curl exit ` +
				    `${r.code}: ${r.why}`);
				assertJsonError(r, 413, label,
				    'payload_too_large');
			}
			const label = `${what}, ${size} bytes, node http`;
			let r;
			try {
				r = await k.request(p, { method: 'POST',
				    body: fs.readFileSync(file), timeout: 20000,
				    headers: Object.assign({ 'Content-Type':
				    'application/json' }, auth ? {
				    Authorization: `Bearer ${auth}` } : {}) });
			} catch (e) {
				assert.fail(`${label}: ${e.code || e.message}`);
			}
			assertJsonError(r, 413, label, 'payload_too_large');
		}
	}

	/* Still answering, and a body under the limit still goes through. */
	const ok = await a.call(k, 'POST', '/api/prewarming/refresh',
	    { auth: adminKey });
	assert.ok(ok.status < 300, `refresh: ${ok.status} ${ok.text}`);
	assert.equal((await k.get('/health')).status, 200);
	assert.deepEqual(a.crashLines(k), [], 'no worker died');
});

test('kore_refusals_answer_json', { timeout: 60000 }, async () => {
	const { k } = S.env;
	const many = (n, size) => Array.from({ length: n },
	    (_, i) => [`X-Flood-${i}`, 'v'.repeat(size)]);
	const rows = [
		['5000-byte URI', a.reqBytes('GET',
		    `/api/tokens/${'a'.repeat(5000)}`), 414, 'uri_too_long'],
		['one 10 KiB header', a.reqBytes('GET', '/health',
		    { headers: [['X-Big', 'x'.repeat(10240)]] }), 431,
		    'headers_too_large'],
		['1000 headers (64 KiB)', a.reqBytes('GET', '/health',
		    { headers: many(1000, 60) }), 431, 'headers_too_large'],
		['garbage request line', Buffer.from('GARBAGE\r\n\r\n'), 400,
		    'bad_request'],
		['no Host on HTTP/1.1', Buffer.from('GET /health HTTP/1.1\r\n' +
		    'Connection: close\r\n\r\n'), 400, 'bad_request'],
		['header line without a colon', Buffer.from('GET /health ' +
		    'HTTP/1.1\r\nHost: 127.0.0.1\r\nBroken\r\n\r\n'), 400,
		    'bad_request'],
		['chunked body', a.reqBytes('POST', '/api/tokens',
		    { noCl: true, headers: [['Transfer-Encoding', 'chunked']],
		    body: '2\r\n{}\r\n0\r\n\r\n' }), 411, 'length_required'],
		['HTTP/9.9', Buffer.from('GET /health HTTP/9.9\r\n' +
		    'Host: 127.0.0.1\r\n\r\n'), 505, null],
	];
	for (const [what, bytes, status, code] of rows) {
		const r = await a.raw(k.port, bytes, { timeout: 10000 });
		assertJsonError(r, status, what, code);
	}
	assert.equal((await k.get('/health')).status, 200);
});

/* Ask for a refresh of 'traced' and return the traceparent it sent. */
async function upstreamTrace(k, adminKey, traceparent)
{
	const seen = S.capture.seen;
	for (let attempt = 0; attempt < 5; attempt++) {
		const n = seen.length;
		const headers = traceparent === null ? {} : { traceparent };
		const r = await a.call(k, 'POST', '/api/tokens/traced/refresh',
		    { auth: adminKey, headers });
		assert.equal(r.status, 202, r.text);
		try {
			await h.waitFor(() => seen.length > n,
			    { timeout: 3000, what: 'an upstream call' });
			/* let the attempt commit before the next one */
			await h.sleep(150);
			return seen[seen.length - 1];
		} catch (e) {
			/* an attempt still in flight swallowed it: again */
		}
	}
	throw new Error('no upstream call for a forced refresh');
}

test('only_a_valid_traceparent_is_continued_upstream',
    { timeout: 90000 }, async () => {
	const { k, adminKey } = S.env;

	const good = `00-${TRACE}-${PARENT}-01`;
	const sent = await upstreamTrace(k, adminKey, good);
	const m = W3C.exec(String(sent));
	assert.ok(m, `valid: upstream got ${sent}`);
	assert.equal(m[1], TRACE, 'valid: the trace continues');
	assert.notEqual(m[2], PARENT, 'valid: kiln is the new parent');
	assert.equal(m[3], '01', 'valid: sampled flag kept');

	const invalid = [
		['uppercase trace id', `00-${TRACE.toUpperCase()}-${PARENT}-01`],
		['uppercase parent id', `00-${TRACE}-${PARENT.toUpperCase()}-01`],
		['version ff', `ff-${TRACE}-${PARENT}-01`],
		['zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
		['zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
		['trace id 31, parent 17', `00-${TRACE.slice(1)}-9${PARENT}-01`],
		['version 00 with a trailing field', `${good}-extra`],
		['one character short', good.slice(0, -1)],
		['non-hex trace id', `00-${TRACE.slice(0, 30)}zz-${PARENT}-01`],
		['non-hex flags', `00-${TRACE}-${PARENT}-0g`],
	];
	for (const [what, tp] of invalid) {
		const got = await upstreamTrace(k, adminKey, tp);
		const g = W3C.exec(String(got));
		assert.ok(g, `${what}: upstream got ${got}, expected a new ` +
		    'valid traceparent');
		assert.notEqual(g[1], TRACE, `${what}: the trace id was ` +
		    `taken from the bad header (${got})`);
		assert.notEqual(g[1], '0'.repeat(32), `${what}: zero trace`);
		assert.ok(!String(got).toLowerCase().includes(
		    tp.slice(3, 35).toLowerCase()), `${what}: ${got}`);
	}
});

/* One request with a given Host header, raw. */
function withHost(port, host, p = '/health')
{
	return a.raw(port, a.reqBytes('GET', p, { host }), { timeout: 10000 });
}

test('loopback_kiln_answers_only_loopback_host_names',
    { timeout: 60000 }, async () => {
	const { k } = S.env;
	const port = k.port;
	for (const host of ['evil.example', `evil.example:${port}`,
	    'attacker.127.0.0.1.nip.io', '10.0.0.1', '[::2]', '127.0.0.1.',
	    'localhost.evil.example']) {
		const r = await withHost(port, host);
		assertJsonError(r, 421, `Host: ${host}`, 'misdirected_request');
	}
	for (const host of ['localhost', `localhost:${port}`, 'LocalHost',
	    '127.0.0.1', `127.0.0.1:${port}`, '127.1.2.3', '[::1]',
	    `[::1]:${port}`]) {
		const r = await withHost(port, host);
		assert.equal(r.status, 200, `Host: ${host}: ${r.status} ` +
		    `${r.text}`);
	}
	/* The public endpoint too, not only /health. */
	const t = await withHost(port, 'evil.example',
	    '/api/tokens/alpha/current-token');
	assertJsonError(t, 421, 'current-token from evil.example');
});

test('allowed_hosts_are_the_only_names_answered', { timeout: 60000 },
    async () => {
	const db = await h.freshDb(pg, 'trust_allowed_hosts');
	const k = await h.startKiln({ name: 'trust_allowed_hosts',
	    databaseUrl: db.url, waitHealth: false,
	    env: { KILN_ALLOWED_HOSTS: 'kiln.example, Other.Example' } });
	await h.waitFor(async () => (await withHost(k.port,
	    'kiln.example')).status === 200, { timeout: 20000,
	    what: '/health for Host: kiln.example' });
	for (const host of ['kiln.example', `kiln.example:${k.port}`,
	    'KILN.Example', 'other.example']) {
		const r = await withHost(k.port, host);
		assert.equal(r.status, 200, `Host: ${host}: ${r.status} ` +
		    `${r.text}`);
	}
	for (const host of ['localhost', `127.0.0.1:${k.port}`,
	    'evil.example', 'kiln.example.evil', 'kiln.example:x']) {
		const r = await withHost(k.port, host);
		assertJsonError(r, 421, `Host: ${host}`);
	}
	await k.stop();
});

test('bad_allowed_hosts_stops_the_start', { timeout: 60000 }, async () => {
	const db = await h.freshDb(pg, 'trust_bad_hosts');
	const k = await h.startKiln({ name: 'trust_bad_hosts',
	    databaseUrl: db.url, waitHealth: false,
	    env: { KILN_ALLOWED_HOSTS: 'kiln.example,evil/path' } });
	await h.waitFor(() => k.exited !== null, { timeout: 20000,
	    what: 'kiln to refuse to start' });
	assert.notEqual(k.exited.code, 0, 'a failed start');
	assert.match(k.logs(), /KILN_ALLOWED_HOSTS/);
});
