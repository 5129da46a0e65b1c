'use strict';

/*
 * Helpers for the admin API tests (admin/*.test.js): a kiln with JWT and
 * bootstrap API-key auth, JWTs minted with npm jose, an authenticated
 * request helper, a raw-socket HTTP client for hostile requests, and a
 * Prometheus text parser wrapper.
 *
 *   const a = require('../lib/admin');
 *   const env = await a.adminKiln(pg, 'label', { sources: [...] });
 *   env.k, env.db, env.idp, env.adminKey
 *   const tok = await a.jwt('viewer');
 *   const r = await a.call(env.k, 'GET', '/api/tokens', { auth: tok });
 *   const raw = await a.raw(env.k.port, 'GET / HTTP/1.1\r\n...');
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');

const jose = require('jose');
const parsePrometheus = require('parse-prometheus-text-format');

const h = require('./index');
const { workerOf } = require('./http');

const JWT_SECRET = `jwt-secret-${crypto.randomBytes(24).toString('hex')}`;
const ADMIN_KEY = `bootstrap-admin-${crypto.randomBytes(24).toString('hex')}`;
const ISSUER = 'kiln';
const AUDIENCE = 'kiln-admin';

const secretKey = new TextEncoder().encode(JWT_SECRET);

/*
 * A JWT for role, HS256 signed with the server's secret unless told
 * otherwise. o: {alg, key, iss, aud, exp (s from now; null: none),
 * nbf (s from now), sub, claims (extra), typ}.
 */
async function jwt(role, o = {})
{
	const now = Math.floor(Date.now() / 1000);
	const claims = Object.assign({}, role === undefined ? {} : { role },
	    o.claims || {});
	const s = new jose.SignJWT(claims);
	const hdr = { alg: o.alg || 'HS256' };
	if (o.typ !== null)
		hdr.typ = o.typ || 'JWT';
	s.setProtectedHeader(hdr);
	s.setIssuedAt(now);
	if (o.iss !== null)
		s.setIssuer(o.iss === undefined ? ISSUER : o.iss);
	if (o.aud !== null)
		s.setAudience(o.aud === undefined ? AUDIENCE : o.aud);
	if (o.exp !== null)
		s.setExpirationTime(now + (o.exp === undefined ? 600 : o.exp));
	if (o.nbf !== undefined)
		s.setNotBefore(now + o.nbf);
	s.setSubject(o.sub || `test-${role}`);
	return s.sign(o.key || secretKey);
}

function b64u(x)
{
	return Buffer.from(typeof x === 'string' ? x : JSON.stringify(x))
	    .toString('base64url');
}

/* A compact JWS with a header and payload of our choosing, signed with
 * HMAC-SHA256/512 over the secret bytes given (or unsigned). */
function handJwt(header, payload, { hmac = null, key = JWT_SECRET,
    sig = null } = {})
{
	const input = `${b64u(header)}.${b64u(payload)}`;
	let s = '';
	if (sig !== null)
		s = sig;
	else if (hmac !== null)
		s = crypto.createHmac(hmac, key).update(input)
		    .digest('base64url');
	return `${input}.${s}`;
}

function standardClaims(role, o = {})
{
	const now = Math.floor(Date.now() / 1000);
	return Object.assign({ role, iss: ISSUER, aud: AUDIENCE,
	    sub: `hand-${role}`, iat: now, exp: now + 600 }, o);
}

/*
 * A kiln with auth configured: fresh database, one upstream with a
 * client per source, KILN_JWT_SECRET and KILN_ADMIN_KEY set.
 * sources: array of partial sources (name and extras); each gets
 * kind client_credentials against the upstream unless given.
 */
async function adminKiln(pg, label, o = {})
{
	const lifetime = o.lifetime || 600;
	const names = (o.sources || []).map((s) => s.name);
	const secrets = {};
	const clientArgs = [];
	for (const n of names) {
		secrets[n] = h.secret(`s-${n}`);
		clientArgs.push('--client',
		    `${n}:${secrets[n]}:client_credentials`);
	}
	const idp = o.idp || await h.startOAuth(['--lifetime',
	    String(lifetime), ...clientArgs, ...(o.idpArgs || [])]);
	const db = await h.freshDb(pg, label);
	const sources = (o.sources || []).map((s) => Object.assign({
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: s.name,
		client_secret: secrets[s.name],
	}, s));
	const k = await h.startKiln({
		name: label,
		databaseUrl: db.url,
		sources,
		workers: o.workers || 1,
		env: Object.assign({
			KILN_JWT_SECRET: JWT_SECRET,
			KILN_ADMIN_KEY: ADMIN_KEY,
		}, o.env || {}),
	});
	return { k, db, idp, sources, secrets, adminKey: ADMIN_KEY };
}

/*
 * An admin API call. auth: a bearer credential (JWT or key) or null;
 * body: object (JSON) / string / Buffer; headers: extra.
 */
