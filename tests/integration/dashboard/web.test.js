'use strict';

/*
 * Issue 10 §5, the web surface: what a hostile page, client or peer can
 * do to the dashboard and its sockets.
 *
 * login_page_escapes_reflected_csrf: a login CSRF value planted in the
 *   cookie (and echoed in the form) comes back escaped, never as markup.
 * html_answers_send_security_headers: every HTML answer (login form,
 *   refused login, the dashboard) has a CSP without inline script, and
 *   nosniff and no-referrer.
 * websocket_upgrade_while_draining_is_refused: upgrades sent on
 *   keep-alive connections after SIGTERM get a JSON 503, no worker dies
 *   (and nothing in the log under ASan), the drain ends.
 * websocket_that_never_reads_is_closed: a socket that stops reading
 *   while the server pushes (it keeps asking for pages of the table,
 *   which the server answers at once) is closed once about 1 MiB is
 *   queued for it; the worker's memory stays bounded.
 * websocket_sockets_per_session_capped: 8 sockets of one session over
 *   both workers, the 9th is refused with 429; one closed makes room;
 *   another session is not affected.
 * public_allow_matches_ipv4_on_dual_stack_listener: on a `::` listener
 *   an IPv4 client (seen as ::ffff:127.0.0.1) matches 127.0.0.1/32 of
 *   KILN_PUBLIC_ALLOW, and ::1 does not.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const p = require('../lib/prod');
const d = require('../../browser/lib/dash');

const pg = h.filePg();

const EVIL = '"><script>alert(1)</script>';

/* ./kiln built with the sanitizers (make FLAVOR=asan): its RSS says
 * nothing about kiln's memory (shadow memory, quarantine). */
function sanitized()
{
	try {
		return fs.readFileSync(path.join(h.procs.REPO, '.build',
		    'flavor'), 'utf8').trim() === 'asan';
	} catch (e) {
		return false;
	}
}

function assertSecurityHeaders(r, what)
{
	assert.match(String(r.headers['content-type']), /^text\/html/,
	    `${what}: an HTML answer`);
	const csp = String(r.headers['content-security-policy'] || '');
	const dir = {};
	for (const part of csp.split(';')) {
		const [name, ...vals] = part.trim().split(/\s+/);
		if (name)
			dir[name.toLowerCase()] = vals.join(' ');
	}
	assert.equal(dir['script-src'], "'self'", `${what}: CSP script-src ` +
	    `'self' only (${csp})`);
	assert.equal(dir['object-src'], "'none'", `${what}: object-src`);
	assert.equal(dir['base-uri'], "'none'", `${what}: base-uri`);
	assert.equal(dir['frame-ancestors'], "'none'",
	    `${what}: frame-ancestors`);
	assert.ok(!/unsafe-inline|unsafe-eval/.test(csp),
	    `${what}: nothing unsafe in the CSP (${csp})`);
	assert.equal(r.headers['x-content-type-options'], 'nosniff',
	    `${what}: X-Content-Type-Options`);
	assert.equal(r.headers['referrer-policy'], 'no-referrer',
	    `${what}: Referrer-Policy`);
}

/* A failed login whose double-submit CSRF value is `value` in both the
 * cookie and the form field. */
