'use strict';

/*
 * A secret goes only to where it was given for (issue 10, section 3):
 * a change of a source's origin (scheme, host, port) must bring its
 * secrets again, through the admin API and through the sources file, and
 * a master key rotation re-seals every stored secret and token, so the
 * retired key can be dropped without breaking a source.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

/*
 * A tiny token endpoint of our own on a free port: records every request
 * (headers and body) and answers a token, so a source moved to it works.
 */
async function startCapture()
{
	const seen = [];
	let n = 0;
	const srv = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			seen.push({ method: req.method, url: req.url,
			    headers: req.headers,
			    body: Buffer.concat(chunks).toString('utf8') });
			const body = JSON.stringify({ access_token:
			    `captured-${++n}-${crypto.randomBytes(8)
			    .toString('hex')}`, token_type: 'Bearer',
			    expires_in: 600 });
			res.writeHead(200, { 'Content-Type':
			    'application/json' });
			res.end(body);
		});
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	const port = srv.address().port;
	const { onCleanup } = require('../lib/procs');
	onCleanup(() => new Promise((r) => srv.close(() => r())));
	return { seen, port, url: `http://127.0.0.1:${port}/oauth/token` };
}

/* Everything a capture server was sent, as one string. */
function captured(cap)
{
	return cap.seen.map((q) => JSON.stringify(q.headers) + q.body)
	    .join('\n');
}

function patch(env, name, body)
{
	return a.call(env.k, 'PATCH', `/api/tokens/${name}`,
	    { auth: env.adminKey, body });
}

function forceRefresh(env, name)
{
	return a.call(env.k, 'POST', `/api/tokens/${name}/refresh`,
	    { auth: env.adminKey });
}

