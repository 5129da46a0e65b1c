'use strict';

/*
 * Helpers for the dashboard tests (tests/browser/*.test.js), on top of the
 * integration harness (tests/integration/lib):
 *
 *   const d = require('./lib/dash');
 *   const s = await d.httpLogin(k, credential);  // {token, cookie, csrf}
 *   const c = await d.wsClient(k, { cookie: s.cookie });  // or .refused
 *   await c.waitFor((c) => c.rows().alpha.gen >= 2, 2000, 'what');
 *   const b = await d.launch();   // Debian chromium, closed in after()
 *   d.watchPage(page, rec);       // every frame and HTML into rec
 *   rec.leaks(secrets)            // secrets found in anything recorded
 *
 * A Recorder keeps every distinct text the server sent (pages, JSON,
 * WebSocket frames) so that a test file can scan them for secrets.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const WebSocket = require('ws');

const h = require('../../integration/lib');

const { sleep } = h;

const ARTIFACTS = path.join(__dirname, '..', 'artifacts');
const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync'];

/* Everything the server sent, deduplicated, with where it was seen. */
class Recorder {
	constructor()
	{
		this.texts = new Map();		/* text -> first place */
		this.frames = 0;
	}

	add(text, where)
	{
		if (typeof text !== 'string')
			text = Buffer.isBuffer(text) ? text.toString('utf8') :
			    String(text);
		if (!this.texts.has(text))
			this.texts.set(text, where);
	}

	/* [{secret label, where, excerpt}] for each secret found. Values
	 * shorter than 12 characters are not meaningful to look for. */
	leaks(secrets)
	{
		const found = [];
		const wanted = [];
		for (const [label, v] of Object.entries(secrets)) {
			for (const s of [].concat(v)) {
				if (typeof s === 'string' && s.length >= 12)
					wanted.push([label, s]);
			}
		}
		for (const [text, where] of this.texts) {
			for (const [label, s] of wanted) {
				const i = text.indexOf(s);
				if (i >= 0)
					found.push({ label, where, excerpt:
					    text.slice(Math.max(0, i - 60),
					    i + 20) });
			}
		}
		return found;
	}
}

/* Durations as the dashboard prints them: "now", "42s", "9m 59s",
 * "2h 05m". NaN for anything else ("—"). */
function parseDuration(s)
{
	s = String(s).trim();
	if (s === 'now')
		return 0;
	let m = /^(\d+)s$/.exec(s);
	if (m)
		return Number(m[1]);
	m = /^(\d+)m (\d\d)s$/.exec(s);
	if (m)
		return Number(m[1]) * 60 + Number(m[2]);
	m = /^(\d+)h (\d\d)m$/.exec(s);
	if (m)
		return Number(m[1]) * 3600 + Number(m[2]) * 60;
	return NaN;
}

/* The rows of a tokens fragment: {name: {state, gen, expires, html}}. */
function tokenRows(html)
{
	const rows = {};
	const re = /<tr data-token="([^"]*)">([\s\S]*?)<\/tr>/g;
	let m;
	while ((m = re.exec(html)) !== null) {
		const badge = /<span class="badge ([a-z-]+)">([^<]*)<\/span>/
		    .exec(m[2]);
		const gen = /<td class="gen">(\d+)<\/td>/.exec(m[2]);
		const exp = /<td class="expires">([^<]*)<\/td>/.exec(m[2]);
		rows[m[1]] = {
			state: badge ? badge[1] : null,
			label: badge ? badge[2] : null,
			gen: gen ? Number(gen[1]) : NaN,
			expires: exp ? parseDuration(exp[1]) : NaN,
			html: m[2],
		};
	}
	return rows;
}

/* [{source, gen, outcome}] of a history fragment, newest first. */
function historyRows(html)
{
	const out = [];
	const re = /<tr><td><time>[^<]*<\/time><\/td><td>([^<]*)<\/td>([\s\S]*?)<\/tr>/g;
	let m;
	while ((m = re.exec(html)) !== null) {
		const tds = [...m[2].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)]
		    .map((x) => x[1]);
		/* trigger, outcome, duration, http, gen, error */
		out.push({ source: m[1], trigger: tds[0],
		    outcome: String(tds[1]).replace(/<[^>]*>/g, ''),
		    gen: Number(tds[4]) });
	}
	return out;
}

function setCookies(r)
{
	return [].concat(r.headers['set-cookie'] || []);
}

function cookieValue(r, name)
{
	for (const c of setCookies(r)) {
		const m = new RegExp(`^${name}=([^;]*)`).exec(c);
		if (m)
			return { value: m[1], header: c };
	}
	return null;
}

