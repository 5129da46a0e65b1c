'use strict';

/*
 * Waiting for a change on a connection's current-token (issue 14 part 1,
 * "per connection where those exist"; issue 12): a long-poll on alice's
 * token answers when alice's token changes, not when bob's or the
 * source's does; ETag and If-None-Match on the connection route; a key
 * of another source may not wait.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

function connPath(subject, tail)
{
	return `/api/tokens/fhir/connections/${subject}${tail}`;
}

function get(k, subject, auth, { query = '', headers = {},
    timeout = 10000 } = {})
{
	return a.call(k, 'GET', connPath(subject, `/current-token${query}`),
	    { auth, headers, timeout });
}

function poll(k, subject, auth, fpr, timeoutSec)
{
	const t0 = Date.now();
	return get(k, subject, auth, { query: '?wait_for_change=true' +
	    `&last_fingerprint=${fpr}&timeout_sec=${timeoutSec}`,
	    timeout: (timeoutSec + 10) * 1000 }).then((r) =>
	    Object.assign(r, { took: Date.now() - t0 }));
}

function rejected(k, subject, auth, fingerprint)
{
	return a.call(k, 'POST', connPath(subject, '/current-token/rejected'),
	    { auth, body: { fingerprint } });
}

test('connection_longpoll_etag_and_scope', { timeout: 90000 }, async () => {
	const clientSecret = h.secret('pc-client');
	const seeds = { default: h.secret('pc-default'),
	    alice: h.secret('pc-alice'), bob: h.secret('pc-bob'),
	    other: h.secret('pc-other') };
	const idp = await h.startOAuth(['--lifetime', '3600',
	    '--rotate', 'true',
	    '--client', `pc-client:${clientSecret}:refresh_token`,
	    ...Object.values(seeds).flatMap((s) => ['--seed-refresh',
	    `pc-client:${s}`])]);
	const db = await h.freshDb(pg, 'push_conn');
	const k = await h.startKiln({ name: 'push_conn', databaseUrl: db.url,
	    workers: 2, sources: [{ name: 'fhir', kind: 'refresh_token',
	    token_url: idp.tokenUrl, client_id: 'pc-client',
	    client_secret: clientSecret, refresh_token: seeds.default,
	    access: 'key' }, { name: 'other', kind: 'refresh_token',
	    token_url: idp.tokenUrl, client_id: 'pc-client',
	    client_secret: clientSecret, refresh_token: seeds.other,
	    access: 'key' }], env: { KILN_ADMIN_KEY: a.ADMIN_KEY } });
	let r = await a.call(k, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name: 'fhir-app', role: 'client', sources: ['fhir'] } });
	assert.equal(r.status, 201, r.text);
	const key = r.json.data.key;
	r = await a.call(k, 'POST', '/api/keys', { auth: a.ADMIN_KEY,
	    body: { name: 'other-app', role: 'client', sources: ['other'] } });
	assert.equal(r.status, 201, r.text);
	const otherKey = r.json.data.key;
	for (const s of ['alice', 'bob']) {
		r = await a.call(k, 'POST', '/api/tokens/fhir/connections',
		    { auth: a.ADMIN_KEY, body: { subject: s,
		    refresh_token: seeds[s] } });
		assert.equal(r.status, 201, r.text);
	}
	const cur = {};
	for (const s of ['alice', 'bob']) {
		cur[s] = (await h.waitFor(async () => {
			const x = await get(k, s, key);
			return x.status === 200 ? x : false;
		}, { timeout: 15000, what: `${s}'s token` })).json;
		assert.equal(cur[s].subject, s);
	}

	/* ETag on the connection route, If-None-Match -> 304. */
	r = await get(k, 'alice', key);
	assert.equal(r.headers.etag, `"${cur.alice.fingerprint}"`);
	r = await get(k, 'alice', key, { headers:
	    { 'If-None-Match': `"${cur.alice.fingerprint}"` } });
	assert.equal(r.status, 304, r.text);
	assert.equal(r.text, '');
	r = await get(k, 'alice', key, { headers:
	    { 'If-None-Match': `"${cur.bob.fingerprint}"` } });
	assert.equal(r.status, 200, 'bob\'s ETag is not alice\'s');

	/* A stale fingerprint answers at once. */
	r = await poll(k, 'alice', key, '000000000000', 30);
	assert.equal(r.status, 200, r.text);
	assert.ok(r.took < 2000, `answered in ${r.took} ms`);
	assert.equal(r.json.fingerprint, cur.alice.fingerprint);

	/* A key of another source may not wait on alice. */
	r = await poll(k, 'alice', otherKey, cur.alice.fingerprint, 5);
	a.assertError(r, 403, 'a long-poll with another source\'s key');
	r = await poll(k, 'alice', null, cur.alice.fingerprint, 5);
	a.assertError(r, 401, 'a long-poll without a key');

	/*
	 * alice waits; bob's token and the source's own change first: alice's
	 * waiter stays. Then alice's changes: she gets hers.
	 */
	const lp = poll(k, 'alice', key, cur.alice.fingerprint, 30);
	let done = false;
	lp.then(() => {
		done = true;
	}, () => {});
	await h.sleep(300);
	r = await rejected(k, 'bob', key, cur.bob.fingerprint);
	assert.equal(r.status, 200, r.text);
	assert.notEqual(r.json.fingerprint, cur.bob.fingerprint,
	    'bob refreshed');
	r = await a.call(k, 'POST', '/api/tokens/fhir/refresh',
	    { auth: a.ADMIN_KEY });
	assert.ok(r.status < 300, r.text);
	await h.sleep(1000);
	assert.equal(done, false, 'other tokens of the source do not wake ' +
	    'alice\'s long-poll');

	const sent = Date.now();
	r = await rejected(k, 'alice', key, cur.alice.fingerprint);
	assert.equal(r.status, 200, r.text);
	const fresh = r.json;
	const w = await lp;
	const after = Date.now() - sent;
	console.log(`# alice's long-poll answered ${after} ms after her ` +
	    'refresh was asked for');
	assert.equal(w.status, 200, w.text);
	assert.equal(w.json.subject, 'alice');
	assert.equal(w.json.fingerprint, fresh.fingerprint);
	assert.notEqual(w.json.fingerprint, cur.alice.fingerprint);
	assert.equal(w.headers.etag, `"${fresh.fingerprint}"`);
	assert.ok(after < 5000, `answered ${after} ms after the refresh`);
	const st = await idp.stats();
	assert.ok(st.issued_access_tokens.includes(w.json.token),
	    'a token the upstream issued');

	/* A timeout answers the current token. */
	r = await poll(k, 'alice', key, fresh.fingerprint, 1);
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.fingerprint, fresh.fingerprint);
	assert.ok(r.took >= 900 && r.took < 5000, `timed out in ${r.took} ms`);
	assert.deepEqual(a.crashLines(k), [], 'no crash');
});
