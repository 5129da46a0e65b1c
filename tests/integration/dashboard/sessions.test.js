'use strict';

/*
 * A session dies with its credential (issue 10, section 2): a dashboard
 * session made from an API key ends, on every worker, when the key is
 * revoked (its sockets close at once); one made from a JWT ends at the
 * JWT's exp; logins are rate-limited per address like anonymous calls
 * and refused ones are logged without the credential; a bogus session
 * cookie (and /health/detailed) costs no database query per request.
 * A session or an API key made a moment ago on one worker works on the
 * other at once; made-up keys cost no query per request either.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const d = require('../../browser/lib/dash');

const pg = h.filePg();

const ENV = { KILN_RATE_ANONYMOUS: '100000' };

/* An admin request of a session: POST /api/keys with cookie + CSRF. */
function sessionAdmin(pin, s, what)
{
	const body = JSON.stringify({ name: `by-${what}`, role: 'viewer' });
	return pin.request('POST', '/api/keys', { headers: {
		Cookie: s.cookie,
		'X-CSRF-Token': s.csrf,
		'Content-Type': 'application/json',
	}, body });
}

/*
 * Committed transactions of the database (all backends). A backend that
 * flushed its statistics less than a second ago keeps the next ones for
 * up to 10 s (PGSTAT_IDLE_INTERVAL): wait that out first.
 */
async function xacts(db)
{
	await h.sleep(11000);
	const rows = await db.pg.queryJson('SELECT xact_commit::bigint AS n ' +
	    `FROM pg_stat_database WHERE datname = '${db.name}'`,
	    { db: db.name });
	return Number(rows[0].n);
}

/* Transactions of ms with no requests (kiln's own timers and our polls),
 * from a count just taken, for comparison. */
async function idleXacts(db, from, ms)
{
	await h.sleep(ms);
	return await xacts(db) - from;
}

/* n requests, c at a time. */
async function flood(n, c, fn)
{
	const out = [];
	let i = 0;
	const one = async () => {
		while (i < n) {
			const j = i++;
			out[j] = await fn(j);
		}
	};
	await Promise.all(Array.from({ length: c }, one));
	return out;
}

test('revoking_a_key_ends_its_sessions_on_every_worker',
    { timeout: 120000 }, async () => {
	const env = await a.adminKiln(pg, 'sess_revoke', { workers: 2,
	    env: ENV });
	const { k, db, adminKey } = env;

	let r = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
	    body: { name: 'operator-laptop', role: 'admin' } });
	assert.equal(r.status, 201, `create key: ${r.text}`);
	const key = r.json.data;

	const s = await d.httpLogin(k, key.key);
	const other = await d.httpLogin(k, adminKey);

	/* Two pinned connections on each worker: one for a socket, one
	 * for requests. */
	const by = await d.pinBothWorkers(k, s.cookie);
	const workers = Object.keys(by);
	assert.equal(workers.length, 2, 'two workers reached');
	const sockets = {};
	for (const w of workers) {
		r = await sessionAdmin(by[w][1], s, `w${w}-before`);
		assert.equal(r.status, 201, `worker ${w}: the session is an ` +
		    `admin before the revocation: ${r.status} ${r.text}`);
		sockets[w] = await d.wsClient(k, { cookie: s.cookie,
		    socket: by[w][0].sock });
		assert.ok(!sockets[w].refused, `worker ${w}: socket opened`);
	}
	const bystander = await d.wsClient(k, { cookie: other.cookie });
	assert.ok(!bystander.refused, 'the other session has a socket');

	r = await a.call(k, 'DELETE', `/api/keys/${key.id}`,
	    { auth: adminKey });
	assert.equal(r.status, 200, `revoke: ${r.text}`);
	const revokedAt = Date.now();

	/* The very next request of the session, on each worker. */
	for (const w of workers) {
		r = await sessionAdmin(by[w][1], s, `w${w}-after`);
		assert.equal(r.status, 401, `worker ${w}: the revoked key's ` +
		    `session may still mint keys: ${r.status} ${r.text}`);
		r = await by[w][1].request('GET', '/dashboard',
		    { headers: { Cookie: s.cookie } });
		assert.equal(r.status, 303, `worker ${w}: the page of the ` +
		    `revoked key's session: ${r.status}`);
	}
	for (const w of workers) {
		await sockets[w].waitFor((c) => c.closed, 2000,
		    `worker ${w}: the revoked session's socket closed`);
		assert.ok(sockets[w].closed.at - revokedAt < 1500,
		    `worker ${w}: socket closed ` +
		    `${sockets[w].closed.at - revokedAt} ms after the revocation`);
	}

	/* The session row is gone; another session is untouched. */
	const rows = await db.pg.queryJson('SELECT count(*)::int AS n FROM ' +
	    `dashboard_sessions WHERE id_hash = '${d.sha256(s.token)}'`,
	    { db: db.name });
	assert.equal(rows[0].n, 0, 'the session row was deleted');
	const n = bystander.frames;
	await bystander.waitFor((c) => c.frames > n, 3000, 'more frames');
	assert.equal(bystander.closed, null, 'the other session lives on');
	r = await k.post('/api/keys', JSON.stringify({ name: 'still',
	    role: 'viewer' }), { headers: { Cookie: other.cookie,
	    'X-CSRF-Token': other.csrf, 'Content-Type': 'application/json' } });
	assert.equal(r.status, 201, `the other session: ${r.text}`);
	bystander.close();
	for (const w of workers)
		by[w].forEach((p) => p.sock.destroy());
});