test('patch_to_another_origin_needs_the_secrets_again',
    { timeout: 120000 }, async () => {
	const s = { cc: h.secret('tcc'), rtc: h.secret('trtc'),
	    seed: h.secret('tseed'), pwc: h.secret('tpwc'),
	    alice: h.secret('talice') };
	const idp = await h.startOAuth(['--lifetime', '600',
	    '--client', `tcc:${s.cc}:client_credentials`,
	    '--client', `trt:${s.rtc}:refresh_token`,
	    '--client', `tpw:${s.pwc}:password`,
	    '--user', `alice:${s.alice}`,
	    '--seed-refresh', `trt:${s.seed}`]);
	const env = await a.adminKiln(pg, 'trust_patch', { idp, sources: [
		{ name: 'cc', client_id: 'tcc', client_secret: s.cc },
		{ name: 'rt', kind: 'refresh_token', client_id: 'trt',
		    client_secret: s.rtc, refresh_token: s.seed },
		{ name: 'pw', kind: 'password', client_id: 'tpw',
		    client_secret: s.pwc, username: 'alice',
		    password: s.alice },
	] });
	for (const n of ['cc', 'rt', 'pw'])
		await h.waitToken(env.k, n);
	const cap = await startCapture();

	/* Only the URL moves: refused, each stored secret named. */
	const missing = {
		cc: ['client_secret'],
		rt: ['client_secret', 'refresh_token'],
		pw: ['client_secret', 'password'],
	};
	for (const [n, fields] of Object.entries(missing)) {
		const r = await patch(env, n, { token_url: cap.url });
		const b = a.assertError(r, 422, `PATCH ${n} to a new origin`);
		for (const f of fields)
			assert.ok(b.error.message.includes(f),
			    `${n}: "${b.error.message}" names ${f}`);
		for (const f of ['client_secret', 'refresh_token',
		    'password'].filter((x) => !fields.includes(x)))
			assert.ok(!b.error.message.includes(f),
			    `${n}: "${b.error.message}" names only ` +
			    'stored secrets');
	}
	/* Some secrets given, not all: the rest are named. */
	let r = await patch(env, 'rt', { token_url: cap.url,
	    refresh_token: h.secret('partial') });
	let b = a.assertError(r, 422, 'PATCH rt with only refresh_token');
	assert.match(b.error.message, /client_secret/);
	assert.doesNotMatch(b.error.message, /refresh_token/);
	/* Another port of the same host is another origin. */
	const u = new URL(idp.tokenUrl);
	r = await patch(env, 'cc', { token_url:
	    `${u.protocol}//${u.hostname}:${cap.port}${u.pathname}` });
	a.assertError(r, 422, 'PATCH cc to another port');
	/* http -> https of the same host:port is another origin. */
	r = await patch(env, 'cc', { token_url:
	    idp.tokenUrl.replace(/^http:/, 'https:') });
	a.assertError(r, 422, 'PATCH cc to https');

	for (const n of ['cc', 'rt', 'pw'])
		assert.equal((await forceRefresh(env, n)).status, 202);
	await h.sleep(3000);
	assert.equal(cap.seen.length, 0, 'nothing was sent to the new ' +
	    `origin: ${captured(cap)}`);
	for (const n of ['cc', 'rt', 'pw']) {
		r = await a.call(env.k, 'GET', `/api/tokens/${n}`,
		    { auth: env.adminKey });
		assert.equal(r.json.data.token_url, idp.tokenUrl,
		    `${n} still points at its upstream`);
	}

	/* The same origin (path, host case, default port): secrets kept. */
	const before = (await idp.stats()).token_requests;
	const same = {
		cc: { token_url: `${idp.tokenUrl}?moved=1` },
		rt: { token_url: idp.tokenUrl.replace('http://', 'HTTP://') },
		pw: { refresh_buffer: 45 },
	};
	let last = null;
	for (const [n, body] of Object.entries(same)) {
		r = await patch(env, n, body);
		assert.equal(r.status, 200, `PATCH ${n} in its origin: ` +
		    `${r.text}`);
		const gen = r.json.data.state.generation;
		assert.equal((await forceRefresh(env, n)).status, 202);
		const ok = await h.waitFor(async () => {
			const v = await a.call(env.k, 'GET',
			    `/api/tokens/${n}`, { auth: env.adminKey });
			last = v.json.data;
			return v.json.data.state.generation > gen &&
			    v.json.data.state.failures === 0;
		}, { timeout: 15000, what: n }).catch(() => false);
		assert.ok(ok, `${n} refreshed with its secrets: ` +
		    JSON.stringify(last));
	}
	const st = await idp.stats();
	assert.ok(st.token_requests >= before + 3);
	assert.ok(st.requests.slice(-3).every((q) => q.status === 200),
	    'the upstream took the kept secrets');

	/* The new origin with its secrets: accepted, and it works. */
	const fresh = { cc: h.secret('newcc'), rtc: h.secret('newrtc'),
	    seed: h.secret('newseed'), pwc: h.secret('newpwc'),
	    pw: h.secret('newpw') };
	const moves = {
		cc: { token_url: cap.url, client_secret: fresh.cc },
		rt: { token_url: cap.url, client_secret: fresh.rtc,
		    refresh_token: fresh.seed },
		pw: { token_url: cap.url, client_secret: fresh.pwc,
		    password: fresh.pw },
	};
	for (const [n, body] of Object.entries(moves)) {
		r = await patch(env, n, body);
		assert.equal(r.status, 200, `PATCH ${n} with secrets: ` +
		    `${r.text}`);
	}
	for (const n of ['cc', 'rt', 'pw'])
		await h.waitFor(async () => (await env.k.currentToken(n))
		    .json?.token?.startsWith('captured-'),
		    { timeout: 15000, what: `${n} served from the new origin` });
	const text = captured(cap);
	for (const [k, v] of Object.entries(fresh))
		assert.ok(text.includes(v), `new secret ${k} went to the ` +
		    'new origin');
	for (const [k, v] of Object.entries(s))
		assert.ok(!text.includes(v) && !text.includes(
		    encodeURIComponent(v)), `old secret ${k} never reached ` +
		    'the new origin');
});

