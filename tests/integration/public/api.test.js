'use strict';

/*
 * The public current-token endpoint's promises (DESIGN "HTTP surface").
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

async function kilnWith(label, sources, opts = {})
{
	const db = await h.freshDb(pg, label);
	const k = await h.startKiln(Object.assign({ name: label,
	    databaseUrl: db.url, sources }, opts));
	return { db, k };
}

async function idpWith(lifetime, client, secret)
{
	return h.startOAuth(['--lifetime', String(lifetime),
	    '--client', `${client}:${secret}:client_credentials`]);
}

function assertJson404(r, what)
{
	assert.equal(r.status, 404, `${what}: status ${r.status} ${r.text}`);
	assert.match(String(r.headers['content-type']), /application\/json/i,
	    `${what}: JSON content type`);
	assert.ok(r.json && typeof r.json === 'object',
	    `${what}: JSON body (${r.text.slice(0, 100)})`);
}

test('unknown_or_malformed_name_is_404', { timeout: 60000 }, async () => {
	const secret = h.secret('n404');
	const idp = await idpWith(600, 'n404', secret);
	const { k } = await kilnWith('unknown_404', [{
		name: 'known',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'n404',
		client_secret: secret,
	}]);
	await h.waitToken(k, 'known');

	const names = [
		'does-not-exist',
		'a'.repeat(64),		/* well formed, unknown */
		'a'.repeat(65),		/* too long */
		'Known',		/* upper case */
		'KNOWN',
		'-known',		/* must start with [a-z0-9] */
		'_known',
		'known.json',
		'kn%20own',
		'kn%C3%B6wn',
		'kn:own',
		"kn'own",
	];
	for (const n of names) {
		const r = await k.get(`/api/tokens/${n}/current-token`);
		assertJson404(r, `GET ${n}`);
		assert.ok(!('token' in r.json) || r.json.token === undefined,
		    `${n}: no token in a 404`);
		const p = await k.reject(n, '000000000000');
		assertJson404(p, `POST rejected ${n}`);
	}
	/* The known one still answers. */
	assert.equal((await k.currentToken('known')).status, 200);
});

test('no_valid_token_is_503_with_retry_after', { timeout: 60000 },
    async () => {
	const secret = h.secret('n503');
	const idp = await idpWith(600, 'n503', secret);
	const closed = await h.freePort();
	const { k } = await kilnWith('no_valid_503', [
		{
			/* Nothing listens there. */
			name: 'nowhere',
			kind: 'client_credentials',
			token_url: `http://127.0.0.1:${closed}/token`,
			client_id: 'n503',
			client_secret: secret,
		},
		{
			/* The upstream refuses the credentials. */
			name: 'refused',
			kind: 'client_credentials',
			token_url: idp.tokenUrl,
			client_id: 'n503',
			client_secret: h.secret('wrong'),
		},
	], { env: { KILN_UPSTREAM_TIMEOUT: '3',
	    KILN_UPSTREAM_CONNECT_TIMEOUT: '2' } });
	/* Let the first attempts fail. */
	await h.waitFor(async () => (await idp.stats()).token_requests >= 1,
	    { timeout: 10000, what: 'the refused attempt' });
	await h.sleep(1000);

	for (const name of ['nowhere', 'refused']) {
		for (let i = 0; i < 3; i++) {
			const r = await k.currentToken(name);
			assert.equal(r.status, 503, `${name}: ${r.text}`);
			assert.ok(r.ms < 2000, `${name}: answered in ${r.ms} ms`);
			assert.match(String(r.headers['content-type']),
			    /application\/json/i);
			assert.equal(r.json.valid, false, `${name}: valid false`);
			assert.ok(!r.json.token, `${name}: no token`);
			const ra = r.headers['retry-after'];
			assert.ok(ra !== undefined, `${name}: Retry-After`);
			const secs = /^\d+$/.test(ra) ? Number(ra) :
			    (Date.parse(ra) - Date.now()) / 1000;
			assert.ok(secs >= 0 && secs <= 3600,
			    `${name}: Retry-After ${ra}`);
			if (/^\d+$/.test(ra))
				assert.ok(Number(ra) >= 1, 'Retry-After >= 1');
			await h.sleep(200);
		}
	}
});

test('min_ttl_forces_a_refresh', { timeout: 90000 }, async () => {
	const secret = h.secret('minttl');
	const idp = await idpWith(120, 'minttl', secret);
	const { k } = await kilnWith('min_ttl', [{
		name: 'ttl',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'minttl',
		client_secret: secret,
		refresh_buffer: 10,
	}]);
	const t0 = h.assertTokenBody(await h.waitToken(k, 'ttl'), 'ttl');
	assert.equal((await idp.stats()).token_requests, 1);

	/* A min_ttl the current token satisfies changes nothing. */
	const same = h.assertTokenBody(await k.currentToken('ttl',
	    { query: '?min_ttl=30' }), 'ttl');
	assert.equal(same.token, t0.token);
	assert.equal((await idp.stats()).token_requests, 1);

	await h.sleep(4000);
	const now = h.assertTokenBody(await k.currentToken('ttl'), 'ttl');
	assert.equal(now.token, t0.token);
	const want = now.expires_in + 2;	/* more than is left */
	const r = await k.currentToken('ttl', { query: `?min_ttl=${want}`,
	    timeout: 30000 });
	const b = h.assertTokenBody(r, 'ttl');
	assert.notEqual(b.token, t0.token, 'a new token');
	assert.ok(b.expires_in >= want,
	    `expires_in ${b.expires_in} >= min_ttl ${want}`);
	await h.sleep(500);
	const st = await idp.stats();
	assert.equal(st.token_requests, 2, 'exactly one more upstream call');
	assert.equal(st.issued_access_tokens.at(-1), b.token);
	assert.equal((await k.currentToken('ttl')).json.token, b.token);

	/* More than the upstream ever grants: 503 after a bounded wait. */
	const t1 = Date.now();
	const never = await k.currentToken('ttl', { query: '?min_ttl=3600',
	    timeout: 60000 });
	const waited = Date.now() - t1;
	assert.equal(never.status, 503, `min_ttl=3600: ${never.text}`);
	assert.equal(never.json.valid, false);
	assert.ok(waited <= 30000, `answered after ${waited} ms`);
	/* And the ordinary request still gets a valid token. */
	h.assertTokenBody(await k.currentToken('ttl'), 'ttl');
});