function plantedLogin(k, value)
{
	return k.post('/dashboard/login', `csrf=${encodeURIComponent(value)}` +
	    '&credential=not-a-valid-key', { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${value}`,
	    } });
}

/* The head of a WebSocket upgrade of the dashboard. */
function upgradeHeaders(port, cookie)
{
	return {
		Upgrade: 'websocket',
		Connection: 'Upgrade',
		'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
		'Sec-WebSocket-Version': '13',
		Origin: `http://127.0.0.1:${port}`,
		Cookie: cookie,
	};
}

/* Sanitizer reports, worker deaths and restarts in a kiln's log. */
function crashes(k)
{
	const lines = k.logs().split('\n');
	return [...p.workerDeaths(k), ...lines.filter((l) =>
	    /AddressSanitizer|LeakSanitizer|runtime error:|SUMMARY: /
	    .test(l))];
}

test('login_page_escapes_reflected_csrf', async () => {
	const { k } = await a.adminKiln(pg, 'tw_escape');
	/* the double submit wants 32 characters in cookie and field */
	const value = EVIL + 'x'.repeat(32 - EVIL.length);
	const r = await plantedLogin(k, value);
	assert.equal(r.status, 401, `refused login: ${r.text.slice(0, 200)}`);
	assert.ok(!r.text.includes('<script'), 'no <script> in the page: ' +
	    r.text.slice(0, 800));
	assert.ok(!r.text.includes('">'.concat('<')), 'no attribute break-out');
	assert.ok(r.text.includes('&quot;&gt;&lt;script&gt;'),
	    'the value is shown escaped');
});

test('html_answers_send_security_headers', async () => {
	const { k, adminKey } = await a.adminKiln(pg, 'tw_headers');
	assertSecurityHeaders(await k.get('/dashboard/login'), 'login form');
	const refused = await plantedLogin(k, 'a'.repeat(32));
	assert.equal(refused.status, 401);
	assertSecurityHeaders(refused, 'refused login');
	const s = await d.httpLogin(k, adminKey);
	const page = await k.get('/dashboard', { headers:
	    { Cookie: s.cookie } });
	assert.equal(page.status, 200);
	assertSecurityHeaders(page, 'dashboard');
	/* the page itself runs no inline script and no inline handler */
	assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(page.text),
	    'no inline <script>');
	assert.ok(!/\son[a-z]+\s*=/.test(page.text), 'no on* attribute');
});

test('websocket_upgrade_while_draining_is_refused', { timeout: 90000 },
    async () => {
	const { k, db, adminKey } = await a.adminKiln(pg, 'tw_drain',
	    { workers: 2, env: { KILN_DRAIN_TIMEOUT: '20' } });
	const s = await d.httpLogin(k, adminKey);
	/* keep-alive connections, accepted before the drain */
	const conns = [];
	for (let i = 0; i < 8; i++) {
		const c = await d.pinned(k.port);
		const r = await c.request('GET', '/health');
		assert.equal(r.status, 200);
		conns.push(c);
	}
	const before = await d.wsClient(k, { cookie: s.cookie });
	assert.ok(!before.refused, 'a socket before the drain');
	/* a page request held in flight keeps the drain going */
	const lock = await p.holdSession(db, 'BEGIN; LOCK TABLE ' +
	    'refresh_events IN ACCESS EXCLUSIVE MODE;');
	const inFlight = k.get('/dashboard', { headers: { Cookie: s.cookie },
	    timeout: 30000 }).catch((e) => ({ error: e.message }));
	await h.sleep(500);

	const sigAt = Date.now();
	process.kill(k.pid, 'SIGTERM');
	await before.waitFor((c) => c.shutdown !== null, 5000,
	    'shutdown_pending on the socket opened before');
	await h.sleep(200);
	const answers = await Promise.all(conns.map((c) =>
	    c.request('GET', '/dashboard/ws', { headers:
	    upgradeHeaders(k.port, s.cookie) }).catch((e) =>
	    ({ error: e.message }))));
	await h.sleep(300);
	lock.release();
	const page = await inFlight;
	await h.waitFor(() => k.exited, { timeout: 30000,
	    what: 'the end of the drain' });
	const exit = k.exited;
	const took = exit.at - sigAt;
	const statuses = answers.map((x) => x.status || x.error);
	console.log(`# upgrades during the drain: ${JSON.stringify(statuses)}` +
	    `; page in flight ${page.status || page.error}; exit ` +
	    `${JSON.stringify(exit)} ${took} ms after SIGTERM`);
	for (const x of answers) {
		assert.equal(x.status, 503, `upgrade while draining: ` +
		    JSON.stringify(x).slice(0, 300));
		const body = JSON.parse(x.text);
		assert.equal(body.success, false);
		assert.equal(body.error.code, 'draining');
	}
	assert.equal(page.status, 200, 'the page in flight was answered');
	assert.deepEqual(crashes(k), [], 'no worker died, no sanitizer report');
	const logs = k.jsonLogs().map((l) => l.msg);
	assert.ok(logs.includes('drained'), 'the drain ended');
});

/* A raw WebSocket upgrade on a new connection; resolves once the 101
 * head arrived, with the socket (bytes after the head are counted). */
