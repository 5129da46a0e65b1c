'use strict';

/*
 * Upstream faults while kiln holds a still-valid token: kiln retries per
 * policy, records and logs every failed attempt, never hangs a client
 * request, and keeps serving the valid token.
 *
 * Each case: a good token first (lifetime L, refresh_buffer 25 s, so
 * refreshing starts after min(25, L/2) s), then the upstream breaks.
 */

const assert = require('node:assert/strict');
const { describe, it } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

const KILN_ENV = {
	KILN_UPSTREAM_TIMEOUT: '3',
	KILN_UPSTREAM_CONNECT_TIMEOUT: '2',
};
/* A request served from memory is fast; anything near the upstream
 * timeout means a client request waited on the upstream. */
const MAX_ANSWER_MS = 1000;

/* A fault upstream (faultArgs) and a kiln with one source against it. */
async function faultKiln(name, faultArgs, sourceExtra)
{
	const f = await h.startFault(faultArgs);
	const db = await h.freshDb(pg, name);
	const source = name.replace(/_/g, '-');
	const k = await h.startKiln({ name, databaseUrl: db.url,
	    env: KILN_ENV, sources: [{
		name: source,
		kind: 'client_credentials',
		token_url: f.tokenUrl,
		client_id: 'kiln',
		client_secret: h.secret('fault'),
		...sourceExtra,
	    }] });
	return { f, db, source, k };
}

async function scenario({ name, lifetime = 30, breakIt, expectStatus,
    minAttempts = 3, upstreamAttempts = true, check })
{
	const { f, db, source, k } = await faultKiln(name,
	    ['--lifetime', String(lifetime)], { refresh_buffer: 25 });
	const first = h.assertTokenBody(await h.waitToken(k, source), source);
	const expMs = h.parseIso(first.expires_at);
	const okRequests = (await f.stats()).token_requests;
	assert.equal(okRequests, 1, 'one upstream call for the first token');

	await breakIt(f);
	const brokeAt = Date.now();

	/* Poll kiln until enough failed attempts were seen, or the token is
	 * about to expire. */
	const problems = [];
	let polls = 0;
	let failures = [];
	const deadline = expMs - 2000;
	for (;;) {
		const now = Date.now();
		if (now >= deadline)
			break;
		let r;
		try {
			r = await k.currentToken(source, { timeout: 5000 });
		} catch (e) {
			problems.push(`request failed: ${e.message}`);
			await h.sleep(250);
			continue;
		}
		polls++;
		if (r.status !== 200)
			problems.push(`status ${r.status}: ${r.text.slice(0, 200)}`);
		else if (r.json.token !== first.token)
			problems.push('a different token was served');
		if (r.ms > MAX_ANSWER_MS)
			problems.push(`answer took ${r.ms} ms`);
		const rows = await h.events(db, source);
		failures = rows.filter((e) => e.outcome === 'failure');
		const upstreamFailed = upstreamAttempts ?
		    (await f.stats()).token_requests - okRequests : Infinity;
		if (failures.length >= minAttempts &&
		    upstreamFailed >= minAttempts)
			break;
		await h.sleep(250);
	}

	assert.deepEqual(problems.slice(0, 10), [],
	    `${problems.length} problems in ${polls} polls`);
	assert.ok(polls >= 5, `polled ${polls} times`);
	assert.ok(failures.length >= minAttempts,
	    `${failures.length} failed attempts recorded before the token ` +
	    `expired (want ${minAttempts})`);

	/* The attempts, as the upstream and refresh_events saw them. */
	let st = null;
	if (upstreamAttempts) {
		st = await f.stats();
		const attempts = st.requests.slice(okRequests);
		assert.ok(attempts.length >= minAttempts,
		    `${attempts.length} upstream attempts`);
	}
	const starts = failures.map((e) => Date.parse(e.started_at));
	for (let i = 1; i < starts.length; i++) {
		/* Backoff, not a hot loop. */
		assert.ok(starts[i] - starts[i - 1] >= 200,
		    `attempts ${i - 1}, ${i} ${starts[i] - starts[i - 1]} ms apart`);
	}
	assert.ok(failures.length <= 20, `${failures.length} attempts`);
	for (const e of failures) {
		assert.ok(Date.parse(e.started_at) >= brokeAt - 1000,
		    'failures come after the fault');
		assert.equal(typeof e.error, 'string');
		assert.ok(e.error.length > 0, 'error text recorded');
		assert.ok(Number.isFinite(Number(e.duration_ms)),
		    'duration_ms recorded');
		if (expectStatus === null)
			assert.ok(e.http_status === null ||
			    Number(e.http_status) === 0,
			    `no HTTP status (${e.http_status})`);
		else
			assert.equal(Number(e.http_status), expectStatus,
			    'http_status');
	}

	/* A warn/error log line names the source. */
	const lines = h.failureLogLines(k, source);
	assert.ok(lines.length >= 1,
	    `a warn/error JSON log line mentions ${source}`);

	if (check)
		await check({ f, k, db, source, first, failures, st });
	return { f, k, db, source, first };
}

