'use strict';

/*
 * Issue 5 §3: PostgreSQL stopped for 30 s mid-run. Two tests, each on
 * its own cluster (they run at the same time):
 *
 * postgres_stopped_30s_two_instances: two instances (2 workers each),
 *   clients on every instance and a load balancer's readiness probe
 *   (/health/detailed every 250 ms). While the database is down:
 *   current-token answers 200 from memory (0 failures), /health stays
 *   200, /health/detailed is 503. After the restart: ready again, a new
 *   refresh asked on one instance is served by both (writes and LISTEN
 *   are back), and refresh_events has a row per upstream request.
 *
 * postgres_stopped_with_refreshes_in_flight: two refreshes are under
 *   way when the database goes (fault.js: one answers 3 s later, one
 *   fails 3 s later). Serving goes on from memory, both outcomes are
 *   written after the restart (events for every attempt), and the new
 *   token is served.
 *
 * postgres_lost_with_queries_in_flight: a session holds ACCESS EXCLUSIVE
 *   locks on tokens and token_sources, so kiln's reads (admin listing,
 *   the cache reconcile) are waiting inside PostgreSQL when it stops
 *   (pg_ctl -m fast terminates them). Those requests get an error
 *   answer, and every worker keeps serving current-token from memory.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { describe, it } = require('node:test');

const h = require('../lib');
const p = require('../lib/prod');
const a = require('../lib/admin');

const OUTAGE_MS = 30000;

function writeSources(dir, sources)
{
	const f = path.join(dir, 'sources.json');
	fs.writeFileSync(f, JSON.stringify({ sources }, null, 2));
	return f;
}

function cc(name, url, secret = h.secret(name))
{
	return { name, kind: 'client_credentials', token_url: url,
	    client_id: name, client_secret: secret };
}

/* Pollers on every (instance, source): failures while they run. */
function clients(ks, names, perSecond)
{
	const problems = [];
	const stats = { answers: 0 };
	const pollers = [];
	for (const k of ks) {
		for (const n of names) {
			pollers.push(h.poller(() => k.currentToken(n,
			    { timeout: 3000 }), perSecond, (err, r, sentAt) => {
				const at = new Date(sentAt).toISOString();
				if (err)
					problems.push(`${at} ${k.name} ${n}: ` +
					    err.message);
				else if (r.status !== 200)
					problems.push(`${at} ${k.name} ${n}: ` +
					    `${r.status} ${r.text.slice(0, 160)}`);
				else
					stats.answers++;
			}));
		}
	}
	return {
		problems, stats,
		stop: async () => {
			for (const x of pollers)
				await x.stop();
		},
	};
}

/* Waits that report instead of throwing. */
async function eventually(fn, timeout, interval = 100)
{
	try {
		return await h.waitFor(fn, { timeout, interval });
	} catch (e) {
		return false;
	}
}

/* Everything that tells why an instance stopped answering. */
async function health(ks)
{
	const out = [];
	for (const k of ks) {
		const spin = await p.spinningWorkers(k);
		const deaths = p.workerDeaths(k);
		if (spin.length > 0)
			out.push(`${k.name}: workers spinning (CPU ms ` +
			    'used in 1 s) ' +
			    JSON.stringify(spin));
		if (deaths.length > 0)
			out.push(`${k.name}: ${deaths.join(' | ')}`);
		if (k.exited !== null)
			out.push(`${k.name}: exited ${JSON.stringify(k.exited)}`);
	}
	return out;
}

