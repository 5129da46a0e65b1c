'use strict';

/*
 * Issue 5 §4: graceful drain on SIGTERM and SIGQUIT (sent to the parent
 * pid only, as an orchestrator does).
 *
 * sigterm_drain: a client request is in flight (current-token?min_ttl
 *   waiting on a 3 s upstream call). After SIGTERM: readiness on an open
 *   connection is 503 at once, new connections are refused, the request
 *   in flight gets its 200 with the new token, and so does one sent
 *   during the drain on a connection made before it, the lease is
 *   released and the process exits well within KILN_DRAIN_TIMEOUT.
 * sigquit_drain_bounded: the same with an upstream that hangs 20 s and
 *   KILN_DRAIN_TIMEOUT=2: the process exits within the bound anyway and
 *   gives its lease back.
 * rolling_restart_two_instances: two instances under client load (fresh
 *   connection per request, Connection: close; a refused connection is
 *   retried on the other instance, and so is one reset while connecting,
 *   as nothing was sent); each instance in turn is drained
 *   with SIGTERM and started again on its port. No request is lost.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { describe, it } = require('node:test');

const h = require('../lib');
const p = require('../lib/prod');

const pg = h.filePg();

/* A request on a fresh connection: 'answered' (any HTTP answer),
 * 'refused' (or reset while connecting: nothing was sent), 'reset'
 * (accepted and the request sent, then closed or reset unanswered)
 * or 'timeout'. */
function probeRequest(port, ms = 2000)
{
	return new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port });
		let got = '';
		let done = false;
		const end = (v) => {
			if (done)
				return;
			done = true;
			clearTimeout(t);
			s.destroy();
			resolve(v);
		};
		const t = setTimeout(() => end('timeout'), ms);
		let connected = false;
		s.on('connect', () => {
			connected = true;
			s.write('GET /health HTTP/1.1\r\n' +
			    'Host: 127.0.0.1\r\nConnection: close\r\n\r\n');
		});
		s.on('data', (d) => {
			got += d;
			if (/^HTTP\/1\.1 \d{3}/.test(got))
				end('answered');
		});
		/* a reset while connecting is a refusal: nothing was sent */
		s.on('error', (e) => end(e.code === 'ECONNREFUSED' ||
		    !connected ? 'refused' : 'reset'));
		s.on('close', () => end(got ? 'answered' : 'reset'));
	});
}

/*
 * A keep-alive connection, its first request answered. write() sends
 * more; next() is the next answer, or what became of the connection
 * ('closed' with nothing sent, or an error code).
 */
async function rawKeep(port)
{
	const s = net.connect({ host: '127.0.0.1', port });
	let got = Buffer.alloc(0);
	let ended = null;
	let wake = () => {};
	s.on('data', (d) => {
		got = Buffer.concat([got, d]);
		wake();
	});
	s.on('error', (e) => {
		ended = e.code || e.message;
		wake();
	});
	s.on('close', () => {
		ended = ended || 'closed';
		wake();
	});
	const next = () => new Promise((resolve) => {
		const look = () => {
			const end = got.indexOf('\r\n\r\n');
			const head = end < 0 ? '' : got.subarray(0, end)
			    .toString('latin1');
			const cl = Number((/content-length: *(\d+)/i
			    .exec(head) || [0, 0])[1]);
			if (end >= 0 && got.length >= end + 4 + cl) {
				const body = got.subarray(end + 4, end + 4 + cl)
				    .toString();
				got = got.subarray(end + 4 + cl);
				resolve({ status: Number(head.slice(9, 12)),
				    close: /^connection: *close/im.test(head),
				    json: JSON.parse(body), at: Date.now() });
			} else if (ended !== null) {
				resolve({ error: ended });
			} else {
				wake = look;
			}
		};
		look();
	});
	const write = (t) => s.write(t);
	write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
	assert.equal((await next()).status, 200);
	return { write, next, close: () => s.destroy() };
}

async function oneInstance(label, env, mode = {})
{
	const f = await h.startFault(['--lifetime', '600']);
	const db = await h.freshDb(pg, label);
	const k = await h.startKiln({ name: label, databaseUrl: db.url,
	    workers: 2, env, sources: [{ name: 'd', kind:
	    'client_credentials', token_url: f.tokenUrl, client_id: 'd',
	    client_secret: h.secret('d') }] });
	const first = (await h.waitToken(k, 'd')).json;
	await f.mode(Object.assign({ lifetime: 3600 }, mode));
	return { f, db, k, first };
}

/*
 * Start a request that makes kiln refresh now and wait for it. min_ttl is
 * the first token's lifetime: more than is left, and not more than the
 * upstream gives (a longer one is refused without an upstream call).
 */
async function inFlight(k, f)
{
	const req = k.currentToken('d', { query: '?min_ttl=600',
	    timeout: 30000 }).then((r) => r, (e) => ({ error: e.code ||
	    e.message }));
	await h.waitFor(async () => (await f.stats()).token_requests === 2,
	    { timeout: 3000, interval: 10, what: 'the refresh upstream' });
	return { req };
}

