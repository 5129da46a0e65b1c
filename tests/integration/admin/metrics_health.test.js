'use strict';

/*
 * Ops endpoints (issue 3, "GET /health/detailed" and "GET /metrics"):
 * /metrics parses as Prometheus text and its counters match the requests
 * sent (deltas between two scrapes; a scrape is counted once answered);
 * the JSON variant has DESIGN's shape; /health/detailed is 200 when
 * healthy, 503 while PostgreSQL is down or a source has no valid token,
 * and 200 again after.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();
/* A cluster of its own for the test that stops PostgreSQL. */
const pgStoppable = h.filePg();

function key(route, status)
{
	return `${route} ${status}`;
}

function requestCounts(s)
{
	const m = new Map();
	for (const x of s.series('kiln_http_requests_total'))
		m.set(key(x.labels.route, x.labels.status), x.value);
	return m;
}

function deltas(before, after)
{
	const d = new Map();
	for (const [kk, v] of after) {
		const dv = v - (before.get(kk) || 0);
		if (dv !== 0)
			d.set(kk, dv);
	}
	for (const [kk] of before) {
		if (!after.has(kk))
			d.set(kk, -before.get(kk));
	}
	return d;
}

test('metrics_parse_and_count_the_requests_sent', { timeout: 60000 },
    async () => {
	const env = await a.adminKiln(pg, 'metrics_text', {
		sources: [{ name: 'alpha' }], workers: 2 });
	const { k, idp } = env;
	await h.waitToken(k, 'alpha');
	const admin = await a.jwt('admin');

	const s1 = await a.scrape(k);
	assert.match(String(s1.response.headers['content-type']),
	    /^text\/plain; version=0\.0\.4/);
	/* The families and their types. */
	const want = {
		kiln_http_requests_total: 'COUNTER',
		kiln_http_request_duration_seconds: 'HISTOGRAM',
		kiln_refresh_attempts_total: 'COUNTER',
		kiln_refresh_failures_total: 'COUNTER',
		kiln_token_expires_in_seconds: 'GAUGE',
		kiln_token_generation: 'GAUGE',
		kiln_upstream_request_duration_seconds: 'HISTOGRAM',
		kiln_websockets_open: 'GAUGE',
		kiln_pgsql_errors_total: 'COUNTER',
	};
	for (const [name, type] of Object.entries(want))
		assert.equal(s1.types.get(name), type, `# TYPE ${name}`);
	/* Every sample belongs to a declared family. */
	for (const x of s1.samples) {
		const base = x.name.replace(/_(bucket|sum|count)$/, '');
		assert.ok(s1.types.has(x.name) || s1.types.get(base) ===
		    'HISTOGRAM', `sample ${x.name} has a # TYPE`);
	}

	const upBefore = (await idp.stats()).token_requests;
	const attempts1 = s1.value('kiln_refresh_attempts_total',
	    { source: 'alpha' });
	const failures1 = s1.value('kiln_refresh_failures_total',
	    { source: 'alpha' });
	const upCount1 = s1.value('kiln_upstream_request_duration_seconds_count');

	/* The requests of the test, by route and status. */
	const viewer = await a.jwt('viewer');
	const sent = [
		[5, () => a.call(k, 'GET', '/api/tokens', { auth: admin }),
		    'GET /api/tokens', 200],
		[3, () => a.call(k, 'GET', '/api/tokens'), 'GET /api/tokens',
		    401],
		[2, () => a.call(k, 'POST', '/api/keys', { auth: viewer,
		    body: { name: 'x', role: 'admin' } }), 'POST /api/keys', 403],
		[2, () => a.call(k, 'GET', '/api/tokens/alpha', { auth: admin }),
		    'GET /api/tokens/*', 200],
		[4, () => a.call(k, 'GET', '/api/tokens/nope', { auth: admin }),
		    'GET /api/tokens/*', 404],
		[3, () => a.call(k, 'POST', '/api/tokens', { auth: admin,
		    body: { name: 7 } }), 'POST /api/tokens', 422],
		[6, () => k.currentToken('alpha'),
		    'GET /api/tokens/*/current-token', 200],
		[1, () => a.call(k, 'POST', '/api/tokens/alpha/refresh',
		    { auth: admin }), 'POST /api/tokens/*/refresh', 202],
		[2, () => k.get('/health'), 'GET /health', 200],
		[1, () => k.get('/health/detailed'), 'GET /health/detailed', 200],
		[3, () => a.call(k, 'PUT', '/api/tokens', { auth: admin }),
		    null, 405],
		[2, () => k.get('/no/such/route'), null, 404],
	];
	const expected = new Map();
	const unrouted = new Map();
	for (const [n, fn, route, status] of sent) {
		for (let i = 0; i < n; i++) {
			const r = await fn();
			assert.equal(r.status, status, `${route}: ${r.text}`);
		}
		if (route === null)
			unrouted.set(status, (unrouted.get(status) || 0) + n);
		else
			expected.set(key(route, status), (expected.get(key(route,
			    status)) || 0) + n);
	}
	/* The first scrape was counted once it was answered. */
	expected.set(key('GET /metrics', 200), 1);

	/* Let the forced refresh finish. */
	await h.waitFor(async () => (await idp.stats()).token_requests >
	    upBefore, { timeout: 5000, interval: 50, what: 'the refresh' });
	await h.sleep(300);

	const s2 = await a.scrape(k);
	const d = deltas(requestCounts(s1), requestCounts(s2));
	const other = new Map();
	for (const [kk, v] of d) {
		if (expected.has(kk))
			continue;
		const status = Number(kk.split(' ').pop());
		other.set(status, (other.get(status) || 0) + v);
	}
	for (const [kk, v] of expected)
		assert.equal(d.get(kk), v, `kiln_http_requests_total ${kk}`);
	assert.deepEqual(Object.fromEntries(other),
	    Object.fromEntries(unrouted),
	    'requests without a route: only the 404 and 405 sent');

	/* Latency histograms: _count moves with the requests, buckets are
	 * cumulative and end at _count. */
	const byRoute = new Map();
	for (const [kk, v] of expected) {
		const route = kk.slice(0, kk.lastIndexOf(' '));
		byRoute.set(route, (byRoute.get(route) || 0) + v);
	}
	for (const [route, n] of byRoute) {
		const c1 = s1.value('kiln_http_request_duration_seconds_count',
		    { route });
		const c2 = s2.value('kiln_http_request_duration_seconds_count',
		    { route });
		assert.equal(c2 - c1, n, `duration _count of ${route}`);
		const buckets = s2.series('kiln_http_request_duration_seconds' +
		    '_bucket').filter((x) => x.labels.route === route);
		assert.ok(buckets.length >= 2, `${route}: buckets`);
		let prev = 0;
		let prevLe = -Infinity;
		for (const b of buckets) {
			const le = b.labels.le === '+Inf' ? Infinity :
			    Number(b.labels.le);
			assert.ok(le > prevLe, `${route}: le ascending`);
			assert.ok(b.value >= prev, `${route}: cumulative`);
			prev = b.value;
			prevLe = le;
		}
		assert.equal(prevLe, Infinity, `${route}: a +Inf bucket`);
		assert.equal(prev, c2, `${route}: +Inf == _count`);
		assert.ok(s2.value('kiln_http_request_duration_seconds_sum',
		    { route }) >= 0);
	}

	/* Refresh counters: the one forced refresh. */
	assert.equal(s2.value('kiln_refresh_attempts_total',
	    { source: 'alpha' }) - attempts1, 1, 'refresh attempts +1');
	assert.equal(s2.value('kiln_refresh_failures_total',
	    { source: 'alpha' }) - failures1, 0, 'no refresh failure');
	assert.equal(s2.value('kiln_upstream_request_duration_seconds_count') -
	    upCount1, 1, 'one upstream call timed');
	/* Gauges: generation 2 and about a lifetime left. */
	const s3 = await h.waitFor(async () => {
		const s = await a.scrape(k);
		return s.value('kiln_token_generation', { source: 'alpha' }) ===
		    2 ? s : false;
	}, { timeout: 2000, interval: 50, what: 'kiln_token_generation 2' });
	const left = s3.value('kiln_token_expires_in_seconds',
	    { source: 'alpha' });
	assert.ok(left > 500 && left <= 600, `expires in ${left} s`);
	assert.equal(s3.value('kiln_websockets_open'), 0);
	assert.equal(s3.value('kiln_pgsql_errors_total'), 0);
});

