'use strict';

/*
 * Issue 10 §4: the database never reaches the hot path. PostgreSQL sits
 * behind tests/upstream/pgproxy.js, which the test turns into a black hole
 * (connections accepted and never answered, existing ones silent; a
 * silent one stays so after the heal) and into a resetter (RST on every
 * connection), then back to pass-through.
 *
 * current_token_answers_through_pg_blackhole_and_resets: with valid
 *   tokens in memory, through 30 s of black hole and 10 s of resets,
 *   every current-token answers 200, p99 under 50 ms and none near a
 *   database wait (p99 and maximum are printed), readiness answers 503
 *   (not a timeout), and after each heal kiln is ready again, writes
 *   resume (an admin refresh is served) and every upstream attempt,
 *   including two answered during the black hole, has its event row.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { describe, it } = require('node:test');

const h = require('../lib');
const p = require('../lib/prod');
const a = require('../lib/admin');
const { startPgProxy } = require('../lib/pgproxy');

const BLACKHOLE_MS = 30000;
const RESET_MS = 10000;
/*
 * Every answer within FAST_MS, p99 and maximum printed. On 2 cores shared
 * with other suites, this very process may stall (up to 2 s measured
 * alongside prod_pg_outage) and time answers that kiln gave at once as
 * slow: an answer out while its 10 ms timer was 20 ms late or more is
 * checked (200) but not timed. Any wait on the database would last a
 * connect timeout (5 s).
 */
const FAST_MS = 50;
/*
 * The maximum that still says "from memory": a wait on the database lasts
 * at least its connect timeout (5 s). Every answer is held under WAIT_MS,
 * p99 under FAST_MS; the maximum and the count over FAST_MS are printed
 * (scheduling noise of 2 shared cores reaches ~70 ms; see bench/ for
 * measured latency).
 */
const WAIT_MS = 1000;