/*
 * Sign in over HTTP as a form would: GET the login page (double-submit
 * cookie + field), POST the credential. Returns the session cookie's
 * value, its Set-Cookie line, the page's CSRF token and the page.
 */
async function httpLogin(k, credential, { rec = null } = {})
{
	const f = await k.get('/dashboard/login');
	assert.equal(f.status, 200, `GET /dashboard/login: ${f.status}`);
	const lc = cookieValue(f, 'kiln_login');
	assert.ok(lc, 'login form sets kiln_login');
	const field = /name="csrf" value="([0-9a-f]+)"/.exec(f.text);
	assert.ok(field, 'login form has a csrf field');
	assert.equal(field[1], lc.value, 'double submit: cookie == field');

	const r = await k.post('/dashboard/login', `csrf=${field[1]}&` +
	    `credential=${encodeURIComponent(credential)}`, { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${lc.value}`,
	    } });
	assert.equal(r.status, 303, `POST /dashboard/login: ${r.status} ` +
	    r.text.slice(0, 300));
	assert.equal(r.headers.location, '/dashboard', 'redirect to the page');
	const sc = cookieValue(r, 'kiln_session');
	assert.ok(sc && sc.value.length >= 32, 'a kiln_session cookie');

	let page = await k.get('/dashboard', { headers:
	    { Cookie: `kiln_session=${sc.value}` } });
	if (page.status === 303) {
		/* the new session was not known yet: try once more */
		bounces.push({ where: 'http login', status: page.status });
		await h.sleep(500);
		page = await k.get('/dashboard', { headers:
		    { Cookie: `kiln_session=${sc.value}` } });
	}
	assert.equal(page.status, 200, `GET /dashboard: ${page.status}`);
	if (rec !== null) {
		rec.add(f.text, 'GET /dashboard/login');
		rec.add(r.text, 'POST /dashboard/login');
		rec.add(page.text, 'GET /dashboard (http)');
	}
	const csrf = /<meta name="csrf-token" content="([0-9a-f]+)">/
	    .exec(page.text);
	assert.ok(csrf, 'the page carries its CSRF token');
	return { token: sc.value, setCookie: sc.header,
	    cookie: `kiln_session=${sc.value}`, csrf: csrf[1],
	    html: page.text, worker: pageWorker(page.text) };
}

/* "worker N" from the page header. */
function pageWorker(html)
{
	const m = /tokens kept hot · worker (\d+)/.exec(html);
	return m ? Number(m[1]) : null;
}

/* The "On this worker" / "Dashboard sockets" figures of a clients
 * fragment. */
function clientFigures(html)
{
	const total = /<dt>Dashboard sockets<\/dt><dd>(-?\d+)<\/dd>/
	    .exec(html);
	const here = /<dt>On this worker<\/dt><dd>(\d+)<\/dd>/.exec(html);
	return { total: total ? Number(total[1]) : NaN,
	    here: here ? Number(here[1]) : NaN };
}

/*
 * A dashboard WebSocket from node. Resolves a client once open, or
 * {refused: true, status, body} when the handshake is answered with
 * anything but 101. o: {cookie, origin (null: none; default the
 * server's own), headers, socket (an open connection to reuse), rec}.
 */
function wsClient(k, o = {})
{
	const origin = o.origin === undefined ? k.url : o.origin;
	const headers = Object.assign({}, o.headers || {});
	if (origin !== null)
		headers.Origin = origin;
	if (o.cookie)
		headers.Cookie = o.cookie;
	const opts = { headers, handshakeTimeout: 10000,
	    perMessageDeflate: false };
	if (o.socket)
		opts.createConnection = () => o.socket;

	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`ws://127.0.0.1:${k.port}/dashboard/ws`,
		    opts);
		let settled = false;
		ws.on('unexpected-response', (req, res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				settled = true;
				const body = Buffer.concat(chunks).toString();
				if (o.rec)
					o.rec.add(body, 'refused handshake');
				resolve({ refused: true, status: res.statusCode,
				    body });
				req.destroy();
			});
		});
		ws.on('error', (e) => {
			if (!settled) {
				settled = true;
				reject(e);
			}
		});
		ws.on('open', () => {
			settled = true;
			resolve(new DashClient(ws, o.rec || null));
		});
		procs().onCleanup(() => ws.terminate());
	});
}

function procs()
{
	return h.procs;
}

/* A connected dashboard socket: counts patches, keeps the last of each
 * target, lets a test wait for a condition on what arrived. */
