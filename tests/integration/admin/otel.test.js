'use strict';

/*
 * OTLP trace export (issue 15, part 1). A collector of our own receives
 * OTLP/HTTP on /v1/traces, JSON or protobuf (decoded here, strictly, by
 * the field numbers of opentelemetry-proto into the JSON mapping), and
 * every span is checked against the JSON mapping's rules (hex ids,
 * decimal-string nanoseconds, kind enum, attribute value shapes); parent
 * links follow the caller's sampled
 * traceparent down to the upstream call, whose span id the upstream
 * received; nothing secret is exported; always_off exports nothing; a
 * collector that is down or never answers costs the serving path
 * nothing and its drops are counted.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const procs = require('../lib/procs');

const pg = h.filePg();

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const NANOS = /^[0-9]{1,20}$/;
const W3C = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/* Protobuf wire format: [{ f, wt, v }] of one message, strictly. */
function pbFields(buf)
{
	const out = [];
	let i = 0;
	const varint = () => {
		let v = 0n;
		for (let shift = 0n; ; shift += 7n) {
			assert.ok(i < buf.length && shift < 70n, 'varint');
			const b = buf[i++];
			v |= BigInt(b & 0x7f) << shift;
			if (!(b & 0x80))
				return v;
		}
	};
	while (i < buf.length) {
		const tag = varint();
		const f = Number(tag >> 3n);
		const wt = Number(tag & 7n);
		if (wt === 0) {
			out.push({ f, wt, v: varint() });
		} else if (wt === 1) {
			assert.ok(i + 8 <= buf.length, 'fixed64');
			out.push({ f, wt, v: buf.readBigUInt64LE(i) });
			i += 8;
		} else if (wt === 2) {
			const len = Number(varint());
			assert.ok(i + len <= buf.length, 'length');
			out.push({ f, wt, v: buf.subarray(i, i + len) });
			i += len;
		} else {
			assert.fail(`wire type ${wt}`);
		}
	}
	return out;
}

/* Decode by the field numbers of opentelemetry-proto; unknown: fail. */
function pbMessage(buf, fields)
{
	const m = {};
	for (const { f, wt, v } of pbFields(buf)) {
		const spec = fields[f];
		assert.ok(spec, `unexpected field ${f}`);
		const [name, want, conv, repeated] = spec;
		assert.equal(wt, want, `wire type of ${name}`);
		if (repeated)
			(m[name] = m[name] || []).push(conv(v));
		else
			m[name] = conv(v);
	}
	return m;
}

const utf8 = (b) => b.toString('utf8');
const hex = (b) => b.toString('hex');
const anyValue = (b) => pbMessage(b, {
	1: ['stringValue', 2, utf8],
	3: ['intValue', 0, (v) => BigInt.asIntN(64, v).toString()],
});
const keyValue = (b) => pbMessage(b, {
	1: ['key', 2, utf8], 2: ['value', 2, anyValue] });
const span = (b) => Object.assign({ attributes: [] }, pbMessage(b, {
	1: ['traceId', 2, hex], 2: ['spanId', 2, hex],
	4: ['parentSpanId', 2, hex], 5: ['name', 2, utf8],
	6: ['kind', 0, Number], 7: ['startTimeUnixNano', 1, String],
	8: ['endTimeUnixNano', 1, String],
	9: ['attributes', 2, keyValue, true],
	15: ['status', 2, (x) => pbMessage(x, { 2: ['message', 2, utf8],
	    3: ['code', 0, Number] })],
}));
const exportRequest = (b) => pbMessage(b, {
	1: ['resourceSpans', 2, (rs) => pbMessage(rs, {
		1: ['resource', 2, (r) => pbMessage(r,
		    { 1: ['attributes', 2, keyValue, true] })],
		2: ['scopeSpans', 2, (ss) => pbMessage(ss, {
			1: ['scope', 2, (sc) => pbMessage(sc,
			    { 1: ['name', 2, utf8], 2: ['version', 2, utf8] })],
			2: ['spans', 2, span, true],
		}), true],
	}), true],
});

/*
 * A collector: every POST /v1/traces body kept raw and decoded (JSON, or
 * protobuf into the JSON mapping's shape).
 */