function cc(name, url, secret = h.secret(name))
{
	return { name, kind: 'client_credentials', token_url: url,
	    client_id: name, client_secret: secret };
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

/* This process's own stalls (a 10 ms timer 20 ms late or more). */
function stallWatch()
{
	const stalls = [];
	let last = Date.now();
	const t = setInterval(() => {
		const now = Date.now();
		if (now - last >= 30)
			stalls.push({ from: last, to: now });
		last = now;
	}, 10);
	return {
		stalls,
		stop: () => clearInterval(t),
		hit: (x) => stalls.some((s) => s.to > x.at &&
		    s.from < x.at + x.ms),
	};
}

/* current-token answers of a time window: failures, p99, maximum. */
function window(answers, from, to, watch)
{
	const xs = answers.filter((x) => x.at >= from && x.at < to);
	const timed = xs.filter((x) => !watch.hit(x));
	const bad = xs.filter((x) => x.status !== 200 ||
	    (x.ms >= WAIT_MS && !watch.hit(x)));
	const ms = timed.filter((x) => x.status === 200).map((x) => x.ms);
	return { n: xs.length, bad, p99: p.percentile(ms, 99),
	    timed: timed.length,
	    slow: timed.filter((x) => x.ms >= FAST_MS).length,
	    stalled: xs.length - timed.length,
	    max: ms.length ? Math.max(...ms) : NaN };
}

/* Readiness probes sent after from and answered before to. */
function probes(ready, from, to)
{
	return ready.filter((x) => x.at >= from && x.at + x.ms < to);
}

describe('PostgreSQL black hole', () => {
	it('current_token_answers_through_pg_blackhole_and_resets',
	    { timeout: 240000 }, async () => {
		const pg = h.filePg();
		const dir = h.procs.mkTmp('trust_pg_blackhole');
		const sa = h.secret('bh-a');
		const idp = await h.startOAuth(['--lifetime', '300',
		    '--client', `bh-a:${sa}:client_credentials`]);
		const fOk = await h.startFault(['--lifetime', '300']);
		const fFail = await h.startFault(['--lifetime', '300']);
		const db = await h.freshDb(pg, 'trust_pg_blackhole');
		const px = await startPgProxy(db);
		const names = ['bh-a', 'bh-slow', 'bh-fail'];
		const sourcesFile = path.join(dir, 'sources.json');
		fs.writeFileSync(sourcesFile, JSON.stringify({ sources: [
		    cc('bh-a', idp.tokenUrl, sa), cc('bh-slow', fOk.tokenUrl),
		    cc('bh-fail', fFail.tokenUrl)] }));
		const k = await h.startKiln({ name: 'trust_pg_blackhole',
		    databaseUrl: px.url, workers: 2, sourcesFile,
		    quiet: true, env: { KILN_ADMIN_KEY: a.ADMIN_KEY,
		    KILN_RECONCILE_MS: '1000' } });
		const first = {};
		for (const n of names)
			first[n] = (await h.waitToken(k, n)).json;

		/* clients, continuously, and the readiness probe */
		const answers = [];
		const stalls = stallWatch();
		const pollers = names.map((n) => h.poller(() =>
		    k.currentToken(n, { timeout: 3000 }), 20, (err, r, at) => {
			answers.push(err ? { at, n, status: err.code ||
			    err.message, ms: Date.now() - at } :
			    { at, n, status: r.status, ms: r.ms });
		}));
		const ready = [];
		let watching = true;
		const watch = (async () => {
			while (watching) {
				const at = Date.now();
				try {
					const r = await k.get('/health/detailed',
					    { timeout: 3000 });
					ready.push({ at, status: r.status,
					    ms: Date.now() - at });
				} catch (e) {
					ready.push({ at, status: e.code ||
					    e.message, ms: Date.now() - at });
				}
				await h.sleep(500);
			}
		})();
		const pollAt = Date.now();
		await h.sleep(2000);

		/* two refreshes at the upstream when the database goes */
		await fOk.mode({ mode: 'slow', hang_ms: 3000 });
		await fFail.mode({ mode: 'hang', hang_ms: 3000 });
		for (const n of ['bh-slow', 'bh-fail']) {
			const r = await p.adminRefresh(k, n, a.ADMIN_KEY);
			assert.equal(r.status, 202, `${n}: ${r.status} ${r.text}`);
		}
		await h.waitFor(async () => (await fOk.stats())
		    .token_requests === 2 && (await fFail.stats())
		    .token_requests === 2, { timeout: 3000, interval: 20,
		    what: 'both refreshes at the upstream' });

		const bhAt = Date.now();
		await px.mode('blackhole');
		await fFail.mode({ mode: 'ok' });
		await h.sleep(BLACKHOLE_MS);
		const healAt = Date.now();
		await px.mode('pass');
		const readyAfterBh = await eventually(async () =>
		    (await k.get('/health/detailed', { timeout: 3000 }))
		    .status === 200, 30000, 250) ? Date.now() - healAt : null;

		const rsAt = Date.now();
		await px.mode('reset');
		await h.sleep(RESET_MS);
		const rsEnd = Date.now();
		await px.mode('pass');
		const readyAfterRs = await eventually(async () =>
		    (await k.get('/health/detailed', { timeout: 3000 }))
		    .status === 200, 30000, 250) ? Date.now() - rsEnd : null;

		/* writes resume: the answers of the black hole are stored */
		const okRow = await eventually(async () => {
			const row = await p.tokenRow(db, 'bh-slow');
			return row.generation > first['bh-slow'].generation ?
			    row : false;
		}, 20000, 200);
		const failRows = await eventually(async () => {
			const ev = await p.eventsMs(db, 'bh-fail');
			return ev.some((e) => e.outcome === 'failure') ? ev :
			    false;
		}, 20000, 200);
		const r = await p.adminRefresh(k, 'bh-a', a.ADMIN_KEY);
		const served = r.status === 202 && await eventually(async () => {
			const q = await k.currentToken('bh-a');
			return q.status === 200 &&
			    q.json.generation > first['bh-a'].generation;
		}, 10000, 50);
		watching = false;
		await watch;
		for (const x of pollers)
			await x.stop();
		stalls.stop();

		const pre = window(answers, pollAt, bhAt, stalls);
		const bh = window(answers, bhAt, healAt, stalls);
		const rs = window(answers, rsAt, rsEnd, stalls);
		const all = window(answers, 0, Infinity, stalls);
		const bhReady = probes(ready, bhAt + 5000, healAt);
		const rsReady = probes(ready, rsAt + 3000, rsEnd);
		const stReady = (xs) => JSON.stringify([...new Set(xs.map(
		    (x) => x.status))]);
		console.log(`# before: ${pre.n} current-token, ` +
		    `${pre.bad.length} failed, ${pre.slow} >= ${FAST_MS} ` +
		    `ms, p99 ${pre.p99} ms, max ${pre.max} ms`);
		console.log(`# black hole ${healAt - bhAt} ms: ${bh.n} ` +
		    `current-token, ${bh.bad.length} failed or >= ` +
		    `${WAIT_MS} ms; of ${bh.timed} timed, ${bh.slow} >= ` +
		    `${FAST_MS} ms, p99 ${bh.p99} ms, max ${bh.max} ms; ` +
		    `readiness ` +
		    `${stReady(bhReady)} (${bhReady.length} probes, max ` +
		    `${Math.max(...bhReady.map((x) => x.ms))} ms), ready ` +
		    `again ${readyAfterBh} ms after the heal`);
		console.log(`# resets ${rsEnd - rsAt} ms: ${rs.n} ` +
		    `current-token, ${rs.bad.length} failed or >= ` +
		    `${WAIT_MS} ms; of ${rs.timed} timed, ${rs.slow} >= ` +
		    `${FAST_MS} ms, p99 ${rs.p99} ms, max ${rs.max} ms; ` +
		    `readiness ` +
		    `${stReady(rsReady)} (${rsReady.length} probes), ready ` +
		    `again ${readyAfterRs} ms after the heal`);
		console.log(`# this process stalled ${stalls.stalls.length} ` +
		    `times (max ${Math.max(0, ...stalls.stalls.map((x) =>
		    x.to - x.from))} ms), ${all.stalled} answers not timed`);
		console.log(`# whole run: ${all.n} current-token, p99 ` +
		    `${all.p99} ms, max ${all.max} ms; bh-slow committed ` +
		    `${okRow ? 'gen ' + okRow.generation : 'never'}, bh-fail ` +
		    `failure ${failRows ? 'recorded' : 'never recorded'}; ` +
		    `proxy ${JSON.stringify((await px.stats()).accepted)}`);

		assert.deepEqual(p.workerDeaths(k), [], 'no worker died');
		assert.deepEqual(bh.bad.slice(0, 5), [], `black hole: ` +
		    `${bh.bad.length} of ${bh.n} current-token failed or slow`);
		assert.ok(bh.p99 < FAST_MS, `black hole: p99 ${bh.p99} ms`);
		assert.ok(bh.n > 3 * 20 * 25 && bh.timed > bh.n / 2,
		    `black hole: ${bh.n} answers, ${bh.timed} timed`);
		assert.deepEqual(rs.bad.slice(0, 5), [], `resets: ` +
		    `${rs.bad.length} of ${rs.n} current-token failed or slow`);
		assert.ok(rs.p99 < FAST_MS, `resets: p99 ${rs.p99} ms`);
		assert.ok(rs.n > 3 * 20 * 8 && rs.timed > rs.n / 2,
		    `resets: ${rs.n} answers, ${rs.timed} timed`);
		assert.ok(bhReady.length >= 8 && bhReady.every((x) =>
		    x.status === 503), `readiness in the black hole: ` +
		    `${stReady(bhReady)} in ${bhReady.length} probes`);
		assert.ok(rsReady.length >= 6 && rsReady.every((x) =>
		    x.status === 503), `readiness in the resets: ` +
		    `${stReady(rsReady)} in ${rsReady.length} probes`);
		assert.ok(readyAfterBh !== null, 'ready again after the ' +
		    'black hole');
		assert.ok(readyAfterRs !== null, 'ready again after the resets');
		assert.ok(okRow, 'the answer that came in the black hole was ' +
		    'committed after it');
		assert.ok(failRows, 'the attempt that failed in the black hole ' +
		    'was recorded after it');
		assert.ok(served, `writes resume: an admin refresh is served ` +
		    `(${r.status} ${r.text})`);

		/* an event row for every upstream request */
		const ups = {
			'bh-a': async () => (await idp.stats()).by_client['bh-a'],
			'bh-slow': async () => (await fOk.stats()).token_requests,
			'bh-fail': async () => (await fFail.stats())
			    .token_requests,
		};
		for (const n of names) {
			let last = null;
			const same = await eventually(async () => {
				last = [(await p.eventsMs(db, n)).length,
				    await ups[n]()];
				return last[0] === last[1];
			}, 10000, 200);
			assert.ok(same, `${n}: ${last[0]} event rows vs ` +
			    `${last[1]} upstream requests`);
		}
	});
});
