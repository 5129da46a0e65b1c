'use strict';

/*
 * Issue 5 §2: three kiln instances (2 workers each) on loopback ports
 * sharing one PostgreSQL, one master key and one sources file.
 *
 * - three_instances_three_minutes: 3 tokens of 10 s lifetime for 3 min.
 *   Exactly one upstream request per token and cycle (upstream count per
 *   client == success events == generations == distinct tokens served),
 *   and every worker of every instance serves the newest generation
 *   within PROPAGATION_MS of its commit (p99 over every commit and
 *   worker; none later than STALE_MAX_MS), never going back.
 * - propagation_p99_100_refreshes: 100 admin-triggered refreshes, sent
 *   to each worker of each instance in turn; the time from the commit
 *   (refresh_events.finished_at) until all 6 workers serve the new
 *   generation has p99 <= 100 ms.
 *
 * Every worker is reached through keep-alive connections held open on
 * it (a kore.conf copy with worker_max_connections 8: Kore passes the
 * accept lock on only when the holder is full, see lib/prod.js).
 * The two tests run at once on the same instances.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { before, describe, it } = require('node:test');

const h = require('../lib');
const p = require('../lib/prod');
const a = require('../lib/admin');

const pg = h.filePg();

const INSTANCES = 3;
const WORKERS = 2;
const LIFETIME = 10;
const BUFFER = 3;
const RUN_MS = Number(process.env.KILN_PROD_RUN_MS || 180000);
const CYCLE_TOKENS = ['cyc-a', 'cyc-b', 'cyc-c'];
const PROPAGATION_MS = 100;
const STALE_MAX_MS = 1000;
const REFRESHES = 100;

const S = {};

before(async () => {
	const dir = h.procs.mkTmp('prod_instances');
	const secrets = {};
	const clients = [];
	for (const n of [...CYCLE_TOKENS, 'prop']) {
		secrets[n] = h.secret(n);
		clients.push('--client', `${n}:${secrets[n]}:client_credentials`);
	}
	S.idp = await h.startOAuth(['--lifetime', String(LIFETIME),
	    ...clients.slice(0, 2 * CYCLE_TOKENS.length)]);
	S.propIdp = await h.startOAuth(['--lifetime', '3600',
	    ...clients.slice(2 * CYCLE_TOKENS.length)]);
	S.db = await h.freshDb(pg, 'prod_instances');
	const sources = CYCLE_TOKENS.map((n) => ({
		name: n, kind: 'client_credentials', token_url: S.idp.tokenUrl,
		client_id: n, client_secret: secrets[n],
		refresh_buffer: BUFFER,
	}));
	sources.push({ name: 'prop', kind: 'client_credentials',
	    token_url: S.propIdp.tokenUrl, client_id: 'prop',
	    client_secret: secrets.prop });
	const sourcesFile = path.join(dir, 'sources.json');
	fs.writeFileSync(sourcesFile, JSON.stringify({ sources }, null, 2));
	const conf = p.koreConf(dir, { maxConnections: 8 });
	const masterKey = crypto.randomBytes(32).toString('base64');
	S.k = [];
	for (let i = 0; i < INSTANCES; i++) {
		S.k.push(await h.startKiln({ name: `prod_inst_${i}`, conf,
		    databaseUrl: S.db.url, masterKey, sourcesFile,
		    workers: WORKERS, env: { KILN_ADMIN_KEY: a.ADMIN_KEY } }));
	}
	for (const k of S.k) {
		for (const n of [...CYCLE_TOKENS, 'prop'])
			await h.waitToken(k, n);
	}
	/* probes: [{inst, worker, cyc: Pinned, prop: Pinned}] */
	S.probes = [];
	for (let i = 0; i < INSTANCES; i++) {
		const pins = await p.pinWorkers(S.k[i], WORKERS,
		    { perWorker: 2 });
		for (const [w, l] of Object.entries(pins)) {
			if (w === 'spare')
				continue;
			S.probes.push({ inst: i, worker: w, cyc: l[0], prop: l[1] });
		}
	}
	assert.equal(S.probes.length, INSTANCES * WORKERS, 'every worker');
});