test('sources_file_moving_origin_without_a_new_seed_stops_the_start',
    { timeout: 120000 }, async () => {
	const clientSecret = h.secret('frtc');
	const seed = h.secret('fseed');
	const idp = await h.startOAuth(['--lifetime', '600',
	    '--client', `frt:${clientSecret}:refresh_token`,
	    '--seed-refresh', `frt:${seed}`]);
	const db = await h.freshDb(pg, 'trust_file');
	const src = { name: 'filert', kind: 'refresh_token',
	    token_url: idp.tokenUrl, client_id: 'frt',
	    client_secret: clientSecret, refresh_token: seed };
	const k = await h.startKiln({ name: 'trust_file', databaseUrl: db.url,
	    sources: [src] });
	await h.waitToken(k, 'filert');
	const stored = (await idp.stats()).issued_refresh_tokens;
	await k.stop();

	/* The file moves the source; its seed is the old one. */
	const cap = await startCapture();
	fs.writeFileSync(k.sourcesFile, JSON.stringify({ sources: [
		Object.assign({}, src, { token_url: cap.url }) ] }));
	await k.start({ waitHealth: false });
	await h.waitFor(() => k.exited !== null, { timeout: 15000,
	    what: 'kiln to refuse the start' });
	assert.notEqual(k.exited.code, 0, 'the start failed');
	assert.match(k.tail(20), /filert/, 'the log names the source');
	assert.match(k.tail(20), /refresh_token/,
	    'the log names the secret to give again');
	await h.sleep(2000);
	assert.equal(cap.seen.length, 0,
	    `nothing went to the new origin: ${captured(cap)}`);

	/* A new seed for the new origin: kiln starts and spends it. */
	const newSeed = h.secret('fnewseed');
	fs.writeFileSync(k.sourcesFile, JSON.stringify({ sources: [
		Object.assign({}, src, { token_url: cap.url,
		refresh_token: newSeed }) ] }));
	await k.start();
	await h.waitFor(async () => (await k.currentToken('filert'))
	    .json?.token?.startsWith('captured-'),
	    { timeout: 15000, what: 'the token from the new origin' });
	const text = captured(cap);
	assert.ok(text.includes(newSeed), 'the new seed was spent');
	for (const v of [seed, ...stored])
		assert.ok(!text.includes(v), 'no old refresh token went to ' +
		    'the new origin');
});

function keyId(b64)
{
	return crypto.createHash('sha256').update(Buffer.concat([
	    Buffer.from('kiln-key-id:'), Buffer.from(b64, 'base64')]))
	    .digest('hex').slice(0, 8);
}

async function sealedBlobs(db)
{
	/* A source's secrets with its default token; a connection's own. */
	const rows = await db.pg.queryJson('SELECT s.name, t.subject, ' +
	    "CASE WHEN t.subject = 'default' THEN s.client_secret_sealed " +
	    'END AS client_secret_sealed, ' +
	    "CASE WHEN t.subject = 'default' THEN s.refresh_token_sealed " +
	    'ELSE t.refresh_token_sealed END AS refresh_token_sealed, ' +
	    "CASE WHEN t.subject = 'default' THEN s.password_sealed " +
	    'END AS password_sealed, t.token_sealed FROM token_sources s ' +
	    'JOIN tokens t ON t.source_id = s.id ORDER BY s.name, t.subject',
	    { db: db.name });
	const out = [];
	for (const r of rows) {
		const name = r.subject === 'default' ? r.name :
		    `${r.name}/${r.subject}`;
		for (const c of ['client_secret_sealed',
		    'refresh_token_sealed', 'password_sealed', 'token_sealed'])
			if (r[c] !== null)
				out.push({ name, col: c, blob: r[c] });
	}
	return out;
}

async function health(k)
{
	const r = await k.get('/health/detailed');
	return r.json;
}