/* Another instance on the same database hears of the revocation by
 * NOTIFY: its sessions of the key end within moments. */
test('revoking_a_key_ends_its_sessions_on_another_instance',
    { timeout: 120000 }, async () => {
	const db = await h.freshDb(pg, 'sess_instances');
	const masterKey = crypto.randomBytes(32).toString('base64');
	const env = Object.assign({ KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY }, ENV);
	const ka = await h.startKiln({ name: 'sess_inst_a',
	    databaseUrl: db.url, masterKey, workers: 1, env });
	const kb = await h.startKiln({ name: 'sess_inst_b',
	    databaseUrl: db.url, masterKey, workers: 1, env });

	let r = await a.call(ka, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name: 'elsewhere', role: 'admin' } });
	assert.equal(r.status, 201, `create key: ${r.text}`);
	const key = r.json.data;
	await h.waitFor(async () => (await a.call(kb, 'GET', '/api/keys',
	    { auth: key.key })).status === 200, { timeout: 5000,
	    what: 'instance b knows the new key' });
	const s = await d.httpLogin(kb, key.key);
	const c = await d.wsClient(kb, { cookie: s.cookie });
	assert.ok(!c.refused, 'socket on instance b');
	const pin = await d.pinned(kb.port);
	r = await sessionAdmin(pin, s, 'b-before');
	assert.equal(r.status, 201, `instance b, before: ${r.text}`);

	r = await a.call(ka, 'DELETE', `/api/keys/${key.id}`,
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 200, `revoke on instance a: ${r.text}`);
	const revokedAt = Date.now();
	let st;
	for (;;) {
		st = (await sessionAdmin(pin, s, 'b-after')).status;
		if (st !== 201 || Date.now() - revokedAt > 2000)
			break;
	}
	const took = Date.now() - revokedAt;
	assert.equal(st, 401, `instance b: the revoked key's session: ${st}`);
	assert.ok(took < 500, `instance b refused it after ${took} ms`);
	await c.waitFor((x) => x.closed, 1500, 'instance b closed the ' +
	    'revoked session\'s socket');
	pin.sock.destroy();
});

