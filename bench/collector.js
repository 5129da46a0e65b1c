#!/usr/bin/env node
'use strict';

/*
 * An OTLP/HTTP collector for bench/phase_otel.sh: counts, does not keep.
 *
 *   node bench/collector.js --port 0 [--hole]
 *
 * POST /v1/traces   answers 200 {} and counts the spans ("spanId" keys)
 *                   and bytes of the body; with --hole it accepts every
 *                   connection and never answers (a black-holed collector).
 * GET  /_stats      {"exports":N,"spans":N,"bytes":N,"connections":N}
 *
 * Prints {"ready":true,"port":N} when listening (loopback only).
 */

const http = require('node:http');

let port = 0;
let hole = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	if (argv[i] === '--port')
		port = Number(argv[++i]);
	else if (argv[i] === '--hole')
		hole = true;
}

const stats = { exports: 0, spans: 0, bytes: 0, connections: 0 };
const KEY = Buffer.from('"spanId"');

function count(buf)
{
	let n = 0;
	for (let i = buf.indexOf(KEY); i >= 0; i = buf.indexOf(KEY, i + 1))
		n++;
	return n;
}

const server = http.createServer((req, res) => {
	if (req.method === 'GET' && req.url === '/_stats') {
		res.writeHead(200, { 'Content-Type': 'application/json' });
		res.end(JSON.stringify(stats));
		return;
	}
	if (hole)
		return;			/* never answered */
	const chunks = [];
	req.on('data', (d) => chunks.push(d));
	req.on('end', () => {
		const body = Buffer.concat(chunks);
		stats.exports++;
		stats.bytes += body.length;
		stats.spans += count(body);
		res.writeHead(200, { 'Content-Type': 'application/json' });
		res.end('{}');
	});
});
server.on('connection', () => stats.connections++);
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => {
	process.stdout.write(JSON.stringify({ ready: true,
	    port: server.address().port }) + '\n');
});
