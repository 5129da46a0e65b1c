'use strict';

/*
 * Admin authentication (issue 3, DESIGN "HTTP surface"): bearer JWTs
 * HS256 with pinned alg and checked exp/nbf/iss/aud and role, minted by
 * npm jose; API keys created through the API, shown once, stored as
 * SHA-256 only, revocable.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

/* Bad credentials share the anonymous bucket (10/min per IP): this file
 * sends more than that on purpose, so the anonymous limit is raised. */
const ENV = { KILN_RATE_ANONYMOUS: '100000' };

function assert401(r, what)
{
	a.assertError(r, 401, what, { code: 'unauthorized' });
	assert.match(String(r.headers['www-authenticate']), /^Bearer\b/,
	    `${what}: WWW-Authenticate: Bearer`);
}

function assert403(r, what)
{
	a.assertError(r, 403, what, { code: 'forbidden' });
}

function sha256(s)
{
	return crypto.createHash('sha256').update(s).digest('hex');
}

test('jwt_roles_get_the_right_access', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'auth_roles', {
		sources: [{ name: 'alpha' }, { name: 'beta' }], env: ENV });
	const { k, idp } = env;
	await h.waitToken(k, 'alpha');
	await h.waitToken(k, 'beta');

	const viewer = await a.jwt('viewer');
	const operator = await a.jwt('operator');
	const admin = await a.jwt('admin');
	const newSource = {
		name: 'gamma',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'gamma',
		client_secret: h.secret('gamma'),
	};

	const reads = [
		['GET', '/api/tokens'],
		['GET', '/api/tokens/alpha'],
		['GET', '/api/tokens/alpha/events'],
		['GET', '/api/prewarming/status'],
	];
	/* Routes only an admin may use (checked before the body). */
	const adminOnly = [
		['POST', '/api/tokens', newSource],
		['PATCH', '/api/tokens/alpha', { scope: 'x' }],
		['DELETE', '/api/tokens/alpha'],
		['GET', '/api/keys'],
		['POST', '/api/keys', { name: 'x', role: 'viewer' }],
		['DELETE', '/api/keys/1'],
	];
	const operatorOk = [
		['POST', '/api/tokens/alpha/refresh', null, 202],
		['POST', '/api/prewarming/refresh?token=beta', null, 200],
		['POST', '/api/prewarming/stop', null, 200],
		['POST', '/api/prewarming/start', null, 200],
		['POST', '/api/prewarming/stop?token=beta', null, 200],
		['POST', '/api/prewarming/start?token=beta', null, 200],
	];

	for (const [m, p] of reads) {
		for (const [role, tok] of [['viewer', viewer],
		    ['operator', operator], ['admin', admin]]) {
			const r = await a.call(k, m, p, { auth: tok });
			assert.equal(r.status, 200, `${role} ${m} ${p}: ` +
			    `${r.status} ${r.text}`);
			assert.equal(r.json.success, true, `${role} ${m} ${p}`);
		}
	}

	/* viewer: reads only. */
	for (const [m, p, body] of [...operatorOk, ...adminOnly]) {
		assert403(await a.call(k, m, p, { auth: viewer,
		    body: body || undefined }), `viewer ${m} ${p}`);
	}
	/* operator: refresh, start/stop, reads; not the admin routes. */
	for (const [m, p, body] of adminOnly) {
		assert403(await a.call(k, m, p, { auth: operator,
		    body: body || undefined }), `operator ${m} ${p}`);
	}
	for (const [m, p, , status] of operatorOk) {
		const r = await a.call(k, m, p, { auth: operator });
		assert.equal(r.status, status, `operator ${m} ${p}: ` +
		    `${r.status} ${r.text}`);
		assert.equal(r.json.success, true, `operator ${m} ${p}`);
	}
	/* Nothing an operator or viewer tried changed a source. */
	const list = await a.call(k, 'GET', '/api/tokens', { auth: admin });
	assert.deepEqual(list.json.data.map((s) => s.name).sort(),
	    ['alpha', 'beta']);
	assert.equal(list.json.data.find((s) => s.name === 'alpha').scope,
	    null, 'the PATCH of the operator changed nothing');

	/* admin: everything. */
	for (const [m, p, , status] of operatorOk) {
		const r = await a.call(k, m, p, { auth: admin });
		assert.equal(r.status, status, `admin ${m} ${p}: ${r.text}`);
	}
	let r = await a.call(k, 'POST', '/api/tokens', { auth: admin,
	    body: newSource });
	assert.equal(r.status, 201, `admin create: ${r.text}`);
	r = await a.call(k, 'PATCH', '/api/tokens/gamma', { auth: admin,
	    body: { scope: 'read' } });
	assert.equal(r.status, 200, `admin patch: ${r.text}`);
	assert.equal(r.json.data.scope, 'read');
	r = await a.call(k, 'GET', '/api/keys', { auth: admin });
	assert.equal(r.status, 200, `admin keys: ${r.text}`);
	r = await a.call(k, 'POST', '/api/keys', { auth: admin,
	    body: { name: 'from-jwt', role: 'viewer' } });
	assert.equal(r.status, 201, `admin key create: ${r.text}`);
	r = await a.call(k, 'DELETE', `/api/keys/${r.json.data.id}`,
	    { auth: admin });
	assert.equal(r.status, 200, `admin key revoke: ${r.text}`);
	r = await a.call(k, 'DELETE', '/api/tokens/gamma', { auth: admin });
	assert.equal(r.status, 200, `admin delete: ${r.text}`);

	/* aud as an array that holds ours; exp and nbf within the
	 * 30 s leeway; lower-case scheme. */
	const fine = [
		['aud array', await a.jwt('viewer', { aud: ['other',
		    a.AUDIENCE] })],
		['expired 10 s ago (leeway)', await a.jwt('viewer',
		    { exp: -10 })],
		['nbf in 10 s (leeway)', await a.jwt('viewer', { nbf: 10 })],
		['no typ header', await a.jwt('viewer', { typ: null })],
	];
	for (const [what, tok] of fine) {
		r = await a.call(k, 'GET', '/api/tokens', { auth: tok });
		assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
	}
});

