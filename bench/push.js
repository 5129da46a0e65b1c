#!/usr/bin/env node
'use strict';

/*
 * The client side of bench/phase_push.sh: holds many long-polls and event
 * streams on one kiln, then asks for one refresh and times every answer.
 *
 *   push.js --port P --name N --admin-key K --pid KILN_PARENT_PID \
 *       --waiters 10000 --streams 1000 --ready FILE --go FILE --out FILE
 *
 * 1. reads the current token's fingerprint and generation, and the RSS
 *    of kiln's workers (sum, kB);
 * 2. opens the long-polls (wait_for_change=true, timeout_sec=300), until
 *    /metrics says kiln_waiters has them all, and reads the RSS again;
 *    then the streams, until kiln_streams has them, and the RSS again;
 * 3. writes --ready and waits for --go (run.sh measures throughput in
 *    between);
 * 4. asks for a refresh through the admin API and records when each
 *    long-poll answers (with the new fingerprint) and each stream sends
 *    the new generation; writes a JSON summary to --out.
 *
 * Times are wall-clock ms (performance.timeOrigin + performance.now()),
 * comparable with PostgreSQL's commit timestamps. Raw sockets: 11 000
 * connections through node's http agent would measure the agent.
 */

const fs = require('node:fs');
const net = require('node:net');
const { performance } = require('node:perf_hooks');

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function args(argv)
{
	const o = {};
	for (let i = 0; i < argv.length; i += 2)
		o[argv[i].replace(/^--/, '')] = argv[i + 1];
	return o;
}

const o = args(process.argv.slice(2));
const PORT = Number(o.port);
const NAME = o.name;
const NW = Number(o.waiters || 10000);
const NS = Number(o.streams || 1000);
const BATCH = 250;

/* One request on a fresh connection; the whole answer (Content-Length). */
function once(method, path, headers = {}, body = '')
{
	return new Promise((resolve, reject) => {
		const s = net.connect(PORT, '127.0.0.1');
		let buf = '';
		s.on('connect', () => {
			let h = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1` +
			    '\r\nConnection: close\r\n';
			for (const [k, v] of Object.entries(headers))
				h += `${k}: ${v}\r\n`;
			h += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
			s.write(h + body);
		});
		s.on('data', (d) => {
			buf += d.toString('utf8');
		});
		s.on('end', () => {
			const i = buf.indexOf('\r\n\r\n');
			resolve({ status: Number(buf.slice(9, 12)),
			    body: buf.slice(i + 4) });
		});
		s.on('error', reject);
	});
}

async function metric(name)
{
	const r = await once('GET', '/metrics');
	const m = r.body.match(new RegExp(`^${name} (\\d+)$`, 'm'));
	return m ? Number(m[1]) : -1;
}

function workersRssKb(parent)
{
	let kb = 0;
	for (const p of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(p))
			continue;
		try {
			const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
			const ppid = Number(st.slice(st.lastIndexOf(')') + 2)
			    .split(' ')[1]);
			if (ppid !== parent)
				continue;
			const s = fs.readFileSync(`/proc/${p}/status`, 'utf8');
			kb += Number(s.match(/^VmRSS:\s+(\d+)/m)[1]);
		} catch (e) {
			/* gone */
		}
	}
	return kb;
}

/* Open n connections of kind (a request each), in batches. */
async function openAll(n, path, onData)
{
	const socks = [];
	for (let i = 0; i < n; i += BATCH) {
		const batch = [];
		for (let j = i; j < Math.min(n, i + BATCH); j++) {
			batch.push(new Promise((resolve) => {
				const s = net.connect(PORT, '127.0.0.1');
				const c = { s, i: j, buf: '', at: null,
				    ok: false, errors: 0 };
				s.setNoDelay(true);
				s.on('connect', () => {
					s.write(`GET ${path} HTTP/1.1\r\n` +
					    'Host: 127.0.0.1\r\n\r\n');
					resolve();
				});
				s.on('data', (d) => onData(c, d));
				s.on('error', () => {
					c.errors++;
					resolve();
				});
				socks.push(c);
			}));
		}
		await Promise.all(batch);
	}
	return socks;
}

async function waitMetric(name, n, ms)
{
	const deadline = Date.now() + ms;
	let v = -1;
	while (Date.now() < deadline) {
		if ((v = await metric(name)) >= n)
			return v;
		await sleep(200);
	}
	throw new Error(`${name}: ${v} of ${n} after ${ms} ms`);
}

function pct(a, f)
{
	if (a.length === 0)
		return null;
	return a[Math.min(a.length - 1, Math.ceil(f * a.length) - 1)];
}

async function main()
{
	const first = await once('GET', `/api/tokens/${NAME}/current-token`);
	if (first.status !== 200)
		throw new Error(`current-token: ${first.status} ${first.body}`);
	const cur = JSON.parse(first.body);
	const parent = Number(o.pid);
	const rss0 = workersRssKb(parent);

	let early = 0;
	const polls = await openAll(NW, `/api/tokens/${NAME}/current-token` +
	    `?wait_for_change=true&last_fingerprint=${cur.fingerprint}` +
	    '&timeout_sec=300', (c, d) => {
		if (c.at === null)
			c.at = now();
		c.buf += d.toString('utf8');
		if (!go)
			early++;
	    });
	console.error(`opened ${NW} long-polls`);
	await waitMetric('kiln_waiters', NW, 60000);
	await sleep(500);
	const rss1 = workersRssKb(parent);

	const streams = await openAll(NS, `/api/tokens/${NAME}/stream`,
	    (c, d) => {
		c.buf += d.toString('utf8');
		if (c.at === null && go &&
		    c.buf.includes(`id: ${cur.generation + 1}\n`))
			c.at = now();
	    });
	console.error(`opened ${NS} streams`);
	await waitMetric('kiln_streams', NS, 60000);
	await sleep(500);
	const rss2 = workersRssKb(parent);

	fs.writeFileSync(o.ready, JSON.stringify({ rss0, rss1, rss2 }));
	while (!fs.existsSync(o.go))
		await sleep(50);

	go = true;
	const asked = now();
	const r = await once('POST', `/api/tokens/${NAME}/refresh`,
	    { Authorization: `Bearer ${o['admin-key']}` });
	if (r.status >= 300)
		throw new Error(`refresh: ${r.status} ${r.body}`);

	const deadline = Date.now() + 30000;
	while (Date.now() < deadline) {
		if (polls.every((c) => c.at !== null) &&
		    streams.every((c) => c.at !== null))
			break;
		await sleep(50);
	}

	let newFpr = 0;
	for (const c of polls) {
		const m = c.buf.match(/"fingerprint":"([0-9a-f]+)"/);
		if (c.buf.startsWith('HTTP/1.1 200') && m &&
		    m[1] !== cur.fingerprint)
			newFpr++;
	}
	const pa = polls.filter((c) => c.at !== null).map((c) => c.at);
	const sa = streams.filter((c) => c.at !== null).map((c) => c.at);
	for (const c of [...polls, ...streams])
		c.s.destroy();

	fs.writeFileSync(o.out, JSON.stringify({
		generation: cur.generation + 1,
		asked_ms: asked,
		rss0_kb: rss0, rss1_kb: rss1, rss2_kb: rss2,
		waiters: NW, streams: NS,
		polls_answered: pa.length, polls_new_fingerprint: newFpr,
		polls_early: early,
		streams_told: sa.length,
		poll_at: pa, stream_at: sa,
	}));
}

let go = false;
main().then(() => process.exit(0), (e) => {
	console.error(`push.js: ${e.stack}`);
	process.exit(1);
});