describe('PostgreSQL outage', { concurrency: true }, () => {
	it('postgres_stopped_30s_two_instances', { timeout: 180000 },
	    async () => {
		const pg = h.filePg();
		const dir = h.procs.mkTmp('prod_pg_outage');
		const sa = h.secret('alpha');
		const sb = h.secret('beta');
		const idp = await h.startOAuth(['--lifetime', '180',
		    '--client', `alpha:${sa}:client_credentials`,
		    '--client', `beta:${sb}:client_credentials`]);
		const db = await h.freshDb(pg, 'prod_pg_outage');
		const cluster = await pg();
		const sourcesFile = writeSources(dir, [cc('alpha', idp.tokenUrl,
		    sa), cc('beta', idp.tokenUrl, sb)]);
		const masterKey = crypto.randomBytes(32).toString('base64');
		const ks = [];
		for (let i = 0; i < 2; i++)
			ks.push(await h.startKiln({ name: `prod_pg_${i}`,
			    databaseUrl: db.url, masterKey, sourcesFile,
			    workers: 2, env: { KILN_ADMIN_KEY: a.ADMIN_KEY } }));
		const names = ['alpha', 'beta'];
		const gen0 = {};
		for (const k of ks)
			for (const n of names)
				gen0[n] = (await h.waitToken(k, n)).json.generation;
		const c = clients(ks, names, 5);

		/* the load balancer's readiness and liveness probes */
		const ready = [];
		const live = [];
		let watching = true;
		const watch = Promise.all(ks.map(async (k) => {
			while (watching) {
				const t = Date.now();
				try {
					const r = await k.get('/health/detailed',
					    { timeout: 3000 });
					ready.push({ k: k.name, at: t,
					    status: r.status, body: r.json });
					const l = await k.get('/health',
					    { timeout: 3000 });
					live.push({ k: k.name, at: t,
					    status: l.status });
				} catch (e) {
					ready.push({ k: k.name, at: t,
					    status: e.code || e.message });
				}
				await h.sleep(250);
			}
		}));

		await h.sleep(2000);
		const stopAt = Date.now();
		await cluster.stop();
		const stoppedAt = Date.now();
		await h.sleep(Math.max(0, stopAt + OUTAGE_MS - Date.now()));
		const during = c.problems.slice();
		const hurt = await health(ks);
		const restartAt = Date.now();
		await cluster.start();

		const readyAgain = [];
		for (const k of ks) {
			readyAgain.push(await eventually(async () =>
			    (await k.get('/health/detailed', { timeout: 2000 }))
			    .status === 200, 20000, 200) ? Date.now() : null);
		}
		watching = false;
		await watch;
		await c.stop();

		console.log(`# outage ${restartAt - stopAt} ms (stop took ` +
		    `${stoppedAt - stopAt} ms); ${c.stats.answers} answers, ` +
		    `${c.problems.length} failed (${during.length} during the ` +
		    `outage); ready again after ` +
		    `${readyAgain.map((x) => x && x - restartAt)} ms`);
		assert.deepEqual(hurt, [], 'every worker alive and responsive ' +
		    'during the outage');
		assert.deepEqual(c.problems.slice(0, 8), [],
		    `${c.problems.length} failed current-token requests ` +
		    `(tokens valid throughout)`);
		assert.ok(c.stats.answers > 2 * 2 * 5 * 30,
		    `${c.stats.answers} answers`);

		assert.ok(live.every((l) => l.status === 200),
		    'liveness 200 throughout: ' + JSON.stringify(live.filter(
		    (l) => l.status !== 200).slice(0, 3)));
		for (const k of ks) {
			const mine = ready.filter((x) => x.k === k.name);
			assert.ok(mine.filter((x) => x.at < stopAt)
			    .every((x) => x.status === 200),
			    `${k.name}: ready before the outage`);
			const down = mine.filter((x) => x.at > stoppedAt + 3000 &&
			    x.at < restartAt);
			assert.ok(down.length >= 20,
			    `${k.name}: ${down.length} readiness probes`);
			assert.ok(down.every((x) => x.status === 503),
			    `${k.name}: readiness while down: ` +
			    [...new Set(down.map((x) => x.status))].join(','));
			const first = mine.find((x) => x.at > stoppedAt &&
			    x.status === 503);
			assert.ok(first && first.at - stoppedAt < 3000,
			    `${k.name}: 503 within 3 s of the stop`);
			assert.ok(first.body && first.body.checks &&
			    first.body.checks.database !== undefined,
			    JSON.stringify(first.body));
		}
		assert.ok(readyAgain.every((x) => x !== null),
		    `ready again within 20 s of the restart: ${readyAgain}`);

		/* writes resume, and every instance hears of them */
		for (const [i, n] of [[1, 'alpha'], [0, 'beta']]) {
			const r = await p.adminRefresh(ks[i], n, a.ADMIN_KEY);
			assert.equal(r.status, 202, r.text);
			for (const k of ks) {
				await h.waitFor(async () => {
					const q = await k.currentToken(n);
					return q.status === 200 &&
					    q.json.generation > gen0[n];
				}, { timeout: 3000, interval: 20,
				    what: `${k.name} serves the new ${n}` });
			}
		}
		const st = await idp.stats();
		for (const n of names) {
			const ev = await p.eventsMs(db, n);
			assert.equal(ev.length, st.by_client[n],
			    `${n}: an event per upstream request`);
		}
		for (const k of ks)
			assert.deepEqual(p.workerDeaths(k), [], k.name);
	});

	it('postgres_stopped_with_refreshes_in_flight', { timeout: 180000 },
	    async () => {
		const pg = h.filePg();
		const dir = h.procs.mkTmp('prod_pg_inflight');
		const fOk = await h.startFault(['--lifetime', '180']);
		const fFail = await h.startFault(['--lifetime', '180']);
		const db = await h.freshDb(pg, 'prod_pg_inflight');
		const cluster = await pg();
		const names = ['slow-ok', 'slow-fail'];
		const k = await h.startKiln({ name: 'prod_pg_inflight',
		    databaseUrl: db.url, workers: 2,
		    sourcesFile: writeSources(dir, [cc('slow-ok', fOk.tokenUrl),
		    cc('slow-fail', fFail.tokenUrl)]),
		    env: { KILN_ADMIN_KEY: a.ADMIN_KEY } });
		const first = {};
		for (const n of names)
			first[n] = (await h.waitToken(k, n)).json;

		await fOk.mode({ mode: 'slow', hang_ms: 3000 });
		await fFail.mode({ mode: 'hang', hang_ms: 3000 });
		for (const n of names) {
			const r = await p.adminRefresh(k, n, a.ADMIN_KEY);
			assert.equal(r.status, 202, `${n}: ${r.status} ${r.text}`);
		}
		await h.waitFor(async () => (await fOk.stats())
		    .token_requests === 2 && (await fFail.stats())
		    .token_requests === 2, { timeout: 3000, interval: 20,
		    what: 'both refreshes at the upstream' });
		const c = clients([k], names, 5);
		const stopAt = Date.now();
		await cluster.stop();
		await fFail.mode({ mode: 'ok' });
		await h.sleep(Math.max(0, stopAt + OUTAGE_MS - Date.now()));
		const hurt = await health([k]);
		await cluster.start();
		const restartedAt = Date.now();

		const okRow = await eventually(async () => {
			const row = await p.tokenRow(db, 'slow-ok');
			return row.generation > first['slow-ok'].generation ?
			    row : false;
		}, 15000, 200);
		const failRows = await eventually(async () => {
			const ev = await p.eventsMs(db, 'slow-fail');
			return ev.some((e) => e.outcome === 'failure') ? ev :
			    false;
		}, 15000, 200);
		await c.stop();
		console.log(`# in flight: slow-ok committed ` +
		    `${okRow ? 'gen ' + okRow.generation : 'never'}, slow-fail ` +
		    `failure ${failRows ? 'recorded' : 'never recorded'} ` +
		    `(${Date.now() - restartedAt} ms after the restart); ` +
		    `${c.problems.length} failed requests`);

		assert.deepEqual(hurt, [], 'workers alive and responsive');
		assert.deepEqual(c.problems.slice(0, 8), [],
		    `${c.problems.length} failed current-token requests`);
		assert.ok(okRow, 'the answer that came during the outage was ' +
		    'committed after it');
		assert.ok(failRows, 'the attempt that failed during the outage ' +
		    'was recorded after it');
		const r = await h.waitFor(async () => {
			const q = await k.currentToken('slow-ok');
			return q.json && q.json.generation ===
			    Number(okRow.generation) ? q : false;
		}, { timeout: 5000, interval: 50, what: 'new slow-ok served' });
		assert.equal(r.json.token, (await fOk.stats())
		    .issued_access_tokens.at(-1));
		/* an event row for every upstream request */
		for (const [n, f] of [['slow-ok', fOk], ['slow-fail', fFail]]) {
			const ups = (await f.stats()).requests.filter((q) =>
			    q.t < restartedAt);
			const ev = (await p.eventsMs(db, n)).filter((e) =>
			    e.started_ms < restartedAt);
			assert.equal(ev.length, ups.length, `${n}: events ` +
			    `${JSON.stringify(ev.map((e) => e.outcome))} vs ` +
			    `${ups.length} upstream requests`);
		}
		assert.deepEqual(p.workerDeaths(k), []);
	});

	it('postgres_lost_with_queries_in_flight', { timeout: 120000 },
	    async () => {
		const pg = h.filePg();
		const dir = h.procs.mkTmp('prod_pg_midquery');
		const secret = h.secret('mid');
		const idp = await h.startOAuth(['--lifetime', '300',
		    '--client', `mid:${secret}:client_credentials`]);
		const db = await h.freshDb(pg, 'prod_pg_midquery');
		const cluster = await pg();
		const k = await h.startKiln({ name: 'prod_pg_midquery',
		    databaseUrl: db.url, workers: 2,
		    sourcesFile: writeSources(dir, [cc('mid', idp.tokenUrl,
		    secret)]), env: { KILN_ADMIN_KEY: a.ADMIN_KEY,
		    KILN_RECONCILE_MS: '500' } });
		await h.waitToken(k, 'mid');
		const c = clients([k], ['mid'], 10);
		const lock = await p.holdSession(db, 'BEGIN; LOCK TABLE ' +
		    'tokens, token_sources IN ACCESS EXCLUSIVE MODE;');
		/* admin reads now wait on the lock, as does the reconcile */
		const admin = [];
		for (let i = 0; i < 4; i++) {
			admin.push(k.get('/api/tokens', { timeout: 30000,
			    headers: { Authorization: `Bearer ${a.ADMIN_KEY}` } })
			    .then((r) => r.status, (e) => e.code || e.message));
		}
		await h.sleep(1500);
		const stopAt = Date.now();
		await cluster.stop();
		await lock.release();
		await h.sleep(10000);
		const hurt = await health([k]);
		const adminStatus = await Promise.race([Promise.all(admin),
		    h.sleep(5000).then(() => 'no answer')]);
		await cluster.start();
		await eventually(async () => (await k.get('/health/detailed',
		    { timeout: 2000 })).status === 200, 20000, 200);
		await c.stop();
		const during = c.problems.filter((x) =>
		    Date.parse(x.split(' ')[0]) >= stopAt);
		console.log(`# queries in flight at the stop: admin answers ` +
		    `${JSON.stringify(adminStatus)}; ${c.problems.length} failed ` +
		    `current-token requests; ${hurt.join('; ') || 'workers fine'}`);
		assert.deepEqual(hurt, [], 'no worker spins or dies when its ' +
		    'database connection is lost mid-query');
		assert.deepEqual(during.slice(0, 8), [],
		    `${during.length} failed current-token requests`);
		/* A fast shutdown kills the lock holder and the waiters one
		 * by one: a waiter granted the lock in between may finish its
		 * read first (200). Every request is answered, the others with
		 * an error, and at least one query was lost mid-flight. */
		assert.ok(Array.isArray(adminStatus) && adminStatus.every((x) =>
		    x === 200 || (typeof x === 'number' && x >= 500)) &&
		    adminStatus.some((x) => x >= 500),
		    `the waiting admin requests got an error answer: ` +
		    JSON.stringify(adminStatus));
	});
});