/* The counters live in a region all workers share: requests answered by
 * one worker are in the scrape answered by another. */
test('metrics_summed_over_workers', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'metrics_workers', {
		sources: [{ name: 'alpha' }], workers: 2 });
	const { k } = env;
	await h.waitToken(k, 'alpha');

	const s1 = await a.scrape(k);
	const first = new Set([h.workerOf(s1.response)]);
	for (let i = 0; i < 7; i++) {
		const r = await k.currentToken('alpha');
		assert.equal(r.status, 200);
		first.add(h.workerOf(r));
	}
	assert.equal(first.size, 1, 'one worker answered so far');
	const tok1 = s1.value('kiln_http_requests_total',
	    { route: 'GET /api/tokens/*/current-token', status: '200' });
	const other = await a.moveListener(k, first);
	assert.ok(other, 'another worker took over');
	const s2 = await a.scrape(k);
	assert.equal(h.workerOf(s2.response), other,
	    'the second scrape is answered by the other worker');
	assert.equal(s2.value('kiln_http_requests_total',
	    { route: 'GET /api/tokens/*/current-token', status: '200' }) -
	    tok1, 7, 'current-token answers of the first worker counted');
	assert.equal(s2.value('kiln_http_requests_total',
	    { route: 'GET /metrics', status: '200' }) -
	    s1.value('kiln_http_requests_total',
	    { route: 'GET /metrics', status: '200' }), 1,
	    'the first scrape (first worker) counted');
});