test('key_rotation_reseals_everything_so_the_old_key_can_go',
    { timeout: 150000 }, async () => {
	const keyA = crypto.randomBytes(32).toString('base64');
	const keyB = crypto.randomBytes(32).toString('base64');
	const s = { cc: h.secret('kcc'), rtc: h.secret('krtc'),
	    seed: h.secret('kseed'), pwc: h.secret('kpwc'),
	    alice: h.secret('kalice'), bob: h.secret('kbob') };
	/* The upstream does not rotate refresh tokens: the stored one is
	 * never rewritten by a refresh. */
	const idp = await h.startOAuth(['--lifetime', '600', '--no-rotate',
	    '--client', `kcc:${s.cc}:client_credentials`,
	    '--client', `krt:${s.rtc}:refresh_token`,
	    '--client', `kpw:${s.pwc}:password`,
	    '--user', `alice:${s.alice}`,
	    '--seed-refresh', `krt:${s.seed}`,
	    '--seed-refresh', `krt:${s.bob}`]);
	const db = await h.freshDb(pg, 'trust_keys');
	const env = { KILN_ADMIN_KEY: h.secret('kadmin') };
	const sources = [
		{ name: 'kcc', kind: 'client_credentials',
		    token_url: idp.tokenUrl, client_id: 'kcc',
		    client_secret: s.cc },
		{ name: 'krt', kind: 'refresh_token', token_url: idp.tokenUrl,
		    client_id: 'krt', client_secret: s.rtc,
		    refresh_token: s.seed },
		{ name: 'kpw', kind: 'password', token_url: idp.tokenUrl,
		    client_id: 'kpw', client_secret: s.pwc, username: 'alice',
		    password: s.alice },
	];
	const k = await h.startKiln({ name: 'trust_keys', databaseUrl: db.url,
	    masterKey: keyA, sources, env });
	for (const src of sources)
		await h.waitToken(k, src.name);
	/* One made through the admin API too. */
	let r = await a.call(k, 'POST', '/api/tokens', { auth:
	    env.KILN_ADMIN_KEY, body: { name: 'kapi',
	    kind: 'client_credentials', token_url: idp.tokenUrl,
	    client_id: 'kcc', client_secret: s.cc } });
	assert.equal(r.status, 201, r.text);
	await h.waitToken(k, 'kapi');
	/* And a person's connection: its token and refresh token. */
	const bob = '/api/tokens/krt/connections/bob/current-token';
	r = await a.call(k, 'POST', '/api/tokens/krt/connections', { auth:
	    env.KILN_ADMIN_KEY, body: { subject: 'bob',
	    refresh_token: s.bob } });
	assert.equal(r.status, 201, r.text);
	await h.waitFor(async () => (await k.get(bob)).status === 200,
	    { timeout: 15000, what: "bob's token" });
	const idA = keyId(keyA);
	const idB = keyId(keyB);
	let blobs = await sealedBlobs(db);
	assert.equal(blobs.length, 12);
	assert.deepEqual(blobs.filter((x) => x.name === 'krt/bob')
	    .map((x) => x.col), ['refresh_token_sealed', 'token_sealed']);
	assert.ok(blobs.every((x) => x.blob.includes(`.${idA}.`)));
	await k.stop();

	/* Key B seals, key A is retired. */
	env.KILN_MASTER_KEY = keyB;
	env.KILN_MASTER_KEY_OLD = keyA;
	await k.start();
	await h.waitFor(async () => {
		const sec = (await health(k))?.checks?.secrets;
		return sec && sec.pass === 'done' &&
		    sec.rows_under_retired_keys === 0;
	}, { timeout: 20000, what: 'the re-seal pass to finish' });
	blobs = await sealedBlobs(db);
	assert.equal(blobs.length, 12);
	const left = blobs.filter((x) => !x.blob.includes(`.${idB}.`));
	assert.deepEqual(left.map((x) => `${x.name}.${x.col}`), [],
	    'every blob is under key B');
	const dump = await db.pg.dump(db.name);
	assert.ok(!dump.includes(`.${idA}.`), 'no blob under key A in ' +
	    'the dump');
	const m = await k.get('/metrics');
	assert.match(m.text, /^kiln_sealed_rows_retired_key 0$/m,
	    'the metric says no row is left under a retired key');
	await k.stop();

	/* Key A gone: every source still works, the refresh token too. */
	delete env.KILN_MASTER_KEY_OLD;
	await k.start();
	const before = (await idp.stats()).requests.length;
	for (const src of [...sources, { name: 'kapi' }]) {
		const cur = await h.waitToken(k, src.name);
		r = await a.call(k, 'POST', `/api/tokens/${src.name}/refresh`,
		    { auth: env.KILN_ADMIN_KEY });
		assert.equal(r.status, 202);
		await h.waitFor(async () => {
			const t = await k.currentToken(src.name);
			return t.status === 200 && t.json.token !==
			    cur.json.token;
		}, { timeout: 15000, what: `${src.name} refreshed under B` });
	}
	/* bob's token opens under B; asking for more than it has left
	 * refreshes it with his refresh token, re-sealed under B too. */
	const old = await k.get(bob);
	assert.equal(old.status, 200, old.text);
	r = await k.get(`${bob}?min_ttl=${old.json.expires_in + 1}`);
	assert.equal(r.status, 200, r.text);
	assert.notEqual(r.json.token, old.json.token);
	const st = await idp.stats();
	const after = st.requests.slice(before);
	const rt = after.filter((q) => q.grant === 'refresh_token');
	assert.ok(rt.length >= 2 && rt.every((q) => q.status === 200 &&
	    [s.seed, s.bob].includes(q.refresh_token_in)),
	    'the unrotated refresh tokens still open and work');
	assert.equal(rt.filter((q) => q.refresh_token_in === s.bob).length,
	    1, "bob's refresh token was used once");
	await h.waitFor(async () => (await health(k))?.checks?.secrets
	    ?.rows_under_retired_keys === 0, { timeout: 10000,
	    what: 'the count after the old key is gone' });
});