test('bad_jwts_are_401', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'auth_bad_jwt', {
		sources: [{ name: 'alpha' }], env: ENV });
	const { k } = env;
	await h.waitToken(k, 'alpha');

	const now = Math.floor(Date.now() / 1000);
	const claims = a.standardClaims('admin');
	const { privateKey: rsaKey, publicKey: rsaPub } =
	    await a.jose.generateKeyPair('RS256', { extractable: true });
	const otherSecret = new TextEncoder().encode(
	    `another-secret-${crypto.randomBytes(24).toString('hex')}`);
	const good = await a.jwt('admin');
	const [gh, gp, gs] = good.split('.');
	const flip = (s, i) => s.slice(0, i) +
	    (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
	const pemPub = await a.jose.exportSPKI(rsaPub);

	const cases = [
		['alg none, no signature', a.handJwt({ alg: 'none',
		    typ: 'JWT' }, claims)],
		['alg none, HMAC signature', a.handJwt({ alg: 'none' }, claims,
		    { hmac: 'sha256' })],
		['alg NONE', a.handJwt({ alg: 'NONE' }, claims)],
		['alg hs256 (lower case)', a.handJwt({ alg: 'hs256' }, claims,
		    { hmac: 'sha256' })],
		['HS512 with the secret', await a.jwt('admin',
		    { alg: 'HS512' })],
		['HS384 with the secret', await a.jwt('admin',
		    { alg: 'HS384' })],
		['RS256 with a real RSA key', await a.jwt('admin',
		    { alg: 'RS256', key: rsaKey })],
		['RS256 header, HMAC-SHA256 with the secret',
		    a.handJwt({ alg: 'RS256', typ: 'JWT' }, claims,
		    { hmac: 'sha256' })],
		['RS256 header, HMAC with the RSA public key PEM',
		    a.handJwt({ alg: 'RS256' }, claims, { hmac: 'sha256',
		    key: pemPub })],
		['HS256 signed with the RSA public key PEM',
		    a.handJwt({ alg: 'HS256' }, claims, { hmac: 'sha256',
		    key: pemPub })],
		['no alg', a.handJwt({ typ: 'JWT' }, claims,
		    { hmac: 'sha256' })],
		['alg array', a.handJwt({ alg: ['HS256'] }, claims,
		    { hmac: 'sha256' })],
		['typ JWE', a.handJwt({ alg: 'HS256', typ: 'JWE' }, claims,
		    { hmac: 'sha256' })],
		['expired (past the leeway)', await a.jwt('admin',
		    { exp: -120 })],
		['expired long ago', await a.jwt('admin', { exp: -86400 })],
		['no exp', await a.jwt('admin', { exp: null })],
		['exp as a string', a.handJwt({ alg: 'HS256' },
		    a.standardClaims('admin', { exp: String(now + 600) }),
		    { hmac: 'sha256' })],
		['not yet valid', await a.jwt('admin', { nbf: 120 })],
		['wrong aud', await a.jwt('admin', { aud: 'kiln-other' })],
		['aud array without ours', await a.jwt('admin',
		    { aud: ['a', 'b'] })],
		['no aud', await a.jwt('admin', { aud: null })],
		['wrong iss', await a.jwt('admin', { iss: 'evil' })],
		['no iss', await a.jwt('admin', { iss: null })],
		['bad signature (one character changed)',
		    `${gh}.${gp}.${flip(gs, 5)}`],
		['signed with another secret', await a.jwt('admin',
		    { key: otherSecret })],
		['payload swapped (viewer signature, admin claims)',
		    `${gh}.${a.b64u(a.standardClaims('admin',
		    { sub: 'x' }))}.${gs}`],
		['truncated signature', good.slice(0, -10)],
		['signature cut off', `${gh}.${gp}.`],
		['two parts', `${gh}.${gp}`],
		['four parts', `${good}.${gs}`],
		['header only', gh],
		['not base64url', `${gh}.${gp}.${gs}!!`],
		['padded base64', `${gh}.${gp}.${gs}==`],
		['role missing', await a.jwt(undefined)],
		['role root', await a.jwt('root')],
		['role Admin', await a.jwt('Admin')],
		['claims not an object', a.handJwt({ alg: 'HS256' }, '[1]',
		    { hmac: 'sha256' })],
		['api key that does not exist', `kiln_${crypto.randomBytes(32)
		    .toString('base64url')}`],
		['the JWT secret as a key', a.JWT_SECRET],
	];

	for (const [what, tok] of cases) {
		/* GET /api/keys is admin-only and changes nothing. */
		assert401(await a.call(k, 'GET', '/api/keys', { auth: tok }),
		    what);
	}
	/* Without credentials, or with another scheme. */
	assert401(await a.call(k, 'GET', '/api/tokens'), 'no credentials');
	for (const v of [`Basic ${Buffer.from('admin:admin')
	    .toString('base64')}`, 'Bearer', 'Bearer ', `Token ${good}`,
	    `${good}`]) {
		assert401(await k.get('/api/tokens', { headers:
		    { Authorization: v } }), `Authorization: ${v.slice(0, 20)}`);
	}
	/* A forged admin token cannot delete. */
	assert401(await a.call(k, 'DELETE', '/api/tokens/alpha',
	    { auth: cases[0][1] }), 'alg none DELETE');
	assert401(await a.call(k, 'DELETE', '/api/tokens/alpha',
	    { auth: cases[7][1] }), 'RS256-confused DELETE');
	const r = await a.call(k, 'GET', '/api/tokens/alpha', { auth: good });
	assert.equal(r.status, 200, 'alpha is still there');
	/* The good one still works. */
	assert.equal((await a.call(k, 'GET', '/api/keys',
	    { auth: good })).status, 200);
});