describe('upstream faults', { concurrency: true }, () => {
	it('fault_5xx_retried_and_valid_token_kept', { timeout: 120000 },
	    async () => {
		await scenario({
			name: 'fault_5xx',
			breakIt: (f) => f.mode({ mode: '5xx' }),
			expectStatus: 503,
			check: async ({ f, k, db, source, first }) => {
				/* Once the upstream is back, a retry
				 * succeeds well before expiry. */
				await f.mode({ mode: 'ok' });
				const r = await h.waitFor(async () => {
					const q = await k.currentToken(source);
					return q.status === 200 &&
					    q.json.token !== first.token ? q : false;
				}, { timeout: 12000, interval: 100,
				    what: 'a new token after recovery' });
				const st = await f.stats();
				assert.equal(r.json.token,
				    st.issued_access_tokens.at(-1));
				const ev = await h.events(db, source);
				assert.equal(ev.at(-1).outcome, 'success');
			},
		});
	});

	it('fault_hang_20s_is_an_ordinary_failure', { timeout: 120000 },
	    async () => {
		await scenario({
			name: 'fault_hang',
			lifetime: 40,
			breakIt: (f) => f.mode({ mode: 'hang',
			    hang_ms: 20000 }),
			expectStatus: null,
			check: async ({ failures, st }) => {
				/* KILN_UPSTREAM_TIMEOUT=3: kiln gives up
				 * after about 3 s, not after 20. */
				for (const e of failures) {
					assert.ok(Number(e.duration_ms) >= 2500 &&
					    Number(e.duration_ms) <= 6000,
					    `attempt took ${e.duration_ms} ms`);
				}
				const hung = st.requests.filter((q) =>
				    q.mode === 'hang' && q.closed_after_ms);
				assert.ok(hung.length >= 2);
				for (const q of hung) {
					assert.equal(q.status, 'client_closed');
					assert.ok(q.closed_after_ms <= 6000,
					    `kiln held the upstream request ` +
					    `${q.closed_after_ms} ms`);
				}
			},
		});
	});

	it('fault_garbage_body', { timeout: 120000 }, async () => {
		await scenario({
			name: 'fault_garbage',
			breakIt: (f) => f.mode({ mode: 'garbage' }),
			expectStatus: 200,
		});
	});

	it('fault_html_body', { timeout: 120000 }, async () => {
		await scenario({
			name: 'fault_html',
			breakIt: (f) => f.mode({ mode: 'html' }),
			expectStatus: 200,
		});
	});

	/* The upstream in 'reuse' mode drops, unanswered, every request that
	 * comes on a kept-alive connection. */
	async function reuseCase(name, lifetime, successes)
	{
		const { f, db, source, k } = await faultKiln(name,
		    ['--lifetime', String(lifetime), '--mode', 'reuse'], {});
		await h.waitToken(k, source);
		const ev = await h.waitFor(async () => {
			const rows = await h.events(db, source);
			return rows.filter((e) => e.outcome === 'success')
			    .length >= successes ? rows : false;
		}, { timeout: 40000, interval: 200,
		    what: `${successes} successful refreshes` });
		const st = await f.stats();
		for (const q of st.requests)
			assert.ok(q.body_bytes > 0, 'every request had its body');
		return { k, source, ev, st, dropped: st.requests.filter((q) =>
		    q.status === 'dropped') };
	}

	it('fault_reused_connection_closed_request_not_resent',
	    { timeout: 60000 }, async () => {
		/* Lifetime 2 s: refreshes about 1 s apart reuse the
		 * connection. curl would send the request again on a new one,
		 * but a token request may have been used already (a rotating
		 * refresh token): the attempt fails with its event instead, and
		 * the next one (a new connection) succeeds. */
		const { ev, st, dropped } = await reuseCase('fault_reuse_drop',
		    2, 4);
		const failed = ev.filter((e) => e.outcome !== 'success');
		assert.ok(dropped.length >= 1,
		    `${dropped.length} requests came on a reused connection`);
		assert.equal(ev.length, st.requests.length,
		    'one event per upstream request: nothing sent twice');
		assert.ok(failed.length >= dropped.length - 1,
		    `${failed.length} failures for ${dropped.length} drops`);
		for (const e of failed)
			assert.equal(e.error, 'upstream: connection closed ' +
			    'without an answer (not resent)');
	});

	it('fault_idle_connection_not_reused', { timeout: 60000 },
	    async () => {
		/* Lifetime 8 s: refreshes about 4 s apart, longer than the 2 s
		 * a connection is kept for reuse, so the keep-alive race of a
		 * server closing idle connections (node: after 5 s) does not
		 * happen: no request on a reused connection, no failure. */
		const { ev, st, dropped } = await reuseCase('fault_reuse_idle',
		    8, 3);
		assert.deepEqual(dropped, [], 'no request on a reused connection');
		assert.deepEqual(ev.filter((e) => e.outcome !== 'success')
		    .map((e) => e.error), [], 'no failed attempt');
		assert.equal(ev.length, st.requests.length);
	});

	it('fault_connection_refused', { timeout: 120000 }, async () => {
		await scenario({
			name: 'fault_refused',
			/* Nothing listens on the upstream's port any more. */
			breakIt: (f) => f.stop(),
			expectStatus: null,
			upstreamAttempts: false,
			check: async ({ failures }) => {
				for (const e of failures)
					assert.ok(Number(e.duration_ms) < 2500,
					    `refused attempt took ${e.duration_ms} ms`);
			},
		});
	});
});