function call(k, method, path, { auth = null, body, headers = {},
    timeout = 10000 } = {})
{
	const hd = Object.assign({}, headers);
	if (auth !== null && auth !== undefined)
		hd.Authorization = `Bearer ${auth}`;
	return k.request(path, { method, body, headers: hd, timeout });
}

/* The documented error shape, with the status. */
function assertError(r, status, what, { code = null, field = null } = {})
{
	assert.equal(r.status, status, `${what}: status ${r.status} ` +
	    `(expected ${status}): ${String(r.text).slice(0, 300)}`);
	assert.match(String(r.headers['content-type']), /application\/json/i,
	    `${what}: JSON content type`);
	const b = r.json;
	assert.ok(b && typeof b === 'object', `${what}: JSON body ` +
	    `${String(r.text).slice(0, 200)}`);
	assert.equal(b.success, false, `${what}: success false`);
	assert.ok(b.error && typeof b.error === 'object', `${what}: error`);
	assert.equal(typeof b.error.code, 'string', `${what}: error.code`);
	assert.equal(typeof b.error.message, 'string',
	    `${what}: error.message`);
	if (code !== null)
		assert.equal(b.error.code, code, `${what}: error.code`);
	if (field !== null)
		assert.ok(b.error.message.startsWith(field),
		    `${what}: message "${b.error.message}" starts with ` +
		    `"${field}"`);
	return b;
}

/*
 * Send bytes on a fresh TCP connection and read one HTTP/1.1 answer.
 * data: a Buffer, or an array of Buffers and numbers (ms to pause).
 * Resolves {status, headers, text, json, closed, error} — status null
 * when the server closed without answering. Write errors after the
 * server answered (e.g. 413 before a huge body was sent) are ignored.
 */
function raw(port, data, { timeout = 15000, halfClose = false } = {})
{
	return new Promise((resolve) => {
		const sock = net.connect({ host: '127.0.0.1', port });
		const chunks = [];
		let done = false;
		let writeError = null;

		const finish = (why) => {
			if (done)
				return;
			done = true;
			clearTimeout(timer);
			sock.destroy();
			resolve(parseRaw(Buffer.concat(chunks), why, writeError));
		};
		const timer = setTimeout(() => finish('timeout'), timeout);

		sock.on('connect', () => {
			const bufs = Array.isArray(data) ? data : [data];
			(async () => {
				for (const b of bufs) {
					if (done || sock.destroyed)
						return;
					if (typeof b === 'number') {
						/* a pause: the server may answer
						 * from the headers alone */
						await new Promise((r) =>
						    setTimeout(r, b));
						continue;
					}
					const ok = sock.write(b);
					if (!ok)
						await new Promise((r) => {
							sock.once('drain', r);
							sock.once('close', r);
						});
				}
				if (halfClose && !sock.destroyed)
					sock.end();
			})().catch((e) => {
				writeError = e.message;
			});
		});
		sock.on('data', (c) => {
			chunks.push(c);
			const p = parseRaw(Buffer.concat(chunks), null, null);
			if (p.complete)
				finish('answered');
		});
		sock.on('error', (e) => {
			writeError = writeError || e.code || e.message;
			/* keep what we have; close follows */
		});
		sock.on('close', () => finish('closed'));
	});
}

function parseRaw(buf, why, writeError)
{
	const out = { status: null, headers: {}, text: '', json: undefined,
	    complete: false, why, writeError };
	const end = buf.indexOf('\r\n\r\n');
	if (end < 0)
		return out;
	const head = buf.subarray(0, end).toString('latin1').split('\r\n');
	const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
	if (!m)
		return out;
	out.status = Number(m[1]);
	for (const l of head.slice(1)) {
		const i = l.indexOf(':');
		if (i > 0)
			out.headers[l.slice(0, i).trim().toLowerCase()] =
			    l.slice(i + 1).trim();
	}
	const body = buf.subarray(end + 4);
	const cl = out.headers['content-length'];
	if (cl !== undefined) {
		out.complete = body.length >= Number(cl);
		out.text = body.subarray(0, Number(cl)).toString('utf8');
	} else {
		out.text = body.toString('utf8');
		out.complete = why !== null;
	}
	try {
		out.json = JSON.parse(out.text);
	} catch (e) {
		out.json = undefined;
	}
	return out;
}

/* Build a request's bytes. headers: array of [name, value]; body:
 * Buffer/string. Content-Length added unless noCl. pauseMs: send the
 * head, pause, then the body (for answers given from the head alone). */
