'use strict';

/*
 * Under continuous polling across several refresh cycles, kiln never
 * serves an expired token and never fails a request.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

const LIFETIME = 20;
const BUFFER = 5;
const RUN_MS = 90000;
const RATE = 20;

test('current_token_never_expired_under_refresh', { timeout: 180000 },
    async () => {
	const secret = h.secret('cycle');
	const idp = await h.startOAuth(['--lifetime', String(LIFETIME),
	    '--client', `cycle:${secret}:client_credentials`]);
	const db = await h.freshDb(pg, 'never_expired');
	const k = await h.startKiln({ name: 'never_expired',
	    databaseUrl: db.url, sources: [{
		name: 'cycle',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'cycle',
		client_secret: secret,
		refresh_buffer: BUFFER,
	    }] });
	await h.waitToken(k, 'cycle');

	const problems = [];
	const served = new Set();
	const checks = [];
	let answers = 0;
	let sampled = 0;

	const p = h.poller(() => k.currentToken('cycle', { timeout: 3000 }),
	    RATE, (err, r, sentAt) => {
		if (err) {
			problems.push(`${new Date(sentAt).toISOString()} ` +
			    `request failed: ${err.message}`);
			return;
		}
		answers++;
		if (r.status !== 200) {
			problems.push(`${new Date(r.at).toISOString()} ` +
			    `status ${r.status}: ${r.text.slice(0, 200)}`);
			return;
		}
		const b = r.json;
		const exp = h.parseIso(b && b.expires_at);
		if (!(exp > r.at) || !(b.expires_in > 0) || b.valid !== true) {
			problems.push(`${new Date(r.at).toISOString()} ` +
			    `expired or invalid token served: ${r.text}`);
			return;
		}
		const fresh = !served.has(b.token);
		served.add(b.token);
		/* A sample: each new token and one answer a second are
		 * checked against the upstream at once. */
		if (fresh || answers % RATE === 0) {
			sampled++;
			checks.push(idp.protectedStatus(b.token).then((q) => {
				if (q.status !== 200)
					problems.push(`${new Date().toISOString()}` +
					    ` upstream rejected a token served at ` +
					    `${new Date(r.at).toISOString()} ` +
					    `(expires_at ${b.expires_at}): ` +
					    `${q.status} ${q.text}`);
			}, (e) => problems.push(`protected: ${e.message}`)));
		}
	    });
	await h.sleep(RUN_MS);
	await p.stop();
	await Promise.all(checks);

	assert.deepEqual(problems.slice(0, 10), [],
	    `${problems.length} problems`);
	assert.ok(answers >= RUN_MS / 1000 * RATE * 0.8,
	    `answered ${answers} polls`);
	assert.ok(sampled >= RUN_MS / 1000 * 0.8, `sampled ${sampled}`);

	const st = await idp.stats();
	const ok = st.requests.filter((q) => q.status === 200);
	/* The first token plus at least four refresh cycles. */
	assert.ok(ok.length >= 5, `upstream issued ${ok.length} tokens`);
	assert.equal(ok.length, st.token_requests, 'no failed upstream call');
	assert.ok(served.size >= 5, `kiln served ${served.size} tokens`);
	const issued = new Set(st.issued_access_tokens);
	for (const t of served)
		assert.ok(issued.has(t), 'every served token was issued');
});