test('a_jwt_session_ends_at_the_jwt_exp', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'sess_jwt', { workers: 2, env: ENV });
	const { k } = env;

	/* exp is whole seconds: 3 s away from a whole second. */
	const nowS = Math.floor(Date.now() / 1000);
	const tok = await a.jwt('admin', { exp: 3 });
	const exp = (nowS + 3) * 1000;
	const s = await d.httpLogin(k, tok);
	const c = await d.wsClient(k, { cookie: s.cookie });
	assert.ok(!c.refused, 'socket opened');

	const wait = exp - Date.now() + 300;
	assert.ok(wait > 0, 'logged in before exp');
	await h.sleep(wait);

	let r = await k.get('/dashboard', { headers: { Cookie: s.cookie } });
	assert.equal(r.status, 303, `page after exp: ${r.status}`);
	assert.equal(r.headers.location, '/dashboard/login');
	r = await k.post('/api/keys', JSON.stringify({ name: 'late',
	    role: 'admin' }), { headers: { Cookie: s.cookie,
	    'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json' } });
	assert.equal(r.status, 401, `admin request after exp: ${r.status} ` +
	    r.text);
	await c.waitFor((x) => x.closed, 2000, 'the socket closed at exp');
	assert.ok(c.closed.at <= exp + 1500, `socket closed ` +
	    `${c.closed.at - exp} ms after exp`);

	/* A JWT already past its exp (within the bearer leeway) makes no
	 * session at all. */
	const late = await a.jwt('admin', { exp: -5 });
	const f = await k.get('/dashboard/login');
	const lc = d.cookieValue(f, 'kiln_login').value;
	r = await k.post('/dashboard/login', `csrf=${lc}&credential=` +
	    encodeURIComponent(late), { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${lc}` } });
	assert.equal(r.status, 401, `login with an expired JWT: ${r.status}`);
});

test('logins_are_rate_limited_per_address_and_logged_without_credential',
    { timeout: 60000 }, async () => {
	const LIMIT = 5;
	const env = await a.adminKiln(pg, 'sess_login_rate', { workers: 2,
	    env: { KILN_RATE_ANONYMOUS: String(LIMIT) } });
	const { k } = env;

	const f = await k.get('/dashboard/login');
	const lc = d.cookieValue(f, 'kiln_login').value;
	const bad = [];
	const out = [];
	let r;
	for (let i = 0; i < LIMIT * 3; i++) {
		const cred = i % 2 ? `kiln_${crypto.randomBytes(32)
		    .toString('base64url')}` : await a.jwt('admin',
		    { key: new TextEncoder().encode(`wrong-${i}`) });
		bad.push(cred);
		out.push(await k.post('/dashboard/login', `csrf=${lc}&` +
		    `credential=${encodeURIComponent(cred)}`, { headers: {
			'Content-Type': 'application/x-www-form-urlencoded',
			Cookie: `kiln_login=${lc}` } }));
	}
	const statuses = out.map((r) => r.status);
	assert.ok(statuses.slice(0, LIMIT).every((st) => st === 401),
	    `the first ${LIMIT} are refused as wrong: ${statuses}`);
	const limited = out.filter((r) => r.status === 429);
	assert.ok(limited.length >= LIMIT * 3 - LIMIT - 1,
	    `429 after the anonymous budget: ${statuses}`);
	for (const r of limited) {
		assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/,
		    'Retry-After');
	}

	/* A good credential is refused too while the address is over. */
	r = await k.post('/dashboard/login', `csrf=${lc}&credential=` +
	    encodeURIComponent(env.adminKey), { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${lc}` } });
	assert.equal(r.status, 429, `good credential over the limit: ` +
	    r.status);

	await h.sleep(300);
	const logs = k.logs();
	const refused = logs.split('\n').filter((l) =>
	    /login refused/.test(l));
	assert.ok(refused.length >= LIMIT, `refused logins are logged ` +
	    `(${refused.length})`);
	for (const cred of bad.concat([env.adminKey])) {
		for (const part of [cred, ...cred.split('.')]) {
			if (part.length >= 12)
				assert.ok(!logs.includes(part),
				    'the log shows a credential');
		}
	}
});

/* A Set-Cookie value in the head of a pinned connection's answer. */
function cookieOf(r, name)
{
	const m = new RegExp(`\r\nset-cookie:\\s*${name}=([^;\r]*)`, 'i')
	    .exec(r.head);
	return m ? m[1] : null;
}

/*
 * The login form on a pinned connection: GET it (its double-submit
 * cookie), and give back a function that POSTs a credential with it.
 */
async function loginForm(pin)
{
	const lc = cookieOf(await pin.request('GET', '/dashboard/login'),
	    'kiln_login');
	return (credential) => pin.request('POST', '/dashboard/login', {
		headers: { Cookie: `kiln_login=${lc}`, 'Content-Type':
		    'application/x-www-form-urlencoded' },
		body: `csrf=${lc}&credential=${encodeURIComponent(credential)}`,
	});
}

/*
 * Two workers, a key-only source kk, and two pinned connections on each
 * worker (one pinned connection answers one request at a time).
 */