function reqBytes(method, path, { headers = [], body = null, noCl = false,
    host = '127.0.0.1', pauseMs = null } = {})
{
	const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`,
	    'Connection: close'];
	for (const [n, v] of headers)
		lines.push(`${n}: ${v}`);
	const b = body === null ? null : Buffer.isBuffer(body) ? body :
	    Buffer.from(body);
	if (b !== null && !noCl)
		lines.push(`Content-Length: ${b.length}`);
	const headBuf = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
	if (b !== null && pauseMs !== null)
		return [headBuf, pauseMs, b];
	return b === null ? headBuf : Buffer.concat([headBuf, b]);
}

/*
 * The sample lines of a Prometheus text exposition, strictly: every line
 * is a comment, blank, or `name{label="v",...} value`. Throws on anything
 * else. (parse-prometheus-text-format folds labelled histograms together,
 * so per-series values come from here.)
 */
function samples(text)
{
	const out = [];
	const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
	const lre = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)/;
	for (const line of text.split('\n')) {
		if (line === '' || line.startsWith('#'))
			continue;
		const m = re.exec(line);
		if (!m)
			throw new Error(`bad sample line: ${line}`);
		const labels = {};
		let rest = m[3] || '';
		while (rest.length > 0) {
			const l = lre.exec(rest);
			if (!l)
				throw new Error(`bad labels: ${line}`);
			labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) =>
			    c === 'n' ? '\n' : c);
			rest = rest.slice(l[0].length);
		}
		const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ?
		    -Infinity : Number(m[4]);
		if (Number.isNaN(v) && m[4] !== 'NaN')
			throw new Error(`bad value: ${line}`);
		out.push({ name: m[1], labels, value: v });
	}
	return out;
}

/*
 * GET /metrics parsed: {families (parse-prometheus-text-format), types,
 * samples, value(name, labels), series(name), text}.
 */
async function scrape(k)
{
	const r = await k.get('/metrics');
	assert.equal(r.status, 200, `/metrics: ${r.status} ${r.text}`);
	const families = parsePrometheus(r.text);
	const types = new Map(families.map((f) => [f.name, f.type]));
	const all = samples(r.text);
	const value = (name, labels = {}) => {
		let sum = 0;
		for (const x of all) {
			if (x.name === name && Object.entries(labels).every(
			    ([kk, v]) => x.labels[kk] === v))
				sum += x.value;
		}
		return sum;
	};
	const series = (name) => all.filter((x) => x.name === name);
	return { families, types, samples: all, value, series, text: r.text,
	    response: r };
}

/* A data-only dump of the tables the admin API may change. */
async function dataDump(db, tables = ['token_sources', 'tokens',
    'api_keys', 'settings', 'refresh_events'])
{
	const { execFile } = require('node:child_process');
	const path = require('node:path');
	const { pgBin } = require('./pg');
	const args = ['-h', db.pg.sock, '-p', String(db.pg.port), '-U',
	    'postgres', '--data-only', '--no-owner', '--inserts',
	    ...tables.flatMap((t) => ['-t', t]), db.name];
	const exe = path.join(pgBin(), 'pg_dump');
	const [cmd, argv] = process.getuid() === 0 ?
	    ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
	return new Promise((resolve, reject) => {
		execFile(cmd, argv, { maxBuffer: 256 << 20, encoding: 'utf8',
		    cwd: db.pg.root }, (err, stdout, stderr) => {
			if (err) {
				err.message += `\n${stderr}`;
				reject(err);
				return;
			}
			/* Drop pg_dump's comments and SET lines. */
			resolve(stdout.split('\n').filter((l) =>
			    l.startsWith('INSERT')).join('\n'));
		});
	});
}

/*
 * Kore gives every connection to the worker holding the accept lock until
 * it is saturated. To reach another worker process, kill (SIGKILL, our
 * own child, by PID) workers until /health is answered by a worker other
 * than those in `seen` (Kore restarts the killed one). Returns the new
 * worker's prefix, or null.
 */
async function moveListener(k, seen)
{
	for (const pid of k.workerPids()) {
		process.kill(pid, 'SIGKILL');
		const r = await h.waitFor(async () => {
			const x = await k.get('/health', { timeout: 1000 });
			return x.status === 200 ? x : false;
		}, { timeout: 10000, interval: 50, what: '/health' });
		if (!seen.has(workerOf(r)))
			return workerOf(r);
	}
	return null;
}

/* Log lines saying a worker died. */
function crashLines(k)
{
	return k.logs().split('\n').filter((l) =>
	    /worker\b.*\b(exited|died|crashed|terminated|signal)\b|\bcrash|segmentation|SIGSEGV|SIGABRT|core dumped|fatal/i
	    .test(l));
}

module.exports = {
	JWT_SECRET,
	ADMIN_KEY,
	ISSUER,
	AUDIENCE,
	secretKey,
	jose,
	jwt,
	handJwt,
	standardClaims,
	b64u,
	adminKiln,
	call,
	assertError,
	raw,
	reqBytes,
	samples,
	scrape,
	dataDump,
	crashLines,
	moveListener,
};