/* A blob as today's main sealed it: v1, name and field as its AD. */
function sealV1(keyB64, name, field, plain)
{
	const nonce = crypto.randomBytes(12);
	const c = crypto.createCipheriv('aes-256-gcm',
	    Buffer.from(keyB64, 'base64'), nonce);
	c.setAAD(Buffer.from(`kiln:${name}:${field}`));
	const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
	return `v1.${keyId(keyB64)}.` + Buffer.concat([nonce, ct,
	    c.getAuthTag()]).toString('base64');
}

test('secrets_sealed_by_an_older_kiln_open_and_get_bound',
    { timeout: 120000 }, async () => {
	const key = crypto.randomBytes(32).toString('base64');
	const s = { cc: h.secret('ocs'), rtc: h.secret('ortc'),
	    seed: h.secret('oseed') };
	const idp = await h.startOAuth(['--lifetime', '600', '--no-rotate',
	    '--client', `occ:${s.cc}:client_credentials`,
	    '--client', `ort:${s.rtc}:refresh_token`,
	    '--seed-refresh', `ort:${s.seed}`]);
	const db = await h.freshDb(pg, 'trust_v1');
	const env = { KILN_ADMIN_KEY: h.secret('oadmin') };
	const k = await h.startKiln({ name: 'trust_v1', databaseUrl: db.url,
	    masterKey: key, env, sources: [
		{ name: 'occ', kind: 'client_credentials',
		    token_url: idp.tokenUrl, client_id: 'occ',
		    client_secret: s.cc },
		{ name: 'ort', kind: 'refresh_token', token_url: idp.tokenUrl,
		    client_id: 'ort', client_secret: s.rtc,
		    refresh_token: s.seed },
	    ] });
	await h.waitToken(k, 'occ');
	await h.waitToken(k, 'ort');
	await k.stop();

	/* The rows as a database made by today's main holds them. */
	await db.pg.query(`UPDATE token_sources SET client_secret_sealed = ` +
	    `'${sealV1(key, 'occ', 'client_secret', s.cc)}' ` +
	    `WHERE name = 'occ'`, { db: db.name });
	await db.pg.query(`UPDATE token_sources SET client_secret_sealed = ` +
	    `'${sealV1(key, 'ort', 'client_secret', s.rtc)}', ` +
	    `refresh_token_sealed = ` +
	    `'${sealV1(key, 'ort', 'refresh_token', s.seed)}' ` +
	    `WHERE name = 'ort'`, { db: db.name });

	await k.start();
	await h.waitFor(async () => {
		const sec = (await health(k))?.checks?.secrets;
		return sec && sec.pass === 'done' &&
		    sec.rows_not_origin_bound === 0 &&
		    sec.rows_under_retired_keys === 0;
	}, { timeout: 20000, what: 'the old rows bound to their origin' });
	const blobs = (await sealedBlobs(db)).filter((x) =>
	    x.col !== 'token_sealed');
	assert.equal(blobs.length, 3);
	assert.deepEqual(blobs.filter((x) => !x.blob.startsWith(
	    `v2.${keyId(key)}.`)).map((x) => `${x.name}.${x.col}`), [],
	    'every secret is now bound to its origin');
	const m = await k.get('/metrics');
	assert.match(m.text, /^kiln_sealed_rows_unbound 0$/m);

	const before = (await idp.stats()).requests.length;
	for (const n of ['occ', 'ort']) {
		const cur = await h.waitToken(k, n);
		const r = await a.call(k, 'POST', `/api/tokens/${n}/refresh`,
		    { auth: env.KILN_ADMIN_KEY });
		assert.equal(r.status, 202);
		await h.waitFor(async () => (await k.currentToken(n)).json
		    ?.token !== cur.json.token, { timeout: 15000,
		    what: `${n} refreshed with its re-sealed secrets` });
	}
	const after = (await idp.stats()).requests.slice(before);
	assert.ok(after.length >= 2 && after.every((q) => q.status === 200));
	assert.ok(after.some((q) => q.refresh_token_in === s.seed));
});

