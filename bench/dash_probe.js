#!/usr/bin/env node
'use strict';

/*
 * Dashboard probes for bench/phase_dash.sh. Each prints one JSON line.
 *
 *   dash_probe.js login --port P --key K [--count N]
 *	sign in N times through the login form (double-submit CSRF);
 *	prints {"cookies":["kiln_session=..."]}.
 *
 *   dash_probe.js render --port P --cookie C --samples N [--query Q]
 *	GET /dashboard[?Q] N times on one keep-alive connection after two
 *	warm-ups; prints the median and p90 time to the whole answer (ms)
 *	and its size.
 *
 *   dash_probe.js sockets --port P --cookies C1,C2,... --count N \
 *       --seconds S [--query Q]
 *	open N dashboard sockets (round robin over the sessions: a session
 *	may hold 8), keep them S seconds, count the bytes of the frames
 *	they get; prints bytes per second per socket and frames.
 *
 *   dash_probe.js churn --port P --key K --prefix d --count N --rate R \
 *       --seconds S
 *	force a refresh of a random source (prefix + 4 digits) R times a
 *	second for S seconds through the admin API: the steady state of N
 *	sources whose tokens live N / R seconds; prints the answers by
 *	status.
 */

const http = require('node:http');
const { performance } = require('node:perf_hooks');

const WebSocket = require('ws');

function parseArgs(argv)
{
	const o = { _: [] };
	for (let i = 0; i < argv.length; i++) {
		if (argv[i].startsWith('--'))
			o[argv[i].slice(2)] = argv[++i];
		else
			o._.push(argv[i]);
	}
	return o;
}

function req(agent, port, method, path, { headers = {}, body = null } = {})
{
	return new Promise((resolve, reject) => {
		const r = http.request({ host: '127.0.0.1', port, method, path,
		    agent, headers }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => resolve({ status: res.statusCode,
			    headers: res.headers,
			    text: Buffer.concat(chunks).toString() }));
		});
		r.on('error', reject);
		if (body !== null)
			r.write(body);
		r.end();
	});
}

function cookieOf(res, name)
{
	for (const c of [].concat(res.headers['set-cookie'] || [])) {
		const m = new RegExp(`^${name}=([^;]*)`).exec(c);
		if (m)
			return m[1];
	}
	return null;
}

async function login(o)
{
	const cookies = [];
	for (let i = 0; i < Number(o.count || 1); i++) {
		const f = await req(undefined, o.port, 'GET', '/dashboard/login');
		const lc = cookieOf(f, 'kiln_login');
		const body = `csrf=${lc}&credential=${encodeURIComponent(o.key)}`;
		const r = await req(undefined, o.port, 'POST', '/dashboard/login',
		    { headers: { 'Content-Type':
		    'application/x-www-form-urlencoded',
		    'Content-Length': Buffer.byteLength(body),
		    Cookie: `kiln_login=${lc}` }, body });
		const s = cookieOf(r, 'kiln_session');
		if (r.status !== 303 || s === null)
			throw new Error(`login: ${r.status} ${r.text.slice(0, 200)}`);
		cookies.push(`kiln_session=${s}`);
	}
	/* the other workers learn of the sessions by NOTIFY */
	await new Promise((r) => setTimeout(r, 500));
	console.log(JSON.stringify({ cookies }));
}

async function render(o)
{
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	const path = '/dashboard' + (o.query ? `?${o.query}` : '');
	const t = [];
	let bytes = 0;
	for (let i = 0; i < Number(o.samples) + 2; i++) {
		const t0 = performance.now();
		const r = await req(agent, o.port, 'GET', path,
		    { headers: { Cookie: o.cookie } });
		const ms = performance.now() - t0;
		if (r.status !== 200)
			throw new Error(`GET ${path}: ${r.status}`);
		bytes = r.text.length;
		if (i >= 2)
			t.push(ms);
	}
	agent.destroy();
	t.sort((a, b) => a - b);
	const q = (f) => t[Math.min(t.length - 1, Math.ceil(f * t.length) - 1)];
	console.log(JSON.stringify({ median_ms: +q(0.5).toFixed(2),
	    p90_ms: +q(0.9).toFixed(2), bytes, samples: t.length }));
}

async function sockets(o)
{
	const cookies = o.cookies.split(',');
	const n = Number(o.count);
	const secs = Number(o.seconds);
	const list = [];
	let bytes = 0;
	let frames = 0;
	let refused = 0;
	let counting = false;
	const by = {};
	for (let i = 0; i < n; i++) {
		const ws = new WebSocket(`ws://127.0.0.1:${o.port}/dashboard/ws` +
		    (o.query ? `?${o.query}` : ''), { headers: {
		    Origin: `http://127.0.0.1:${o.port}`,
		    Cookie: cookies[i % cookies.length] },
		    perMessageDeflate: false });
		ws.on('message', (d) => {
			if (!counting)
				return;
			bytes += d.length;
			frames++;
			const t = /"target":"([a-z]+)"/.exec(d.toString()) ||
			    [null, 'other'];
			by[t[1]] = (by[t[1]] || 0) + d.length;
		});
		await new Promise((resolve) => {
			ws.on('open', resolve);
			ws.on('unexpected-response', () => {
				refused++;
				resolve();
			});
			ws.on('error', () => resolve());
		});
		list.push(ws);
	}
	/* The first state every socket gets at once is not the steady rate. */
	await new Promise((r) => setTimeout(r, 2000));
	counting = true;
	await new Promise((r) => setTimeout(r, secs * 1000));
	counting = false;
	for (const ws of list)
		ws.terminate();
	const open = n - refused;
	for (const t of Object.keys(by))
		by[t] = open ? Math.round(by[t] / secs / open) : 0;
	console.log(JSON.stringify({ sockets: open, refused, seconds: secs,
	    bytes, frames, bytes_per_s_per_socket: open ?
	    Math.round(bytes / secs / open) : 0, by_target: by }));
}

async function churn(o)
{
	const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
	const rate = Number(o.rate);
	const end = performance.now() + Number(o.seconds) * 1000;
	const status = {};
	let next = performance.now();
	const pending = [];
	while (performance.now() < end) {
		const i = Math.floor(Math.random() * Number(o.count));
		const path = `/api/tokens/${o.prefix}${String(i).padStart(4, '0')}` +
		    '/refresh';
		pending.push(req(agent, o.port, 'POST', path, { headers: {
		    Authorization: `Bearer ${o.key}`, 'Content-Length': 0 } })
		    .then((r) => { status[r.status] = (status[r.status] || 0) + 1; })
		    .catch(() => { status.error = (status.error || 0) + 1; }));
		next += 1000 / rate;
		const wait = next - performance.now();
		if (wait > 0)
			await new Promise((r) => setTimeout(r, wait));
	}
	await Promise.all(pending);
	agent.destroy();
	console.log(JSON.stringify({ status }));
}

const o = parseArgs(process.argv.slice(2));
const cmds = { login, render, sockets, churn };
const cmd = cmds[o._[0]];
if (!cmd) {
	console.error('usage: dash_probe.js login|render|sockets ...');
	process.exit(2);
}
cmd(o).catch((e) => {
	console.error(String(e && e.stack || e));
	process.exit(1);
});
