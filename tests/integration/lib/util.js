'use strict';

/* Small helpers shared by the harness and the tests. */

const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');

const ISO_Z = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

function sleep(ms)
{
	return new Promise((r) => setTimeout(r, ms));
}

/* A port nobody listens on right now (bind 0 on loopback, close). */
function freePort()
{
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.unref();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

/*
 * One HTTP request. body: object (sent as JSON), string or Buffer.
 * Resolves {status, headers, text, json, ms}; rejects on network errors
 * and on timeout (err.code 'ETIMEDOUT'). A fresh connection per request
 * unless opts.agent is given, so requests spread over kiln's workers.
 */
function request(url, opts = {})
{
	const u = new URL(url);
	const method = opts.method || 'GET';
	const headers = Object.assign({}, opts.headers || {});
	const timeout = opts.timeout === undefined ? 10000 : opts.timeout;
	let payload = null;

	if (opts.body !== undefined && opts.body !== null) {
		if (Buffer.isBuffer(opts.body) || typeof opts.body === 'string') {
			payload = Buffer.from(opts.body);
		} else {
			payload = Buffer.from(JSON.stringify(opts.body));
			if (!Object.keys(headers).some((h) =>
			    h.toLowerCase() === 'content-type'))
				headers['Content-Type'] = 'application/json';
		}
		headers['Content-Length'] = payload.length;
	}

	return new Promise((resolve, reject) => {
		const t0 = Date.now();
		const req = http.request({
			host: u.hostname,
			port: u.port,
			path: u.pathname + u.search,
			method,
			headers,
			agent: opts.agent === undefined ? false : opts.agent,
		}, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				clearTimeout(timer);
				const text = Buffer.concat(chunks).toString('utf8');
				let json;
				try {
					json = JSON.parse(text);
				} catch (e) {
					json = undefined;
				}
				resolve({ status: res.statusCode,
				    headers: res.headers, text, json,
				    ms: Date.now() - t0, at: Date.now() });
			});
			res.on('error', (e) => {
				clearTimeout(timer);
				reject(e);
			});
		});
		const timer = setTimeout(() => {
			const e = new Error(`${method} ${url}: no answer ` +
			    `within ${timeout} ms`);
			e.code = 'ETIMEDOUT';
			req.destroy(e);
		}, timeout);
		req.on('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		if (payload !== null)
			req.write(payload);
		req.end();
	});
}

/* Poll fn until it returns a truthy value; throw with the last error or
 * result when timeoutMs passes. */
async function waitFor(fn, { timeout = 10000, interval = 100,
    what = 'condition' } = {})
{
	const deadline = Date.now() + timeout;
	let last;

	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
			last = v;
		} catch (e) {
			last = e;
		}
		if (Date.now() >= deadline) {
			const detail = last instanceof Error ? last.message :
			    JSON.stringify(last);
			throw new Error(`timed out after ${timeout} ms waiting ` +
			    `for ${what} (last: ${detail})`);
		}
		await sleep(interval);
	}
}

/* kiln's fingerprint: first 12 hex of SHA-256. */
function fingerprint(s)
{
	return crypto.createHash('sha256').update(s).digest('hex').slice(0, 12);
}

/* A distinctive secret that is easy to find if it leaks. */
function secret(prefix)
{
	return `${prefix}-${crypto.randomBytes(18).toString('hex')}`;
}

function parseIso(s)
{
	if (typeof s !== 'string' || !ISO_Z.test(s))
		return NaN;
	return Date.parse(s);
}

module.exports = {
	ISO_Z,
	sleep,
	freePort,
	request,
	waitFor,
	fingerprint,
	secret,
	parseIso,
};