function rawSocket(port, cookie)
{
	return new Promise((resolve, reject) => {
		const sock = net.connect({ host: '127.0.0.1', port });
		const st = { sock, bytes: 0, head: null, ended: false };
		let buf = Buffer.alloc(0);
		sock.on('error', (e) => {
			st.error = e.code;
			if (st.head === null)
				reject(e);
		});
		sock.on('close', () => {
			st.ended = true;
		});
		sock.on('data', (c) => {
			if (st.head !== null) {
				st.bytes += c.length;
				return;
			}
			buf = Buffer.concat([buf, c]);
			const end = buf.indexOf('\r\n\r\n');
			if (end < 0)
				return;
			st.head = buf.subarray(0, end).toString('latin1');
			st.bytes = buf.length - end - 4;
			resolve(st);
		});
		sock.on('connect', () => {
			const hd = upgradeHeaders(port, cookie);
			sock.write('GET /dashboard/ws HTTP/1.1\r\n' +
			    `Host: 127.0.0.1:${port}\r\n` + Object.entries(hd)
			    .map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n');
		});
		h.procs.onCleanup(() => sock.destroy());
	});
}

/* A masked client text frame (RFC 6455 §5.3), payload < 126 bytes. */
function clientFrame(text)
{
	const payload = Buffer.from(text);
	const mask = crypto.randomBytes(4);
	const head = Buffer.from([0x81, 0x80 | payload.length]);
	const body = Buffer.alloc(payload.length);
	for (let i = 0; i < payload.length; i++)
		body[i] = payload[i] ^ mask[i % 4];
	return Buffer.concat([head, mask, body]);
}

async function openSockets(k)
{
	const r = await k.get('/metrics');
	const m = /^kiln_websockets_open (-?\d+)/m.exec(r.text);
	return m ? Number(m[1]) : NaN;
}

test('websocket_that_never_reads_is_closed', { timeout: 120000 },
    async () => {
	/* Many sources with long names make every page of the table large
	 * (no upstream is called: pre-warming is off). */
	const sources = [];
	for (let i = 0; i < 600; i++)
		sources.push({ name: `s${String(i).padStart(4, '0')}-` +
		    'x'.repeat(58), kind: 'client_credentials',
		    token_url: 'http://127.0.0.1:9/token', client_id: 'c',
		    client_secret: 'secret-of-the-test' });
	const db = await h.freshDb(pg, 'tw_slow');
	const k = await h.startKiln({ name: 'tw_slow', databaseUrl: db.url,
	    sources, workers: 1, env: { KILN_ADMIN_KEY: a.ADMIN_KEY,
	    PREWARMING_ENABLED: 'false' } });
	const s = await d.httpLogin(k, a.ADMIN_KEY);
	const st = await rawSocket(k.port, s.cookie);
	assert.match(st.head, /^HTTP\/1\.1 101/);
	st.sock.pause();		/* never read again */
	const pid = k.pid;
	const wpid = h.childPids(pid)[0];
	const rss0 = h.rssKb(wpid);
	let rssMax = rss0;
	const t0 = Date.now();
	let closedAt = null;
	let page = 0;
	while (Date.now() - t0 < 60000) {
		rssMax = Math.max(rssMax, h.rssKb(wpid) || 0);
		if (await openSockets(k) === 0) {
			closedAt = Date.now();
			break;
		}
		/* Pages of the table, each pushed at once: it never reads. */
		for (let i = 0; i < 5 && !st.ended; i++)
			st.sock.write(clientFrame(JSON.stringify({ type: 'view',
			    query: `page=${page++ % 12 + 1}` })));
		await h.sleep(250);
	}
	const rssEnd = h.rssKb(wpid);
	const figures = () => console.log(`# a socket that does not read: ` +
	    `closed after ${closedAt && closedAt - t0} ms, ${st.bytes} bytes ` +
	    `reached the client; worker RSS ${rss0} kB -> max ${rssMax} kB, ` +
	    `${rssEnd} kB after`);
	if (closedAt === null)
		figures();
	assert.ok(closedAt !== null, 'the server closed the socket that ' +
	    'does not read');
	/* what the kernel held for us is then read, and the stream ends */
	st.sock.resume();
	await h.waitFor(() => st.ended, { timeout: 10000,
	    what: 'the end of the stream' });
	figures();
	assert.ok(k.logs().includes('dashboard socket closed: not reading'),
	    'the log says why');
	assert.ok(st.bytes < 16 * 1024 * 1024, `bounded: ${st.bytes} bytes`);
	if (!sanitized())
		assert.ok(rssMax - rss0 < 24 * 1024, `worker RSS grew by ` +
		    `${rssMax - rss0} kB`);
	/* the others still get their pushes */
	const c = await d.wsClient(k, { cookie: s.cookie });
	await c.waitFor((x) => (x.counts.tokens || 0) >= 1, 5000,
	    'the table on a reading socket');
	c.ws.send(JSON.stringify({ type: 'view', query: 'page=2' }));
	await c.waitFor((x) => (x.counts.tokens || 0) >= 2, 5000,
	    'tokens pushes on a reading socket');
	assert.deepEqual(crashes(k), []);
});

test('websocket_sockets_per_session_capped', { timeout: 90000 },
    async () => {
	const { k, adminKey } = await a.adminKiln(pg, 'tw_cap',
	    { workers: 2 });
	const s = await d.httpLogin(k, adminKey);
	/* over both workers: 4 on one, 5 connections on the other */
	const by = await d.pinBothWorkers(k, s.cookie, { per: 5 });
	const [A, B] = Object.keys(by);
	const open = [];
	for (const [w, n] of [[A, 4], [B, 4]]) {
		for (let i = 0; i < n; i++) {
			const c = await d.wsClient(k, { cookie: s.cookie,
			    socket: by[w][i].sock });
			assert.ok(!c.refused, `socket ${open.length + 1} on ` +
			    `worker ${w}: ${c.status} ${c.body}`);
			open.push(c);
		}
	}
	const ninth = await d.wsClient(k, { cookie: s.cookie,
	    socket: by[B][4].sock });
	assert.ok(ninth.refused, 'the 9th socket of the session is refused');
	assert.equal(ninth.status, 429, ninth.body);
	assert.equal(JSON.parse(ninth.body).success, false);

	/* another session is not affected */
	const other = await d.httpLogin(k, adminKey);
	const c2 = await d.wsClient(k, { cookie: other.cookie });
	assert.ok(!c2.refused, `another session: ${c2.status}`);

	/* one closed makes room for one */
	open.pop().close();
	const again = await h.waitFor(async () => {
		const c = await d.wsClient(k, { cookie: s.cookie });
		return c.refused ? false : c;
	}, { timeout: 5000, interval: 200, what: 'room after a close' });
	assert.ok(again);
	const over = await d.wsClient(k, { cookie: s.cookie });
	assert.equal(over.status, 429, 'full again');
	assert.deepEqual(crashes(k), []);
});

/* One GET over a connection from host (127.0.0.1 or ::1). */
function getFrom(host, port, path)
{
	return new Promise((resolve, reject) => {
		const sock = net.connect({ host, port });
		let buf = '';
		sock.on('error', reject);
		sock.on('data', (c) => {
			buf += c;
		});
		sock.on('close', () => {
			const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
			const body = buf.slice(buf.indexOf('\r\n\r\n') + 4);
			let json;
			try {
				json = JSON.parse(body);
			} catch (e) {
				json = undefined;
			}
			resolve({ status: m ? Number(m[1]) : null, json,
			    text: body });
		});
		sock.on('connect', () => sock.write(`GET ${path} HTTP/1.1\r\n` +
		    `Host: localhost:${port}\r\nConnection: close\r\n\r\n`));
	});
}

test('public_allow_matches_ipv4_on_dual_stack_listener', async () => {
	const secret = h.secret('dual');
	const idp = await h.startOAuth(['--lifetime', '600', '--client',
	    `dual:${secret}:client_credentials`]);
	const db = await h.freshDb(pg, 'tw_dual');
	const port = await h.freePort();
	const k = await h.startKiln({ name: 'tw_dual', databaseUrl: db.url,
	    port, env: { KILN_BIND: `:::${port}`,
	    KILN_PUBLIC_ALLOW: '127.0.0.1/32' },
	    sources: [{ name: 'dual', kind: 'client_credentials',
	    token_url: idp.tokenUrl, client_id: 'dual',
	    client_secret: secret }] });
	const path = '/api/tokens/dual/current-token';
	const v4 = await h.waitFor(async () => {
		const r = await getFrom('127.0.0.1', k.port, path);
		return r.status === 503 ? false : r;
	}, { timeout: 20000, what: 'a token' });
	assert.equal(v4.status, 200, `IPv4 client on a :: listener: ` +
	    v4.text.slice(0, 200));
	assert.equal(v4.json.valid, true);
	const v6 = await getFrom('::1', k.port, path);
	assert.equal(v6.status, 403, `::1 is not in the list: ${v6.text}`);
	assert.equal(v6.json.error.code, 'forbidden');
});
