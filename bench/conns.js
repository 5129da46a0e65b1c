#!/usr/bin/env node
'use strict';

/*
 * Hold N keep-alive connections to kiln for bench/spread.sh.
 *
 *   conns.js --port P --path /api/tokens/b0000/current-token --count N
 *
 * Opens N connections (at most 256 connecting at once), sends one GET on
 * each and keeps the connection open once answered. Prints one JSON line
 * {"open":N,"ok":K,"failed":F,"ms":T} when every connection has its answer
 * (or failed), then holds them until SIGTERM.
 */

const net = require('node:net');

function arg(name, dflt)
{
	const i = process.argv.indexOf('--' + name);
	return i === -1 ? dflt : process.argv[i + 1];
}

const port = Number(arg('port'));
const path = arg('path', '/health');
const count = Number(arg('count', 64));
const held = [];
let ok = 0, failed = 0, started = 0, inflight = 0;
const t0 = Date.now();

function done()
{
	if (ok + failed < count)
		return;
	console.log(JSON.stringify({ open: held.length, ok, failed,
	    ms: Date.now() - t0 }));
}

function one()
{
	started++;
	inflight++;
	const s = net.connect(port, '127.0.0.1');
	let buf = '';
	let answered = false;
	s.setNoDelay(true);
	s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\n` +
	    'Host: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n'));
	s.on('data', (d) => {
		if (answered)
			return;
		buf += d.toString('latin1');
		if (buf.indexOf('\r\n\r\n') === -1)
			return;
		answered = true;
		inflight--;
		if (buf.startsWith('HTTP/1.1 200')) {
			ok++;
			held.push(s);
		} else {
			failed++;
			s.destroy();
		}
		more();
		done();
	});
	s.on('error', () => {
		if (answered)
			return;
		answered = true;
		inflight--;
		failed++;
		more();
		done();
	});
}

function more()
{
	while (started < count && inflight < 256)
		one();
}

more();
process.on('SIGTERM', () => {
	for (const s of held)
		s.destroy();
	process.exit(0);
});
setInterval(() => {}, 1 << 30);