async function twoWorkers(label)
{
	const env = await a.adminKiln(pg, label, { workers: 2, env: ENV,
	    sources: [{ name: 'kk', access: 'key' }] });
	await h.waitToken(env.k, 'kk', { headers:
	    { Authorization: `Bearer ${env.adminKey}` } });
	const s0 = await d.httpLogin(env.k, env.adminKey);
	const by = await d.pinBothWorkers(env.k, s0.cookie, { per: 2 });
	const [w0, w1] = Object.values(by);
	return Object.assign(env, { w0, w1, close: () => {
		for (const p of [...w0, ...w1])
			p.sock.destroy();
	} });
}

/*
 * An admin route and a key-only source's token, at once, on the two
 * pinned connections of a worker: both must answer 200.
 */
async function bothRoutes(pins, headers, what)
{
	const [list, tok] = await Promise.all([
		pins[0].request('GET', '/api/tokens', { headers }),
		pins[1].request('GET', '/api/tokens/kk/current-token',
		    { headers }),
	]);
	assert.equal(list.status, 200, `${what}: an admin route on the ` +
	    `other worker: ${list.status} ${list.text}`);
	assert.equal(tok.status, 200, `${what}: a key-only source's token ` +
	    `on the other worker: ${tok.status} ${tok.text}`);
	return `${list.status}/${tok.status}`;
}

/*
 * A session made on one worker is honoured on the other at once, before
 * its NOTIFY arrives: the request that brings its cookie first waits for
 * a session table loaded after it came (api.c), on an admin route and
 * on a public one alike. Logins alternate between two pinned workers;
 * the cookie goes to the other worker in the same millisecond.
 */
test('a_new_session_is_honoured_on_every_worker_at_once',
    { timeout: 120000 }, async () => {
	const { adminKey, w0, w1, close } = await twoWorkers('sess_fresh');
	const seen = [];
	for (let i = 0; i < 10; i++) {
		const [here, there] = i % 2 ? [w0, w1] : [w1, w0];
		const r = await (await loginForm(here[0]))(adminKey);
		assert.equal(r.status, 303, `login: ${r.text}`);
		seen.push(await bothRoutes(there, { Cookie:
		    `kiln_session=${cookieOf(r, 'kiln_session')}` },
		    `login ${i}`));
	}
	console.log(`# 10 fresh sessions on the other worker at once: ` +
	    seen.join(' '));
	close();
});

/*
 * The same for an API key: made on one worker (POST /api/keys), used on
 * the other in the same millisecond, on an admin route, on a key-only
 * source's token and in the dashboard's login form. A made-up key of
 * the same shape is refused once the worker's next table of keys does
 * not know it either, and remembered.
 */
test('a_new_key_works_on_every_worker_at_once', { timeout: 120000 },
    async () => {
	const { adminKey, w0, w1, close } = await twoWorkers('key_fresh');
	const newKey = async (pin, name) => {
		const r = await pin.request('POST', '/api/keys', {
			headers: { Authorization: `Bearer ${adminKey}`,
			    'Content-Type': 'application/json' },
			body: JSON.stringify({ name, role: 'viewer' }),
		});
		assert.equal(r.status, 201, `create: ${r.text}`);
		return JSON.parse(r.text).data.key;
	};
	const seen = [];
	for (let i = 0; i < 10; i++) {
		const [here, there] = i % 2 ? [w0, w1] : [w1, w0];
		const key = await newKey(here[0], `fresh-${i}`);
		seen.push(await bothRoutes(there, { Authorization:
		    `Bearer ${key}` }, `key ${i}`));
	}
	console.log(`# 10 new keys used on the other worker at once: ` +
	    seen.join(' '));

	/* a dashboard login with a key made a moment ago elsewhere */
	for (let i = 0; i < 10; i++) {
		const [here, there] = i % 2 ? [w0, w1] : [w1, w0];
		const login = await loginForm(there[0]);
		const r = await login(await newKey(here[0], `login-${i}`));
		assert.equal(r.status, 303, `login ${i} with a new key on ` +
		    `the other worker: ${r.status} ${r.text}`);
		assert.match(r.head, /\r\nlocation: \/dashboard\r\n/i);
	}

	/* a made-up key: 401 after one reload, then at once */
	const fake = { Authorization: 'Bearer kiln_' +
	    crypto.randomBytes(32).toString('base64url') };
	const times = [];
	for (let i = 0; i < 4; i++) {
		const t0 = Date.now();
		const r = await w0[0].request('GET', '/api/tokens',
		    { headers: fake });
		times.push(Date.now() - t0);
		assert.equal(r.status, 401, `made-up key: ${r.text}`);
	}
	console.log(`# a made-up key, 4 times on one worker: ` +
	    `${times.join(', ')} ms`);
	/* (not remembered, each would wait for the next reload: ~240 ms
	 * after the last, as they come back to back) */
	assert.ok(times.slice(1).every((t) => t < 150),
	    `a key seen to be nobody's is refused at once: ${times}`);
	close();
});

