'use strict';

/*
 * With two workers, one lease winner refreshes: exactly one upstream call
 * per token per cycle, and every worker serves the new token.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

const LIFETIME = 10;
const BUFFER = 3;
const RUN_MS = 45000;

test('two_workers_one_upstream_request_per_cycle', { timeout: 150000 },
    async () => {
	const secret = h.secret('workers');
	const idp = await h.startOAuth(['--lifetime', String(LIFETIME),
	    '--client', `workers:${secret}:client_credentials`]);
	const db = await h.freshDb(pg, 'two_workers');
	const k = await h.startKiln({ name: 'two_workers',
	    databaseUrl: db.url, workers: 2, sources: [{
		name: 'shared',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'workers',
		client_secret: secret,
		refresh_buffer: BUFFER,
	    }] });
	await h.waitToken(k, 'shared');

	const served = new Set();
	const problems = [];
	let last = null;
	const record = (err, r) => {
		if (err) {
			problems.push(err.message);
		} else if (r.status !== 200) {
			problems.push(`${r.status} ${r.text.slice(0, 200)}`);
		} else {
			served.add(r.json.token);
			last = r.json.token;
		}
	};
	/* Fresh connections, so both workers answer. */
	const p = h.poller(() => k.currentToken('shared', { timeout: 3000 }),
	    10, record);
	await h.sleep(RUN_MS);

	/* Stop right after a refresh, far from the next one, so no
	 * upstream call is in flight while the books are compared. */
	const before = last;
	await h.waitFor(() => last !== before, { timeout: 20000,
	    interval: 50, what: 'the next refresh' });
	const st = await idp.stats();
	/* Every issued token reaches the pollers within a moment. */
	const lastIssued = st.issued_access_tokens.at(-1);
	await h.waitFor(() => served.has(lastIssued), { timeout: 2000,
	    interval: 50, what: 'the newest token to be served' });
	await p.stop();

	assert.deepEqual(problems.slice(0, 10), [],
	    `${problems.length} failed polls`);
	const ok = st.requests.filter((q) => q.status === 200);
	assert.equal(ok.length, st.token_requests, 'no failed upstream call');
	assert.ok(st.token_requests >= 5,
	    `${st.token_requests} cycles in ${RUN_MS / 1000} s`);
	assert.equal(st.token_requests, served.size,
	    'upstream requests == distinct tokens served');
	assert.deepEqual([...served].sort(),
	    [...st.issued_access_tokens].sort(),
	    'the served tokens are exactly the issued ones');

	/* No duplicate request within a cycle: the cycle is about
	 * LIFETIME - BUFFER seconds; requests are at least about half a
	 * cycle apart. */
	const minGap = (LIFETIME - 1 - BUFFER) * 1000 / 2 - 500;
	const ts = st.requests.map((q) => q.t).sort((a, b) => a - b);
	for (let i = 1; i < ts.length; i++) {
		assert.ok(ts[i] - ts[i - 1] >= minGap,
		    `requests ${i - 1} and ${i} only ${ts[i] - ts[i - 1]} ms ` +
		    `apart (min ${minGap})`);
	}

	/* One refresh_events row per attempt, all successes. */
	const ev = await h.waitFor(async () => {
		const rows = await h.events(db, 'shared');
		return rows.length >= st.token_requests ? rows : false;
	}, { timeout: 3000, what: 'refresh_events rows' });
	assert.equal(ev.length, st.token_requests, 'one event per attempt');
	for (const e of ev)
		assert.equal(e.outcome, 'success');
	const gens = ev.map((e) => Number(e.generation));
	for (let i = 1; i < gens.length; i++)
		assert.ok(gens[i] > gens[i - 1], `generations grow: ${gens}`);
});