function startCollector()
{
	const posts = [];
	const server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (d) => chunks.push(d));
		req.on('end', () => {
			const body = Buffer.concat(chunks);
			const pb = /^application\/x-protobuf/.test(
			    String(req.headers['content-type']));
			const raw = body.toString(pb ? 'latin1' : 'utf8');
			posts.push({ path: req.url, method: req.method,
			    headers: req.headers, raw, pb, json: pb ?
			    exportRequest(body) : JSON.parse(raw) });
			res.writeHead(200, { 'Content-Type':
			    'application/json' });
			res.end('{}');
		});
	});
	return new Promise((resolve) => {
		server.listen(0, '127.0.0.1', () => {
			const c = {
				posts,
				url: `http://127.0.0.1:${server.address().port}`,
				spans: () => posts.flatMap((p) =>
				    p.json.resourceSpans.flatMap((rs) =>
				    rs.scopeSpans.flatMap((ss) => ss.spans))),
				close: () => new Promise((r) => server.close(r)),
			};
			procs.onCleanup(() => c.close());
			resolve(c);
		});
	});
}

/* Accepts connections and never answers: a black-holed collector. */
function startBlackHole()
{
	const socks = [];
	let accepted = 0;
	let open = 0;
	let maxOpen = 0;
	const server = net.createServer((s) => {
		accepted++;
		maxOpen = Math.max(maxOpen, ++open);
		socks.push(s);
		s.on('error', () => {});
		s.on('close', () => open--);
		s.resume();		/* reads, so a close is seen at once */
	});
	return new Promise((resolve) => {
		server.listen(0, '127.0.0.1', () => {
			const b = {
				url: `http://127.0.0.1:${server.address().port}`,
				accepted: () => accepted,
				maxOpen: () => maxOpen,
				close: () => new Promise((r) => {
					socks.forEach((s) => s.destroy());
					server.close(r);
				}),
			};
			procs.onCleanup(() => b.close());
			resolve(b);
		});
	});
}

/* A token endpoint that checks the secret, records traceparent. */
function startIdp(clientSecret)
{
	const seen = [];
	const tokens = [];
	const server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (d) => chunks.push(d));
		req.on('end', () => {
			const form = new URLSearchParams(
			    Buffer.concat(chunks).toString('utf8'));
			seen.push(req.headers.traceparent || null);
			if (form.get('client_secret') !== clientSecret) {
				res.writeHead(401, { 'Content-Type':
				    'application/json' });
				res.end('{"error":"invalid_client"}');
				return;
			}
			const t = `tok-${crypto.randomBytes(16).toString('hex')}`;
			tokens.push(t);
			const body = JSON.stringify({ access_token: t,
			    token_type: 'Bearer', expires_in: 3600 });
			res.writeHead(200, { 'Content-Type': 'application/json' });
			res.end(body);
		});
	});
	return new Promise((resolve) => {
		server.listen(0, '127.0.0.1', () => {
			const i = { seen, tokens, tokenUrl: 'http://127.0.0.1:' +
			    `${server.address().port}/oauth/token?tenant=t1` };
			procs.onCleanup(() => new Promise((r) => server.close(r)));
			resolve(i);
		});
	});
}

async function tracedKiln(label, env, o = {})
{
	const secret = h.secret('otel-client');
	const idp = await startIdp(secret);
	const r = await a.adminKiln(pg, label, {
		idp,
		sources: [{ name: 'alpha', client_id: 'alpha',
		    client_secret: secret }, { name: 'beta', client_id: 'beta',
		    client_secret: 'wrong-secret-for-beta' }],
		workers: o.workers || 1,
		env: Object.assign({ OTEL_BSP_SCHEDULE_DELAY: '100' }, env),
	});
	return Object.assign(r, { idp, clientSecret: secret });
}

function attrs(span)
{
	const m = {};
	for (const x of span.attributes || [])
		m[x.key] = x.value;
	return m;
}