class DashClient {
	constructor(ws, rec)
	{
		this.ws = ws;
		this.rec = rec;
		this.frames = 0;
		this.counts = {};
		this.last = {};
		this.shutdown = null;
		this.closed = null;
		this.gens = {};		/* name -> Set of generations seen */
		this.genAt = {};	/* name -> Map generation -> first seen */
		this.waiters = new Set();
		this.openedAt = Date.now();
		ws.on('message', (data) => this.onMessage(data.toString()));
		ws.on('close', (code) => {
			this.closed = { code, at: Date.now() };
			this.poke();
		});
	}

	onMessage(text)
	{
		this.frames++;
		if (this.rec !== null)
			this.rec.add(text, 'ws frame (node)');
		let m;
		try {
			m = JSON.parse(text);
		} catch (e) {
			this.bad = text;
			this.poke();
			return;
		}
		if (m.type === 'patch') {
			this.counts[m.target] = (this.counts[m.target] || 0) + 1;
			this.last[m.target] = m.html;
			if (m.target === 'tokens') {
				for (const [n, r] of Object.entries(
				    tokenRows(m.html))) {
					if (!this.gens[n]) {
						this.gens[n] = new Set();
						this.genAt[n] = new Map();
					}
					if (!this.gens[n].has(r.gen))
						this.genAt[n].set(r.gen,
						    Date.now());
					this.gens[n].add(r.gen);
				}
			}
		} else if (m.type === 'shutdown_pending') {
			this.shutdown = m;
		} else {
			this.other = m;
		}
		this.poke();
	}

	poke()
	{
		for (const w of [...this.waiters])
			w();
	}

	rows()
	{
		return tokenRows(this.last.tokens || '');
	}

	figures()
	{
		return clientFigures(this.last.clients || '');
	}

	/* Resolve when pred(this) is truthy (checked on every frame and on
	 * close); reject after ms. */
	waitFor(pred, ms, what)
	{
		return new Promise((resolve, reject) => {
			let timer = null;
			const check = () => {
				let v;
				try {
					v = pred(this);
				} catch (e) {
					v = false;
				}
				if (v) {
					clearTimeout(timer);
					this.waiters.delete(check);
					resolve(v);
				}
			};
			timer = setTimeout(() => {
				this.waiters.delete(check);
				reject(new Error(`no ${what} within ${ms} ms ` +
				    `(frames ${this.frames}, closed ` +
				    `${JSON.stringify(this.closed)})`));
			}, ms);
			this.waiters.add(check);
			check();
		});
	}

	close()
	{
		this.ws.terminate();
	}
}

/*
 * An HTTP/1.1 keep-alive connection of our own: requests on it are served
 * by one worker, so a WebSocket upgraded on it stays on the worker that
 * answered GET /dashboard (whose page says "worker N").
 */
function pinned(port)
{
	return new Promise((resolve, reject) => {
		const sock = net.connect({ host: '127.0.0.1', port });
		sock.once('error', reject);
		sock.once('connect', () => {
			sock.removeListener('error', reject);
			resolve(new Pinned(sock, port));
		});
		procs().onCleanup(() => sock.destroy());
	});
}

class Pinned {
	constructor(sock, port)
	{
		this.sock = sock;
		this.port = port;
	}

	/* One request, one answer with a Content-Length (or none). */
	request(method, p, { headers = {}, body = null } = {})
	{
		const sock = this.sock;
		const b = body === null ? null : Buffer.from(body);
		const lines = [`${method} ${p} HTTP/1.1`,
		    `Host: 127.0.0.1:${this.port}`];
		for (const [n, v] of Object.entries(headers))
			lines.push(`${n}: ${v}`);
		lines.push(`Content-Length: ${b === null ? 0 : b.length}`);
		return new Promise((resolve, reject) => {
			let buf = Buffer.alloc(0);
			const timer = setTimeout(() => done(new Error(
			    `${method} ${p}: no answer`)), 10000);
			const onData = (c) => {
				buf = Buffer.concat([buf, c]);
				const end = buf.indexOf('\r\n\r\n');
				if (end < 0)
					return;
				const head = buf.subarray(0, end).toString('latin1');
				const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
				const need = end + 4 + (cl ? Number(cl[1]) : 0);
				if (buf.length < need)
					return;
				const status = Number(/^HTTP\/1\.1 (\d+)/
				    .exec(head)[1]);
				done(null, { status, head, text: buf.subarray(end + 4,
				    need).toString('utf8') });
			};
			const onClose = () => done(new Error(`${method} ${p}: ` +
			    'connection closed'));
			const done = (err, r) => {
				clearTimeout(timer);
				sock.removeListener('data', onData);
				sock.removeListener('close', onClose);
				if (err)
					reject(err);
				else
					resolve(r);
			};
			sock.on('data', onData);
			sock.on('close', onClose);
			sock.write(lines.join('\r\n') + '\r\n\r\n');
			if (b !== null)
				sock.write(b);
		});
	}
}