test('a_secret_opens_only_for_the_origin_it_was_sealed_for',
    { timeout: 120000 }, async () => {
	const env = await a.adminKiln(pg, 'trust_ad', { sources: [
		{ name: 'adcc' } ] });
	await h.waitToken(env.k, 'adcc');
	const cap = await startCapture();

	/* The row moved behind kiln's back (not through the API). */
	await env.db.pg.query(`UPDATE token_sources SET token_url = ` +
	    `'${cap.url}' WHERE name = 'adcc'`, { db: env.db.name });
	const r = await forceRefresh(env, 'adcc');
	assert.equal(r.status, 202);
	await h.waitFor(async () => (await h.events(env.db, 'adcc'))
	    .some((e) => e.outcome === 'failure'), { timeout: 15000,
	    what: 'the refresh to fail' });
	await h.sleep(2000);
	assert.equal(cap.seen.length, 0, 'the secret sealed for the old ' +
	    `origin was not sent to the new one: ${captured(cap)}`);
	const ev = (await h.events(env.db, 'adcc')).filter((e) =>
	    e.outcome === 'failure');
	assert.match(ev.at(-1).error, /client_secret/);
	assert.ok(!captured(cap).includes(env.secrets.adcc));
});

test('a_refresh_token_given_during_a_refresh_is_kept',
    { timeout: 120000 }, async () => {
	const clientSecret = h.secret('racec');
	const seed = h.secret('raceseed');
	const given = h.secret('racegiven');
	const idp = await h.startOAuth(['--lifetime', '600',
	    '--client', `race:${clientSecret}:refresh_token`,
	    '--seed-refresh', `race:${seed}`,
	    '--seed-refresh', `race:${given}`]);
	const env = await a.adminKiln(pg, 'trust_race', { idp, sources: [
		{ name: 'race', kind: 'refresh_token', client_id: 'race',
		    client_secret: clientSecret, refresh_token: seed } ] });
	await h.waitToken(env.k, 'race');

	/* A slow refresh is in flight when a new refresh token is given. */
	await idp.control({ latency_ms: 2500 });
	const n = (await idp.stats()).requests.length;
	assert.equal((await forceRefresh(env, 'race')).status, 202);
	await h.waitFor(async () => (await idp.stats()).requests.length > n,
	    { timeout: 5000, interval: 20, what: 'the slow refresh' });
	const r = await patch(env, 'race', { refresh_token: given });
	assert.equal(r.status, 200, r.text);
	await h.waitFor(async () => {
		const st = await idp.stats();
		return st.requests.length > n && st.requests.slice(n)
		    .every((q) => q.status !== null);
	}, { timeout: 10000, what: 'the slow refresh to end' });
	await h.sleep(500);
	await idp.control({ latency_ms: 0 });

	/* The next refresh spends the token given, not the rotated one. */
	const m = (await idp.stats()).requests.length;
	await h.waitFor(async () => {
		await forceRefresh(env, 'race');
		return (await idp.stats()).requests.length > m;
	}, { timeout: 15000, interval: 1000, what: 'the next refresh' });
	const q = (await idp.stats()).requests[m];
	assert.equal(q.refresh_token_in, given,
	    'the refresh token given during the refresh was kept');
	assert.equal(q.status, 200);
});