/* The rules of the OTLP JSON mapping, for one span. */
function checkSpan(s)
{
	const what = `span ${JSON.stringify(s).slice(0, 200)}`;
	assert.match(s.traceId, HEX32, what);
	assert.notEqual(s.traceId, '0'.repeat(32), what);
	assert.match(s.spanId, HEX16, what);
	assert.notEqual(s.spanId, '0'.repeat(16), what);
	if (s.parentSpanId !== undefined) {
		assert.match(s.parentSpanId, HEX16, what);
		assert.notEqual(s.parentSpanId, '0'.repeat(16), what);
	}
	assert.equal(typeof s.name, 'string', what);
	assert.ok(s.name.length > 0, what);
	assert.ok([1, 2, 3, 4, 5].includes(s.kind), `kind: ${what}`);
	assert.match(s.startTimeUnixNano, NANOS, what);
	assert.match(s.endTimeUnixNano, NANOS, what);
	const start = BigInt(s.startTimeUnixNano);
	const end = BigInt(s.endTimeUnixNano);
	assert.ok(start <= end, `start <= end: ${what}`);
	/* Within the last ten minutes, in nanoseconds (not ms or s). */
	const now = BigInt(Date.now()) * 1000000n;
	assert.ok(start > now - 600n * 1000000000n && end <= now +
	    5n * 1000000000n, `times in ns near now: ${what}`);
	assert.ok(Array.isArray(s.attributes), what);
	const keys = new Set();
	for (const x of s.attributes) {
		assert.equal(typeof x.key, 'string', what);
		assert.ok(!keys.has(x.key), `duplicate ${x.key}: ${what}`);
		keys.add(x.key);
		const kinds = Object.keys(x.value);
		assert.equal(kinds.length, 1, `one value: ${what}`);
		if (kinds[0] === 'stringValue')
			assert.equal(typeof x.value.stringValue, 'string');
		else if (kinds[0] === 'intValue')
			assert.match(x.value.intValue, /^-?[0-9]+$/, what);
		else
			assert.fail(`unexpected value kind ${kinds[0]}: ${what}`);
	}
	if (s.status !== undefined) {
		assert.ok([0, 1, 2].includes(s.status.code), what);
		if (s.status.message !== undefined)
			assert.equal(typeof s.status.message, 'string');
	}
}

function checkExport(post, protocol)
{
	assert.equal(post.method, 'POST');
	assert.equal(post.path, '/v1/traces');
	assert.match(String(post.headers['content-type']),
	    protocol === 'http/json' ? /^application\/json/ :
	    /^application\/x-protobuf/);
	const rs = post.json.resourceSpans;
	assert.ok(Array.isArray(rs) && rs.length === 1);
	const res = {};
	for (const x of rs[0].resource.attributes)
		res[x.key] = x.value.stringValue;
	assert.equal(typeof rs[0].scopeSpans[0].scope.name, 'string');
	for (const ss of rs[0].scopeSpans)
		ss.spans.forEach(checkSpan);
	return res;
}

async function waitSpan(col, pred, what)
{
	return h.waitFor(() => col.spans().find(pred),
	    { timeout: 10000, what });
}