/*
 * A flood of made-up keys of kiln's shape (each new) costs a reload of
 * the keys now and then, not a query per request.
 */
test('made_up_keys_cost_no_query_per_request', { timeout: 120000 },
    async () => {
	const { k, db } = await a.adminKiln(pg, 'key_bogus', { workers: 2,
	    env: ENV, sources: [{ name: 'kk', access: 'key' }] });
	const N = 500;

	const before = await xacts(db);
	const t0 = Date.now();
	const out = await flood(N, 50, (i) => k.get(i % 2 ?
	    '/api/tokens' : '/api/tokens/kk/current-token', { headers: {
	    Authorization: 'Bearer kiln_' +
	    crypto.randomBytes(32).toString('base64url') } }));
	for (const r of out)
		assert.equal(r.status, 401, `made-up key: ${r.status}`);
	const ms = Date.now() - t0;
	const after = await xacts(db);
	const idle = await idleXacts(db, after, ms);
	console.log(`# ${N} requests with made-up keys in ${ms} ms: ` +
	    `${after - before} transactions (idle as long: ${idle})`);
	/* at most 4 reloads a second on each worker, and some slack */
	assert.ok(after - before - idle <= 2 * 4 * Math.ceil(ms / 1000) + 10,
	    `${N} requests with made-up keys cost ${after - before} ` +
	    `transactions (idle ${idle})`);
});

test('a_bogus_session_cookie_costs_no_query_per_request',
    { timeout: 120000 }, async () => {
	const env = await a.adminKiln(pg, 'sess_bogus', { workers: 2,
	    env: ENV });
	const { k, db } = env;
	const N = 500;

	/* (xacts waits until both workers have loaded their tables.) */
	const before = await xacts(db);
	const same = `kiln_session=${crypto.randomBytes(32).toString('hex')}`;
	const t0 = Date.now();
	/* A stale cookie over and over (page and API), and cookies never
	 * seen before, many at a time. */
	const out = await flood(N * 4 / 5, 10, (i) => k.get(i % 2 ?
	    '/dashboard' : '/api/tokens', { headers: { Cookie: same } }));
	out.push(...await flood(N / 5, 50, () => k.get('/dashboard',
	    { headers: { Cookie: 'kiln_session=' +
	    crypto.randomBytes(32).toString('hex') } })));
	for (const r of out) {
		assert.ok(r.status === 303 || r.status === 401,
		    `bogus cookie: ${r.status}`);
	}
	const ms = Date.now() - t0;
	const after = await xacts(db);
	console.log(`# ${N} requests with bogus session cookies in ${ms} ms: ` +
	    `${after - before} transactions (idle as long: ` +
	    `${await idleXacts(db, after, ms)})`);
	assert.ok(after - before < N / 5, `${N} requests with a bogus ` +
	    `session cookie cost ${after - before} transactions`);
});

test('health_detailed_costs_no_query_per_request', { timeout: 120000 },
    async () => {
	const env = await a.adminKiln(pg, 'sess_health', { workers: 2,
	    env: ENV });
	const { k, db } = env;
	const N = 500;

	const before = await xacts(db);
	const t0 = Date.now();
	const out = await flood(N, 10, () => k.get('/health/detailed'));
	const ms = Date.now() - t0;
	for (const r of out)
		assert.equal(r.status, 200, `/health/detailed: ${r.text}`);
	const after = await xacts(db);
	console.log(`# ${N} GET /health/detailed in ${ms} ms: ` +
	    `${after - before} transactions (idle as long: ` +
	    `${await idleXacts(db, after, ms)})`);
	assert.ok(after - before < N / 5, `${N} GET /health/detailed cost ` +
	    `${after - before} transactions`);
	for (const r of out)
		assert.equal(r.json.checks.database.status, 'healthy');
});
