#!/usr/bin/env node
'use strict';

/*
 * Timing probes for bench/run.sh that wrk cannot do. Each prints one JSON
 * line on stdout. Times are wall-clock milliseconds (performance.timeOrigin
 * + performance.now(), comparable with PostgreSQL's clock_timestamp()).
 *
 *   probe.js boot --port P --path /api/tokens/x/current-token \
 *       --pidfile F --log L -- ./kiln -f -c kore.conf
 *	spawn the command (env inherited), write its pid to F at once, and
 *	report the time from spawn to the first 200 on path. The command
 *	keeps running after the probe exits (run.sh owns it by pid).
 *
 *   probe.js propagate --port P --name N --workers W --admin-key K \
 *       --samples 100 --out samples.json
 *	keep one keep-alive connection per worker (told apart by the
 *	X-Request-Id prefix, random per worker), ask for a refresh through
 *	the admin API, and poll every worker until all serve the new
 *	generation. Writes [{generation, seen_ms: [per worker]}] to --out;
 *	run.sh joins it with the commit timestamps from PostgreSQL.
 *
 *   probe.js sample --port P --prefix b --count N --rate R --seconds S
 *	ask for random names (prefix + 4 digits) R times per second for S
 *	seconds; count answers by status and tokens with expires_in <= 0.
 */

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const { performance } = require('node:perf_hooks');

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv)
{
	const o = { _: [] };
	for (let i = 0; i < argv.length; i++) {
		if (argv[i] === '--') {
			o.cmd = argv.slice(i + 1);
			break;
		}
		if (argv[i].startsWith('--')) {
			o[argv[i].slice(2)] = argv[i + 1];
			i++;
		} else {
			o._.push(argv[i]);
		}
	}
	return o;
}

/*
 * One keep-alive HTTP/1.1 connection with one request in flight at a time.
 * Answers {status, headers (lower-case), body}.
 */
class Conn {
	constructor(port)
	{
		this.port = port;
		this.buf = Buffer.alloc(0);
		this.waiting = null;
		this.sock = null;
	}

	open()
	{
		return new Promise((resolve, reject) => {
			const s = net.connect(this.port, '127.0.0.1');
			s.setNoDelay(true);
			s.once('connect', () => {
				s.removeAllListeners('error');
				s.on('error', (e) => this.fail(e));
				resolve(this);
			});
			s.once('error', reject);
			s.on('data', (d) => this.data(d));
			s.on('close', () => this.fail(new Error('closed')));
			this.sock = s;
		});
	}

	fail(e)
	{
		const w = this.waiting;
		this.waiting = null;
		this.dead = true;
		if (w)
			w.reject(e);
	}

	data(d)
	{
		this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
		const end = this.buf.indexOf('\r\n\r\n');
		if (end < 0)
			return;
		const head = this.buf.subarray(0, end).toString('latin1');
		const lines = head.split('\r\n');
		const status = Number(lines[0].split(' ')[1]);
		const headers = {};
		for (const l of lines.slice(1)) {
			const c = l.indexOf(':');
			headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
		}
		const len = Number(headers['content-length'] || 0);
		if (this.buf.length < end + 4 + len)
			return;
		const body = this.buf.subarray(end + 4, end + 4 + len).toString();
		this.buf = this.buf.subarray(end + 4 + len);
		const w = this.waiting;
		this.waiting = null;
		if (w)
			w.resolve({ status, headers, body, at: now() });
	}

	request(method, path, headers = {}, body = '')
	{
		if (this.dead)
			return Promise.reject(new Error('connection closed'));
		return new Promise((resolve, reject) => {
			this.waiting = { resolve, reject };
			let h = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
			for (const [k, v] of Object.entries(headers))
				h += `${k}: ${v}\r\n`;
			if (body || method === 'POST')
				h += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
			this.sock.write(h + '\r\n' + body);
		});
	}

	close()
	{
		this.dead = true;
		if (this.sock)
			this.sock.destroy();
	}
}

function workerOf(r)
{
	const id = r.headers['x-request-id'] || '';
	return id.split('-')[0];
}

function generationOf(r)
{
	const m = /"generation":(-?\d+)/.exec(r.body);
	return m ? Number(m[1]) : null;
}

/* ------------------------------------------------------------------ boot */

async function boot(o)
{
	const port = Number(o.port);
	const deadline = now() + Number(o.timeout || 30000);

	/* A leftover server on the port would answer for us. */
	try {
		(await new Conn(port).open()).close();
		console.log(JSON.stringify({ boot_ms: null,
		    error: `port ${port} is already in use` }));
		process.exit(1);
	} catch (e) {
		/* free: good */
	}

	const log = fs.openSync(o.log, 'a');
	const t0 = now();
	const child = spawn(o.cmd[0], o.cmd.slice(1), {
		stdio: ['ignore', log, log], detached: true,
	});
	fs.writeFileSync(o.pidfile, String(child.pid));
	let exited = null;
	child.on('exit', (c, s) => {
		exited = c ?? s;
	});
	let tcp = null;
	let attempts = 0;
	let last = null;

	while (now() < deadline && exited === null) {
		let c;
		attempts++;
		try {
			c = await new Conn(port).open();
		} catch (e) {
			await sleep(1);
			continue;
		}
		if (tcp === null)
			tcp = now() - t0;
		try {
			while (now() < deadline && exited === null) {
				const r = await c.request('GET', o.path);
				if (r.status === 200) {
					const ms = r.at - t0;
					c.close();
					child.unref();
					console.log(JSON.stringify({ boot_ms: ms,
					    listen_ms: tcp, attempts }));
					process.exit(0);
				}
				last = r.status;
				await sleep(1);
			}
		} catch (e) {
			/* closed: connect again */
		}
		c.close();
		await sleep(1);
	}
	console.log(JSON.stringify({ boot_ms: null, exited, last_status: last,
	    error: 'no 200 before the deadline' }));
	child.unref();
	process.exit(1);
}