test('metrics_json_shape_and_counts', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'metrics_json', {
		sources: [{ name: 'alpha' }], env: { KILN_RATE_ANONYMOUS: '3' } });
	const { k } = env;
	await h.waitToken(k, 'alpha');
	const viewer = await a.jwt('viewer');
	const getJson = async () => {
		const r = await k.get('/metrics', { headers:
		    { Accept: 'application/json' } });
		assert.equal(r.status, 200, r.text);
		assert.match(String(r.headers['content-type']),
		    /application\/json/);
		return r.json;
	};

	const j1 = await getJson();
	for (let i = 0; i < 4; i++)
		assert.equal((await a.call(k, 'GET', '/api/tokens',
		    { auth: viewer })).status, 200);
	/* 3 anonymous 401s, then 2 rate-limited. */
	const anon = [];
	for (let i = 0; i < 5; i++)
		anon.push((await a.call(k, 'GET', '/api/tokens')).status);
	assert.deepEqual(anon, [401, 401, 401, 429, 429]);
	const j2 = await getJson();

	assert.match(j2.timestamp, h.ISO_Z, 'timestamp');
	const g = j2.global;
	for (const f of ['uptime_seconds', 'total_requests', 'success_count',
	    'error_count', 'rate_limit_count', 'success_rate',
	    'avg_duration_ms', 'pgsql_errors', 'websockets_open'])
		assert.equal(typeof g[f], 'number', `global.${f}`);
	assert.equal(g.success_count + g.error_count, g.total_requests,
	    'success + errors = total');
	const d = (f) => j2.global[f] - j1.global[f];
	assert.equal(d('total_requests'), 4 + 5 + 1, 'total delta');
	assert.equal(d('success_count'), 4 + 1, 'success delta');
	assert.equal(d('error_count'), 5, 'error delta');
	assert.equal(d('rate_limit_count'), 2, 'rate-limited delta');
	assert.ok(g.success_rate >= 0 && g.success_rate <= 100);

	assert.ok(j2.endpoints && typeof j2.endpoints === 'object');
	let sum = 0;
	for (const [route, e] of Object.entries(j2.endpoints)) {
		assert.equal(typeof e.total_requests, 'number', route);
		assert.equal(typeof e.success_rate, 'number', route);
		assert.equal(typeof e.avg_duration_ms, 'number', route);
		sum += e.total_requests;
	}
	assert.equal(sum, g.total_requests, 'endpoints add up to the total');
	const e1 = j1.endpoints['GET /api/tokens'] || { total_requests: 0 };
	const e2 = j2.endpoints['GET /api/tokens'];
	assert.equal(e2.total_requests - e1.total_requests, 9,
	    'GET /api/tokens total delta');
	assert.equal(j2.endpoints['GET /metrics'].total_requests -
	    ((j1.endpoints['GET /metrics'] || {}).total_requests || 0), 1,
	    'the first JSON scrape counted once answered');
});

