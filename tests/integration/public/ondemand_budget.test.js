'use strict';

/*
 * Issue 10, section 1: on-demand refreshes have a budget.
 *
 * A refresh asked for by a client (min_ttl, rejected) happens at most
 * once per KILN_ONDEMAND_INTERVAL per token across workers, never while
 * pre-warming is paused, and a refused one answers at once (the current
 * token if it meets the request, else 503 + Retry-After). The operator's
 * POST /refresh is not limited by the budget but is single-flight. An
 * upstream host whose circuit is open gets no attempts but one probe per
 * open period. Upstream calls are counted at the upstream.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

const LIFETIME = 600;
/* A client answer that took longer than this waited on something. */
const MAX_ANSWER_MS = 2000;

/*
 * The fault upstream answers expires_in = LIFETIME exactly, so a token
 * lives LIFETIME s to the millisecond and min_ttl=LIFETIME is always
 * worth a refresh, never beyond what the upstream gives.
 */
async function budgetKiln(label, env = {})
{
	const f = await h.startFault(['--lifetime', String(LIFETIME)]);
	const e = await a.adminKiln(pg, label, {
		sources: [{ name: 'bud', refresh_buffer: 30 }],
		idp: f,
		workers: 2,
		env,
	});
	const first = h.assertTokenBody(await h.waitToken(e.k, 'bud'), 'bud');
	assert.equal((await e.idp.stats()).token_requests, 1);
	return Object.assign(e, { first });
}

/* 200 with a token, or 503 + Retry-After, answered at once. */
function assertPrompt(r, what)
{
	assert.ok(r.ms < MAX_ANSWER_MS, `${what}: answered in ${r.ms} ms`);
	if (r.status === 200) {
		h.assertTokenBody(r, 'bud');
		return;
	}
	assert.equal(r.status, 503, `${what}: ${r.status} ${r.text}`);
	assert.equal(r.json.valid, false);
	assert.match(String(r.headers['retry-after']), /^[1-9][0-9]*$/,
	    `${what}: Retry-After`);
	assert.equal(typeof r.json.message, 'string');
}

/* n min_ttl requests, `wave` at a time; returns the answers. */
async function minTtlBurst(k, n, wave, minTtl)
{
	const out = [];
	for (let i = 0; i < n; i += wave) {
		const rs = await Promise.all(Array.from({ length: wave }, () =>
		    k.currentToken('bud', { query: `?min_ttl=${minTtl}` })));
		out.push(...rs);
	}
	return out;
}

/* n cycles of "read the fingerprint, report it rejected". */
async function rejectCycles(k, n)
{
	const out = [];
	for (let i = 0; i < n; i++) {
		const cur = await k.currentToken('bud');
		assert.equal(cur.status, 200, `cycle ${i}: ${cur.text}`);
		out.push(await k.reject('bud', h.fingerprint(cur.json.token)));
	}
	return out;
}

test('ondemand_min_ttl_burst_makes_at_most_one_upstream_call',
    { timeout: 90000 }, async () => {
	const { k, idp } = await budgetKiln('budget_min_ttl');

	/* min_ttl = the lifetime: satisfiable only by a brand new token. */
	const t0 = Date.now();
	const rs = await minTtlBurst(k, 100, 10, LIFETIME);
	const took = Date.now() - t0;
	assert.ok(took < 5000, `100 requests took ${took} ms`);
	rs.forEach((r, i) => assertPrompt(r, `request ${i}`));
	await h.sleep(1000);
	const calls = (await idp.stats()).token_requests - 1;
	assert.ok(calls <= 1, `${calls} upstream calls for 100 min_ttl ` +
	    'requests within 5 s');
	/* The first one went: the budget refused the rest, not the
	 * lifetime check. */
	assert.equal(calls, 1, 'the first on-demand refresh went through');
});

test('ondemand_rejected_cycles_make_at_most_one_upstream_call',
    { timeout: 90000 }, async () => {
	const { k, idp } = await budgetKiln('budget_rejected');

	const t0 = Date.now();
	const rs = await rejectCycles(k, 30);
	const took = Date.now() - t0;
	assert.ok(took < 5000, `30 cycles took ${took} ms`);
	rs.forEach((r, i) => assertPrompt(r, `report ${i}`));
	await h.sleep(1000);
	const calls = (await idp.stats()).token_requests - 1;
	assert.ok(calls <= 1, `${calls} upstream calls for 30 rejected ` +
	    'cycles within 5 s');
	/* The one that went through answered the new token. */
	assert.equal(rs[0].status, 200, rs[0].text);
});

test('ondemand_refresh_none_while_prewarming_stopped', { timeout: 90000 },
    async () => {
	const { k, idp, adminKey } = await budgetKiln('budget_paused');

	const r = await a.call(k, 'POST', '/api/prewarming/stop',
	    { auth: adminKey });
	assert.equal(r.status, 200, r.text);
	await h.waitFor(async () => {
		const s = await a.call(k, 'GET', '/api/prewarming/status',
		    { auth: adminKey });
		return s.json.data.prewarming_active === false;
	}, { timeout: 5000, what: 'pre-warming paused' });
	/* Both workers have the pause (NOTIFY within 100 ms). */
	await h.sleep(500);

	const rs = [...await minTtlBurst(k, 20, 5, LIFETIME),
	    ...await rejectCycles(k, 10)];
	rs.forEach((x, i) => assertPrompt(x, `request ${i}`));
	await h.sleep(1000);
	assert.equal((await idp.stats()).token_requests, 1,
	    'no upstream call while pre-warming is stopped');
});

