'use strict';

/*
 * Connections spread over the workers (conf/patches/kore-4.1-fair-accept
 * .patch): a burst of keep-alive connections does not all land on one
 * worker. Each connection asks once; the X-Request-Id prefix (random per
 * worker) tells which worker holds it. Counts, not timings.
 */

const assert = require('node:assert/strict');
const net = require('node:net');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

/* Open n connections at once, one GET on each; resolve to the sockets and
 * the worker prefix of each answer. */
function holdConnections(port, path, n)
{
	return Promise.all(Array.from({ length: n }, () =>
	    new Promise((resolve, reject) => {
		const s = net.connect(port, '127.0.0.1');
		let buf = '';
		s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\n` +
		    'Host: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n'));
		s.on('data', (d) => {
			buf += d.toString('latin1');
			const end = buf.indexOf('\r\n\r\n');
			if (end === -1)
				return;
			const m = /\r\nx-request-id: ([0-9a-f]{8})-/i.exec(
			    buf.slice(0, end));
			if (!m)
				reject(new Error(`no request id: ${buf.slice(0, 200)}`));
			else
				resolve({ s, worker: m[1] });
		});
		s.on('error', reject);
	    })));
}

for (const n of [64, 1000]) {
	test(`spread_${n}_keepalive_connections_over_two_workers`,
	    { timeout: 60000 }, async () => {
		const db = await h.freshDb(pg, `spread_${n}`);
		const k = await h.startKiln({ name: `spread_${n}`,
		    databaseUrl: db.url, workers: 2 });
		/* Both workers up before the burst (serial fresh connections
		 * would all go to the worker holding the lock: it is free
		 * again after each one). */
		await h.waitFor(() => k.workerPids().length === 2,
		    { timeout: 10000, interval: 20, what: 'two workers' });
		await h.sleep(300);

		const held = await holdConnections(k.port, '/health', n);
		try {
			const per = {};
			for (const c of held)
				per[c.worker] = (per[c.worker] || 0) + 1;
			const counts = Object.values(per).sort((a, b) => b - a);
			const ratio = counts[0] / (n / 2);
			console.log(`# ${n} held connections per worker: ` +
			    `${counts.join(' / ')} (max/mean ${ratio.toFixed(2)})`);
			assert.equal(counts.length, 2, 'both workers hold some');
			assert.ok(ratio <= 1.25, `max/mean ${ratio} > 1.25`);
		} finally {
			for (const c of held)
				c.s.destroy();
		}
	});
}
