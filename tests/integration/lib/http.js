'use strict';

/*
 * The harness's HTTP clients, in one place:
 *
 *   request(url, opts)   one request on a fresh connection, http or https
 *   new Pinned(port)     one keep-alive connection, so one worker
 *   workerOf(r)          the worker that answered r (X-Request-Id prefix)
 *
 * Both resolve {status, headers, text, json, ms, at}. Hostile bytes on a
 * raw socket are lib/admin.js raw().
 */

const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const tls = require('node:tls');

/*
 * One HTTP request. body: object (sent as JSON), string or Buffer.
 * Resolves {status, headers, text, json, ms, at}; rejects on network
 * errors and on timeout (err.code 'ETIMEDOUT'). A fresh connection per
 * request unless opts.agent is given, so requests spread over kiln's
 * workers. An https URL is verified against opts.ca (PEM) when given,
 * with opts.servername for SNI.
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

	const o = {
		host: u.hostname,
		port: u.port,
		path: u.pathname + u.search,
		method,
		headers,
		agent: opts.agent === undefined ? false : opts.agent,
	};
	let mod = http;
	if (u.protocol === 'https:') {
		mod = https;
		o.ca = opts.ca;
		o.servername = opts.servername;
	}

	return new Promise((resolve, reject) => {
		const t0 = Date.now();
		const req = mod.request(o, (res) => {
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

/* The worker that answered: X-Request-Id is "<worker prefix>-<n>". */
function workerOf(r)
{
	return String(r.headers['x-request-id'] || '').split('-')[0];
}

/*
 * One persistent HTTP/1.1 connection (keep-alive), requests one at a
 * time. The worker that accepted it answers every request on it, so a
 * Pinned is a probe into one worker. `closed` once the server closed it.
 */
class Pinned {
	constructor(port, { ca = null } = {})
	{
		this.port = port;
		this.ca = ca;
		this.queue = Promise.resolve();
		this.closed = false;
		this.worker = null;
		this.buf = Buffer.alloc(0);
		this.waiter = null;
	}

	connect()
	{
		return new Promise((resolve, reject) => {
			const opts = { host: '127.0.0.1', port: this.port };
			const s = this.ca === null ? net.connect(opts) :
			    tls.connect(Object.assign(opts, { ca: this.ca }));
			const ev = this.ca === null ? 'connect' :
			    'secureConnect';
			s.setNoDelay(true);
			s.once(ev, () => resolve(this));
			s.once('error', reject);
			s.on('error', (e) => this.fail(e));
			s.on('close', () => {
				this.closed = true;
				this.fail(new Error('connection closed'));
			});
			s.on('data', (d) => {
				this.buf = Buffer.concat([this.buf, d]);
				this.parse();
			});
			this.sock = s;
		});
	}

	fail(e)
	{
		if (this.waiter !== null) {
			const w = this.waiter;
			this.waiter = null;
			w.reject(e);
		}
	}

	parse()
	{
		if (this.waiter === null)
			return;
		const end = this.buf.indexOf('\r\n\r\n');
		if (end < 0)
			return;
		const head = this.buf.subarray(0, end).toString('latin1')
		    .split('\r\n');
		const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
		const headers = {};
		for (const l of head.slice(1)) {
			const i = l.indexOf(':');
			if (i > 0)
				headers[l.slice(0, i).trim().toLowerCase()] =
				    l.slice(i + 1).trim();
		}
		const cl = Number(headers['content-length'] || 0);
		if (this.buf.length < end + 4 + cl)
			return;
		const text = this.buf.subarray(end + 4, end + 4 + cl)
		    .toString('utf8');
		this.buf = this.buf.subarray(end + 4 + cl);
		let json;
		try {
			json = JSON.parse(text);
		} catch (e) {
			json = undefined;
		}
		const w = this.waiter;
		this.waiter = null;
		w.resolve({ status: m ? Number(m[1]) : null, headers, text,
		    json, at: Date.now(), ms: Date.now() - w.t0 });
	}

	request(method, p, { headers = {}, body = null, timeout = 10000 } = {})
	{
		const run = () => new Promise((resolve, reject) => {
			if (this.closed) {
				reject(new Error('connection closed'));
				return;
			}
			const b = body === null ? null : Buffer.from(
			    typeof body === 'string' ? body :
			    JSON.stringify(body));
			const lines = [`${method} ${p} HTTP/1.1`,
			    'Host: 127.0.0.1'];
			for (const [n, v] of Object.entries(headers))
				lines.push(`${n}: ${v}`);
			if (b !== null) {
				if (!Object.keys(headers).some((n) =>
				    n.toLowerCase() === 'content-type'))
					lines.push('Content-Type: application/json');
				lines.push(`Content-Length: ${b.length}`);
			}
			const timer = setTimeout(() => this.fail(
			    new Error(`${method} ${p}: timeout`)), timeout);
			this.waiter = {
				t0: Date.now(),
				resolve: (r) => {
					clearTimeout(timer);
					resolve(r);
				},
				reject: (e) => {
					clearTimeout(timer);
					reject(e);
				},
			};
			this.sock.write(lines.join('\r\n') + '\r\n\r\n');
			if (b !== null)
				this.sock.write(b);
		});
		const p2 = this.queue.then(run, run);
		this.queue = p2.catch(() => {});
		return p2;
	}

	get(p, o)
	{
		return this.request('GET', p, o);
	}

	close()
	{
		this.closed = true;
		if (this.sock)
			this.sock.destroy();
	}
}

module.exports = {
	request,
	workerOf,
	Pinned,
};