test('require_header_guard', { timeout: 60000 }, async () => {
	const secret = h.secret('guard');
	const idp = await idpWith(600, 'guard', secret);
	const base = {
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'guard',
		client_secret: secret,
	};
	const { k } = await kilnWith('require_header', [
		Object.assign({ name: 'guarded', require_header: true }, base),
		Object.assign({ name: 'open', require_header: false }, base),
	]);
	const hdr = { 'X-Kiln-Request': 'true' };
	const ok = h.assertTokenBody(await h.waitToken(k, 'guarded',
	    { headers: hdr }), 'guarded');

	for (const headers of [{}, { 'X-Kiln-Request': 'false' },
	    { 'X-Kiln-Request': 'yes' }, { 'X-Kiln-Requests': 'true' }]) {
		const r = await k.currentToken('guarded', { headers });
		const what = JSON.stringify(headers);
		assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
		assert.match(String(r.headers['content-type']),
		    /application\/json/i);
		assert.ok(r.json && typeof r.json === 'object', 'JSON body');
		assert.ok(!r.text.includes(ok.token), 'no token in a 403');
		const p = await k.reject('guarded', h.fingerprint(ok.token),
		    { headers });
		assert.equal(p.status, 403, `rejected ${what}: ${p.text}`);
		assert.ok(!p.text.includes(ok.token), 'no token in a 403');
	}
	/* The header name is case-insensitive, as HTTP says. */
	h.assertTokenBody(await k.currentToken('guarded',
	    { headers: { 'x-kiln-request': 'true' } }), 'guarded');
	/* The guard is per source. */
	h.assertTokenBody(await h.waitToken(k, 'open'), 'open');
	/* Nothing above made kiln refresh. */
	assert.equal((await idp.stats()).token_requests, 2);
});

test('cache_control_no_store', { timeout: 60000 }, async () => {
	const secret = h.secret('cache');
	const idp = await idpWith(600, 'cache', secret);
	const { k } = await kilnWith('cache_control', [{
		name: 'cached',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'cache',
		client_secret: secret,
	}]);
	const r = await h.waitToken(k, 'cached');
	const b = h.assertTokenBody(r, 'cached');
	assert.match(String(r.headers['cache-control']), /\bno-store\b/,
	    `GET Cache-Control: ${r.headers['cache-control']}`);
	const q = await k.currentToken('cached', { query: '?min_ttl=10' });
	assert.equal(q.status, 200);
	assert.match(String(q.headers['cache-control']), /\bno-store\b/);
	const p = await k.reject('cached', h.fingerprint(b.token));
	h.assertTokenBody(p, 'cached');
	assert.match(String(p.headers['cache-control']), /\bno-store\b/,
	    `rejected Cache-Control: ${p.headers['cache-control']}`);
	/* No CORS headers on the public endpoint. */
	const c = await k.currentToken('cached',
	    { headers: { Origin: 'http://evil.example' } });
	assert.equal(c.headers['access-control-allow-origin'], undefined);
});

test('health_reports_prewarming_state', { timeout: 60000 }, async () => {
	const secret = h.secret('health');
	const idp = await idpWith(600, 'health', secret);
	const src = {
		name: 'healthy',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'health',
		client_secret: secret,
	};
	const { k } = await kilnWith('health', [src]);
	await h.waitToken(k, 'healthy');
	const r = await k.get('/health');
	assert.equal(r.status, 200);
	assert.equal(r.json.status, 'healthy');
	assert.equal(r.json.service, 'kiln');
	assert.equal(r.json.authenticated, true);
	assert.equal(r.json.prewarming.active, true);
	const next = r.json.prewarming.next_refresh_in_minutes;
	assert.equal(typeof next, 'number');
	/* refresh_at = expires_at - min(300, 600/2) - jitter */
	assert.ok(next > 0 && next <= 5.1, `next refresh in ${next} min`);

	/* PREWARMING_ENABLED=false pauses the scheduler; /health says so. */
	const paused = await kilnWith('health_paused', [src],
	    { env: { PREWARMING_ENABLED: 'false' } });
	const p = await paused.k.get('/health');
	assert.equal(p.status, 200);
	assert.equal(p.json.service, 'kiln');
	assert.equal(p.json.prewarming.active, false);
	assert.equal(typeof p.json.authenticated, 'boolean');
	const pn = p.json.prewarming.next_refresh_in_minutes;
	assert.ok(pn === null || typeof pn === 'number');
});