/* GET /dashboard on a new pinned connection: {w, p}, or null (not 200). */
async function pinOne(k, cookie, rec = null)
{
	const p = await pinned(k.port);
	const r = await p.request('GET', '/dashboard',
	    { headers: { Cookie: cookie } });
	if (r.status !== 200) {
		p.sock.destroy();
		return null;
	}
	if (rec !== null)
		rec.add(r.text, 'GET /dashboard (pinned)');
	const w = pageWorker(r.text);
	assert.ok(w !== null, 'the page names its worker');
	return { w, p };
}

/*
 * A pinned connection on a worker other than the one that answered a
 * first probe. Connections held open spread over the workers (the fair
 * accept lock); to be sure of it under any load, hold requests open
 * (POSTs whose body never comes) until a new connection lands elsewhere.
 * Returns {held, pin: {w, p}}; held.release() lets the requests go (the
 * other worker keeps accepting).
 */
async function switchAcceptor(k, cookie, { hold = 1000, rec = null,
    timeout = 8000 } = {})
{
	const probe = await pinOne(k, cookie, rec);
	assert.ok(probe, 'GET /dashboard on a pinned connection');
	probe.p.sock.destroy();
	const held = holdRequests(k);
	const deadline = Date.now() + timeout;
	await held.more(hold);
	while (Date.now() < deadline) {
		const x = await pinOne(k, cookie, rec);
		if (x !== null && x.w !== probe.w)
			return { held, pin: x, from: probe.w };
		if (x !== null)
			x.p.sock.destroy();
		await held.more(50);
	}
	held.release();
	assert.fail(`no connection reached a worker other than ${probe.w} ` +
	    `(held ${held.count()} requests)`);
}

/*
 * `per` pinned connections on each of two workers, each having answered
 * GET /dashboard ("worker N"): {workerId: [Pinned...]}. Connections held
 * open spread over the workers (the fair accept lock), so pinning a few
 * reaches both; the ones not needed are closed.
 */
async function pinBothWorkers(k, cookie, { per = 2, rec = null,
    max = 64 } = {})
{
	const by = {};
	const spare = [];
	const enough = () => Object.keys(by).length === 2 &&
	    Object.values(by).every((l) => l.length >= per);
	for (let i = 0; i < max && !enough(); i++) {
		const x = await pinOne(k, cookie, rec);
		assert.ok(x, 'GET /dashboard on a pinned connection');
		by[x.w] = by[x.w] || [];
		if (by[x.w].length < per)
			by[x.w].push(x.p);
		else
			spare.push(x.p);
	}
	for (const p of spare)
		p.sock.destroy();
	assert.ok(enough(), `${per} connections on each of two workers ` +
	    `(${JSON.stringify(Object.fromEntries(Object.entries(by)
	    .map(([w, l]) => [w, l.length])))})`);
	return by;
}

/*
 * Requests held open (headers of a POST whose body never comes), to make
 * the worker that accepts them busy: {more(n), count(), release()}.
 */
function holdRequests(k)
{
	const held = [];
	const one = () => new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port: k.port });
		s.on('error', () => resolve());
		s.on('connect', () => {
			s.write('POST /dashboard/login HTTP/1.1\r\n' +
			    `Host: 127.0.0.1:${k.port}\r\n` +
			    'Content-Type: application/x-www-form-urlencoded\r\n' +
			    'Content-Length: 1000\r\n\r\n');
			resolve();
		});
		held.push(s);
	});
	const release = () => {
		for (const s of held.splice(0))
			s.destroy();
	};
	procs().onCleanup(release);
	return {
		async more(n)
		{
			for (let i = 0; i < n; i += 100) {
				const batch = [];
				for (let j = i; j < Math.min(n, i + 100); j++)
					batch.push(one());
				await Promise.all(batch);
			}
			await sleep(50);
		},
		count: () => held.length,
		release,
	};
}

/* Debian's chromium, headless, closed in the file's after(). */
async function launch()
{
	const { chromium } = require('playwright-core');
	try {
		fs.accessSync(CHROMIUM, fs.constants.X_OK);
	} catch (e) {
		throw new Error(`${CHROMIUM} not found: apt-get install chromium`);
	}
	const b = await chromium.launch({ executablePath: CHROMIUM,
	    headless: true, args: CHROMIUM_ARGS, timeout: 60000 });
	procs().onCleanup(() => b.close().catch(() => {}));
	return b;
}

