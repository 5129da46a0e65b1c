'use strict';

/*
 * Issue 5 §3, the upstream and worker faults:
 *
 * upstream_down_longer_than_a_lifetime: two instances, 8 s tokens
 *   (refresh 1 s before expiry), the upstream answers 503 from the
 *   first token on until well past its expiry. Clients get 200 while
 *   the token is valid, then 503 {"valid":false} with Retry-After;
 *   retries go on after the expiry with exponential, capped backoff
 *   (each gap within the policy's ceiling for its failure count); when
 *   the upstream is back the next retry succeeds by itself, and both
 *   instances serve it within the propagation bound. One event per
 *   upstream request.
 *
 * worker_sigkill_replaced_and_serves_at_once: every worker of an
 *   instance is killed with SIGKILL; Kore starts new ones, which serve
 *   the token from PostgreSQL at once (no upstream call, no failed
 *   request) and follow the next refresh.
 */

const assert = require('node:assert/strict');
const { describe, it } = require('node:test');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const h = require('../lib');
const p = require('../lib/prod');
const a = require('../lib/admin');

const pg = h.filePg();

describe('faults', { concurrency: true }, () => {
	it('upstream_down_longer_than_a_lifetime', { timeout: 240000 },
	    async () => {
		const L = 8;
		const dir = h.procs.mkTmp('prod_updown');
		const f = await h.startFault(['--lifetime', String(L)]);
		const db = await h.freshDb(pg, 'prod_updown');
		const sourcesFile = path.join(dir, 'sources.json');
		fs.writeFileSync(sourcesFile, JSON.stringify({ sources: [{
			name: 'down', kind: 'client_credentials',
			token_url: f.tokenUrl, client_id: 'kiln',
			client_secret: h.secret('down'), refresh_buffer: 1,
		}] }));
		const masterKey = crypto.randomBytes(32).toString('base64');
		/* This case is one token's own retry policy: the host's
		 * circuit (public/ondemand_budget.test.js) would hold the retries for
		 * KILN_CIRCUIT_OPEN after 5 failures; keep it closed. */
		const env = { KILN_UPSTREAM_TIMEOUT: '3',
		    KILN_UPSTREAM_CONNECT_TIMEOUT: '2',
		    KILN_CIRCUIT_FAILURES: '1000' };
		const ks = [];
		for (let i = 0; i < 2; i++)
			ks.push(await h.startKiln({ name: `prod_updown_${i}`,
			    databaseUrl: db.url, masterKey, sourcesFile,
			    workers: 2, env }));
		const first = [];
		for (const k of ks)
			first.push((await h.waitToken(k, 'down')).json);
		const exp0 = h.parseIso(first[0].expires_at);
		await f.mode({ mode: '5xx', status: 503 });
		const downAt = Date.now();

		const seen = [];
		const pollers = ks.map((k) => h.poller(() => k.currentToken(
		    'down', { timeout: 3000 }), 10, (err, r, sentAt) => {
			seen.push(err ? { k: k.name, sentAt, err: err.message } :
			    { k: k.name, sentAt, at: r.at, ms: r.ms,
			    status: r.status, body: r.json,
			    retryAfter: r.headers['retry-after'] });
		}));

		/* Down past the expiry, with at least two failed attempts
		 * after it; then back as soon as the next retry is near. */
		await h.waitFor(async () => {
			const ev = await p.eventsMs(db, 'down');
			return Date.now() > exp0 + 2000 && ev.filter((e) =>
			    e.outcome === 'failure' && e.started_ms > exp0)
			    .length >= 2;
		}, { timeout: 150000, interval: 250,
		    what: 'two failed retries after the expiry' });
		const row = await h.waitFor(async () => {
			const r = await p.tokenRow(db, 'down');
			return r.next_ms - Date.now() <= 2500 &&
			    r.lease_owner === null ? r : false;
		}, { timeout: 200000, interval: 100,
		    what: 'the next retry to be near' });
		await f.mode({ mode: 'ok' });
		const upAt = Date.now();
		const downFor = upAt - downAt;

		/* every instance serves the first success */
		const servedAt = await Promise.all(ks.map(async (k) => {
			for (;;) {
				const r = await k.currentToken('down');
				if (r.status === 200)
					return { at: r.at, gen: r.json.generation };
				if (Date.now() - upAt > 20000)
					throw new Error(`${k.name}: no recovery`);
				await h.sleep(5);
			}
		}));
		await h.sleep(300);
		for (const x of pollers)
			await x.stop();

		const ev = await p.eventsMs(db, 'down');
		const ok = ev.filter((e) => e.outcome === 'success');
		const fails = ev.filter((e) => e.outcome === 'failure');
		const recovered = ok.at(-1);
		assert.equal(Number(recovered.generation), first[0].generation + 1);
		assert.ok(servedAt.every((s) => s.gen === Number(
		    recovered.generation)), JSON.stringify(servedAt));
		const lag = servedAt.map((s) => s.at - recovered.finished_ms);
		console.log(`# upstream down ${downFor} ms (lifetime ${L} s), ` +
		    `${fails.length} failed attempts, recovery ` +
		    `${recovered.started_ms - upAt} ms after the upstream came ` +
		    `back (retry was due at ${row.next_ms - upAt} ms); served by ` +
		    `both instances ${lag.map((x) => Math.round(x))} ms after ` +
		    `the commit; slowest answer ${Math.max(...seen.filter((s) =>
		    s.ms).map((s) => s.ms))} ms`);
		assert.ok(downFor > L * 1000, 'down longer than a lifetime');
		assert.ok(recovered.started_ms <= row.next_ms + 1500,
		    'the scheduled retry recovered by itself');
		for (const x of lag)
			assert.ok(x <= 100 + 30, `served ${Math.round(x)} ms after ` +
			    'the commit (bound 100 ms + polling)');

		/* the client side */
		const errs = seen.filter((s) => s.err);
		assert.deepEqual(errs.slice(0, 5), [], 'every request answered');
		/* answered from memory: a client never waits for the
		 * upstream (generous bound for a loaded machine) */
		const slow = seen.filter((s) => s.ms > 2500);
		assert.deepEqual(slow.slice(0, 3).map((s) => `${s.k} ` +
		    `${s.status} in ${s.ms} ms at ` +
		    new Date(s.sentAt).toISOString()), [], 'never waits');
		for (const s of seen) {
			if (s.status === 200) {
				assert.ok(h.parseIso(s.body.expires_at) > s.at,
				    `an expired token was served at ${s.at}`);
				continue;
			}
			assert.equal(s.status, 503, JSON.stringify(s.body));
			assert.equal(s.body.valid, false);
			assert.equal(s.body.token, null);
			assert.match(String(s.retryAfter), /^\d+$/,
			    'Retry-After on 503');
			assert.ok(Number(s.retryAfter) >= 1 &&
			    Number(s.retryAfter) <= 300, s.retryAfter);
			/* only once the token is (nearly) expired: kiln treats
			 * the last second as expired */
			assert.ok(s.sentAt >= exp0 - 1100, `503 at ` +
			    `${exp0 - s.sentAt} ms before the expiry`);
		}
		const invalid = seen.filter((s) => s.status === 503);
		assert.ok(invalid.length >= 20, `${invalid.length} 503 answers`);
		for (const k of ks)
			assert.ok(invalid.some((s) => s.k === k.name), k.name);

		/* retries: none while the lease is held elsewhere, gaps
		 * within the policy's ceiling */
		const st = await f.stats();
		assert.equal(st.token_requests, ev.length, 'an event per ' +
		    'upstream request');
		assert.ok(fails.filter((e) => e.started_ms > exp0).length >= 2);
		for (let i = 1; i < fails.length; i++) {
			const gap = fails[i].started_ms - fails[i - 1].started_ms;
			const n = i;		/* failures before this attempt */
			const left = exp0 - fails[i - 1].started_ms;
			let cap = 300000;
			if (left > 0 && left / 4 < cap)
				cap = Math.max(250, left / 4);
			const ceiling = Math.min(cap, 1000 * 2 ** (n - 1));
			/* + the 200 ms scheduler tick, the attempt's own
			 * duration and the commit */
			const slack = 400 + Number(fails[i - 1].duration_ms);
			assert.ok(gap >= 250 - 50, `attempts ${i - 1},${i} ` +
			    `${gap} ms apart`);
			assert.ok(gap <= ceiling + slack, `attempt ${i}: ${gap} ` +
			    `ms after the previous, ceiling ${ceiling} ms`);
		}
		for (const e of fails) {
			assert.equal(Number(e.http_status), 503);
			assert.ok(e.error && e.error.length > 0);
		}
	});

	it('worker_sigkill_replaced_and_serves_at_once', { timeout: 120000 },
	    async () => {
		const secret = h.secret('kill');
		const idp = await h.startOAuth(['--lifetime', '600', '--client',
		    `kill:${secret}:client_credentials`]);
		const db = await h.freshDb(pg, 'prod_sigkill');
		const k = await h.startKiln({ name: 'prod_sigkill',
		    databaseUrl: db.url, workers: 2, sources: [{
			name: 'kill', kind: 'client_credentials',
			token_url: idp.tokenUrl, client_id: 'kill',
			client_secret: secret }],
		    env: { KILN_ADMIN_KEY: a.ADMIN_KEY } });
		const t = (await h.waitToken(k, 'kill')).json;
		const prefixes = new Set();
		for (let i = 0; i < 5; i++)
			prefixes.add(h.workerOf(await k.currentToken('kill')));
		const ups0 = (await idp.stats()).token_requests;

		for (let round = 0; round < 3; round++) {
			/* round 0: every worker; then the one answering */
			const old = k.workerPids();
			assert.equal(old.length, 2);
			const victims = round === 0 ? old : [old[round % 2]];
			const killedAt = Date.now();
			for (const pid of victims)
				process.kill(pid, 'SIGKILL');
			/* ask at once: the connection waits in the backlog
			 * until a worker takes it */
			const r = await k.currentToken('kill', { timeout: 10000 });
			const took = Date.now() - killedAt;
			assert.equal(r.status, 200, `round ${round}: ${r.status} ` +
			    r.text);
			assert.equal(r.json.token, t.token, 'the same token');
			assert.ok(took < 3000, `round ${round}: answered ` +
			    `${took} ms after the kill`);
			const now = await h.waitFor(() => {
				const w = k.workerPids();
				return w.length === 2 && victims.every((v) =>
				    !w.includes(v)) ? w : false;
			}, { timeout: 5000, interval: 20,
			    what: 'replacement workers' });
			assert.equal(now.length, 2);
			if (round === 0) {
				assert.ok(!prefixes.has(h.workerOf(r)),
				    'answered by a new worker');
				console.log(`# all workers SIGKILLed: first answer ` +
				    `(200, same token) ${took} ms later`);
			}
		}
		assert.equal((await idp.stats()).token_requests, ups0,
		    'served from PostgreSQL, no upstream call');
		assert.equal(p.workerDeaths(k).filter((l) =>
		    /restarting worker/.test(l)).length, 4, 'Kore restarted ' +
		    'each killed worker');

		/* the new workers follow the next refresh */
		const rr = await p.adminRefresh(k, 'kill', a.ADMIN_KEY);
		assert.equal(rr.status, 202);
		await h.waitFor(async () => {
			const q = await k.currentToken('kill');
			return q.status === 200 && q.json.generation ===
			    t.generation + 1;
		}, { timeout: 3000, interval: 20, what: 'the new generation' });
		assert.equal(k.exited, null);
	});
});
