'use strict';

/*
 * Kind token_exchange (RFC 8693) against oidc-provider 8.8.1 with the
 * grant registered by registerGrantType (tests/upstream/oidc_mtls.js
 * --plain --exchange), which accepts a subject token only if it issued
 * it and it is still valid.
 *
 * The exchanged token follows its subject: a forced refresh of the
 * subject source gives a new exchanged token within a bound, with
 * exactly one exchange call per subject generation although two
 * workers hear of it; it is refreshed before it expires; a subject
 * without a valid token makes the exchange wait (no upstream call, no
 * failure, status "waiting") until the subject gets one; a cycle of
 * sources (a -> b -> a) and a source exchanging its own token are
 * refused with 422; only "name" and "name/default" name a subject.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const { startOidcMtls } = require('../lib/upstream');

const pg = h.filePg();
const TX_AT = 'urn:ietf:params:oauth:token-type:access_token';
const BOUND_MS = 1500;	/* subject refreshed -> exchanged token served */

function api(k, method, p, body)
{
	return a.call(k, method, p, { auth: a.ADMIN_KEY, body });
}

async function setup(label, extra = [])
{
	const secrets = { subj: h.secret('subj'), xch: h.secret('xch') };
	const idp = await startOidcMtls(['--plain', '--exchange',
	    '--lifetime', '300',
	    '--client', `subj:client_secret_post:${secrets.subj}`,
	    '--client', `xch:client_secret_post:${secrets.xch}`, ...extra]);
	const tokenUrl = `http://127.0.0.1:${idp.ready.https_port}/token`;
	const db = await h.freshDb(pg, label);
	const k = await h.startKiln({ name: label, databaseUrl: db.url,
	    sources: [], workers: 2, env: { KILN_ADMIN_KEY: a.ADMIN_KEY,
	    KILN_JWT_SECRET: a.JWT_SECRET } });
	const stats = async () => (await h.request(`${idp.url}/_stats`)).json;
	return { idp, k, tokenUrl, secrets, stats };
}

test('exchanged_token_follows_its_subject', { timeout: 90000 },
    async () => {
	const { k, tokenUrl, secrets, stats } = await setup('tx_follow',
	    ['--ttl', 'xch:6']);
	let r = await api(k, 'POST', '/api/tokens', { name: 'subj',
	    kind: 'client_credentials', token_url: tokenUrl,
	    client_id: 'subj', client_secret: secrets.subj });
	assert.equal(r.status, 201, r.text);
	r = await api(k, 'POST', '/api/tokens', { name: 'xch',
	    kind: 'token_exchange', token_url: tokenUrl,
	    subject_source: 'subj/default', audience: 'https://api.example',
	    client_id: 'xch', client_secret: secrets.xch,
	    refresh_buffer: 300 });
	assert.equal(r.status, 201, r.text);
	assert.equal(r.json.data.kind, 'token_exchange');
	assert.equal(r.json.data.subject_source, 'subj');
	assert.equal(r.json.data.subject_token_type, TX_AT);
	assert.equal(r.json.data.actor_source, null);

	let subj = await h.waitToken(k, 'subj');
	let xch = await h.waitToken(k, 'xch');
	let s = await stats();
	assert.equal(s.exchanges.length, 1, JSON.stringify(s.exchanges));
	assert.equal(s.exchanges[0].subject, h.fingerprint(subj.json.token));
	assert.equal(s.exchanges[0].issued, h.fingerprint(xch.json.token));
	assert.equal(s.exchanges[0].audience, 'https://api.example');
	assert.equal(s.exchanges[0].subject_client, 'subj');

	/* Each new subject generation: one exchange, served promptly. */
	const subjects = [s.exchanges[0].subject];
	for (let i = 0; i < 3; i++) {
		r = await api(k, 'POST', '/api/tokens/subj/refresh');
		assert.ok([200, 202].includes(r.status), r.text);
		const next = await h.waitFor(async () => {
			const t = await k.currentToken('subj');
			return t.status === 200 &&
			    t.json.token !== subj.json.token ? t : false;
		}, { timeout: 10000, interval: 20, what: 'a new subj token' });
		const seen = Date.now();
		const nx = await h.waitFor(async () => {
			const t = await k.currentToken('xch');
			return t.status === 200 &&
			    t.json.token !== xch.json.token ? t : false;
		}, { timeout: 10000, interval: 20, what: 'a new xch token' });
		const took = Date.now() - seen;
		assert.ok(took <= BOUND_MS, `exchanged token followed its ` +
		    `subject after ${took} ms (bound ${BOUND_MS})`);
		subj = next;
		xch = nx;
		subjects.push(h.fingerprint(subj.json.token));
	}

	/* Let every worker hear of the last one; still one call each. */
	await h.sleep(1500);
	s = await stats();
	const per = {};
	for (const e of s.exchanges)
		per[e.subject] = (per[e.subject] || 0) + 1;
	assert.deepEqual(Object.keys(per).sort(), [...subjects].sort(),
	    JSON.stringify(s.exchanges));
	for (const f of subjects)
		assert.equal(per[f], 1, `exchanges of subject ${f}: ${per[f]}`);
	assert.equal(s.exchanges.at(-1).issued,
	    h.fingerprint((await k.currentToken('xch')).json.token));

	r = await api(k, 'GET', '/api/tokens/xch/events');
	const trig = r.json.data.events.filter((e) => e.outcome === 'success')
	    .map((e) => e.trigger);
	/* The first exchange too: no subject generation was used yet. */
	assert.equal(trig.filter((t) => t === 'subject').length,
	    subjects.length, JSON.stringify(trig));

	/*
	 * Before it expires: xch lives 6 s (buffer at most half of it),
	 * so a scheduled refresh comes with the same subject token, and
	 * the token stays valid throughout.
	 */
	const last = xch.json.token;
	const until = Date.now() + 7000;
	while (Date.now() < until) {
		const t = await k.currentToken('xch');
		assert.equal(t.status, 200, 'xch stays valid');
		if (t.json.token !== last)
			break;
		await h.sleep(100);
	}
	assert.notEqual((await k.currentToken('xch')).json.token, last,
	    'xch refreshed before it expired');
	await h.waitFor(async () => {
		const e = await api(k, 'GET', '/api/tokens/xch/events');
		return e.json.data.events.some((x) => x.trigger ===
		    'schedule' && x.outcome === 'success');
	}, { timeout: 5000, what: 'a scheduled exchange' });
});

