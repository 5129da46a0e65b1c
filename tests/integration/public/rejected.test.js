'use strict';

/*
 * POST /api/tokens/{name}/current-token/rejected: a report about the
 * current token refreshes it once (single-flight, once per generation,
 * across workers); a report about an older token changes nothing. The
 * first case runs three times: with statements prepared per connection
 * and the token table on huge pages (the defaults), with every query
 * sent unnamed (KILN_DB_PREPARED=0), and on 4 kB pages
 * (KILN_HUGE_PAGES=0).
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

async function setup(label, env = {})
{
	const secret = h.secret('rej');
	/* A long lifetime: no scheduled refresh during the test. */
	const idp = await h.startOAuth(['--lifetime', '600',
	    '--client', `rej:${secret}:client_credentials`]);
	const db = await h.freshDb(pg, label);
	const k = await h.startKiln({ name: label, databaseUrl: db.url,
	    workers: 2, env, sources: [{
		name: 'rej',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'rej',
		client_secret: secret,
		refresh_buffer: 30,
	    }] });
	const first = h.assertTokenBody(await h.waitToken(k, 'rej'), 'rej');
	assert.equal((await idp.stats()).token_requests, 1);
	return { idp, db, k, first };
}

async function twentyReports(label, env)
{
	const { idp, db, k, first } = await setup(label, env);
	const fpr = h.fingerprint(first.token);

	const answers = await Promise.all(Array.from({ length: 20 }, () =>
	    k.reject('rej', fpr)));
	const tokens = new Set();
	for (const r of answers) {
		const b = h.assertTokenBody(r, 'rej');
		assert.match(String(r.headers['cache-control']), /no-store/);
		tokens.add(b.token);
	}
	assert.equal(tokens.size, 1, 'all 20 reports answer the same token');
	const [fresh] = [...tokens];
	assert.notEqual(fresh, first.token, 'the answer is a new token');

	await h.sleep(1500);
	const st = await idp.stats();
	assert.equal(st.token_requests, 2, 'exactly one refresh upstream');
	assert.equal(st.issued_access_tokens.at(-1), fresh);
	assert.equal((await idp.protectedStatus(fresh)).status, 200);

	/* Every worker now serves the new token. */
	for (let i = 0; i < 10; i++) {
		const r = await k.currentToken('rej');
		assert.equal(r.json.token, fresh);
	}
	const ev = await h.events(db, 'rej');
	assert.equal(ev.length, 2, 'two refresh events: first token, report');
	assert.ok(ev.every((e) => e.outcome === 'success'));
}

test('rejected_report_yields_one_refresh_for_20_concurrent_reports',
    { timeout: 90000 }, () => twentyReports('rejected_20'));

test('rejected_report_with_every_query_unnamed', { timeout: 90000 },
    () => twentyReports('rejected_unnamed', { KILN_DB_PREPARED: '0' }));

/* The token table on 4 kB pages (KILN_HUGE_PAGES=0) serves the same. */
test('rejected_report_with_the_table_on_small_pages', { timeout: 90000 },
    () => twentyReports('rejected_small', { KILN_HUGE_PAGES: '0' }));

test('huge_pages_bad_value_stops_the_start', { timeout: 30000 },
    async () => {
	const db = await h.freshDb(pg, 'rejected_bad_huge');
	for (const v of ['yes', '2', '-1']) {
		await assert.rejects(h.startKiln({ name: 'rejected_bad_huge',
		    databaseUrl: db.url, env: { KILN_HUGE_PAGES: v },
		    healthTimeout: 8000 }), /KILN_HUGE_PAGES/, v);
	}
});

test('rejected_old_fingerprint_changes_nothing', { timeout: 90000 },
    async () => {
	const { idp, k, first } = await setup('rejected_old');

	const r1 = await k.reject('rej', h.fingerprint(first.token));
	const second = h.assertTokenBody(r1, 'rej');
	assert.notEqual(second.token, first.token);
	assert.equal((await idp.stats()).token_requests, 2);

	/* Reports about the old token, or one kiln never served. */
	for (const fpr of [h.fingerprint(first.token), '000000000000',
	    h.fingerprint(first.token)]) {
		const r = await k.reject('rej', fpr);
		const b = h.assertTokenBody(r, 'rej');
		assert.equal(b.token, second.token, 'answers the current token');
	}
	await h.sleep(1500);
	assert.equal((await idp.stats()).token_requests, 2,
	    'no upstream call for an old fingerprint');
	assert.equal((await k.currentToken('rej')).json.token, second.token);
});
