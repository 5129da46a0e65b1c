'use strict';

/*
 * Issue 10, "A secret goes only to where it was given for": token
 * requests never reach link-local or cloud metadata addresses (checked
 * on the address connected to, whatever the URL spells), token_url is
 * shown without its credentials, and client keys can be scoped to some
 * sources.
 *
 * The upstreams here are small HTTP servers of the test that count the
 * connections they accept. A listener on a link-local address needs
 * 169.254.77.1 on lo (root); without it, those cases are left out and the
 * 0.0.0.0 forms (which Linux connects to the machine itself) carry the
 * check. The real metadata server (169.254.169.254) is never dialled.
 */

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const http = require('node:http');
const { test, after } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

const LINK_LOCAL = '169.254.77.1';
const LINK_LOCAL_DECIMAL = String((169 * 2 ** 24) + (254 * 2 ** 16) +
    (77 * 256) + 1);

/* Put 169.254.77.1 on lo when the sandbox lets us; false otherwise. */
function linkLocalAddress()
{
	try {
		execFileSync('ip', ['addr', 'add', `${LINK_LOCAL}/32`, 'dev',
		    'lo'], { stdio: 'ignore' });
	} catch (e) {
		return false;
	}
	after(() => {
		try {
			execFileSync('ip', ['addr', 'del', `${LINK_LOCAL}/32`,
			    'dev', 'lo'], { stdio: 'ignore' });
		} catch (e) {
			/* gone already */
		}
	});
	return true;
}
const haveLinkLocal = linkLocalAddress();

/* An upstream that counts connections and answers every POST a token. */
function catcher(host = '127.0.0.1')
{
	return new Promise((resolve, reject) => {
		const c = { connections: 0, bodies: [] };
		const srv = http.createServer((req, res) => {
			let body = '';
			req.on('data', (d) => {
				body += d;
			});
			req.on('end', () => {
				c.bodies.push(body);
				res.setHeader('Content-Type', 'application/json');
				res.end(JSON.stringify({ access_token:
				    `tok-${Math.random().toString(36).slice(2)}`,
				    token_type: 'Bearer', expires_in: 600 }));
			});
		});
		srv.on('connection', () => {
			c.connections++;
		});
		srv.on('error', reject);
		srv.listen(0, host, () => {
			c.port = srv.address().port;
			resolve(c);
		});
		h.procs.onCleanup(() => new Promise((r) => {
			srv.closeAllConnections();
			srv.close(() => r());
		}));
	});
}

/* name -> URL, for every spelling of a refused address we can serve. */
async function refusedSources()
{
	const urls = {};
	const any = await catcher('127.0.0.1');
	urls['zero-dotted'] = [`http://0.0.0.0:${any.port}/token`, any];
	urls['zero-decimal'] = [`http://0:${any.port}/token`, any];
	urls['zero-mapped'] = [`http://[::ffff:0.0.0.0]:${any.port}/token`,
	    any];
	if (haveLinkLocal) {
		const ll = await catcher(LINK_LOCAL);
		urls['ll-dotted'] = [`http://${LINK_LOCAL}:${ll.port}/token`, ll];
		urls['ll-decimal'] = [`http://${LINK_LOCAL_DECIMAL}:${ll.port}` +
		    '/token', ll];
		urls['ll-mapped'] = [`http://[::ffff:${LINK_LOCAL}]:${ll.port}` +
		    '/token', ll];
	}
	return urls;
}

function ccSource(name, url, secret)
{
	return { name, kind: 'client_credentials', token_url: url,
	    client_id: name, client_secret: secret };
}

