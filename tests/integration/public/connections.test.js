'use strict';

/*
 * Connections: one token per (source, subject). Refresh tokens imported
 * for two people on one refresh_token source get their own tokens, kept
 * hot ahead of expiry with rotation; a scoped client key reaches only its
 * sources; a grant revoked at the upstream puts its connection in
 * needs_reauth after exactly one upstream call, its last token is served
 * until it expires, and a new import brings it back; a deleted connection
 * is served by no worker; a second instance serves what the first
 * imported; nothing of a token reaches the logs or pg_dump.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const { Pinned, workerOf } = require('../lib/http');

const pg = h.filePg();

const LIFETIME = 6;
const BUFFER = 3;

function path(src, subject, tail = '')
{
	return `/api/tokens/${src}/connections/${subject}${tail}`;
}

function connToken(k, src, subject, { auth = null, query = '' } = {})
{
	return a.call(k, 'GET', path(src, subject, `/current-token${query}`),
	    { auth });
}

async function waitConnToken(k, src, subject, o = {})
{
	return h.waitFor(async () => {
		const r = await connToken(k, src, subject, o);
		return r.status === 200 ? r : false;
	}, { timeout: o.timeout || 15000, interval: 100,
	    what: `a token for ${src}/${subject}` });
}

function refreshesWith(st, token)
{
	return st.requests.filter((q) => q.grant === 'refresh_token' &&
	    q.refresh_token_in === token);
}

async function setup(label, { workers = 2, instances = 1 } = {})
{
	const clientSecret = h.secret('conn-client');
	const seeds = { default: h.secret('seed-default'),
	    alice: h.secret('seed-alice'), bob: h.secret('seed-bob') };
	const otherSecret = h.secret('other-client');
	const idp = await h.startOAuth(['--lifetime', String(LIFETIME),
	    '--rotate', 'true',
	    '--client', `conn-client:${clientSecret}:refresh_token`,
	    '--client', `other:${otherSecret}:client_credentials`,
	    ...Object.values(seeds).flatMap((s) => ['--seed-refresh',
	    `conn-client:${s}`])]);
	const db = await h.freshDb(pg, label);
	const sources = [{
		name: 'fhir', kind: 'refresh_token', token_url: idp.tokenUrl,
		client_id: 'conn-client', client_secret: clientSecret,
		refresh_token: seeds.default, refresh_buffer: BUFFER,
		access: 'key',
	}, {
		name: 'other', kind: 'client_credentials',
		token_url: idp.tokenUrl, client_id: 'other',
		client_secret: otherSecret, access: 'key',
	}];
	const env = { KILN_JWT_SECRET: a.JWT_SECRET,
	    KILN_ADMIN_KEY: a.ADMIN_KEY };
	const ks = [];
	const first = await h.startKiln({ name: `${label}-a`,
	    databaseUrl: db.url, sources, workers, env });
	ks.push(first);
	for (let i = 1; i < instances; i++) {
		ks.push(await h.startKiln({ name: `${label}-${i}`,
		    databaseUrl: db.url, sourcesFile: first.sourcesFile,
		    masterKey: first.masterKey, workers, env }));
	}
	return { idp, db, ks, k: first, seeds };
}

async function key(k, name, sources)
{
	const r = await a.call(k, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name, role: 'client', sources } });
	assert.equal(r.status, 201, `key ${name}: ${r.text}`);
	return r.json.data.key;
}

function importConn(k, auth, subject, refreshToken, src = 'fhir')
{
	return a.call(k, 'POST', `/api/tokens/${src}/connections`,
	    { auth, body: { subject, refresh_token: refreshToken } });
}

test('connections_per_subject_refresh_reauth_delete', { timeout: 120000 },
    async () => {
	const { idp, db, k, seeds } = await setup('connections');
	const fhirKey = await key(k, 'fhir-only', ['fhir']);
	const otherKey = await key(k, 'other-only', ['other']);

	/* A key allowed only another source may not import nor read. */
	let r = await importConn(k, otherKey, 'alice', seeds.alice);
	a.assertError(r, 403, 'import with a key of another source');
	r = await importConn(k, a.ADMIN_KEY, 'bad subject!', seeds.alice);
	a.assertError(r, 400, 'import with a bad subject');
	r = await importConn(k, a.ADMIN_KEY, 'default', seeds.alice);
	a.assertError(r, 400, 'import over the default connection');
	r = await importConn(k, a.ADMIN_KEY, 'x'.repeat(129), seeds.alice);
	a.assertError(r, 400, 'import with a 129-character subject');

	/* The operator imports alice, a key of fhir imports bob. */
	r = await importConn(k, a.ADMIN_KEY, 'alice', seeds.alice);
	assert.equal(r.status, 201, r.text);
	assert.equal(r.json.success, true);
	assert.equal(r.json.data.subject, 'alice');
	assert.ok(['pending', 'active'].includes(r.json.data.state),
	    r.json.data.state);
	r = await importConn(k, fhirKey, 'bob@example.com', seeds.bob);
	assert.equal(r.status, 201, r.text);

	const ra = await waitConnToken(k, 'fhir', 'alice', { auth: fhirKey });
	const rb = await waitConnToken(k, 'fhir', 'bob@example.com',
	    { auth: fhirKey });
	const rd = await h.waitFor(async () => {
		const x = await a.call(k, 'GET', '/api/tokens/fhir/current-token',
		    { auth: fhirKey });
		return x.status === 200 ? x : false;
	}, { timeout: 15000, what: 'the default token' });
	assert.equal(ra.json.subject, 'alice');
	assert.equal(ra.json.agent_name, 'fhir');
	assert.equal(rb.json.subject, 'bob@example.com');
	assert.equal(rd.json.subject, undefined, 'default has no subject');
	assert.equal(ra.json.valid, true);
	assert.notEqual(ra.json.token, rb.json.token);
	assert.notEqual(ra.json.token, rd.json.token);
	assert.notEqual(rb.json.token, rd.json.token);
	let st = await idp.stats();
	assert.ok(st.issued_access_tokens.includes(ra.json.token));
	assert.ok(st.issued_access_tokens.includes(rb.json.token));

	/* The connection route of "default" is the source's token. */
	r = await connToken(k, 'fhir', 'default', { auth: fhirKey });
	assert.equal(r.status, 200, r.text);

	/* Key access: no key 401, a key of another source 403. */
	r = await connToken(k, 'fhir', 'alice');
	a.assertError(r, 401, 'connection token without a key');
	r = await connToken(k, 'fhir', 'alice', { auth: otherKey });
	a.assertError(r, 403, 'connection token with another source\'s key');
	r = await connToken(k, 'fhir', 'nobody', { auth: fhirKey });
	a.assertError(r, 404, 'an unknown subject');
	r = await connToken(k, 'fhir', 'bad%20subject', { auth: fhirKey });
	a.assertError(r, 400, 'a bad subject in the path');

	/* Kept hot ahead of expiry, rotating: every read is a 200. */
	const gens = { alice: ra.json.generation, bob: rb.json.generation };
	const deadline = Date.now() + 2.2 * LIFETIME * 1000;
	while (Date.now() < deadline) {
		for (const s of ['alice', 'bob@example.com']) {
			const x = await connToken(k, 'fhir', s,
			    { auth: fhirKey });
			assert.equal(x.status, 200, `${s} hot: ${x.text}`);
			assert.ok(x.json.expires_in >= 1, `${s} not expired`);
		}
		await h.sleep(250);
	}
	const a2 = await connToken(k, 'fhir', 'alice', { auth: fhirKey });
	const b2 = await connToken(k, 'fhir', 'bob@example.com',
	    { auth: fhirKey });
	assert.ok(a2.json.generation >= gens.alice + 2,
	    `alice refreshed twice (${gens.alice} -> ${a2.json.generation})`);
	assert.ok(b2.json.generation >= gens.bob + 2,
	    `bob refreshed twice (${gens.bob} -> ${b2.json.generation})`);
	st = await idp.stats();
	assert.equal(st.reused_revoked_refresh_tokens, 0,
	    'every refresh spent the newest rotated refresh token');
	assert.equal(refreshesWith(st, seeds.alice).length, 1,
	    'the imported refresh token was spent once, then rotated');

	/* Listing: pages of 2 over default, alice, bob; state filter. */
	r = await importConn(k, fhirKey, 'carol', h.secret('never-valid'));
	assert.equal(r.status, 201, r.text);
	const seen = [];
	let cursor = null;
	for (let i = 0; i < 5; i++) {
		const q = `?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
		r = await a.call(k, 'GET', `/api/tokens/fhir/connections${q}`,
		    { auth: await a.jwt('viewer') });
		assert.equal(r.status, 200, r.text);
		assert.ok(r.json.data.connections.length <= 2);
		for (const c of r.json.data.connections) {
			seen.push(c.subject);
			for (const f of ['state', 'generation', 'expires_at',
			    'fingerprint', 'failures', 'last_error',
			    'created_at', 'updated_at'])
				assert.ok(f in c, `${f} listed`);
		}
		cursor = r.json.data.next_cursor;
		if (cursor === null)
			break;
	}
	assert.deepEqual(seen, ['alice', 'bob@example.com', 'carol',
	    'default']);
	/* carol's refresh token is unknown upstream: needs_reauth. */
	await h.waitFor(async () => {
		const x = await a.call(k, 'GET', path('fhir', 'carol'),
		    { auth: a.ADMIN_KEY });
		return x.json?.data?.state === 'needs_reauth';
	}, { timeout: 10000, what: 'carol in needs_reauth' });
	r = await a.call(k, 'GET',
	    '/api/tokens/fhir/connections?state=needs_reauth',
	    { auth: a.ADMIN_KEY });
	assert.deepEqual(r.json.data.connections.map((c) => c.subject),
	    ['carol']);
	r = await a.call(k, 'GET', '/api/tokens/fhir/connections?state=active',
	    { auth: a.ADMIN_KEY });
	assert.deepEqual(r.json.data.connections.map((c) => c.subject),
	    ['alice', 'bob@example.com', 'default']);
	r = await a.call(k, 'GET', '/api/tokens/fhir/connections?state=nope',
	    { auth: a.ADMIN_KEY });
	a.assertError(r, 400, 'an unknown state filter');

	/*
	 * Revoke bob's grant at the upstream. Without rotation his refresh
	 * token stays the one imported, so the test knows which to revoke.
	 */
	await idp.control({ rotate: false });
	const bob2 = h.secret('seed-bob2');
	await idp.control({ seed_refresh: [{ client_id: 'conn-client',
	    refresh_token: bob2 }] });
	r = await importConn(k, a.ADMIN_KEY, 'bob@example.com', bob2);
	assert.equal(r.status, 201, r.text);
	await h.waitFor(async () => refreshesWith(await idp.stats(), bob2)
	    .some((q) => q.status === 200), { timeout: 10000,
	    what: 'bob refreshed with the new import' });
	await idp.control({ revoke_refresh: [bob2] });
	const before = refreshesWith(await idp.stats(), bob2).length;
	const detail = await h.waitFor(async () => {
		const x = await a.call(k, 'GET', path('fhir', 'bob@example.com'),
		    { auth: a.ADMIN_KEY });
		return x.json?.data?.state === 'needs_reauth' ? x : false;
	}, { timeout: 3 * LIFETIME * 1000, interval: 100,
	    what: 'bob in needs_reauth' });
	assert.match(detail.json.data.last_error, /invalid_grant/);
	assert.ok(detail.json.data.events.some((e) => e.outcome ===
	    'failure' && /invalid_grant/.test(e.error)), 'event recorded');

	/* Served until it expires, with no retry and no on-demand call. */
	r = await connToken(k, 'fhir', 'bob@example.com', { auth: fhirKey });
	const lastExp = Date.parse(r.json.expires_at);
	if (lastExp > Date.now() + 1500) {
		assert.equal(r.status, 200, `served until expiry: ${r.text}`);
		r = await connToken(k, 'fhir', 'bob@example.com',
		    { auth: fhirKey, query: `?min_ttl=${LIFETIME - 1}` });
		assert.equal(r.status, 503, 'min_ttl on needs_reauth: 503');
		assert.ok(r.headers['retry-after']);
	}
	await h.sleep(Math.max(0, lastExp - Date.now()) + 1500);
	r = await connToken(k, 'fhir', 'bob@example.com', { auth: fhirKey });
	assert.equal(r.status, 503, `expired: ${r.text}`);
	assert.ok(r.headers['retry-after']);
	assert.equal(r.json.subject, 'bob@example.com');
	await h.sleep(1000);
	assert.equal(refreshesWith(await idp.stats(), bob2).length,
	    before + 1, 'exactly one upstream call after the revocation');

	/* A new import brings bob back. */
	const bob3 = h.secret('seed-bob3');
	await idp.control({ seed_refresh: [{ client_id: 'conn-client',
	    refresh_token: bob3 }] });
	r = await importConn(k, a.ADMIN_KEY, 'bob@example.com', bob3);
	assert.equal(r.status, 201, r.text);
	const rb3 = await waitConnToken(k, 'fhir', 'bob@example.com',
	    { auth: fhirKey });
	assert.notEqual(rb3.json.token, rb.json.token);
	r = await a.call(k, 'GET', path('fhir', 'bob@example.com'),
	    { auth: a.ADMIN_KEY });
	assert.equal(r.json.data.state, 'active');

	/*
	 * Delete: served by neither worker. Extra connections stay open
	 * until both workers are held: the accept lock goes to the worker
	 * with fewer connections.
	 */
	const pins = [];
	const extra = [];
	for (let i = 0; i < 12 && new Set(pins.map((p) => p.worker)).size < 2;
	    i++) {
		const p = await new Pinned(k.port).connect();
		const x = await p.request('GET',
		    path('fhir', 'alice', '/current-token'),
		    { headers: { Authorization: `Bearer ${fhirKey}` } });
		assert.equal(x.status, 200, x.text);
		p.worker = workerOf(x);
		if (!pins.some((q) => q.worker === p.worker))
			pins.push(p);
		else
			extra.push(p);
	}
	for (const p of extra)
		p.close();
	assert.equal(pins.length, 2, 'a connection to each worker');
	r = await a.call(k, 'DELETE', path('fhir', 'alice'),
	    { auth: await a.jwt('viewer') });
	a.assertError(r, 403, 'a viewer deletes');
	r = await a.call(k, 'DELETE', path('fhir', 'alice'),
	    { auth: a.ADMIN_KEY });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.subject, 'alice');
	for (const p of pins) {
		await h.waitFor(async () => (await p.request('GET',
		    path('fhir', 'alice', '/current-token'), { headers: {
		    Authorization: `Bearer ${fhirKey}` } })).status === 404,
		    { timeout: 5000, interval: 50,
		    what: `alice gone on worker ${p.worker}` });
		p.close();
	}
	r = await a.call(k, 'DELETE', path('fhir', 'alice'),
	    { auth: a.ADMIN_KEY });
	a.assertError(r, 404, 'deleting it again');

	/* Nothing of a refresh or access token in logs or pg_dump. */
	st = await idp.stats();
	const secrets = [...Object.values(seeds), bob2, bob3,
	    ...st.issued_refresh_tokens, ...st.issued_access_tokens];
	const dump = await db.pg.dump(db.name);
	const logs = k.logs();
	assert.ok(dump.includes('bob@example.com'), 'the dump has the rows');
	for (const s of secrets) {
		assert.ok(!dump.includes(s), 'no token in pg_dump');
		assert.ok(!logs.includes(s), 'no token in the logs');
	}
});

test('connections_two_instances', { timeout: 60000 }, async () => {
	const { ks, seeds } = await setup('conn2', { workers: 1,
	    instances: 2 });
	const [k1, k2] = ks;
	const fhirKey = await key(k1, 'fhir-only', ['fhir']);
	await h.waitFor(async () => (await connToken(k2, 'fhir', 'x',
	    { auth: fhirKey })).status === 404, { timeout: 10000,
	    what: 'the key known on the second instance' });

	const r = await importConn(k1, a.ADMIN_KEY, 'alice', seeds.alice);
	assert.equal(r.status, 201, r.text);
	const r2 = await waitConnToken(k2, 'fhir', 'alice', { auth: fhirKey });
	const r1 = await waitConnToken(k1, 'fhir', 'alice', { auth: fhirKey });
	assert.equal(r1.json.token, r2.json.token, 'one token for both');
	assert.equal(r2.json.subject, 'alice');
});
