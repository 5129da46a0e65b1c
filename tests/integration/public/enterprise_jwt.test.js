'use strict';

/*
 * Signed JWTs against a real authorization server (issue 13, parts 1, 3
 * and 5): oidc-provider 8.8.1 (tests/upstream/oidc.js) authenticates
 * kiln by private_key_jwt, with a given RS256 key registered inline and
 * with an ES256 key kiln generated, registered by jwks_uri pointing at
 * kiln's jwks.json; a key rotation goes through without a failed
 * refresh; the RFC 7523 jwt-bearer grant, registered in the provider
 * and checked with jose, takes an assertion signed with a Google-shaped
 * service-account key file. Bad keys are refused with 422 naming the
 * field, and no private key or assertion is found in logs, events,
 * pg_dump or temporary files.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const d = require('../../browser/lib/dash');

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ROLLOVER = 4;
const STARTED = Date.now();

/* A generated key in the sources file (never refreshed). */
const GEN_SOURCE = {
	name: 'gen',
	kind: 'client_credentials',
	token_url: 'http://127.0.0.1:9/token',
	client_id: 'kiln-gen',
	auth_method: 'private_key_jwt',
	private_key: { generate: 'ES256' },
	enabled: false,
};

const pg = h.filePg();
let envP = null;

function rsaPair()
{
	return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/* A base64 line from the middle of a PEM: proof of the key's bytes. */
function pemChunk(pem)
{
	const lines = pem.split('\n').filter((l) => /^[A-Za-z0-9+/]{60,}$/
	    .test(l));
	return lines[Math.floor(lines.length / 2)].slice(8, 56);
}

async function thumbprint(jwk)
{
	const jose = await import('jose');
	return jose.calculateJwkThumbprint(jwk, 'sha256');
}

/*
 * One provider, one kiln on a port chosen first (the provider is told
 * the jwks_uri before kiln starts), and the keys the test made.
 */
function env()
{
	if (envP === null)
		envP = setup();
	return envP;
}

async function setup()
{
	const rs = rsaPair();
	const rsPem = rs.privateKey.export({ type: 'pkcs8', format: 'pem' });
	const rsJwk = rs.publicKey.export({ format: 'jwk' });
	rsJwk.kid = await thumbprint(rsJwk);
	rsJwk.alg = 'RS256';

	/* A service account as Google hands it out. */
	const saKey = rsaPair();
	const email = 'kiln-test@kiln-proj.iam.gserviceaccount.com';
	const saKid = crypto.randomBytes(20).toString('hex');
	const saJwk = Object.assign(saKey.publicKey.export({ format: 'jwk' }),
	    { kid: saKid, alg: 'RS256' });

	const kport = await h.freePort();
	const idp = await h.startOidc({
		ttl: 600,
		clients: [{
			client_id: 'kiln-rs',
			token_endpoint_auth_method: 'private_key_jwt',
			token_endpoint_auth_signing_alg: 'RS256',
			jwks: { keys: [rsJwk] },
			grant_types: ['client_credentials'],
		}, {
			client_id: 'kiln-es',
			token_endpoint_auth_method: 'private_key_jwt',
			token_endpoint_auth_signing_alg: 'ES256',
			jwks_uri: `http://127.0.0.1:${kport}/api/tokens/es/` +
			    'jwks.json',
			grant_types: ['client_credentials'],
		}, {
			client_id: 'kiln-gsa',
			token_endpoint_auth_method: 'none',
			grant_types: [JWT_BEARER],
		}],
		jwt_bearer: { keys: { [email]: saJwk } },
	});

	const sa = {
		type: 'service_account',
		project_id: 'kiln-proj',
		private_key_id: saKid,
		private_key: saKey.privateKey.export({ type: 'pkcs8',
		    format: 'pem' }),
		client_email: email,
		client_id: '104857600000000000001',
		auth_uri: 'https://accounts.google.com/o/oauth2/auth',
		token_uri: idp.tokenUrl,
		auth_provider_x509_cert_url:
		    'https://www.googleapis.com/oauth2/v1/certs',
		client_x509_cert_url: 'https://www.googleapis.com/robot/v1/' +
		    `metadata/x509/${encodeURIComponent(email)}`,
		universe_domain: 'googleapis.com',
	};

	const db = await h.freshDb(pg, 'ent_jwt');
	const k = await h.startKiln({
		name: 'ent-jwt',
		databaseUrl: db.url,
		port: kport,
		env: {
			KILN_ADMIN_KEY: a.ADMIN_KEY,
			KILN_KEY_ROLLOVER: String(ROLLOVER),
			RS_PEM: rsPem,
			GSA_JSON: JSON.stringify(sa),
		},
		sources: [{
			name: 'rs',
			kind: 'client_credentials',
			token_url: idp.tokenUrl,
			client_id: 'kiln-rs',
			auth_method: 'private_key_jwt',
			private_key: { env: 'RS_PEM' },
		}, {
			name: 'gsa',
			kind: 'jwt_bearer',
			client_id: 'kiln-gsa',
			service_account: { env: 'GSA_JSON' },
			scope: 'https://www.googleapis.com/auth/cloud-platform',
		}, GEN_SOURCE],
	});
	const admin = (method, p, body) => a.call(k, method, p,
	    { auth: a.ADMIN_KEY, body });
	return { idp, k, db, admin, rsPem, rsJwk, sa, saKid, email };
}

async function grantsOf(idp, clientId)
{
	return (await idp.stats()).grants.filter((g) =>
	    g.client_id === clientId);
}

async function waitGrant(idp, clientId, pred = () => true, what = '')
{
	return h.waitFor(async () => {
		const g = (await grantsOf(idp, clientId)).filter(pred);
		return g.length > 0 ? g[g.length - 1] : false;
	}, { timeout: 20000, what: `a grant for ${clientId} ${what}` });
}

async function jwks(k, name)
{
	const r = await k.get(`/api/tokens/${name}/jwks.json`);
	assert.equal(r.status, 200, r.text);
	assert.ok(!/"d"|PRIVATE|"p"|"q"/.test(r.text), `public only: ${r.text}`);
	return r;
}

/* The client assertion of RFC 7523 2.2 as the provider received it. */
function assertClientAssertion(g, clientId, tokenUrl, alg, kid)
{
	assert.equal(g.auth_method, 'private_key_jwt', 'enforced method');
	assert.equal(g.grant_type, 'client_credentials');
	const ca = g.client_assertion;
	assert.ok(ca && !ca.malformed, 'client_assertion sent');
	assert.equal(ca.header.alg, alg);
	assert.equal(ca.header.typ, 'JWT');
	assert.equal(ca.header.kid, kid);
	assert.equal(ca.claims.iss, clientId);
	assert.equal(ca.claims.sub, clientId);
	assert.equal(ca.claims.aud, tokenUrl);
	assert.ok(typeof ca.claims.jti === 'string' && ca.claims.jti.length >=
	    16, 'random jti');
	assert.ok(ca.claims.exp > ca.claims.iat &&
	    ca.claims.exp - ca.claims.iat <= 60, 'exp at most 60 s on');
}

test('private_key_jwt with a given RS256 key: the provider authenticates ' +
    'the client by that method', async () => {
	const e = await env();
	await h.waitToken(e.k, 'rs');

	const g = await waitGrant(e.idp, 'kiln-rs');
	assertClientAssertion(g, 'kiln-rs', e.idp.tokenUrl, 'RS256',
	    e.rsJwk.kid);

	/* Two assertions never share a jti. */
	await e.admin('POST', '/api/tokens/rs/refresh');
	await h.waitFor(async () => (await grantsOf(e.idp, 'kiln-rs'))
	    .length >= 2, { timeout: 20000, what: 'a second grant' });
	const jtis = (await grantsOf(e.idp, 'kiln-rs')).map((x) =>
	    x.client_assertion.claims.jti);
	assert.equal(new Set(jtis).size, jtis.length, 'jti unique');

	const v = await e.admin('GET', '/api/tokens/rs');
	assert.equal(v.status, 200, v.text);
	const d = v.json.data;
	assert.equal(d.auth_method, 'private_key_jwt');
	assert.deepEqual(d.key_ids, [e.rsJwk.kid]);
	assert.equal(d.signing_key_id, e.rsJwk.kid);
	assert.ok(!v.text.includes('PRIVATE KEY') &&
	    !v.text.includes(pemChunk(e.rsPem)), 'no key in the view');

	const j = (await jwks(e.k, 'rs')).json;
	assert.equal(j.keys.length, 1);
	assert.equal(j.keys[0].kty, 'RSA');
	assert.equal(j.keys[0].n, e.rsJwk.n);
	assert.equal(j.keys[0].e, e.rsJwk.e);
	assert.equal(j.keys[0].kid, e.rsJwk.kid, 'kid: RFC 7638 thumbprint');
	assert.equal(j.keys[0].use, 'sig');
});

test('private_key_jwt with a generated ES256 key registered by jwks_uri ' +
    'at kiln', async () => {
	const e = await env();
	const r = await e.admin('POST', '/api/tokens', {
		name: 'es',
		kind: 'client_credentials',
		token_url: e.idp.tokenUrl,
		client_id: 'kiln-es',
		auth_method: 'private_key_jwt',
		private_key: { generate: 'ES256' },
	});
	assert.equal(r.status, 201, r.text);
	await h.waitToken(e.k, 'es');

	const jr = await jwks(e.k, 'es');
	assert.match(String(jr.headers['cache-control']),
	    /public, max-age=\d+/);
	const keys = jr.json.keys;
	assert.equal(keys.length, 1);
	assert.equal(keys[0].kty, 'EC');
	assert.equal(keys[0].crv, 'P-256');
	assert.equal(keys[0].alg, 'ES256');
	const kid = await thumbprint(keys[0]);
	assert.equal(keys[0].kid, kid, 'kid: RFC 7638 thumbprint');

	/* The provider had only kiln's jwks.json to check it with. */
	const g = await waitGrant(e.idp, 'kiln-es');
	assertClientAssertion(g, 'kiln-es', e.idp.tokenUrl, 'ES256', kid);

	const v = (await e.admin('GET', '/api/tokens/es')).json.data;
	assert.equal(v.auth_method, 'private_key_jwt');
	assert.equal(v.key_generate, 'ES256');
	assert.equal(v.signing_key_id, kid);
});

test('a key rotation publishes both keys, switches after the rollover ' +
    'and drops the old key, with no failed refresh', async () => {
	const e = await env();
	await h.waitToken(e.k, 'es');
	const kid1 = (await e.admin('GET', '/api/tokens/es')).json.data
	    .signing_key_id;

	const r = await e.admin('POST', '/api/tokens/es/keys/rotate');
	assert.equal(r.status, 200, r.text);
	const activate = Date.parse(r.json.activate_at);
	assert.ok(activate > Date.now() - 1000, r.text);

	const both = (await jwks(e.k, 'es')).json.keys.map((x) => x.kid);
	assert.equal(both.length, 2, 'both keys published');
	assert.equal(both[0], kid1);
	const kid2 = both[1];
	assert.notEqual(kid2, kid1);

	/* A second rotation while one is under way is refused. */
	const again = await e.admin('POST', '/api/tokens/es/keys/rotate');
	a.assertError(again, 409, 'rotation under way');

	/* Before the rollover the old key still signs. */
	const n0 = (await grantsOf(e.idp, 'kiln-es')).length;
	await e.admin('POST', '/api/tokens/es/refresh');
	await h.waitFor(async () => (await grantsOf(e.idp, 'kiln-es'))
	    .length > n0, { timeout: 20000, what: 'a refresh' });
	const before = (await grantsOf(e.idp, 'kiln-es'))[n0];
	assert.equal(before.client_assertion.header.kid,
	    before.at < activate ? kid1 : kid2);

	/* The provider keeps jwks_uri a minute: let that minute pass. */
	await e.idp.jwksStale('kiln-es');
	await h.sleep(Math.max(0, activate - Date.now()) + 300);
	const n1 = (await grantsOf(e.idp, 'kiln-es')).length;
	await e.admin('POST', '/api/tokens/es/refresh');
	await h.waitFor(async () => (await grantsOf(e.idp, 'kiln-es'))
	    .length > n1, { timeout: 20000, what: 'a refresh after rollover' });
	const after = (await grantsOf(e.idp, 'kiln-es'))[n1];
	assertClientAssertion(after, 'kiln-es', e.idp.tokenUrl, 'ES256',
	    kid2);

	/* The old key goes after that first token with the new one. */
	await h.waitFor(async () => {
		const ks = (await jwks(e.k, 'es')).json.keys;
		return ks.length === 1 && ks[0].kid === kid2;
	}, { timeout: 10000, what: 'the old key dropped' });
	const v = (await e.admin('GET', '/api/tokens/es')).json.data;
	assert.deepEqual(v.key_ids, [kid2]);
	assert.equal(v.signing_key_id, kid2);

	const evs = await h.events(e.db, 'es');
	assert.ok(evs.length >= 3, `events ${evs.length}`);
	assert.deepEqual(evs.filter((x) => x.outcome !== 'success')
	    .map((x) => x.error), [], 'no failed refresh');
	const errs = (await e.idp.stats()).errors.filter((x) =>
	    x.client_id === 'kiln-es');
	assert.deepEqual(errs, [], 'the provider refused nothing');
	await h.waitToken(e.k, 'es');
});

test('jwt_bearer with a Google-shaped service-account key file: the ' +
    'provider verifies signature, aud and exp', async () => {
	const e = await env();
	await h.waitToken(e.k, 'gsa');

	const g = await waitGrant(e.idp, 'kiln-gsa');
	assert.equal(g.grant_type, JWT_BEARER);
	assert.equal(g.auth_method, 'none');
	const as = g.assertion;
	assert.equal(as.header.alg, 'RS256');
	assert.equal(as.header.kid, e.saKid, 'kid: private_key_id');
	assert.equal(as.claims.iss, e.email, 'iss: client_email');
	assert.equal(as.claims.sub, e.email);
	assert.equal(as.claims.aud, e.idp.tokenUrl, 'aud: token_uri');
	assert.equal(as.claims.scope,
	    'https://www.googleapis.com/auth/cloud-platform');
	assert.ok(as.claims.exp - as.claims.iat <= 3600 &&
	    as.claims.exp > as.claims.iat, 'exp at most an hour on');

	const v = (await e.admin('GET', '/api/tokens/gsa')).json.data;
	assert.equal(v.kind, 'jwt_bearer');
	assert.equal(v.issuer, e.email);
	assert.equal(v.token_url, e.idp.tokenUrl, 'token_url: token_uri');
	assert.deepEqual(v.key_ids, [e.saKid]);

	/* The same account signed by another key: the provider refuses,
	 * an ordinary failure with its event. */
	const other = rsaPair().privateKey.export({ type: 'pkcs8',
	    format: 'pem' });
	const r = await e.admin('POST', '/api/tokens', {
		name: 'gsa-forged',
		kind: 'jwt_bearer',
		client_id: 'kiln-gsa',
		service_account: JSON.stringify(Object.assign({}, e.sa,
		    { private_key: other })),
	});
	assert.equal(r.status, 201, r.text);
	const ev = await h.waitFor(async () => {
		const x = await h.events(e.db, 'gsa-forged');
		return x.length > 0 ? x[0] : false;
	}, { timeout: 20000, what: 'the forged attempt recorded' });
	assert.notEqual(ev.outcome, 'success');
	assert.equal(ev.http_status, 400);
	const refused = (await e.idp.stats()).errors.filter((x) =>
	    x.grant_type === JWT_BEARER);
	assert.ok(refused.some((x) => /signature/i.test(x.description)),
	    JSON.stringify(refused));
	await e.admin('DELETE', '/api/tokens/gsa-forged');
});

test('bad keys and algorithms are refused with 422 naming the field',
    async () => {
	const e = await env();
	const base = { name: 'bad', kind: 'client_credentials',
	    token_url: e.idp.tokenUrl, client_id: 'kiln-rs',
	    auth_method: 'private_key_jwt' };
	const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
	    .privateKey.export({ type: 'pkcs8', format: 'pem' });
	const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' })
	    .privateKey.export({ type: 'sec1', format: 'pem' });
	const cases = [
		[{ private_key: 'not a pem' }, 'private_key'],
		[{ private_key: e.rsPem.slice(0, 300) }, 'private_key'],
		[{ private_key: e.rsPem.replace(/[A-Za-z]{8}/, 'AAAAAAAA') },
		    'private_key'],
		[{ private_key: p384 }, 'private_key'],
		[{ private_key: ec, assertion_alg: 'RS256' }, 'private_key'],
		[{ private_key: e.rsPem, assertion_alg: 'HS256' },
		    'assertion_alg'],
		[{ private_key: { generate: 'ES512' } }, 'private_key'],
		[{ private_key: { env: 'RS_PEM' } }, 'private_key'],
		[{}, 'private_key'],
		[{ private_key: e.rsPem, key_id: 'a,b' }, 'key_id'],
		[{ kind: 'jwt_bearer', auth_method: undefined,
		    service_account: '{"type":"service_account"}' },
		    'service_account'],
	];
	for (const [extra, field] of cases) {
		const body = Object.assign({}, base, extra);
		const r = await e.admin('POST', '/api/tokens', body);
		a.assertError(r, 422, `${JSON.stringify(extra).slice(0, 60)}`,
		    { code: 'invalid_field' });
		assert.ok(r.json.error.message.startsWith(`${field}:`),
		    r.json.error.message);
		assert.ok(!r.text.includes(pemChunk(e.rsPem)) &&
		    !r.text.includes('BEGIN'), 'no key echoed');
	}
	assert.equal((await e.admin('GET', '/api/tokens/bad')).status, 404);

	/* A PATCH keeps the stored key; one that moves the source to
	 * another origin must bring a key for it. */
	let r = await e.admin('PATCH', '/api/tokens/rs',
	    { refresh_buffer: 120 });
	assert.equal(r.status, 200, r.text);
	r = await e.admin('GET', '/api/tokens/rs');
	assert.deepEqual(r.json.data.key_ids, [e.rsJwk.kid]);
	r = await e.admin('PATCH', '/api/tokens/rs',
	    { token_url: 'http://127.0.0.2:9/token' });
	a.assertError(r, 422, 'origin move without a key',
	    { code: 'secret_required' });
	assert.match(r.json.error.message, /^private_key: required anew/);

	/* A given key replaces the generated one at once. */
	r = await e.admin('POST', '/api/tokens', Object.assign({}, base,
	    { name: 'swap', token_url: 'http://127.0.0.1:9/token',
	    private_key: { generate: 'ES256' } }));
	assert.equal(r.status, 201, r.text);
	r = await e.admin('PATCH', '/api/tokens/swap', { private_key: ec });
	assert.equal(r.status, 200, r.text);
	const ecKid = await thumbprint(crypto.createPublicKey(ec)
	    .export({ format: 'jwk' }));
	const sw = (await e.admin('GET', '/api/tokens/swap')).json.data;
	assert.deepEqual(sw.key_ids, [ecKid]);
	assert.equal(sw.key_generate, null);
	assert.deepEqual((await jwks(e.k, 'swap')).json.keys.map((x) =>
	    x.kid), [ecKid]);

	/* Moved with the same key, it is sealed again for the new origin. */
	const n = (await h.events(e.db, 'swap')).length;
	r = await e.admin('PATCH', '/api/tokens/swap',
	    { token_url: 'http://127.0.0.2:9/token', private_key: ec });
	assert.equal(r.status, 200, r.text);
	await h.waitFor(async () => (await h.events(e.db, 'swap')).length > n,
	    { timeout: 20000, what: 'an attempt after the move' });
	const last = (await h.events(e.db, 'swap'))[n];
	assert.doesNotMatch(String(last.error), /cannot be opened/);
	assert.match(String(last.error), /connect|refused|upstream/i);
	await e.admin('DELETE', '/api/tokens/swap');

	/* A given key is changed by giving another, not rotated. */
	a.assertError(await e.admin('POST', '/api/tokens/rs/keys/rotate'),
	    409, 'rotate a given key');
	a.assertError(await e.k.get('/api/tokens/nope/jwks.json'), 404,
	    'jwks of no source');
});

test('the dashboard shows the method and key ids, never a key',
    async () => {
	const e = await env();
	await h.waitToken(e.k, 'gsa');
	const kidEs = (await e.admin('GET', '/api/tokens/es')).json.data
	    .signing_key_id;
	const page = await d.httpLogin(e.k, a.ADMIN_KEY);
	const rows = d.tokenRows(page.html);
	const html = (n) => rows[n].html;
	assert.ok(rows.rs && rows.es && rows.gsa, Object.keys(rows).join());
	assert.match(html('rs'), new RegExp(`private_key_jwt kid <code>` +
	    `${e.rsJwk.kid}</code>`));
	assert.match(html('es'), new RegExp(`private_key_jwt kid <code>` +
	    `${kidEs}</code>`));
	assert.ok(html('gsa').includes('jwt_bearer<br><small ' +
	    `class="signing">kid <code>${e.saKid}</code>`), html('gsa'));
	assert.ok(!page.html.includes('PRIVATE KEY') &&
	    !page.html.includes(pemChunk(e.rsPem)) &&
	    !page.html.includes(pemChunk(e.sa.private_key)), 'no key shown');
});

test('a restart keeps every key, and a changed sources file keeps the ' +
    'key it had kiln generate', async () => {
	const e = await env();
	const ids = async () => {
		const out = {};
		for (const n of ['rs', 'es', 'gsa', 'gen']) {
			const r = await e.admin('GET', `/api/tokens/${n}`);
			assert.equal(r.status, 200, r.text);
			out[n] = r.json.data.key_ids;
		}
		return out;
	};
	const before = await ids();
	assert.equal(before.gen.length, 1);

	await e.k.restart();
	assert.deepEqual(await ids(), before, 'same keys after a restart');

	const file = JSON.parse(fs.readFileSync(e.k.sourcesFile, 'utf8'));
	file.sources.find((s) => s.name === 'gen').scope = 'changed';
	fs.writeFileSync(e.k.sourcesFile, JSON.stringify(file));
	await e.k.restart();
	const after = await ids();
	assert.equal((await e.admin('GET', '/api/tokens/gen')).json.data
	    .scope, 'changed', 'the file was applied');
	assert.deepEqual(after, before, 'same keys after a file change');
	await h.waitToken(e.k, 'rs');
	await h.waitToken(e.k, 'gsa');

	/* Moved to another origin, the source gets a key sealed for it. */
	const g = file.sources.find((s) => s.name === 'gen');
	g.token_url = 'http://127.0.0.2:9/token';
	g.enabled = true;
	fs.writeFileSync(e.k.sourcesFile, JSON.stringify(file));
	await e.k.restart();
	const moved = await ids();
	assert.equal(moved.gen.length, 1);
	assert.notDeepEqual(moved.gen, before.gen, 'a new key');
	await opensItsKey(e, 'gen');
});

/* The source's attempts reach the upstream: its key opened. */
async function opensItsKey(e, name)
{
	const ev = await h.waitFor(async () => {
		const x = await h.events(e.db, name);
		return x.length > 0 ? x[x.length - 1] : false;
	}, { timeout: 20000, what: `an attempt of ${name}` });
	assert.doesNotMatch(String(ev.error), /cannot be opened/, ev.error);
	assert.match(String(ev.error), /connect|refused|upstream/i, ev.error);
}

/* Every file under dir (bounded), changed since the test started. */
function filesUnder(dir, out = [], depth = 0)
{
	let ents;
	try {
		ents = fs.readdirSync(dir, { withFileTypes: true });
	} catch (e) {
		return out;
	}
	for (const d of ents) {
		const p = path.join(dir, d.name);
		if (d.isDirectory() && depth < 6)
			filesUnder(p, out, depth + 1);
		else if (d.isFile())
			out.push(p);
	}
	return out;
}

test('no private key or assertion in logs, events, pg_dump or temporary ' +
    'files', async () => {
	const e = await env();
	const st = await e.idp.stats();
	const needles = [pemChunk(e.rsPem), pemChunk(e.sa.private_key)];
	for (const g of st.grants) {
		for (const j of [g.client_assertion, g.assertion]) {
			if (j && j.sig_tail)
				needles.push(j.sig_tail);
		}
	}
	assert.ok(needles.length >= 6, `needles ${needles.length}`);
	const markers = ['PRIVATE KEY', ...needles];

	const hay = [
		['kiln log', e.k.logs()],
		['events', JSON.stringify(await e.db.pg.queryJson(
		    'SELECT * FROM refresh_events', { db: e.db.name }))],
		['pg_dump', await e.db.pg.dump(e.db.name)],
	];
	const dump = hay[2][1];
	assert.ok(/source_signing_keys/.test(dump), 'dump has the keys table');
	for (const [what, text] of hay) {
		for (const m of markers)
			assert.ok(!text.includes(m), `${what} holds ${m}`);
	}

	/* kiln's own directory and the system's temporary directory. */
	const files = [...filesUnder(e.k.dir), ...filesUnder(os.tmpdir())];
	let scanned = 0;
	for (const f of files) {
		let s;
		try {
			s = fs.statSync(f);
			if (s.mtimeMs < STARTED - 1000 || s.size > 8 << 20)
				continue;
			s = fs.readFileSync(f, 'latin1');
		} catch (err) {
			continue;
		}
		scanned++;
		for (const m of needles)
			assert.ok(!s.includes(m), `${f} holds key material`);
	}
	assert.ok(scanned > 0, 'some files scanned');
});