/* ------------------------------------------------------------- propagate */

/*
 * One keep-alive connection on each of want workers. Kore 4.1 gives the
 * accept lock to one worker, which keeps it until it accepts more than
 * worker_accept_threshold (16) connections in one go: connections opened
 * one by one all land on the same worker. Open them in bursts larger than
 * the threshold, keep one per worker, close the rest.
 */
async function workerConns(port, want, path)
{
	const byWorker = new Map();

	for (let round = 0; round < 20 && byWorker.size < want; round++) {
		const burst = [];
		for (let i = 0; i < 16 * (want + 1); i++)
			burst.push(new Conn(port).open());
		const conns = [];
		for (const r of await Promise.allSettled(burst)) {
			if (r.status === 'fulfilled')
				conns.push(r.value);
		}
		const answers = await Promise.allSettled(conns.map(
		    (c) => c.request('GET', path)));
		answers.forEach((r, i) => {
			const c = conns[i];
			if (r.status !== 'fulfilled' || r.value.status !== 200) {
				c.close();
				return;
			}
			const w = workerOf(r.value);
			if (byWorker.has(w)) {
				c.close();
			} else {
				byWorker.set(w, c);
			}
		});
		if (byWorker.size < want)
			await sleep(100);
	}
	if (byWorker.size < want)
		throw new Error(`only reached ${byWorker.size} of ${want} workers`);
	return byWorker;
}

async function propagate(o)
{
	const port = Number(o.port);
	const path = `/api/tokens/${o.name}/current-token`;
	const samples = Number(o.samples || 100);
	const want = Number(o.workers || 1);
	const timeout = Number(o.timeout || 5000);
	const conns = await workerConns(port, want, path);
	const admin = await new Conn(port).open();
	const out = [];

	for (let s = 0; s < samples; s++) {
		/* Current generation, as every worker sees it. */
		let gen = -1;
		for (const c of conns.values())
			gen = Math.max(gen, generationOf(await c.request('GET',
			    path)));

		const t0 = now();
		const a = await admin.request('POST',
		    `/api/tokens/${o.name}/refresh`,
		    { Authorization: `Bearer ${o['admin-key']}` }, '');
		if (a.status !== 202)
			throw new Error(`refresh: ${a.status} ${a.body}`);

		const seen = await Promise.all([...conns.values()].map(
		    async (c) => {
			for (;;) {
				const r = await c.request('GET', path);
				const g = generationOf(r);
				if (r.status === 200 && g > gen)
					return { at: r.at, generation: g };
				if (r.at - t0 > timeout)
					return { at: null, generation: g };
			}
		}));
		out.push({ previous: gen, requested_ms: t0,
		    generation: Math.max(...seen.map((x) => x.generation)),
		    seen_ms: seen.map((x) => x.at) });
		await sleep(Number(o.gap || 20));
	}
	for (const c of conns.values())
		c.close();
	admin.close();
	fs.writeFileSync(o.out, JSON.stringify(out));
	console.log(JSON.stringify({ samples: out.length,
	    workers: conns.size }));
	process.exit(0);
}

/* ---------------------------------------------------------------- sample */

async function sample(o)
{
	const port = Number(o.port);
	const count = Number(o.count);
	const rate = Number(o.rate || 100);
	const end = now() + Number(o.seconds) * 1000;
	const res = { requests: 0, ok: 0, expired: 0, other: 0,
	    min_expires_in: null, statuses: {} };
	let c = await new Conn(port).open();

	while (now() < end) {
		const n = Math.floor(Math.random() * count);
		const name = `${o.prefix}${String(n).padStart(4, '0')}`;
		let r;
		try {
			r = await c.request('GET',
			    `/api/tokens/${name}/current-token`);
		} catch (e) {
			c = await new Conn(port).open();
			continue;
		}
		res.requests++;
		res.statuses[r.status] = (res.statuses[r.status] || 0) + 1;
		if (r.status === 200) {
			const m = /"expires_in":(-?\d+)/.exec(r.body);
			const ei = m ? Number(m[1]) : null;
			if (ei !== null && ei <= 0)
				res.expired++;
			else
				res.ok++;
			if (ei !== null && (res.min_expires_in === null ||
			    ei < res.min_expires_in))
				res.min_expires_in = ei;
		} else if (r.status === 503) {
			res.expired++;
		} else {
			res.other++;
		}
		await sleep(1000 / rate);
	}
	c.close();
	console.log(JSON.stringify(res));
	process.exit(0);
}

const o = parseArgs(process.argv.slice(2));
const cmds = { boot, propagate, sample };
if (!cmds[o._[0]]) {
	console.error('usage: probe.js boot|propagate|sample ...');
	process.exit(2);
}
cmds[o._[0]](o).catch((e) => {
	console.error(`probe ${o._[0]}: ${e.stack || e}`);
	process.exit(1);
});