test('api_keys_created_used_listed_revoked', { timeout: 60000 },
    async () => {
	const env = await a.adminKiln(pg, 'auth_keys', {
		sources: [{ name: 'alpha' }], workers: 2, env: ENV });
	const { k, adminKey } = env;
	await h.waitToken(k, 'alpha');

	/* The bootstrap key is an admin key. */
	let r = await a.call(k, 'GET', '/api/keys', { auth: adminKey });
	assert.equal(r.status, 200, `bootstrap key: ${r.text}`);

	const made = {};
	for (const role of ['viewer', 'operator', 'admin']) {
		r = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
		    body: { name: `ci-${role}`, role } });
		assert.equal(r.status, 201, `create ${role}: ${r.text}`);
		const d = r.json.data;
		assert.equal(r.json.success, true);
		assert.ok(Number.isInteger(d.id), 'id');
		assert.equal(d.name, `ci-${role}`);
		assert.equal(d.role, role);
		assert.match(d.created_at, h.ISO_Z, 'created_at');
		assert.equal(typeof d.key, 'string');
		assert.ok(d.key.length >= 32, 'key has at least 32 chars');
		made[role] = d;
	}
	assert.equal(new Set(Object.values(made).map((d) => d.key)).size, 3,
	    'keys differ');

	/* Used: each key gets its role's access (every worker). */
	for (let i = 0; i < 6; i++) {
		r = await a.call(k, 'GET', '/api/tokens',
		    { auth: made.viewer.key });
		assert.equal(r.status, 200, `viewer key read: ${r.text}`);
	}
	assert403(await a.call(k, 'POST', '/api/tokens/alpha/refresh',
	    { auth: made.viewer.key }), 'viewer key refresh');
	r = await a.call(k, 'POST', '/api/tokens/alpha/refresh',
	    { auth: made.operator.key });
	assert.equal(r.status, 202, `operator key refresh: ${r.text}`);
	assert403(await a.call(k, 'DELETE', '/api/tokens/alpha',
	    { auth: made.operator.key }), 'operator key delete');
	r = await a.call(k, 'GET', '/api/keys', { auth: made.admin.key });
	assert.equal(r.status, 200, `admin key list: ${r.text}`);

	/* Listed without the secret. */
	const listed = r.json.data;
	assert.ok(Array.isArray(listed));
	for (const role of ['viewer', 'operator', 'admin']) {
		const e = listed.find((x) => x.id === made[role].id);
		assert.ok(e, `${role} key listed`);
		assert.equal(e.name, `ci-${role}`);
		assert.equal(e.role, role);
		assert.equal(e.revoked_at, null);
		assert.ok(!('key' in e), 'no key field');
		assert.ok(!('key_hash' in e), 'no key_hash field');
	}
	for (const d of Object.values(made)) {
		assert.ok(!r.text.includes(d.key), 'list has no key');
		assert.ok(!r.text.includes(sha256(d.key)),
		    'list has no key hash');
	}
	assert.ok(!r.text.includes(adminKey), 'list has no bootstrap key');

	/* Revoked: 401 on every worker, at once (NOTIFY reload). */
	r = await a.call(k, 'DELETE', `/api/keys/${made.viewer.id}`,
	    { auth: adminKey });
	assert.equal(r.status, 200, `revoke: ${r.text}`);
	assert.equal(r.json.success, true);
	await h.waitFor(async () => (await a.call(k, 'GET', '/api/tokens',
	    { auth: made.viewer.key })).status === 401,
	{ timeout: 2000, interval: 20, what: 'the revoked key refused' });
	for (let i = 0; i < 20; i++) {
		assert401(await a.call(k, 'GET', '/api/tokens',
		    { auth: made.viewer.key }), `revoked key, try ${i}`);
	}
	/* Revoking again, or an unknown id: 404. */
	a.assertError(await a.call(k, 'DELETE', `/api/keys/${made.viewer.id}`,
	    { auth: adminKey }), 404, 'revoke twice');
	a.assertError(await a.call(k, 'DELETE', '/api/keys/987654',
	    { auth: adminKey }), 404, 'revoke unknown');
	/* The others still work; the list shows the revocation. */
	r = await a.call(k, 'GET', '/api/keys', { auth: made.operator.key });
	assert403(r, 'operator key lists keys');
	r = await a.call(k, 'GET', '/api/keys', { auth: adminKey });
	const rv = r.json.data.find((x) => x.id === made.viewer.id);
	assert.ok(rv && typeof rv.revoked_at === 'string',
	    `revoked_at set: ${JSON.stringify(rv)}`);

	/* Revocation survives a restart. */
	await k.restart();
	assert401(await a.call(k, 'GET', '/api/tokens',
	    { auth: made.viewer.key }), 'revoked key after restart');
	r = await a.call(k, 'GET', '/api/tokens', { auth: made.operator.key });
	assert.equal(r.status, 200, `operator key after restart: ${r.text}`);
});

