#!/usr/bin/env node
'use strict';

/*
 * A TCP proxy between kiln and PostgreSQL that can fail the way networks
 * do, for kiln's tests.
 *
 *   node tests/upstream/pgproxy.js --port 0 --target 127.0.0.1:5432
 *
 * Modes (POST /_mode {"mode":...} on the control port):
 *   pass       forward both ways (the default)
 *   blackhole  new connections are accepted and never answered; existing
 *              ones stop forwarding in both directions (what comes is read
 *              and dropped, so TCP itself stays healthy: only a timeout of
 *              the client can tell). A connection black-holed once stays
 *              so after the heal, like a flow a stateful firewall forgot.
 *   reset      every connection, existing and new, is reset (RST)
 *
 * GET /_stats: accepted connections per mode, open ones. When listening it
 * prints {"ready":true,"port":control,"proxy_port":N} on stdout.
 */

const http = require('node:http');
const net = require('node:net');

const MODES = ['pass', 'blackhole', 'reset'];

const cfg = { host: '127.0.0.1', port: 0, target: null };
let mode = 'pass';
const conns = new Set();
const stats = { accepted: {}, mode_changes: [] };

for (let i = 2; i < process.argv.length; i++) {
	const a = process.argv[i];
	if (a === '--port')
		cfg.port = Number(process.argv[++i]);
	else if (a === '--target')
		cfg.target = process.argv[++i];
	else {
		process.stderr.write(`pgproxy: unknown argument ${a}\n`);
		process.exit(2);
	}
}
if (!cfg.target || !/^[^:]+:\d+$/.test(cfg.target)) {
	process.stderr.write('pgproxy: --target host:port is required\n');
	process.exit(2);
}
const [thost, tport] = cfg.target.split(':');

function reset(s)
{
	if (!s.destroyed)
		s.resetAndDestroy();
}

/* Stop forwarding c: read and drop whatever comes, answer nothing. */
function blackhole(c)
{
	c.dark = true;
	for (const s of [c.client, c.server]) {
		if (s === null)
			continue;
		s.unpipe();
		s.removeAllListeners('data');
		s.on('data', () => {});
		s.resume();
	}
}

function forward(c)
{
	c.server = net.connect(Number(tport), thost);
	c.server.on('error', () => reset(c.client));
	c.server.on('close', () => {
		if (!c.dark)
			c.client.destroy();
	});
	c.client.pipe(c.server);
	c.server.pipe(c.client);
}

const proxy = net.createServer((client) => {
	const c = { client, server: null, dark: false };
	stats.accepted[mode] = (stats.accepted[mode] || 0) + 1;
	conns.add(c);
	client.on('error', () => {});
	client.on('close', () => {
		conns.delete(c);
		if (c.server !== null && !c.dark)
			c.server.destroy();
	});
	if (mode === 'reset')
		reset(client);
	else if (mode === 'blackhole')
		blackhole(c);
	else
		forward(c);
});

function setMode(m)
{
	mode = m;
	stats.mode_changes.push({ mode: m, at: Date.now() });
	for (const c of conns) {
		if (m === 'reset') {
			reset(c.client);
			if (c.server !== null)
				reset(c.server);
		} else if (m === 'blackhole' && !c.dark) {
			blackhole(c);
		}
	}
}

function send(res, status, body)
{
	const b = Buffer.from(JSON.stringify(body));
	res.writeHead(status, { 'Content-Type': 'application/json',
	    'Content-Length': b.length });
	res.end(b);
}

const control = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (d) => chunks.push(d));
	req.on('end', () => {
		if (req.method === 'GET' && req.url === '/_stats') {
			send(res, 200, Object.assign({ mode, open: conns.size },
			    stats));
			return;
		}
		if (req.method === 'POST' && req.url === '/_mode') {
			let b;
			try {
				b = JSON.parse(Buffer.concat(chunks).toString());
			} catch (e) {
				b = {};
			}
			if (!MODES.includes(b.mode)) {
				send(res, 400, { error: `mode: one of ${MODES}` });
				return;
			}
			setMode(b.mode);
			send(res, 200, { mode });
			return;
		}
		send(res, 404, { error: 'not found' });
	});
});

proxy.listen(0, cfg.host, () => {
	control.listen(cfg.port, cfg.host, () => {
		process.stdout.write(JSON.stringify({ ready: true,
		    port: control.address().port,
		    proxy_port: proxy.address().port }) + '\n');
	});
});
