#!/usr/bin/env node
'use strict';

/*
 * kiln soak (issue 5 §3): several instances on one PostgreSQL, short
 * token lifetimes, a flaky upstream per source (about 30 % 503 answers
 * and some 20 s hangs, longer than KILN_UPSTREAM_TIMEOUT), steady client
 * load on every instance. Checks, over the whole run:
 *
 *   - 0 expired tokens served (every 200 has expires_at in the future);
 *   - 0 5xx while a valid token exists (a 503 is a violation when a
 *     token of that source, served by any instance at least 150 ms
 *     before the request was sent, was still valid 1 s after the answer:
 *     kiln treats a token's last second as expired);
 *   - 0 failed requests (connection errors, timeouts, other statuses);
 *   - no worker died or was restarted;
 *   - one refresh_events row per upstream request (attempts that never
 *     reached the upstream, e.g. no connection, have a row too);
 *   - RSS flat: every kiln process ends at most 1.5 x its size at the
 *     start (after warm-up) + 8 MB. The RSS of every kiln process at
 *     start and end is printed.
 *
 *   node tests/soak/soak.js                  60 s (the make test mode)
 *   node tests/soak/soak.js --seconds 1800   30 min, by hand
 *   options: --instances 3 --workers 2 --sources 4 --rate 30 (requests/s
 *   per instance) --lifetime 20 --json FILE (write the summary there)
 *
 * Exit status 0 when every check holds. Needs ./kiln (make build).
 */

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const LIB = path.join(__dirname, '..', 'integration', 'lib');
const procs = require(path.join(LIB, 'procs'));
const util = require(path.join(LIB, 'util'));
const { startPg } = require(path.join(LIB, 'pg'));
const { startFault } = require(path.join(LIB, 'upstream'));
const { startKiln } = require(path.join(LIB, 'kiln'));
const prod = require(path.join(LIB, 'prod'));

function args()
{
	const o = { seconds: 60, instances: 3, workers: 2, sources: 4,
	    rate: 30, lifetime: 20, json: null, warmup: 8 };
	const a = process.argv.slice(2);
	for (let i = 0; i < a.length; i++) {
		const k = a[i].replace(/^--/, '');
		if (!(k in o) || i + 1 >= a.length) {
			process.stderr.write(`soak: unknown or incomplete option ` +
			    `${a[i]}\n`);
			process.exit(2);
		}
		o[k] = k === 'json' ? a[++i] : Number(a[++i]);
	}
	return o;
}

function log(s)
{
	process.stdout.write(`soak: ${s}\n`);
}

function mb(kb)
{
	return kb === null ? 'gone' : `${(kb / 1024).toFixed(1)} MB`;
}

/* The upstream's mode, changed every 500 ms: 30 % 503, 5 % hang. */
function flaky(f, counts)
{
	let stop = false;
	const loop = (async () => {
		while (!stop) {
			const r = Math.random();
			const mode = r < 0.30 ? '5xx' : r < 0.35 ? 'hang' : 'ok';
			counts[mode] = (counts[mode] || 0) + 1;
			try {
				await f.mode({ mode, hang_ms: 20000, status: 503 });
			} catch (e) {
				/* stopping */
			}
			await util.sleep(500);
		}
	})();
	return async () => {
		stop = true;
		await loop;
	};
}