test('api_keys_stored_only_as_hashes', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'auth_hashes', {
		sources: [{ name: 'alpha' }], env: ENV });
	const { k, db, adminKey } = env;
	await h.waitToken(k, 'alpha');

	const keys = [adminKey];
	for (const role of ['viewer', 'operator', 'admin']) {
		const r = await a.call(k, 'POST', '/api/keys',
		    { auth: adminKey, body: { name: `h-${role}`, role } });
		assert.equal(r.status, 201, r.text);
		keys.push(r.json.data.key);
		/* used once, so any cache of it would be filled */
		await a.call(k, 'GET', '/api/tokens',
		    { auth: r.json.data.key });
	}

	const rows = await db.pg.queryJson('SELECT * FROM api_keys ' +
	    'ORDER BY id', { db: db.name });
	assert.equal(rows.length, 4, 'bootstrap plus three keys');
	const hashes = new Set(rows.map((x) => x.key_hash));
	for (const key of keys) {
		assert.ok(hashes.has(sha256(key)),
		    'the table has the SHA-256 hex of each key');
	}
	for (const row of rows) {
		assert.match(row.key_hash, /^[0-9a-f]{64}$/, 'hash is hex');
		const text = JSON.stringify(row);
		for (const key of keys) {
			assert.ok(!text.includes(key), 'no key in a row');
			assert.ok(!text.includes(key.slice(5, 25)),
			    'no part of a key in a row');
		}
	}

	/* Nowhere in the whole database, nor in the log. */
	const dump = await db.pg.dump(db.name);
	assert.ok(dump.includes(sha256(keys[1])), 'the dump is complete');
	for (const key of keys) {
		assert.ok(!dump.includes(key), 'no key in pg_dump');
		assert.ok(!dump.includes(Buffer.from(key).toString('base64')),
		    'no base64 key in pg_dump');
		assert.ok(!k.logs().includes(key), 'no key in the log');
	}
});