test('upstream_metadata_addresses_refused_unless_allowed',
    { timeout: 90000 }, async () => {
	const secret = h.secret('addr-refused');
	const urls = await refusedSources();
	const loop = await catcher('127.0.0.1');
	const sources = Object.entries(urls).map(([n, [u]]) =>
	    ccSource(n, u, secret));
	sources.push(ccSource('loopback', `http://127.0.0.1:${loop.port}/token`,
	    secret));
	let db = await h.freshDb(pg, 'addr_refused');
	let k = await h.startKiln({ name: 'addr_refused', databaseUrl: db.url,
	    sources });

	/* Loopback stays allowed. */
	await h.waitToken(k, 'loopback');
	assert.ok(loop.bodies.some((b) => b.includes('client_id=loopback')),
	    'the loopback upstream got its request');

	for (const name of Object.keys(urls)) {
		const ev = await h.waitFor(async () => {
			const rows = await h.events(db, name);
			return rows.length > 0 ? rows : false;
		}, { timeout: 15000, what: `an event row for ${name}` });
		assert.equal(ev[0].outcome, 'failure', `${name}: outcome`);
		assert.match(String(ev[0].error), /address .* refused/,
		    `${name}: error says the address was refused`);
		assert.ok(!String(ev[0].error).includes(secret),
		    `${name}: no secret in the error`);
	}
	for (const [name, [, c]] of Object.entries(urls)) {
		assert.equal(c.connections, 0, `${name}: no connection made`);
		assert.equal(c.bodies.length, 0, `${name}: nothing sent`);
	}
	assert.ok(!k.logs().includes(secret), 'no secret in the logs');
	await k.stop();

	/* Listed in KILN_UPSTREAM_ALLOW, the same addresses are used. */
	db = await h.freshDb(pg, 'addr_allowed');
	k = await h.startKiln({ name: 'addr_allowed', databaseUrl: db.url,
	    sources, env: { KILN_UPSTREAM_ALLOW:
	    '0.0.0.0/8, 169.254.0.0/16' } });
	for (const name of Object.keys(urls))
		await h.waitToken(k, name);
	for (const [name, [, c]] of Object.entries(urls)) {
		assert.ok(c.bodies.some((b) => b.includes(`client_id=${name}`)),
		    `${name}: the listed address got the request`);
	}
});

test('upstream_allow_bad_cidr_stops_the_start', { timeout: 30000 },
    async () => {
	const db = await h.freshDb(pg, 'addr_bad_allow');
	await assert.rejects(h.startKiln({ name: 'addr_bad_allow',
	    databaseUrl: db.url, env: { KILN_UPSTREAM_ALLOW: '169.254.0.0/99' },
	    healthTimeout: 8000 }), /KILN_UPSTREAM_ALLOW/);
});

test('token_url_shown_without_userinfo_or_query_values', { timeout: 60000 },
    async () => {
	const pass = h.secret('urlpass');
	const qv = h.secret('urlquery');
	const idp = await h.startOAuth(['--lifetime', '600']);
	const url = `http://user:${pass}@127.0.0.1:${idp.port}/token` +
	    `?client_secret=${qv}&tenant=t1`;
	const env = await a.adminKiln(pg, 'url_redact', { idp,
	    sources: [{ name: 'creds', token_url: url }] });
	const { k } = env;

	for (const role of ['viewer', 'operator', 'admin']) {
		const tok = await a.jwt(role);
		for (const p of ['/api/tokens', '/api/tokens/creds']) {
			const r = await a.call(k, 'GET', p, { auth: tok });
			assert.equal(r.status, 200, `${role} ${p}: ${r.text}`);
			assert.ok(!r.text.includes(pass),
			    `${role} ${p}: no userinfo password`);
			assert.ok(!r.text.includes('user:'),
			    `${role} ${p}: no userinfo`);
			const d = Array.isArray(r.json.data) ? r.json.data[0] :
			    r.json.data;
			if (role === 'admin') {
				assert.equal(d.token_url, `http://127.0.0.1:` +
				    `${idp.port}/token?client_secret=${qv}` +
				    '&tenant=t1', 'admin: query kept');
			} else {
				assert.ok(!r.text.includes(qv),
				    `${role} ${p}: no query value`);
				assert.equal(d.token_url, `http://127.0.0.1:` +
				    `${idp.port}/token?client_secret=***` +
				    '&tenant=***', `${role}: query values hidden`);
			}
		}
	}
});