test('exchange_waits_for_a_valid_subject_and_refuses_cycles',
    { timeout: 90000 }, async () => {
	const { k, tokenUrl, secrets, stats } = await setup('tx_wait');
	const tx = (name, subject, more = {}) => api(k, 'POST', '/api/tokens',
	    Object.assign({ name, kind: 'token_exchange', token_url: tokenUrl,
	    subject_source: subject, client_id: 'xch',
	    client_secret: secrets.xch }, more));

	/* The subject's upstream refuses it: no valid subject token. */
	let r = await api(k, 'POST', '/api/tokens', { name: 'subj',
	    kind: 'client_credentials', token_url: tokenUrl,
	    client_id: 'subj', client_secret: 'wrong' });
	assert.equal(r.status, 201, r.text);
	r = await tx('xw', 'subj');
	assert.equal(r.status, 201, r.text);

	await h.sleep(2500);
	r = await api(k, 'GET', '/api/tokens/xw');
	assert.equal(r.json.data.state.status, 'waiting', r.text);
	assert.equal(r.json.data.state.failures, 0);
	r = await api(k, 'GET', '/api/tokens/xw/events');
	assert.deepEqual(r.json.data.events, [], 'no attempt while waiting');
	let s = await stats();
	assert.equal(s.exchanges.length, 0);
	assert.ok(!s.decisions.some((d) => d.client === 'xch'),
	    JSON.stringify(s.decisions));
	assert.equal((await k.currentToken('xw')).status, 503);

	/* The subject gets a token: the exchange follows, once. */
	r = await api(k, 'PATCH', '/api/tokens/subj',
	    { client_secret: secrets.subj });
	assert.equal(r.status, 200, r.text);
	const subj = await h.waitToken(k, 'subj');
	const xw = await h.waitToken(k, 'xw', { timeout: 5000 });
	await h.sleep(1000);
	s = await stats();
	assert.equal(s.exchanges.length, 1, JSON.stringify(s.exchanges));
	assert.equal(s.exchanges[0].subject, h.fingerprint(subj.json.token));
	assert.equal(s.exchanges[0].issued, h.fingerprint(xw.json.token));

	/* Cycles: a -> b (not there yet: a waits), then b -> a. */
	r = await tx('a', 'b');
	assert.equal(r.status, 201, r.text);
	r = await tx('b', 'a');
	a.assertError(r, 422, 'b -> a -> b', { field: 'subject_source' });
	assert.match(r.json.error.message, /cycle/);
	r = await tx('c', 'c');
	a.assertError(r, 422, 'c -> c', { field: 'subject_source' });
	/* Through the actor, and by a PATCH. */
	r = await tx('d', 'subj', { actor_source: 'a' });
	assert.equal(r.status, 201, r.text);
	r = await api(k, 'PATCH', '/api/tokens/a', { subject_source: 'd' });
	a.assertError(r, 422, 'a -> d -(actor)-> a',
	    { field: 'subject_source' });
	r = await api(k, 'GET', '/api/tokens/a');
	assert.equal(r.json.data.subject_source, 'b', 'a unchanged');
	r = await tx('e', 'subj/alice');
	a.assertError(r, 422, 'a connection', { field: 'subject_source' });
	r = await api(k, 'POST', '/api/tokens', { name: 'f',
	    kind: 'client_credentials', token_url: tokenUrl, client_id: 'x',
	    client_secret: 'y', subject_source: 'subj' });
	a.assertError(r, 422, 'not an exchange', { field: 'subject_source' });
	r = await api(k, 'GET', '/api/tokens');
	assert.deepEqual(r.json.data.map((v) => v.name).sort(),
	    ['a', 'd', 'subj', 'xw']);
});