test('min_ttl_beyond_token_lifetime_answers_503_at_once',
    { timeout: 90000 }, async () => {
	const { k, idp } = await budgetKiln('budget_lifetime');

	for (let i = 0; i < 5; i++) {
		const r = await k.currentToken('bud',
		    { query: '?min_ttl=86400' });
		assert.equal(r.status, 503, r.text);
		assert.ok(r.ms < 500, `answered in ${r.ms} ms`);
		assert.match(String(r.headers['retry-after']), /^[1-9][0-9]*$/);
		assert.match(r.json.message, /lifetime/,
		    `message says why: ${r.json.message}`);
	}
	await h.sleep(500);
	assert.equal((await idp.stats()).token_requests, 1,
	    'no upstream call for a min_ttl the upstream cannot meet');
});

test('operator_refresh_ignores_budget_and_is_single_flight',
    { timeout: 90000 }, async () => {
	const { k, idp, adminKey, first } = await budgetKiln('budget_admin');

	/* Spend the budget: one report refreshes, the next is refused. */
	const r1 = await k.reject('bud', h.fingerprint(first.token));
	const second = h.assertTokenBody(r1, 'bud');
	assert.notEqual(second.token, first.token);
	const r2 = await k.reject('bud', h.fingerprint(second.token));
	assert.equal(r2.status, 503, r2.text);
	assert.ok(r2.ms < MAX_ANSWER_MS, `refused in ${r2.ms} ms`);
	await h.sleep(500);
	assert.equal((await idp.stats()).token_requests, 2);

	/* The operator still refreshes. */
	const p = await a.call(k, 'POST', '/api/tokens/bud/refresh',
	    { auth: adminKey });
	assert.equal(p.status, 202, p.text);
	await h.waitFor(async () => {
		const r = await k.currentToken('bud');
		return r.status === 200 && r.json.token !== second.token;
	}, { timeout: 5000, what: 'the operator refresh' });
	assert.equal((await idp.stats()).token_requests, 3);

	/* Concurrent ones: one upstream call (the upstream is slow). */
	await idp.mode({ mode: 'slow', hang_ms: 1500 });
	const ps = await Promise.all(Array.from({ length: 8 }, () =>
	    a.call(k, 'POST', '/api/tokens/bud/refresh',
	    { auth: adminKey })));
	for (const x of ps)
		assert.equal(x.status, 202, x.text);
	await h.sleep(3000);
	assert.equal((await idp.stats()).token_requests, 4,
	    'one upstream call for 8 concurrent operator refreshes');
});

test('open_circuit_lets_through_only_probes', { timeout: 120000 },
    async () => {
	const OPEN_S = 2;
	const f = await h.startFault(['--mode', '5xx', '--lifetime', '600']);
	const db = await h.freshDb(pg, 'budget_circuit');
	const sources = Array.from({ length: 200 }, (_, i) => ({
		name: `c${i}`,
		kind: 'client_credentials',
		token_url: f.tokenUrl,
		client_id: 'kiln',
		client_secret: h.secret('c'),
	}));
	const k = await h.startKiln({ name: 'budget_circuit',
	    databaseUrl: db.url, workers: 2, sources, env: {
		KILN_CIRCUIT_OPEN: String(OPEN_S),
		KILN_UPSTREAM_TIMEOUT: '3',
	    } });

	/* Let the first round fail and the circuit open. */
	await h.waitFor(async () => (await f.stats()).token_requests >= 5,
	    { timeout: 20000, what: 'the first failures' });
	await h.sleep(3000);
	await f.reset();
	const WINDOW_S = 10;
	await h.sleep(WINDOW_S * 1000);
	const st = await f.stats();
	const periods = WINDOW_S / OPEN_S + 1;
	console.log(`# circuit: ${st.token_requests} requests to the ` +
	    `failing host in ${WINDOW_S} s, 200 sources, open ${OPEN_S} s`);
	assert.ok(st.token_requests <= 2 * periods, `${st.token_requests} ` +
	    `requests to the failing host in ${WINDOW_S} s ` +
	    `(open period ${OPEN_S} s)`);
	assert.ok(st.token_requests >= 1, 'half-open probes go out');
	const hosts = await db.pg.queryJson('SELECT host, failures, ' +
	    'open_until IS NOT NULL AS open FROM upstream_hosts',
	    { db: db.name });
	assert.deepEqual(hosts.map((x) => [x.host, x.open]),
	    [[`127.0.0.1:${f.port}`, true]], JSON.stringify(hosts));

	/* A client asking on demand gets an answer at once, no call. */
	const r = await k.currentToken('c7', { query: '?min_ttl=60' });
	assert.equal(r.status, 503, r.text);
	assert.ok(r.ms < MAX_ANSWER_MS, `answered in ${r.ms} ms`);

	/* The host recovers: a probe closes the circuit, all refresh. */
	await f.mode('ok');
	await h.waitFor(async () => {
		for (const n of ['c0', 'c99', 'c199']) {
			if ((await k.currentToken(n)).status !== 200)
				return false;
		}
		return true;
	}, { timeout: 30000, interval: 500, what: 'tokens after recovery' });
});
