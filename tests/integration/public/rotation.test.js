'use strict';

/*
 * refresh_token kind against an upstream that rotates refresh tokens (and
 * revokes the old one): kiln always spends the newest refresh token, also
 * after a restart, where it can only have come from PostgreSQL.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

const LIFETIME = 10;
const BUFFER = 3;

function refreshRequests(st)
{
	return st.requests.filter((q) => q.grant === 'refresh_token');
}

/* Each request spends the token the one before it got. */
function assertChain(reqs, seed)
{
	assert.ok(reqs.length >= 1);
	assert.equal(reqs[0].refresh_token_in, seed,
	    'the first refresh spends the configured token');
	for (let i = 0; i < reqs.length; i++) {
		assert.equal(reqs[i].status, 200,
		    `refresh ${i} answered ${reqs[i].status} (${reqs[i].error})`);
		assert.ok(reqs[i].refresh_token_out, `refresh ${i} rotated`);
		if (i > 0)
			assert.equal(reqs[i].refresh_token_in,
			    reqs[i - 1].refresh_token_out,
			    `refresh ${i} spends the token refresh ${i - 1} got`);
	}
}

test('refresh_token_rotation_stores_the_rotated_token', { timeout: 120000 },
    async () => {
	const clientSecret = h.secret('rotclient');
	const seed = h.secret('rotseed');
	const idp = await h.startOAuth(['--lifetime', String(LIFETIME),
	    '--rotate', 'true',
	    '--client', `rot-client:${clientSecret}:refresh_token`,
	    '--seed-refresh', `rot-client:${seed}`]);
	const db = await h.freshDb(pg, 'rotation');
	const k = await h.startKiln({ name: 'rotation', databaseUrl: db.url,
	    sources: [{
		name: 'rotating',
		kind: 'refresh_token',
		token_url: idp.tokenUrl,
		client_id: 'rot-client',
		client_secret: clientSecret,
		refresh_token: seed,
		refresh_buffer: BUFFER,
	    }] });
	await h.waitToken(k, 'rotating');

	/* The first token and three more cycles. */
	await h.waitFor(async () => refreshRequests(await idp.stats())
	    .length >= 4, { timeout: 60000, interval: 200,
	    what: 'four refresh requests' });
	/* Restart right after a refresh has been stored and served,
	 * never in the middle of one. */
	let st = await idp.stats();
	const n = refreshRequests(st).length;
	await h.waitFor(async () => {
		const q = refreshRequests(await idp.stats());
		return q.length > n && q.at(-1).status !== null;
	}, { timeout: 20000, interval: 50, what: 'the next refresh, answered' });
	st = await idp.stats();
	const newest = st.issued_access_tokens.at(-1);
	await h.waitFor(async () => (await k.currentToken('rotating'))
	    .json?.token === newest, { timeout: 2000, interval: 20,
	    what: 'kiln to serve the newest token' });
	const before = refreshRequests(st);
	assertChain(before, seed);
	assert.equal(st.reused_revoked_refresh_tokens, 0);
	const latestRefresh = before.at(-1).refresh_token_out;

	await k.restart();
	/* The restarted kiln serves the stored token... */
	const r = await h.waitToken(k, 'rotating', { timeout: 5000 });
	const issuedNow = (await idp.stats()).issued_access_tokens;
	assert.ok(issuedNow.indexOf(r.json.token) >=
	    issuedNow.indexOf(newest) && issuedNow.includes(r.json.token),
	    'after the restart kiln serves the stored token (or a newer one)');
	/* ...and its next refresh spends the stored rotated token. */
	/* The upstream records a request when it comes: wait for its answer. */
	await h.waitFor(async () => {
		const q = refreshRequests(await idp.stats());
		return q.length > before.length && q.at(-1).status !== null;
	}, { timeout: 20000, interval: 100,
	    what: 'a refresh after the restart, answered' });
	st = await idp.stats();
	const after = refreshRequests(st);
	assert.equal(after[before.length].refresh_token_in, latestRefresh,
	    'after the restart kiln spends the latest rotated token');
	assertChain(after, seed);
	assert.equal(st.reused_revoked_refresh_tokens, 0,
	    'no revoked refresh token was ever presented');
	await h.waitFor(async () => (await k.currentToken('rotating'))
	    .json?.token === st.issued_access_tokens.at(-1),
	    { timeout: 2000, interval: 20, what: 'the refreshed token' });
});