async function main()
{
	const o = args();
	const t0 = Date.now();
	const names = Array.from({ length: o.sources }, (_, i) => `soak-${i}`);
	const buffer = Math.floor(o.lifetime / 2);

	log(`${o.instances} instances x ${o.workers} workers, ${o.sources} ` +
	    `sources of ${o.lifetime} s (refresh ${buffer} s before expiry), ` +
	    `${o.rate} requests/s per instance, ${o.seconds} s`);
	const pg = await startPg({ label: 'soak' });
	const db = Object.assign({ pg }, await pg.createDatabase(
	    `soak_${process.pid}`));
	const ups = [];
	for (const n of names)
		ups.push(await startFault(['--lifetime', String(o.lifetime)]));
	const dir = procs.mkTmp('soak');
	const sourcesFile = path.join(dir, 'sources.json');
	fs.writeFileSync(sourcesFile, JSON.stringify({ sources: names.map(
	    (n, i) => ({ name: n, kind: 'client_credentials',
	    token_url: ups[i].tokenUrl, client_id: n,
	    client_secret: util.secret(n), refresh_buffer: buffer })) },
	    null, 2));
	const masterKey = crypto.randomBytes(32).toString('base64');
	const adminKey = util.secret('soak-admin');
	const env = { KILN_UPSTREAM_TIMEOUT: '5',
	    KILN_UPSTREAM_CONNECT_TIMEOUT: '2', KILN_LEASE_SECONDS: '10',
	    KILN_ADMIN_KEY: adminKey };
	const ks = [];
	for (let i = 0; i < o.instances; i++)
		ks.push(await startKiln({ name: `soak_${i}`,
		    databaseUrl: db.url, masterKey, sourcesFile,
		    workers: o.workers, env, quiet: true }));
	for (const k of ks)
		for (const n of names)
			await util.waitFor(async () => (await k.currentToken(n))
			    .status === 200, { timeout: 20000, interval: 100,
			    what: `${k.name} ${n}` });

	/* the upstreams turn flaky, the clients start */
	const modeCounts = {};
	const stopFlaky = ups.map((f) => flaky(f, modeCounts));
	const S = { requests: 0, ok: 0, s503: 0, expiredServed: [],
	    fivexxWhileValid: [], failed: [], slow: 0, slowList: [],
	    maxMs: 0 };
	/* per source: [[receivedAt, expiresAt]] with growing expiresAt */
	const known = Object.fromEntries(names.map((n) => [n, []]));
	const validAt = (n, sentAt) => {
		let best = 0;
		for (const [at, exp] of known[n]) {
			if (at <= sentAt - 150 && exp > best)
				best = exp;
		}
		return best;
	};
	let stopLoad = false;
	let seq = 0;
	const clients = ks.map(async (k) => {
		const period = 1000 / o.rate;
		let next = Date.now();
		const inflight = new Set();
		while (!stopLoad) {
			const n = names[seq++ % names.length];
			const sentAt = Date.now();
			const pr = k.currentToken(n, { timeout: 10000 }).then((r) => {
				S.requests++;
				S.maxMs = Math.max(S.maxMs, r.ms);
				if (r.ms > 1000) {
					S.slow++;
					if (S.slowList.length < 20)
						S.slowList.push(`${k.name} ${n} ${r.status} ` +
						    `${r.ms} ms, sent ` +
						    `${new Date(sentAt).toISOString()}, ` +
						    `request ${r.headers['x-request-id']}`);
				}
				if (r.status === 200 && r.json && r.json.valid) {
					S.ok++;
					const exp = util.parseIso(r.json.expires_at);
					if (!(exp > r.at))
						S.expiredServed.push(`${k.name} ${n} ` +
						    `${r.json.expires_at} at ` +
						    new Date(r.at).toISOString());
					const l = known[n];
					if (l.length === 0 || exp > l.at(-1)[1]) {
						l.push([r.at, exp]);
						while (l.length > 2 &&
						    l[1][0] < r.at - 60000)
							l.shift();
					}
				} else if (r.status === 503) {
					S.s503++;
					const v = validAt(n, sentAt);
					if (v > r.at + 1000 + 250)
						S.fivexxWhileValid.push(`${k.name} ${n} ` +
						    `503 at ${new Date(r.at).toISOString()}` +
						    ` while a token valid until ` +
						    `${new Date(v).toISOString()} existed`);
				} else {
					S.failed.push(`${k.name} ${n}: ${r.status} ` +
					    r.text.slice(0, 120));
				}
			}, (e) => {
				S.requests++;
				S.failed.push(`${k.name} ${n}: ${e.code || ''} ` +
				    e.message);
			});
			inflight.add(pr);
			pr.finally(() => inflight.delete(pr));
			next += period;
			await util.sleep(Math.max(0, next - Date.now()));
		}
		await Promise.all([...inflight]);
	});

	/* the client's own stalls (a loaded machine), to read max_ms by */
	const lag = require('node:perf_hooks').monitorEventLoopDelay(
	    { resolution: 20 });
	lag.enable();
	const rssOf = () => ks.flatMap((k) => k.rss().map((x) =>
	    Object.assign({ instance: k.name }, x)));
	await util.sleep(o.warmup * 1000);
	const rss0 = rssOf();
	const runStart = Date.now();
	log(`RSS at start (after ${o.warmup} s of load):`);
	for (const x of rss0)
		log(`  ${x.instance} pid ${x.pid} ${x.role}: ${mb(x.kb)}`);

	let lastReport = Date.now();
	while (Date.now() - runStart < o.seconds * 1000) {
		await util.sleep(1000);
		if (Date.now() - lastReport >= 60000) {
			lastReport = Date.now();
			const total = rssOf().reduce((s, x) => s + (x.kb || 0), 0);
			log(`+${Math.round((Date.now() - runStart) / 1000)} s: ` +
			    `${S.requests} requests, ${S.ok} ok, ${S.s503} 503, ` +
			    `${S.expiredServed.length} expired served, ` +
			    `${S.fivexxWhileValid.length} 5xx while valid, ` +
			    `${S.failed.length} failed; kiln RSS ${mb(total)}`);
		}
	}
	const rss1 = rssOf();
	stopLoad = true;
	await Promise.all(clients);
	for (const s of stopFlaky)
		await s();
	const runMs = Date.now() - runStart;

	/*
	 * settle: upstreams fine again, pre-warming stopped everywhere (so
	 * that no attempt starts between the upstream's count and the
	 * events' below), every attempt finished
	 */
	for (const f of ups)
		await f.mode({ mode: 'ok' });
	const stopped = await ks[0].request('/api/prewarming/stop',
	    { method: 'POST', headers: { Authorization: `Bearer ${adminKey}` } });
	if (stopped.status !== 200)
		throw new Error(`prewarming/stop: ${stopped.status} ` +
		    stopped.text);
	await util.waitFor(async () => {
		const r = await pg.queryJson('SELECT count(*)::int AS n FROM ' +
		    'tokens WHERE lease_owner IS NOT NULL', { db: db.name });
		return r[0].n === 0;
	}, { timeout: 30000, interval: 250, what: 'no lease held' });
	await util.sleep(500);
	const upstream = {};
	const events = {};
	let eventsMismatch = [];
	const byMode = {};
	for (let i = 0; i < names.length; i++) {
		const st = await ups[i].stats();
		upstream[names[i]] = st.token_requests;
		for (const [m, c] of Object.entries(st.by_mode))
			byMode[m] = (byMode[m] || 0) + c;
		const ev = await pg.queryJson('SELECT e.outcome, e.http_status, ' +
		    'e.error FROM refresh_events e JOIN token_sources s ON ' +
		    `s.id = e.source_id WHERE s.name = '${names[i]}'`,
		    { db: db.name });
		/* attempts that never reached the upstream (no connection,
		 * no HTTP status) have an event but no upstream request */
		const noStatus = ev.filter((e) => e.outcome === 'failure' &&
		    !(Number(e.http_status) > 0));
		const surplus = ev.length - st.token_requests;
		events[names[i]] = { total: ev.length, success: ev.filter((e) =>
		    e.outcome === 'success').length, surplus,
		    no_status_errors: [...new Set(noStatus.map((e) =>
		    e.error))].slice(0, 5) };
		if (surplus < 0 || surplus > noStatus.length)
			eventsMismatch.push(`${names[i]}: ${st.token_requests} ` +
			    `upstream requests, ${ev.length} events: ` +
			    JSON.stringify(ev.map((e) => [e.outcome,
			    e.http_status, String(e.error).slice(0, 60)])));
		else if (surplus > 0)
			log(`${names[i]}: ${surplus} attempt(s) never reached the ` +
			    `upstream (${events[names[i]].no_status_errors
			    .join('; ')})`);
	}

	const deaths = ks.flatMap((k) => prod.workerDeaths(k)
	    .map((l) => `${k.name}: ${l}`));
	const exited = ks.filter((k) => k.exited !== null)
	    .map((k) => `${k.name}: ${JSON.stringify(k.exited)}`);
	log(`RSS at end (after ${Math.round(runMs / 1000)} s):`);
	const rssRows = [];
	const grew = [];
	for (const x of rss1) {
		const s = rss0.find((y) => y.pid === x.pid);
		const start = s ? s.kb : null;
		rssRows.push({ instance: x.instance, pid: x.pid, role: x.role,
		    start_kb: start, end_kb: x.kb });
		log(`  ${x.instance} pid ${x.pid} ${x.role}: ${mb(start)} -> ` +
		    `${mb(x.kb)}`);
		if (start === null)
			grew.push(`${x.instance} pid ${x.pid}: not there at start`);
		else if (x.kb > start * 1.5 + 8192)
			grew.push(`${x.instance} pid ${x.pid} ${x.role}: ` +
			    `${mb(start)} -> ${mb(x.kb)}`);
	}
	for (const s of rss0) {
		if (!rss1.some((x) => x.pid === s.pid))
			grew.push(`${s.instance} pid ${s.pid}: gone at the end`);
	}

	const summary = {
		seconds: Math.round(runMs / 1000),
		instances: o.instances, workers: o.workers, sources: o.sources,
		lifetime: o.lifetime,
		requests: S.requests, ok: S.ok, s503: S.s503,
		expired_served: S.expiredServed.length,
		fivexx_while_valid: S.fivexxWhileValid.length,
		failed: S.failed.length,
		slow_over_1s: S.slow, max_ms: S.maxMs,
		client_event_loop_max_delay_ms: Math.round(lag.max / 1e6),
		upstream_requests: upstream, upstream_by_mode: byMode,
		events, events_mismatch: eventsMismatch,
		worker_deaths: deaths, exited,
		rss: rssRows, rss_grew: grew,
		examples: {
			expired_served: S.expiredServed.slice(0, 5),
			fivexx_while_valid: S.fivexxWhileValid.slice(0, 5),
			failed: S.failed.slice(0, 5),
			slow: S.slowList,
		},
	};
	summary.pass = S.expiredServed.length === 0 &&
	    S.fivexxWhileValid.length === 0 && S.failed.length === 0 &&
	    deaths.length === 0 && exited.length === 0 &&
	    eventsMismatch.length === 0 && grew.length === 0 &&
	    S.ok > 0 && (byMode['5xx'] || 0) > 0;
	log(`${S.requests} requests: ${S.ok} ok, ${S.s503} 503 (no valid ` +
	    `token), ${S.failed.length} failed; ${S.expiredServed.length} ` +
	    `expired tokens served; ${S.fivexxWhileValid.length} 5xx while a ` +
	    `valid token existed; max answer ${S.maxMs} ms (the client's ` +
	    `own event loop stalled up to ${Math.round(lag.max / 1e6)} ms)`);
	log(`upstream requests by mode ${JSON.stringify(byMode)}; events ` +
	    `${eventsMismatch.length === 0 ? 'match' : 'MISMATCH ' +
	    eventsMismatch.join(', ')}; worker deaths ${deaths.length}`);
	for (const l of [...S.expiredServed.slice(0, 5),
	    ...S.fivexxWhileValid.slice(0, 5), ...S.failed.slice(0, 5),
	    ...deaths.slice(0, 5), ...grew])
		log(`  ! ${l}`);
	log(`${summary.pass ? 'PASS' : 'FAIL'} in ` +
	    `${Math.round((Date.now() - t0) / 1000)} s`);
	if (o.json)
		fs.writeFileSync(o.json, JSON.stringify(summary, null, 2));
	process.stdout.write(JSON.stringify({ soak: summary }) + '\n');

	await procs.cleanupAll();
	return summary.pass ? 0 : 1;
}

main().then((code) => process.exit(code), async (e) => {
	process.stderr.write(`soak: ${e.stack || e}\n`);
	try {
		await procs.cleanupAll();
	} catch (err) {
		/* exiting anyway */
	}
	process.exit(1);
});