async function spansFollowTheCallersTrace(protocol)
{
	const col = await startCollector();
	const env = await tracedKiln('otel_spans', {
		OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
		OTEL_EXPORTER_OTLP_ENDPOINT: col.url,
		OTEL_EXPORTER_OTLP_HEADERS:
		    'x-collector-key=col%20key-4711 , x-tenant=kiln',
		OTEL_SERVICE_NAME: 'kiln-under-test',
		OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=it,' +
		    'service.name=ignored',
	});
	const { k, idp, adminKey } = env;
	const first = await h.waitToken(k, 'alpha');

	/* A public request continuing the caller's sampled trace. */
	const T1 = crypto.randomBytes(16).toString('hex');
	const P1 = crypto.randomBytes(8).toString('hex');
	const r1 = await k.currentToken('alpha', { query: '?min_ttl=1',
	    headers: { traceparent: `00-${T1}-${P1}-01` } });
	assert.equal(r1.status, 200);
	const server = await waitSpan(col, (s) => s.traceId === T1 &&
	    s.kind === 2, 'the server span of the public request');
	assert.equal(server.parentSpanId, P1, 'child of the caller');
	assert.equal(server.name, 'GET /api/tokens/*/current-token');
	const sa = attrs(server);
	assert.deepEqual(sa['http.request.method'], { stringValue: 'GET' });
	assert.deepEqual(sa['http.response.status_code'],
	    { intValue: '200' });
	assert.deepEqual(sa['url.path'],
	    { stringValue: '/api/tokens/alpha/current-token' });
	assert.deepEqual(sa['url.scheme'], { stringValue: 'http' });
	assert.deepEqual(sa['server.address'], { stringValue: '127.0.0.1' });
	assert.deepEqual(sa['server.port'], { intValue: String(k.port) });
	assert.deepEqual(sa['kiln.source'], { stringValue: 'alpha' });
	assert.equal(server.status, undefined, '200 is no error');

	/* A forced refresh: request -> attempt -> upstream call, commit. */
	const T2 = crypto.randomBytes(16).toString('hex');
	const P2 = crypto.randomBytes(8).toString('hex');
	const n = idp.seen.length;
	const r2 = await a.call(k, 'POST', '/api/tokens/alpha/refresh',
	    { auth: adminKey, headers: { traceparent: `00-${T2}-${P2}-01` } });
	assert.equal(r2.status, 202, r2.text);
	await h.waitFor(() => idp.seen.length > n,
	    { timeout: 10000, what: 'the upstream call' });
	const sent = W3C.exec(String(idp.seen[idp.seen.length - 1]));
	assert.ok(sent, `upstream traceparent ${idp.seen.slice(-1)}`);
	assert.equal(sent[1], T2, 'upstream call is in the caller\'s trace');
	assert.equal(sent[3], '01', 'sampled');

	const req = await waitSpan(col, (s) => s.traceId === T2 &&
	    s.kind === 2, 'the refresh request span');
	assert.equal(req.parentSpanId, P2);
	assert.equal(req.name, 'POST /api/tokens/*/refresh');
	assert.deepEqual(attrs(req)['http.response.status_code'],
	    { intValue: '202' });
	const call = await waitSpan(col, (s) => s.traceId === T2 &&
	    s.kind === 3 && attrs(s)['http.request.method'] !== undefined,
	    'the upstream call span');
	assert.equal(call.spanId, sent[2],
	    'the upstream received the call span\'s id');
	/* The attempt ends after its call (with the commit): it may come
	 * in a later batch. */
	const attempt = await waitSpan(col, (s) => s.spanId ===
	    call.parentSpanId, 'the call span\'s parent');
	assert.equal(attempt.kind, 1);
	assert.equal(attempt.parentSpanId, req.spanId,
	    'the call span is a grandchild of the request span');
	assert.equal(attempt.name, 'kiln.refresh');
	assert.deepEqual(attrs(attempt)['kiln.trigger'],
	    { stringValue: 'admin' });
	const ca = attrs(call);
	assert.deepEqual(ca['url.path'], { stringValue: '/oauth/token' });
	assert.deepEqual(ca['server.address'], { stringValue: '127.0.0.1' });
	assert.deepEqual(ca['http.response.status_code'],
	    { intValue: '200' });
	const commit = await waitSpan(col, (s) => s.traceId === T2 &&
	    attrs(s)['db.system'] !== undefined, 'the commit span');
	assert.equal(commit.parentSpanId, attempt.spanId);
	assert.deepEqual(attrs(commit)['db.system'],
	    { stringValue: 'postgresql' });
	assert.ok(BigInt(call.startTimeUnixNano) >=
	    BigInt(attempt.startTimeUnixNano));
	assert.ok(BigInt(commit.endTimeUnixNano) <=
	    BigInt(attempt.endTimeUnixNano));

	/* An admin request with a JWT, and a refused one (401). */
	const jwt = await a.jwt('viewer');
	assert.equal((await a.call(k, 'GET', '/api/tokens',
	    { auth: jwt })).status, 200);
	assert.equal((await a.call(k, 'GET', '/api/tokens',
	    { auth: 'not-a-key' })).status, 401);
	await waitSpan(col, (s) => s.name === 'GET /api/tokens' &&
	    attrs(s)['http.response.status_code'].intValue === '401',
	    'the refused request\'s span');

	/* A failing source: its scheduled attempts are roots, in error. */
	const bad = await waitSpan(col, (s) => s.kind === 3 &&
	    attrs(s)['kiln.source']?.stringValue === 'beta' &&
	    attrs(s)['http.request.method'] !== undefined,
	    'the failing upstream call span');
	assert.deepEqual(attrs(bad)['http.response.status_code'],
	    { intValue: '401' });
	assert.equal(bad.status?.code, 2, 'status error');
	assert.match(bad.status.message, /HTTP 401/);
	const badAttempt = await waitSpan(col, (s) =>
	    s.spanId === bad.parentSpanId, 'the failing attempt span');
	assert.equal(badAttempt.parentSpanId, undefined, 'a scheduled root');
	assert.deepEqual(attrs(badAttempt)['kiln.trigger'],
	    { stringValue: 'schedule' });
	assert.equal(badAttempt.status?.code, 2);

	/* Every export: the mapping, the resource, the headers sent. */
	assert.ok(col.posts.length > 0);
	for (const p of col.posts) {
		const res = checkExport(p, protocol);
		assert.equal(res['service.name'], 'kiln-under-test');
		assert.equal(res['deployment.environment'], 'it');
		assert.equal(p.headers['x-collector-key'], 'col key-4711');
		assert.equal(p.headers['x-tenant'], 'kiln');
	}
	/* Ids are unique per span. */
	const ids = col.spans().map((s) => s.spanId);
	assert.ok(col.spans().some((s) => s.kind === 2 &&
	    s.parentSpanId === undefined), 'a request without traceparent ' +
	    'is a root');
	assert.equal(new Set(ids).size, ids.length, 'span ids unique');

	/* No secret, token, credential or query string value anywhere. */
	const raw = col.posts.map((p) => p.raw).join('\n');
	const secrets = [env.clientSecret, 'wrong-secret-for-beta', adminKey, jwt, k.masterKey,
	    first.json.token, ...idp.tokens, 'col key-4711',
	    'col%20key-4711', 'tenant', 'min_ttl'];
	assert.ok(idp.tokens.length >= 2 && first.json.token.startsWith('tok-'));
	for (const s of secrets)
		assert.ok(!raw.includes(s), `export leaks ${s.slice(0, 12)}…`);

	const m = await a.scrape(k);
	assert.ok(m.value('kiln_spans_exported_total') >= ids.length - 1,
	    'exported spans counted');
	assert.equal(m.value('kiln_spans_dropped_total'), 0);
}