describe('graceful drain', { concurrency: true }, () => {
	it('sigterm_drain', { timeout: 60000 }, async () => {
		const { f, db, k } = await oneInstance('prod_drain_term',
		    { KILN_DRAIN_TIMEOUT: '10', KILN_WAIT_MS: '8000' },
		    { mode: 'slow', hang_ms: 3000 });
		/* A connection on each worker: the one that holds no work
		 * may finish draining (and close it) after the grace. */
		const pins = await p.pinWorkers(k, 2);
		const keeps = Object.entries(pins).filter(([w]) =>
		    w !== 'spare').map(([, l]) => l[0]);
		for (const c of keeps)
			assert.equal((await c.get('/health/detailed')).status, 200);
		const { req } = await inFlight(k, f);
		const lease = await p.tokenRow(db, 'd');
		assert.ok(lease.lease_owner, 'a lease is held');
		const late = await rawKeep(k.port);

		const sigAt = Date.now();
		k.signal('SIGTERM');
		/* on a connection opened before: a request that must wait
		 * for the refresh in flight, and the start of another one
		 * behind it (bytes that wake the connection while it waits) */
		const lateAnswer = (async () => {
			await h.sleep(100);
			late.write('GET /api/tokens/d/current-token?min_ttl=' +
			    '600 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
			await h.sleep(50);
			late.write('GET /health HTTP/1.1\r\n');
			return late.next();
		})();
		/* from the signal on, 4 clients open connections and send a
		 * request on each: until they are refused, every request on a
		 * connection made meanwhile is answered, never dropped */
		let refusedAt = null;
		const seen = [];
		const probes = Promise.all([0, 1, 2, 3].map(async () => {
			while (refusedAt === null && Date.now() - sigAt < 3000) {
				const c = await probeRequest(k.port);
				seen.push(c);
				if (c === 'refused' && refusedAt === null)
					refusedAt = Date.now();
			}
		}));
		/* readiness 503 at once, on the connection already open */
		let notReady = null;
		for (let i = 0; i < 100 && notReady === null; i++) {
			const qs = await Promise.all(keeps.map((c) =>
			    c.get('/health/detailed').catch(() => null)));
			const q = qs.find((x) => x !== null && x.status === 503);
			if (q)
				notReady = { at: q.at, body: q.json };
			else
				await h.sleep(10);
		}
		assert.ok(notReady, 'readiness turned 503');
		await probes;
		const counts = {};
		for (const x of seen)
			counts[x] = (counts[x] || 0) + 1;
		const r = await req;
		const lr = await lateAnswer;
		const exit = await k.waitExit(15000);
		const exitAt = Date.now();
		console.log(`# SIGTERM: readiness 503 after ` +
		    `${notReady.at - sigAt} ms, connections refused after ` +
		    `${refusedAt && refusedAt - sigAt} ms (probes ` +
		    `${JSON.stringify(counts)}), ` +
		    `in-flight answered ${r.status} after ${r.at - sigAt} ms, ` +
		    `exit ${JSON.stringify(exit)} after ${exitAt - sigAt} ms`);
		assert.ok(notReady.at - sigAt <= 250,
		    `readiness 503 ${notReady.at - sigAt} ms after SIGTERM`);
		assert.ok(refusedAt !== null && refusedAt - sigAt <= 1000,
		    `new connections refused (${JSON.stringify(counts)})`);
		assert.equal(counts.timeout, undefined,
		    'no connection left hanging');
		assert.equal(counts.reset, undefined, 'a connection the kernel ' +
		    'accepted during the drain was reset without an answer ' +
		    `(${JSON.stringify(counts)})`);
		assert.equal(r.status, 200, `in-flight request: ` +
		    JSON.stringify(r.error || r.text));
		const st = await f.stats();
		assert.equal(r.json.token, st.issued_access_tokens.at(-1),
		    'the in-flight request got the new token');
		assert.equal(lr.status, 200, 'a request that came during the ' +
		    `drain and waited: ${JSON.stringify(lr)}`);
		assert.equal(lr.json.token, r.json.token);
		assert.ok(lr.close, 'its answer closes the connection');
		late.close();
		assert.ok(exit !== null, 'exited');
		assert.ok(exitAt - sigAt < 10000, 'within KILN_DRAIN_TIMEOUT');
		assert.ok(exitAt >= r.at, 'after the request in flight');
		const row = await p.tokenRow(db, 'd');
		assert.equal(row.lease_owner, null, 'lease released');
		assert.equal(row.generation, 2, 'the refresh was committed');
		const logs = k.jsonLogs().map((l) => l.msg);
		assert.ok(logs.includes('draining') && logs.includes('drained'));
		for (const c of keeps)
			c.close();
	});

	it('sigquit_drain_bounded', { timeout: 60000 }, async () => {
		const { f, db, k } = await oneInstance('prod_drain_quit',
		    { KILN_DRAIN_TIMEOUT: '2', KILN_WAIT_MS: '20000',
		    KILN_UPSTREAM_TIMEOUT: '15', KILN_LEASE_SECONDS: '30' },
		    { mode: 'hang', hang_ms: 20000 });
		const { req } = await inFlight(k, f);
		const lease = await p.tokenRow(db, 'd');
		assert.ok(lease.lease_owner, 'a lease is held');
		const sigAt = Date.now();
		k.signal('SIGQUIT');
		const exit = await k.waitExit(15000);
		const took = Date.now() - sigAt;
		const r = await req;
		console.log(`# SIGQUIT with a 20 s upstream call in flight and ` +
		    `KILN_DRAIN_TIMEOUT=2: exit ${JSON.stringify(exit)} after ` +
		    `${took} ms; the waiting client got ` +
		    `${r.status || r.error}`);
		assert.ok(exit !== null, 'exited');
		assert.ok(took <= 2000 + 1500, `exit ${took} ms after SIGQUIT ` +
		    '(bound: KILN_DRAIN_TIMEOUT=2 s)');
		assert.ok(took >= 1500, 'it did wait for the work in flight');
		const row = await p.tokenRow(db, 'd');
		assert.equal(row.lease_owner, null, 'lease given back at exit');
	});

	it('rolling_restart_two_instances', { timeout: 120000 }, async () => {
		const secret = h.secret('roll');
		const idp = await h.startOAuth(['--lifetime', '600', '--client',
		    `roll:${secret}:client_credentials`]);
		const db = await h.freshDb(pg, 'prod_roll');
		const dir = h.procs.mkTmp('prod_roll');
		const sourcesFile = path.join(dir, 'sources.json');
		fs.writeFileSync(sourcesFile, JSON.stringify({ sources: [{
			name: 'roll', kind: 'client_credentials',
			token_url: idp.tokenUrl, client_id: 'roll',
			client_secret: secret }] }));
		const masterKey = crypto.randomBytes(32).toString('base64');
		const ks = [];
		for (let i = 0; i < 2; i++)
			ks.push(await h.startKiln({ name: `prod_roll_${i}`,
			    databaseUrl: db.url, masterKey, sourcesFile,
			    workers: 2, env: { KILN_DRAIN_TIMEOUT: '10' } }));
		for (const k of ks)
			await h.waitToken(k, 'roll');

		const stats = { ok: 0, retried: 0, lost: [], bothDown: 0 };
		const stamp = () => new Date().toISOString();
		let stop = false;
		const client = async (id) => {
			let turn = id;
			while (!stop) {
				const order = [ks[turn % 2], ks[(turn + 1) % 2]];
				turn++;
				let done = false;
				for (let attempt = 0; attempt < 20 && !done;
				    attempt++) {
					const k = order[attempt % 2];
					try {
						const r = await k.currentToken('roll',
						    { timeout: 5000, headers:
						    { Connection: 'close' } });
						if (r.status === 200 && r.json.valid) {
							stats.ok++;
						} else {
							stats.lost.push(`${stamp()} ${k.name}: ` +
							    `${r.status} ${r.text.slice(0, 100)}`);
						}
						done = true;
					} catch (e) {
						/* refused, or reset while connecting:
						 * the request was not sent, so it can go
						 * to the other instance */
						if (e.code === 'ECONNREFUSED' ||
						    e.syscall === 'connect') {
							stats.retried++;
							if (attempt % 2 === 1) {
								stats.bothDown++;
								await h.sleep(20);
							}
							continue;
						}
						stats.lost.push(`${stamp()} ${k.name}: ` +
						    `${e.code || ''} ${e.message}`);
						done = true;
					}
				}
				if (!done)
					stats.lost.push('no instance for 20 tries');
				await h.sleep(5);
			}
		};
		const clients = [0, 1, 2, 3, 4, 5].map(client);
		await h.sleep(1500);
		const times = [];
		for (const k of ks) {
			const t0 = Date.now();
			k.signal('SIGTERM');
			const exit = await k.waitExit(15000);
			assert.ok(exit, `${k.name} exited`);
			const t1 = Date.now();
			await k.start();
			const t2 = Date.now();
			times.push(`${k.name}: SIGTERM at ` +
			    `${new Date(t0).toISOString()}, exited ${t1 - t0} ms ` +
			    'later, ' +
			    `ready again ${t2 - t1} ms after that`);
			await h.sleep(1500);
		}
		stop = true;
		await Promise.all(clients);
		console.log(`# rolling restart: ${stats.ok} requests answered, ` +
		    `${stats.retried} refused connections retried elsewhere, ` +
		    `${stats.lost.length} lost; ${times.join('; ')}`);
		assert.deepEqual(stats.lost.slice(0, 10), [],
		    `${stats.lost.length} requests lost`);
		assert.ok(stats.ok > 200, `${stats.ok} requests`);
		assert.ok(stats.retried > 0, 'the refused path was exercised');
		assert.equal(stats.bothDown, 0, 'never both down');
		assert.equal((await idp.stats()).token_requests, 1,
		    'the restarts served the stored token (no upstream call)');
	});
});