describe('several instances on one PostgreSQL', { concurrency: true }, () => {
	it('three_instances_three_minutes_one_request_per_cycle',
	    { timeout: RUN_MS + 120000 }, async () => {
		const seen = [];		/* {src, sent, at, gen, fpr, ...} */
		/* this process's own stalls, to tell them from the server's */
		const lag = require('node:perf_hooks').monitorEventLoopDelay(
		    { resolution: 20 });
		lag.enable();
		let slowest = 0;
		const problems = [];
		let stop = false;
		const loops = S.probes.map(async (pr) => {
			while (!stop) {
				for (const src of CYCLE_TOKENS) {
					const sent = Date.now();
					let r;
					try {
						r = await pr.cyc.get(`/api/tokens/${src}` +
						    '/current-token', { timeout: 15000 });
					} catch (e) {
						problems.push(`${pr.inst}/${pr.worker} ` +
						    `${src}: ${e.message} (sent ` +
						    `${new Date(sent).toISOString()}, this ` +
						    'process stalled up to ' +
						    `${Math.round(lag.max / 1e6)} ms)`);
						return;
					}
					slowest = Math.max(slowest, r.ms);
					if (r.status !== 200 || !r.json ||
					    r.json.valid !== true) {
						problems.push(`${pr.inst}/${pr.worker} ` +
						    `${src}: ${r.status} ` +
						    r.text.slice(0, 200));
						continue;
					}
					const exp = h.parseIso(r.json.expires_at);
					if (!(exp > r.at))
						problems.push(`expired token served: ` +
						    `${r.json.expires_at} at ` +
						    new Date(r.at).toISOString());
					seen.push({ src, inst: pr.inst,
					    worker: pr.worker, sent, at: r.at,
					    gen: r.json.generation,
					    fpr: r.json.fingerprint });
				}
				await h.sleep(100);
			}
		});
		const t0 = Date.now();
		await h.sleep(RUN_MS);
		/* Stop right after a refresh of the first token, so that no
		 * cycle is cut in half while the books are compared. */
		const before0 = (await p.tokenRow(S.db, CYCLE_TOKENS[0]))
		    .generation;
		await h.waitFor(async () => (await p.tokenRow(S.db,
		    CYCLE_TOKENS[0])).generation > before0,
		    { timeout: 15000, interval: 200, what: 'a refresh' });
		await h.sleep(500);
		stop = true;
		await Promise.all(loops);
		const elapsed = Date.now() - t0;

		assert.deepEqual(problems.slice(0, 10), [],
		    `${problems.length} problems in ${seen.length} answers`);

		const st = await S.idp.stats();
		const statsAt = Date.now();
		await h.sleep(500);
		/* what was under way when the books were taken is left out */
		const cut = statsAt - 300;
		const report = {};
		const stale = [];
		const late = [];
		const lags = [];
		let worstLag = 0;
		for (const src of CYCLE_TOKENS) {
			const ev = (await p.eventsMs(S.db, src)).filter((e) =>
			    e.started_ms <= cut);
			const ups = st.requests.filter((q) => q.client === src &&
			    q.t <= cut);
			const mine = seen.filter((x) => x.src === src);
			const settledUps = ups;
			const okEv = ev.filter((e) => e.outcome === 'success');
			assert.equal(ev.length, okEv.length,
			    `${src}: no failed attempt ` +
			    JSON.stringify(ev.filter((e) => e.outcome !==
			    'success').slice(0, 3)));
			assert.ok(settledUps.every((q) => q.status === 200),
			    `${src}: upstream answered 200`);
			/* 1 request per cycle: requests == generations */
			assert.equal(settledUps.length, okEv.length,
			    `${src}: upstream requests ${settledUps.length} vs ` +
			    `success events ${okEv.length}`);
			const gens = okEv.map((e) => Number(e.generation));
			assert.deepEqual(gens, gens.map((_, i) => i + 1),
			    `${src}: generations 1..n without gaps`);
			/* each event's fingerprint is the token the upstream
			 * issued in one request */
			const upFprs = settledUps.map((q) => h.fingerprint(
			    q.access_token));
			assert.deepEqual(okEv.map((e) => e.fingerprint), upFprs,
			    `${src}: one upstream answer per generation`);
			/* cycles: about LIFETIME - BUFFER apart, never two
			 * requests within half a cycle */
			const minGap = (LIFETIME - BUFFER - 1) * 1000 / 2;
			for (let i = 1; i < ups.length; i++) {
				assert.ok(ups[i].t - ups[i - 1].t >= minGap,
				    `${src}: requests ${i - 1},${i} only ` +
				    `${ups[i].t - ups[i - 1].t} ms apart`);
			}
			const expectCycles = Math.floor(elapsed /
			    ((LIFETIME - BUFFER) * 1000));
			assert.ok(okEv.length >= expectCycles,
			    `${src}: ${okEv.length} cycles, expected >= ` +
			    expectCycles);
			/* distinct generations served == generations made
			 * while the probes ran */
			const servedGens = new Set(mine.map((x) => x.gen));
			const during = okEv.filter((e) => e.finished_ms > t0 &&
			    e.finished_ms < mine.at(-1).sent - PROPAGATION_MS);
			for (const e of during) {
				assert.ok(servedGens.has(Number(e.generation)),
				    `${src}: generation ${e.generation} never served`);
			}
			/*
			 * Same generation everywhere within the bound (issue 5:
			 * 100 ms, p99). For each commit and each worker, its lag
			 * is how long after the commit that worker still
			 * answered an older generation (0 when it never did).
			 * The p99 of these lags is within the bound and none is
			 * over STALE_MAX_MS: a worker that the scheduler of
			 * these 2 shared cores leaves waiting once may answer
			 * late, a worker that missed a change may not.
			 */
			const commits = okEv.map((e) => [e.finished_ms,
			    Number(e.generation)]).filter(([fin]) => fin > t0);
			for (const [fin, g] of commits) {
				for (const pr of S.probes) {
					let l = 0;
					let at = null;
					for (const x of mine) {
						if (x.inst !== pr.inst ||
						    x.worker !== pr.worker ||
						    x.gen >= g || x.sent <= fin)
							continue;
						if (x.sent - fin > l) {
							l = x.sent - fin;
							at = x;
						}
					}
					lags.push(l);
					if (l > worstLag)
						worstLag = l;
					if (l > PROPAGATION_MS) {
						late.push(`${src} inst ${pr.inst} ` +
						    `worker ${pr.worker}: gen ` +
						    `${at.gen} at +${Math.round(l)} ms ` +
						    `after gen ${g} was committed`);
					}
				}
			}
			for (const pr of S.probes) {
				const byProbe = mine.filter((x) => x.inst ===
				    pr.inst && x.worker === pr.worker);
				/* a worker never goes back to an older token */
				for (let i = 1; i < byProbe.length; i++) {
					if (byProbe[i].gen < byProbe[i - 1].gen)
						stale.push(`${src} inst ${pr.inst} worker ` +
						    `${pr.worker}: went back from gen ` +
						    `${byProbe[i - 1].gen} to ` +
						    `${byProbe[i].gen} at ` +
						    new Date(byProbe[i].at).toISOString());
				}
				assert.ok(byProbe.length > 100,
				    `${src}: probe ${pr.inst}/${pr.worker} ` +
				    `answered ${byProbe.length} times`);
			}
			report[src] = { upstream: ups.length,
			    generations: okEv.length,
			    served: servedGens.size };
		}
		console.log('# three instances:', JSON.stringify(report),
		    `answers ${seen.length}, elapsed ${elapsed} ms, worst ` +
		    `observed lag ${Math.round(worstLag)} ms, slowest answer ` +
		    `${slowest} ms, this process stalled up to ` +
		    `${Math.round(lag.max / 1e6)} ms`);
		lags.sort((x, y) => x - y);
		const p99 = lags.length > 0 ?
		    lags[Math.ceil(lags.length * 0.99) - 1] : 0;
		console.log(`# propagation lag over ${lags.length} (commit, ` +
		    `worker) pairs: p99 ${Math.round(p99)} ms, max ` +
		    `${Math.round(worstLag)} ms, over ${PROPAGATION_MS} ms: ` +
		    `${late.length}${late.length > 0 ? '\n# ' +
		    late.slice(0, 10).join('\n# ') : ''}`);
		assert.ok(lags.length >= INSTANCES * WORKERS * 20,
		    `${lags.length} (commit, worker) pairs`);
		assert.ok(p99 <= PROPAGATION_MS,
		    `propagation p99 ${p99} ms over ${lags.length} pairs`);
		assert.ok(worstLag <= STALE_MAX_MS,
		    `a worker answered an older generation ${worstLag} ms ` +
		    `after the newer one was committed`);
		if (stale.length > 0)
			console.log(`# stale answers:\n# ${stale.slice(0, 20)
			    .join('\n# ')}`);
		assert.deepEqual(stale.slice(0, 10), [],
		    `${stale.length} stale answers`);
		for (const k of S.k) {
			assert.equal(k.exited, null, `${k.name} still running`);
			assert.deepEqual(a.crashLines(k), [], `${k.name}: no crash`);
		}
	});

	it('propagation_p99_100_refreshes', { timeout: 240000 }, async () => {
		const lat = [];		/* commit -> all workers serve */
		const spread = [];	/* first worker -> all workers serve */
		const regress = [];
		const rows = [];
		let gen = (await S.probes[0].prop.get(
		    '/api/tokens/prop/current-token')).json.generation;
		for (let i = 0; i < REFRESHES; i++) {
			const target = S.probes[i % S.probes.length];
			const r = await target.prop.request('POST',
			    '/api/tokens/prop/refresh', { headers:
			    { Authorization: `Bearer ${a.ADMIN_KEY}` } });
			assert.equal(r.status, 202, `refresh ${i}: ${r.status} ` +
			    r.text);
			const want = gen + 1;
			const t0 = Date.now();
			const firstSeen = await Promise.all(S.probes.map(
			    async (pr) => {
				for (;;) {
					const q = await pr.prop.get(
					    '/api/tokens/prop/current-token');
					assert.equal(q.status, 200, q.text);
					if (q.json.generation >= want) {
						assert.equal(q.json.generation, want,
						    'one generation per refresh');
						return q.at;
					}
					if (q.json.generation < gen)
						regress.push(`probe ${pr.inst}/` +
						    `${pr.worker} served gen ` +
						    `${q.json.generation} after ${gen}`);
					if (Date.now() - t0 > 10000)
						throw new Error(`probe ${pr.inst}/` +
						    `${pr.worker}: generation ${want} ` +
						    'not served within 10 s');
					await h.sleep(3);
				}
			}));
			rows.push({ gen: want, first: Math.min(...firstSeen),
			    last: Math.max(...firstSeen), seen: firstSeen,
			    target: `${target.inst}/${target.worker}` });
			gen = want;
			await h.sleep(50);
		}
		const ev = await p.eventsMs(S.db, 'prop');
		const byGen = new Map(ev.filter((e) => e.outcome === 'success')
		    .map((e) => [Number(e.generation), e]));
		const owners = new Set();
		const slow = [];
		for (const r of rows) {
			const e = byGen.get(r.gen);
			assert.ok(e, `event for generation ${r.gen}`);
			assert.equal(e.trigger, 'admin');
			owners.add(e.owner.replace(/:[0-9a-f]{4}$/, ''));
			lat.push(r.last - e.finished_ms);
			spread.push(r.last - r.first);
			if (r.last - e.finished_ms > PROPAGATION_MS) {
				slow.push(`gen ${r.gen} (refreshed by ` +
				    `${e.owner}, asked on ${r.target}): ` +
				    S.probes.map((pr, j) => `${pr.inst}/` +
				    `${pr.worker} +${Math.round(r.seen[j] -
				    e.finished_ms)}`).join(' '));
			}
		}
		if (slow.length > 0)
			console.log(`# slow propagations:\n# ${slow.join('\n# ')}`);
		if (regress.length > 0)
			console.log(`# went back:\n# ${regress.slice(0, 20)
			    .join('\n# ')}`);
		assert.deepEqual(regress.slice(0, 10), [], 'no worker went back');
		const st = await S.propIdp.stats();
		assert.equal(st.token_requests, 1 + REFRESHES,
		    'one upstream request per refresh');
		const p50 = p.percentile(lat, 50);
		const p99 = p.percentile(lat, 99);
		console.log(`# propagation over ${REFRESHES} refreshes, ` +
		    `${S.probes.length} workers: commit->all p50 ` +
		    `${p50.toFixed(1)} p99 ${p99.toFixed(1)} max ` +
		    `${Math.max(...lat).toFixed(1)} ms; first->all p99 ` +
		    `${p.percentile(spread, 99)} ms; refreshing workers ` +
		    `${owners.size}`);
		/* the refreshes were done by workers of every instance */
		const parents = new Set([...owners].map((o) =>
		    o.split(':')[1]));
		assert.equal(parents.size, INSTANCES, `owners ${[...owners]}`);
		assert.ok(owners.size >= INSTANCES * WORKERS - 1,
		    `refreshes by ${owners.size} workers`);
		assert.ok(p99 <= PROPAGATION_MS, `p99 ${p99.toFixed(1)} ms > ` +
		    `${PROPAGATION_MS} ms (sorted tail: ${[...lat].sort((x, y) =>
		    x - y).slice(-5).map((x) => x.toFixed(0))})`);
	});
});