test('json_spans_follow_the_otlp_mapping_and_the_callers_trace',
    { timeout: 60000 }, () => spansFollowTheCallersTrace('http/json'));

test('protobuf_spans_follow_the_otlp_schema_and_the_callers_trace',
    { timeout: 60000 }, () => spansFollowTheCallersTrace(''));

test('sampler_always_off_exports_no_span', { timeout: 60000 },
    async () => {
	const col = await startCollector();
	const env = await tracedKiln('otel_off', {
		OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${col.url}/v1/traces`,
		OTEL_TRACES_SAMPLER: 'always_off',
	});
	const { k, idp, adminKey } = env;
	await h.waitToken(k, 'alpha');
	const T = crypto.randomBytes(16).toString('hex');
	const tp = `00-${T}-${crypto.randomBytes(8).toString('hex')}-01`;
	for (let i = 0; i < 20; i++) {
		assert.equal((await k.currentToken('alpha',
		    { headers: { traceparent: tp } })).status, 200);
	}
	const n = idp.seen.length;
	assert.equal((await a.call(k, 'POST', '/api/tokens/alpha/refresh',
	    { auth: adminKey, headers: { traceparent: tp } })).status, 202);
	await h.waitFor(() => idp.seen.length > n,
	    { timeout: 10000, what: 'the upstream call' });
	/* The decision is passed on: not sampled. */
	const sent = W3C.exec(String(idp.seen[idp.seen.length - 1]));
	assert.ok(sent);
	assert.equal(sent[1], T);
	assert.equal(sent[3], '00', 'always_off: not sampled upstream');
	await h.sleep(1000);		/* ten export intervals */
	assert.equal(col.spans().length, 0, 'no span exported');
	const m = await a.scrape(k);
	assert.equal(m.value('kiln_spans_exported_total'), 0);
});

/* n current-token requests, 8 at a time: their latencies in ms. */
async function hammer(k, n)
{
	const ms = [];
	let next = 0;
	async function one()
	{
		while (next < n) {
			next++;
			const t0 = process.hrtime.bigint();
			const r = await k.currentToken('alpha', { timeout: 5000 });
			ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
			assert.equal(r.status, 200);
		}
	}
	await Promise.all(Array.from({ length: 8 }, one));
	return ms.sort((x, y) => x - y);
}

test('collector_down_or_black_holed_serving_stays_fast_drops_counted',
    { timeout: 90000 }, async () => {
	const hole = await startBlackHole();
	const closed = await h.freePort();
	const tight = {
		OTEL_EXPORTER_OTLP_TIMEOUT: '400',
		OTEL_BSP_MAX_QUEUE_SIZE: '64',
		OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '32',
	};
	const down = await tracedKiln('otel_down', Object.assign({
		OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`,
	}, tight));
	const holed = await tracedKiln('otel_hole', Object.assign({
		OTEL_EXPORTER_OTLP_ENDPOINT: hole.url,
	}, tight));

	for (const [what, env] of [['down', down], ['black-holed', holed]]) {
		const { k } = env;
		await h.waitToken(k, 'alpha');
		const ms = await hammer(k, 400);
		const median = ms[ms.length >> 1];
		const max = ms[ms.length - 1];
		assert.ok(median < 100, `${what}: median ${median} ms`);
		assert.ok(max < 1500, `${what}: slowest ${max} ms`);
		await h.waitFor(async () => (await a.scrape(k))
		    .value('kiln_spans_dropped_total') >= 64,
		{ timeout: 10000, what: `${what}: drops counted` });
		/* The export in flight fails at its timeout (400 ms). */
		await h.waitFor(async () => (await a.scrape(k))
		    .value('kiln_span_exports_failed_total') > 0,
		{ timeout: 10000, what: `${what}: failed exports counted` });
		const m = await a.scrape(k);
		assert.equal(m.value('kiln_spans_exported_total'), 0, what);
	}
	assert.ok(hole.accepted() > 0, 'the black hole saw exports');
	/* One export in flight per worker: not one per batch. */
	assert.ok(hole.maxOpen() <= 2, `open at once ${hole.maxOpen()}`);
	assert.ok(holed.k.logs().includes('span export failed'));
});

