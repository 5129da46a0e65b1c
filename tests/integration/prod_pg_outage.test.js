'use strict';

/*
 * Issue 5 §3: PostgreSQL stopped for 30 s mid-run, under two instances
 * (2 workers each). Three sources:
 *   steady     oauth.js, 120 s tokens, nothing due during the outage
 *   slow-ok    fault.js in slow mode: a refresh is in flight (the
 *              upstream answers 3 s later, after PostgreSQL went away)
 *   slow-fail  fault.js in hang mode: a refresh is in flight and fails
 *              (connection closed after 3 s) while PostgreSQL is away
 * While the database is down: current-token answers 200 from memory on
 * every instance (0 failures), /health stays 200 (liveness) and
 * /health/detailed turns 503. After the restart: readiness returns,
 * both in-flight outcomes are written, a new refresh is served by every
 * instance, and refresh_events has one row per upstream request.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const h = require('./lib');
const p = require('./lib/prod');
const a = require('./lib/admin');

const pg = h.filePg();

const OUTAGE_MS = 30000;

test('postgres_stopped_30s_mid_run', { timeout: 180000 }, async () => {
	const dir = h.procs.mkTmp('prod_pg_outage');
	const secret = h.secret('steady');
	const idp = await h.startOAuth(['--lifetime', '120', '--client',
	    `steady:${secret}:client_credentials`]);
	const fOk = await h.startFault(['--lifetime', '120']);
	const fFail = await h.startFault(['--lifetime', '120']);
	const db = await h.freshDb(pg, 'prod_pg_outage');
	const cluster = await pg();
	const src = (name, url, extra = {}) => Object.assign({ name,
	    kind: 'client_credentials', token_url: url, client_id: name,
	    client_secret: extra.secret || h.secret(name) }, extra.more || {});
	const sourcesFile = path.join(dir, 'sources.json');
	fs.writeFileSync(sourcesFile, JSON.stringify({ sources: [
		src('steady', idp.tokenUrl, { secret }),
		src('slow-ok', fOk.tokenUrl),
		src('slow-fail', fFail.tokenUrl),
	] }));
	const masterKey = crypto.randomBytes(32).toString('base64');
	const ks = [];
	for (let i = 0; i < 2; i++)
		ks.push(await p.startInstance({ name: `prod_pg_${i}`,
		    databaseUrl: db.url, masterKey, sourcesFile, workers: 2,
		    env: { KILN_ADMIN_KEY: a.ADMIN_KEY } }));
	const names = ['steady', 'slow-ok', 'slow-fail'];
	const before = {};
	for (const k of ks)
		for (const n of names)
			before[n] = (await h.waitToken(k, n)).json;

	/* Two refreshes in flight when the database goes. */
	await fOk.mode({ mode: 'slow', hang_ms: 3000 });
	await fFail.mode({ mode: 'hang', hang_ms: 3000 });
	for (const n of ['slow-ok', 'slow-fail']) {
		const r = await p.adminRefresh(ks[0], n, a.ADMIN_KEY);
		assert.equal(r.status, 202, `${n}: ${r.status} ${r.text}`);
	}
	await h.waitFor(async () => (await fOk.stats()).token_requests === 2 &&
	    (await fFail.stats()).token_requests === 2, { timeout: 3000,
	    interval: 20, what: 'both refreshes at the upstream' });

	/* Clients keep asking during the whole outage. */
	const problems = [];
	let answers = 0;
	const pollers = [];
	for (const k of ks) {
		for (const n of names) {
			pollers.push(h.poller(() => k.currentToken(n,
			    { timeout: 3000 }), 5, (err, r) => {
				if (err)
					problems.push(`${k.name} ${n}: ${err.message}`);
				else if (r.status !== 200)
					problems.push(`${k.name} ${n}: ${r.status} ` +
					    r.text.slice(0, 200));
				else
					answers++;
			}));
		}
	}
	const ready = [];	/* {k, at, status} of /health/detailed */
	const live = [];
	let watching = true;
	const watch = (async () => {
		while (watching) {
			for (const k of ks) {
				try {
					const r = await k.get('/health/detailed',
					    { timeout: 5000 });
					ready.push({ k: k.name, at: Date.now(),
					    status: r.status, body: r.json });
					const l = await k.get('/health',
					    { timeout: 5000 });
					live.push({ k: k.name, status: l.status });
				} catch (e) {
					ready.push({ k: k.name, at: Date.now(),
					    status: e.message });
				}
			}
			await h.sleep(250);
		}
	})();

	const stopAt = Date.now();
	await cluster.stop();
	const stoppedAt = Date.now();
	await h.sleep(Math.max(0, stopAt + OUTAGE_MS - Date.now()));
	const restartAt = Date.now();
	await cluster.start();
	const startedAt = Date.now();

	/* Readiness comes back by itself. */
	for (const k of ks) {
		await h.waitFor(async () => (await k.get('/health/detailed'))
		    .status === 200, { timeout: 20000, interval: 200,
		    what: `${k.name} ready again` });
	}
	const readyAgainAt = Date.now();

	/* The in-flight outcomes were written after the restart. */
	const okNew = await h.waitFor(async () => {
		const row = await p.tokenRow(db, 'slow-ok');
		return row.generation > before['slow-ok'].generation ? row :
		    false;
	}, { timeout: 15000, interval: 200, what: 'slow-ok committed' });
	for (const k of ks) {
		await h.waitFor(async () => {
			const r = await k.currentToken('slow-ok');
			return r.status === 200 &&
			    r.json.generation === Number(okNew.generation);
		}, { timeout: 5000, interval: 50,
		    what: `${k.name} serves slow-ok gen ${okNew.generation}` });
	}
	await h.waitFor(async () => (await p.eventsMs(db, 'slow-fail'))
	    .some((e) => e.outcome === 'failure'), { timeout: 15000,
	    interval: 200, what: 'the failed attempt of slow-fail recorded' });

	/* Writes and propagation work again: a new refresh of steady,
	 * asked on one instance, is served by the other. */
	const r = await p.adminRefresh(ks[1], 'steady', a.ADMIN_KEY);
	assert.equal(r.status, 202, r.text);
	for (const k of ks) {
		await h.waitFor(async () => {
			const q = await k.currentToken('steady');
			return q.status === 200 && q.json.generation ===
			    before.steady.generation + 1;
		}, { timeout: 5000, interval: 50,
		    what: `${k.name} serves the new steady token` });
	}

	watching = false;
	await watch;
	for (const x of pollers)
		await x.stop();

	/* 0 failed requests while the tokens were valid */
	assert.deepEqual(problems.slice(0, 10), [],
	    `${problems.length} failed current-token requests`);
	assert.ok(answers > 6 * 5 * 30, `${answers} answers`);
	/* liveness stayed up; readiness went 503 while the database was
	 * down, at once, and only then */
	assert.ok(live.every((l) => l.status === 200), 'liveness 200');
	for (const k of ks) {
		const mine = ready.filter((x) => x.k === k.name);
		const down = mine.filter((x) => x.at > stoppedAt + 3000 &&
		    x.at < restartAt);
		assert.ok(down.length >= 10, `${k.name}: ${down.length} probes`);
		assert.ok(down.every((x) => x.status === 503), `${k.name}: ` +
		    `readiness while down: ${[...new Set(down.map((x) =>
		    x.status))]}`);
		const d = down.find((x) => x.body);
		assert.ok(d && d.body.checks && d.body.checks.database &&
		    JSON.stringify(d.body.checks.database) !== '"ok"',
		    `${k.name}: checks.database says why: ` +
		    JSON.stringify(d && d.body));
		const before503 = mine.filter((x) => x.at < stopAt);
		assert.ok(before503.every((x) => x.status === 200),
		    `${k.name}: ready before the outage`);
	}

	/* one event row per upstream request */
	const ups = {
		steady: (await idp.stats()).by_client.steady,
		'slow-ok': (await fOk.stats()).token_requests,
		'slow-fail': (await fFail.stats()).token_requests,
	};
	const counts = {};
	for (const n of names) {
		const ev = await p.eventsMs(db, n);
		counts[n] = ev.length;
	}
	console.log(`# outage ${restartAt - stopAt} ms ` +
	    `(stop took ${stoppedAt - stopAt} ms, start ` +
	    `${startedAt - restartAt} ms, ready again after ` +
	    `${readyAgainAt - startedAt} ms); ${answers} answers; upstream ` +
	    `requests ${JSON.stringify(ups)}; events ${JSON.stringify(counts)}`);
	assert.deepEqual(counts, ups, 'an event for every upstream request');
	const failEv = (await p.eventsMs(db, 'slow-fail')).at(-1);
	assert.equal(failEv.outcome, 'failure');
	assert.ok(failEv.started_ms < stoppedAt, 'the attempt began before ' +
	    'the outage and was written after it');

	for (const k of ks) {
		assert.equal(k.exited, null, `${k.name} running`);
		const died = k.logs().split('\n').filter((l) =>
		    /\(hdlr: [^)]*\) gone|restarting worker/.test(l));
		assert.deepEqual(died, [], `${k.name}: a worker died`);
	}
});