/*
 * Record what a page gets: WebSocket frames (and which sockets opened and
 * closed), every text response, console errors, requests that leave the
 * server's origin.
 */
function watchPage(page, rec, origin)
{
	const w = { sockets: [], errors: [], foreign: [], navigations: 0,
	    failed: [] };
	page.on('websocket', (ws) => {
		const s = { url: ws.url(), frames: 0, closed: null,
		    opened: Date.now(), ws };
		w.sockets.push(s);
		ws.on('framereceived', (f) => {
			s.frames++;
			rec.add(f.payload, `browser frame ${ws.url()}`);
		});
		ws.on('framesent', (f) => rec.add(f.payload, 'browser sent'));
		ws.on('close', () => {
			s.closed = Date.now();
		});
		ws.on('socketerror', (e) => {
			s.error = e;
		});
	});
	page.on('request', (r) => {
		const u = r.url();
		if (!u.startsWith(origin) && !u.startsWith(origin.replace(
		    /^http/, 'ws')) && !u.startsWith('data:') &&
		    u !== 'about:blank')
			w.foreign.push(u);
	});
	page.on('response', async (r) => {
		if (r.status() >= 400)
			w.failed.push(`${r.status()} ${r.url()}`);
		try {
			const t = await r.text();
			rec.add(t, `response ${r.status()} ${r.url()}`);
		} catch (e) {
			/* redirects and aborted bodies have none */
		}
	});
	page.on('console', (m) => {
		if (m.type() !== 'error')
			return;
		const where = m.location() ? m.location().url : '';
		/* chromium's own /favicon.ico probe (the page names none) */
		if (/\/favicon\.ico$/.test(where)) {
			w.favicon = true;
			return;
		}
		w.errors.push(`console: ${m.text()} ${where}`);
	});
	page.on('pageerror', (e) => w.errors.push(`pageerror: ${e.message}`));
	page.on('framenavigated', (f) => {
		if (f === page.mainFrame())
			w.navigations++;
	});
	w.open = () => w.sockets.filter((s) => s.closed === null);
	return w;
}

/*
 * Every time a fresh login was sent back to the login form (or refused)
 * because the worker did not know the new session yet: [{where, status}].
 */
const bounces = [];

/* Sign in through the form of the login page; lands on /dashboard. */
async function browserLogin(page, k, credential)
{
	await page.goto(`${k.url}/dashboard/login`);
	await page.fill('#credential', credential);
	const dash = page.waitForResponse((r) => r.url() ===
	    `${k.url}/dashboard` && r.request().method() === 'GET',
	    { timeout: 15000 });
	const [post] = await Promise.all([
		page.waitForResponse((r) => r.url() ===
		    `${k.url}/dashboard/login` &&
		    r.request().method() === 'POST', { timeout: 15000 }),
		page.click('button:has-text("Sign in")'),
	]);
	assert.equal(post.status(), 303, `login: ${post.status()}`);
	const first = await dash;
	await page.waitForLoadState('load');
	if (first.status() !== 200) {
		/* the new session was not known yet: try once more */
		bounces.push({ where: 'browser login', status: first.status() });
		await h.sleep(500);
		await page.goto(`${k.url}/dashboard`);
	}
	assert.equal(new URL(page.url()).pathname, '/dashboard',
	    `signed in (at ${page.url()})`);
}

/* The page's tokens table as {name: {state, gen, expires}}. */
async function pageRows(page)
{
	return tokenRows(await page.$eval('#tokens', (e) => e.innerHTML));
}

function artifact(name)
{
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	return path.join(ARTIFACTS, name);
}

/* sha256 hex, as kiln stores session ids. */
function sha256(s)
{
	return crypto.createHash('sha256').update(s).digest('hex');
}

/* Every value the upstreams issued (access and refresh tokens). */
async function issuedTokens(...ups)
{
	const out = [];
	for (const u of ups) {
		const s = await u.stats();
		out.push(...(s.issued_access_tokens || []),
		    ...(s.issued_refresh_tokens || []));
	}
	return out;
}

module.exports = {
	ARTIFACTS,
	bounces,
	CHROMIUM,
	CHROMIUM_ARGS,
	Recorder,
	DashClient,
	parseDuration,
	tokenRows,
	historyRows,
	cookieValue,
	httpLogin,
	pageWorker,
	clientFigures,
	wsClient,
	pinned,
	pinBothWorkers,
	switchAcceptor,
	holdRequests,
	launch,
	watchPage,
	browserLogin,
	pageRows,
	artifact,
	sha256,
	issuedTokens,
};