/* kiln check: each bad variable stops the start, named. */
function check(env)
{
	return new Promise((resolve, reject) => {
		const c = spawn(path.join(procs.REPO, 'kiln'), ['check'], {
			cwd: procs.REPO,
			env: Object.assign(h.cleanEnv(), {
				KILN_DATABASE_URL:
				    'postgresql://x@127.0.0.1:1/x',
				KILN_MASTER_KEY: crypto.randomBytes(32)
				    .toString('base64'),
			}, env),
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let out = '';
		c.stdout.on('data', (d) => (out += d));
		c.stderr.on('data', (d) => (out += d));
		const t = setTimeout(() => c.kill('SIGKILL'), 15000);
		c.on('error', reject);
		c.on('exit', (code) => {
			clearTimeout(t);
			resolve({ code, out });
		});
	});
}

test('a_bad_otel_variable_stops_the_start_naming_it', { timeout: 60000 },
    async () => {
	const bad = [
		['OTEL_TRACES_SAMPLER', { OTEL_TRACES_SAMPLER: 'sometimes' }],
		['OTEL_TRACES_SAMPLER_ARG', { OTEL_TRACES_SAMPLER:
		    'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }],
		['OTEL_EXPORTER_OTLP_ENDPOINT',
		    { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector' }],
		['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
		    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector:4318' }],
		['OTEL_EXPORTER_OTLP_HEADERS',
		    { OTEL_EXPORTER_OTLP_HEADERS: 'api-key=s3cr%zzet' }],
		['OTEL_EXPORTER_OTLP_HEADERS',
		    { OTEL_EXPORTER_OTLP_HEADERS: 'bad name=v' }],
		['OTEL_RESOURCE_ATTRIBUTES',
		    { OTEL_RESOURCE_ATTRIBUTES: 'a=1,novalue' }],
		['OTEL_EXPORTER_OTLP_TIMEOUT',
		    { OTEL_EXPORTER_OTLP_TIMEOUT: 'soon' }],
		['OTEL_EXPORTER_OTLP_PROTOCOL',
		    { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }],
	];
	for (const [name, env] of bad) {
		const r = await check(env);
		assert.equal(r.code, 1, `${name}: ${r.out}`);
		assert.ok(r.out.includes(`${name}:`), `${name}: ${r.out}`);
		assert.ok(!r.out.includes('s3cr'), 'no header value echoed');
	}
	/* The good ones pass the configuration check. */
	const good = await check({
		OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/',
		OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%2Cb,x=1',
		OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
		OTEL_TRACES_SAMPLER_ARG: '0.25',
		OTEL_RESOURCE_ATTRIBUTES: 'a=1',
	});
	assert.match(good.out, /^configuration: ok/m, good.out);
});