test('health_detailed_503_when_postgres_stops_200_after_restart',
    { timeout: 90000 }, async () => {
	const env = await a.adminKiln(pgStoppable, 'health_pg', {
		sources: [{ name: 'alpha' }], workers: 2 });
	const { k, db } = env;
	await h.waitToken(k, 'alpha');

	let r = await k.get('/health/detailed');
	assert.equal(r.status, 200, r.text);
	const b = r.json;
	assert.match(b.timestamp, h.ISO_Z);
	assert.equal(b.status, 'healthy');
	assert.equal(b.checks.database.status, 'healthy');
	assert.equal(typeof b.checks.database.response_time_ms, 'number');
	assert.equal(b.checks.token_acquisition.status, 'healthy');
	assert.equal(b.checks.configuration.status, 'healthy');
	assert.ok(b.checks.upstream && Array.isArray(b.checks.upstream.hosts),
	    'upstream hosts');
	assert.equal(b.checks.upstream.hosts[0].circuit, 'closed');

	const pgErrors = (await a.scrape(k)).value('kiln_pgsql_errors_total');
	await db.pg.stop();
	try {
		const down = await h.waitFor(async () => {
			const x = await k.get('/health/detailed',
			    { timeout: 8000 });
			return x.status === 503 ? x : false;
		}, { timeout: 15000, interval: 250,
		    what: '/health/detailed 503 with PostgreSQL stopped' });
		assert.equal(down.json.status, 'unhealthy');
		assert.equal(down.json.checks.database.status, 'unhealthy');
		/* Liveness and the hot path go on without PostgreSQL. */
		assert.equal((await k.get('/health')).status, 200, '/health');
		h.assertTokenBody(await k.currentToken('alpha'), 'alpha');
	} finally {
		await db.pg.start();
	}
	const up = await h.waitFor(async () => {
		const x = await k.get('/health/detailed', { timeout: 8000 });
		return x.status === 200 ? x : false;
	}, { timeout: 15000, interval: 250,
	    what: '/health/detailed 200 after PostgreSQL restarted' });
	assert.equal(up.json.checks.database.status, 'healthy');
	/* The admin API reads PostgreSQL again. */
	r = await a.call(k, 'GET', '/api/tokens', { auth: env.adminKey });
	assert.equal(r.status, 200, r.text);
	const s = await a.scrape(k);
	assert.ok(s.value('kiln_pgsql_errors_total') > pgErrors,
	    'the failed queries of the outage are counted');
	assert.equal(k.exited, null, 'kiln still running');
});

test('health_detailed_503_when_a_source_has_no_valid_token',
    { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'health_src', {
		sources: [{ name: 'alpha' }] });
	const { k } = env;
	await h.waitToken(k, 'alpha');
	assert.equal((await k.get('/health/detailed')).status, 200);

	const closed = await h.freePort();
	let r = await a.call(k, 'POST', '/api/tokens', { auth: env.adminKey,
	    body: { name: 'broken', kind: 'client_credentials',
	    token_url: `http://127.0.0.1:${closed}/token`, client_id: 'x',
	    client_secret: 'y' } });
	assert.equal(r.status, 201, r.text);
	const bad = await h.waitFor(async () => {
		const x = await k.get('/health/detailed');
		return x.status === 503 ? x : false;
	}, { timeout: 5000, interval: 100, what: '503 for the broken source' });
	assert.equal(bad.json.status, 'unhealthy');
	assert.equal(bad.json.checks.token_acquisition.status, 'unhealthy');
	assert.deepEqual(bad.json.checks.token_acquisition.invalid,
	    ['broken'], 'names the source without a valid token');
	assert.equal(bad.json.checks.database.status, 'healthy');

	r = await a.call(k, 'DELETE', '/api/tokens/broken',
	    { auth: env.adminKey });
	assert.equal(r.status, 200, r.text);
	await h.waitFor(async () => (await k.get('/health/detailed')).status ===
	    200, { timeout: 5000, interval: 100, what: '200 after delete' });
});