test('client_key_scoped_to_listed_sources', { timeout: 60000 }, async () => {
	const env = await a.adminKiln(pg, 'key_scope', { sources: [
		{ name: 'crm', access: 'key' },
		{ name: 'fhir', access: 'key' },
		{ name: 'erp', access: 'key' },
	] });
	const { k, adminKey } = env;
	const bearer = (key) => ({ Authorization: `Bearer ${key}` });

	let r = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
	    body: { name: 'scoped', role: 'client',
	    sources: ['crm', 'fhir'] } });
	assert.equal(r.status, 201, `scoped key: ${r.text}`);
	assert.deepEqual(r.json.data.sources, ['crm', 'fhir']);
	const scoped = r.json.data.key;
	r = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
	    body: { name: 'unscoped', role: 'client' } });
	assert.equal(r.status, 201, `unscoped key: ${r.text}`);
	assert.equal(r.json.data.sources, null);
	const unscoped = r.json.data.key;

	r = await a.call(k, 'GET', '/api/keys', { auth: adminKey });
	assert.equal(r.status, 200, r.text);
	const byName = Object.fromEntries(r.json.data.map((x) => [x.name, x]));
	assert.deepEqual(byName.scoped.sources, ['crm', 'fhir']);
	assert.equal(byName.unscoped.sources, null);

	for (const n of ['crm', 'fhir', 'erp'])
		await h.waitToken(k, n, { headers: bearer(unscoped) });

	for (const n of ['crm', 'fhir']) {
		r = await k.currentToken(n, { headers: bearer(scoped) });
		assert.equal(r.status, 200, `scoped key reads ${n}: ${r.text}`);
	}
	r = await k.currentToken('erp', { headers: bearer(scoped) });
	a.assertError(r, 403, 'scoped key reads erp', { code: 'forbidden' });
	assert.ok(!r.text.includes('token"'), 'no token in the refusal');

	const erp = await k.currentToken('erp', { headers: bearer(unscoped) });
	assert.equal(erp.status, 200, 'unscoped key reads erp');
	r = await k.reject('erp', h.fingerprint(erp.json.token),
	    { headers: bearer(scoped) });
	a.assertError(r, 403, 'scoped key rejects erp', { code: 'forbidden' });
	const crm = await k.currentToken('crm', { headers: bearer(scoped) });
	r = await k.reject('crm', h.fingerprint(crm.json.token),
	    { headers: bearer(scoped) });
	assert.equal(r.status, 200, `scoped key rejects crm: ${r.text}`);

	/* Bad lists are refused, and nothing is created. */
	const bad = [
		{ name: 'b1', role: 'client', sources: [] },
		{ name: 'b2', role: 'client', sources: 'crm' },
		{ name: 'b3', role: 'client', sources: ['Not A Name'] },
		{ name: 'b4', role: 'client', sources: ['crm', 7] },
		{ name: 'b5', role: 'viewer', sources: ['crm'] },
		{ name: 'b6', role: 'client', sources: Array.from({ length: 257 },
		    (_, i) => `s${i}`) },
	];
	for (const body of bad) {
		r = await a.call(k, 'POST', '/api/keys', { auth: adminKey, body });
		a.assertError(r, 422, `key ${body.name}`, { field: 'sources' });
	}
	r = await a.call(k, 'POST', '/api/keys', { auth: adminKey,
	    body: { name: 'many', role: 'client', sources: Array.from(
	    { length: 256 }, (_, i) => `s${i}`) } });
	assert.equal(r.status, 201, `256 sources: ${r.text}`);
	r = await a.call(k, 'GET', '/api/keys', { auth: adminKey });
	assert.deepEqual(r.json.data.map((x) => x.name).sort(),
	    ['bootstrap', 'many', 'scoped', 'unscoped']);
});
